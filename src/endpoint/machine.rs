//! The state machine itself: TVM's `EventHandler` states, made explicit.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use byteorder::{ByteOrder, LittleEndian};
use thiserror::Error;

use super::codec::handshake::{self, MAX_KEY_LEN, RPC_MAGIC};
use super::codec::packet::{
    self, COPY_ACK_FRAME_PREFIX, copy_ack_frame_prefix, parse_copy_ack_frame_prefix,
};
use super::codec::{ClientKey, DecodeError, DecodeLimits, HandshakeStatus, Packet, Value};
use crate::ringbuf::RingBuffer;

/// Default largest packet body accepted (and advertised via GetCRTMaxPacketSize).
pub const DEFAULT_MAX_PACKET: u64 = 64 << 20;

/// How far ahead of the current step the endpoint reads, so pipelined requests arrive in few
/// reads without letting a peer park unbounded data in our buffer.
const READ_AHEAD: usize = 256 << 10;

/// Bounds and knobs of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Largest packet body accepted; a longer declared length closes the connection before
    /// anything is allocated for it.
    pub max_packet: u64,
    pub decode: DecodeLimits,
    /// While more output than this waits to be sent, no new request is processed and nothing
    /// more is read: a peer that does not read its replies cannot grow our buffers.
    pub output_high_water: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            max_packet: DEFAULT_MAX_PACKET,
            decode: DecodeLimits::default(),
            output_high_water: 1 << 20,
        }
    }
}

/// Errors after which the byte stream cannot be trusted: the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    #[error("handshake magic {0:#x} is not TVM RPC's {RPC_MAGIC:#x}")]
    BadMagic(i32),
    #[error("handshake key length {0} is outside 0..={MAX_KEY_LEN}")]
    BadKeyLength(i32),
    #[error("handshake key is not UTF-8")]
    KeyNotUtf8,
    #[error("the server refused the handshake with status {0:#x}")]
    HandshakeRefused(i32),
    #[error("packet of {len} bytes exceeds the maximum of {max}")]
    PacketTooLarge { len: u64, max: u64 },
    #[error("the endpoint is closed")]
    Closed,
}

/// A reply was written while no request was waiting for one: a bug in the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no request is waiting for a reply")]
pub struct NotAwaitingReply;

