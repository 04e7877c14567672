//! `rpc_tensor`: how a ggml tensor travels, 296 packed little-endian bytes.
//!
//! | offset | field | C type |
//! |---:|---|---|
//! | 0 | `id` | `u64` |
//! | 8 | `type` | `u32` |
//! | 12 | `buffer` | `u64` |
//! | 20 | `ne[4]` | `u32` |
//! | 36 | `nb[4]` | `u32` |
//! | 52 | `op` | `u32` |
//! | 56 | `op_params[16]` | `i32` |
//! | 120 | `flags` | `i32` |
//! | 124 | `src[10]` | `u64` |
//! | 204 | `view_src` | `u64` |
//! | 212 | `view_offs` | `u64` |
//! | 220 | `data` | `u64` |
//! | 228 | `name[64]` | `char` |
//! | 292 | `use_count` | `i32` |
//!
//! Values are kept raw: whether a type, op, shape or address makes sense is the session's
//! decision, made against its own buffers.

use std::borrow::Cow;
use std::fmt;

use super::reader::PayloadReader;
use super::{GgmlDecodeError, WireSink};

/// One tensor as the client describes it. Ids (`id`, `sources`, `view_source`) are the client's
/// own addresses of its tensors: names within a message, never dereferenced.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcTensor {
    /// The client's address of this tensor (`id`); 0 stands for "no tensor".
    pub id: u64,
    /// `enum ggml_type`, unvalidated.
    pub ggml_type: u32,
    /// The `remote_ptr` of the buffer holding the data (as ALLOC_BUFFER handed it out), 0 if
    /// the tensor is not in one of our buffers.
    pub buffer: u64,
    /// Elements per dimension, innermost first (ggml's `ne`).
    pub shape: [u32; RpcTensor::MAX_DIMS],
    /// Byte stride of each dimension (ggml's `nb`): `byte_strides[0]` is the size of one
    /// element (or block, for quantized types).
    pub byte_strides: [u32; RpcTensor::MAX_DIMS],
    /// `enum ggml_op` that computes this tensor, unvalidated.
    pub op: u32,
    /// The op's parameters; floats are stored bit-cast (see [`RpcTensor::op_param_f32`]).
    pub op_params: [i32; RpcTensor::OP_PARAMS],
    /// `GGML_TENSOR_FLAG_*` bits (16 is COMPUTE: the node is to be computed).
    pub flags: i32,
    /// Ids of the op's operands (`src`), 0 for unused slots.
    pub sources: [u64; RpcTensor::MAX_SOURCES],
    /// Id of the tensor this one is a view of (`view_src`), 0 if it is not a view.
    pub view_source: u64,
    /// Byte offset of the view within `view_source` (`view_offs`).
    pub view_offset: u64,
    /// Address of the first byte, inside the base range BUFFER_GET_BASE gave for `buffer`.
    pub data: u64,
    /// NUL-terminated name (ggml truncates to 63 bytes); see [`RpcTensor::name_str`].
    pub name: [u8; RpcTensor::NAME_LEN],
    /// How many graph nodes read this one (set in GRAPH_COMPUTE, 0 elsewhere).
    pub use_count: i32,
}

impl RpcTensor {
    /// Encoded size: `sizeof(rpc_tensor)`.
    pub const LEN: usize = 296;
    /// `GGML_MAX_DIMS`.
    pub const MAX_DIMS: usize = 4;
    /// `GGML_MAX_SRC`.
    pub const MAX_SOURCES: usize = 10;
    /// `GGML_MAX_OP_PARAMS / sizeof(int32_t)`.
    pub const OP_PARAMS: usize = 16;
    /// `GGML_MAX_NAME`.
    pub const NAME_LEN: usize = 64;

    /// All zeros: what ggml sends for a missing tensor (an unused GET_ALLOC_SIZE source).
    pub const ABSENT: RpcTensor = RpcTensor {
        id: 0,
        ggml_type: 0,
        buffer: 0,
        shape: [0; Self::MAX_DIMS],
        byte_strides: [0; Self::MAX_DIMS],
        op: 0,
        op_params: [0; Self::OP_PARAMS],
        flags: 0,
        sources: [0; Self::MAX_SOURCES],
        view_source: 0,
        view_offset: 0,
        data: 0,
        name: [0; Self::NAME_LEN],
        use_count: 0,
    };

