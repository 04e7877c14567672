//! AVX-512 (VNNI) dot products of the 32-element formats with Q8_0 / Q8_1:
//! two blocks per 512-bit vector, one weight row against `C` activation
//! rows at once (`C = 1` is a plain dot product).
//!
//! Integer parts use `vpdpbusd` (unsigned × signed bytes, four products
//! summed into each i32 lane, no intermediate saturation), so they are
//! exact for any bytes. Signed levels are offset to unsigned ones
//! (`q + c`), and `c·Σy` is subtracted with a second `vpdpbusd` of the
//! constant `c`. A block pair's lanes 0..8 belong to the first block,
//! 8..16 to the second; each is scaled by its block's scale product. The
//! weight row's levels are unpacked once per block pair for all `C`
//! columns. A trailing odd block takes the AVX2 kernel's step.

use std::arch::x86_64::*;

use crate::kernels::quant::blocks::{
    BlockIq4Nl, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, blocks_of,
};
use crate::kernels::quant::iq4::IQ4_LEVELS;
use crate::kernels::quant::x86::avx2_dot_legacy as avx2;
use crate::kernels::quant::x86::avx2_ops::{f16x4_to_f32, hsum_f32x8};
use crate::kernels::quant::x86::for_each_row;
use crate::kernels::quant::x86::memory::{load_128, load_256};

/// One column's accumulators: two for alternating block pairs, one for a
/// trailing odd block.
#[derive(Clone, Copy)]
struct Accumulators<A, B> {
    even: A,
    odd: A,
    tail: B,
}

/// Folds the blocks of the weight row `xs` against each of the `C`
/// activation rows `ys`: `prepare` unpacks a weight block pair once,
/// `pair` accumulates it against a column's block pair, `single` (the
/// AVX2 step) a trailing odd block.
#[inline(always)]
fn fold_columns<X, Y, P, A: Copy, B: Copy, const C: usize>(
    xs: &[X],
    ys: [&[Y]; C],
    zeros: (A, B),
    prepare: impl Fn(&[X; 2]) -> P,
    pair: impl Fn(&P, &[X; 2], &[Y; 2], A) -> A,
    single: impl Fn(&X, &Y, B) -> B,
) -> [Accumulators<A, B>; C] {
    let (x_pairs, x_tail) = xs.as_chunks::<2>();
    let y_pairs = ys.map(|y| y.as_chunks::<2>());
    let mut acc = [Accumulators { even: zeros.0, odd: zeros.0, tail: zeros.1 }; C];
    let (x_quads, x_rest) = x_pairs.as_chunks::<2>();
    for (q, [x01, x23]) in x_quads.iter().enumerate() {
        let (p01, p23) = (prepare(x01), prepare(x23));
        for c in 0..C {
            let pairs = y_pairs[c].0;
            if let (Some(y01), Some(y23)) = (pairs.get(2 * q), pairs.get(2 * q + 1)) {
                acc[c].even = pair(&p01, x01, y01, acc[c].even);
                acc[c].odd = pair(&p23, x23, y23, acc[c].odd);
            }
        }
    }
    for x01 in x_rest {
        let p01 = prepare(x01);
        for c in 0..C {
            if let Some(y01) = y_pairs[c].0.get(2 * x_quads.len()) {
                acc[c].even = pair(&p01, x01, y01, acc[c].even);
            }
        }
    }
    for x in x_tail {
        for c in 0..C {
            if let Some(y) = y_pairs[c].1.first() {
                acc[c].tail = single(x, y, acc[c].tail);
            }
        }
    }
    acc
}

/// The sum of sixteen floats.
#[inline]
#[target_feature(enable = "avx512f,avx512dq,avx2")]
pub(super) fn hsum_f32x16(v: __m512) -> f32 {
    hsum_f32x8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps::<1>(v)))
}

/// `v` in the low half of a vector whose high half is zero.
#[inline]
#[target_feature(enable = "avx512f")]
fn widen(v: __m256) -> __m512 {
    _mm512_zextps256_ps512(v)
}

/// Two blocks' scale products: `x0·y0` in lanes 0..8, `x1·y1` in 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx2,f16c")]
fn pair_scales(x0: [u8; 2], x1: [u8; 2], y0: [u8; 2], y1: [u8; 2]) -> __m512 {
    let all = f16x4_to_f32([x0, x1, y0, y1]);
    let products = _mm_mul_ps(all, _mm_movehl_ps(all, all));
    let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(products))
}

/// Two fp16 scales spread over a block pair's lanes: `a` in lanes 0..8,
/// `b` in 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx2,f16c")]
fn spread_pair(a: [u8; 2], b: [u8; 2]) -> __m512 {
    let bits = u32::from_le_bytes([a[0], a[1], b[0], b[1]]);
    let both = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(both))
}

