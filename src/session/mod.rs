//! Sessions: what serves a request once the endpoint has decoded it.
//!
//! [`Session`] is TVM's `RPCSession`: one trait, implemented by [`LocalSession`] (this process's
//! memory and functions) and, on the client side, by a session that forwards to a remote
//! endpoint. [`serve`] runs a decoded request against any session and writes the reply.
//! Sessions know packets' contents but never sockets, threads or the event loop.

mod builtins;
pub mod compute;
mod context;
pub mod device;
mod device_attr;
mod error;
mod ffi_functions;
pub mod ggml;
mod handles;
mod local;
pub mod objects;
mod python_values;
mod registry;
#[cfg(test)]
mod remote_object_tests;
pub mod serve;
mod testing_functions;
mod workspace;

pub use context::{CallContext, Operand, Operands};
pub use device::{DeviceBuffers, DeviceMemory, ServerUsage, UsageSnapshot};
pub use error::SessionError;
pub use handles::HandleTable;
pub use local::{LocalSession, SessionConfig, SessionStats};
pub use registry::{FunctionRegistry, GlobalFunction, PreparedBody, PreparedRun};
pub use workspace::Workspace;

use crate::endpoint::tvm::codec::{Packet, Syscall, TensorRecord, Value};

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

/// What a session made of a request on the event loop: where it runs and what runs.
pub struct Prepared<'a> {
    pub placement: Placement,
    pub work: Work<'a>,
}

impl<'a> Prepared<'a> {
    /// The request as decoded, run on the loop.
    pub fn inline(request: Packet<'a>) -> Self {
        Prepared { placement: Placement::Inline, work: Work::Request(request) }
    }
}

/// What is left to run of a request.
pub enum Work<'a> {
    /// The request as decoded: a syscall, a copy, a call of a quick function, anything
    /// relayed.
    Request(Packet<'a>),
    /// A call whose arguments were checked once; it runs without looking at them again.
    Call(PreparedCall),
    /// The request was refused when it was looked at.
    Refused(SessionError),
}

impl Work<'_> {
    /// Detaches the work from the input buffer, to run it elsewhere.
    pub fn into_owned(self) -> Work<'static> {
        match self {
            Work::Request(packet) => Work::Request(packet.into_owned()),
            Work::Call(call) => Work::Call(call),
            Work::Refused(error) => Work::Refused(error),
        }
    }
}

/// A call of a prepared function with its arguments and the run its preparation left.
pub struct PreparedCall {
    pub function: std::sync::Arc<GlobalFunction>,
    pub args: Vec<Value>,
    pub run: registry::PreparedRun,
}

/// What a client can ask of a session: TVM's `RPCSession`. Syscalls go through one method
/// and one `match`, so a new syscall touches the codec and that `match`.
///
/// Handles are opaque `u64`s the session issued; every method checks them.
pub trait Session: Send {
    fn call_func(&mut self, function: u64, args: &[Value]) -> Result<Value, SessionError>;

    /// Runs a syscall; its reply is one value (None for those that return nothing).
    fn syscall(&mut self, call: &Syscall) -> Result<Value, SessionError>;

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

    /// Looks at `request` on the event loop (cheaply) and says where it runs: on the loop,
    /// or off it (TVM's WaitForAsyncCallback) so other connections are not held up.
    fn prepare<'a>(&mut self, request: Packet<'a>) -> Prepared<'a> {
        Prepared::inline(request)
    }

    /// Runs a call [`Session::prepare`] checked.
    fn run_prepared(&mut self, _call: PreparedCall) -> Result<Value, SessionError> {
        Err(SessionError::Internal("this session prepares no calls"))
    }

    /// What the session holds, for logs and statistics.
    fn stats(&self) -> SessionStats {
        SessionStats::default()
    }
}
