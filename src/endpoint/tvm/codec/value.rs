//! Packed sequences: `i32 count`, then per value an `i32` tvm-ffi type index and a payload.

use super::{DataType, DecodeError, DecodeLimits, Device, TensorRecord, WireReader, WireSink};

/// The tvm-ffi type indices that appear on the wire (`TVMFFITypeIndex` in tvm-ffi's c_api.h).
pub struct TypeIndex;

impl TypeIndex {
    pub const NONE: i32 = 0;
    pub const INT: i32 = 1;
    pub const BOOL: i32 = 2;
    pub const FLOAT: i32 = 3;
    pub const OPAQUE_PTR: i32 = 4;
    pub const DATA_TYPE: i32 = 5;
    pub const DEVICE: i32 = 6;
    pub const DL_TENSOR_PTR: i32 = 7;
    pub const RAW_STR: i32 = 8;
    pub const BYTE_ARRAY_PTR: i32 = 9;
    pub const OBJECT_RVALUE_REF: i32 = 10;
    pub const SMALL_STR: i32 = 11;
    pub const SMALL_BYTES: i32 = 12;
    pub const UNCHANGED: i32 = 13;
    pub const OBJECT: i32 = 64;
    pub const STR: i32 = 65;
    pub const BYTES: i32 = 66;
    pub const ERROR: i32 = 67;
    pub const FUNCTION: i32 = 68;
    pub const SHAPE: i32 = 69;
    pub const TENSOR: i32 = 70;
    pub const ARRAY: i32 = 71;
    pub const MAP: i32 = 72;
    pub const MODULE: i32 = 73;
    /// `runtime.RPCObjectRef`: a reference to an object that lives on the other side.
    pub const RPC_OBJECT_REF: i32 = 115;

    /// Longest string tvm-ffi keeps inline as a SmallStr (its `kMaxSmallBytesLen`).
    pub const MAX_SMALL_STR_LEN: usize = 7;

    /// tvm-ffi's name for type indices that have one, for error messages.
    pub fn name(index: i32) -> &'static str {
        match index {
            Self::OBJECT_RVALUE_REF => "ffi.ObjectRValueRef",
            Self::UNCHANGED => "ffi.Unchanged",
            Self::OBJECT => "ffi.Object",
            Self::ERROR => "ffi.Error",
            Self::SHAPE => "ffi.Shape",
            Self::TENSOR => "ffi.Tensor object; pass a DLTensor",
            Self::ARRAY => "ffi.Array",
            Self::MAP => "ffi.Map",
            Self::MODULE => "ffi.Module",
            Self::RPC_OBJECT_REF => "runtime.RPCObjectRef",
            _ => "unknown",
        }
    }
}

/// One value of a packed sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Int(i64),
    Bool(bool),
    Float(f64),
    /// An opaque handle (OpaquePtr): function, data and stream handles travel as these.
    Handle(u64),
    DataType(DataType),
    Device(Device),
    Tensor(TensorRecord),
    Str(String),
    Bytes(Vec<u8>),
    /// A function handle of the receiving side.
    Function(u64),
    /// A module handle of the receiving side.
    Module(u64),
    /// An object reference (`runtime.RPCObjectRef`) of the receiving side.
    ObjectRef(u64),
    /// An object of the sending side that a call returned (a Shape, an Array, ...): its
    /// tvm-ffi type index and the handle the receiver passes back and frees it with. Only a
    /// CallFunc's Return carries it as such; as an argument it travels as the reference
    /// TVM's client sends for it, and decodes as [`Value::ObjectRef`].
    Object {
        type_index: i32,
        handle: u64,
    },
    /// A tensor object of the sending side that a call returned: its DLTensor view and the
    /// handle that frees it (a Return of three values). As an argument it travels as the
    /// DLTensor TVM's client sends for it, and decodes as [`Value::Tensor`].
    TensorObject {
        tensor: TensorRecord,
        handle: u64,
    },
}

