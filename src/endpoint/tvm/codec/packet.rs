//! Packets by RPC code. A packet on the wire is `u64 nbytes` then `nbytes` bytes of body; the
//! body starts with the `i32` code. This module encodes and decodes bodies; the endpoint
//! handles the length prefix.

use std::borrow::Cow;

use super::value::{decode_packed_seq, decode_str, encode_packed_seq};
use super::wire::LenCounter;
use super::{
    DataType, DecodeError, DecodeLimits, Device, DeviceAttrKind, TensorRecord, TypeIndex, Value,
    WireReader, WireSink,
};

/// The RPC codes of TVM's `RPCCode`. Codes from [`RpcCode::GetGlobalFunc`] on are syscalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum RpcCode {
    None = 0,
    Shutdown = 1,
    InitServer = 2,
    CallFunc = 3,
    Return = 4,
    Exception = 5,
    CopyFromRemote = 6,
    CopyToRemote = 7,
    CopyAck = 8,
    GetGlobalFunc = 9,
    FreeHandle = 10,
    DevSetDevice = 11,
    DevGetAttr = 12,
    DevAllocData = 13,
    DevFreeData = 14,
    DevStreamSync = 15,
    CopyAmongRemote = 16,
    DevAllocDataWithScope = 17,
    DevCreateStream = 18,
    DevFreeStream = 19,
    DevSetStream = 20,
    DevGetCurrentStream = 21,
}

impl RpcCode {
    pub fn from_i32(code: i32) -> Option<Self> {
        use RpcCode::*;
        const ALL: [RpcCode; 22] = [
            None,
            Shutdown,
            InitServer,
            CallFunc,
            Return,
            Exception,
            CopyFromRemote,
            CopyToRemote,
            CopyAck,
            GetGlobalFunc,
            FreeHandle,
            DevSetDevice,
            DevGetAttr,
            DevAllocData,
            DevFreeData,
            DevStreamSync,
            CopyAmongRemote,
            DevAllocDataWithScope,
            DevCreateStream,
            DevFreeStream,
            DevSetStream,
            DevGetCurrentStream,
        ];
        usize::try_from(code).ok().and_then(|i| ALL.get(i).copied())
    }

    pub fn name(self) -> &'static str {
        use RpcCode::*;
        match self {
            None => "None",
            Shutdown => "Shutdown",
            InitServer => "InitServer",
            CallFunc => "CallFunc",
            Return => "Return",
            Exception => "Exception",
            CopyFromRemote => "CopyFromRemote",
            CopyToRemote => "CopyToRemote",
            CopyAck => "CopyAck",
            GetGlobalFunc => "GetGlobalFunc",
            FreeHandle => "FreeHandle",
            DevSetDevice => "DevSetDevice",
            DevGetAttr => "DevGetAttr",
            DevAllocData => "DevAllocData",
            DevFreeData => "DevFreeData",
            DevStreamSync => "DevStreamSync",
            CopyAmongRemote => "CopyAmongRemote",
            DevAllocDataWithScope => "DevAllocDataWithScope",
            DevCreateStream => "DevCreateStream",
            DevFreeStream => "DevFreeStream",
            DevSetStream => "DevSetStream",
            DevGetCurrentStream => "DevGetCurrentStream",
        }
    }
}

/// The syscalls: each a packed sequence of fixed shape, answered by a Return of one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Syscall {
    /// Answered with a function handle, 0 when no such function exists.
    GetGlobalFunc {
        name: String,
    },
    FreeHandle {
        handle: u64,
    },
    DevSetDevice {
        device: Device,
    },
    DevGetAttr {
        device: Device,
        kind: DeviceAttrKind,
    },
    DevAllocData {
        device: Device,
        nbytes: i64,
        alignment: i64,
        dtype: DataType,
    },
    DevFreeData {
        device: Device,
        data: u64,
    },
    DevStreamSync {
        device: Device,
        stream: u64,
    },
    CopyAmongRemote {
        from: TensorRecord,
        to: TensorRecord,
        stream: u64,
    },
    /// `tensor.data` is 0; `scope` None means global memory.
    DevAllocDataWithScope {
        tensor: TensorRecord,
        scope: Option<String>,
    },
    DevCreateStream {
        device: Device,
    },
    DevFreeStream {
        device: Device,
        stream: u64,
    },
    DevSetStream {
        device: Device,
        stream: u64,
    },
    DevGetCurrentStream {
        device: Device,
    },
}

