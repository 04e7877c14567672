//! TVM's tracker protocol: the message format ([`message`]) and a server's registration
//! ([`Registration`]), both without I/O.
//!
//! The server's mio loop drives a [`Registration`] on a non-blocking socket; the client
//! uses [`message`] on a blocking one to ask the tracker for a server. This module knows
//! nothing of sockets, sessions or the event loop.

pub mod message;
mod registration;

pub use message::{
    Assignment, QueueInfo, Request, ServerInfo, Summary, TRACKER_MAGIC, TrackerError,
};
pub use registration::{Registration, RegistrationConfig, TrackerSessions};
