//! The state machine both sides share: TVM's `EventHandler` states, made explicit, over an
//! [`EndpointCore`]. The sides differ only in their handshake and in what a packet means to
//! them ([`super::server`], [`super::client`]).

use byteorder::{ByteOrder, LittleEndian};
use thiserror::Error;

use super::codec::handshake::{MAX_KEY_LEN, RPC_MAGIC};
use super::codec::{DecodeLimits, Packet};
use crate::endpoint::core::{DEFAULT_OUTPUT_HIGH_WATER, EndpointCore};
use crate::ringbuf::RingBuffer;

/// Default largest packet body accepted (and advertised via GetCRTMaxPacketSize).
pub const DEFAULT_MAX_PACKET: u64 = 64 << 20;

/// Bounds and knobs of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Largest packet body accepted; a longer declared length closes the connection before
    /// anything is allocated for it.
    pub max_packet: u64,
    pub decode: DecodeLimits,
    /// While more output than this waits to be sent, a server processes no new request and
    /// reads nothing more: a peer that does not read its replies cannot grow our buffers.
    pub output_high_water: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            max_packet: DEFAULT_MAX_PACKET,
            decode: DecodeLimits::default(),
            output_high_water: DEFAULT_OUTPUT_HIGH_WATER,
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
}

/// A reply was written while no request was waiting for one: a bug in the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no request is waiting for a reply")]
pub struct NotAwaitingReply;

/// One side of the protocol: its handshake steps, and the bytes each needs.
pub trait Side {
    /// Where this side is in its handshake.
    type Handshake: Copy + PartialEq + std::fmt::Debug;
    /// Bytes the handshake step needs before it can make progress.
    fn handshake_bytes(step: Self::Handshake) -> usize;
    /// Whether this side stops reading while its own output is backlogged (a server does; a
    /// client must read replies while its own large requests are still going out).
    const THROTTLED_BY_OUTPUT: bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State<H> {
    /// TVM's kInitHeader: the handshake.
    Handshake(H),
    /// TVM's kRecvPacketNumBytes: waiting for a `u64` packet length.
    RecvPacketNumBytes,
    /// TVM's kProcessPacket: waiting for the whole body of a packet.
    ProcessPacket { len: usize },
    /// The packet's contents are lent out: to the driver as a request (TVM's
    /// kWaitForAsyncCallback, released when the reply is written) or as a reply (TVM's
    /// kReturnReceived / kCopyAckReceived, released on the next poll).
    Lent { packet_len: usize },
    /// A packet was rejected; its bytes are released on the next poll.
    Processed { packet_len: usize },
    /// TVM's kShutdownReceived: the peer ended the session.
    ShutdownReceived,
    /// We end the connection (handshake refused, or framing lost) once output is flushed.
    Closing,
}

/// One side of a TVM RPC connection, with no I/O inside. Its own calls and events are on
/// `Endpoint<Server>` ([`super::ServerEndpoint`]) and `Endpoint<Client>`
/// ([`super::ClientEndpoint`]).
#[derive(Debug)]
pub struct Endpoint<S: Side> {
    pub(super) core: EndpointCore,
    pub(super) state: State<S::Handshake>,
    pub(super) config: EndpointConfig,
}

/// Where [`Endpoint::advance_to_packet`] stopped.
pub(super) enum Advanced<T> {
    Wait,
    Report(T),
    Packet(usize),
}

/// What one non-borrowing step of the machine produced.
pub(super) enum Step<T> {
    Wait,
    Again,
    Report(T),
    PacketReady(usize),
}

impl<S: Side> Endpoint<S> {
    pub(super) fn with_state(state: State<S::Handshake>, config: EndpointConfig) -> Self {
        Self::with_core_and_state(EndpointCore::new(config.output_high_water), state, config)
    }