impl Syscall {
    pub fn code(&self) -> RpcCode {
        match self {
            Syscall::GetGlobalFunc { .. } => RpcCode::GetGlobalFunc,
            Syscall::FreeHandle { .. } => RpcCode::FreeHandle,
            Syscall::DevSetDevice { .. } => RpcCode::DevSetDevice,
            Syscall::DevGetAttr { .. } => RpcCode::DevGetAttr,
            Syscall::DevAllocData { .. } => RpcCode::DevAllocData,
            Syscall::DevFreeData { .. } => RpcCode::DevFreeData,
            Syscall::DevStreamSync { .. } => RpcCode::DevStreamSync,
            Syscall::CopyAmongRemote { .. } => RpcCode::CopyAmongRemote,
            Syscall::DevAllocDataWithScope { .. } => RpcCode::DevAllocDataWithScope,
            Syscall::DevCreateStream { .. } => RpcCode::DevCreateStream,
            Syscall::DevFreeStream { .. } => RpcCode::DevFreeStream,
            Syscall::DevSetStream { .. } => RpcCode::DevSetStream,
            Syscall::DevGetCurrentStream { .. } => RpcCode::DevGetCurrentStream,
        }
    }

    /// The syscall's arguments as the packed sequence that carries them.
    pub fn args(&self) -> Vec<Value> {
        use Value as V;
        match self {
            Syscall::GetGlobalFunc { name } => vec![V::Str(name.clone())],
            Syscall::FreeHandle { handle } => vec![V::Handle(*handle)],
            Syscall::DevSetDevice { device } => vec![V::Device(*device)],
            Syscall::DevGetAttr { device, kind } => vec![V::Device(*device), V::Int(kind.0)],
            Syscall::DevAllocData { device, nbytes, alignment, dtype } => {
                vec![V::Device(*device), V::Int(*nbytes), V::Int(*alignment), V::DataType(*dtype)]
            }
            Syscall::DevFreeData { device, data } => vec![V::Device(*device), V::Handle(*data)],
            Syscall::DevStreamSync { device, stream }
            | Syscall::DevFreeStream { device, stream }
            | Syscall::DevSetStream { device, stream } => {
                vec![V::Device(*device), V::Handle(*stream)]
            }
            Syscall::CopyAmongRemote { from, to, stream } => {
                vec![V::Tensor(from.clone()), V::Tensor(to.clone()), V::Handle(*stream)]
            }
            Syscall::DevAllocDataWithScope { tensor, scope } => vec![
                V::Tensor(tensor.clone()),
                scope.as_ref().map_or(V::None, |s| V::Str(s.clone())),
            ],
            Syscall::DevCreateStream { device } | Syscall::DevGetCurrentStream { device } => {
                vec![V::Device(*device)]
            }
        }
    }