/// The nibbles of two blocks' 16 packed bytes in the elements' order:
/// `a`'s low nibbles, `a`'s high nibbles, then `b`'s.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub(super) fn nibble_pair(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    let ab = _mm256_set_m128i(load_128(b), load_128(a));
    // [a, b, a >> 4, b >> 4] in 128-bit lanes, reordered to lanes 0, 2, 1, 3.
    let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ab), _mm256_srli_epi16::<4>(ab));
    let ordered = _mm512_shuffle_i64x2::<0b11_01_10_00>(both, both);
    _mm512_and_si512(ordered, _mm512_set1_epi8(0x0f))
}

/// Two activation blocks' 32 quants, one after the other.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn quant_pair(a: &[u8; 32], b: &[u8; 32]) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load_256(a)), load_256(b))
}

/// Per four consecutive bytes, `Σ (u − c)·y` for unsigned bytes `u` and
/// the constant bytes `c` (broadcast), any signed `y`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn dot_offset(levels: __m512i, offset: __m512i, y: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, levels, y), _mm512_dpbusd_epi32(zero, offset, y))
}

/// `acc + d·sums` with the i32 lane sums converted.
#[inline]
#[target_feature(enable = "avx512f")]
fn scaled(d: __m512, sums: __m512i, acc: __m512) -> __m512 {
    _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sums), acc)
}

/// The common shape of the kernels with a Q8_0 activation: `levels`
/// gives a block pair's unsigned levels, which mean `level − offset`;
/// `single` is the AVX2 step for a trailing block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot_with_q8_0<X, const C: usize>(
    xs: &[X],
    ys: [&[BlockQ8_0]; C],
    offset: u8,
    scale: impl Fn(&X) -> [u8; 2],
    levels: impl Fn(&[X; 2]) -> __m512i,
    single: impl Fn(&X, &BlockQ8_0, __m256) -> __m256,
) -> [f32; C] {
    let offset = _mm512_set1_epi8(offset as i8);
    // With several columns, the weight pair's scales are converted once
    // (`prepare`) and multiplied with each column's; alone, all four are
    // converted in one instruction.
    let prepare = |xp: &[X; 2]| {
        let [x0, x1] = xp;
        let x_scales = if C == 1 { _mm512_setzero_ps() } else { spread_pair(scale(x0), scale(x1)) };
        (levels(xp), x_scales)
    };
    let pair = |(levels, x_scales): &(__m512i, __m512),
                [x0, x1]: &[X; 2],
                [y0, y1]: &[BlockQ8_0; 2],
                acc| {
        let d = if C == 1 {
            pair_scales(scale(x0), scale(x1), y0.d, y1.d)
        } else {
            _mm512_mul_ps(*x_scales, spread_pair(y0.d, y1.d))
        };
        scaled(d, dot_offset(*levels, offset, quant_pair(&y0.qs, &y1.qs)), acc)
    };
    let zeros = (_mm512_setzero_ps(), _mm256_setzero_ps());
    let acc = fold_columns(xs, ys, zeros, prepare, pair, single);
    acc.map(|a| hsum_f32x16(_mm512_add_ps(_mm512_add_ps(a.even, a.odd), widen(a.tail))))
}

/// Two weight rows against `C` activation rows at once (`C ≥ 2`): per
/// block pair, each weight row's levels and scales are prepared once for
/// all columns and each column's quants, `offset·Σy` correction and
/// scales once for both rows, then the 2·C products accumulate in their
/// own registers.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn two_rows_with_q8_0<X, const C: usize>(
    rows: [&[X]; 2],
    ys: [&[BlockQ8_0]; C],
    offset: u8,
    scale: impl Fn(&X) -> [u8; 2],
    levels: impl Fn(&[X; 2]) -> __m512i,
    single: impl Fn(&X, &BlockQ8_0, __m256) -> __m256,
) -> [[f32; C]; 2] {
    let offset = _mm512_set1_epi8(offset as i8);
    let zero = _mm512_setzero_si512();
    let y_pairs = ys.map(|y| y.as_chunks::<2>());
    let [(a_pairs, a_tail), (b_pairs, b_tail)] = rows.map(|x| x.as_chunks::<2>());
    let mut acc = [[_mm512_setzero_ps(); C]; 2];
    for (i, (a, b)) in a_pairs.iter().zip(b_pairs).enumerate() {
        let prepare = |xp: &[X; 2]| (levels(xp), spread_pair(scale(&xp[0]), scale(&xp[1])));
        let prepared = [prepare(a), prepare(b)];
        for c in 0..C {
            let Some([y0, y1]) = y_pairs[c].0.get(i) else { continue };
            let quants = quant_pair(&y0.qs, &y1.qs);
            let correction = _mm512_dpbusd_epi32(zero, offset, quants);
            let y_scales = spread_pair(y0.d, y1.d);
            for r in 0..2 {
                let (row_levels, x_scales) = prepared[r];
                let sums =
                    _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, row_levels, quants), correction);
                acc[r][c] = scaled(_mm512_mul_ps(x_scales, y_scales), sums, acc[r][c]);
            }
        }
    }
    let mut dots = [[0f32; C]; 2];
    for (r, tail) in [a_tail, b_tail].into_iter().enumerate() {
        for c in 0..C {
            let mut tail_acc = _mm256_setzero_ps();
            if let (Some(x), Some(y)) = (tail.first(), y_pairs[c].1.first()) {
                tail_acc = single(x, y, tail_acc);
            }
            dots[r][c] = hsum_f32x16(_mm512_add_ps(acc[r][c], widen(tail_acc)));
        }
    }
    dots
}

