//! The block layouts as typed views (`#[repr(C)]` structs of byte arrays,
//! alignment 1, no padding), for the SIMD kernels: a row of bytes whose
//! length has been checked is reinterpreted as a slice of blocks with
//! `bytemuck`, so fields are plain arrays (`block.qs`) and loads from them
//! need no bounds checks and no pointer arithmetic.
//!
//! The layouts are the ones documented in `legacy.rs`, `k_quants.rs` and
//! `iq4.rs` (ggml-common.h); multi-byte fields are little-endian, as the
//! x86 kernels that read them are. Long quant fields are arrays of 32-byte
//! (IQ4_XS: 16-byte) chunks, the unit the kernels load, so that a chunk is
//! a fixed-size array indexed by a constant.

use bytemuck::{Pod, Zeroable};

use crate::kernels::quant::QK_K;

/// Reinterprets `bytes` as blocks of type `B`. The caller has checked that
/// the length is a whole number of blocks; were it not, the result would
/// be empty (no block read), never a panic.
pub(super) fn blocks_of<B: Pod>(bytes: &[u8]) -> &[B] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// Mutable [`blocks_of`].
pub(super) fn blocks_of_mut<B: Pod>(bytes: &mut [u8]) -> &mut [B] {
    bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut [])
}

/// Q4_0: `x = d·(q − 8)`; element `j` in the low nibble of `qs[j]`,
/// element `j + 16` in the high nibble.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}

/// Q4_1: `x = d·q + m`.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; 16],
}

/// Q5_0: `x = d·(q − 16)`, bit `j` of `qh` the fifth bit of element `j`.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// Q5_1: `x = d·q + m`.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// Q8_0: `x = d·q`, `q` signed bytes.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [u8; 32],
}

/// Q8_1: Q8_0 plus `s = d·Σq`.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ8_1 {
    pub d: [u8; 2],
    pub s: [u8; 2],
    pub qs: [u8; 32],
}

/// Q2_K: per 16 elements a 4-bit scale (low nibble) and minimum (high).
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ2K {
    pub scales: [u8; 16],
    pub qs: [[u8; 32]; 2],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}

/// Q3_K: two low bits in `qs`, the third in `hmask`, 6-bit scales − 32.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [[u8; 32]; 2],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}

/// Q4_K: eight 6-bit scales and minimums per 32 elements.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [[u8; 32]; 4],
}

/// Q5_K: Q4_K plus a fifth bit per element in `qh`.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [[u8; 32]; 4],
}

/// Q6_K: four low bits in `ql`, two high in `qh`, signed 8-bit scales.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ6K {
    pub ql: [[u8; 32]; 4],
    pub qh: [[u8; 32]; 2],
    pub scales: [u8; 16],
    pub d: [u8; 2],
}

/// Q8_K: an f32 scale, 256 signed bytes, sixteen i16 sums of 16.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [[u8; 32]; QK_K / 32],
    pub bsums: [u8; 32],
}

/// IQ4_NL: indices into the 16 levels, laid out like Q4_0's.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockIq4Nl {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}

/// IQ4_XS: eight sub-blocks of 32 laid out like IQ4_NL, 6-bit scales − 32
/// (low four bits in `scales_l`, high two in `scales_h`).
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(super) struct BlockIq4Xs {
    pub d: [u8; 2],
    pub scales_h: [u8; 2],
    pub scales_l: [u8; 4],
    pub qs: [[u8; 16]; 8],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::BlockFormat;

    #[test]
    fn each_block_view_is_exactly_its_format_s_block_size() {
        use std::mem::size_of;
        let sizes = [
            (BlockFormat::Q4_0, size_of::<BlockQ4_0>()),
            (BlockFormat::Q4_1, size_of::<BlockQ4_1>()),
            (BlockFormat::Q5_0, size_of::<BlockQ5_0>()),
            (BlockFormat::Q5_1, size_of::<BlockQ5_1>()),
            (BlockFormat::Q8_0, size_of::<BlockQ8_0>()),
            (BlockFormat::Q8_1, size_of::<BlockQ8_1>()),
            (BlockFormat::Q2K, size_of::<BlockQ2K>()),
            (BlockFormat::Q3K, size_of::<BlockQ3K>()),
            (BlockFormat::Q4K, size_of::<BlockQ4K>()),
            (BlockFormat::Q5K, size_of::<BlockQ5K>()),
            (BlockFormat::Q6K, size_of::<BlockQ6K>()),
            (BlockFormat::Q8K, size_of::<BlockQ8K>()),
            (BlockFormat::Iq4Nl, size_of::<BlockIq4Nl>()),
            (BlockFormat::Iq4Xs, size_of::<BlockIq4Xs>()),
        ];
        for (format, size) in sizes {
            assert_eq!(size, format.block_bytes(), "{format}");
        }
    }

    #[test]
    fn a_length_that_is_not_whole_blocks_views_as_no_blocks() {
        assert_eq!(blocks_of::<BlockQ4_0>(&[0; 19]).len(), 0);
        assert_eq!(blocks_of::<BlockQ4_0>(&[0; 36]).len(), 2);
    }
}
