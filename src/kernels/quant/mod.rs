//! ggml's quantized block formats, bit-exact with ggml's own reference code.
//!
//! A quantized row is a sequence of fixed-size blocks; each block packs
//! `block_elems()` values (32, or 256 for the "K" super-blocks) as small
//! integers plus one or more fp16 (Q8_K: f32) scales. This module converts
//! rows between f32 and every block format a llama.cpp graph sends, and
//! computes the dot products ggml's CPU backend uses for MUL_MAT:
//!
//! * [`dequantize_row`]: ggml's `dequantize_row_*`, the same float
//!   operations in the same order, so every output float is identical to
//!   ggml's bit for bit.
//! * [`quantize_row`]: ggml's reference quantizers (`quantize_row_*_ref`,
//!   which ggml's CPU backend also uses for every format it writes from f32
//!   except the activation formats Q8_0/Q8_1 on AVX machines, see below).
//!   Identical bytes for the same input, including ggml's rounding
//!   (`roundf`, `nearest_int`'s magic-number trick, C's float → int
//!   truncation as x86-64 performs it) and its tie-breaking.
//! * [`vec_dot`]: `ggml_vec_dot_<x>_<y>`, the dot product of a quantized
//!   row with a row in [`BlockFormat::vec_dot_format`]. The scalar
//!   implementation equals ggml's generic path
//!   (`ggml_vec_dot_<x>_<y>_generic`, built without FMA contraction) bit
//!   for bit, with the same accumulation order.
//!
//! ggml's x86 build quantizes *activations* to Q8_0/Q8_1 with AVX code that
//! rounds ties to even and scales by `127/amax` instead of `1/(amax/127)`;
//! on rare elements its bytes differ from the reference by one step. This
//! module implements the reference (the documented, portable behaviour).
//!
//! Each entry point runs the fastest [`Implementation`] this CPU supports
//! (detected at run time: AVX-512 with VNNI, AVX2, or portable scalar
//! code); [`Implementation`] also names one explicitly. Conversions give
//! the same bytes and floats in every implementation; SIMD dot products
//! have exact integer parts and their own order of float additions (a few
//! ulps from the scalar reference, like ggml's own SIMD code).
//! [`vec_dot_tile`] computes a block of a matrix product (many weight
//! rows against many activation rows) at once.
//!
//! Every entry point checks lengths (in release builds) and returns a
//! [`QuantError`] instead of panicking; no input bytes (NaN or infinite
//! scales, any bit pattern) can make it panic.

mod bf16;
// Typed block views for the SIMD kernels (the scalar code reads bytes).
#[cfg(target_arch = "x86_64")]
mod blocks;
mod error;
mod fp16;
mod implementation;
mod iq4;
mod k_quants;
mod legacy;
mod rounding;
mod scalar;
mod scale_search;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

use std::fmt;

pub use bf16::{bf16_to_f32_row, f32_to_bf16_row};
pub use error::QuantError;
pub use implementation::Implementation;

/// Elements per K-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// One of ggml's quantized block formats (the `ggml_type`s named alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockFormat {
    /// 4-bit, one fp16 scale per 32 (`x = d·(q − 8)`).
    Q4_0,
    /// 4-bit, fp16 scale and minimum per 32 (`x = d·q + m`).
    Q4_1,
    /// 5-bit, one fp16 scale per 32.
    Q5_0,
    /// 5-bit, fp16 scale and minimum per 32.
    Q5_1,
    /// 8-bit, one fp16 scale per 32.
    Q8_0,
    /// 8-bit with fp16 scale and `d·Σq` per 32: an activation format.
    Q8_1,
    /// 2-bit super-block: 4-bit scales and minimums per 16.
    Q2K,
    /// 3-bit super-block: 6-bit signed scales per 16.
    Q3K,
    /// 4-bit super-block: 6-bit scales and minimums per 32.
    Q4K,
    /// 5-bit super-block: 6-bit scales and minimums per 32.
    Q5K,
    /// 6-bit super-block: 8-bit signed scales per 16.
    Q6K,
    /// 8-bit super-block with an f32 scale and sums per 16: an activation
    /// format.
    Q8K,
    /// 4-bit non-linear (a fixed table of 16 levels), fp16 scale per 32.
    Iq4Nl,
    /// 4-bit non-linear super-block with 6-bit scales per 32.
    Iq4Xs,
}

