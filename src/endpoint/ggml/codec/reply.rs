//! Replies: `u64 size | payload`, for the commands that have one. The server encodes them;
//! the decoders are the client's side, for tests and replays.

use super::reader::PayloadReader;
use super::wire::LenCounter;
use super::{CONN_CAPS_LEN, Command, GgmlDecodeError, ReplyHeader, ReplyRule, WireSink};

/// A ggml-RPC protocol version, as HELLO's reply carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolVersion {
    pub major: u8,
    pub minor: u8,
    pub patch: u8,
}

/// The version we serve: llama.cpp 0c1e570's `RPC_PROTO_*_VERSION`.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 7, minor: 0, patch: 0 };

impl ProtocolVersion {
    /// Whether a client of [`PROTOCOL_VERSION`] accepts a server of this version: the same
    /// major, and a minor no newer than its own.
    // The rule is the client's for any minor; that ours is 0 makes half of it trivially true.
    #[allow(clippy::absurd_extreme_comparisons)]
    pub fn accepted_by_client(&self) -> bool {
        self.major == PROTOCOL_VERSION.major && self.minor <= PROTOCOL_VERSION.minor
    }
}

/// A reply, one per command that has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `u8 major | u8 minor | u8 patch | u8 padding | u8 conn_caps[24]`.
    Hello {
        version: ProtocolVersion,
        conn_caps: [u8; CONN_CAPS_LEN],
    },
    DeviceCount {
        count: u32,
    },
    /// `remote_ptr` names the buffer in later commands; (0, 0) says the allocation failed.
    AllocBuffer {
        remote_ptr: u64,
        remote_size: u64,
    },
    GetAlignment {
        alignment: u64,
    },
    GetMaxSize {
        max_size: u64,
    },
    BufferGetBase {
        base_ptr: u64,
    },
    /// Whether the cache held the data (if not, the client sends a SET_TENSOR).
    SetTensorHash {
        found: bool,
    },
    /// The bytes asked for. A server writes large ones in place after
    /// [`encode_get_tensor_reply_prefix`] instead of building this value.
    GetTensor {
        data: Vec<u8>,
    },
    /// Whether the copy was done (false lets the client fall back to its own copy).
    CopyTensor {
        copied: bool,
    },
    GetDeviceMemory {
        free: u64,
        total: u64,
    },
    GetAllocSize {
        size: u64,
    },
}

/// Writes the header of a GET_TENSOR reply of `len` bytes; the caller writes the bytes.
pub fn encode_get_tensor_reply_prefix(len: u64, sink: &mut impl WireSink) {
    ReplyHeader { size: len }.encode(sink);
}

impl Reply {
    /// The HELLO reply of a plain TCP server of [`PROTOCOL_VERSION`]: no transport upgrade.
    pub fn hello_tcp() -> Self {
        Reply::Hello { version: PROTOCOL_VERSION, conn_caps: [0; CONN_CAPS_LEN] }
    }

    /// The command this answers.
    pub fn command(&self) -> Command {
        match self {
            Reply::Hello { .. } => Command::Hello,
            Reply::DeviceCount { .. } => Command::DeviceCount,
            Reply::AllocBuffer { .. } => Command::AllocBuffer,
            Reply::GetAlignment { .. } => Command::GetAlignment,
            Reply::GetMaxSize { .. } => Command::GetMaxSize,
            Reply::BufferGetBase { .. } => Command::BufferGetBase,
            Reply::SetTensorHash { .. } => Command::SetTensorHash,
            Reply::GetTensor { .. } => Command::GetTensor,
            Reply::CopyTensor { .. } => Command::CopyTensor,
            Reply::GetDeviceMemory { .. } => Command::GetDeviceMemory,
            Reply::GetAllocSize { .. } => Command::GetAllocSize,
        }
    }

