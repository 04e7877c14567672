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

/// The two 16-element halves of a 32-element output block.
#[inline(always)]
fn halves(out: &mut [f32; QK]) -> Option<(&mut [f32; HALF], &mut [f32; HALF])> {
    match out.as_chunks_mut::<HALF>().0 {
        [low, high] => Some((low, high)),
        _ => None,
    }
}

/// The last `M` bytes of a block (its packed quants), as an array.
#[inline(always)]
fn tail<const N: usize, const M: usize>(block: &[u8; N]) -> Option<&[u8; M]> {
    block.last_chunk::<M>()
}

// The per-block decoders below are `inline(never)` on purpose: inlined,
// LLVM unrolls the 16-element loop and then vectorizes across four blocks
// instead, gathering their bytes one at a time (measured: 4.4 instead of
// 6.9 G elements/s for Q4_0).

#[inline(never)]
fn decode_q4_0_block(block: &[u8; Q4_0_BYTES], out: &mut [f32; QK]) {
    let d = f16_at(block, 0);
    // Both always exist (fixed sizes); the `else` is dead code that keeps
    // this panic-free without an `unwrap`.
    let (Some(qs), Some((low, high))) = (tail::<_, HALF>(block), halves(out)) else {
        return;
    };
    for j in 0..HALF {
        low[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
        high[j] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

pub(super) fn dequantize_q4_0(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q4_0_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        decode_q4_0_block(block, out);
    }
}

#[inline(never)]
fn decode_q4_1_block(block: &[u8; Q4_1_BYTES], out: &mut [f32; QK]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let (Some(qs), Some((low, high))) = (tail::<_, HALF>(block), halves(out)) else {
        return;
    };
    for j in 0..HALF {
        low[j] = (qs[j] & 0x0f) as f32 * d + m;
        high[j] = (qs[j] >> 4) as f32 * d + m;
    }
}

pub(super) fn dequantize_q4_1(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q4_1_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        decode_q4_1_block(block, out);
    }
}

/// The fifth bits of a Q5 block (`qh` as a little-endian u32).
fn fifth_bits<const N: usize>(block: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
}

/// Byte `b` spread over eight bytes: byte `i` is 16 where bit `i` of `b`
/// is set, else 0 (little-endian in the u64).
const FIFTH_BIT_SPREAD: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut bit = 0;
        while bit < 8 {
            if byte & (1 << bit) != 0 {
                table[byte] |= 16 << (8 * bit);
            }
            bit += 1;
        }
        byte += 1;
    }
    table
};

/// A Q5 block's fifth bits as 16 (set) or 0 per element, via
/// [`FIFTH_BIT_SPREAD`]: a table lookup per eight elements instead of a
/// variable shift per element.
#[inline(always)]
fn spread_fifth_bits(qh: u32) -> [u8; QK] {
    let mut spread = [0u8; QK];
    for (eight, byte) in spread.as_chunks_mut::<8>().0.iter_mut().zip(qh.to_le_bytes()) {
        *eight = FIFTH_BIT_SPREAD[byte as usize].to_le_bytes();
    }
    spread
}

/// Q4/Q5 levels `nibble + fifth[e]` of elements `j` and `j + 16`, from
/// packed byte `qs[j]`.
#[inline(always)]
fn nibble_levels(q: u8, fifth_low: u8, fifth_high: u8) -> (i32, i32) {
    (((q & 0x0f) | fifth_low) as i32, ((q >> 4) | fifth_high) as i32)
}

/// No fifth bits (Q4_0, Q4_1).
const NO_FIFTH_BITS: [u8; QK] = [0; QK];

