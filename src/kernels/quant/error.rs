//! Why a quantized-row conversion or dot product refused to run.

use crate::kernels::quant::BlockFormat;

/// A length or format rule of a quantized row was broken. Nothing is
/// written to the output when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    #[error("{format}: {elements} elements are not a whole number of {block_elems}-element blocks")]
    PartialBlock { format: BlockFormat, elements: usize, block_elems: usize },

    #[error(
        "{format}: {elements} elements take {expected} bytes of blocks, but {actual} were given"
    )]
    ByteLengthMismatch { format: BlockFormat, elements: usize, expected: usize, actual: usize },

    #[error(
        "{format}: a row of {elements} elements holds more bytes than this machine can address"
    )]
    RowTooLarge { format: BlockFormat, elements: usize },

    #[error(
        "{format}: ggml has no dot product with a {format} row on the left (it is an activation format)"
    )]
    NoDotProduct { format: BlockFormat },

    #[error("bf16: {elements} elements take {expected} bytes, but {actual} were given")]
    Bf16LengthMismatch { elements: usize, expected: usize, actual: usize },
}