/// Which side of the protocol this endpoint plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// What the peer did, as the driver sees it.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// Server: a client presented its key. Answer with [`Endpoint::accept`] or
    /// [`Endpoint::reject`].
    ClientHello(ClientKey),
    /// Client: the server accepted our key and named itself.
    Connected { server_key: String },
    /// Server: a request. Answer it with [`Endpoint::reply`] or [`Endpoint::reply_copy_ack`]
    /// before the next event; requests behind it wait in order.
    Request(Packet<'a>),
    /// Client: the Return of our oldest outstanding request.
    Return(Vec<Value>),
    /// Client: the Exception raised by our oldest outstanding request.
    Exception(String),
    /// Client: the bytes of our oldest outstanding CopyFromRemote.
    CopyAck(Cow<'a, [u8]>),
    /// The peer ended the session. Nothing more is read; flush and close.
    Shutdown,
    /// A packet could not be decoded. Framing is intact, so the connection goes on; as a
    /// server the endpoint has already queued an Exception naming the problem.
    Rejected(DecodeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandshakeStep {
    /// Server: `i32` magic.
    Magic,
    /// Server: `i32` key length.
    KeyLength,
    /// Server: the key bytes.
    Key(usize),
    /// Server: the key was reported; waiting for accept/reject.
    Decision,
    /// Client: `i32` status.
    Status,
    /// Client: `i32` server key length.
    ServerKeyLength,
    /// Client: the server key bytes.
    ServerKey(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// TVM's kInitHeader: the handshake.
    InitHeader(HandshakeStep),
    /// TVM's kRecvPacketNumBytes: waiting for a `u64` packet length.
    RecvPacketNumBytes,
    /// TVM's kProcessPacket: waiting for the whole body of a packet.
    ProcessPacket { len: usize },
    /// TVM's kWaitForAsyncCallback: a request is with the driver; its packet (still in the
    /// reader) is released when the reply is written.
    WaitForAsyncCallback { packet_len: usize },
    /// TVM's kReturnReceived: a Return or Exception was reported to the client.
    ReturnReceived { packet_len: usize },
    /// TVM's kCopyAckReceived: CopyAck bytes were lent to the client.
    CopyAckReceived { packet_len: usize },
    /// A packet was rejected or refused; its bytes are released on the next poll.
    Processed { packet_len: usize },
    /// TVM's kShutdownReceived: the peer ended the session.
    ShutdownReceived,
    /// We end the connection (handshake refused, or framing lost) once output is flushed.
    Closing,
}

/// One side of an RPC connection, with no I/O inside.
#[derive(Debug)]
pub struct Endpoint {
    role: Role,
    state: State,
    reader: RingBuffer,
    writer: RingBuffer,
    config: EndpointConfig,
    bytes_in: u64,
    bytes_out: u64,
}

impl Endpoint {
    /// A server endpoint, waiting for a client's handshake.
    pub fn server(config: EndpointConfig) -> Self {
        Self::new(Role::Server, State::InitHeader(HandshakeStep::Magic), config)
    }

    /// A client endpoint; its handshake with `key` (e.g. `"client:"`) is already queued.
    pub fn client(key: &str, config: EndpointConfig) -> Self {
        let mut endpoint =
            Self::new(Role::Client, State::InitHeader(HandshakeStep::Status), config);
        handshake::encode_client_hello(key, &mut endpoint.writer);
        endpoint
    }

    fn new(role: Role, state: State, config: EndpointConfig) -> Self {
        Endpoint {
            role,
            state,
            reader: RingBuffer::default(),
            writer: RingBuffer::default(),
            config,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Bytes received from the peer so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes handed out for sending so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Whether a request is with the driver, its reply not yet written (TVM's
    /// kWaitForAsyncCallback).
    pub fn awaiting_reply(&self) -> bool {
        matches!(self.state, State::WaitForAsyncCallback { .. })
    }

    /// Whether the connection is over and all output has been handed out: close it now.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::ShutdownReceived | State::Closing) && self.writer.is_empty()
    }

    /// Bytes the current step still needs before it can make progress.
    fn bytes_needed(&self) -> usize {
        let step_total = match self.state {
            State::InitHeader(HandshakeStep::Key(n) | HandshakeStep::ServerKey(n)) => n,
            State::InitHeader(HandshakeStep::Decision) => 0,
            State::InitHeader(_) => 4,
            State::RecvPacketNumBytes => 8,
            State::ProcessPacket { len } => len,
            _ => 0,
        };
        step_total.saturating_sub(self.reader.len())
    }

    /// Whether the driver should read from the peer now.
    pub fn wants_read(&self) -> bool {
        let open = !matches!(self.state, State::ShutdownReceived | State::Closing);
        let room = self.bytes_needed() > 0 || self.reader.len() < READ_AHEAD;
        open && room && !self.output_backlogged()
    }

    /// A server stops taking requests while its peer leaves replies unread. A client never
    /// does: it must read replies while its own large requests are still going out.
    fn output_backlogged(&self) -> bool {
        self.role == Role::Server && self.writer.len() > self.config.output_high_water
    }

    /// Whether output is waiting to be sent.
    pub fn wants_write(&self) -> bool {
        !self.writer.is_empty()
    }

    /// Feeds bytes received from the peer.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
        self.bytes_in += bytes.len() as u64;
    }

    /// Performs one read from `src` into the input buffer, sized to what the current step
    /// needs (never less than the ring's free run). Returns what `src.read` returned.
    pub fn receive_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        let n = self.reader.fill_with(|free| src.read(free))?;
        self.bytes_in += n as u64;
        Ok(n)
    }

    /// Performs one write of pending output to `dst`. Returns what `dst.write` returned.
    pub fn send_to(&mut self, dst: &mut impl Write) -> io::Result<usize> {
        let n = self.writer.drain_with(|data| dst.write(data))?;
        self.bytes_out += n as u64;
        Ok(n)
    }

    /// Bytes of memory the input and output buffers hold.
    pub fn buffer_capacity(&self) -> usize {
        self.reader.capacity() + self.writer.capacity()
    }

    /// Gives back the memory of buffers grown for large packets, if they are empty. Buffers
    /// are kept while traffic flows (a large copy arrives as a run of large packets, and
    /// regrowing for each would cost an allocation and its page faults every time), so a
    /// driver calls this once a connection has been quiet for a while.
    pub fn release_idle_buffers(&mut self) {
        self.reader.shrink_if_empty(READ_AHEAD);
        self.writer.shrink_if_empty(READ_AHEAD);
    }

    /// Pending output, as at most two slices in order.
    pub fn output(&self) -> (&[u8], &[u8]) {
        self.writer.as_slices()
    }

    /// Marks the first `n` bytes of [`Endpoint::output`] as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.writer.consume(n);
        self.bytes_out += n as u64;
    }

    /// Takes all pending output (for tests and simple drivers).
    pub fn take_output(&mut self) -> Vec<u8> {
        let (a, b) = self.writer.as_slices();
        let out = [a, b].concat();
        self.consume_output(out.len());
        out
    }

    /// Advances as far as the buffered input allows and reports the next event, if any.
    /// An `Err` means framing is lost: close the connection once output is flushed.
    pub fn poll_event(&mut self) -> Result<Option<Event<'_>>, FramingError> {
        self.release_reported_packet();
        let packet_len = loop {
            match self.advance()? {
                Step::Wait => return Ok(None),
                Step::Again => continue,
                Step::Report(event) => return Ok(Some(event)),
                Step::PacketReady(len) => break len,
            }
        };
        // Only `self.reader` is borrowed by the decoded packet, so the arms below may update
        // the state and the writer; the packet's bytes are released on the next call.
        let body = self.reader.contiguous(packet_len).expect("advance checked the length");
        let decoded = Packet::decode(body, &self.config.decode);
        let event = match (self.role, decoded) {
            (_, Err(error)) => {
                self.state = State::Processed { packet_len };
                if self.role == Role::Server {
                    write_frame(&mut self.writer, &Packet::Exception(error.to_string()));
                }
                Event::Rejected(error)
            }
            (_, Ok(Packet::Shutdown)) => {
                self.state = State::ShutdownReceived;
                Event::Shutdown
            }
            (
                Role::Server,
                Ok(packet @ (Packet::Return(_) | Packet::Exception(_) | Packet::CopyAck(_))),
            ) => {
                let error = DecodeError::UnexpectedPacket {
                    code: packet.code().name(),
                    why: "this server made no call that waits for it",
                };
                self.state = State::Processed { packet_len };
                write_frame(&mut self.writer, &Packet::Exception(error.to_string()));
                Event::Rejected(error)
            }
            (Role::Server, Ok(request)) => {
                self.state = State::WaitForAsyncCallback { packet_len };
                Event::Request(request)
            }
            (Role::Client, Ok(Packet::Return(values))) => {
                self.state = State::ReturnReceived { packet_len };
                Event::Return(values)
            }
            (Role::Client, Ok(Packet::Exception(message))) => {
                self.state = State::ReturnReceived { packet_len };
                Event::Exception(message)
            }
            (Role::Client, Ok(Packet::CopyAck(data))) => {
                self.state = State::CopyAckReceived { packet_len };
                Event::CopyAck(data)
            }
            (Role::Client, Ok(packet)) => {
                self.state = State::Processed { packet_len };
                Event::Rejected(DecodeError::UnexpectedPacket {
                    code: packet.code().name(),
                    why: "this endpoint is a client and serves no requests",
                })
            }
        };
        Ok(Some(event))
    }

    /// Releases a packet whose contents were lent to the client in the previous event.
    fn release_reported_packet(&mut self) {
        if let State::ReturnReceived { packet_len }
        | State::CopyAckReceived { packet_len }
        | State::Processed { packet_len } = self.state
        {
            self.reader.consume(packet_len);
            self.state = State::RecvPacketNumBytes;
        }
    }

    /// One step that needs no borrow of the input to report.
    fn advance(&mut self) -> Result<Step, FramingError> {
        if self.bytes_needed() > 0 {
            return Ok(Step::Wait);
        }
        match self.state {
            State::InitHeader(step) => self.advance_handshake(step),
            State::RecvPacketNumBytes => {
                if self.output_backlogged() {
                    return Ok(Step::Wait);
                }
                let len = self.read_u64();
                if len == 0 {
                    return Ok(Step::Again);
                }
                if len > self.config.max_packet {
                    self.state = State::Closing;
                    return Err(FramingError::PacketTooLarge { len, max: self.config.max_packet });
                }
                let len = len as usize;
                self.reader.reserve_contiguous(len);
                self.state = State::ProcessPacket { len };
                Ok(Step::Again)
            }
            State::ProcessPacket { len } => Ok(Step::PacketReady(len)),
            State::WaitForAsyncCallback { .. } | State::ShutdownReceived | State::Closing => {
                Ok(Step::Wait)
            }
            State::ReturnReceived { .. }
            | State::CopyAckReceived { .. }
            | State::Processed { .. } => {
                self.release_reported_packet();
                Ok(Step::Again)
            }
        }
    }

    fn advance_handshake(&mut self, step: HandshakeStep) -> Result<Step, FramingError> {
        use HandshakeStep::*;
        match step {
            Magic => {
                let magic = self.read_i32();
                if magic != RPC_MAGIC {
                    self.state = State::Closing;
                    return Err(FramingError::BadMagic(magic));
                }
                self.state = State::InitHeader(KeyLength);
            }
            KeyLength | ServerKeyLength => {
                let len = self.read_i32();
                if !(0..=MAX_KEY_LEN as i32).contains(&len) {
                    self.state = State::Closing;
                    return Err(FramingError::BadKeyLength(len));
                }
                let len = len as usize;
                self.state =
                    State::InitHeader(if step == KeyLength { Key(len) } else { ServerKey(len) });
            }
            Key(len) | ServerKey(len) => {
                let mut key = vec![0; len];
                self.reader.read_exact(&mut key);
                let Ok(key) = String::from_utf8(key) else {
                    self.state = State::Closing;
                    return Err(FramingError::KeyNotUtf8);
                };
                if step == ServerKey(len) {
                    self.state = State::RecvPacketNumBytes;
                    return Ok(Step::Report(Event::Connected { server_key: key }));
                }
                self.state = State::InitHeader(Decision);
                return Ok(Step::Report(Event::ClientHello(ClientKey::parse(&key))));
            }
            Decision => return Ok(Step::Wait),
            Status => {
                let status = self.read_i32();
                if HandshakeStatus::from_i32(status) != Some(HandshakeStatus::Success) {
                    self.state = State::Closing;
                    return Err(FramingError::HandshakeRefused(status));
                }
                self.state = State::InitHeader(ServerKeyLength);
            }
        }
        Ok(Step::Again)
    }

    fn read_i32(&mut self) -> i32 {
        let mut b = [0; 4];
        self.reader.read_exact(&mut b);
        LittleEndian::read_i32(&b)
    }

    fn read_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.reader.read_exact(&mut b);
        LittleEndian::read_u64(&b)
    }

    /// Server: accepts the client's key, answering as `"server:<server_key>"`.
    pub fn accept(&mut self, server_key: &str) {
        if self.state != State::InitHeader(HandshakeStep::Decision) {
            debug_assert!(false, "accept outside the handshake");
            return;
        }
        let reply_key = format!("server:{server_key}");
        handshake::encode_server_reply(HandshakeStatus::Success, &reply_key, &mut self.writer);
        self.state = State::RecvPacketNumBytes;
    }

    /// Server: refuses the client's key; the connection closes once the status is sent.
    pub fn reject(&mut self, status: HandshakeStatus) {
        handshake::encode_server_reply(status, "", &mut self.writer);
        self.state = State::Closing;
    }

    /// Ends the connection from our side: nothing more is read or processed, and
    /// [`Endpoint::is_finished`] turns true once pending output is handed out.
    pub fn close(&mut self) {
        self.state = State::Closing;
    }

    /// Server: answers the request reported last.
    pub fn reply(&mut self, packet: &Packet<'_>) -> Result<(), NotAwaitingReply> {
        self.finish_request()?;
        write_frame(&mut self.writer, packet);
        Ok(())
    }

    /// Server: answers a CopyFromRemote with a CopyAck of `nbytes`, written in place by
    /// `fill`. If `fill` fails, the message goes back as an Exception instead.
    pub fn reply_copy_ack(
        &mut self,
        nbytes: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), String>,
    ) -> Result<(), NotAwaitingReply> {
        self.finish_request()?;
        let prefix = copy_ack_frame_prefix(nbytes as u64);
        let fits = |p: &[u8; COPY_ACK_FRAME_PREFIX]| {
            u64::from_le_bytes(p[..8].try_into().expect("8 bytes")) <= self.config.max_packet
        };
        let Some(prefix) = prefix.filter(fits) else {
            let message = format!(
                "CopyFromRemote of {nbytes} bytes exceeds the maximum packet of {} bytes; \
                 split the copy (see tvm.rpc.server.GetCRTMaxPacketSize)",
                self.config.max_packet
            );
            write_frame(&mut self.writer, &Packet::Exception(message));
            return Ok(());
        };
        let result = self.writer.write_in_place(COPY_ACK_FRAME_PREFIX + nbytes, |frame| {
            frame[..COPY_ACK_FRAME_PREFIX].copy_from_slice(&prefix);
            fill(&mut frame[COPY_ACK_FRAME_PREFIX..]).map(|()| frame.len())
        });
        if let Err(message) = result {
            write_frame(&mut self.writer, &Packet::Exception(message));
        }
        Ok(())
    }

    fn finish_request(&mut self) -> Result<(), NotAwaitingReply> {
        let State::WaitForAsyncCallback { packet_len } = self.state else {
            debug_assert!(false, "reply without a request");
            return Err(NotAwaitingReply);
        };
        self.reader.consume(packet_len);
        self.state = State::RecvPacketNumBytes;
        Ok(())
    }

    /// Client: queues a packet (a request, or Shutdown) for the server.
    pub fn send(&mut self, packet: &Packet<'_>) {
        write_frame(&mut self.writer, packet);
    }

    /// Client: queues a CopyToRemote of `data` without copying `data` twice.
    pub fn send_copy_to_remote(&mut self, target: &super::codec::TensorRecord, data: &[u8]) {
        self.send(&Packet::CopyToRemote { target: target.clone(), data: Cow::Borrowed(data) });
    }

    /// Client: queues a CopyToRemote of `nbytes` up to its payload. The driver sends the
    /// payload itself, straight from its memory, once this output has gone out, and counts
    /// it with [`Endpoint::count_direct_output`].
    pub fn send_copy_to_remote_prefix(&mut self, target: &super::codec::TensorRecord, nbytes: u64) {
        packet::encode_copy_to_remote_frame_prefix(target, nbytes, &mut self.writer);
    }

    /// Counts payload bytes the driver sent past the endpoint.
    pub fn count_direct_output(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// Counts payload bytes the driver received past the endpoint.
    pub fn count_direct_input(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    /// Client: if the next packet is a CopyAck of exactly `out.len()` bytes, takes it over:
    /// its prefix is consumed and whatever of its payload is buffered lands in `out`.
    /// Returns how many payload bytes were filled; the driver reads the rest straight from
    /// the socket into `out` (counting them with [`Endpoint::count_direct_input`]). `None`
    /// while the prefix has not arrived, or if the next packet is something else (an
    /// Exception), which [`Endpoint::poll_event`] then reports as usual.
    pub fn take_copy_ack(&mut self, out: &mut [u8]) -> Option<usize> {
        self.release_reported_packet();
        if self.role != Role::Client || self.state != State::RecvPacketNumBytes {
            return None;
        }
        let mut prefix = [0; COPY_ACK_FRAME_PREFIX];
        if !self.reader.peek(&mut prefix) {
            return None;
        }
        if parse_copy_ack_frame_prefix(&prefix) != Some(out.len() as u64) {
            return None;
        }
        self.reader.consume(COPY_ACK_FRAME_PREFIX);
        let buffered = self.reader.len().min(out.len());
        self.reader.read_exact(&mut out[..buffered]);
        Some(buffered)
    }
}

/// What one non-borrowing step of the machine produced.
enum Step {
    Wait,
    Again,
    Report(Event<'static>),
    PacketReady(usize),
}

fn write_frame(writer: &mut RingBuffer, packet: &Packet<'_>) {
    packet.encode_frame(writer);
}