    fn decode(code: RpcCode, args: Vec<Value>) -> Result<Self, DecodeError> {
        use Value as V;
        /// A handle argument: TVM sends a null handle either as OpaquePtr 0 or as None.
        fn handle(v: &Value) -> Option<u64> {
            match v {
                V::Handle(h) => Some(*h),
                V::None => Some(0),
                _ => None,
            }
        }
        let bad = |expected: &'static str| DecodeError::BadArguments {
            call: code.name(),
            expected,
            got: describe_all(&args),
        };
        let call = match code {
            RpcCode::GetGlobalFunc => match args.as_slice() {
                [V::Str(name)] => Syscall::GetGlobalFunc { name: name.clone() },
                _ => return Err(bad("[Str name]")),
            },
            RpcCode::FreeHandle => match args.as_slice() {
                [h] if handle(h).is_some() => {
                    Syscall::FreeHandle { handle: handle(h).unwrap_or(0) }
                }
                _ => return Err(bad("[Handle]")),
            },
            RpcCode::DevSetDevice => match args.as_slice() {
                [V::Device(device)] => Syscall::DevSetDevice { device: *device },
                _ => return Err(bad("[Device]")),
            },
            RpcCode::DevGetAttr => match args.as_slice() {
                [V::Device(device), V::Int(kind)] => {
                    Syscall::DevGetAttr { device: *device, kind: DeviceAttrKind(*kind) }
                }
                _ => return Err(bad("[Device, Int kind]")),
            },
            RpcCode::DevAllocData => match args.as_slice() {
                [V::Device(device), V::Int(nbytes), V::Int(alignment), V::DataType(dtype)] => {
                    Syscall::DevAllocData {
                        device: *device,
                        nbytes: *nbytes,
                        alignment: *alignment,
                        dtype: *dtype,
                    }
                }
                _ => return Err(bad("[Device, Int nbytes, Int alignment, DataType]")),
            },
            RpcCode::DevFreeData => match args.as_slice() {
                [V::Device(device), h] if handle(h).is_some() => {
                    Syscall::DevFreeData { device: *device, data: handle(h).unwrap_or(0) }
                }
                _ => return Err(bad("[Device, Handle data]")),
            },
            RpcCode::DevStreamSync | RpcCode::DevFreeStream | RpcCode::DevSetStream => {
                match args.as_slice() {
                    [V::Device(device), h] if handle(h).is_some() => {
                        let (device, stream) = (*device, handle(h).unwrap_or(0));
                        match code {
                            RpcCode::DevStreamSync => Syscall::DevStreamSync { device, stream },
                            RpcCode::DevFreeStream => Syscall::DevFreeStream { device, stream },
                            _ => Syscall::DevSetStream { device, stream },
                        }
                    }
                    _ => return Err(bad("[Device, Handle stream]")),
                }
            }
            RpcCode::CopyAmongRemote => match args.as_slice() {
                [V::Tensor(from), V::Tensor(to), h] if handle(h).is_some() => {
                    Syscall::CopyAmongRemote {
                        from: from.clone(),
                        to: to.clone(),
                        stream: handle(h).unwrap_or(0),
                    }
                }
                _ => return Err(bad("[DLTensor from, DLTensor to, Handle stream]")),
            },
            RpcCode::DevAllocDataWithScope => match args.as_slice() {
                [V::Tensor(tensor), V::None] => {
                    Syscall::DevAllocDataWithScope { tensor: tensor.clone(), scope: None }
                }
                [V::Tensor(tensor), V::Str(scope)] => Syscall::DevAllocDataWithScope {
                    tensor: tensor.clone(),
                    scope: Some(scope.clone()),
                },
                _ => return Err(bad("[DLTensor, Str scope or None]")),
            },
            RpcCode::DevCreateStream | RpcCode::DevGetCurrentStream => match args.as_slice() {
                [V::Device(device)] => {
                    if code == RpcCode::DevCreateStream {
                        Syscall::DevCreateStream { device: *device }
                    } else {
                        Syscall::DevGetCurrentStream { device: *device }
                    }
                }
                _ => return Err(bad("[Device]")),
            },
            // Only syscall codes reach here; refuse anything else rather than trust the caller.
            other => return Err(DecodeError::UnknownCode(other as i32)),
        };
        Ok(call)
    }
}

fn describe_all(values: &[Value]) -> String {
    let parts: Vec<String> = values.iter().map(Value::describe).collect();
    format!("[{}]", parts.join(", "))
}

/// One packet body, decoded. Borrows the bulk bytes of copies from the buffer it was decoded
/// from; [`Packet::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet<'a> {
    Shutdown,
    /// The client's protocol version and the session constructor (empty: a local session).
    InitServer {
        version: String,
        args: Vec<Value>,
    },
    CallFunc {
        function: u64,
        args: Vec<Value>,
    },
    Return(Vec<Value>),
    Exception(String),
    CopyFromRemote {
        source: TensorRecord,
        nbytes: u64,
    },
    CopyToRemote {
        target: TensorRecord,
        data: Cow<'a, [u8]>,
    },
    CopyAck(Cow<'a, [u8]>),
    Syscall(Syscall),
}