/// Runs a Q8_0-activation kernel over a tile: weight rows two at a time
/// when there are several columns ([`two_rows_with_q8_0`]), else one at a
/// time ([`dot_with_q8_0`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn tile_with_q8_0<X: bytemuck::Pod, const C: usize>(
    xs: &[&[u8]],
    ys: [&[BlockQ8_0]; C],
    out: &mut [[f32; C]],
    offset: u8,
    scale: impl Fn(&X) -> [u8; 2] + Copy,
    levels: impl Fn(&[X; 2]) -> __m512i + Copy,
    single: impl Fn(&X, &BlockQ8_0, __m256) -> __m256 + Copy,
) {
    if C == 1 {
        for_each_row(xs, out, |xs: &[X]| dot_with_q8_0(xs, ys, offset, scale, levels, single));
        return;
    }
    let (row_pairs, row_tail) = xs.as_chunks::<2>();
    let (out_pairs, out_tail) = out.as_chunks_mut::<2>();
    for (&[a, b], out) in row_pairs.iter().zip(out_pairs) {
        let rows = [blocks_of(a), blocks_of(b)];
        *out = two_rows_with_q8_0(rows, ys, offset, scale, levels, single);
    }
    for (x, out) in row_tail.iter().zip(out_tail) {
        *out = dot_with_q8_0(blocks_of(x), ys, offset, scale, levels, single);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q4_0<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_0]; C], out: &mut [[f32; C]]) {
    let levels = |[a, b]: &[BlockQ4_0; 2]| nibble_pair(&a.qs, &b.qs);
    let single = |x: &BlockQ4_0, y: &BlockQ8_0, acc| avx2::step_q4_0(x, y, acc);
    tile_with_q8_0(xs, ys, out, 8, |x: &BlockQ4_0| x.d, levels, single);
}

/// Two Q5 blocks' levels `0..32`: nibbles plus 16 where the fifth bit
/// (bit `e` of the block's `qh`) is set.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn q5_pair(qs: [&[u8; 16]; 2], qh: [[u8; 4]; 2]) -> __m512i {
    let nibbles = nibble_pair(qs[0], qs[1]);
    let fifth = u64::from(u32::from_le_bytes(qh[0])) | (u64::from(u32::from_le_bytes(qh[1])) << 32);
    _mm512_mask_add_epi8(nibbles, fifth, nibbles, _mm512_set1_epi8(16))
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q5_0<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_0]; C], out: &mut [[f32; C]]) {
    let levels = |[a, b]: &[BlockQ5_0; 2]| q5_pair([&a.qs, &b.qs], [a.qh, b.qh]);
    let single = |x: &BlockQ5_0, y: &BlockQ8_0, acc| avx2::step_q5_0(x, y, acc);
    tile_with_q8_0(xs, ys, out, 16, |x: &BlockQ5_0| x.d, levels, single);
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q8_0<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_0]; C], out: &mut [[f32; C]]) {
    // x + 128 as unsigned bytes (flipping the sign bit), offset 128.
    let flip = _mm512_set1_epi8(0x80_u8 as i8);
    let levels = |[a, b]: &[BlockQ8_0; 2]| _mm512_xor_si512(quant_pair(&a.qs, &b.qs), flip);
    let single = |x: &BlockQ8_0, y: &BlockQ8_0, acc| avx2::step_q8_0(x, y, acc);
    tile_with_q8_0(xs, ys, out, 128, |x: &BlockQ8_0| x.d, levels, single);
}

