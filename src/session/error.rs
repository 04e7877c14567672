use thiserror::Error;

use crate::endpoint::tvm::codec::Device;

/// Why a session refused or failed a request. The message is what the client reads in the
/// Exception packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error(
        "handle {handle:#x} is not valid in this session (never issued here, or already freed)"
    )]
    UnknownHandle { handle: u64 },
    #[error("handle {handle:#x} is a {actual}, not a {expected}")]
    WrongHandleKind { handle: u64, expected: &'static str, actual: &'static str },
    #[error("device {0} is not available on this server (it serves cpu)")]
    UnsupportedDevice(Device),
    #[error("bytes [{offset}, {offset} + {len}) lie outside the allocation of {size} bytes")]
    OutOfBounds { offset: u64, len: u64, size: u64 },
    #[error(
        "allocating {requested} bytes would hold {would_hold} bytes, above the session's memory limit of {limit}"
    )]
    MemoryLimit { requested: u64, would_hold: u64, limit: u64 },
    #[error("cannot allocate {nbytes} bytes")]
    AllocationFailed { nbytes: u64 },
    #[error("the session holds the maximum of {limit} handles; free some first")]
    TooManyHandles { limit: usize },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Workspace(String),
    #[error("{function}: {message}")]
    FunctionFailed { function: String, message: String },
    #[error("{0}")]
    Remote(String),
    /// A kernel refused its operands; the message names the op, the argument and shapes.
    #[error("{0}")]
    Kernel(#[from] crate::kernels::KernelError),
    /// A timing request ran past the session's time budget (its calls were fine).
    #[error(
        "stopped after {:.3} s, over the budget of {:.3} s for one timing request; ask for \
         fewer calls (number {number}, repeat {repeat})",
        spent.as_secs_f64(),
        budget.as_secs_f64()
    )]
    TimeBudgetExceeded {
        spent: std::time::Duration,
        budget: std::time::Duration,
        number: u64,
        repeat: u64,
    },
    /// An invariant of the server itself failed: a bug, not the caller's fault.
    #[error("internal error: {0}")]
    Internal(&'static str),
}