impl<'a> Packet<'a> {
    /// The Return of a syscall or copy that produces nothing: `[None]`.
    pub fn return_void() -> Packet<'static> {
        Packet::Return(vec![Value::None])
    }

    /// The Return of a CallFunc: `[Int(type index of the result), result]`, where functions,
    /// modules and objects travel as opaque handles, and a tensor object as
    /// `[Int(70), DLTensor, handle]` (TVM's `LocalSession::EncodeReturn`).
    pub fn call_return(result: Value) -> Packet<'static> {
        let type_index = Value::Int(i64::from(result.result_type_index()));
        match result {
            Value::Function(h)
            | Value::Module(h)
            | Value::ObjectRef(h)
            | Value::Object { handle: h, .. } => Packet::Return(vec![type_index, Value::Handle(h)]),
            Value::TensorObject { tensor, handle } => {
                Packet::Return(vec![type_index, Value::Tensor(tensor), Value::Handle(handle)])
            }
            other => Packet::Return(vec![type_index, other]),
        }
    }

    /// Reads a CallFunc's Return back into the result value ([`Packet::call_return`] inverted).
    pub fn call_result(values: Vec<Value>) -> Result<Value, DecodeError> {
        let mut values = values.into_iter();
        match (values.next(), values.next(), values.next(), values.next()) {
            (Some(Value::Int(type_index)), Some(value), None, None) => {
                Ok(match (i32::try_from(type_index), value) {
                    (Ok(TypeIndex::FUNCTION), Value::Handle(h)) => Value::Function(h),
                    (Ok(TypeIndex::MODULE), Value::Handle(h)) => Value::Module(h),
                    (Ok(type_index), Value::Handle(handle))
                        if type_index >= TypeIndex::OBJECT
                            && !matches!(
                                type_index,
                                TypeIndex::STR | TypeIndex::BYTES | TypeIndex::TENSOR
                            ) =>
                    {
                        Value::Object { type_index, handle }
                    }
                    (_, value) => value,
                })
            }
            (
                Some(Value::Int(type_index)),
                Some(Value::Tensor(tensor)),
                Some(Value::Handle(handle)),
                None,
            ) if matches!(
                i32::try_from(type_index),
                Ok(TypeIndex::TENSOR | TypeIndex::DL_TENSOR_PTR)
            ) =>
            {
                Ok(Value::TensorObject { tensor, handle })
            }
            _ => Err(DecodeError::BadArguments {
                call: "Return",
                expected: "[Int type index, value] or [Int 70, DLTensor, handle]",
                got: "another shape".into(),
            }),
        }
    }

    pub fn code(&self) -> RpcCode {
        match self {
            Packet::Shutdown => RpcCode::Shutdown,
            Packet::InitServer { .. } => RpcCode::InitServer,
            Packet::CallFunc { .. } => RpcCode::CallFunc,
            Packet::Return(_) => RpcCode::Return,
            Packet::Exception(_) => RpcCode::Exception,
            Packet::CopyFromRemote { .. } => RpcCode::CopyFromRemote,
            Packet::CopyToRemote { .. } => RpcCode::CopyToRemote,
            Packet::CopyAck(_) => RpcCode::CopyAck,
            Packet::Syscall(call) => call.code(),
        }
    }

    pub fn into_owned(self) -> Packet<'static> {
        match self {
            Packet::Shutdown => Packet::Shutdown,
            Packet::InitServer { version, args } => Packet::InitServer { version, args },
            Packet::CallFunc { function, args } => Packet::CallFunc { function, args },
            Packet::Return(values) => Packet::Return(values),
            Packet::Exception(message) => Packet::Exception(message),
            Packet::CopyFromRemote { source, nbytes } => Packet::CopyFromRemote { source, nbytes },
            Packet::CopyToRemote { target, data } => {
                Packet::CopyToRemote { target, data: Cow::Owned(data.into_owned()) }
            }
            Packet::CopyAck(data) => Packet::CopyAck(Cow::Owned(data.into_owned())),
            Packet::Syscall(call) => Packet::Syscall(call),
        }
    }

    /// Decodes a whole packet body (code included).
    pub fn decode(body: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let mut r = WireReader::new(body);
        let raw_code = r.i32("RPC code")?;
        let code = RpcCode::from_i32(raw_code).ok_or(DecodeError::UnknownCode(raw_code))?;
        let packet = match code {
            RpcCode::None => return Err(DecodeError::UnknownCode(raw_code)),
            RpcCode::Shutdown => Packet::Shutdown,
            RpcCode::InitServer => {
                let version = decode_str(&mut r, limits).map_err(|e| match e {
                    DecodeError::InvalidUtf8 { .. } => {
                        DecodeError::InvalidUtf8 { what: "protocol version" }
                    }
                    other => other,
                })?;
                let args = decode_packed_seq(&mut r, limits)?;
                Packet::InitServer { version, args }
            }
            RpcCode::CallFunc => {
                let function = r.u64("function handle")?;
                let args = decode_packed_seq(&mut r, limits)?;
                Packet::CallFunc { function, args }
            }
            RpcCode::Return => Packet::Return(decode_packed_seq(&mut r, limits)?),
            RpcCode::Exception => {
                let values = decode_packed_seq(&mut r, limits)?;
                match values.as_slice() {
                    [Value::Str(message)] => Packet::Exception(message.clone()),
                    _ => {
                        return Err(DecodeError::BadArguments {
                            call: "Exception",
                            expected: "[Str message]",
                            got: describe_all(&values),
                        });
                    }
                }
            }
            RpcCode::CopyFromRemote => {
                let source = TensorRecord::decode(&mut r, limits)?;
                let nbytes = r.u64("copy length")?;
                Packet::CopyFromRemote { source, nbytes }
            }
            RpcCode::CopyToRemote => {
                let target = TensorRecord::decode(&mut r, limits)?;
                let declared = r.u64("copy length")?;
                let data = r.rest();
                if data.len() as u64 != declared {
                    return Err(DecodeError::CopyPayloadLength {
                        declared,
                        carried: data.len() as u64,
                    });
                }
                Packet::CopyToRemote { target, data: Cow::Borrowed(data) }
            }
            RpcCode::CopyAck => Packet::CopyAck(Cow::Borrowed(r.rest())),
            syscall => {
                let args = decode_packed_seq(&mut r, limits)?;
                r.finish()?;
                return Ok(Packet::Syscall(Syscall::decode(syscall, args)?));
            }
        };
        r.finish()?;
        Ok(packet)
    }

    /// Encodes the body (code included, length prefix excluded).
    pub fn encode(&self, w: &mut impl WireSink) {
        if !matches!(self, Packet::CopyToRemote { .. }) {
            w.put_i32(self.code() as i32);
        }
        match self {
            Packet::Shutdown => {}
            Packet::InitServer { version, args } => {
                w.put_u64(version.len() as u64);
                w.put(version.as_bytes());
                encode_packed_seq(args, w);
            }
            Packet::CallFunc { function, args } => {
                w.put_u64(*function);
                encode_packed_seq(args, w);
            }
            Packet::Return(values) => encode_packed_seq(values, w),
            Packet::Exception(message) => encode_packed_seq(&[Value::Str(message.clone())], w),
            Packet::CopyFromRemote { source, nbytes } => {
                source.encode(w);
                w.put_u64(*nbytes);
            }
            Packet::CopyToRemote { target, data } => {
                encode_copy_to_remote_prefix(target, data.len() as u64, w);
                w.put(data);
            }
            Packet::CopyAck(data) => w.put(data),
            Packet::Syscall(call) => encode_packed_seq(&call.args(), w),
        }
    }

    /// Length of the body [`Packet::encode`] writes.
    pub fn encoded_len(&self) -> u64 {
        let mut counter = LenCounter::default();
        self.encode(&mut counter);
        counter.0
    }

    /// Encodes the whole frame: `u64` body length, then the body.
    pub fn encode_frame(&self, w: &mut impl WireSink) {
        w.put_u64(self.encoded_len());
        self.encode(w);
    }
}

