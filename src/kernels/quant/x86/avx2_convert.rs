//! AVX2 row conversions, equal to the scalar reference bit for bit: the
//! activation quantizers (Q8_0, Q8_1, Q8_K) and every dequantizer.
//!
//! Each vector lane performs the reference's float operations on its
//! element in the reference's order (one multiply, then the one add or
//! subtract where the reference has one; no FMA), with the same per-group
//! scales computed by the same scalar products, so every output float is
//! identical. The integer conversions reproduce the reference's exactly:
//! `roundf` (half away from zero) from a truncation and a comparison, C's
//! float → int truncation with `cvttps2dq` (which yields the same
//! "integer indefinite" for NaN and out-of-range values), and the
//! narrowing `as i8` by masking to the low byte before the (then lossless)
//! unsigned packs.

use std::arch::x86_64::*;

use bytemuck::bytes_of_mut;

use crate::kernels::quant::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K,
};
use crate::kernels::quant::fp16::f32_to_f16_bits;
use crate::kernels::quant::legacy;
use crate::kernels::quant::x86::avx2_dot_k::{
    iq4_xs_scales, k4_decode_header, k4_header, q3_k_scales, q5_k_levels, q6_k_levels, q8_k_scale,
};
use crate::kernels::quant::x86::avx2_dot_legacy::{iq4_levels, iq4_table, q5_levels};
use crate::kernels::quant::x86::avx2_ops::{f16_splat, f16_to_f32, hsum_i32x8, nibbles_32};
use crate::kernels::quant::x86::memory::{load_256, load_f32x8, store_128, store_256, store_f32x8};

// ------------------------------------------------------------- quantizing

/// ggml's fp16 conversion of `value` (`f32_to_f16_bits`): F16C's
/// round-to-nearest-even conversion, which is what `half` computes, and the
/// canonical quiet NaN for NaN.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_bytes(value: f32) -> [u8; 2] {
    if value.is_nan() {
        return f32_to_f16_bits(value).to_le_bytes();
    }
    let bits = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(value));
    (_mm_cvtsi128_si32(bits) as u16).to_le_bytes()
}

/// The eight-float chunks of a 32-element block.
#[inline]
#[target_feature(enable = "avx2")]
fn load_32(x: &[f32; 32]) -> [__m256; 4] {
    let mut v = [_mm256_setzero_ps(); 4];
    let chunks = x.as_chunks::<8>().0;
    for i in 0..4 {
        v[i] = load_f32x8(&chunks[i]);
    }
    v
}

/// `|v|` (the sign bit cleared).
#[inline]
#[target_feature(enable = "avx2")]
fn abs(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// `roundf` of each lane: half-way cases away from zero. `x − trunc(x)`
/// is exact, and where it reaches ±0.5 the integer `trunc(x) ± 1` is too.
/// NaN stays NaN, infinities stay infinite.
#[inline]
#[target_feature(enable = "avx2")]
fn round_half_away(x: __m256) -> __m256 {
    // trunc(x ± h) with h = 0.5 − 2^-25, the float just below one half,
    // signed like x: below a half-way point the exact sum stays below the
    // next integer (and rounds to at most the float below it); at a
    // half-way point n + 0.5 it lies 2^-25 under n + 1, nearer to it than
    // to any other float, so it rounds up to n + 1; above, it passes
    // n + 1. Integers (|x| ≥ 2^23 in particular) stay put, as do NaN and
    // infinities. `q8_rounding_equals_roundf_on_every_float` checks it.
    const JUST_BELOW_HALF: f32 = f32::from_bits(0x3eff_ffff);
    let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
    let nudge = _mm256_or_ps(sign, _mm256_set1_ps(JUST_BELOW_HALF));
    _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm256_add_ps(x, nudge))
}

