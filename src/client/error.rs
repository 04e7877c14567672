use std::io;
use std::net::SocketAddr;

use thiserror::Error;

use crate::endpoint::FramingError;
use crate::session::SessionError;

/// Why a client call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("I/O error talking to {peer}: {source}")]
    Io { peer: String, source: io::Error },
    #[error("protocol error: {0}")]
    Framing(FramingError),
    #[error("the server closed the connection")]
    Closed,
    #[error("no reply from {peer} in time")]
    Timeout { peer: String },
    /// The server raised an error; its message as sent.
    #[error("remote error: {0}")]
    Remote(String),
    #[error("the server has no function '{0}'")]
    NoSuchFunction(String),
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("{0}")]
    InvalidArgument(String),
}

impl ClientError {
    pub(crate) fn io(peer: SocketAddr, source: io::Error) -> Self {
        ClientError::Io { peer: peer.to_string(), source }
    }
}

impl From<ClientError> for SessionError {
    /// A relayed request's failure, as the relay's own client reads it.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Remote(message) => SessionError::Remote(message),
            other => SessionError::Remote(format!("next hop: {other}")),
        }
    }
}
