//! The server side of a ggml-RPC connection, with no I/O inside: it reads commands one at a
//! time, reports each as a typed event, and writes the reply the driver gives (ggml's client
//! pipelines commands and expects replies in order, so the next command waits for the reply,
//! or the end, of the one before).
//!
//! HELLO must come first, and only once. A SET_TENSOR's data is never held whole: once its
//! header is reported and the driver has checked its range, the data is handed out in the
//! pieces it arrives in, straight from the input ring, so what bounds it is the destination,
//! not a packet limit. Everything else is buffered whole and decoded: fixed-size commands
//! (bounded by their layouts) and GRAPH_COMPUTE (bounded by [`GraphLimits`], checked from its
//! first bytes before the rest is buffered).
//!
//! ggml-RPC has no error reply: anything the endpoint cannot decode is a [`GgmlProtocolError`],
//! after which the connection closes.

use thiserror::Error;

use super::codec::{
    Command, GgmlDecodeError, GraphLimits, GraphPayload, GraphPeek, REQUEST_HEADER_LEN, Reply,
    Request, RequestHeader, SetTensorHeader, encode_get_tensor_reply_prefix,
};
use crate::endpoint::EndpointCore;
use crate::endpoint::core::{DEFAULT_OUTPUT_HIGH_WATER, READ_AHEAD};

/// Bounds of one ggml-RPC endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GgmlEndpointConfig {
    pub graph: GraphLimits,
    /// While more output than this waits, no new command is read.
    pub output_high_water: usize,
}

impl Default for GgmlEndpointConfig {
    fn default() -> Self {
        GgmlEndpointConfig {
            graph: GraphLimits::default(),
            output_high_water: DEFAULT_OUTPUT_HIGH_WATER,
        }
    }
}

/// Why the byte stream cannot go on: the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GgmlProtocolError {
    #[error("{0}")]
    Decode(#[from] GgmlDecodeError),
    #[error("the first command must be HELLO, got {0}")]
    NoHello(Command),
    #[error("a second HELLO")]
    SecondHello,
}

/// A driver bug: a reply that does not answer the command waiting for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no {expected} is waiting for this answer")]
pub struct NotAwaiting {
    pub expected: &'static str,
}

/// What the client did, as the driver sees it.
// An event is handed on by value once, as `Request` is (see there): boxing the request to
// shrink the enum would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum GgmlEvent<'a> {
    /// The client's HELLO. Answer with [`GgmlServerEndpoint::accept_hello`] or close.
    Hello { conn_caps: [u8; 24] },
    /// A command, decoded. Answer it with [`GgmlServerEndpoint::reply`] (or
    /// [`GgmlServerEndpoint::reply_get_tensor`]), or [`GgmlServerEndpoint::finish`] for one
    /// without a reply, before the next event.
    Request(Request),
    /// A SET_TENSOR's header and the length of its data. Check where the data goes, then
    /// [`GgmlServerEndpoint::accept_set_tensor`] it (or close).
    SetTensor { header: SetTensorHeader, data_len: u64 },
    /// The next piece of an accepted SET_TENSOR's data, in order.
    SetTensorData(&'a [u8]),
    /// All of an accepted SET_TENSOR's data has been handed out; the next command follows.
    SetTensorDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before HELLO: waiting for a request header.
    AwaitHello,
    /// HELLO reported; waiting for the driver to accept it.
    HelloDecision,
    /// Waiting for a request header.
    Header,
    /// Waiting for a command's whole payload.
    Payload { command: Command, size: usize },
    /// GRAPH_COMPUTE: waiting for enough of its start to check its counts.
    GraphPrefix { size: u64, need: usize },
    /// SET_TENSOR: waiting for its header.
    SetTensorHeader { size: u64 },
    /// SET_TENSOR's header reported: waiting for the driver to accept it.
    SetTensorDecision { data_len: u64 },
    /// SET_TENSOR's data: this many bytes still to hand out.
    SetTensorData { remaining: u64 },
    /// A command is with the driver, its answer not yet written.
    Busy { command: Command },
    /// We end the connection once output is flushed.
    Closing,
}

/// The server side of one ggml-RPC connection.
#[derive(Debug)]
pub struct GgmlServerEndpoint {
    core: EndpointCore,
    state: State,
    config: GgmlEndpointConfig,
    /// Bytes of SET_TENSOR data lent out in the last event, released on the next poll.
    lent: usize,
}

impl GgmlServerEndpoint {
    /// An endpoint waiting for HELLO.
    pub fn new(config: GgmlEndpointConfig) -> Self {
        Self::with_core(EndpointCore::new(config.output_high_water), config)
    }

    /// An endpoint whose client's first bytes are already in `core`.
    pub fn with_core(core: EndpointCore, config: GgmlEndpointConfig) -> Self {
        GgmlServerEndpoint { core, state: State::AwaitHello, config, lent: 0 }
    }