/// The body of a CopyToRemote up to its payload: code, tensor record, payload length.
fn encode_copy_to_remote_prefix(target: &TensorRecord, nbytes: u64, w: &mut impl WireSink) {
    w.put_i32(RpcCode::CopyToRemote as i32);
    target.encode(w);
    w.put_u64(nbytes);
}

/// Bytes of a copy packet's body besides its payload: what TVM's client subtracts from the
/// server's largest packet to size its chunks (`RemoteCopyCalculatePacketOverheadSize`).
pub fn copy_packet_overhead(record: &TensorRecord) -> u64 {
    let mut counter = LenCounter::default();
    encode_copy_to_remote_prefix(record, 0, &mut counter);
    counter.0
}

/// The frame of a CopyToRemote of `nbytes` up to its payload, which the caller sends right
/// after (straight from its own memory, without staging it in a buffer).
pub fn encode_copy_to_remote_frame_prefix(
    target: &TensorRecord,
    nbytes: u64,
    w: &mut impl WireSink,
) {
    let mut counter = LenCounter::default();
    encode_copy_to_remote_prefix(target, nbytes, &mut counter);
    w.put_u64(counter.0 + nbytes);
    encode_copy_to_remote_prefix(target, nbytes, w);
}

/// Bytes of a CopyAck frame before its payload: `u64` length, `i32` code.
pub const COPY_ACK_FRAME_PREFIX: usize = 12;

/// The frame prefix of a CopyAck carrying `nbytes` (`None` if the length overflows).
pub fn copy_ack_frame_prefix(nbytes: u64) -> Option<[u8; COPY_ACK_FRAME_PREFIX]> {
    let body = nbytes.checked_add(4)?;
    let mut prefix = [0; COPY_ACK_FRAME_PREFIX];
    prefix[..8].copy_from_slice(&body.to_le_bytes());
    prefix[8..].copy_from_slice(&(RpcCode::CopyAck as i32).to_le_bytes());
    Some(prefix)
}

/// The payload length of a CopyAck frame prefix, `None` if it is another packet.
pub fn parse_copy_ack_frame_prefix(prefix: &[u8; COPY_ACK_FRAME_PREFIX]) -> Option<u64> {
    let body = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    let code = i32::from_le_bytes(prefix[8..].try_into().expect("4 bytes"));
    (code == RpcCode::CopyAck as i32).then(|| body.checked_sub(4)).flatten()
}