impl Value {
    /// The tvm-ffi type index of this value as a function result: what TVM puts in the first
    /// slot of a CallFunc Return. Strings follow tvm-ffi's small-string rule.
    pub fn result_type_index(&self) -> i32 {
        match self {
            Value::None => TypeIndex::NONE,
            Value::Int(_) => TypeIndex::INT,
            Value::Bool(_) => TypeIndex::BOOL,
            Value::Float(_) => TypeIndex::FLOAT,
            Value::Handle(_) => TypeIndex::OPAQUE_PTR,
            Value::DataType(_) => TypeIndex::DATA_TYPE,
            Value::Device(_) => TypeIndex::DEVICE,
            Value::Tensor(_) => TypeIndex::DL_TENSOR_PTR,
            Value::Str(s) if s.len() <= TypeIndex::MAX_SMALL_STR_LEN => TypeIndex::SMALL_STR,
            Value::Str(_) => TypeIndex::STR,
            Value::Bytes(_) => TypeIndex::BYTES,
            Value::Function(_) => TypeIndex::FUNCTION,
            Value::Module(_) => TypeIndex::MODULE,
            Value::ObjectRef(_) => TypeIndex::RPC_OBJECT_REF,
            Value::Object { type_index, .. } => *type_index,
            Value::TensorObject { .. } => TypeIndex::TENSOR,
        }
    }

    /// A short description for error messages: the kind and, for scalars, the value.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Int(v) => format!("Int({v})"),
            Value::Bool(v) => format!("Bool({v})"),
            Value::Float(v) => format!("Float({v})"),
            Value::Handle(h) => format!("Handle({h:#x})"),
            Value::DataType(t) => format!("DataType({t})"),
            Value::Device(d) => format!("Device({d})"),
            Value::Tensor(t) => format!("DLTensor({} {:?})", t.dtype, t.shape),
            Value::Str(s) => format!("Str of {} bytes", s.len()),
            Value::Bytes(b) => format!("Bytes of {} bytes", b.len()),
            Value::Function(h) => format!("Function({h:#x})"),
            Value::Module(h) => format!("Module({h:#x})"),
            Value::ObjectRef(h) => format!("ObjectRef({h:#x})"),
            Value::Object { type_index, handle } => {
                format!("Object({} {handle:#x})", TypeIndex::name(*type_index))
            }
            Value::TensorObject { tensor, handle } => {
                format!("TensorObject({} {:?} {handle:#x})", tensor.dtype, tensor.shape)
            }
        }
    }

    pub(crate) fn encode(&self, w: &mut impl WireSink) {
        match self {
            Value::None => w.put_i32(TypeIndex::NONE),
            Value::Int(v) => {
                w.put_i32(TypeIndex::INT);
                w.put_i64(*v);
            }
            Value::Bool(v) => {
                w.put_i32(TypeIndex::BOOL);
                w.put_i64(i64::from(*v));
            }
            Value::Float(v) => {
                w.put_i32(TypeIndex::FLOAT);
                w.put_f64(*v);
            }
            Value::Handle(h) => {
                w.put_i32(TypeIndex::OPAQUE_PTR);
                w.put_u64(*h);
            }
            Value::DataType(t) => {
                w.put_i32(TypeIndex::DATA_TYPE);
                t.encode(w);
                w.put_u32(0); // padding to 8 bytes
            }
            Value::Device(d) => {
                w.put_i32(TypeIndex::DEVICE);
                d.encode(w);
            }
            Value::Tensor(t) => {
                w.put_i32(TypeIndex::DL_TENSOR_PTR);
                t.encode(w);
            }
            Value::Str(s) => {
                w.put_i32(TypeIndex::RAW_STR);
                w.put_u64(s.len() as u64);
                w.put(s.as_bytes());
            }
            Value::Bytes(b) => {
                w.put_i32(TypeIndex::BYTE_ARRAY_PTR);
                w.put_u64(b.len() as u64);
                w.put(b);
            }
            Value::Function(h) => {
                w.put_i32(TypeIndex::FUNCTION);
                w.put_u64(*h);
            }
            Value::Module(h) => {
                w.put_i32(TypeIndex::MODULE);
                w.put_u64(*h);
            }
            Value::ObjectRef(h) | Value::Object { handle: h, .. } => {
                w.put_i32(TypeIndex::RPC_OBJECT_REF);
                w.put_u32(TypeIndex::RPC_OBJECT_REF as u32);
                w.put_u64(*h);
            }
            Value::TensorObject { tensor, .. } => {
                w.put_i32(TypeIndex::DL_TENSOR_PTR);
                tensor.encode(w);
            }
        }
    }

    pub(crate) fn decode(
        r: &mut WireReader<'_>,
        limits: &DecodeLimits,
        position: usize,
    ) -> Result<Self, DecodeError> {
        let index = r.i32("type index")?;
        Ok(match index {
            TypeIndex::NONE => Value::None,
            TypeIndex::INT => Value::Int(r.i64("Int")?),
            TypeIndex::BOOL => Value::Bool(r.i64("Bool")? != 0),
            TypeIndex::FLOAT => Value::Float(r.f64("Float")?),
            TypeIndex::OPAQUE_PTR => Value::Handle(r.u64("OpaquePtr")?),
            TypeIndex::DATA_TYPE => {
                let t = DataType::decode(r)?;
                r.u32("DataType padding")?;
                Value::DataType(t)
            }
            TypeIndex::DEVICE => Value::Device(Device::decode(r)?),
            TypeIndex::DL_TENSOR_PTR => Value::Tensor(TensorRecord::decode(r, limits)?),
            TypeIndex::RAW_STR => Value::Str(decode_str(r, limits)?),
            TypeIndex::BYTE_ARRAY_PTR => Value::Bytes(decode_bytes(r)?.to_vec()),
            TypeIndex::SMALL_STR | TypeIndex::STR => {
                expect_inner_index(r, position, index, TypeIndex::STR)?;
                Value::Str(decode_str(r, limits)?)
            }
            TypeIndex::SMALL_BYTES | TypeIndex::BYTES => {
                expect_inner_index(r, position, index, TypeIndex::BYTES)?;
                Value::Bytes(decode_bytes(r)?.to_vec())
            }
            TypeIndex::FUNCTION => Value::Function(r.u64("Function handle")?),
            TypeIndex::MODULE => Value::Module(r.u64("Module handle")?),
            TypeIndex::RPC_OBJECT_REF => {
                expect_inner_index(r, position, index, TypeIndex::RPC_OBJECT_REF)?;
                Value::ObjectRef(r.u64("RPCObjectRef handle")?)
            }
            TypeIndex::OBJECT_RVALUE_REF
            | TypeIndex::UNCHANGED
            | TypeIndex::OBJECT
            | TypeIndex::ERROR
            | TypeIndex::SHAPE
            | TypeIndex::TENSOR
            | TypeIndex::ARRAY
            | TypeIndex::MAP => {
                return Err(DecodeError::UnsupportedTypeIndex {
                    position,
                    index,
                    name: TypeIndex::name(index),
                });
            }
            _ => return Err(DecodeError::UnknownTypeIndex { position, index }),
        })
    }
}

