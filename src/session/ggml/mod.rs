//! The ggml-RPC session: what serves llama.cpp's client once its endpoint has decoded a
//! command. An adapter over the protocol-neutral device layer, as TVM's session is: buffers
//! live in the session's [`DeviceBuffers`] (limit, server-wide figures, checked ranges),
//! each known to the client by an opaque `remote_ptr` and a synthetic base address
//! ([`address`]); every tensor a command names is translated to (buffer, offset) and
//! checked for its whole extent ([`tensor`]); graphs become a validated plan of kernel calls
//! before any kernel runs ([`graph`]).
//!
//! ggml-RPC has no error reply: a command this session refuses ends the connection, and the
//! error says why (for the log).

mod address;
pub mod cache;
mod error;
mod graph;
mod op;
mod tensor;

use std::sync::Arc;

pub use cache::{DEFAULT_CACHE_MAX, Fnv1a, TensorCache};
pub use error::GgmlSessionError;
pub use graph::GraphPlan;

use address::AddressSpace;
use tensor::Placement;

use crate::endpoint::ggml::codec::{GraphPayload, Reply, Request, RpcTensor, SetTensorHeader};
use crate::kernels::GemmBackend;
use crate::session::device::{ServerUsage, machine_memory};
use crate::session::{DeviceBuffers, SessionError};

/// The alignment the CPU device asks of tensors (ggml-cpu's `TENSOR_ALIGNMENT`): reporting
/// the same as ggml's server keeps a client's buffer layouts the same.
pub const TENSOR_ALIGNMENT: u64 = 32;

/// How buffers are allocated: page-aligned, as the large ones are mapped anyway.
const BUFFER_ALIGNMENT: u64 = 4096;

/// Limits and settings of one ggml-RPC session.
#[derive(Debug, Clone)]
pub struct GgmlSessionConfig {
    /// Most bytes the session's buffers may hold at once.
    pub memory_limit: Option<u64>,
    /// Most buffers at once.
    pub max_buffers: usize,
    /// The server-wide figures this session reports into.
    pub usage: Arc<ServerUsage>,
    pub gemm_backend: GemmBackend,
    /// The tensor cache of `--cache`, shared by every session of the server.
    pub cache: Option<Arc<TensorCache>>,
}

impl Default for GgmlSessionConfig {
    fn default() -> Self {
        GgmlSessionConfig {
            memory_limit: None,
            max_buffers: 1 << 16,
            usage: ServerUsage::new(),
            gemm_backend: GemmBackend::default(),
            cache: None,
        }
    }
}

/// How a command is answered.
#[derive(Debug)]
pub enum Served {
    Reply(Reply),
    /// The command has no reply.
    Done,
    /// GET_TENSOR: these bytes of a buffer, which [`GgmlSession::bytes`] gives.
    Bytes {
        buffer: u64,
        offset: u64,
        len: u64,
    },
    /// Work to run off the event loop with [`GgmlSession::run`].
    Work(GgmlWork),
}

/// Long work of a session: graphs, and filling a tensor from the cache.
#[derive(Debug)]
pub enum GgmlWork {
    Compute(GraphPayload),
    Recompute,
    FromCache { tensor: Box<RpcTensor>, offset: u64, hash: u64 },
}

/// What a [`GgmlWork`] answers.
#[derive(Debug, PartialEq)]
pub enum WorkDone {
    Done,
    Reply(Reply),
}

/// A SET_TENSOR on its way into a buffer: where its next bytes go.
pub struct SetTensorWrite {
    buffer: u64,
    next: u64,
    end: u64,
    cache: Option<cache::CacheWriter>,
}

/// What a session did, for the log line when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GgmlStats {
    pub commands: u64,
    pub graphs: u64,
    pub bytes_held: u64,
    pub peak_bytes: u64,
}

/// One client's ggml-RPC session.
#[derive(Debug)]
pub struct GgmlSession {
    buffers: DeviceBuffers,
    space: AddressSpace,
    /// The graph last computed, for GRAPH_RECOMPUTE.
    stored: Option<GraphPlan>,
    config: GgmlSessionConfig,
    commands: u64,
    graphs: u64,
}

