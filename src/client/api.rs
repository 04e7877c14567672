//! The typed client API: devices, tensors and functions of a remote server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};

use super::channel::{Channel, ChannelOptions};
use super::{ClientError, ClientSession};
use crate::endpoint::tvm::codec::{
    DataType, Device, DeviceAttrKind, Syscall, TensorRecord, Value, checked_nbytes,
};

/// A connection to an RPC server; cheap to clone (clones share the connection), and usable
/// from several threads one call at a time.
#[derive(Clone)]
pub struct Client {
    session: Arc<Mutex<ClientSession>>,
    peer: SocketAddr,
}

impl Client {
    /// Connects with `key` (as `rpc.connect(host, port, key)`), default timeouts.
    pub fn connect(addr: impl ToSocketAddrs, key: &str) -> Result<Client, ClientError> {
        Self::connect_with(addr, ChannelOptions { key: key.into(), ..ChannelOptions::default() })
    }

    pub fn connect_with(
        addr: impl ToSocketAddrs,
        options: ChannelOptions,
    ) -> Result<Client, ClientError> {
        let channel = Channel::connect(addr, options)?;
        let peer = channel.peer();
        Ok(Client { session: Arc::new(Mutex::new(ClientSession::new(channel))), peer })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Runs `f` with the session, one caller at a time.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut ClientSession) -> T) -> T {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, ClientSession> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn device(&self, device_type: i32, device_id: i32) -> RemoteDevice {
        RemoteDevice { client: self.clone(), device: Device { device_type, device_id } }
    }

    pub fn cpu(&self, device_id: i32) -> RemoteDevice {
        self.device(Device::CPU_TYPE, device_id)
    }

    /// A global function of the server; [`ClientError::NoSuchFunction`] if it has none.
    pub fn function(&self, name: &str) -> Result<RemoteFunction, ClientError> {
        match self.lock().lookup(name)? {
            Some(handle) => {
                Ok(RemoteFunction { client: self.clone(), handle, name: name.to_owned() })
            }
            None => Err(ClientError::NoSuchFunction(name.to_owned())),
        }
    }

    /// Stores `data` as `name` in the session's directory on the server.
    pub fn upload(&self, name: &str, data: &[u8]) -> Result<(), ClientError> {
        self.function("tvm.rpc.server.upload")?.call(&[name.into(), data.into()]).map(drop)
    }

    pub fn download(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        match self.function("tvm.rpc.server.download")?.call(&[name.into()])? {
            Value::Bytes(b) => Ok(b),
            other => Err(ClientError::Protocol(format!("download returned {}", other.describe()))),
        }
    }

    pub fn remove(&self, name: &str) -> Result<(), ClientError> {
        self.function("tvm.rpc.server.remove")?.call(&[name.into()]).map(drop)
    }

    /// The server's largest packet (`u64::MAX` if it sets none); copies are split to fit.
    pub fn max_packet(&self) -> Result<u64, ClientError> {
        self.lock().max_packet()
    }
}

/// A device of the remote server.
#[derive(Clone)]
pub struct RemoteDevice {
    client: Client,
    device: Device,
}