fn expect_inner_index(
    r: &mut WireReader<'_>,
    position: usize,
    outer: i32,
    expected: i32,
) -> Result<(), DecodeError> {
    let inner = r.u32("object type index")?;
    if inner != expected as u32 {
        return Err(DecodeError::ObjectTypeMismatch { position, outer, inner });
    }
    Ok(())
}

/// `u64 len` then `len` bytes that must be UTF-8.
pub(crate) fn decode_str(
    r: &mut WireReader<'_>,
    limits: &DecodeLimits,
) -> Result<String, DecodeError> {
    let len = r.u64("string length")?;
    if len > limits.max_string_len {
        return Err(DecodeError::StringTooLong { len, limit: limits.max_string_len });
    }
    let bytes = r.bytes(len, "string bytes")?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| DecodeError::InvalidUtf8 { what: "string argument" })
}

fn decode_bytes<'a>(r: &mut WireReader<'a>) -> Result<&'a [u8], DecodeError> {
    let len = r.u64("bytes length")?;
    r.bytes(len, "bytes")
}

/// Smallest encoding of one value (a bare type index): bounds how many values the remaining
/// bytes can hold, before anything is reserved for them.
const MIN_VALUE_BYTES: usize = 4;

/// Decodes `i32 count` and that many values.
pub fn decode_packed_seq(
    r: &mut WireReader<'_>,
    limits: &DecodeLimits,
) -> Result<Vec<Value>, DecodeError> {
    let count = r.i32("argument count")?;
    let count = usize::try_from(count).map_err(|_| DecodeError::NegativeArgCount(count))?;
    if count > limits.max_args {
        return Err(DecodeError::TooManyArgs { count, limit: limits.max_args });
    }
    let room = r.remaining() / MIN_VALUE_BYTES;
    if count > room {
        return Err(DecodeError::Truncated {
            what: "packed sequence",
            needed: (count * MIN_VALUE_BYTES) as u64,
            available: r.remaining() as u64,
        });
    }
    let mut values = Vec::with_capacity(count);
    for position in 0..count {
        values.push(Value::decode(r, limits, position)?);
    }
    Ok(values)
}

pub fn encode_packed_seq(values: &[Value], w: &mut impl WireSink) {
    w.put_i32(values.len() as i32);
    for v in values {
        v.encode(w);
    }
}
