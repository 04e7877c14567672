//! The non-linear 4-bit formats IQ4_NL and IQ4_XS: each 4-bit index picks
//! one of sixteen fixed levels ([`IQ4_LEVELS`], ggml's `kvalues_iq4nl`),
//! spaced more closely near zero, times a scale.
//!
//! Block layouts (little-endian, packed), as in ggml-common.h:
//! * IQ4_NL (18 bytes per 32): `d: f16, qs: [u8; 16]`: element `j` in the
//!   low nibble of `qs[j]`, element `j + 16` in the high nibble.
//! * IQ4_XS (136 bytes per 256): `d: f16`, `scales_h: u16`,
//!   `scales_l: [u8; 4]`, `qs: [u8; 128]`: eight 6-bit scales (biased by
//!   32), one per 32 elements laid out like IQ4_NL's `qs`.

use std::array;

use crate::kernels::quant::QK_K;
use crate::kernels::quant::fp16::{f16_at, put_f16};
use crate::kernels::quant::rounding::nearest_int;
use crate::kernels::quant::scale_search::{GROUP_MAX_EPS, signed_absmax};

const QK: usize = 32;
const HALF: usize = QK / 2;

pub(super) const IQ4_NL_BYTES: usize = 2 + HALF;
pub(super) const IQ4_XS_BYTES: usize = 2 + 2 + 4 + QK_K / 2;

/// The sixteen levels an index selects (ggml's `kvalues_iq4nl`).
pub(super) const IQ4_LEVELS: [i8; 16] =
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// [`IQ4_LEVELS`] as floats, as ggml's comparisons promote them.
const IQ4_LEVELS_F32: [f32; 16] = {
    let mut levels = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        levels[i] = IQ4_LEVELS[i] as f32;
        i += 1;
    }
    levels
};

/// The index of the level nearest `x` (ggml's `best_index_int8`): a
/// binary search, taking the upper level on a tie. NaN gives the top
/// index, as ggml's comparisons do.
fn nearest_level(x: f32) -> u8 {
    let levels = &IQ4_LEVELS_F32;
    if x <= levels[0] {
        return 0;
    }
    if x >= levels[15] {
        return 15;
    }
    let (mut low, mut high) = (0usize, 15usize);
    while high - low > 1 {
        let mid = (low + high) / 2;
        if x < levels[mid] {
            high = mid;
        } else {
            low = mid;
        }
    }
    if x - levels[high - 1] < levels[high] - x { (high - 1) as u8 } else { high as u8 }
}

/// The level of the low and the high nibble of `byte`.
#[inline(always)]
fn levels_of(byte: u8) -> (i32, i32) {
    (IQ4_LEVELS[(byte & 0x0f) as usize] as i32, IQ4_LEVELS[(byte >> 4) as usize] as i32)
}

/// IQ4_XS's six-bit scale of sub-block `ib` (0..64; the scale is − 32).
fn iq4_xs_scale(block: &[u8; IQ4_XS_BYTES], ib: usize) -> i32 {
    let scales_h = u16::from_le_bytes([block[2], block[3]]);
    let low = (block[4 + ib / 2] >> (4 * (ib % 2))) & 0x0f;
    let high = (scales_h >> (2 * ib)) & 3;
    (low as u16 | (high << 4)) as i32
}

// ---------------------------------------------------------------- decoding

/// Decodes 32 elements laid out like IQ4_NL's `qs` with scale `d`.
#[inline(always)]
fn decode_32(d: f32, qs: &[u8], out: &mut [f32]) {
    let (low, high) = out.split_at_mut(HALF);
    for ((&q, lo), hi) in qs.iter().zip(low).zip(high) {
        let (l0, l1) = levels_of(q);
        *lo = d * l0 as f32;
        *hi = d * l1 as f32;
    }
}

pub(super) fn dequantize_iq4_nl(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<IQ4_NL_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK>();
    for (block, out) in blocks.iter().zip(outs) {
        decode_32(f16_at(block, 0), &block[2..], out);
    }
}

pub(super) fn dequantize_iq4_xs(src: &[u8], dst: &mut [f32]) {
    let (blocks, _) = src.as_chunks::<IQ4_XS_BYTES>();
    let (outs, _) = dst.as_chunks_mut::<QK_K>();
    for (block, out) in blocks.iter().zip(outs) {
        let d = f16_at(block, 0);
        for (ib, (out, qs)) in
            out.chunks_exact_mut(QK).zip(block[8..].chunks_exact(HALF)).enumerate()
        {
            let dl = d * (iq4_xs_scale(block, ib) - 32) as f32;
            decode_32(dl, qs, out);
        }
    }
}

// ---------------------------------------------------------------- encoding

