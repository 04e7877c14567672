//! Commands and framing. A request is `u8 command | u64 size | payload[size]`; a reply, for the
//! commands that have one, is `u64 size | payload[size]`. Both little-endian, no padding.

use std::fmt;

use super::{GgmlDecodeError, RpcTensor, SetTensorHeader, WireSink};

/// Bytes of a request header: the command byte and the `u64` payload size.
pub const REQUEST_HEADER_LEN: usize = 9;

/// Bytes of a reply header: the `u64` payload size.
pub const REPLY_HEADER_LEN: usize = 8;

/// Bytes of HELLO's `conn_caps` (ggml's `RPC_CONN_CAPS_SIZE`): transport capabilities, all zero
/// for plain TCP.
pub const CONN_CAPS_LEN: usize = 24;

/// ggml's `enum rpc_cmd`, as the byte that starts every request. `RPC_CMD_NONE` (18) is the
/// client's own placeholder and never sent, so it is not a command here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    AllocBuffer = 0,
    GetAlignment = 1,
    GetMaxSize = 2,
    BufferGetBase = 3,
    FreeBuffer = 4,
    BufferClear = 5,
    SetTensor = 6,
    SetTensorHash = 7,
    GetTensor = 8,
    CopyTensor = 9,
    GraphCompute = 10,
    GetDeviceMemory = 11,
    InitTensor = 12,
    GetAllocSize = 13,
    /// Pinned at 14 in every protocol version: the first command of a connection.
    Hello = 14,
    DeviceCount = 15,
    GraphRecompute = 16,
    MemsetTensor = 17,
}

/// How many bytes a command's request payload may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadRule {
    /// Exactly this many: rpc-server's `recv_msg` refuses any other size.
    Exact(u64),
    /// At least this many (the fixed part of the layout); the rest depends on the contents.
    AtLeast(u64),
}

/// What the server sends back for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyRule {
    /// Nothing: the client does not wait.
    None,
    /// A payload of exactly this many bytes: the client refuses any other size.
    Exact(u64),
    /// As many bytes as the request asked for (GET_TENSOR's `size`).
    Requested,
}

impl Command {
    /// Every command, in wire order: `ALL[n]` is the command whose byte is `n`.
    pub const ALL: [Command; 18] = [
        Command::AllocBuffer,
        Command::GetAlignment,
        Command::GetMaxSize,
        Command::BufferGetBase,
        Command::FreeBuffer,
        Command::BufferClear,
        Command::SetTensor,
        Command::SetTensorHash,
        Command::GetTensor,
        Command::CopyTensor,
        Command::GraphCompute,
        Command::GetDeviceMemory,
        Command::InitTensor,
        Command::GetAllocSize,
        Command::Hello,
        Command::DeviceCount,
        Command::GraphRecompute,
        Command::MemsetTensor,
    ];