/// The low bytes of 32 i32 lanes (C's `(int8_t)` of an int), in order.
#[inline]
#[target_feature(enable = "avx2")]
fn low_bytes(q: [__m256i; 4]) -> __m256i {
    let byte = _mm256_set1_epi32(0xff);
    let [a, b, c, d] = q.map(|v| _mm256_and_si256(v, byte));
    // The packs saturate, but every value is now 0..=255: lossless. They
    // work per 128-bit lane; the permutation restores element order.
    let words_ab = _mm256_packus_epi32(a, b);
    let words_cd = _mm256_packus_epi32(c, d);
    let bytes = _mm256_packus_epi16(words_ab, words_cd);
    _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Q8_0's and Q8_1's scale and quants of one block (`quantize_q8`), or
/// `None` if the block holds a NaN: the reference's running `MAX` then
/// depends on where the NaN is, and the caller takes the scalar code.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn quantize_q8_block(x: &[f32; 32]) -> Option<(f32, __m256i)> {
    let v = load_32(x);
    let unordered = |a: __m256, b: __m256| _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b);
    let nan = _mm256_or_ps(unordered(v[0], v[1]), unordered(v[2], v[3]));
    if _mm256_movemask_ps(nan) != 0 {
        return None;
    }
    // Without NaN, the running maximum from 0 is the maximum.
    let max8 =
        _mm256_max_ps(_mm256_max_ps(abs(v[0]), abs(v[1])), _mm256_max_ps(abs(v[2]), abs(v[3])));
    let max4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps::<1>(max8));
    let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
    let amax = _mm_cvtss_f32(_mm_max_ss(max2, _mm_movehdup_ps(max2)));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let id = _mm256_set1_ps(id);
    let q = v.map(|v| _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v, id))));
    Some((d, low_bytes(q)))
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn quantize_q8_0(src: &[f32], dst: &mut [BlockQ8_0]) {
    for (x, block) in src.as_chunks::<32>().0.iter().zip(dst) {
        match quantize_q8_block(x) {
            Some((d, q)) => {
                block.d = f16_bytes(d);
                store_256(&mut block.qs, q);
            }
            None => legacy::quantize_q8_0(x, bytes_of_mut(block)),
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn quantize_q8_1(src: &[f32], dst: &mut [BlockQ8_1]) {
    for (x, block) in src.as_chunks::<32>().0.iter().zip(dst) {
        match quantize_q8_block(x) {
            Some((d, q)) => {
                // Σq of the stored bytes, at most 32·128.
                let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
                let sum = hsum_i32x8(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
                block.d = f16_bytes(d);
                block.s = f16_bytes(sum as f32 * d);
                store_256(&mut block.qs, q);
            }
            None => legacy::quantize_q8_1(x, bytes_of_mut(block)),
        }
    }
}

/// ggml's `nearest_int` of each lane (the magic-number trick, bit for
/// bit, garbage for huge values and NaN included).
#[inline]
#[target_feature(enable = "avx2")]
fn nearest_int(x: __m256) -> __m256i {
    let biased = _mm256_castps_si256(_mm256_add_ps(x, _mm256_set1_ps(12_582_912.0)));
    let mantissa = _mm256_and_si256(biased, _mm256_set1_epi32(0x007f_ffff));
    _mm256_sub_epi32(mantissa, _mm256_set1_epi32(0x0040_0000))
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn quantize_q8_k(src: &[f32], dst: &mut [BlockQ8K]) {
    for (x, block) in src.as_chunks::<256>().0.iter().zip(dst) {
        let chunks = x.as_chunks::<8>().0;
        // `signed_absmax`: NaN never wins (`max` returns its second
        // operand, the running maximum, when the first is NaN).
        let mut max8 = _mm256_setzero_ps();
        for chunk in chunks {
            max8 = _mm256_max_ps(abs(load_f32x8(chunk)), max8);
        }
        let max4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps::<1>(max8));
        let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        let amax = _mm_cvtss_f32(_mm_max_ss(max2, _mm_movehdup_ps(max2)));
        if amax == 0.0 {
            // ggml leaves the sums unwritten here; they are zero like the rest.
            *block = bytemuck::Zeroable::zeroed();
            continue;
        }
        // The element of largest magnitude: the first one reaching it.
        let amax8 = _mm256_set1_ps(amax);
        let mut max = amax;
        for (i, chunk) in chunks.iter().enumerate() {
            let hits =
                _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs(load_f32x8(chunk)), amax8));
            if hits != 0 {
                max = x.get(8 * i + hits.trailing_zeros() as usize).copied().unwrap_or(amax);
                break;
            }
        }
        let iscale = -127.0 / max;
        let iscale8 = _mm256_set1_ps(iscale);
        for (x32, qs) in x.as_chunks::<32>().0.iter().zip(&mut block.qs) {
            let v = load_32(x32);
            let q = v.map(|v| {
                _mm256_min_epi32(nearest_int(_mm256_mul_ps(iscale8, v)), _mm256_set1_epi32(127))
            });
            store_256(qs, low_bytes(q));
        }
        block.d = (1.0 / iscale).to_le_bytes();
        let (sums, _) = block.bsums.as_chunks_mut::<2>();
        for (sum, group) in sums.iter_mut().zip(block.qs.as_flattened().as_chunks::<16>().0) {
            // At most 16·128 in magnitude: fits an i16.
            let total: i32 = group.iter().map(|&q| q as i8 as i32).sum();
            *sum = (total as i16).to_le_bytes();
        }
    }
}

// ----------------------------------------------------------- dequantizing

/// What follows the multiply in the reference's formula for a group.
#[derive(Clone, Copy)]
enum Then {
    /// `level·d`.
    Nothing,
    /// `level·d + c` (Q4_1, Q5_1: the minimum).
    Add([__m256; 2]),
    /// `level·d − c` (Q2_K, Q4_K, Q5_K: the scaled minimum).
    Subtract([__m256; 2]),
}

/// `out[e] = level[e] as f32 · d[e / 16]`, then `then`, for 32 signed
/// level bytes; `d` (and `then`'s constants) for elements 0..16, then
/// 16..32, broadcast.
#[inline]
#[target_feature(enable = "avx2")]
fn decode_32(levels: __m256i, d: [__m256; 2], then: Then, out: &mut [f32; 32]) {
    let low = _mm256_castsi256_si128(levels);
    let high = _mm256_extracti128_si256::<1>(levels);
    let eights = [low, _mm_srli_si128::<8>(low), high, _mm_srli_si128::<8>(high)];
    let outs = out.as_chunks_mut::<8>().0;
    for i in 0..4 {
        let values = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(eights[i]));
        let scaled = _mm256_mul_ps(values, d[i / 2]);
        let result = match then {
            Then::Nothing => scaled,
            Then::Add(c) => _mm256_add_ps(scaled, c[i / 2]),
            Then::Subtract(c) => _mm256_sub_ps(scaled, c[i / 2]),
        };
        if let Some(out) = outs.get_mut(i) {
            store_f32x8(out, result);
        }
    }
}

/// `[v, v]`, broadcast: one scale for a whole 32-element group.
#[inline]
#[target_feature(enable = "avx2")]
fn both(v: f32) -> [__m256; 2] {
    [_mm256_set1_ps(v); 2]
}

/// `[a, b]`, broadcast: the scales of two 16-element groups.
#[inline]
#[target_feature(enable = "avx2")]
fn pair(a: f32, b: f32) -> [__m256; 2] {
    [_mm256_set1_ps(a), _mm256_set1_ps(b)]
}

/// The 32-element blocks of `dst`.
fn outputs_32(dst: &mut [f32]) -> &mut [[f32; 32]] {
    dst.as_chunks_mut::<32>().0
}

/// The 256-element blocks of `dst`, each as eight groups of 32.
fn outputs_256(dst: &mut [f32]) -> impl Iterator<Item = &mut [[f32; 32]]> {
    dst.as_chunks_mut::<256>().0.iter_mut().map(|out| out.as_chunks_mut::<32>().0)
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q4_0(src: &[BlockQ4_0], dst: &mut [f32]) {
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let d = f16_splat(x.d);
        let levels = _mm256_sub_epi8(nibbles_32(&x.qs), _mm256_set1_epi8(8));
        decode_32(levels, [d, d], Then::Nothing, out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q4_1(src: &[BlockQ4_1], dst: &mut [f32]) {
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let (d, m) = (f16_splat(x.d), f16_splat(x.m));
        decode_32(nibbles_32(&x.qs), [d, d], Then::Add([m, m]), out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q5_0(src: &[BlockQ5_0], dst: &mut [f32]) {
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let d = f16_splat(x.d);
        let levels = _mm256_sub_epi8(q5_levels(&x.qs, x.qh), _mm256_set1_epi8(16));
        decode_32(levels, [d, d], Then::Nothing, out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q5_1(src: &[BlockQ5_1], dst: &mut [f32]) {
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let (d, m) = (f16_splat(x.d), f16_splat(x.m));
        decode_32(q5_levels(&x.qs, x.qh), [d, d], Then::Add([m, m]), out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q8_0(src: &[BlockQ8_0], dst: &mut [f32]) {
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let d = f16_splat(x.d);
        decode_32(load_256(&x.qs), [d, d], Then::Nothing, out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q8_1(src: &[BlockQ8_1], dst: &mut [f32]) {
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let d = f16_splat(x.d);
        decode_32(load_256(&x.qs), [d, d], Then::Nothing, out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_iq4_nl(src: &[BlockIq4Nl], dst: &mut [f32]) {
    let table = iq4_table();
    for (x, out) in src.iter().zip(outputs_32(dst)) {
        let d = f16_splat(x.d);
        decode_32(iq4_levels(table, &x.qs), [d, d], Then::Nothing, out);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q2_k(src: &[BlockQ2K], dst: &mut [f32]) {
    let three = _mm256_set1_epi8(3);
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let (d, min) = (f16_to_f32(x.d), f16_to_f32(x.dmin));
        // Group g's scale and minimum: d·(sc & 15), min·(sc >> 4).
        let dl = x.scales.map(|sc| d * (sc & 0x0f) as f32);
        let ml = x.scales.map(|sc| min * (sc >> 4) as f32);
        for half in 0..2 {
            let mut bits = load_256(&x.qs[half]);
            for k in 0..4 {
                let (chunk, g) = (4 * half + k, 8 * half + 2 * k);
                let levels = _mm256_and_si256(bits, three);
                let then = Then::Subtract(pair(ml[g], ml[g + 1]));
                if let Some(out) = outs.get_mut(chunk) {
                    decode_32(levels, pair(dl[g], dl[g + 1]), then, out);
                }
                bits = _mm256_srli_epi16::<2>(bits);
            }
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q3_k(src: &[BlockQ3K], dst: &mut [f32]) {
    let (three, four) = (_mm256_set1_epi8(3), _mm256_set1_epi8(4));
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let d_all = f16_to_f32(x.d);
        let mut scales = [0u8; 16];
        store_128(&mut scales, q3_k_scales(&x.scales));
        let dl = scales.map(|s| d_all * (s as i8) as f32);
        let mut high = load_256(&x.hmask);
        for half in 0..2 {
            let mut bits = load_256(&x.qs[half]);
            for k in 0..4 {
                let (chunk, g) = (4 * half + k, 8 * half + 2 * k);
                let third = _mm256_and_si256(_mm256_slli_epi16::<2>(high), four);
                let levels =
                    _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(bits, three), third), four);
                if let Some(out) = outs.get_mut(chunk) {
                    decode_32(levels, pair(dl[g], dl[g + 1]), Then::Nothing, out);
                }
                bits = _mm256_srli_epi16::<2>(bits);
                high = _mm256_srli_epi16::<1>(high);
            }
        }
    }
}

/// Q4_K's and Q5_K's eight `(d·scale, min·minimum)` pairs.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn k4_group_scales(header: &[u8; 16]) -> ([f32; 8], [f32; 8]) {
    let (d_dmin, scales_and_mins) = k4_decode_header(header);
    let (d, min) = (_mm_cvtss_f32(d_dmin), _mm_cvtss_f32(_mm_movehdup_ps(d_dmin)));
    let mut bytes = [0u8; 16];
    store_128(&mut bytes, scales_and_mins);
    let dl = std::array::from_fn(|g| d * bytes[g] as f32);
    let ml = std::array::from_fn(|g| min * bytes[8 + g] as f32);
    (dl, ml)
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q4_k(src: &[BlockQ4K], dst: &mut [f32]) {
    let nibble = _mm256_set1_epi8(0x0f);
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let (dl, ml) = k4_group_scales(k4_header(x));
        for j in 0..4 {
            let bits = load_256(&x.qs[j]);
            let low = _mm256_and_si256(bits, nibble);
            let high = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), nibble);
            for (k, levels) in [(2 * j, low), (2 * j + 1, high)] {
                if let Some(out) = outs.get_mut(k) {
                    decode_32(levels, both(dl[k]), Then::Subtract(both(ml[k])), out);
                }
            }
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q5_k(src: &[BlockQ5K], dst: &mut [f32]) {
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let (dl, ml) = k4_group_scales(k4_header(x));
        let levels = q5_k_levels(x);
        for g in 0..8 {
            if let Some(out) = outs.get_mut(g) {
                decode_32(levels[g], both(dl[g]), Then::Subtract(both(ml[g])), out);
            }
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q6_k(src: &[BlockQ6K], dst: &mut [f32]) {
    let thirty_two = _mm256_set1_epi8(32);
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let d = f16_to_f32(x.d);
        let ds = x.scales.map(|s| d * (s as i8) as f32);
        for half in 0..2 {
            let levels = q6_k_levels(x, half);
            for k in 0..4 {
                let (chunk, g) = (4 * half + k, 8 * half + 2 * k);
                let signed = _mm256_sub_epi8(levels[k], thirty_two);
                if let Some(out) = outs.get_mut(chunk) {
                    decode_32(signed, pair(ds[g], ds[g + 1]), Then::Nothing, out);
                }
            }
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q8_k(src: &[BlockQ8K], dst: &mut [f32]) {
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let d = q8_k_scale(x);
        for (qs, out) in x.qs.iter().zip(outs) {
            decode_32(load_256(qs), both(d), Then::Nothing, out);
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_iq4_xs(src: &[BlockIq4Xs], dst: &mut [f32]) {
    let table = iq4_table();
    for (x, outs) in src.iter().zip(outputs_256(dst)) {
        let d = f16_to_f32(x.d);
        let scales = iq4_xs_scales(x).to_le_bytes();
        for (g, (qs, out)) in x.qs.iter().zip(outs).enumerate() {
            let dl = d * (scales.get(g).copied().unwrap_or(32) as i32 - 32) as f32;
            decode_32(iq4_levels(table, qs), both(dl), Then::Nothing, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::x86::Avx2;

    #[test]
    fn q8_rounding_equals_roundf_on_every_float() {
        // All 2^32 patterns take a few seconds in release builds; debug
        // builds check every 61st.
        if Avx2::detect().is_none() {
            return;
        }
        let step = if cfg!(debug_assertions) { 61 } else { 1 };
        let mut lanes = [0f32; 8];
        let mut rounded = [0f32; 8];
        for base in (0..=u32::MAX / 8).step_by(step) {
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane = f32::from_bits(base * 8 + i as u32);
            }
            // SAFETY: AVX2 was detected above.
            unsafe { store_f32x8(&mut rounded, round_half_away(load_f32x8(&lanes))) };
            for (&x, &r) in lanes.iter().zip(&rounded) {
                let expected = x.round();
                assert!(
                    r.to_bits() == expected.to_bits()
                        || (r.is_nan() && expected.is_nan())
                        || (r == 0.0 && expected == 0.0),
                    "{x:e} ({:#x}): {r} vs {expected}",
                    x.to_bits()
                );
            }
        }
    }

    #[test]
    fn f16_bytes_equals_ggml_s_conversion_on_every_4099th_f32() {
        // Every fp16 the quantizers store goes through `f16_bytes`.
        if Avx2::detect().is_none() {
            return;
        }
        for i in 0..(1u64 << 20) {
            let value = f32::from_bits((i * 4099) as u32);
            // SAFETY: AVX2 and F16C were detected above.
            let ours = unsafe { f16_bytes(value) };
            assert_eq!(
                ours,
                f32_to_f16_bits(value).to_le_bytes(),
                "{value:e} ({:#x})",
                value.to_bits()
            );
        }
    }
}