/// [`IQ4_LEVELS`] plus 128, as unsigned bytes (1..=241).
const IQ4_LEVELS_PLUS_128: [u8; 16] = {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        bytes[i] = (IQ4_LEVELS[i] as i16 + 128) as u8;
        i += 1;
    }
    bytes
};

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_iq4_nl<const C: usize>(
    xs: &[&[u8]],
    ys: [&[BlockQ8_0]; C],
    out: &mut [[f32; C]],
) {
    let table = _mm512_broadcast_i32x4(load_128(&IQ4_LEVELS_PLUS_128));
    let levels = |[a, b]: &[BlockIq4Nl; 2]| _mm512_shuffle_epi8(table, nibble_pair(&a.qs, &b.qs));
    let single = |x: &BlockIq4Nl, y: &BlockQ8_0, acc| avx2::step_iq4_nl(x, y, acc);
    tile_with_q8_0(xs, ys, out, 128, |x: &BlockIq4Nl| x.d, levels, single);
}

/// Two blocks' scale products and minimum terms, from the x blocks' `d`
/// and `m` and Q8_1's `d` and `s`: `[d0, m0·s0, d1, m1·s1]`.
#[inline]
#[target_feature(enable = "avx512f,avx2,f16c")]
fn pair_scales_and_minimums(x: [[u8; 4]; 2], y: [[u8; 4]; 2]) -> __m128 {
    let x_bits = u64::from(u32::from_le_bytes(x[0])) | (u64::from(u32::from_le_bytes(x[1])) << 32);
    let y_bits = u64::from(u32::from_le_bytes(y[0])) | (u64::from(u32::from_le_bytes(y[1])) << 32);
    let halves = _mm_set_epi64x(y_bits as i64, x_bits as i64);
    let all = _mm256_cvtph_ps(halves);
    _mm_mul_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps::<1>(all))
}

/// The common shape of the kernels with a Q8_1 activation (Q4_1, Q5_1):
/// `dx·dy·Σq·y + m·s` per block, `header` giving `d` and `m` (adjacent).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot_with_q8_1<X, const C: usize>(
    xs: &[X],
    ys: [&[BlockQ8_1]; C],
    header: impl Fn(&X) -> [u8; 4],
    levels: impl Fn(&[X; 2]) -> __m512i,
    single: impl Fn(&X, &BlockQ8_1, (__m256, __m128)) -> (__m256, __m128),
) -> [f32; C] {
    let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    let y_header = |y: &BlockQ8_1| [y.d[0], y.d[1], y.s[0], y.s[1]];
    let pair = |levels: &__m512i,
                [x0, x1]: &[X; 2],
                [y0, y1]: &[BlockQ8_1; 2],
                (acc, acc_min): (__m512, __m128)| {
        let products =
            pair_scales_and_minimums([header(x0), header(x1)], [y_header(y0), y_header(y1)]);
        let d = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(products));
        let zero = _mm512_setzero_si512();
        let sums = _mm512_dpbusd_epi32(zero, *levels, quant_pair(&y0.qs, &y1.qs));
        (scaled(d, sums, acc), _mm_add_ps(acc_min, products))
    };
    let zeros = ((_mm512_setzero_ps(), _mm_setzero_ps()), (_mm256_setzero_ps(), _mm_setzero_ps()));
    let acc = fold_columns(xs, ys, zeros, levels, pair, single);
    acc.map(|a| {
        let ((even, even_min), (odd, odd_min), (tail, tail_min)) = (a.even, a.odd, a.tail);
        // Lanes 1 and 3 of the pairs' minimum sums, lane 1 of the tail's.
        let pairs_min = _mm_add_ps(even_min, odd_min);
        let minimums = _mm_cvtss_f32(_mm_movehdup_ps(pairs_min))
            + _mm_cvtss_f32(_mm_movehdup_ps(_mm_movehl_ps(pairs_min, pairs_min)))
            + _mm_cvtss_f32(_mm_movehdup_ps(tail_min));
        hsum_f32x16(_mm512_add_ps(_mm512_add_ps(even, odd), widen(tail))) + minimums
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q4_1<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_1]; C], out: &mut [[f32; C]]) {
    let header = |x: &BlockQ4_1| [x.d[0], x.d[1], x.m[0], x.m[1]];
    let levels = |[a, b]: &[BlockQ4_1; 2]| nibble_pair(&a.qs, &b.qs);
    for_each_row(xs, out, |xs: &[BlockQ4_1]| {
        dot_with_q8_1(xs, ys, header, levels, |x, y, acc| avx2::step_q4_1(x, y, acc))
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q5_1<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_1]; C], out: &mut [[f32; C]]) {
    let header = |x: &BlockQ5_1| [x.d[0], x.d[1], x.m[0], x.m[1]];
    let levels = |[a, b]: &[BlockQ5_1; 2]| q5_pair([&a.qs, &b.qs], [a.qh, b.qh]);
    for_each_row(xs, out, |xs: &[BlockQ5_1]| {
        dot_with_q8_1(xs, ys, header, levels, |x, y, acc| avx2::step_q5_1(x, y, acc))
    });
}