impl GgmlSession {
    pub fn new(config: GgmlSessionConfig) -> Self {
        GgmlSession {
            buffers: DeviceBuffers::new(
                config.memory_limit,
                config.max_buffers,
                Arc::clone(&config.usage),
            ),
            space: AddressSpace::default(),
            stored: None,
            config,
            commands: 0,
            graphs: 0,
        }
    }

    pub fn stats(&self) -> GgmlStats {
        let buffers = self.buffers.stats();
        GgmlStats {
            commands: self.commands,
            graphs: self.graphs,
            bytes_held: buffers.bytes_held,
            peak_bytes: buffers.peak_bytes,
        }
    }

    fn check_device(device: u32) -> Result<(), GgmlSessionError> {
        if device == 0 { Ok(()) } else { Err(GgmlSessionError::NoSuchDevice(device)) }
    }

    /// The free and total memory the device reports: the session's limit and what is left
    /// of it, or the machine's memory when there is no limit.
    fn device_memory(&self) -> (u64, u64) {
        match (self.buffers.limit(), self.buffers.remaining()) {
            (Some(limit), Some(remaining)) => {
                (remaining.min(machine_memory::available().unwrap_or(u64::MAX)), limit)
            }
            _ => {
                let total = machine_memory::total().unwrap_or(0);
                (machine_memory::available().unwrap_or(total), total)
            }
        }
    }

    fn place(&self, tensor: &RpcTensor) -> Result<Placement, GgmlSessionError> {
        let placement = tensor::place(tensor, &self.space)?;
        // The address space and the buffers always agree; ask the buffers too all the same.
        self.buffers.get(placement.buffer)?;
        Ok(placement)
    }

    /// Serves one command (SET_TENSOR goes through [`GgmlSession::begin_set_tensor`]).
    pub fn serve(&mut self, request: Request) -> Result<Served, GgmlSessionError> {
        self.commands += 1;
        Ok(match request {
            Request::Hello { .. } => {
                return Err(SessionError::Internal("HELLO reached the session").into());
            }
            Request::DeviceCount => Served::Reply(Reply::DeviceCount { count: 1 }),
            Request::GetDeviceMemory { device } => {
                Self::check_device(device)?;
                let (free, total) = self.device_memory();
                Served::Reply(Reply::GetDeviceMemory { free, total })
            }
            Request::GetAlignment { device } => {
                Self::check_device(device)?;
                Served::Reply(Reply::GetAlignment { alignment: TENSOR_ALIGNMENT })
            }
            Request::GetMaxSize { device } => {
                Self::check_device(device)?;
                let max_size = self.buffers.limit().unwrap_or(u64::MAX);
                Served::Reply(Reply::GetMaxSize { max_size })
            }
            Request::GetAllocSize { device, tensor, .. } => {
                Self::check_device(device)?;
                // The CPU device stores a tensor in exactly its bytes.
                Served::Reply(Reply::GetAllocSize { size: tensor::extent(&tensor)? })
            }
            Request::AllocBuffer { device, size } => {
                Self::check_device(device)?;
                Served::Reply(self.alloc_buffer(size))
            }
            Request::BufferGetBase { remote_ptr } => {
                let base_ptr = self.space.get(remote_ptr)?.base;
                Served::Reply(Reply::BufferGetBase { base_ptr })
            }
            Request::FreeBuffer { remote_ptr } => {
                self.space.get(remote_ptr)?;
                self.buffers.free(remote_ptr)?;
                self.space.remove(remote_ptr);
                // A stored graph may address the freed buffer: it is not run again.
                self.stored = None;
                Served::Done
            }
            Request::BufferClear { remote_ptr, value } => {
                self.space.get(remote_ptr)?;
                self.buffers.get_mut(remote_ptr)?.bytes_mut().fill(value);
                Served::Done
            }
            Request::InitTensor { tensor } => {
                // Nothing to prepare on a CPU device; the tensor must still be sound.
                if tensor.buffer != 0 || tensor.data != 0 {
                    self.place(&tensor)?;
                } else {
                    tensor::extent(&tensor)?;
                }
                Served::Done
            }
            Request::GetTensor { tensor, offset, size } => {
                let placement = self.place(&tensor)?;
                let (offset, len) = placement.subrange(offset, size, &tensor)?;
                Served::Bytes { buffer: placement.buffer, offset, len }
            }
            Request::MemsetTensor { tensor, offset, size, value } => {
                let placement = self.place(&tensor)?;
                let (offset, len) = placement.subrange(offset, size, &tensor)?;
                let memory = self.buffers.get_mut(placement.buffer)?;
                let range = memory.checked_range(offset, len)?;
                memory.bytes_mut()[range].fill(value);
                Served::Done
            }
            Request::CopyTensor { source, destination } => {
                self.copy_tensor(&source, &destination)?;
                Served::Reply(Reply::CopyTensor { copied: true })
            }
            Request::SetTensorHash { tensor, offset, hash } => {
                // The tensor and offset are checked whether or not the data is cached (at
                // least one byte must fit); the data's length is known once it is read.
                let placement = self.place(&tensor)?;
                placement.subrange(offset, 1, &tensor)?;
                match &self.config.cache {
                    None => Served::Reply(Reply::SetTensorHash { found: false }),
                    // Read from disk off the loop.
                    Some(_) => {
                        Served::Work(GgmlWork::FromCache { tensor: Box::new(tensor), offset, hash })
                    }
                }
            }
            Request::GraphCompute(payload) => {
                Self::check_device(payload.device)?;
                Served::Work(GgmlWork::Compute(payload))
            }
            Request::GraphRecompute { device } => {
                Self::check_device(device)?;
                if self.stored.is_none() {
                    return Err(GgmlSessionError::NoStoredGraph);
                }
                Served::Work(GgmlWork::Recompute)
            }
        })
    }

