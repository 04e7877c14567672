//! tensor-rpc: a TVM-RPC-compatible runtime for remote tensor compute.
pub mod client;
pub mod endpoint;
pub mod kernels;
mod readiness;
pub mod ringbuf;
pub mod server;
pub mod session;
pub mod tracker;
