//! The server side: answers a client's handshake, reports its requests one at a time, and
//! writes their replies.

use super::codec::handshake::{self, RPC_MAGIC};
use super::codec::packet::{COPY_ACK_FRAME_PREFIX, copy_ack_frame_prefix};
use super::codec::{ClientKey, DecodeError, HandshakeStatus, Packet};
use super::machine::{
    Advanced, Endpoint, EndpointConfig, FramingError, NotAwaitingReply, Side, State, Step,
    decode_packet,
};
use crate::endpoint::EndpointCore;
use crate::ringbuf::RingBuffer;

/// The server side of a TVM RPC connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {}

/// Where a server is in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHandshake {
    /// `i32` magic.
    Magic,
    /// `i32` key length.
    KeyLength,
    /// The key bytes.
    Key(usize),
    /// The key was reported; waiting for accept/reject.
    Decision,
}

impl Side for Server {
    type Handshake = ServerHandshake;
    const THROTTLED_BY_OUTPUT: bool = true;

    fn handshake_bytes(step: ServerHandshake) -> usize {
        match step {
            ServerHandshake::Magic | ServerHandshake::KeyLength => 4,
            ServerHandshake::Key(n) => n,
            ServerHandshake::Decision => 0,
        }
    }
}

/// A server endpoint.
pub type ServerEndpoint = Endpoint<Server>;

/// What a client did, as the server's driver sees it.
#[derive(Debug, PartialEq)]
pub enum ServerEvent<'a> {
    /// A client presented its key. Answer with [`ServerEndpoint::accept`] or
    /// [`ServerEndpoint::reject`].
    ClientHello(ClientKey),
    /// A request. Answer it with [`ServerEndpoint::reply`] or
    /// [`ServerEndpoint::reply_copy_ack`] before the next event; requests behind it wait in
    /// order.
    Request(Packet<'a>),
    /// The client ended the session. Nothing more is read; flush and close.
    Shutdown,
    /// A packet could not be decoded. Framing is intact, so the connection goes on; the
    /// endpoint has already queued an Exception naming the problem.
    Rejected(DecodeError),
}

impl Endpoint<Server> {
    /// A server endpoint, waiting for a client's handshake.
    pub fn server(config: EndpointConfig) -> Self {
        Self::with_state(State::Handshake(ServerHandshake::Magic), config)
    }

    /// A server endpoint whose client's first bytes are already in `core` (read by a driver
    /// that looked at them to tell the protocol).
    pub fn server_with_core(core: EndpointCore, config: EndpointConfig) -> Self {
        Self::with_core_and_state(core, State::Handshake(ServerHandshake::Magic), config)
    }

    /// Whether a request is with the driver, its reply not yet written (TVM's
    /// kWaitForAsyncCallback).
    pub fn awaiting_reply(&self) -> bool {
        matches!(self.state, State::Lent { .. })
    }

