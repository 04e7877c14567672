//! Protocol engines with no I/O: bytes in, bytes out, typed events.
//!
//! [`core`] is what every protocol's endpoint is made of: the two rings, their counters and
//! the output high-water mark, with `receive_from`/`send_to` for a driver's socket. [`tvm`]
//! is TVM's RPC protocol on top of it, [`ggml`] llama.cpp's ggml-RPC. An endpoint must not
//! know about `mio`, the server or kernels: whoever drives it (the mio server, a user's
//! loop, a test replaying a trace) answers each request.

pub mod core;
pub mod ggml;
pub mod tvm;

pub use self::core::EndpointCore;
pub use tvm::{DEFAULT_MAX_PACKET, EndpointConfig, FramingError};
