//! Request payloads, one typed value per command, and SET_TENSOR's header.
//!
//! Each layout's decoder and encoder sit in the same two `match`es below, arm for arm in
//! wire order, so the two cannot drift; [`Command::payload_rule`] states the fixed sizes and
//! a test checks every encoder against it.

use super::graph::{GraphLimits, GraphPayload};
use super::reader::PayloadReader;
use super::wire::LenCounter;
use super::{CONN_CAPS_LEN, Command, GgmlDecodeError, RequestHeader, RpcTensor, WireSink};

/// A decoded request. Device indices, buffer pointers and tensors are raw: the session checks
/// them against what it has. SET_TENSOR is not here: see [`SetTensorHeader`].
// Requests are decoded one at a time and handed on by value; boxing COPY_TENSOR's two
// tensors to shrink the enum would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Allocate `size` bytes on `device`; answered with the buffer's `remote_ptr` and size.
    AllocBuffer {
        device: u32,
        size: u64,
    },
    GetAlignment {
        device: u32,
    },
    GetMaxSize {
        device: u32,
    },
    /// The base address of a buffer, which tensors' `data` fields point into.
    BufferGetBase {
        remote_ptr: u64,
    },
    FreeBuffer {
        remote_ptr: u64,
    },
    /// Fill a whole buffer with `value`.
    BufferClear {
        remote_ptr: u64,
        value: u8,
    },
    /// Write the cached data whose FNV-1a hash is `hash` into `tensor` from `offset`, if the
    /// server has such data; answered with whether it had.
    SetTensorHash {
        tensor: RpcTensor,
        offset: u64,
        hash: u64,
    },
    /// Read `size` bytes of `tensor` from `offset`; answered with those bytes.
    GetTensor {
        tensor: RpcTensor,
        offset: u64,
        size: u64,
    },
    /// Copy `source`'s bytes into `destination`; answered with whether it was done.
    CopyTensor {
        source: RpcTensor,
        destination: RpcTensor,
    },
    GraphCompute(GraphPayload),
    GetDeviceMemory {
        device: u32,
    },
    /// Let the device prepare a freshly allocated tensor (padding of quantized rows).
    InitTensor {
        tensor: RpcTensor,
    },
    /// The bytes `tensor` (computed by its op from `sources`) needs in a buffer of `device`.
    GetAllocSize {
        device: u32,
        tensor: RpcTensor,
        sources: Box<[RpcTensor; RpcTensor::MAX_SOURCES]>,
    },
    /// The client's transport capabilities: all zero asks for plain TCP.
    Hello {
        conn_caps: [u8; CONN_CAPS_LEN],
    },
    DeviceCount,
    /// Run the graph last sent to `device` again.
    GraphRecompute {
        device: u32,
    },
    /// Fill `tensor`'s bytes `offset..offset + size` with `value`.
    MemsetTensor {
        tensor: RpcTensor,
        offset: u64,
        size: u64,
        value: u8,
    },
}

impl Request {
    pub fn command(&self) -> Command {
        match self {
            Request::AllocBuffer { .. } => Command::AllocBuffer,
            Request::GetAlignment { .. } => Command::GetAlignment,
            Request::GetMaxSize { .. } => Command::GetMaxSize,
            Request::BufferGetBase { .. } => Command::BufferGetBase,
            Request::FreeBuffer { .. } => Command::FreeBuffer,
            Request::BufferClear { .. } => Command::BufferClear,
            Request::SetTensorHash { .. } => Command::SetTensorHash,
            Request::GetTensor { .. } => Command::GetTensor,
            Request::CopyTensor { .. } => Command::CopyTensor,
            Request::GraphCompute(_) => Command::GraphCompute,
            Request::GetDeviceMemory { .. } => Command::GetDeviceMemory,
            Request::InitTensor { .. } => Command::InitTensor,
            Request::GetAllocSize { .. } => Command::GetAllocSize,
            Request::Hello { .. } => Command::Hello,
            Request::DeviceCount => Command::DeviceCount,
            Request::GraphRecompute { .. } => Command::GraphRecompute,
            Request::MemsetTensor { .. } => Command::MemsetTensor,
        }
    }

