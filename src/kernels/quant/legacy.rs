//! The 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
//!
//! Block layouts (little-endian, packed), as in ggml-common.h:
//! * Q4_0: `d: f16, qs: [u8; 16]`: element `j` in the low nibble of
//!   `qs[j]`, element `j + 16` in the high nibble; `x = d·(q − 8)`.
//! * Q4_1: `d: f16, m: f16, qs: [u8; 16]`; `x = d·q + m`.
//! * Q5_0: `d: f16, qh: [u8; 4], qs: [u8; 16]`: bit `j` of the u32 `qh` is
//!   the fifth bit of element `j`; `x = d·(q − 16)`.
//! * Q5_1: `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`; `x = d·q + m`.
//! * Q8_0: `d: f16, qs: [i8; 32]`; `x = d·q`.
//! * Q8_1: `d: f16, s: f16, qs: [i8; 32]` with `s = d·Σq`.
//!
//! Every function here expects slices whose lengths the caller
//! (`quant::*_row`, `quant::vec_dot`) has checked: whole blocks, matching
//! counts. Blocks are walked with `as_chunks`, so no element access needs
//! a run-time bounds check.

use crate::kernels::quant::fp16::{f16_at, put_f16};
use crate::kernels::quant::rounding::{truncate_to_i8, truncate_to_u8};
use crate::kernels::quant::scale_search::signed_absmax;

/// Elements per block of every format in this file.
pub(super) const QK: usize = 32;
const HALF: usize = QK / 2;

pub(super) const Q4_0_BYTES: usize = 2 + HALF;
pub(super) const Q4_1_BYTES: usize = 4 + HALF;
pub(super) const Q5_0_BYTES: usize = 2 + 4 + HALF;
pub(super) const Q5_1_BYTES: usize = 4 + 4 + HALF;
pub(super) const Q8_0_BYTES: usize = 2 + QK;
pub(super) const Q8_1_BYTES: usize = 4 + QK;

// ---------------------------------------------------------------- decoding

pub(super) fn dequantize_q4_0(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q4_0_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        let (low, high) = out.split_at_mut(HALF);
        for ((&q, lo), hi) in block[2..].iter().zip(low).zip(high) {
            *lo = ((q & 0x0f) as i32 - 8) as f32 * d;
            *hi = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub(super) fn dequantize_q4_1(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q4_1_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        let m = f16_at(block, 2);
        let (low, high) = out.split_at_mut(HALF);
        for ((&q, lo), hi) in block[4..].iter().zip(low).zip(high) {
            *lo = (q & 0x0f) as f32 * d + m;
            *hi = (q >> 4) as f32 * d + m;
        }
    }
}

/// The fifth bits of a Q5 block (`qh` as a little-endian u32).
fn fifth_bits<const N: usize>(block: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
}

/// The five-bit values of elements `j` and `j + 16` of a Q5 block.
#[inline(always)]
fn q5_pair(qs: u8, qh: u32, j: usize) -> (i32, i32) {
    let low = (qs & 0x0f) as u32 | (((qh >> j) << 4) & 0x10);
    let high = (qs >> 4) as u32 | ((qh >> (j + 12)) & 0x10);
    (low as i32, high as i32)
}

pub(super) fn dequantize_q5_0(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q5_0_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        let qh = fifth_bits(block, 2);
        let (low, high) = out.split_at_mut(HALF);
        for (j, ((&q, lo), hi)) in block[6..].iter().zip(low).zip(high).enumerate() {
            let (q0, q1) = q5_pair(q, qh, j);
            *lo = (q0 - 16) as f32 * d;
            *hi = (q1 - 16) as f32 * d;
        }
    }
}

pub(super) fn dequantize_q5_1(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q5_1_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        let m = f16_at(block, 2);
        let qh = fifth_bits(block, 4);
        let (low, high) = out.split_at_mut(HALF);
        for (j, ((&q, lo), hi)) in block[8..].iter().zip(low).zip(high).enumerate() {
            let (q0, q1) = q5_pair(q, qh, j);
            *lo = q0 as f32 * d + m;
            *hi = q1 as f32 * d + m;
        }
    }
}

pub(super) fn dequantize_q8_0(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q8_0_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        for (&q, o) in block[2..].iter().zip(out) {
            *o = (q as i8) as f32 * d;
        }
    }
}

pub(super) fn dequantize_q8_1(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q8_1_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        for (&q, o) in block[4..].iter().zip(out) {
            *o = (q as i8) as f32 * d;
        }
    }
}

// ---------------------------------------------------------------- encoding

