//! The protocol engine: TVM's `RPCEndpoint::EventHandler` as a state machine with no I/O.
//!
//! Bytes go in ([`Endpoint::receive`], [`Endpoint::receive_from`]), bytes come out
//! ([`Endpoint::send_to`], [`Endpoint::output`]), and [`Endpoint::poll_event`] says what the
//! peer asked for. The endpoint decides nothing about sessions, memory or threads: whoever
//! drives it (the mio server, a user's loop, a test replaying a trace) answers each request.
//! It must not know about `mio`, the server or kernels.

pub mod codec;
pub mod ggml;
mod machine;
#[cfg(test)]
mod tests;

pub use machine::{
    DEFAULT_MAX_PACKET, Endpoint, EndpointConfig, Event, FramingError, NotAwaitingReply, Role,
};