    pub fn core(&self) -> &EndpointCore {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut EndpointCore {
        &mut self.core
    }

    /// Feeds bytes received from the client (tests and simple drivers).
    pub fn receive(&mut self, bytes: &[u8]) {
        self.core.receive(bytes);
    }

    /// Takes all pending output (tests and simple drivers).
    pub fn take_output(&mut self) -> Vec<u8> {
        self.core.take_output()
    }

    /// Whether a command is with the driver.
    pub fn busy(&self) -> bool {
        matches!(self.state, State::Busy { .. })
    }

    /// Whether part of a command has arrived and the rest has not: its header, its payload
    /// or SET_TENSOR's data only in part.
    pub fn mid_request(&self) -> bool {
        match self.state {
            State::Header | State::AwaitHello => !self.core.input().is_empty(),
            State::Payload { .. }
            | State::GraphPrefix { .. }
            | State::SetTensorHeader { .. }
            | State::SetTensorData { .. } => true,
            State::HelloDecision
            | State::SetTensorDecision { .. }
            | State::Busy { .. }
            | State::Closing => false,
        }
    }

    /// Whether HELLO has been accepted.
    pub fn greeted(&self) -> bool {
        !matches!(self.state, State::AwaitHello | State::HelloDecision | State::Closing)
    }

    /// Ends the connection: nothing more is read, and it is finished once output is out.
    pub fn close(&mut self) {
        self.state = State::Closing;
    }

    /// Whether the connection is over and its output handed out.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closing && !self.core.wants_write()
    }

    /// Bytes the current step still needs.
    fn bytes_needed(&self) -> usize {
        let step = match self.state {
            State::AwaitHello | State::Header => REQUEST_HEADER_LEN,
            State::Payload { size, .. } => size,
            State::GraphPrefix { need, .. } => need,
            State::SetTensorHeader { .. } => SetTensorHeader::LEN,
            State::SetTensorData { remaining } => {
                usize::try_from(remaining).unwrap_or(usize::MAX).min(READ_AHEAD)
            }
            State::HelloDecision
            | State::SetTensorDecision { .. }
            | State::Busy { .. }
            | State::Closing => 0,
        };
        step.saturating_sub(self.core.input().len())
    }

    /// Whether the driver should read from the client now.
    pub fn wants_read(&self) -> bool {
        self.state != State::Closing && self.core.wants_read_for(self.bytes_needed(), true)
    }