impl RemoteDevice {
    pub fn device(&self) -> Device {
        self.device
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Attribute `kind`; `Value::None` when the device has none.
    pub fn attr(&self, kind: DeviceAttrKind) -> Result<Value, ClientError> {
        self.client.lock().syscall(Syscall::DevGetAttr { device: self.device, kind })
    }

    fn int_attr(&self, kind: DeviceAttrKind) -> Result<Option<i64>, ClientError> {
        match self.attr(kind)? {
            Value::Int(v) => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    pub fn exist(&self) -> Result<bool, ClientError> {
        Ok(self.int_attr(DeviceAttrKind::EXIST)? == Some(1))
    }

    pub fn name(&self) -> Result<Option<String>, ClientError> {
        match self.attr(DeviceAttrKind::DEVICE_NAME)? {
            Value::Str(s) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    pub fn max_clock_rate_khz(&self) -> Result<Option<i64>, ClientError> {
        self.int_attr(DeviceAttrKind::MAX_CLOCK_RATE)
    }

    pub fn processor_count(&self) -> Result<Option<i64>, ClientError> {
        self.int_attr(DeviceAttrKind::MULTI_PROCESSOR_COUNT)
    }

    pub fn total_memory(&self) -> Result<Option<i64>, ClientError> {
        self.int_attr(DeviceAttrKind::TOTAL_GLOBAL_MEMORY)
    }

    pub fn available_memory(&self) -> Result<Option<i64>, ClientError> {
        self.int_attr(DeviceAttrKind::AVAILABLE_GLOBAL_MEMORY)
    }

    /// Waits until the device's default stream has finished its work.
    pub fn sync(&self) -> Result<(), ClientError> {
        self.client.lock().syscall(Syscall::DevStreamSync { device: self.device, stream: 0 })?;
        Ok(())
    }
}

/// A Rust type with a DLPack dtype, for typed copies.
pub trait Element: bytemuck::Pod {
    const DTYPE: DataType;
}

macro_rules! elements {
    ($($t:ty => $code:expr, $bits:expr;)*) => {
        $(impl Element for $t { const DTYPE: DataType = DataType::new($code, $bits, 1); })*
    };
}

elements! {
    i8 => DataType::INT, 8; i16 => DataType::INT, 16; i32 => DataType::INT, 32; i64 => DataType::INT, 64;
    u8 => DataType::UINT, 8; u16 => DataType::UINT, 16; u32 => DataType::UINT, 32; u64 => DataType::UINT, 64;
    half::f16 => DataType::FLOAT, 16; f32 => DataType::FLOAT, 32; f64 => DataType::FLOAT, 64;
}

/// A tensor in the remote server's memory, freed when dropped.
pub struct RemoteTensor {
    client: Client,
    record: TensorRecord,
}

impl RemoteTensor {
    /// Allocates a zeroed tensor on `device`.
    pub fn empty(
        device: &RemoteDevice,
        shape: &[i64],
        dtype: DataType,
    ) -> Result<Self, ClientError> {
        if checked_nbytes(shape, dtype).is_none() {
            return Err(ClientError::InvalidArgument(format!(
                "shape {shape:?} of {dtype} has a negative dimension or too many bytes"
            )));
        }
        let mut record = TensorRecord {
            data: 0,
            device: device.device,
            dtype,
            shape: shape.to_vec(),
            byte_offset: 0,
        };
        let data = match device
            .client
            .lock()
            .syscall(Syscall::DevAllocDataWithScope { tensor: record.clone(), scope: None })?
        {
            Value::Handle(h) if h != 0 => h,
            other => {
                return Err(ClientError::Protocol(format!(
                    "allocation returned {}",
                    other.describe()
                )));
            }
        };
        record.data = data;
        Ok(RemoteTensor { client: device.client.clone(), record })
    }

    /// A remote copy of `data` with `shape`.
    pub fn from_slice<T: Element>(
        device: &RemoteDevice,
        shape: &[i64],
        data: &[T],
    ) -> Result<Self, ClientError> {
        Self::from_bytes(device, shape, T::DTYPE, bytemuck::cast_slice(data))
    }

    pub fn from_bytes(
        device: &RemoteDevice,
        shape: &[i64],
        dtype: DataType,
        bytes: &[u8],
    ) -> Result<Self, ClientError> {
        let tensor = Self::empty(device, shape, dtype)?;
        tensor.copy_from_bytes(bytes)?;
        Ok(tensor)
    }

    pub fn record(&self) -> &TensorRecord {
        &self.record
    }

    pub fn shape(&self) -> &[i64] {
        &self.record.shape
    }

    pub fn dtype(&self) -> DataType {
        self.record.dtype
    }

    pub fn nbytes(&self) -> u64 {
        self.record.nbytes()
    }

    fn check_len(&self, len: usize) -> Result<(), ClientError> {
        if len as u64 != self.nbytes() {
            return Err(ClientError::InvalidArgument(format!(
                "{len} bytes given for a {} tensor of shape {:?} ({} bytes)",
                self.dtype(),
                self.shape(),
                self.nbytes()
            )));
        }
        Ok(())
    }

    fn check_dtype<T: Element>(&self) -> Result<(), ClientError> {
        if T::DTYPE != self.dtype() {
            return Err(ClientError::InvalidArgument(format!(
                "tensor holds {}, not {}",
                self.dtype(),
                T::DTYPE
            )));
        }
        Ok(())
    }

    pub fn copy_from_bytes(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.check_len(bytes.len())?;
        self.client.lock().write(&self.record, bytes)
    }

    pub fn copy_from_slice<T: Element>(&self, data: &[T]) -> Result<(), ClientError> {
        self.check_dtype::<T>()?;
        self.copy_from_bytes(bytemuck::cast_slice(data))
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, ClientError> {
        let len = usize::try_from(self.nbytes())
            .map_err(|_| ClientError::InvalidArgument("tensor too large for memory".into()))?;
        let mut out = vec![0; len];
        self.client.lock().read(&self.record, &mut out)?;
        Ok(out)
    }

    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, ClientError> {
        self.check_dtype::<T>()?;
        let n = usize::try_from(self.record.num_elements())
            .map_err(|_| ClientError::InvalidArgument("tensor too large for memory".into()))?;
        let mut out = vec![T::zeroed(); n];
        self.client.lock().read(&self.record, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// Copies this tensor into `other` on the server (same byte size required).
    pub fn copy_to(&self, other: &RemoteTensor) -> Result<(), ClientError> {
        self.client.lock().syscall(Syscall::CopyAmongRemote {
            from: self.record.clone(),
            to: other.record.clone(),
            stream: 0,
        })?;
        Ok(())
    }
}

impl Drop for RemoteTensor {
    fn drop(&mut self) {
        let free = Syscall::DevFreeData { device: self.record.device, data: self.record.data };
        if let Err(e) = self.client.lock().syscall(free) {
            log::debug!("freeing a remote tensor failed: {e}");
        }
    }
}

/// A global function of the remote server, released when dropped.
pub struct RemoteFunction {
    client: Client,
    handle: u64,
    name: String,
}

impl RemoteFunction {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the function; a remote exception comes back as [`ClientError::Remote`].
    pub fn call(&self, args: &[Arg<'_>]) -> Result<Value, ClientError> {
        let args = args.iter().map(Arg::to_value).collect();
        self.client.lock().call(self.handle, args)
    }
}

impl RemoteFunction {
    /// Calls the function once per argument list with all calls in flight at once (as
    /// ggml-rpc's async dispatcher does): one round trip's wait for the lot. Each call's
    /// result comes back in order; a connection failure fails the whole batch.
    pub fn call_pipelined(
        &self,
        arg_lists: &[Vec<Arg<'_>>],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let lists = arg_lists.iter().map(|args| args.iter().map(Arg::to_value).collect()).collect();
        self.client.lock().call_pipelined(self.handle, lists)
    }
}

impl Drop for RemoteFunction {
    fn drop(&mut self) {
        if let Err(e) = self.client.lock().free(self.handle) {
            log::debug!("freeing function {} failed: {e}", self.name);
        }
    }
}

/// An argument of [`RemoteFunction::call`].
pub enum Arg<'a> {
    Value(Value),
    Tensor(&'a RemoteTensor),
}

impl Arg<'_> {
    fn to_value(&self) -> Value {
        match self {
            Arg::Value(v) => v.clone(),
            Arg::Tensor(t) => Value::Tensor(t.record.clone()),
        }
    }
}

impl<'a> From<&'a RemoteTensor> for Arg<'a> {
    fn from(t: &'a RemoteTensor) -> Self {
        Arg::Tensor(t)
    }
}

macro_rules! value_args {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(impl From<$t> for Arg<'_> { fn from($v: $t) -> Self { Arg::Value($e) } })*
    };
}

value_args! {
    Value => |v| v;
    i64 => |v| Value::Int(v);
    i32 => |v| Value::Int(i64::from(v));
    u32 => |v| Value::Int(i64::from(v));
    f64 => |v| Value::Float(v);
    f32 => |v| Value::Float(f64::from(v));
    bool => |v| Value::Bool(v);
    &str => |v| Value::Str(v.to_owned());
    String => |v| Value::Str(v);
    &[u8] => |v| Value::Bytes(v.to_vec());
    Vec<u8> => |v| Value::Bytes(v);
    DataType => |v| Value::DataType(v);
    Device => |v| Value::Device(v);
}
