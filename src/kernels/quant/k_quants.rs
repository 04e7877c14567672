//! The K quants: 256-element super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
//! and the activation format Q8_K.
//!
//! Block layouts (little-endian, packed), as in ggml-common.h:
//! * Q2_K (84 bytes): `scales: [u8; 16]` (low nibble: scale, high nibble:
//!   minimum, per 16 elements), `qs: [u8; 64]`, `d: f16`, `dmin: f16`;
//!   `x = d·scale·q − dmin·min`.
//! * Q3_K (110): `hmask: [u8; 32]`, `qs: [u8; 64]`, `scales: [u8; 12]`
//!   (sixteen 6-bit scales, biased by 32), `d: f16`; `x = d·(scale − 32)·q`
//!   with `q ∈ −4..4`.
//! * Q4_K (144): `d: f16`, `dmin: f16`, `scales: [u8; 12]` (eight 6-bit
//!   scales and minimums, per 32 elements), `qs: [u8; 128]`.
//! * Q5_K (176): `d`, `dmin`, `scales: [u8; 12]`, `qh: [u8; 32]`,
//!   `qs: [u8; 128]`.
//! * Q6_K (210): `ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`,
//!   `d: f16`; `x = d·scale·(q − 32)`.
//! * Q8_K (292): `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]` (sums of 16
//!   consecutive `qs`).
//!
//! Quants are mostly first unpacked into the elements' order ("levels"),
//! as ggml's dot products do, then scaled per group; both passes are plain
//! loops that the compiler vectorises (Q4_K's decoder does both in one
//! pass, which measured faster). As in ggml, integer sums are exact (no input can overflow
//! them: the bounds are noted where they are formed), and float operations
//! happen in ggml's order.

use std::array;

use crate::kernels::quant::QK_K;
use crate::kernels::quant::fp16::{f16_at, put_f16};
use crate::kernels::quant::rounding::nearest_int;
use crate::kernels::quant::scale_search::{
    ErrorNorm, GROUP_MAX_EPS, ScaleCandidates, affine_scale_search, signed_absmax,
    symmetric_scale_by_coordinate_descent, symmetric_scale_weighted_by_square,
};

pub(super) const Q2_K_BYTES: usize = 16 + 64 + 2 + 2;
pub(super) const Q3_K_BYTES: usize = 32 + 64 + 12 + 2;
pub(super) const Q4_K_BYTES: usize = 2 + 2 + 12 + 128;
pub(super) const Q5_K_BYTES: usize = 2 + 2 + 12 + 32 + 128;
pub(super) const Q6_K_BYTES: usize = 128 + 64 + 16 + 2;
pub(super) const Q8_K_BYTES: usize = 4 + QK_K + 2 * 16;

// ------------------------------------------------------ the packed layouts

/// Unpacks 64 bytes of two-bit quants (Q2_K, Q3_K `qs`; Q6_K `qh`):
/// element `128·n + 32·j + l` is bits `2j..2j+2` of byte `32·n + l`.
fn unpack_two_bit_planes(packed: &[u8]) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    for (out128, bytes) in levels.chunks_exact_mut(128).zip(packed.chunks_exact(32)) {
        for (shift, out32) in (0..8).step_by(2).zip(out128.chunks_exact_mut(32)) {
            for (level, &byte) in out32.iter_mut().zip(bytes) {
                *level = (byte >> shift) & 3;
            }
        }
    }
    levels
}

/// The inverse of [`unpack_two_bit_planes`] for levels below 4.
fn pack_two_bit_planes(levels: &[u8; QK_K], packed: &mut [u8]) {
    for (bytes, in128) in packed.chunks_exact_mut(32).zip(levels.chunks_exact(128)) {
        let (a, rest) = in128.split_at(32);
        let (b, rest) = rest.split_at(32);
        let (c, d) = rest.split_at(32);
        for ((((byte, &a), &b), &c), &d) in bytes.iter_mut().zip(a).zip(b).zip(c).zip(d) {
            *byte = a | (b << 2) | (c << 4) | (d << 6);
        }
    }
}

/// Unpacks 128 bytes of nibbles (Q4_K, Q5_K `qs`): element `64·j + l` is
/// the low nibble of byte `32·j + l`, element `64·j + 32 + l` its high
/// nibble.
fn unpack_nibble_planes(packed: &[u8]) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    for (out64, bytes) in levels.chunks_exact_mut(64).zip(packed.chunks_exact(32)) {
        let (low, high) = out64.split_at_mut(32);
        for ((lo, hi), &byte) in low.iter_mut().zip(high).zip(bytes) {
            *lo = byte & 0x0f;
            *hi = byte >> 4;
        }
    }
    levels
}