pub(super) fn dequantize_q5_0(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q5_0_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        let fifth = spread_fifth_bits(fifth_bits(block, 2));
        let (fifth_low, fifth_high) = fifth.split_at(HALF);
        let (low, high) = out.split_at_mut(HALF);
        let levels = block[6..].iter().zip(fifth_low).zip(fifth_high);
        for (((&q, &f0), &f1), (lo, hi)) in levels.zip(low.iter_mut().zip(high)) {
            let (q0, q1) = nibble_levels(q, f0, f1);
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
        let fifth = spread_fifth_bits(fifth_bits(block, 4));
        let (fifth_low, fifth_high) = fifth.split_at(HALF);
        let (low, high) = out.split_at_mut(HALF);
        let levels = block[8..].iter().zip(fifth_low).zip(fifth_high);
        for (((&q, &f0), &f1), (lo, hi)) in levels.zip(low.iter_mut().zip(high)) {
            let (q0, q1) = nibble_levels(q, f0, f1);
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
        let Some(qs) = tail::<_, QK>(block) else { continue };
        for j in 0..QK {
            out[j] = (qs[j] as i8) as f32 * d;
        }
    }
}

pub(super) fn dequantize_q8_1(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q8_1_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        let Some(qs) = tail::<_, QK>(block) else { continue };
        for j in 0..QK {
            out[j] = (qs[j] as i8) as f32 * d;
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

/// `Σ (level[e] − offset)·q8[e]` over one block: `qs` holds the 16 packed
/// bytes (low nibbles: elements 0..16, high: 16..32), `fifth` each
/// element's fifth bit as 16 or 0, `q8` 32 signed bytes. Integer sums are
/// exact, so their order is free: one element-wise loop over fixed-length
/// slices, which compiles to SIMD.
#[inline(always)]
fn nibble_dot(qs: &[u8], fifth: &[u8; QK], offset: i32, q8: &[u8]) -> i32 {
    let (fifth_low, fifth_high) = fifth.split_at(HALF);
    let (q8_low, q8_high) = q8.split_at(HALF.min(q8.len()));
    let levels = qs.iter().zip(fifth_low).zip(fifth_high);
    let mut sumi = 0i32;
    for (((&q, &f0), &f1), (&y0, &y1)) in levels.zip(q8_low.iter().zip(q8_high)) {
        let (q0, q1) = nibble_levels(q, f0, f1);
        sumi += (q0 - offset) * (y0 as i8) as i32 + (q1 - offset) * (y1 as i8) as i32;
    }
    sumi
}

pub(super) fn vec_dot_q4_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q4_0_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let sumi = nibble_dot(&bx[2..], &NO_FIFTH_BITS, 8, &by[2..]);
        sumf += sumi as f32 * f16_at(bx, 0) * f16_at(by, 0);
    }
    sumf
}

pub(super) fn vec_dot_q4_1_q8_1(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q4_1_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_1_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let sumi = nibble_dot(&bx[4..], &NO_FIFTH_BITS, 0, &by[4..]);
        sumf += (f16_at(bx, 0) * f16_at(by, 0)) * sumi as f32 + f16_at(bx, 2) * f16_at(by, 2);
    }
    sumf
}

pub(super) fn vec_dot_q5_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q5_0_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let fifth = spread_fifth_bits(fifth_bits(bx, 2));
        let sumi = nibble_dot(&bx[6..], &fifth, 16, &by[2..]);
        sumf += (f16_at(bx, 0) * f16_at(by, 0)) * sumi as f32;
    }
    sumf
}

pub(super) fn vec_dot_q5_1_q8_1(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q5_1_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_1_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let fifth = spread_fifth_bits(fifth_bits(bx, 4));
        let sumi = nibble_dot(&bx[8..], &fifth, 0, &by[4..]);
        sumf += (f16_at(bx, 0) * f16_at(by, 0)) * sumi as f32 + f16_at(bx, 2) * f16_at(by, 2);
    }
    sumf
}

pub(super) fn vec_dot_q8_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q8_0_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0.0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let sumi: i32 =
            bx[2..].iter().zip(&by[2..]).map(|(&a, &b)| (a as i8) as i32 * (b as i8) as i32).sum();
        sumf += sumi as f32 * (f16_at(bx, 0) * f16_at(by, 0));
    }
    sumf
}
