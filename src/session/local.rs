//! LocalSession: serves requests from this process's memory and registered functions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use super::context::{CallContext, Operand, Operands};
use super::device::ServerUsage;
use super::device_attr;
use super::objects::{ObjectBudget, RemoteObject};
use super::{
    DeviceBuffers, DeviceMemory, FunctionRegistry, GlobalFunction, HandleTable, Placement,
    Prepared, PreparedCall, Session, SessionError, Work, Workspace,
};
use crate::endpoint::DEFAULT_MAX_PACKET;
use crate::endpoint::tvm::codec::{Device, Packet, Syscall, TensorRecord, Value};
use crate::kernels::GemmBackend;

/// Limits and settings of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest packet the server accepts (reported by `tvm.rpc.server.GetCRTMaxPacketSize`).
    pub max_packet: u64,
    /// Most bytes of device memory the session may hold at once.
    pub memory_limit: Option<u64>,
    /// Most live handles (functions, allocations, streams) of the session.
    pub max_handles: usize,
    /// Where the session's upload directory is created (system temp dir by default).
    pub workspace_parent: Option<PathBuf>,
    /// The GEMM implementation behind `tensor_rpc.matmul` and graph matmuls.
    pub gemm_backend: GemmBackend,
    /// Calls whose estimated cost reaches this run off the event loop (see
    /// [`FunctionRegistry::register_prepared`]): about a tenth of a millisecond of GEMM,
    /// or a few milliseconds of elementwise work.
    pub offload_threshold: u64,
    /// Longest wall-clock time one `tensor_rpc.time` request may run (it holds a compute
    /// worker meanwhile); past it the request ends with an Exception.
    pub time_budget: std::time::Duration,
    /// The server-wide totals this session reports into (`tensor_rpc.stats`); clones of a
    /// config share them.
    pub usage: Arc<ServerUsage>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_packet: DEFAULT_MAX_PACKET,
            memory_limit: None,
            max_handles: 1 << 20,
            workspace_parent: None,
            gemm_backend: GemmBackend::default(),
            offload_threshold: 1 << 24,
            time_budget: std::time::Duration::from_secs(10),
            usage: ServerUsage::new(),
        }
    }
}

/// What a session holds, for logs and `tensor_rpc.stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub calls: u64,
    pub allocations: u64,
    pub bytes_held: u64,
    pub peak_bytes: u64,
}

/// What a handle of a local session refers to.
#[derive(Debug)]
pub(crate) enum Resource {
    Function(Arc<GlobalFunction>),
    /// A data allocation: the id of its buffer in the session's [`DeviceBuffers`].
    Memory(u64),
    Stream,
    /// One reference to an object a function returned.
    Object(Arc<RemoteObject>),
}

impl Resource {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Resource::Function(_) => "function",
            Resource::Memory(_) => "data allocation",
            Resource::Stream => "stream",
            Resource::Object(object) => match **object {
                RemoteObject::Shape(_) => "shape object",
                RemoteObject::Array(_) => "array object",
                RemoteObject::Module(_) => "module",
                RemoteObject::Tensor(_) => "tensor object",
            },
        }
    }
}

/// Everything a session owns, reachable from functions through [`CallContext`].
#[derive(Debug)]
pub(crate) struct LocalState {
    pub(crate) handles: HandleTable<Resource>,
    /// The session's memory; data handles refer to its buffers.
    pub(crate) device: DeviceBuffers,
    pub(crate) workspace: Workspace,
    pub(crate) config: SessionConfig,
    /// Function calls served.
    calls: u64,
    current_stream: u64,
    /// What the session's objects may hold.
    pub(crate) objects: ObjectBudget,
    /// Data handles of tensor objects whose last reference is gone, to be freed; tensor
    /// objects hold the sending side.
    pub(crate) release: Sender<u64>,
    released: Receiver<u64>,
}

impl LocalState {
    /// The buffer id behind a data handle.
    pub(crate) fn buffer_of(&self, handle: u64) -> Result<u64, SessionError> {
        match self.handles.get(non_null(handle)?)? {
            Resource::Memory(id) => Ok(*id),
            other => Err(wrong_kind(handle, "data allocation", other)),
        }
    }