/// One high bit per element from 32 bytes (Q3_K `hmask`, Q5_K `qh`):
/// element `e`'s is bit `e / 32` of byte `e % 32`. Returned as 0 or 1.
fn unpack_high_bits(packed: &[u8]) -> [u8; QK_K] {
    let mut bits = [0u8; QK_K];
    for (bit, out32) in bits.chunks_exact_mut(32).enumerate() {
        for (out, &byte) in out32.iter_mut().zip(packed) {
            *out = (byte >> bit) & 1;
        }
    }
    bits
}

/// Sets bit `e / 32` of byte `e % 32` for every element `e` whose level is
/// at least `threshold`, and removes `threshold` from it.
fn split_high_bits(levels: &mut [u8; QK_K], threshold: u8, packed: &mut [u8]) {
    packed.fill(0);
    for (bit, in32) in levels.chunks_exact_mut(32).enumerate() {
        for (level, byte) in in32.iter_mut().zip(packed.iter_mut()) {
            if *level >= threshold {
                *byte |= 1 << bit;
                *level -= threshold;
            }
        }
    }
}

/// Q3_K's sixteen 6-bit scales (0..64; the scale is the value − 32): the
/// low four bits of scale `j` are nibble `j / 8` of byte `j % 8`, the high
/// two bits are bits `2·(j / 4)..` of byte `8 + j % 4`.
fn q3_k_scales(packed: &[u8; 12]) -> [i32; 16] {
    array::from_fn(|j| {
        let low = if j < 8 { packed[j] & 0x0f } else { packed[j - 8] >> 4 };
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | (high << 4)) as i32
    })
}

/// Q4_K's and Q5_K's eight 6-bit scales and eight 6-bit minimums (ggml's
/// `get_scale_min_k4`): bytes 0..4 hold scales 0..4, bytes 4..8 minimums
/// 0..4, bytes 8..12 the low nibbles of scales and minimums 4..8, whose high
/// two bits are the top bits of bytes 0..8.
fn scales_and_mins_k4(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let scales = array::from_fn(|j| {
        if j < 4 { packed[j] & 63 } else { (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4) }
    });
    let mins = array::from_fn(|j| {
        if j < 4 { packed[j + 4] & 63 } else { (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4) }
    });
    (scales, mins)
}

/// The inverse of [`scales_and_mins_k4`] for values below 64.
fn pack_scales_and_mins_k4(scales: &[u8; 8], mins: &[u8; 8]) -> [u8; 12] {
    let mut packed = [0u8; 12];
    packed[..4].copy_from_slice(&scales[..4]);
    packed[4..8].copy_from_slice(&mins[..4]);
    for j in 4..8 {
        packed[j + 4] = (scales[j] & 0x0f) | ((mins[j] & 0x0f) << 4);
        packed[j - 4] |= (scales[j] >> 4) << 6;
        packed[j] |= (mins[j] >> 4) << 6;
    }
    packed
}

/// A copy of the `N` bytes at `block[at..at + N]`.
#[inline(always)]
fn bytes_at<const B: usize, const N: usize>(block: &[u8; B], at: usize) -> [u8; N] {
    array::from_fn(|i| block[at + i])
}

// ---------------------------------------------------------------- decoding

pub(super) fn dequantize_q2_k(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q2_K_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 80);
        let min = f16_at(block, 82);
        let levels = unpack_two_bit_planes(&block[16..80]);
        for ((out, levels), &sc) in
            out.chunks_exact_mut(16).zip(levels.chunks_exact(16)).zip(&block[..16])
        {
            let dl = d * (sc & 0x0f) as f32;
            let ml = min * (sc >> 4) as f32;
            for (o, &q) in out.iter_mut().zip(levels) {
                *o = dl * q as f32 - ml;
            }
        }
    }
}

/// Q3_K's signed levels `q − (high bit ? 0 : 4)` in `−4..4`.
fn q3_k_levels(block: &[u8; Q3_K_BYTES]) -> [i8; QK_K] {
    let low = unpack_two_bit_planes(&block[32..96]);
    let high = unpack_high_bits(&block[..32]);
    array::from_fn(|e| low[e] as i8 - if high[e] != 0 { 0 } else { 4 })
}

