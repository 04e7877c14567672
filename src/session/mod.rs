//! Sessions: what serves a request once the endpoint has decoded it.
//!
//! [`Session`] is TVM's `RPCSession`: one trait, implemented by [`LocalSession`] (this process's
//! memory and functions) and, on the client side, by a session that forwards to a remote
//! endpoint. [`serve`] runs a decoded request against any session and writes the reply.
//! Sessions know packets' contents but never sockets, threads or the event loop.

mod builtins;
pub mod compute;
mod context;
mod device_attr;
mod error;
mod ffi_functions;
mod handles;
mod local;
mod memory;
pub mod objects;
mod python_values;
mod registry;
#[cfg(test)]
mod remote_object_tests;
pub mod serve;
mod testing_functions;
mod usage;
mod workspace;

pub use context::{CallContext, Operand, Operands};
pub use error::SessionError;
pub use handles::HandleTable;
pub use local::{LocalSession, SessionConfig, SessionStats};
pub use memory::DeviceMemory;
pub use registry::{FunctionRegistry, GlobalFunction};
pub use usage::{ServerUsage, UsageSnapshot};
pub use workspace::Workspace;

use crate::endpoint::codec::{DataType, Device, Packet, TensorRecord, Value};

/// Where a request runs, as its session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Quick: run it on the event loop.
    Inline,
    /// Long computation: run it on a compute worker.
    Compute,
    /// Waits on the network (a relayed request): run it where waiting costs no CPU.
    Network,
}

/// The operations a client can ask of a session, one per RPC request kind.
///
/// Handles are opaque `u64`s the session issued; every method checks them.
pub trait Session: Send {
    /// The handle of a global function, or `None` if there is no such function.
    fn get_global_func(&mut self, name: &str) -> Result<Option<u64>, SessionError>;
    fn call_func(&mut self, function: u64, args: &[Value]) -> Result<Value, SessionError>;
    fn free_handle(&mut self, handle: u64) -> Result<(), SessionError>;

    fn dev_set_device(&mut self, device: Device) -> Result<(), SessionError>;
    /// `kind` is TVM's `DeviceAttrKind`; attributes the device does not know are `None`.
    fn dev_get_attr(&mut self, device: Device, kind: i64) -> Result<Value, SessionError>;
    fn dev_alloc_data(
        &mut self,
        device: Device,
        nbytes: i64,
        alignment: i64,
        dtype: DataType,
    ) -> Result<u64, SessionError>;
    fn dev_alloc_data_with_scope(
        &mut self,
        tensor: &TensorRecord,
        scope: Option<&str>,
    ) -> Result<u64, SessionError>;
    fn dev_free_data(&mut self, device: Device, data: u64) -> Result<(), SessionError>;

    /// Writes `data` at `target.byte_offset` of `target`'s allocation.
    fn copy_to_remote(&mut self, target: &TensorRecord, data: &[u8]) -> Result<(), SessionError>;
    /// Fills `out` from `source.byte_offset` of `source`'s allocation.
    fn copy_from_remote(
        &mut self,
        source: &TensorRecord,
        out: &mut [u8],
    ) -> Result<(), SessionError>;
    /// Checks a CopyFromRemote before the reply's buffer is reserved, so asking for more
    /// bytes than a tensor holds costs the server no memory. Sessions that cannot tell
    /// (a relay) accept, and the copy itself fails.
    fn check_copy_from_remote(
        &mut self,
        _source: &TensorRecord,
        _nbytes: u64,
    ) -> Result<(), SessionError> {
        Ok(())
    }
    fn copy_among_remote(
        &mut self,
        from: &TensorRecord,
        to: &TensorRecord,
        stream: u64,
    ) -> Result<(), SessionError>;

    fn dev_create_stream(&mut self, device: Device) -> Result<u64, SessionError>;
    fn dev_free_stream(&mut self, device: Device, stream: u64) -> Result<(), SessionError>;
    fn dev_set_stream(&mut self, device: Device, stream: u64) -> Result<(), SessionError>;
    fn dev_get_current_stream(&mut self, device: Device) -> Result<u64, SessionError>;
    fn dev_stream_sync(&mut self, device: Device, stream: u64) -> Result<(), SessionError>;

    /// Where a server should run `request`: on its event loop, or off it (TVM's
    /// WaitForAsyncCallback) so other connections are not held up meanwhile.
    fn placement(&self, _request: &Packet<'_>) -> Placement {
        Placement::Inline
    }

    /// What the session holds, for logs and statistics.
    fn stats(&self) -> SessionStats {
        SessionStats::default()
    }
}
