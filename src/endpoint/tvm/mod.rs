//! TVM's RPC protocol ("0.8.0"): its codec and its endpoint, TVM's `RPCEndpoint::EventHandler`
//! as a state machine with no I/O, one type per side.
//!
//! Bytes go in through the [`EndpointCore`](crate::endpoint::EndpointCore) of an endpoint,
//! bytes come out of it, and `poll_event` says what the peer did: a [`ServerEndpoint`]
//! reports [`ServerEvent`]s (a client's key, its requests) and has the calls that answer them
//! (`accept`, `reply`, `reply_copy_ack`); a [`ClientEndpoint`] reports [`ClientEvent`]s (the
//! server's replies) and has the calls that make requests (`send`, `take_copy_ack`). The
//! endpoint decides nothing about sessions, memory or threads: whoever drives it (the mio
//! server, a user's loop, a test replaying a trace) answers each request.

mod client;
pub mod codec;
mod machine;
mod server;
#[cfg(test)]
mod tests;

pub use client::{Client, ClientEndpoint, ClientEvent, ClientHandshake};
pub use machine::{
    DEFAULT_MAX_PACKET, Endpoint, EndpointConfig, FramingError, NotAwaitingReply, Side,
};
pub use server::{Server, ServerEndpoint, ServerEvent, ServerHandshake};