pub(super) fn dequantize_q3_k(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q3_K_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        let d_all = f16_at(block, 108);
        let scales = q3_k_scales(&bytes_at(block, 96));
        let levels = q3_k_levels(block);
        for ((out, levels), &scale) in
            out.chunks_exact_mut(16).zip(levels.chunks_exact(16)).zip(&scales)
        {
            let dl = d_all * (scale - 32) as f32;
            for (o, &q) in out.iter_mut().zip(levels) {
                *o = dl * q as f32;
            }
        }
    }
}

/// Dequantizes one Q4_K block in one pass: per 64 elements, 32 bytes of
/// nibbles (low: the first 32 elements, high: the next 32), times the
/// sub-block's scale, minus its minimum.
#[inline(always)]
fn dequantize_q4_k_block(block: &[u8; Q4_K_BYTES], out: &mut [f32; QK_K]) {
    let (d, min) = (f16_at(block, 0), f16_at(block, 2));
    let (scales, mins) = scales_and_mins_k4(&bytes_at(block, 4));
    let pairs = scales.as_chunks::<2>().0.iter().zip(mins.as_chunks::<2>().0);
    for ((out64, bytes), (sc, m)) in
        out.chunks_exact_mut(64).zip(block[16..].chunks_exact(32)).zip(pairs)
    {
        let (d1, m1) = (d * sc[0] as f32, min * m[0] as f32);
        let (d2, m2) = (d * sc[1] as f32, min * m[1] as f32);
        let (low, high) = out64.split_at_mut(32);
        for ((lo, hi), &byte) in low.iter_mut().zip(high).zip(bytes) {
            *lo = d1 * (byte & 0x0f) as f32 - m1;
            *hi = d2 * (byte >> 4) as f32 - m2;
        }
    }
}

pub(super) fn dequantize_q4_k(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q4_K_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        dequantize_q4_k_block(block, out);
    }
}

/// Q5_K's levels in `0..32`: a nibble plus 16 for a set high bit.
fn q5_k_levels(block: &[u8; Q5_K_BYTES]) -> [u8; QK_K] {
    let low = unpack_nibble_planes(&block[48..]);
    let high = unpack_high_bits(&block[16..48]);
    array::from_fn(|e| low[e] + 16 * high[e])
}

pub(super) fn dequantize_q5_k(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q5_K_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        // Two passes (levels, then scales) measured faster here than
        // testing each element's fifth bit in the scaling loop.
        let levels = q5_k_levels(block);
        let (d, min) = (f16_at(block, 0), f16_at(block, 2));
        let (scales, mins) = scales_and_mins_k4(&bytes_at(block, 4));
        for (((out, levels), &sc), &m) in
            out.chunks_exact_mut(32).zip(levels.chunks_exact(32)).zip(&scales).zip(&mins)
        {
            let (dl, ml) = (d * sc as f32, min * m as f32);
            for (o, &q) in out.iter_mut().zip(levels) {
                *o = dl * q as f32 - ml;
            }
        }
    }
}

/// Q6_K's signed levels in `−32..32`: the low nibbles of `ql` (per 128
/// elements: bytes 0..32 low, 32..64 low, 0..32 high, 32..64 high) with two
/// high bits from `qh` (laid out like two-bit planes), minus 32.
fn q6_k_levels(block: &[u8; Q6_K_BYTES]) -> [i8; QK_K] {
    let high = unpack_two_bit_planes(&block[128..192]);
    let mut levels = [0i8; QK_K];
    for ((out128, ql), high128) in
        levels.chunks_exact_mut(128).zip(block[..128].chunks_exact(64)).zip(high.chunks_exact(128))
    {
        let (ql_a, ql_b) = ql.split_at(32);
        let (out_low, out_high) = out128.split_at_mut(64);
        let (out0, out1) = out_low.split_at_mut(32);
        let (out2, out3) = out_high.split_at_mut(32);
        let nibble_sources: [(&mut [i8], &[u8], u8); 4] =
            [(out0, ql_a, 0), (out1, ql_b, 0), (out2, ql_a, 4), (out3, ql_b, 4)];
        for ((out, ql, shift), high) in nibble_sources.into_iter().zip(high128.chunks_exact(32)) {
            for ((o, &q), &h) in out.iter_mut().zip(ql).zip(high) {
                *o = (((q >> shift) & 0x0f) | (h << 4)) as i8 - 32;
            }
        }
    }
    levels
}