    pub(crate) fn memory(&self, handle: u64) -> Result<&DeviceMemory, SessionError> {
        self.device.get(self.buffer_of(handle)?)
    }

    pub(crate) fn memory_mut(&mut self, handle: u64) -> Result<&mut DeviceMemory, SessionError> {
        let id = self.buffer_of(handle)?;
        self.device.get_mut(id)
    }

    /// Allocates a buffer and returns the data handle the client sees.
    pub(crate) fn allocate(&mut self, nbytes: u64, alignment: u64) -> Result<u64, SessionError> {
        let id = self.device.allocate(nbytes, alignment)?;
        self.handles.insert(Resource::Memory(id)).inspect_err(|_| {
            // Out of handles: the buffer goes back at once.
            let _ = self.device.free(id);
        })
    }

    /// Frees a data allocation.
    pub(crate) fn free(&mut self, data: u64) -> Result<(), SessionError> {
        let id = self.buffer_of(data)?;
        self.handles.remove(data)?;
        self.device.free(id)
    }

    /// What the session holds, for logs and `tensor_rpc.stats`.
    pub(crate) fn stats(&self) -> SessionStats {
        let buffers = self.device.stats();
        SessionStats {
            calls: self.calls,
            allocations: buffers.allocations,
            bytes_held: buffers.bytes_held,
            peak_bytes: buffers.peak_bytes,
        }
    }

    /// Frees the memory of tensor objects dropped since the last time. Their data handles
    /// may already be gone (a client can free them as any allocation), which is fine.
    fn free_released_tensors(&mut self) {
        while let Ok(data) = self.released.try_recv() {
            let _ = self.free(data);
        }
    }

    fn stream(&self, stream: u64) -> Result<(), SessionError> {
        if stream == 0 {
            return Ok(()); // the default stream
        }
        match self.handles.get(stream)? {
            Resource::Stream => Ok(()),
            other => Err(wrong_kind(stream, "stream", other)),
        }
    }
}

/// A data handle that is not the wire's null.
fn non_null(handle: u64) -> Result<u64, SessionError> {
    if handle == 0 {
        return Err(SessionError::InvalidArgument("tensor has a null data handle".into()));
    }
    Ok(handle)
}

fn wrong_kind(handle: u64, expected: &'static str, actual: &Resource) -> SessionError {
    SessionError::WrongHandleKind { handle, expected, actual: actual.kind() }
}

/// Checks that a request addresses the one device this session serves.
pub(crate) fn check_device(device: Device) -> Result<(), SessionError> {
    if device.device_type == Device::CPU_TYPE && device.device_id >= 0 {
        Ok(())
    } else {
        Err(SessionError::UnsupportedDevice(device))
    }
}

/// A session served from this process: memory, functions and files of its own.
#[derive(Debug)]
pub struct LocalSession {
    registry: Arc<FunctionRegistry>,
    state: LocalState,
}

impl LocalSession {
    pub fn new(registry: Arc<FunctionRegistry>, config: SessionConfig) -> Self {
        let (release, released) = channel();
        let state = LocalState {
            device: DeviceBuffers::new(
                config.memory_limit,
                config.max_handles,
                Arc::clone(&config.usage),
            ),
            handles: HandleTable::new(config.max_handles),
            workspace: Workspace::new(config.workspace_parent.clone()),
            config,
            calls: 0,
            current_stream: 0,
            objects: ObjectBudget::default(),
            release,
            released,
        };
        LocalSession { registry, state }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.state.config
    }

    /// The session's upload directory, once it exists.
    pub fn workspace_path(&self) -> Option<&std::path::Path> {
        self.state.workspace.path()
    }
}

impl LocalSession {
    fn function(&self, handle: u64) -> Result<Arc<GlobalFunction>, SessionError> {
        match self.state.handles.get(handle)? {
            Resource::Function(f) => Ok(Arc::clone(f)),
            other => Err(wrong_kind(handle, "function", other)),
        }
    }

    fn get_global_func(&mut self, name: &str) -> Result<Value, SessionError> {
        let handle = match self.registry.get(name) {
            Some(function) => self.state.handles.insert(Resource::Function(function))?,
            None => 0,
        };
        Ok(Value::Handle(handle))
    }