impl BlockFormat {
    /// Every format, in ggml's type-number order.
    pub const ALL: [BlockFormat; 14] = [
        BlockFormat::Q4_0,
        BlockFormat::Q4_1,
        BlockFormat::Q5_0,
        BlockFormat::Q5_1,
        BlockFormat::Q8_0,
        BlockFormat::Q8_1,
        BlockFormat::Q2K,
        BlockFormat::Q3K,
        BlockFormat::Q4K,
        BlockFormat::Q5K,
        BlockFormat::Q6K,
        BlockFormat::Q8K,
        BlockFormat::Iq4Nl,
        BlockFormat::Iq4Xs,
    ];

    /// Values per block: 32, or [`QK_K`] (256) for the super-block formats.
    pub const fn block_elems(self) -> usize {
        match self {
            BlockFormat::Q4_0
            | BlockFormat::Q4_1
            | BlockFormat::Q5_0
            | BlockFormat::Q5_1
            | BlockFormat::Q8_0
            | BlockFormat::Q8_1
            | BlockFormat::Iq4Nl => legacy::QK,
            BlockFormat::Q2K
            | BlockFormat::Q3K
            | BlockFormat::Q4K
            | BlockFormat::Q5K
            | BlockFormat::Q6K
            | BlockFormat::Q8K
            | BlockFormat::Iq4Xs => QK_K,
        }
    }

    /// Bytes per block (ggml's `sizeof(block_*)`: packed, no padding).
    pub const fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_0 => legacy::Q4_0_BYTES,
            BlockFormat::Q4_1 => legacy::Q4_1_BYTES,
            BlockFormat::Q5_0 => legacy::Q5_0_BYTES,
            BlockFormat::Q5_1 => legacy::Q5_1_BYTES,
            BlockFormat::Q8_0 => legacy::Q8_0_BYTES,
            BlockFormat::Q8_1 => legacy::Q8_1_BYTES,
            BlockFormat::Q2K => k_quants::Q2_K_BYTES,
            BlockFormat::Q3K => k_quants::Q3_K_BYTES,
            BlockFormat::Q4K => k_quants::Q4_K_BYTES,
            BlockFormat::Q5K => k_quants::Q5_K_BYTES,
            BlockFormat::Q6K => k_quants::Q6_K_BYTES,
            BlockFormat::Q8K => k_quants::Q8_K_BYTES,
            BlockFormat::Iq4Nl => iq4::IQ4_NL_BYTES,
            BlockFormat::Iq4Xs => iq4::IQ4_XS_BYTES,
        }
    }

    /// ggml's type name (`ggml_type_name`): "q4_0", "q4_K", "iq4_nl", ...
    pub const fn name(self) -> &'static str {
        match self {
            BlockFormat::Q4_0 => "q4_0",
            BlockFormat::Q4_1 => "q4_1",
            BlockFormat::Q5_0 => "q5_0",
            BlockFormat::Q5_1 => "q5_1",
            BlockFormat::Q8_0 => "q8_0",
            BlockFormat::Q8_1 => "q8_1",
            BlockFormat::Q2K => "q2_K",
            BlockFormat::Q3K => "q3_K",
            BlockFormat::Q4K => "q4_K",
            BlockFormat::Q5K => "q5_K",
            BlockFormat::Q6K => "q6_K",
            BlockFormat::Q8K => "q8_K",
            BlockFormat::Iq4Nl => "iq4_nl",
            BlockFormat::Iq4Xs => "iq4_xs",
        }
    }

    /// ggml's `enum ggml_type` number of this format.
    pub const fn ggml_type(self) -> u32 {
        match self {
            BlockFormat::Q4_0 => 2,
            BlockFormat::Q4_1 => 3,
            BlockFormat::Q5_0 => 6,
            BlockFormat::Q5_1 => 7,
            BlockFormat::Q8_0 => 8,
            BlockFormat::Q8_1 => 9,
            BlockFormat::Q2K => 10,
            BlockFormat::Q3K => 11,
            BlockFormat::Q4K => 12,
            BlockFormat::Q5K => 13,
            BlockFormat::Q6K => 14,
            BlockFormat::Q8K => 15,
            BlockFormat::Iq4Nl => 20,
            BlockFormat::Iq4Xs => 23,
        }
    }

    /// The format with ggml type number `ggml_type`, if this module
    /// implements it.
    pub fn from_ggml_type(ggml_type: u32) -> Option<BlockFormat> {
        BlockFormat::ALL.into_iter().find(|format| format.ggml_type() == ggml_type)
    }

    /// The format the other operand of [`vec_dot`] must be in (ggml's
    /// `vec_dot_type`): Q8_0 for Q4_0, Q5_0, Q8_0 and IQ4_NL; Q8_1 for Q4_1
    /// and Q5_1; Q8_K for the K quants and IQ4_XS. `None` for Q8_1 and Q8_K,
    /// which are activation formats only: ggml has no dot product with
    /// them as the quantized row.
    pub const fn vec_dot_format(self) -> Option<BlockFormat> {
        match self {
            BlockFormat::Q4_0 | BlockFormat::Q5_0 | BlockFormat::Q8_0 | BlockFormat::Iq4Nl => {
                Some(BlockFormat::Q8_0)
            }
            BlockFormat::Q4_1 | BlockFormat::Q5_1 => Some(BlockFormat::Q8_1),
            BlockFormat::Q2K
            | BlockFormat::Q3K
            | BlockFormat::Q4K
            | BlockFormat::Q5K
            | BlockFormat::Q6K
            | BlockFormat::Iq4Xs => Some(BlockFormat::Q8K),
            BlockFormat::Q8_1 | BlockFormat::Q8K => None,
        }
    }

    /// Number of blocks holding `elements` values; refuses a partial block.
    pub fn blocks_for(self, elements: usize) -> Result<usize, QuantError> {
        // Block sizes are powers of two: a mask and a shift, not a
        // division (this check runs on every dot product).
        let block_elems = self.block_elems();
        if elements & (block_elems - 1) != 0 {
            return Err(QuantError::PartialBlock { format: self, elements, block_elems });
        }
        Ok(elements >> block_elems.trailing_zeros())
    }

    /// Bytes of a row of `elements` values (ggml's `ggml_row_size`);
    /// refuses a partial block and sizes beyond `usize`.
    pub fn row_bytes(self, elements: usize) -> Result<usize, QuantError> {
        let blocks = self.blocks_for(elements)?;
        blocks
            .checked_mul(self.block_bytes())
            .ok_or(QuantError::RowTooLarge { format: self, elements })
    }

    /// Checks that `actual` bytes are exactly the blocks of `elements`
    /// values, and returns the number of blocks.
    pub(super) fn check_row(self, elements: usize, actual: usize) -> Result<usize, QuantError> {
        let blocks = self.blocks_for(elements)?;
        let expected = blocks
            .checked_mul(self.block_bytes())
            .ok_or(QuantError::RowTooLarge { format: self, elements })?;
        if actual != expected {
            return Err(QuantError::ByteLengthMismatch {
                format: self,
                elements,
                expected,
                actual,
            });
        }
        Ok(blocks)
    }
}