    /// Decodes the whole payload of `command`. The size is checked against the command's
    /// [`PayloadRule`](super::PayloadRule) first, then every field, then that nothing is left
    /// over. `limits` bounds GRAPH_COMPUTE. SET_TENSOR is refused: its data is streamed, and
    /// its header decoded by [`SetTensorHeader::decode`].
    pub fn decode(
        command: Command,
        payload: &[u8],
        limits: &GraphLimits,
    ) -> Result<Self, GgmlDecodeError> {
        command.check_payload_size(payload.len() as u64)?;
        let mut r = PayloadReader::new(command, payload);
        let r = &mut r;
        let request = match command {
            Command::AllocBuffer => {
                Request::AllocBuffer { device: r.u32("device")?, size: r.u64("size")? }
            }
            Command::GetAlignment => Request::GetAlignment { device: r.u32("device")? },
            Command::GetMaxSize => Request::GetMaxSize { device: r.u32("device")? },
            Command::BufferGetBase => Request::BufferGetBase { remote_ptr: r.u64("remote_ptr")? },
            Command::FreeBuffer => Request::FreeBuffer { remote_ptr: r.u64("remote_ptr")? },
            Command::BufferClear => {
                Request::BufferClear { remote_ptr: r.u64("remote_ptr")?, value: r.u8("value")? }
            }
            Command::SetTensor => return Err(GgmlDecodeError::StreamedCommand(command)),
            Command::SetTensorHash => Request::SetTensorHash {
                tensor: RpcTensor::read(r)?,
                offset: r.u64("offset")?,
                hash: r.u64("hash")?,
            },
            Command::GetTensor => Request::GetTensor {
                tensor: RpcTensor::read(r)?,
                offset: r.u64("offset")?,
                size: r.u64("size")?,
            },
            Command::CopyTensor => Request::CopyTensor {
                source: RpcTensor::read(r)?,
                destination: RpcTensor::read(r)?,
            },
            Command::GraphCompute => Request::GraphCompute(GraphPayload::read(r, limits)?),
            Command::GetDeviceMemory => Request::GetDeviceMemory { device: r.u32("device")? },
            Command::InitTensor => Request::InitTensor { tensor: RpcTensor::read(r)? },
            Command::GetAllocSize => {
                let device = r.u32("device")?;
                let tensor = RpcTensor::read(r)?;
                let mut sources = Box::new([RpcTensor::ABSENT; RpcTensor::MAX_SOURCES]);
                for source in sources.iter_mut() {
                    *source = RpcTensor::read(r)?;
                }
                Request::GetAllocSize { device, tensor, sources }
            }
            Command::Hello => Request::Hello { conn_caps: r.array("conn_caps")? },
            Command::DeviceCount => Request::DeviceCount,
            Command::GraphRecompute => Request::GraphRecompute { device: r.u32("device")? },
            Command::MemsetTensor => Request::MemsetTensor {
                tensor: RpcTensor::read(r)?,
                offset: r.u64("offset")?,
                size: r.u64("size")?,
                value: r.u8("value")?,
            },
        };
        r.finish()?;
        Ok(request)
    }

    /// Encodes the payload, without the header.
    pub fn encode_payload(&self, sink: &mut impl WireSink) {
        match self {
            Request::AllocBuffer { device, size } => {
                sink.put_u32(*device);
                sink.put_u64(*size);
            }
            Request::GetAlignment { device } | Request::GetMaxSize { device } => {
                sink.put_u32(*device)
            }
            Request::BufferGetBase { remote_ptr } | Request::FreeBuffer { remote_ptr } => {
                sink.put_u64(*remote_ptr)
            }
            Request::BufferClear { remote_ptr, value } => {
                sink.put_u64(*remote_ptr);
                sink.put_u8(*value);
            }
            Request::SetTensorHash { tensor, offset, hash } => {
                tensor.encode(sink);
                sink.put_u64(*offset);
                sink.put_u64(*hash);
            }
            Request::GetTensor { tensor, offset, size } => {
                tensor.encode(sink);
                sink.put_u64(*offset);
                sink.put_u64(*size);
            }
            Request::CopyTensor { source, destination } => {
                source.encode(sink);
                destination.encode(sink);
            }
            Request::GraphCompute(graph) => graph.encode(sink),
            Request::GetDeviceMemory { device } => sink.put_u32(*device),
            Request::InitTensor { tensor } => tensor.encode(sink),
            Request::GetAllocSize { device, tensor, sources } => {
                sink.put_u32(*device);
                tensor.encode(sink);
                sources.iter().for_each(|source| source.encode(sink));
            }
            Request::Hello { conn_caps } => sink.put(conn_caps),
            Request::DeviceCount => {}
            Request::GraphRecompute { device } => sink.put_u32(*device),
            Request::MemsetTensor { tensor, offset, size, value } => {
                tensor.encode(sink);
                sink.put_u64(*offset);
                sink.put_u64(*size);
                sink.put_u8(*value);
            }
        }
    }