    pub(super) fn with_core_and_state(
        core: EndpointCore,
        state: State<S::Handshake>,
        config: EndpointConfig,
    ) -> Self {
        Endpoint { core, state, config }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The buffers and counters (for the driver's I/O).
    pub fn core(&self) -> &EndpointCore {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut EndpointCore {
        &mut self.core
    }

    /// Feeds bytes received from the peer (tests and simple drivers).
    pub fn receive(&mut self, bytes: &[u8]) {
        self.core.receive(bytes);
    }

    /// Takes all pending output (tests and simple drivers).
    pub fn take_output(&mut self) -> Vec<u8> {
        self.core.take_output()
    }

    /// Whether the connection is over and all output has been handed out: close it now.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::ShutdownReceived | State::Closing) && !self.core.wants_write()
    }

    /// Ends the connection from our side: nothing more is read or processed, and
    /// [`Endpoint::is_finished`] turns true once pending output is handed out.
    pub fn close(&mut self) {
        self.state = State::Closing;
    }

    /// Bytes the current step still needs before it can make progress.
    fn bytes_needed(&self) -> usize {
        let step_total = match self.state {
            State::Handshake(step) => S::handshake_bytes(step),
            State::RecvPacketNumBytes => 8,
            State::ProcessPacket { len } => len,
            _ => 0,
        };
        step_total.saturating_sub(self.core.input().len())
    }

    /// Whether the driver should read from the peer now.
    pub fn wants_read(&self) -> bool {
        let open = !matches!(self.state, State::ShutdownReceived | State::Closing);
        open && self.core.wants_read_for(self.bytes_needed(), S::THROTTLED_BY_OUTPUT)
    }

    /// Whether the current step has the bytes it needs (else the caller waits).
    pub(super) fn has_bytes_needed(&self) -> bool {
        self.bytes_needed() == 0
    }

    /// Releases a packet whose contents were reported in the previous event.
    pub(super) fn release_processed_packet(&mut self, release_lent: bool) {
        let packet_len = match self.state {
            State::Processed { packet_len } => packet_len,
            State::Lent { packet_len } if release_lent => packet_len,
            _ => return,
        };
        self.core.input_mut().consume(packet_len);
        self.state = State::RecvPacketNumBytes;
    }

    /// Advances through the handshake (with `handshake`, this side's step) and the framing
    /// until the handshake reports an event, a whole packet is buffered (its length), or the
    /// input runs out. Releases a packet reported before (one lent out too, if
    /// `release_lent`).
    pub(super) fn advance_to_packet<T>(
        &mut self,
        release_lent: bool,
        mut handshake: impl FnMut(&mut Self, S::Handshake) -> Result<Step<T>, FramingError>,
    ) -> Result<Advanced<T>, FramingError> {
        self.release_processed_packet(release_lent);
        loop {
            if !self.has_bytes_needed() {
                return Ok(Advanced::Wait);
            }
            let step = match self.state {
                State::Handshake(step) => handshake(self, step)?,
                State::Processed { .. } => {
                    self.release_processed_packet(release_lent);
                    Step::Again
                }
                _ => self.advance_framing()?,
            };
            match step {
                Step::Wait => return Ok(Advanced::Wait),
                Step::Again => {}
                Step::Report(event) => return Ok(Advanced::Report(event)),
                Step::PacketReady(len) => return Ok(Advanced::Packet(len)),
            }
        }
    }

    /// Reads a packet's length and waits for its body: [`Step::PacketReady`] once the whole
    /// body is buffered. Any other state waits.
    pub(super) fn advance_framing<T>(&mut self) -> Result<Step<T>, FramingError> {
        match self.state {
            State::RecvPacketNumBytes => {
                if S::THROTTLED_BY_OUTPUT && self.core.output_backlogged() {
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
                self.core.input_mut().reserve_contiguous(len);
                self.state = State::ProcessPacket { len };
                Ok(Step::Again)
            }
            State::ProcessPacket { len } => Ok(Step::PacketReady(len)),
            _ => Ok(Step::Wait),
        }
    }

    pub(super) fn read_i32(&mut self) -> i32 {
        let mut b = [0; 4];
        self.core.input_mut().read_exact(&mut b);
        LittleEndian::read_i32(&b)
    }

    pub(super) fn read_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.core.input_mut().read_exact(&mut b);
        LittleEndian::read_u64(&b)
    }

    /// Reads a handshake key of `len` bytes.
    pub(super) fn read_key(&mut self, len: usize) -> Result<String, FramingError> {
        let mut key = vec![0; len];
        self.core.input_mut().read_exact(&mut key);
        String::from_utf8(key).map_err(|_| {
            self.state = State::Closing;
            FramingError::KeyNotUtf8
        })
    }

    /// Reads a handshake key length, refusing one outside `0..=MAX_KEY_LEN`.
    pub(super) fn read_key_length(&mut self) -> Result<usize, FramingError> {
        let len = self.read_i32();
        if !(0..=MAX_KEY_LEN as i32).contains(&len) {
            self.state = State::Closing;
            return Err(FramingError::BadKeyLength(len));
        }
        Ok(len as usize)
    }
}

/// Decodes the buffered packet of `len` bytes; the packet borrows the input ring while the
/// output ring stays free for its reply. A free function, so the caller may still set its
/// state (a field disjoint from both rings) while the packet lives.
pub(super) fn decode_packet<'a>(
    core: &'a mut EndpointCore,
    config: &EndpointConfig,
    len: usize,
) -> (Result<Packet<'a>, super::codec::DecodeError>, &'a mut RingBuffer) {
    let (reader, writer) = core.rings_mut();
    let body = reader.contiguous(len).expect("advance_framing checked the length");
    (Packet::decode(body, &config.decode), writer)
}