    /// Frees a function or an object reference. Dropping a reference (or a returned
    /// function holding one) may drop the last reference to a tensor object, whose memory
    /// is then freed too.
    fn free_handle(&mut self, handle: u64) -> Result<(), SessionError> {
        match self.state.handles.get(handle)? {
            Resource::Function(_) | Resource::Object(_) => {
                self.state.handles.remove(handle)?;
                self.state.free_released_tensors();
                Ok(())
            }
            other => Err(wrong_kind(handle, "function or object", other)),
        }
    }

    fn dev_alloc_data(
        &mut self,
        device: Device,
        nbytes: i64,
        alignment: i64,
    ) -> Result<u64, SessionError> {
        check_device(device)?;
        let nbytes = u64::try_from(nbytes).map_err(|_| {
            SessionError::InvalidArgument(format!("cannot allocate a negative size {nbytes}"))
        })?;
        let alignment = u64::try_from(alignment).map_err(|_| {
            SessionError::InvalidArgument(format!("alignment {alignment} is negative"))
        })?;
        self.state.allocate(nbytes, alignment)
    }

    fn dev_alloc_data_with_scope(
        &mut self,
        tensor: &TensorRecord,
        scope: Option<&str>,
    ) -> Result<u64, SessionError> {
        check_device(tensor.device)?;
        if let Some(scope) = scope.filter(|s| *s != "global") {
            return Err(SessionError::InvalidArgument(format!(
                "memory scope '{scope}' is not supported on cpu (only 'global')"
            )));
        }
        self.state.allocate(tensor.nbytes(), 64)
    }

    fn copy_among_remote(
        &mut self,
        from: &TensorRecord,
        to: &TensorRecord,
        stream: u64,
    ) -> Result<(), SessionError> {
        self.state.stream(stream)?;
        if from.nbytes() != to.nbytes() {
            return Err(SessionError::InvalidArgument(format!(
                "cannot copy {} bytes ({} {:?}) into {} bytes ({} {:?})",
                from.nbytes(),
                from.dtype,
                from.shape,
                to.nbytes(),
                to.dtype,
                to.shape
            )));
        }
        if from.data == to.data {
            check_device(from.device)?;
            check_device(to.device)?;
            let memory = self.state.memory_mut(from.data)?;
            let src = memory.checked_range(from.byte_offset, from.nbytes())?;
            let dst = memory.checked_range(to.byte_offset, to.nbytes())?;
            memory.bytes_mut().copy_within(src, dst.start);
            return Ok(());
        }
        let mut ctx = CallContext::new(&mut self.state, &self.registry);
        let Operands { inputs, mut outputs } =
            ctx.operands(&[Operand::input("from", from), Operand::output("to", to)])?;
        outputs[0].copy_from_slice(inputs[0]);
        Ok(())
    }

    fn dev_free_stream(&mut self, device: Device, stream: u64) -> Result<(), SessionError> {
        check_device(device)?;
        if stream == 0 {
            return Ok(());
        }
        self.state.stream(stream)?;
        self.state.handles.remove(stream)?;
        if self.state.current_stream == stream {
            self.state.current_stream = 0;
        }
        Ok(())
    }

    fn counted_call(&mut self) {
        self.state.calls += 1;
        self.state.device.count_call();
    }
}

impl Session for LocalSession {
    fn call_func(&mut self, function: u64, args: &[Value]) -> Result<Value, SessionError> {
        let function = self.function(function)?;
        self.counted_call();
        let result = function.call(&mut CallContext::new(&mut self.state, &self.registry), args);
        self.state.free_released_tensors();
        result
    }