impl fmt::Display for BlockFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes the blocks in `src` into `dst` (ggml's `dequantize_row_*`), with
/// [`Implementation::best`]; see [`Implementation::dequantize_row`].
pub fn dequantize_row(format: BlockFormat, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    Implementation::best().dequantize_row(format, src, dst)
}

/// Encodes `src` into blocks in `dst` with ggml's reference quantizer, with
/// [`Implementation::best`]; see [`Implementation::quantize_row`].
pub fn quantize_row(format: BlockFormat, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    Implementation::best().quantize_row(format, src, dst)
}

/// The dot product of the `n`-element row `x` (in `format`) with the row
/// `y` (in `format.vec_dot_format()`), with [`Implementation::best`]; see
/// [`Implementation::vec_dot`].
pub fn vec_dot(format: BlockFormat, n: usize, x: &[u8], y: &[u8]) -> Result<f32, QuantError> {
    Implementation::best().vec_dot(format, n, x, y)
}

/// The dot products of weight rows `xs` with activation rows `ys` into
/// `out[iy * out_stride + ix]`, with [`Implementation::best`]; see
/// [`Implementation::vec_dot_tile`].
pub fn vec_dot_tile(
    format: BlockFormat,
    n: usize,
    xs: &[&[u8]],
    ys: &[&[u8]],
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), QuantError> {
    Implementation::best().vec_dot_tile(format, n, xs, ys, out, out_stride)
}