    /// Bytes [`Request::encode_payload`] writes.
    pub fn payload_len(&self) -> u64 {
        let mut counter = LenCounter::default();
        self.encode_payload(&mut counter);
        counter.0
    }

    /// The header this request is sent with.
    pub fn header(&self) -> RequestHeader {
        RequestHeader { command: self.command(), size: self.payload_len() }
    }

    /// Encodes the whole request as a client sends it: header, then payload.
    pub fn encode(&self, sink: &mut impl WireSink) {
        self.header().encode(sink);
        self.encode_payload(sink);
    }
}

/// The fixed start of a SET_TENSOR payload: `rpc_tensor tensor | u8 cache_flag | u64 offset`.
/// The `size - LEN` bytes after it are the data for `tensor`'s bytes from `offset`, which the
/// endpoint streams into place rather than decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetTensorHeader {
    pub tensor: RpcTensor,
    /// Non-zero asks the server to keep the data in its hash cache (the client sets it on
    /// weights whose SET_TENSOR_HASH missed). Kept raw; see
    /// [`SetTensorHeader::asks_to_cache`].
    pub cache_flag: u8,
    /// Where in the tensor the data goes, in bytes.
    pub offset: u64,
}

impl SetTensorHeader {
    /// Encoded size: 296 + 1 + 8.
    pub const LEN: usize = RpcTensor::LEN + 1 + 8;

    /// Whether the client asks for the data to be cached (rpc-server reads any non-zero byte
    /// as yes).
    pub fn asks_to_cache(&self) -> bool {
        self.cache_flag != 0
    }

    /// The data bytes that follow the header in a payload of `payload_size` bytes; a payload
    /// shorter than the header is refused.
    pub fn data_len(payload_size: u64) -> Result<u64, GgmlDecodeError> {
        payload_size.checked_sub(Self::LEN as u64).ok_or(GgmlDecodeError::PayloadTooShort {
            command: Command::SetTensor,
            size: payload_size,
            minimum: Self::LEN as u64,
        })
    }

    /// Decodes exactly [`SetTensorHeader::LEN`] bytes: the first ones of the payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, GgmlDecodeError> {
        let mut r = PayloadReader::new(Command::SetTensor, bytes);
        let header = SetTensorHeader {
            tensor: RpcTensor::read(&mut r)?,
            cache_flag: r.u8("cache_flag")?,
            offset: r.u64("offset")?,
        };
        r.finish()?;
        Ok(header)
    }

    /// Splits a whole SET_TENSOR payload into its header and data (for a client, a test or a
    /// replay that holds all of it).
    pub fn split(payload: &[u8]) -> Result<(Self, &[u8]), GgmlDecodeError> {
        Self::data_len(payload.len() as u64)?;
        let (header, data) = payload.split_at(Self::LEN);
        Ok((Self::decode(header)?, data))
    }

    /// Encodes the header alone.
    pub fn encode(&self, sink: &mut impl WireSink) {
        self.tensor.encode(sink);
        sink.put_u8(self.cache_flag);
        sink.put_u64(self.offset);
    }

    /// Encodes a whole SET_TENSOR request as a client sends it: request header, this header,
    /// then `data`.
    pub fn encode_request(&self, data: &[u8], sink: &mut impl WireSink) {
        // Cannot saturate: a slice holds at most isize::MAX bytes.
        let size = (Self::LEN as u64).saturating_add(data.len() as u64);
        RequestHeader { command: Command::SetTensor, size }.encode(sink);
        self.encode(sink);
        sink.put(data);
    }
}