pub(super) fn dequantize_q6_k(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q6_K_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 208);
        let levels = q6_k_levels(block);
        for ((out, levels), &scale) in
            out.chunks_exact_mut(16).zip(levels.chunks_exact(16)).zip(&block[192..208])
        {
            let ds = d * (scale as i8) as f32;
            for (o, &q) in out.iter_mut().zip(levels) {
                *o = ds * q as f32;
            }
        }
    }
}

/// Q8_K's f32 scale.
fn q8_k_scale(block: &[u8; Q8_K_BYTES]) -> f32 {
    f32::from_le_bytes(bytes_at(block, 0))
}

/// Q8_K's sixteen sums of 16 quants.
fn q8_k_sums(block: &[u8; Q8_K_BYTES]) -> [i32; 16] {
    array::from_fn(|j| i16::from_le_bytes([block[260 + 2 * j], block[261 + 2 * j]]) as i32)
}

pub(super) fn dequantize_q8_k(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<Q8_K_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = q8_k_scale(block);
        for (o, &q) in out.iter_mut().zip(&block[4..260]) {
            *o = d * (q as i8) as f32;
        }
    }
}

// ---------------------------------------------------------------- encoding

pub(super) fn quantize_q2_k(src: &[f32], dst: &mut [u8]) {
    const CANDIDATES: ScaleCandidates = ScaleCandidates { rmin: -0.5, rdelta: 0.1, steps: 15 };
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<Q2_K_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let mut levels = [0u8; QK_K];
        let mut aux = [0u8; 16];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let (mut max_scale, mut max_min) = (0f32, 0f32);
        for (((xg, lg), scale), min) in
            x.chunks_exact(16).zip(levels.chunks_exact_mut(16)).zip(&mut scales).zip(&mut mins)
        {
            let weights: [f32; 16] = array::from_fn(|l| xg[l].abs());
            (*scale, *min) =
                affine_scale_search(xg, &weights, 3, CANDIDATES, ErrorNorm::Absolute, lg, &mut aux);
            if *scale > max_scale {
                max_scale = *scale;
            }
            if *min > max_min {
                max_min = *min;
            }
        }

        let mut packed = [0u8; 16];
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (p, &scale) in packed.iter_mut().zip(&scales) {
                *p = nearest_int(iscale * scale) as u8;
            }
            put_f16(block, 80, max_scale / 15.0);
        } else {
            put_f16(block, 80, 0.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (p, &min) in packed.iter_mut().zip(&mins) {
                *p |= (nearest_int(iscale * min) << 4) as u8;
            }
            put_f16(block, 82, max_min / 15.0);
        } else {
            put_f16(block, 82, 0.0);
        }

        // Requantize against the scales as stored (rounded to fp16 and
        // four bits).
        let (d_all, dmin_all) = (f16_at(block, 80), f16_at(block, 82));
        for ((xg, lg), &p) in x.chunks_exact(16).zip(levels.chunks_exact_mut(16)).zip(&packed) {
            let d = d_all * (p & 0x0f) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = dmin_all * (p >> 4) as f32;
            for (level, &v) in lg.iter_mut().zip(xg) {
                *level = nearest_int((v + dm) / d).clamp(0, 3) as u8;
            }
        }
        block[..16].copy_from_slice(&packed);
        pack_two_bit_planes(&levels, &mut block[16..80]);
    }
}

