//! The one error type of the strided ops: why a layout, a view or an op was
//! refused.
//!
//! Messages name the op (as ggml spells it: `MUL_MAT`, `GET_ROWS`), the
//! operand (`src0`, `src1`, `dst`, or the role: `mask`, `sinks`) and the
//! values, so that a log line says what a client sent wrong.

use crate::kernels::error::KernelError;
use crate::kernels::quant::QuantError;
use crate::kernels::strided::element_type::ElementType;

/// Why a strided op refused to run, or a layout or view could not be built.
///
/// Every rule is checked before anything is written, so when one of these is
/// returned by an op, `dst` is untouched (the only exceptions are the
/// `Internal`/`IndexOutsideView` variants, which report bugs in this module).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    #[error(
        "{elem} tensor with ne {ne:?}: ne[0] is not a multiple of the {block}-element block of its type"
    )]
    PartialBlock { elem: ElementType, ne: [usize; 4], block: usize },

    #[error(
        "{elem} tensor with ne {ne:?} and nb {nb:?}: blocks must be stored contiguously (nb[0] == {block_bytes})"
    )]
    BlockStride { elem: ElementType, ne: [usize; 4], nb: [usize; 4], block_bytes: usize },

    #[error(
        "{elem} tensor with ne {ne:?} and nb {nb:?} spans more bytes than this machine can address"
    )]
    TooLarge { elem: ElementType, ne: [usize; 4], nb: [usize; 4] },

    #[error(
        "{elem} tensor with ne {ne:?} and nb {nb:?} reaches {needed} bytes, but only {actual} were given"
    )]
    ShortBuffer { elem: ElementType, ne: [usize; 4], nb: [usize; 4], needed: usize, actual: usize },

    #[error(
        "{op}: {operand} has type {actual}, which {op} does not support (supported: {supported})"
    )]
    UnsupportedType {
        op: &'static str,
        operand: &'static str,
        actual: ElementType,
        supported: &'static str,
    },

    #[error("{op}: {operand} has type {actual}, expected {expected}")]
    TypeMismatch {
        op: &'static str,
        operand: &'static str,
        actual: ElementType,
        expected: ElementType,
    },

    /// One dimension breaks a rule: `{operand} ne[{dim}] {actual} {violation}
    /// {reference} {expected}`, e.g. `src1 ne[0] 256 != src0 ne[0] 512`.
    #[error("{op}: {operand} ne[{dim}] {actual} {violation} {reference}{expected}")]
    DimRule {
        op: &'static str,
        operand: &'static str,
        dim: usize,
        actual: usize,
        /// The broken relation, as it holds: `!=`, `<`, `is not a multiple of`.
        violation: &'static str,
        /// What `expected` is, with a trailing space (`"src0 ne[0] "`), or
        /// empty for a constant.
        reference: &'static str,
        expected: usize,
    },

    #[error("{op}: {operand} has ne {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        op: &'static str,
        operand: &'static str,
        actual: [usize; 4],
        expected: [usize; 4],
    },

    #[error(
        "{op}: {operand} with ne {operand_ne:?} does not repeat into {target} with ne {target_ne:?}"
    )]
    NotRepeatable {
        op: &'static str,
        operand: &'static str,
        operand_ne: [usize; 4],
        target: &'static str,
        target_ne: [usize; 4],
    },

    #[error("{op}: {operand} (ne {ne:?}, nb {nb:?}) {rule}")]
    StrideRule {
        op: &'static str,
        operand: &'static str,
        ne: [usize; 4],
        nb: [usize; 4],
        /// What the strides must satisfy, e.g. "must have contiguous rows
        /// (nb[0] == the element size)".
        rule: &'static str,
    },

    #[error("{op}: {param} {value} {reason}")]
    InvalidParam { op: &'static str, param: &'static str, value: String, reason: &'static str },

    #[error("{op}: {operand} is required: {reason}")]
    MissingOperand { op: &'static str, operand: &'static str, reason: &'static str },

    #[error(
        "{op}: row id {id} at {operand} [{}, {}, {}] is outside the {rows} rows of {target}",
        .position[0], .position[1], .position[2]
    )]
    RowIdOutOfRange {
        op: &'static str,
        operand: &'static str,
        position: [usize; 3],
        id: i64,
        rows: usize,
        target: &'static str,
    },

    #[error("{op}: {source}")]
    Gemm {
        op: &'static str,
        #[source]
        source: Box<KernelError>,
    },

    /// A block conversion refused its row: a bug in this module, since
    /// views only hand out rows of whole blocks.
    #[error("block conversion: {0}")]
    Quant(#[from] QuantError),

    /// A bug in this module: an op indexed past a view it had checked.
    #[error("internal error: index {index:?} is outside the tensor with ne {ne:?}")]
    IndexOutsideView { index: [usize; 4], ne: [usize; 4] },

    /// A bug in this module: a check that validation should have made failed
    /// later. Returned instead of panicking.
    #[error("{op}: internal invariant violated: {detail}")]
    Internal { op: &'static str, detail: &'static str },
}
