//! The wire layout of ggml-RPC 7.0.0, written once, sans-IO.
//!
//! A request is `u8 command | u64 size | payload[size]`, a reply `u64 size | payload[size]`,
//! little-endian and packed. [`command`] holds the commands, their size rules and the two
//! headers; [`tensor`] the 296-byte `rpc_tensor`; [`messages`] every request payload as a
//! typed [`Request`] and SET_TENSOR's [`SetTensorHeader`]; [`graph`] GRAPH_COMPUTE's
//! payload; [`reply`] the replies. Each layout's encoder sits beside its decoder.
//!
//! Decoders take the bytes they decode as a slice and return a typed value or a
//! [`GgmlDecodeError`]; they never panic, and never reserve more than the bytes given justify.
//! Values stay raw (types, ops, pointers, device indices): the session validates them.
//! Encoders write into any [`WireSink`] (a `Vec<u8>`, a connection's output ring).

pub mod command;
pub mod graph;
pub mod messages;
pub mod reply;
pub mod tensor;

mod error;
mod reader;
#[cfg(test)]
mod tests;

// The little-endian sinks are protocol-neutral; they live with the TVM codec for now.
use crate::endpoint::tvm::codec::wire;
pub use wire::WireSink;

pub use command::{
    CONN_CAPS_LEN, Command, PayloadRule, REPLY_HEADER_LEN, REQUEST_HEADER_LEN, ReplyHeader,
    ReplyRule, RequestHeader,
};
pub use error::GgmlDecodeError;
pub use graph::{GraphCounts, GraphLimits, GraphPayload, GraphPeek};
pub use messages::{Request, SetTensorHeader};
pub use reply::{PROTOCOL_VERSION, ProtocolVersion, Reply, encode_get_tensor_reply_prefix};
pub use tensor::RpcTensor;