pub(super) fn quantize_q3_k(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<Q3_K_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let mut signed_levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0f32, 0f32);
        for ((xg, lg), scale) in
            x.chunks_exact(16).zip(signed_levels.chunks_exact_mut(16)).zip(&mut scales)
        {
            *scale = symmetric_scale_by_coordinate_descent(xg, 4, lg);
            if scale.abs() > amax {
                amax = scale.abs();
                max_scale = *scale;
            }
        }

        let mut packed = [0u8; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &scale) in scales.iter().enumerate() {
                // ggml stores nearest_int's result in an int8_t first.
                let l = (nearest_int(iscale * scale) as i8 as i32).clamp(-32, 31) + 32;
                let low = (l & 0x0f) as u8;
                if j < 8 {
                    packed[j] = low;
                } else {
                    packed[j - 8] |= low << 4;
                }
                packed[8 + j % 4] |= ((l >> 4) << (2 * (j / 4))) as u8;
            }
            put_f16(block, 108, 1.0 / iscale);
        } else {
            put_f16(block, 108, 0.0);
        }

        let d_all = f16_at(block, 108);
        for ((xg, lg), &sc) in
            x.chunks_exact(16).zip(signed_levels.chunks_exact_mut(16)).zip(&q3_k_scales(&packed))
        {
            let d = d_all * (sc - 32) as f32;
            if d == 0.0 {
                continue;
            }
            for (level, &v) in lg.iter_mut().zip(xg) {
                *level = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
            }
        }

        // Levels are in 0..8 here.
        let mut levels = signed_levels.map(|l| l as u8);
        split_high_bits(&mut levels, 4, &mut block[..32]);
        pack_two_bit_planes(&levels, &mut block[32..96]);
        block[96..108].copy_from_slice(&packed);
    }
}

/// The shared part of Q4_K's and Q5_K's quantizers: per 32 elements, an
/// affine scale search weighted by `rms + |x|`; six-bit scales and
/// minimums; levels requantized against the stored scales. Writes `d`,
/// `dmin` and the packed scales into `block` and returns the levels.
fn quantize_scaled_by_k4<const B: usize>(
    x: &[f32; QK_K],
    nmax: i32,
    candidates: ScaleCandidates,
    block: &mut [u8; B],
) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    let mut aux = [0u8; 32];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for (((xg, lg), scale), min) in
        x.chunks_exact(32).zip(levels.chunks_exact_mut(32)).zip(&mut scales).zip(&mut mins)
    {
        let mut sum_x2 = 0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = array::from_fn(|l| av_x + xg[l].abs());
        (*scale, *min) =
            affine_scale_search(xg, &weights, nmax, candidates, ErrorNorm::Squared, lg, &mut aux);
        if *scale > max_scale {
            max_scale = *scale;
        }
        if *min > max_min {
            max_min = *min;
        }
    }

    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int's results in a uint8_t before clamping.
    let six_bit = |v: f32| (nearest_int(v) as u8).min(63);
    let packed = pack_scales_and_mins_k4(
        &scales.map(|scale| six_bit(inv_scale * scale)),
        &mins.map(|min| six_bit(inv_min * min)),
    );
    put_f16(block, 0, max_scale / 63.0);
    put_f16(block, 2, max_min / 63.0);
    block[4..16].copy_from_slice(&packed);

    let (d_all, dmin_all) = (f16_at(block, 0), f16_at(block, 2));
    let (sc, m) = scales_and_mins_k4(&packed);
    for (((xg, lg), &sc), &m) in
        x.chunks_exact(32).zip(levels.chunks_exact_mut(32)).zip(&sc).zip(&m)
    {
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for (level, &v) in lg.iter_mut().zip(xg) {
            *level = nearest_int((v + dm) / d).clamp(0, nmax) as u8;
        }
    }
    levels
}

/// The inverse of [`unpack_nibble_planes`] for levels below 16.
fn pack_nibble_planes(levels: &[u8; QK_K], packed: &mut [u8]) {
    for (bytes, in64) in packed.chunks_exact_mut(32).zip(levels.chunks_exact(64)) {
        let (low, high) = in64.split_at(32);
        for ((byte, &lo), &hi) in bytes.iter_mut().zip(low).zip(high) {
            *byte = lo | (hi << 4);
        }
    }
}

pub(super) fn quantize_q4_k(src: &[f32], dst: &mut [u8]) {
    const CANDIDATES: ScaleCandidates = ScaleCandidates { rmin: -1.0, rdelta: 0.1, steps: 20 };
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<Q4_K_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let levels = quantize_scaled_by_k4(x, 15, CANDIDATES, block);
        pack_nibble_planes(&levels, &mut block[16..]);
    }
}

pub(super) fn quantize_q5_k(src: &[f32], dst: &mut [u8]) {
    const CANDIDATES: ScaleCandidates = ScaleCandidates { rmin: -0.5, rdelta: 0.1, steps: 15 };
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<Q5_K_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let mut levels = quantize_scaled_by_k4(x, 31, CANDIDATES, block);
        split_high_bits(&mut levels, 16, &mut block[16..48]);
        pack_nibble_planes(&levels, &mut block[48..]);
    }
}