    /// Whether this stands for no tensor: rpc-server skips a source whose id is 0.
    pub fn is_absent(&self) -> bool {
        self.id == 0
    }

    /// The name up to its first NUL (all 64 bytes if there is none), invalid UTF-8 replaced.
    pub fn name_str(&self) -> Cow<'_, str> {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..len])
    }

    /// Sets the name as ggml's client does: at most 63 bytes, NUL-padded.
    pub fn set_name(&mut self, name: &str) {
        let len = name.len().min(Self::NAME_LEN - 1);
        self.name = [0; Self::NAME_LEN];
        self.name[..len].copy_from_slice(&name.as_bytes()[..len]);
    }

    /// The op parameters as the 64 bytes ggml keeps them in (little-endian `i32`s); ops that
    /// store wider or packed values read them from here.
    pub fn op_params_bytes(&self) -> [u8; Self::OP_PARAMS * 4] {
        let mut bytes = [0; Self::OP_PARAMS * 4];
        for (chunk, param) in bytes.chunks_exact_mut(4).zip(self.op_params) {
            chunk.copy_from_slice(&param.to_le_bytes());
        }
        bytes
    }

    /// Parameter `index` as an `i32`, `None` past the 16th.
    pub fn op_param_i32(&self, index: usize) -> Option<i32> {
        self.op_params.get(index).copied()
    }

    /// Parameter `index` read as the `f32` ggml bit-cast into it (scales, epsilons, ...).
    pub fn op_param_f32(&self, index: usize) -> Option<f32> {
        self.op_param_i32(index).map(|bits| f32::from_bits(bits as u32))
    }

    /// The used source slots: `(slot, id)` for every non-zero `sources` entry.
    pub fn present_sources(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.sources.iter().copied().enumerate().filter(|&(_, id)| id != 0)
    }

    pub(super) fn read(r: &mut PayloadReader<'_>) -> Result<Self, GgmlDecodeError> {
        Ok(RpcTensor {
            id: r.u64("tensor id")?,
            ggml_type: r.u32("tensor type")?,
            buffer: r.u64("tensor buffer")?,
            shape: r.u32s("tensor ne")?,
            byte_strides: r.u32s("tensor nb")?,
            op: r.u32("tensor op")?,
            op_params: r.i32s("tensor op_params")?,
            flags: r.i32("tensor flags")?,
            sources: r.u64s("tensor src")?,
            view_source: r.u64("tensor view_src")?,
            view_offset: r.u64("tensor view_offs")?,
            data: r.u64("tensor data")?,
            name: r.array("tensor name")?,
            use_count: r.i32("tensor use_count")?,
        })
    }

    pub fn encode(&self, sink: &mut impl WireSink) {
        sink.put_u64(self.id);
        sink.put_u32(self.ggml_type);
        sink.put_u64(self.buffer);
        self.shape.iter().for_each(|&n| sink.put_u32(n));
        self.byte_strides.iter().for_each(|&n| sink.put_u32(n));
        sink.put_u32(self.op);
        self.op_params.iter().for_each(|&p| sink.put_i32(p));
        sink.put_i32(self.flags);
        self.sources.iter().for_each(|&id| sink.put_u64(id));
        sink.put_u64(self.view_source);
        sink.put_u64(self.view_offset);
        sink.put_u64(self.data);
        sink.put(&self.name);
        sink.put_i32(self.use_count);
    }
}

impl Default for RpcTensor {
    fn default() -> Self {
        Self::ABSENT
    }
}

impl fmt::Debug for RpcTensor {
    /// The name as text, and only the used source slots: a graph's worth of tensors stays
    /// readable in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcTensor")
            .field("id", &format_args!("{:#x}", self.id))
            .field("name", &self.name_str())
            .field("ggml_type", &self.ggml_type)
            .field("op", &self.op)
            .field("shape", &self.shape)
            .field("byte_strides", &self.byte_strides)
            .field("buffer", &format_args!("{:#x}", self.buffer))
            .field("data", &format_args!("{:#x}", self.data))
            .field("op_params", &self.op_params)
            .field("flags", &self.flags)
            .field("sources", &self.present_sources().collect::<Vec<_>>())
            .field("view_source", &format_args!("{:#x}", self.view_source))
            .field("view_offset", &self.view_offset)
            .field("use_count", &self.use_count)
            .finish()
    }
}