    /// Advances as far as the buffered input allows and reports the next event. `Err`: the
    /// stream is not ggml-RPC 7.0.0 (or breaks its rules); close the connection.
    pub fn poll_event(&mut self) -> Result<Option<GgmlEvent<'_>>, GgmlProtocolError> {
        if self.lent > 0 {
            self.core.input_mut().consume(self.lent);
            self.lent = 0;
        }
        let result = self.advance();
        if result.is_err() {
            self.state = State::Closing;
        }
        let Some(step) = result? else { return Ok(None) };
        Ok(Some(match step {
            Step::Event(event) => event,
            Step::Data(n) => {
                let data = self.core.input_mut().contiguous(n).expect("n bytes are buffered");
                GgmlEvent::SetTensorData(data)
            }
        }))
    }

    fn advance(&mut self) -> Result<Option<Step>, GgmlProtocolError> {
        loop {
            if let State::SetTensorData { remaining } = self.state {
                if remaining == 0 {
                    self.state = State::Header;
                    return Ok(Some(Step::Event(GgmlEvent::SetTensorDone)));
                }
                return Ok(self.next_data_piece(remaining).map(Step::Data));
            }
            if self.bytes_needed() > 0 {
                return Ok(None);
            }
            if self.core.output_backlogged() && self.state == State::Header {
                return Ok(None);
            }
            match self.state {
                State::AwaitHello | State::Header => self.read_header()?,
                State::Payload { command, size } => {
                    let body = self.core.input_mut().contiguous(size).expect("size is buffered");
                    let request = Request::decode(command, body, &self.config.graph)?;
                    self.core.input_mut().consume(size);
                    if let Request::Hello { conn_caps } = request {
                        self.state = State::HelloDecision;
                        return Ok(Some(Step::Event(GgmlEvent::Hello { conn_caps })));
                    }
                    self.state = State::Busy { command };
                    return Ok(Some(Step::Event(GgmlEvent::Request(request))));
                }
                State::GraphPrefix { size, need } => {
                    let prefix = self.core.input_mut().contiguous(need).expect("need is buffered");
                    match GraphPayload::peek(size, prefix, &self.config.graph)? {
                        GraphPeek::NeedPrefix(more) => {
                            self.state = State::GraphPrefix { size, need: more };
                        }
                        GraphPeek::Counts(_) => {
                            // Bounded by the limits, which the counts are within.
                            let size = usize::try_from(size).unwrap_or(usize::MAX);
                            self.core.input_mut().reserve_contiguous(size);
                            self.state = State::Payload { command: Command::GraphCompute, size };
                        }
                    }
                }
                State::SetTensorHeader { size } => {
                    let bytes = self
                        .core
                        .input_mut()
                        .contiguous(SetTensorHeader::LEN)
                        .expect("the header is buffered");
                    let header = SetTensorHeader::decode(bytes)?;
                    self.core.input_mut().consume(SetTensorHeader::LEN);
                    let data_len = SetTensorHeader::data_len(size)?;
                    self.state = State::SetTensorDecision { data_len };
                    return Ok(Some(Step::Event(GgmlEvent::SetTensor { header, data_len })));
                }
                State::HelloDecision
                | State::SetTensorDecision { .. }
                | State::SetTensorData { .. }
                | State::Busy { .. }
                | State::Closing => return Ok(None),
            }
        }
    }

    /// Reads a request header and moves to what its command needs next.
    fn read_header(&mut self) -> Result<(), GgmlProtocolError> {
        let mut bytes = [0u8; REQUEST_HEADER_LEN];
        self.core.input_mut().read_exact(&mut bytes);
        let header = RequestHeader::decode(&bytes)?;
        let (command, size) = (header.command, header.size);
        match (self.state, command) {
            (State::AwaitHello, Command::Hello) => {}
            (State::AwaitHello, other) => return Err(GgmlProtocolError::NoHello(other)),
            (_, Command::Hello) => return Err(GgmlProtocolError::SecondHello),
            _ => {}
        }
        self.state = match command {
            Command::SetTensor => State::SetTensorHeader { size },
            Command::GraphCompute => State::GraphPrefix { size, need: 8 },
            // Fixed-size: the header decoder checked the size against the layout.
            _ => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                self.core.input_mut().reserve_contiguous(size);
                State::Payload { command, size }
            }
        };
        Ok(())
    }

    /// The length of the next piece of SET_TENSOR data that is buffered, consuming it from
    /// the ring once the driver has it: at most `remaining`, at most one contiguous run.
    fn next_data_piece(&mut self, remaining: u64) -> Option<usize> {
        let (first, _) = self.core.input().as_slices();
        let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(first.len());
        if n == 0 {
            return None;
        }
        // The piece is lent to the driver until the next poll, which releases it.
        self.state = State::SetTensorData { remaining: remaining - n as u64 };
        self.lent = n;
        Some(n)
    }

    /// Accepts the client's HELLO: answers 7.0.0, TCP only.
    pub fn accept_hello(&mut self) -> Result<(), NotAwaiting> {
        if self.state != State::HelloDecision {
            return Err(NotAwaiting { expected: "HELLO" });
        }
        Reply::hello_tcp().encode(self.core.output_mut());
        self.state = State::Header;
        Ok(())
    }

    /// Lets the data of the SET_TENSOR reported last flow (as [`GgmlEvent::SetTensorData`]).
    pub fn accept_set_tensor(&mut self) -> Result<(), NotAwaiting> {
        let State::SetTensorDecision { data_len } = self.state else {
            return Err(NotAwaiting { expected: "SET_TENSOR" });
        };
        self.state = State::SetTensorData { remaining: data_len };
        Ok(())
    }

    fn finish_command(&mut self, command: Command) -> Result<(), NotAwaiting> {
        match self.state {
            State::Busy { command: busy } if busy == command => {
                self.state = State::Header;
                Ok(())
            }
            _ => Err(NotAwaiting { expected: command.name() }),
        }
    }

    /// Answers the command reported last with `reply`.
    pub fn reply(&mut self, reply: &Reply) -> Result<(), NotAwaiting> {
        self.finish_command(reply.command())?;
        reply.encode(self.core.output_mut());
        Ok(())
    }

    /// Ends a command that has no reply.
    pub fn finish(&mut self) -> Result<(), NotAwaiting> {
        let State::Busy { command } = self.state else {
            return Err(NotAwaiting { expected: "a command without a reply" });
        };
        if command.has_reply() {
            return Err(NotAwaiting { expected: "a command without a reply" });
        }
        self.finish_command(command)
    }

    /// Answers GET_TENSOR with `len` bytes that `fill` writes in place. If `fill` fails,
    /// nothing is sent and the connection must close (ggml-RPC has no error reply).
    pub fn reply_get_tensor<E>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, NotAwaiting> {
        self.finish_command(Command::GetTensor)?;
        let writer = self.core.output_mut();
        let result = writer.write_in_place(8 + len, |frame| {
            let (prefix, data) = frame.split_at_mut(8);
            let mut header = Vec::with_capacity(8);
            encode_get_tensor_reply_prefix(len as u64, &mut header);
            prefix.copy_from_slice(&header);
            fill(data).map(|()| frame.len())
        });
        if result.is_err() {
            self.state = State::Closing;
        }
        Ok(result.map(drop))
    }
}

/// What one step of the machine produced.
#[allow(clippy::large_enum_variant)] // as GgmlEvent
enum Step {
    Event(GgmlEvent<'static>),
    /// This many bytes of SET_TENSOR data, at the front of the input.
    Data(usize),
}