    fn syscall(&mut self, call: &Syscall) -> Result<Value, SessionError> {
        let none = |r: Result<(), SessionError>| r.map(|()| Value::None);
        let handle = |r: Result<u64, SessionError>| r.map(Value::Handle);
        match call {
            Syscall::GetGlobalFunc { name } => self.get_global_func(name),
            Syscall::FreeHandle { handle } => none(self.free_handle(*handle)),
            Syscall::DevSetDevice { device } => none(check_device(*device)),
            Syscall::DevGetAttr { device, kind } => device_attr::get(*device, *kind),
            Syscall::DevAllocData { device, nbytes, alignment, dtype: _ } => {
                handle(self.dev_alloc_data(*device, *nbytes, *alignment))
            }
            Syscall::DevAllocDataWithScope { tensor, scope } => {
                handle(self.dev_alloc_data_with_scope(tensor, scope.as_deref()))
            }
            Syscall::DevFreeData { device, data } => {
                none(check_device(*device).and_then(|()| self.state.free(*data)))
            }
            Syscall::CopyAmongRemote { from, to, stream } => {
                none(self.copy_among_remote(from, to, *stream))
            }
            Syscall::DevCreateStream { device } => handle(
                check_device(*device).and_then(|()| self.state.handles.insert(Resource::Stream)),
            ),
            Syscall::DevFreeStream { device, stream } => {
                none(self.dev_free_stream(*device, *stream))
            }
            Syscall::DevSetStream { device, stream } => none(
                check_device(*device)
                    .and_then(|()| self.state.stream(*stream))
                    .map(|()| self.state.current_stream = *stream),
            ),
            Syscall::DevGetCurrentStream { device } => {
                handle(check_device(*device).map(|()| self.state.current_stream))
            }
            // CPU work completes before its reply is sent, so every stream is always in sync.
            Syscall::DevStreamSync { device, stream } => {
                none(check_device(*device).and_then(|()| self.state.stream(*stream)))
            }
        }
    }

    fn copy_to_remote(&mut self, target: &TensorRecord, data: &[u8]) -> Result<(), SessionError> {
        check_device(target.device)?;
        check_copy_length(data.len() as u64, target)?;
        let memory = self.state.memory_mut(target.data)?;
        let range = memory.checked_range(target.byte_offset, data.len() as u64)?;
        memory.bytes_mut()[range].copy_from_slice(data);
        Ok(())
    }

    fn copy_from_remote(
        &mut self,
        source: &TensorRecord,
        out: &mut [u8],
    ) -> Result<(), SessionError> {
        self.check_copy_from_remote(source, out.len() as u64)?;
        let memory = self.state.memory(source.data)?;
        let range = memory.checked_range(source.byte_offset, out.len() as u64)?;
        out.copy_from_slice(&memory.bytes()[range]);
        Ok(())
    }

    fn check_copy_from_remote(
        &mut self,
        source: &TensorRecord,
        nbytes: u64,
    ) -> Result<(), SessionError> {
        check_device(source.device)?;
        check_copy_length(nbytes, source)?;
        self.state.memory(source.data)?.checked_range(source.byte_offset, nbytes)?;
        Ok(())
    }

    fn prepare<'a>(&mut self, request: Packet<'a>) -> Prepared<'a> {
        let Packet::CallFunc { function, args } = request else {
            return Prepared::inline(request);
        };
        let prepared = match self.function(function) {
            Ok(f) => f.prepare(&args).map(|result| (f, result)),
            Err(_) => None,
        };
        let Some((function, result)) = prepared else {
            // Not a prepared function (or not a function: the call reports it).
            return Prepared::inline(Packet::CallFunc { function, args });
        };
        match result {
            Ok(body) => {
                let placement = if body.cost >= self.state.config.offload_threshold {
                    Placement::Compute
                } else {
                    Placement::Inline
                };
                let call = PreparedCall { function, args, run: body.run };
                Prepared { placement, work: Work::Call(call) }
            }
            Err(error) => Prepared { placement: Placement::Inline, work: Work::Refused(error) },
        }
    }

    fn run_prepared(&mut self, call: PreparedCall) -> Result<Value, SessionError> {
        self.counted_call();
        let mut ctx = CallContext::new(&mut self.state, &self.registry);
        let result = call.function.run_prepared(call.run, &mut ctx, &call.args);
        self.state.free_released_tensors();
        result
    }

    fn stats(&self) -> SessionStats {
        self.state.stats()
    }
}

/// A copy moves at most the tensor's own bytes; TVM's client sends smaller chunks of a
/// tensor, each with the record of the whole tensor and its chunk's byte offset.
fn check_copy_length(nbytes: u64, record: &TensorRecord) -> Result<(), SessionError> {
    if nbytes > record.nbytes() {
        return Err(SessionError::InvalidArgument(format!(
            "copy of {nbytes} bytes exceeds the {} bytes of a {} tensor of shape {:?}",
            record.nbytes(),
            record.dtype,
            record.shape
        )));
    }
    Ok(())
}
