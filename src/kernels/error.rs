//! The one error type every kernel returns.
//!
//! Messages name the operation, the argument and the shapes involved, so a
//! client reading the error text over RPC can tell what to fix.

use crate::kernels::dtype::DType;
use crate::kernels::gemm::GemmBackend;

/// Why a kernel refused to run (or a tensor view could not be built).
///
/// Kernels check every rule before writing anything, so when one of these is
/// returned the output tensor is untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    #[error("unsupported DLPack dtype (code {code}, bits {bits}, lanes {lanes}): {reason}")]
    UnsupportedDLPackType { code: u8, bits: u8, lanes: u16, reason: &'static str },

    #[error("shape {shape:?} has negative dimension {dim} at index {index}")]
    NegativeDimension { shape: Vec<i64>, index: usize, dim: i64 },

    #[error("shape {shape:?} of dtype {dtype} holds more bytes than this machine can address")]
    ShapeTooLarge { shape: Vec<i64>, dtype: DType },

    #[error(
        "tensor of dtype {dtype} and shape {shape:?} needs {expected} bytes of data, but {actual} were given"
    )]
    DataLengthMismatch { dtype: DType, shape: Vec<i64>, expected: usize, actual: usize },

    #[error("{op}: {arg} has dtype {dtype}, which {op} does not support (supported: {supported})")]
    UnsupportedDType { op: &'static str, arg: &'static str, dtype: DType, supported: &'static str },

    #[error("{op}: {arg} has dtype {actual}, expected {expected}")]
    DTypeMismatch { op: &'static str, arg: &'static str, actual: DType, expected: DType },

    #[error("{op}: {arg} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch { op: &'static str, arg: &'static str, actual: Vec<i64>, expected: Vec<i64> },

    #[error(
        "{op}: a has shape {a_shape:?} but b has shape {b_shape:?}: inner dimensions {a_inner} and {b_inner} differ"
    )]
    InnerDimensionMismatch {
        op: &'static str,
        a_shape: Vec<i64>,
        b_shape: Vec<i64>,
        a_inner: i64,
        b_inner: i64,
    },

    #[error(
        "{op}: {a_arg} has shape {a_shape:?} and {b_arg} has shape {b_shape:?}: dimensions {a_dim} and {b_dim} cannot be broadcast together"
    )]
    BroadcastMismatch {
        op: &'static str,
        a_arg: &'static str,
        a_shape: Vec<i64>,
        b_arg: &'static str,
        b_shape: Vec<i64>,
        a_dim: i64,
        b_dim: i64,
    },

    #[error("{op}: {arg} has shape {shape:?} (rank {rank}), but {op} needs rank at least {min_rank}", rank = .shape.len())]
    RankTooLow { op: &'static str, arg: &'static str, shape: Vec<i64>, min_rank: usize },

    #[error("{op}: {name} {axis} is out of range for {arg} with shape {shape:?} (rank {rank})", rank = .shape.len())]
    AxisOutOfRange {
        op: &'static str,
        /// Which attribute held the axis (`axis`, `axis0`, `axis1`).
        name: &'static str,
        arg: &'static str,
        axis: i64,
        shape: Vec<i64>,
    },

    #[error(
        "{op}: axis {axis} of {arg} with shape {shape:?} is empty, and {op} of an empty axis has no identity"
    )]
    EmptyReduction { op: &'static str, arg: &'static str, axis: i64, shape: Vec<i64> },

    #[error(
        "matmul: the {backend} backend is not compiled into this build (enable cargo feature `{}`)",
        backend.cargo_feature().unwrap_or("default")
    )]
    BackendUnavailable { backend: GemmBackend },

    /// A bug in this module: a check that validation should have made
    /// failed later. Returned instead of panicking.
    #[error("{op}: internal invariant violated: {detail}")]
    Internal { op: &'static str, detail: &'static str },
}
