//! llama.cpp's ggml-RPC protocol, version 7.0.0 (llama.cpp 0c1e570): its wire codec and the
//! server's endpoint.
//!
//! Bytes and wire types only, as for TVM's side: no socket, no clock, no kernels, no
//! knowledge of buffers or devices beyond the raw numbers a client sends.

pub mod codec;
mod server;
#[cfg(test)]
mod tests;

pub use server::{
    GgmlEndpointConfig, GgmlEvent, GgmlProtocolError, GgmlServerEndpoint, NotAwaiting,
};