    /// Advances as far as the buffered input allows and reports the next event, if any.
    /// An `Err` means framing is lost: close the connection once output is flushed.
    pub fn poll_event(&mut self) -> Result<Option<ServerEvent<'_>>, FramingError> {
        let packet_len = match self.advance_to_packet(false, Self::advance_handshake)? {
            Advanced::Wait => return Ok(None),
            Advanced::Report(event) => return Ok(Some(event)),
            Advanced::Packet(len) => len,
        };
        let (decoded, writer) = decode_packet(&mut self.core, &self.config, packet_len);
        let (next, event) = match decoded {
            Err(error) => {
                write_exception(writer, error.to_string());
                (State::Processed { packet_len }, ServerEvent::Rejected(error))
            }
            Ok(Packet::Shutdown) => (State::ShutdownReceived, ServerEvent::Shutdown),
            Ok(packet @ (Packet::Return(_) | Packet::Exception(_) | Packet::CopyAck(_))) => {
                let error = DecodeError::UnexpectedPacket {
                    code: packet.code().name(),
                    why: "this server made no call that waits for it",
                };
                write_exception(writer, error.to_string());
                (State::Processed { packet_len }, ServerEvent::Rejected(error))
            }
            Ok(request) => (State::Lent { packet_len }, ServerEvent::Request(request)),
        };
        // Only the input ring is borrowed by the event; the state is a separate field.
        self.state = next;
        Ok(Some(event))
    }

    fn advance_handshake(
        &mut self,
        step: ServerHandshake,
    ) -> Result<Step<ServerEvent<'static>>, FramingError> {
        match step {
            ServerHandshake::Magic => {
                let magic = self.read_i32();
                if magic != RPC_MAGIC {
                    self.state = State::Closing;
                    return Err(FramingError::BadMagic(magic));
                }
                self.state = State::Handshake(ServerHandshake::KeyLength);
            }
            ServerHandshake::KeyLength => {
                let len = self.read_key_length()?;
                self.state = State::Handshake(ServerHandshake::Key(len));
            }
            ServerHandshake::Key(len) => {
                let key = self.read_key(len)?;
                self.state = State::Handshake(ServerHandshake::Decision);
                return Ok(Step::Report(ServerEvent::ClientHello(ClientKey::parse(&key))));
            }
            ServerHandshake::Decision => return Ok(Step::Wait),
        }
        Ok(Step::Again)
    }

    /// Accepts the client's key, answering as `"server:<server_key>"`. Outside the handshake
    /// decision it does nothing and says so.
    pub fn accept(&mut self, server_key: &str) -> Result<(), NotAwaitingReply> {
        if self.state != State::Handshake(ServerHandshake::Decision) {
            return Err(NotAwaitingReply);
        }
        let reply_key = format!("server:{server_key}");
        handshake::encode_server_reply(
            HandshakeStatus::Success,
            &reply_key,
            self.core.output_mut(),
        );
        self.state = State::RecvPacketNumBytes;
        Ok(())
    }

    /// Refuses the client's key; the connection closes once the status is sent.
    pub fn reject(&mut self, status: HandshakeStatus) {
        handshake::encode_server_reply(status, "", self.core.output_mut());
        self.state = State::Closing;
    }

    /// Answers the request reported last.
    pub fn reply(&mut self, packet: &Packet<'_>) -> Result<(), NotAwaitingReply> {
        self.finish_request()?;
        packet.encode_frame(self.core.output_mut());
        Ok(())
    }

    /// Answers a CopyFromRemote with a CopyAck of `nbytes`, written in place by `fill`. If
    /// `fill` fails, the message goes back as an Exception instead.
    pub fn reply_copy_ack(
        &mut self,
        nbytes: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), String>,
    ) -> Result<(), NotAwaitingReply> {
        self.finish_request()?;
        let max_packet = self.config.max_packet;
        let prefix = copy_ack_frame_prefix(nbytes as u64);
        let fits = |p: &[u8; COPY_ACK_FRAME_PREFIX]| {
            u64::from_le_bytes(p[..8].try_into().expect("8 bytes")) <= max_packet
        };
        let writer = self.core.output_mut();
        let Some(prefix) = prefix.filter(fits) else {
            write_exception(
                writer,
                format!(
                    "CopyFromRemote of {nbytes} bytes exceeds the maximum packet of {max_packet} \
                     bytes; split the copy (see tvm.rpc.server.GetCRTMaxPacketSize)"
                ),
            );
            return Ok(());
        };
        let result = writer.write_in_place(COPY_ACK_FRAME_PREFIX + nbytes, |frame| {
            frame[..COPY_ACK_FRAME_PREFIX].copy_from_slice(&prefix);
            fill(&mut frame[COPY_ACK_FRAME_PREFIX..]).map(|()| frame.len())
        });
        if let Err(message) = result {
            write_exception(writer, message);
        }
        Ok(())
    }

    fn finish_request(&mut self) -> Result<(), NotAwaitingReply> {
        let State::Lent { packet_len } = self.state else {
            return Err(NotAwaitingReply);
        };
        self.core.input_mut().consume(packet_len);
        self.state = State::RecvPacketNumBytes;
        Ok(())
    }
}

fn write_exception(writer: &mut RingBuffer, message: String) {
    Packet::Exception(message).encode_frame(writer);
}