/// The minimum and maximum, skipping NaN (C's `if (v < min) min = v;`
/// starting from ±FLT_MAX).
fn min_max(x: &[f32; QK]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1/d`, or 0 for a zero scale (C's `d ? 1.0f/d : 0.0f`; NaN is truthy).
fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

pub(super) fn quantize_q4_0(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<Q4_0_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (max, _) = signed_absmax(x);
        let d = max / -8.0;
        let id = inverse_or_zero(d);
        put_f16(block, 0, d);
        for j in 0..HALF {
            let q0 = (truncate_to_i8(x[j] * id + 8.5) as i32).min(15) as u8;
            let q1 = (truncate_to_i8(x[j + HALF] * id + 8.5) as i32).min(15) as u8;
            block[2 + j] = q0 | (q1 << 4);
        }
    }
}

pub(super) fn quantize_q4_1(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<Q4_1_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        put_f16(block, 0, d);
        put_f16(block, 2, min);
        for j in 0..HALF {
            let q0 = (truncate_to_i8((x[j] - min) * id + 0.5) as i32).min(15) as u8;
            let q1 = (truncate_to_i8((x[j + HALF] - min) * id + 0.5) as i32).min(15) as u8;
            block[4 + j] = q0 | (q1 << 4);
        }
    }
}

/// Packs the 32 five-bit values `q` of a Q5 block: low nibbles into `qs`,
/// fifth bits into the returned `qh`.
fn pack_q5(q: &[u8; QK], qs: &mut [u8]) -> u32 {
    let mut qh = 0u32;
    for (j, byte) in qs.iter_mut().take(HALF).enumerate() {
        let (q0, q1) = (q[j], q[j + HALF]);
        *byte = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + HALF);
    }
    qh
}

pub(super) fn quantize_q5_0(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<Q5_0_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (max, _) = signed_absmax(x);
        let d = max / -16.0;
        let id = inverse_or_zero(d);
        put_f16(block, 0, d);
        let q = x.map(|v| (truncate_to_i8(v * id + 16.5) as i32).min(31) as u8);
        let qh = pack_q5(&q, &mut block[6..]);
        block[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

pub(super) fn quantize_q5_1(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<Q5_1_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        put_f16(block, 0, d);
        put_f16(block, 2, min);
        // No clamp to 31 here, unlike Q5_0 (as in ggml).
        let q = x.map(|v| truncate_to_u8((v - min) * id + 0.5));
        let qh = pack_q5(&q, &mut block[8..]);
        block[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Q8_0's and Q8_1's scale `d = amax/127` and eight-bit values
/// `roundf(x/d)`, as `(d, q)`.
fn quantize_q8(x: &[f32; QK]) -> (f32, [i8; QK]) {
    let amax = x.iter().fold(0.0f32, |amax, &v| max_like_c(amax, v.abs()));
    let d = amax / 127.0;
    let id = inverse_or_zero(d);
    (d, x.map(|v| truncate_to_i8((v * id).round())))
}

/// ggml's `MAX(a, b)` macro: `a > b ? a : b` (so a NaN `b` wins).
fn max_like_c(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

pub(super) fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<Q8_0_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (d, q) = quantize_q8(x);
        put_f16(block, 0, d);
        for (byte, q) in block[2..].iter_mut().zip(q) {
            *byte = q as u8;
        }
    }
}

pub(super) fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<Q8_1_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (d, q) = quantize_q8(x);
        let sum: i32 = q.iter().map(|&q| q as i32).sum();
        put_f16(block, 0, d);
        put_f16(block, 2, sum as f32 * d);
        for (byte, q) in block[4..].iter_mut().zip(q) {
            *byte = q as u8;
        }
    }
}

// ------------------------------------------------------------ dot products

/// Q8_0's or Q8_1's eight-bit values at `block[at..at + 32]`.
#[inline(always)]
fn q8_values<const N: usize>(block: &[u8; N], at: usize) -> [i32; QK] {
    std::array::from_fn(|j| block[at + j] as i8 as i32)
}

pub(super) fn vec_dot_q4_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q4_0_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let q8 = q8_values(by, 2);
        let mut sumi = 0i32;
        for j in 0..HALF {
            let q = bx[2 + j];
            sumi += ((q & 0x0f) as i32 - 8) * q8[j] + ((q >> 4) as i32 - 8) * q8[j + HALF];
        }
        sumf += sumi as f32 * f16_at(bx, 0) * f16_at(by, 0);
    }
    sumf
}

pub(super) fn vec_dot_q4_1_q8_1(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q4_1_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_1_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let q8 = q8_values(by, 4);
        let mut sumi = 0i32;
        for j in 0..HALF {
            let q = bx[4 + j];
            sumi += (q & 0x0f) as i32 * q8[j] + (q >> 4) as i32 * q8[j + HALF];
        }
        sumf += (f16_at(bx, 0) * f16_at(by, 0)) * sumi as f32 + f16_at(bx, 2) * f16_at(by, 2);
    }
    sumf
}

pub(super) fn vec_dot_q5_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q5_0_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let qh = fifth_bits(bx, 2);
        let q8 = q8_values(by, 2);
        let mut sumi = 0i32;
        for j in 0..HALF {
            let (q0, q1) = q5_pair(bx[6 + j], qh, j);
            sumi += (q0 - 16) * q8[j] + (q1 - 16) * q8[j + HALF];
        }
        sumf += (f16_at(bx, 0) * f16_at(by, 0)) * sumi as f32;
    }
    sumf
}

pub(super) fn vec_dot_q5_1_q8_1(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q5_1_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_1_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let qh = fifth_bits(bx, 4);
        let q8 = q8_values(by, 4);
        let mut sumi = 0i32;
        for j in 0..HALF {
            let (q0, q1) = q5_pair(bx[8 + j], qh, j);
            sumi += q0 * q8[j] + q1 * q8[j + HALF];
        }
        sumf += (f16_at(bx, 0) * f16_at(by, 0)) * sumi as f32 + f16_at(bx, 2) * f16_at(by, 2);
    }
    sumf
}

pub(super) fn vec_dot_q8_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q8_0_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let (qx, qy) = (q8_values(bx, 2), q8_values(by, 2));
        let sumi: i32 = qx.iter().zip(&qy).map(|(a, b)| a * b).sum();
        sumf += sumi as f32 * (f16_at(bx, 0) * f16_at(by, 0));
    }
    sumf
}