    /// ALLOC_BUFFER: a buffer, or (0, 0) when the session cannot have it (as ggml's server
    /// answers a failed allocation; the client reports it).
    fn alloc_buffer(&mut self, size: u64) -> Reply {
        let failed = Reply::AllocBuffer { remote_ptr: 0, remote_size: 0 };
        let id = match self.buffers.allocate(size, BUFFER_ALIGNMENT) {
            Ok(id) => id,
            Err(e) => {
                log::warn!("ALLOC_BUFFER of {size} bytes refused: {e}");
                return failed;
            }
        };
        match self.space.insert(id, size) {
            Some(_) => Reply::AllocBuffer { remote_ptr: id, remote_size: size },
            None => {
                let _ = self.buffers.free(id);
                failed
            }
        }
    }

    fn copy_tensor(
        &mut self,
        source: &RpcTensor,
        destination: &RpcTensor,
    ) -> Result<(), GgmlSessionError> {
        let from = self.place(source)?;
        let to = self.place(destination)?;
        if from.extent > to.extent {
            return Err(GgmlSessionError::CopyTooLarge {
                source_name: tensor::name(source),
                source_len: from.extent,
                destination: tensor::name(destination),
                destination_len: to.extent,
            });
        }
        if from.buffer == to.buffer {
            let memory = self.buffers.get_mut(from.buffer)?;
            let src = memory.checked_range(from.offset, from.extent)?;
            let dst = memory.checked_range(to.offset, from.extent)?;
            memory.bytes_mut().copy_within(src, dst.start);
            return Ok(());
        }
        let [src, dst] =
            <[_; 2]>::try_from(self.buffers.get_disjoint_mut(&[from.buffer, to.buffer])?)
                .map_err(|_| SessionError::Internal("two buffers asked, other than two given"))?;
        let src_range = src.checked_range(from.offset, from.extent)?;
        let dst_range = dst.checked_range(to.offset, from.extent)?;
        dst.bytes_mut()[dst_range].copy_from_slice(&src.bytes()[src_range]);
        Ok(())
    }

    /// The bytes [`Served::Bytes`] named.
    pub fn bytes(&self, buffer: u64, offset: u64, len: u64) -> Result<&[u8], GgmlSessionError> {
        let memory = self.buffers.get(buffer)?;
        let range = memory.checked_range(offset, len)?;
        Ok(&memory.bytes()[range])
    }