pub(super) fn quantize_q6_k(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<Q6_K_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let mut signed_levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for ((xg, lg), scale) in
            x.chunks_exact(16).zip(signed_levels.chunks_exact_mut(16)).zip(&mut scales)
        {
            *scale = symmetric_scale_weighted_by_square(xg, 32, lg);
            if scale.abs() > max_abs_scale {
                max_abs_scale = scale.abs();
                max_scale = *scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            block.fill(0);
            continue;
        }

        let iscale = -128.0 / max_scale;
        put_f16(block, 208, 1.0 / iscale);
        // ggml stores MIN(127, nearest_int(..)) in an int8_t.
        let packed: [i8; 16] = scales.map(|scale| nearest_int(iscale * scale).min(127) as i8);
        let d_all = f16_at(block, 208);
        for ((xg, lg), &sc) in
            x.chunks_exact(16).zip(signed_levels.chunks_exact_mut(16)).zip(&packed)
        {
            let d = d_all * sc as f32;
            if d == 0.0 {
                continue;
            }
            for (level, &v) in lg.iter_mut().zip(xg) {
                *level = (nearest_int(v / d).clamp(-32, 31) + 32) as i8;
            }
        }

        // Levels are in 0..64 here: low nibbles into `ql`, two high bits
        // into `qh`, the inverse of `q6_k_levels`.
        let levels = signed_levels.map(|l| l as u8);
        let high = levels.map(|l| l >> 4);
        pack_two_bit_planes(&high, &mut block[128..192]);
        for (ql, in128) in block[..128].chunks_exact_mut(64).zip(levels.chunks_exact(128)) {
            let (ql_a, ql_b) = ql.split_at_mut(32);
            let (first, second) = in128.split_at(64);
            let (l0, l1) = first.split_at(32);
            let (l2, l3) = second.split_at(32);
            for ((byte, &lo), &hi) in ql_a.iter_mut().zip(l0).zip(l2) {
                *byte = (lo & 0x0f) | ((hi & 0x0f) << 4);
            }
            for ((byte, &lo), &hi) in ql_b.iter_mut().zip(l1).zip(l3) {
                *byte = (lo & 0x0f) | ((hi & 0x0f) << 4);
            }
        }
        for (byte, sc) in block[192..208].iter_mut().zip(packed) {
            *byte = sc as u8;
        }
    }
}

pub(super) fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<Q8_K_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let (max, amax) = signed_absmax(x);
        if amax == 0.0 {
            // ggml leaves the sums unwritten here; they are zero like the rest.
            block.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let q: [i8; QK_K] = x.map(|v| nearest_int(iscale * v).min(127) as i8);
        block[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        for (byte, &q) in block[4..260].iter_mut().zip(&q) {
            *byte = q as u8;
        }
        for (sum, group) in block[260..].chunks_exact_mut(2).zip(q.chunks_exact(16)) {
            // At most 16·128 in magnitude: fits an i16.
            let total: i32 = group.iter().map(|&q| q as i32).sum();
            sum.copy_from_slice(&(total as i16).to_le_bytes());
        }
    }
}

// ------------------------------------------------------------ dot products

/// ggml's `aux32`: `Σ_g scale[g]·Σ_{e ∈ g} q8[e]·a[e]` over groups of
/// `GROUP` elements, kept in eight lanes by `e mod 8`; `q8` is Q8_K's 256
/// quants as bytes. Integer sums are exact, so each group's lane sums are
/// formed first and scaled once. A group's lane sums at most 4 products of
/// magnitude at most 128·32; scaled by at most 128 and summed over at most
/// 16 groups, that stays far inside i32.
fn lane_sums<const GROUP: usize>(q8: &[u8], a: &[i8; QK_K], scales: &[i32]) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for ((q8g, ag), &scale) in q8.chunks_exact(GROUP).zip(a.chunks_exact(GROUP)).zip(scales) {
        let mut group = [0i32; 8];
        for (q8o, ao) in q8g.as_chunks::<8>().0.iter().zip(ag.as_chunks::<8>().0) {
            for lane in 0..8 {
                group[lane] += (q8o[lane] as i8) as i32 * ao[lane] as i32;
            }
        }
        for (lane, g) in lanes.iter_mut().zip(group) {
            *lane += scale * g;
        }
    }
    lanes
}

