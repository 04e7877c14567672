//! Why a ggml-RPC command or graph was refused. ggml-RPC has no error reply: the message is
//! what the log says when the connection is closed for it, so it names the command or node,
//! the tensor and the values.

use thiserror::Error;

use crate::kernels::strided::OpError;
use crate::session::SessionError;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum GgmlSessionError {
    #[error("device {0} does not exist (this server has one device, 0)")]
    NoSuchDevice(u32),
    #[error("buffer {0:#x} is not a buffer of this session (never allocated here, or freed)")]
    UnknownBuffer(u64),
    #[error("tensor '{tensor}' has no buffer but a data address {data:#x}")]
    DataWithoutBuffer { tensor: String, data: u64 },
    #[error("tensor '{tensor}' has no memory")]
    NoMemory { tensor: String },
    #[error(
        "tensor '{tensor}' at {data:#x} (+{extent} bytes) lies outside its buffer {buffer:#x} \
         [{base:#x}, {base:#x} + {size})"
    )]
    OutsideBuffer { tensor: String, data: u64, extent: u64, buffer: u64, base: u64, size: u64 },
    #[error("tensor '{tensor}': bytes [{offset}, {offset} + {len}) lie outside its {extent} bytes")]
    OutsideTensor { tensor: String, offset: u64, len: u64, extent: u64 },
    #[error("tensor '{tensor}' has type {type_id}, which is no ggml type")]
    UnknownType { tensor: String, type_id: u32 },
    /// A shape no tensor can have: rows not whole blocks, or a reach past 2^64 bytes.
    #[error("tensor '{tensor}': {why}")]
    Shape { tensor: String, why: String },
    #[error("tensor '{tensor}': {source}")]
    Layout { tensor: String, source: Box<OpError> },
    #[error(
        "COPY_TENSOR: source '{source_name}' has {source_len} bytes, more than destination '{destination}' ({destination_len})"
    )]
    CopyTooLarge { source_name: String, source_len: u64, destination: String, destination_len: u64 },
    #[error("GRAPH_RECOMPUTE without a graph to compute again")]
    NoStoredGraph,
    #[error("graph: {0}")]
    Graph(String),
    #[error("graph node {node} ('{name}'): {}", with_op(op, source))]
    Node { node: usize, name: String, op: &'static str, source: Box<OpError> },
    #[error("unsupported: {op} on {type_name}")]
    Unsupported { op: String, type_name: String },
    #[error("{0}")]
    Memory(#[from] SessionError),
    #[error("tensor cache: {0}")]
    Cache(String),
}

/// `source`'s message, led by the op's name unless it already is.
fn with_op(op: &str, source: &OpError) -> String {
    let message = source.to_string();
    match message.strip_prefix(op) {
        Some(rest) if rest.starts_with(':') => message,
        _ => format!("{op}: {message}"),
    }
}
