//! Errors of the server layer: why InitServer or a relay was refused, why the tracker link
//! dropped, why a connection closed. Their messages are what clients read (in Exceptions)
//! and what the log says.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use super::constructor::RPC_CONNECT;
use crate::endpoint::tvm::codec::PROTOCOL_VERSION;
use crate::tracker::TrackerError;

/// Why the server refused or failed something a client or the tracker asked of it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServerError {
    #[error("InitServer: the server has already been initialized")]
    AlreadyInitialized,
    #[error(
        "InitServer: client protocol version {client:?} does not match the server's \
         {PROTOCOL_VERSION:?}"
    )]
    VersionMismatch { client: String },
    #[error("InitServer: the session constructor must be named by a string, got {got}")]
    ConstructorNotNamed { got: String },
    #[error("InitServer: unknown session constructor '{0}'")]
    UnknownConstructor(String),
    /// `rpc.Connect`'s arguments are not what TVM sends.
    #[error("{RPC_CONNECT}: {0}")]
    BadRelayArguments(String),
    #[error("{RPC_CONNECT}: this server does not relay to other servers")]
    RelaysDisabled,
    #[error(
        "{RPC_CONNECT}: {open} relay sessions are open, the limit of this server; try again later"
    )]
    TooManyRelays { open: usize },
    #[error("{RPC_CONNECT} to {host}:{port} refused: that is this server itself")]
    RelayToSelf { host: String, port: u16 },
    #[error("{RPC_CONNECT} to {host}:{port} failed: {reason}")]
    RelayFailed { host: String, port: u16, reason: String },
    #[error("{request} before InitServer: the session is not initialized")]
    NotInitialized { request: &'static str },
}

/// Why the tracker link gave up its connection (it reconnects with backoff).
#[derive(Debug, Error)]
pub enum TrackerLinkError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connection attempt timed out")]
    ConnectTimeout,
    #[error("the tracker closed the connection")]
    Closed,
    #[error("the tracker stopped reading")]
    StoppedReading,
    #[error("read error: {0}")]
    Read(std::io::Error),
    #[error("write error: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    Protocol(#[from] TrackerError),
}

/// Why a connection was closed.
#[derive(Debug)]
pub enum CloseReason {
    /// The client did not complete its handshake in time.
    HandshakeTimeout,
    /// Nothing moved on the session for this long.
    IdleTimeout(Duration),
    /// The client's own `-timeout=N` ran out.
    SessionTimeout(Duration),
    /// The session ended the way its protocol ends it.
    SessionEnded,
    /// The peer closed its side.
    PeerClosed,
    /// The peer closed its side with part of a request sent.
    PeerClosedMidRequest,
    /// The peer takes no more bytes.
    PeerStoppedReading,
    ReadError(std::io::Error),
    WriteError(std::io::Error),
    /// The byte stream broke the protocol; the connection cannot go on.
    Protocol(String),
    /// The first byte is no protocol this server speaks.
    UnknownProtocol(u8),
    /// A request of the connection panicked: a bug, contained to its connection.
    InternalError,
    ServerShuttingDown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::HandshakeTimeout => write!(f, "handshake timeout"),
            CloseReason::IdleTimeout(t) => write!(f, "idle timeout ({} s)", t.as_secs_f64()),
            CloseReason::SessionTimeout(t) => {
                write!(f, "session timeout (the client's -timeout={})", t.as_secs_f64())
            }
            CloseReason::SessionEnded => write!(f, "session ended"),
            CloseReason::PeerClosed => write!(f, "peer closed"),
            CloseReason::PeerClosedMidRequest => {
                write!(f, "peer closed in the middle of a request")
            }
            CloseReason::PeerStoppedReading => write!(f, "peer stopped reading"),
            CloseReason::ReadError(e) => write!(f, "read error: {e}"),
            CloseReason::WriteError(e) => write!(f, "write error: {e}"),
            CloseReason::Protocol(message) => write!(f, "{message}"),
            CloseReason::UnknownProtocol(byte) => write!(
                f,
                "first byte {byte:#04x} begins no protocol this server speaks (TVM RPC's \
                 magic begins 0x71, ggml-RPC's HELLO 0x0e)"
            ),
            CloseReason::InternalError => write!(f, "internal error"),
            CloseReason::ServerShuttingDown => write!(f, "server shutting down"),
        }
    }
}
