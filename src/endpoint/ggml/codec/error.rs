use thiserror::Error;

use super::Command;

/// Why a ggml-RPC header or payload could not be decoded. Messages name the command, the field
/// and the value, because ggml's protocol has no error reply: this text ends up in our log when
/// the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GgmlDecodeError {
    /// A command byte outside `0..=17` (18, `RPC_CMD_NONE`, is never sent by a client).
    #[error("unknown command {0}")]
    UnknownCommand(u8),
    /// A fixed-size command whose declared payload size is not its layout's size (rpc-server's
    /// `recv_msg` refuses the same).
    #[error("payload of {command} is {size} bytes, expected {expected}")]
    PayloadSize { command: Command, size: u64, expected: u64 },
    /// A variable-size command whose payload cannot even hold its fixed part.
    #[error("payload of {command} is {size} bytes, shorter than the {minimum} its layout needs")]
    PayloadTooShort { command: Command, size: u64, minimum: u64 },
    /// A field ran past the end of the bytes given to the decoder.
    #[error("{command} payload truncated: {what} needs {needed} bytes but only {available} remain")]
    Truncated { command: Command, what: &'static str, needed: u64, available: u64 },
    /// Bytes left over after the last field. rpc-server ignores them in GRAPH_COMPUTE; a real
    /// client never sends them, so we refuse rather than guess what they mean.
    #[error("{command} payload has {count} bytes after its contents")]
    TrailingBytes { command: Command, count: u64 },
    /// A GRAPH_COMPUTE count that the payload cannot hold, checked before anything is reserved.
    #[error("GRAPH_COMPUTE declares {count} {what} but carries {payload} bytes")]
    GraphCountExceedsPayload { what: &'static str, count: u32, payload: u64 },
    /// A GRAPH_COMPUTE count above the configured [`GraphLimits`](super::GraphLimits).
    #[error("GRAPH_COMPUTE declares {count} {what}, over the limit of {limit}")]
    GraphCountOverLimit { what: &'static str, count: u32, limit: u32 },
    /// SET_TENSOR's data is streamed into its destination, never decoded as a whole: its
    /// header goes through [`SetTensorHeader`](super::SetTensorHeader).
    #[error("{0} streams its data: decode its header with SetTensorHeader")]
    StreamedCommand(Command),
    /// A reply was asked of a command that has none.
    #[error("{0} has no reply")]
    NoReply(Command),
    /// A reply whose size is not the one the client expects (its `send_rpc_cmd` refuses it).
    #[error("reply to {command} is {size} bytes, expected {expected}")]
    ReplySize { command: Command, size: u64, expected: u64 },
}