/// Adds `d·lanes[l]` to `sums[l]` (ggml's `sums[l] += d * aux32[l]`).
fn accumulate_lanes(sums: &mut [f32; 8], d: f32, lanes: &[i32; 8]) {
    for (sum, &lane) in sums.iter_mut().zip(lanes) {
        *sum += d * lane as f32;
    }
}

/// ggml's final `for (l = 0; l < 8; ++l) sumf += sums[l];`.
fn fold_lanes(mut sumf: f32, sums: &[f32; 8]) -> f32 {
    for &sum in sums {
        sumf += sum;
    }
    sumf
}

pub(super) fn vec_dot_q2_k_q8_k(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q2_K_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_K_BYTES>();
    let mut sumf = 0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let scales = &bx[..16];
        let bsums = q8_k_sums(by);
        // At most 16·32768·15: no overflow.
        let summs: i32 = bsums.iter().zip(scales).map(|(&s, &sc)| s * (sc >> 4) as i32).sum();
        let d8 = q8_k_scale(by);
        let dall = d8 * f16_at(bx, 80);
        let dmin = d8 * f16_at(bx, 82);

        let levels = unpack_two_bit_planes(&bx[16..80]);
        let q8 = &by[4..260];
        let mut isum = 0i32;
        for ((q8g, lg), &sc) in q8.chunks_exact(16).zip(levels.chunks_exact(16)).zip(scales) {
            let group: i32 = q8g.iter().zip(lg).map(|(&q, &l)| (q as i8) as i32 * l as i32).sum();
            isum += (sc & 0x0f) as i32 * group;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub(super) fn vec_dot_q3_k_q8_k(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q3_K_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_K_BYTES>();
    let mut sums = [0f32; 8];
    for (bx, by) in xs.iter().zip(ys) {
        let scales = q3_k_scales(&bytes_at(bx, 96)).map(|s| s - 32);
        let lanes = lane_sums::<16>(&by[4..260], &q3_k_levels(bx), &scales);
        accumulate_lanes(&mut sums, f16_at(bx, 108) * q8_k_scale(by), &lanes);
    }
    fold_lanes(0.0, &sums)
}

/// The shared part of Q4_K's and Q5_K's dot products, given the levels.
fn vec_dot_scaled_by_k4<const B: usize>(
    bx: &[u8; B],
    by: &[u8; Q8_K_BYTES],
    levels: &[u8; QK_K],
    sums: &mut [f32; 8],
    sumf: &mut f32,
) {
    let (scales, mins) = scales_and_mins_k4(&bytes_at(bx, 4));
    let bsums = q8_k_sums(by);
    // At most 16·32768·63: no overflow.
    let sumi: i32 = bsums.iter().enumerate().map(|(j, &s)| s * mins[j / 2] as i32).sum();
    let levels = levels.map(|l| l as i8);
    let lanes = lane_sums::<32>(&by[4..260], &levels, &scales.map(i32::from));
    let d8 = q8_k_scale(by);
    accumulate_lanes(sums, f16_at(bx, 0) * d8, &lanes);
    let dmin = f16_at(bx, 2) * d8;
    *sumf -= dmin * sumi as f32;
}

pub(super) fn vec_dot_q4_k_q8_k(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q4_K_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_K_BYTES>();
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let levels = unpack_nibble_planes(&bx[16..]);
        vec_dot_scaled_by_k4(bx, by, &levels, &mut sums, &mut sumf);
    }
    fold_lanes(sumf, &sums)
}

pub(super) fn vec_dot_q5_k_q8_k(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q5_K_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_K_BYTES>();
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (bx, by) in xs.iter().zip(ys) {
        vec_dot_scaled_by_k4(bx, by, &q5_k_levels(bx), &mut sums, &mut sumf);
    }
    fold_lanes(sumf, &sums)
}

pub(super) fn vec_dot_q6_k_q8_k(x: &[u8], y: &[u8]) -> f32 {
    let (xs, _) = x.as_chunks::<Q6_K_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_K_BYTES>();
    let mut sums = [0f32; 8];
    for (bx, by) in xs.iter().zip(ys) {
        let scales: [i32; 16] = array::from_fn(|j| bx[192 + j] as i8 as i32);
        let lanes = lane_sums::<16>(&by[4..260], &q6_k_levels(bx), &scales);
        accumulate_lanes(&mut sums, f16_at(bx, 208) * q8_k_scale(by), &lanes);
    }
    fold_lanes(0.0, &sums)
}