    /// The command whose byte is `byte`, `None` for 18 and above.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Self::ALL.get(usize::from(byte)).copied()
    }

    /// The byte that stands for this command on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// ggml's name without the `RPC_CMD_` prefix, as its logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Command::AllocBuffer => "ALLOC_BUFFER",
            Command::GetAlignment => "GET_ALIGNMENT",
            Command::GetMaxSize => "GET_MAX_SIZE",
            Command::BufferGetBase => "BUFFER_GET_BASE",
            Command::FreeBuffer => "FREE_BUFFER",
            Command::BufferClear => "BUFFER_CLEAR",
            Command::SetTensor => "SET_TENSOR",
            Command::SetTensorHash => "SET_TENSOR_HASH",
            Command::GetTensor => "GET_TENSOR",
            Command::CopyTensor => "COPY_TENSOR",
            Command::GraphCompute => "GRAPH_COMPUTE",
            Command::GetDeviceMemory => "GET_DEVICE_MEMORY",
            Command::InitTensor => "INIT_TENSOR",
            Command::GetAllocSize => "GET_ALLOC_SIZE",
            Command::Hello => "HELLO",
            Command::DeviceCount => "DEVICE_COUNT",
            Command::GraphRecompute => "GRAPH_RECOMPUTE",
            Command::MemsetTensor => "MEMSET_TENSOR",
        }
    }

    /// The payload size a request of this command may declare. The sizes are those of the
    /// layouts in [`Request`](super::Request); a test checks each against its encoder.
    pub fn payload_rule(self) -> PayloadRule {
        const TENSOR: u64 = RpcTensor::LEN as u64;
        const DEVICE: u64 = 4;
        match self {
            Command::AllocBuffer => PayloadRule::Exact(DEVICE + 8),
            Command::GetAlignment | Command::GetMaxSize | Command::GetDeviceMemory => {
                PayloadRule::Exact(DEVICE)
            }
            Command::GraphRecompute => PayloadRule::Exact(DEVICE),
            Command::BufferGetBase | Command::FreeBuffer => PayloadRule::Exact(8),
            Command::BufferClear => PayloadRule::Exact(8 + 1),
            Command::SetTensor => PayloadRule::AtLeast(SetTensorHeader::LEN as u64),
            Command::SetTensorHash | Command::GetTensor => PayloadRule::Exact(TENSOR + 8 + 8),
            Command::CopyTensor => PayloadRule::Exact(2 * TENSOR),
            // device, n_nodes and n_tensors: a graph of no nodes and no tensors.
            Command::GraphCompute => PayloadRule::AtLeast(4 + 4 + 4),
            Command::InitTensor => PayloadRule::Exact(TENSOR),
            Command::GetAllocSize => {
                PayloadRule::Exact(DEVICE + TENSOR + RpcTensor::MAX_SOURCES as u64 * TENSOR)
            }
            Command::Hello => PayloadRule::Exact(CONN_CAPS_LEN as u64),
            Command::DeviceCount => PayloadRule::Exact(0),
            Command::MemsetTensor => PayloadRule::Exact(TENSOR + 8 + 8 + 1),
        }
    }

    /// What the server answers; the sizes are those of [`Reply`](super::Reply)'s layouts.
    pub fn reply_rule(self) -> ReplyRule {
        match self {
            Command::AllocBuffer | Command::GetDeviceMemory => ReplyRule::Exact(8 + 8),
            Command::GetAlignment
            | Command::GetMaxSize
            | Command::BufferGetBase
            | Command::GetAllocSize => ReplyRule::Exact(8),
            Command::SetTensorHash | Command::CopyTensor => ReplyRule::Exact(1),
            Command::GetTensor => ReplyRule::Requested,
            Command::Hello => ReplyRule::Exact(4 + CONN_CAPS_LEN as u64),
            Command::DeviceCount => ReplyRule::Exact(4),
            Command::FreeBuffer
            | Command::BufferClear
            | Command::SetTensor
            | Command::GraphCompute
            | Command::InitTensor
            | Command::GraphRecompute
            | Command::MemsetTensor => ReplyRule::None,
        }
    }

    /// Whether the client waits for a reply to this command (replies come back in order).
    pub fn has_reply(self) -> bool {
        self.reply_rule() != ReplyRule::None
    }

    /// Whether the payload is streamed rather than decoded whole: SET_TENSOR's data goes
    /// straight into its destination after [`SetTensorHeader`].
    pub fn streams_payload(self) -> bool {
        self == Command::SetTensor
    }

    /// Checks a declared payload size against [`Command::payload_rule`].
    pub fn check_payload_size(self, size: u64) -> Result<(), GgmlDecodeError> {
        match self.payload_rule() {
            PayloadRule::Exact(expected) if size != expected => {
                Err(GgmlDecodeError::PayloadSize { command: self, size, expected })
            }
            PayloadRule::AtLeast(minimum) if size < minimum => {
                Err(GgmlDecodeError::PayloadTooShort { command: self, size, minimum })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 9 bytes before every request payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub command: Command,
    /// Payload bytes that follow.
    pub size: u64,
}

impl RequestHeader {
    /// Decodes a header and checks its size against the command's [`PayloadRule`], so a
    /// fixed-size command that declares another size is refused before its payload is read.
    /// The size of a variable command is only checked against its minimum: bounding it is the
    /// caller's business (a SET_TENSOR may legitimately carry gigabytes).
    pub fn decode(bytes: &[u8; REQUEST_HEADER_LEN]) -> Result<Self, GgmlDecodeError> {
        let [byte, size @ ..] = *bytes;
        let command = Command::from_u8(byte).ok_or(GgmlDecodeError::UnknownCommand(byte))?;
        let size = u64::from_le_bytes(size);
        command.check_payload_size(size)?;
        Ok(RequestHeader { command, size })
    }

    pub fn encode(&self, sink: &mut impl WireSink) {
        sink.put_u8(self.command.as_u8());
        sink.put_u64(self.size);
    }

    pub fn to_bytes(&self) -> [u8; REQUEST_HEADER_LEN] {
        let mut bytes = [0; REQUEST_HEADER_LEN];
        bytes[0] = self.command.as_u8();
        bytes[1..].copy_from_slice(&self.size.to_le_bytes());
        bytes
    }
}

/// The 8 bytes before a reply payload, as the client reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub size: u64,
}

impl ReplyHeader {
    /// Decodes the header of the reply to `command`, refusing a size other than the one the
    /// client expects. For GET_TENSOR the expected size is the request's; pass it as
    /// `requested` (it is ignored for other commands).
    pub fn decode(
        command: Command,
        requested: u64,
        bytes: &[u8; REPLY_HEADER_LEN],
    ) -> Result<Self, GgmlDecodeError> {
        let size = u64::from_le_bytes(*bytes);
        let expected = match command.reply_rule() {
            ReplyRule::None => return Err(GgmlDecodeError::NoReply(command)),
            ReplyRule::Exact(expected) => expected,
            ReplyRule::Requested => requested,
        };
        if size != expected {
            return Err(GgmlDecodeError::ReplySize { command, size, expected });
        }
        Ok(ReplyHeader { size })
    }

    pub fn encode(&self, sink: &mut impl WireSink) {
        sink.put_u64(self.size);
    }
}