    /// Checks where a SET_TENSOR's `data_len` bytes go: inside its tensor, from `offset`.
    /// With the cache flag set (and a cache), the bytes are also written to the cache.
    pub fn begin_set_tensor(
        &mut self,
        header: &SetTensorHeader,
        data_len: u64,
    ) -> Result<SetTensorWrite, GgmlSessionError> {
        self.commands += 1;
        let placement = self.place(&header.tensor)?;
        let (start, len) = placement.subrange(header.offset, data_len, &header.tensor)?;
        let cache = match (&self.config.cache, header.asks_to_cache()) {
            (Some(cache), true) => cache.writer(len).unwrap_or_else(|e| {
                log::warn!("tensor cache: cannot write to {}: {e}", cache.dir().display());
                None
            }),
            _ => None,
        };
        Ok(SetTensorWrite { buffer: placement.buffer, next: start, end: start + len, cache })
    }

    /// Writes the next bytes of a SET_TENSOR.
    pub fn write_set_tensor(
        &mut self,
        write: &mut SetTensorWrite,
        data: &[u8],
    ) -> Result<(), GgmlSessionError> {
        let len = data.len() as u64;
        if write.next.checked_add(len).is_none_or(|end| end > write.end) {
            let overrun = SessionError::Internal("SET_TENSOR data past what its header said");
            return Err(overrun.into());
        }
        let memory = self.buffers.get_mut(write.buffer)?;
        let range = memory.checked_range(write.next, len)?;
        memory.bytes_mut()[range].copy_from_slice(data);
        write.next += len;
        if let Some(cache) = &mut write.cache
            && let Err(e) = cache.write(data)
        {
            log::warn!("tensor cache: write failed, not caching this tensor: {e}");
            write.cache = None;
        }
        Ok(())
    }

    /// Ends a SET_TENSOR: its cached copy, if any, is put in place.
    pub fn end_set_tensor(write: SetTensorWrite) {
        if let Some(cache) = write.cache
            && write.next == write.end
            && let Err(e) = cache.finish()
        {
            log::warn!("tensor cache: cannot keep the data: {e}");
        }
    }

    /// Runs long work (on a worker).
    pub fn run(&mut self, work: GgmlWork) -> Result<WorkDone, GgmlSessionError> {
        match work {
            GgmlWork::Compute(payload) => {
                let plan = GraphPlan::build(&payload, &self.space, self.config.gemm_backend)?;
                self.graphs += 1;
                let result = plan.run(&mut self.buffers);
                self.stored = Some(plan);
                result.map(|()| WorkDone::Done)
            }
            GgmlWork::Recompute => {
                let plan = self.stored.take().ok_or(GgmlSessionError::NoStoredGraph)?;
                self.graphs += 1;
                let result = plan.run(&mut self.buffers);
                self.stored = Some(plan);
                result.map(|()| WorkDone::Done)
            }
            GgmlWork::FromCache { tensor, offset, hash } => {
                let found = self.fill_from_cache(&tensor, offset, hash)?;
                Ok(WorkDone::Reply(Reply::SetTensorHash { found }))
            }
        }
    }

    /// SET_TENSOR_HASH: fills the tensor from `offset` with the cached data of `hash`, if the
    /// cache has such data and it fits; whether it did.
    fn fill_from_cache(
        &mut self,
        tensor: &RpcTensor,
        offset: u64,
        hash: u64,
    ) -> Result<bool, GgmlSessionError> {
        let Some(cache) = self.config.cache.clone() else { return Ok(false) };
        let placement = self.place(tensor)?;
        let room = placement.extent.saturating_sub(offset);
        let data = match cache.get(hash, room) {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(false),
            Err(e) => {
                log::warn!("tensor cache: cannot read {hash:016x}: {e}");
                return Ok(false);
            }
        };
        let (start, len) = placement.subrange(offset, data.len() as u64, tensor)?;
        let memory = self.buffers.get_mut(placement.buffer)?;
        let range = memory.checked_range(start, len)?;
        memory.bytes_mut()[range].copy_from_slice(&data);
        Ok(true)
    }
}
