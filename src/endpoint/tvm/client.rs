//! The client side: sends its handshake and requests, and reports the server's replies in
//! order.

use std::borrow::Cow;

use super::codec::handshake;
use super::codec::packet::{self, COPY_ACK_FRAME_PREFIX, parse_copy_ack_frame_prefix};
use super::codec::{DecodeError, HandshakeStatus, Packet, TensorRecord, Value};
use super::machine::{
    Advanced, Endpoint, EndpointConfig, FramingError, Side, State, Step, decode_packet,
};

/// The client side of a TVM RPC connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {}

/// Where a client is in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHandshake {
    /// `i32` status.
    Status,
    /// `i32` server key length.
    ServerKeyLength,
    /// The server key bytes.
    ServerKey(usize),
}

impl Side for Client {
    type Handshake = ClientHandshake;
    const THROTTLED_BY_OUTPUT: bool = false;

    fn handshake_bytes(step: ClientHandshake) -> usize {
        match step {
            ClientHandshake::Status | ClientHandshake::ServerKeyLength => 4,
            ClientHandshake::ServerKey(n) => n,
        }
    }
}

/// A client endpoint.
pub type ClientEndpoint = Endpoint<Client>;

/// What the server did, as the client's driver sees it.
#[derive(Debug, PartialEq)]
pub enum ClientEvent<'a> {
    /// The server accepted our key and named itself.
    Connected { server_key: String },
    /// The Return of our oldest outstanding request.
    Return(Vec<Value>),
    /// The Exception raised by our oldest outstanding request.
    Exception(String),
    /// The bytes of our oldest outstanding CopyFromRemote.
    CopyAck(Cow<'a, [u8]>),
    /// The server ended the session.
    Shutdown,
    /// A packet could not be decoded, or is not a reply. Framing is intact.
    Rejected(DecodeError),
}

impl Endpoint<Client> {
    /// A client endpoint; its handshake with `key` (e.g. `"client:"`) is already queued.
    pub fn client(key: &str, config: EndpointConfig) -> Self {
        let mut endpoint = Self::with_state(State::Handshake(ClientHandshake::Status), config);
        handshake::encode_client_hello(key, endpoint.core.output_mut());
        endpoint
    }

    /// Advances as far as the buffered input allows and reports the next event, if any.
    /// An `Err` means framing is lost: close the connection.
    pub fn poll_event(&mut self) -> Result<Option<ClientEvent<'_>>, FramingError> {
        let packet_len = match self.advance_to_packet(true, Self::advance_handshake)? {
            Advanced::Wait => return Ok(None),
            Advanced::Report(event) => return Ok(Some(event)),
            Advanced::Packet(len) => len,
        };
        let (decoded, _) = decode_packet(&mut self.core, &self.config, packet_len);
        let (next, event) = match decoded {
            Err(error) => (State::Processed { packet_len }, ClientEvent::Rejected(error)),
            Ok(Packet::Shutdown) => (State::ShutdownReceived, ClientEvent::Shutdown),
            Ok(Packet::Return(values)) => (State::Lent { packet_len }, ClientEvent::Return(values)),
            Ok(Packet::Exception(message)) => {
                (State::Lent { packet_len }, ClientEvent::Exception(message))
            }
            Ok(Packet::CopyAck(data)) => (State::Lent { packet_len }, ClientEvent::CopyAck(data)),
            Ok(packet) => (
                State::Processed { packet_len },
                ClientEvent::Rejected(DecodeError::UnexpectedPacket {
                    code: packet.code().name(),
                    why: "this endpoint is a client and serves no requests",
                }),
            ),
        };
        self.state = next;
        Ok(Some(event))
    }

    fn advance_handshake(
        &mut self,
        step: ClientHandshake,
    ) -> Result<Step<ClientEvent<'static>>, FramingError> {
        match step {
            ClientHandshake::Status => {
                let status = self.read_i32();
                if HandshakeStatus::from_i32(status) != Some(HandshakeStatus::Success) {
                    self.state = State::Closing;
                    return Err(FramingError::HandshakeRefused(status));
                }
                self.state = State::Handshake(ClientHandshake::ServerKeyLength);
            }
            ClientHandshake::ServerKeyLength => {
                let len = self.read_key_length()?;
                self.state = State::Handshake(ClientHandshake::ServerKey(len));
            }
            ClientHandshake::ServerKey(len) => {
                let server_key = self.read_key(len)?;
                self.state = State::RecvPacketNumBytes;
                return Ok(Step::Report(ClientEvent::Connected { server_key }));
            }
        }
        Ok(Step::Again)
    }

    /// Queues a packet (a request, or Shutdown) for the server.
    pub fn send(&mut self, packet: &Packet<'_>) {
        packet.encode_frame(self.core.output_mut());
    }

    /// Queues a CopyToRemote of `data` without copying `data` twice.
    pub fn send_copy_to_remote(&mut self, target: &TensorRecord, data: &[u8]) {
        self.send(&Packet::CopyToRemote { target: target.clone(), data: Cow::Borrowed(data) });
    }

    /// Queues a CopyToRemote of `nbytes` up to its payload. The driver sends the payload
    /// itself, straight from its memory, once this output has gone out, and counts it with
    /// [`crate::endpoint::EndpointCore::count_direct_output`].
    pub fn send_copy_to_remote_prefix(&mut self, target: &TensorRecord, nbytes: u64) {
        packet::encode_copy_to_remote_frame_prefix(target, nbytes, self.core.output_mut());
    }

    /// If the next packet is a CopyAck of exactly `out.len()` bytes, takes it over: its
    /// prefix is consumed and whatever of its payload is buffered lands in `out`. Returns how
    /// many payload bytes were filled; the driver reads the rest straight from the socket into
    /// `out` (counting them with [`crate::endpoint::EndpointCore::count_direct_input`]).
    /// `None` while the prefix has not arrived, or if the next packet is something else (an
    /// Exception), which [`ClientEndpoint::poll_event`] then reports as usual.
    pub fn take_copy_ack(&mut self, out: &mut [u8]) -> Option<usize> {
        self.release_processed_packet(true);
        if self.state != State::RecvPacketNumBytes {
            return None;
        }
        let mut prefix = [0; COPY_ACK_FRAME_PREFIX];
        let input = self.core.input_mut();
        if !input.peek(&mut prefix) {
            return None;
        }
        if parse_copy_ack_frame_prefix(&prefix) != Some(out.len() as u64) {
            return None;
        }
        input.consume(COPY_ACK_FRAME_PREFIX);
        let buffered = input.len().min(out.len());
        input.read_exact(&mut out[..buffered]);
        Some(buffered)
    }
}
