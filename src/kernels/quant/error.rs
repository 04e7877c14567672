//! Why a quantized-row conversion or dot product refused to run.

use crate::kernels::quant::{BlockFormat, Implementation};

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

    #[error("the {implementation} implementation needs instructions this CPU does not have")]
    Unavailable { implementation: Implementation },

    #[error("a tile output row stride of {stride} is less than its {columns} columns")]
    TileStrideTooSmall { stride: usize, columns: usize },

    #[error(
        "a tile output of {rows} rows of {columns} values, {stride} apart, does not fit in {actual} floats"
    )]
    TileOutputTooShort { rows: usize, columns: usize, stride: usize, actual: usize },
}