/// The weighted least-squares scale for the levels `x` maps to at inverse
/// scale `id`, as `(Σ w·q·x, Σ w·q²)`, with `w = x²`.
fn level_sums(x: &[f32], id: f32) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for &v in x {
        let q = IQ4_LEVELS_F32[nearest_level(id * v) as usize];
        let w = v * v;
        sumqx += w * q * v;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The scale of one 32-element group (ggml's `quantize_row_iq4_nl_impl`
/// per block, without importance weights): the least-squares scale for the
/// levels at `max / levels[0]` (`sign` = −1 flips it), then, for each
/// `step` in `steps`, for the levels at `(step + levels[0]) / max`, keeping
/// the best. `None` for an all-zero group.
fn group_scale(x: &[f32], sign: f32, steps: impl IntoIterator<Item = i32>) -> Option<f32> {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        return None;
    }
    let lowest = IQ4_LEVELS[0] as f32;
    let d = sign * max / lowest;
    let (sumqx, sumq2) = level_sums(x, 1.0 / d);
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for step in steps {
        let id = (step + IQ4_LEVELS[0] as i32) as f32 / max;
        let (sumqx, sumq2) = level_sums(x, id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    Some(d)
}

/// Packs 32 indices like IQ4_NL's `qs`.
fn pack_32(indices: &[u8; QK], qs: &mut [u8]) {
    let (low, high) = indices.split_at(HALF);
    for ((byte, &lo), &hi) in qs.iter_mut().zip(low).zip(high) {
        *byte = lo | (hi << 4);
    }
}

/// ggml's `quantize_row_iq4_nl_ref`: one search without extra candidates
/// (`ntry = −1`), the scale stored as is, and the indices of the first
/// pass kept.
///
/// An all-zero block gets scale 0 and, as in ggml, keeps the indices of the
/// previous block of the row (ggml leaves its index buffer untouched; for
/// the row's first block ggml's are uninitialised memory, here zero). They
/// decode to zeros either way.
pub(super) fn quantize_iq4_nl(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK>();
    let (blocks, _) = dst.as_chunks_mut::<IQ4_NL_BYTES>();
    let mut indices = [0u8; QK];
    for (x, block) in xs.iter().zip(blocks) {
        // ggml's candidate loop `for (itry = -ntry; itry <= ntry; ++itry)`
        // runs zero times for ntry = −1.
        let scale = group_scale(x, 1.0, []);
        if scale.is_some() {
            let (max, _) = signed_absmax(x);
            let id = 1.0 / (max / IQ4_LEVELS[0] as f32);
            indices = x.map(|v| nearest_level(id * v));
        }
        put_f16(block, 0, scale.unwrap_or(0.0));
        pack_32(&indices, &mut block[2..]);
    }
}

/// ggml's `quantize_row_iq4_xs_ref` (`quantize_iq4_xs` without importance
/// weights): per 32 elements a search over fifteen candidate scales, then
/// one fp16 super-scale `d = −max_scale/32` with six-bit sub-scales, and
/// the indices chosen against the stored scales.
pub(super) fn quantize_iq4_xs(src: &[f32], dst: &mut [u8]) {
    let (xs, _) = src.as_chunks::<QK_K>();
    let (blocks, _) = dst.as_chunks_mut::<IQ4_XS_BYTES>();
    for (x, block) in xs.iter().zip(blocks) {
        let scales: [f32; 8] = array::from_fn(|ib| {
            group_scale(&x[QK * ib..QK * (ib + 1)], -1.0, -7..=7).unwrap_or(0.0)
        });
        let (mut max_scale, mut amax_scale) = (0f32, 0f32);
        for &scale in &scales {
            if scale.abs() > amax_scale {
                amax_scale = scale.abs();
                max_scale = scale;
            }
        }

        let d = -max_scale / 32.0;
        put_f16(block, 0, d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut scales_h = 0u16;
        let mut scales_l = [0u8; 4];
        for (ib, (&scale, (xg, qs))) in
            scales.iter().zip(x.chunks_exact(QK).zip(block[8..].chunks_exact_mut(HALF))).enumerate()
        {
            let l = nearest_int(id * scale).clamp(-32, 31);
            let dl = d * l as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            let indices: [u8; QK] = array::from_fn(|j| nearest_level(idl * xg[j]));
            pack_32(&indices, qs);
            let l = (l + 32) as u16;
            scales_l[ib / 2] |= ((l & 0x0f) as u8) << (4 * (ib % 2));
            scales_h |= (l >> 4) << (2 * ib);
        }
        block[2..4].copy_from_slice(&scales_h.to_le_bytes());
        block[4..8].copy_from_slice(&scales_l);
    }
}

// ------------------------------------------------------------ dot products

pub(super) fn vec_dot_iq4_nl_q8_0(x: &[u8], y: &[u8]) -> f32 {
    const Q8_0_BYTES: usize = 2 + QK;
    let (xs, _) = x.as_chunks::<IQ4_NL_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_0_BYTES>();
    let mut sumf = 0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let d = f16_at(by, 0) * f16_at(bx, 0);
        let sumi = dot_32(&bx[2..], &by[2..]);
        sumf += d * sumi as f32;
    }
    sumf
}

/// `Σ q8[e]·level[e]` over 32 elements: indices laid out like IQ4_NL's `qs`,
/// `q8` 32 signed bytes. At most 32·128·127 in magnitude.
#[inline(always)]
fn dot_32(qs: &[u8], q8: &[u8]) -> i32 {
    let (q8_low, q8_high) = q8.split_at(HALF.min(q8.len()));
    let mut sumi = 0i32;
    for ((&q, &lo), &hi) in qs.iter().zip(q8_low).zip(q8_high) {
        let (l0, l1) = levels_of(q);
        sumi += (lo as i8) as i32 * l0 + (hi as i8) as i32 * l1;
    }
    sumi
}

pub(super) fn vec_dot_iq4_xs_q8_k(x: &[u8], y: &[u8]) -> f32 {
    const Q8_K_BYTES: usize = 4 + QK_K + 2 * 16;
    let (xs, _) = x.as_chunks::<IQ4_XS_BYTES>();
    let (ys, _) = y.as_chunks::<Q8_K_BYTES>();
    let mut sumf = 0f32;
    for (bx, by) in xs.iter().zip(ys) {
        let d8 = f32::from_le_bytes([by[0], by[1], by[2], by[3]]);
        let d4d8 = f16_at(bx, 0) * d8;
        for (ib, (qs, q8)) in
            bx[8..].chunks_exact(HALF).zip(by[4..260].chunks_exact(QK)).enumerate()
        {
            let dl = d4d8 * (iq4_xs_scale(bx, ib) - 32) as f32;
            sumf += dl * dot_32(qs, q8) as f32;
        }
    }
    sumf
}