    /// Decodes the payload of the reply to `command`, as ggml's client reads it: the size must
    /// be the expected one (any size for GET_TENSOR, whose size the caller checks against its
    /// request with [`ReplyHeader::decode`]), and a result byte is true when non-zero.
    pub fn decode(command: Command, payload: &[u8]) -> Result<Self, GgmlDecodeError> {
        match command.reply_rule() {
            ReplyRule::None => return Err(GgmlDecodeError::NoReply(command)),
            ReplyRule::Exact(expected) if payload.len() as u64 != expected => {
                return Err(GgmlDecodeError::ReplySize {
                    command,
                    size: payload.len() as u64,
                    expected,
                });
            }
            ReplyRule::Exact(_) | ReplyRule::Requested => {}
        }
        let mut r = PayloadReader::new(command, payload);
        let r = &mut r;
        let reply = match command {
            Command::Hello => {
                let version = ProtocolVersion {
                    major: r.u8("major")?,
                    minor: r.u8("minor")?,
                    patch: r.u8("patch")?,
                };
                r.u8("padding")?;
                Reply::Hello { version, conn_caps: r.array("conn_caps")? }
            }
            Command::DeviceCount => Reply::DeviceCount { count: r.u32("device_count")? },
            Command::AllocBuffer => Reply::AllocBuffer {
                remote_ptr: r.u64("remote_ptr")?,
                remote_size: r.u64("remote_size")?,
            },
            Command::GetAlignment => Reply::GetAlignment { alignment: r.u64("alignment")? },
            Command::GetMaxSize => Reply::GetMaxSize { max_size: r.u64("max_size")? },
            Command::BufferGetBase => Reply::BufferGetBase { base_ptr: r.u64("base_ptr")? },
            Command::SetTensorHash => Reply::SetTensorHash { found: r.u8("result")? != 0 },
            Command::GetTensor => Reply::GetTensor { data: r.rest().to_vec() },
            Command::CopyTensor => Reply::CopyTensor { copied: r.u8("result")? != 0 },
            Command::GetDeviceMemory => {
                Reply::GetDeviceMemory { free: r.u64("free_mem")?, total: r.u64("total_mem")? }
            }
            Command::GetAllocSize => Reply::GetAllocSize { size: r.u64("alloc_size")? },
            Command::FreeBuffer
            | Command::BufferClear
            | Command::SetTensor
            | Command::GraphCompute
            | Command::InitTensor
            | Command::GraphRecompute
            | Command::MemsetTensor => return Err(GgmlDecodeError::NoReply(command)),
        };
        r.finish()?;
        Ok(reply)
    }

    /// Encodes the payload, without the size.
    pub fn encode_payload(&self, sink: &mut impl WireSink) {
        match self {
            Reply::Hello { version, conn_caps } => {
                sink.put(&[version.major, version.minor, version.patch, 0]);
                sink.put(conn_caps);
            }
            Reply::DeviceCount { count } => sink.put_u32(*count),
            Reply::AllocBuffer { remote_ptr, remote_size } => {
                sink.put_u64(*remote_ptr);
                sink.put_u64(*remote_size);
            }
            Reply::GetAlignment { alignment } => sink.put_u64(*alignment),
            Reply::GetMaxSize { max_size } => sink.put_u64(*max_size),
            Reply::BufferGetBase { base_ptr } => sink.put_u64(*base_ptr),
            Reply::SetTensorHash { found } => sink.put_u8(u8::from(*found)),
            Reply::GetTensor { data } => sink.put(data),
            Reply::CopyTensor { copied } => sink.put_u8(u8::from(*copied)),
            Reply::GetDeviceMemory { free, total } => {
                sink.put_u64(*free);
                sink.put_u64(*total);
            }
            Reply::GetAllocSize { size } => sink.put_u64(*size),
        }
    }

    /// Bytes [`Reply::encode_payload`] writes.
    pub fn payload_len(&self) -> u64 {
        let mut counter = LenCounter::default();
        self.encode_payload(&mut counter);
        counter.0
    }

    /// Encodes the whole reply: size, then payload.
    pub fn encode(&self, sink: &mut impl WireSink) {
        ReplyHeader { size: self.payload_len() }.encode(sink);
        self.encode_payload(sink);
    }
}
