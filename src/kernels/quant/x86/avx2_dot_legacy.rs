//! AVX2 dot products of the 32-element formats with Q8_0 / Q8_1.
//!
//! One block is one 256-bit vector of 32 levels: its integer dot product
//! with the activation block is exact (eight i32 lanes), then converted to
//! f32 and accumulated with the block's scale product by FMA. Two
//! accumulators alternate between blocks so that consecutive FMAs do not
//! wait on each other. The tile kernels (`tile_*`) unpack each weight block
//! once for `C` activation rows.

use std::arch::x86_64::*;

use crate::kernels::quant::blocks::{
    BlockIq4Nl, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
};
use crate::kernels::quant::iq4::IQ4_LEVELS;
use crate::kernels::quant::x86::avx2_ops::{
    bits_to_bytes_32, dot_i8_i8_widened, dot_offset, dot_signed, dot_u8_i8, f16x4_to_f32,
    hsum_f32x8, nibbles_32, scale_product, sign_split,
};
use crate::kernels::quant::x86::for_each_row;
use crate::kernels::quant::x86::memory::{load_128, load_256};

/// Folds `step` over the block pairs `(xs[i], ys[i])` into two
/// accumulators, even and odd blocks alternating, and combines them.
#[inline(always)]
pub(super) fn fold_alternating<X, Y, A: Copy>(
    xs: &[X],
    ys: &[Y],
    zero: A,
    step: impl Fn(&X, &Y, A) -> A,
    combine: impl Fn(A, A) -> A,
) -> A {
    let (x_pairs, x_tail) = xs.as_chunks::<2>();
    let (y_pairs, y_tail) = ys.as_chunks::<2>();
    let (mut even, mut odd) = (zero, zero);
    for ([x0, x1], [y0, y1]) in x_pairs.iter().zip(y_pairs) {
        even = step(x0, y0, even);
        odd = step(x1, y1, odd);
    }
    for (x, y) in x_tail.iter().zip(y_tail) {
        even = step(x, y, even);
    }
    combine(even, odd)
}

/// The eight i32 lane sums of one block, times the block's scale, added to
/// `acc`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scaled(d: __m256, sums: __m256i, acc: __m256) -> __m256 {
    _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc)
}

/// `a + b`, for combining accumulators.
#[inline]
#[target_feature(enable = "avx2")]
fn add(a: __m256, b: __m256) -> __m256 {
    _mm256_add_ps(a, b)
}

/// One Q4_0 block: levels `nibble − 8`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn step_q4_0(x: &BlockQ4_0, y: &BlockQ8_0, acc: __m256) -> __m256 {
    let sums = dot_offset(nibbles_32(&x.qs), _mm256_set1_epi8(8), load_256(&y.qs));
    scaled(scale_product(x.d, y.d), sums, acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_0(xs: &[BlockQ4_0], ys: &[BlockQ8_0]) -> f32 {
    let zero = _mm256_setzero_ps();
    hsum_f32x8(fold_alternating(xs, ys, zero, |x, y, acc| step_q4_0(x, y, acc), |a, b| add(a, b)))
}

/// For the formats with a minimum: the scale products `[dx·dy, m·s]` of a
/// block pair, from `x`'s `d`, `m` and Q8_1's `d`, `s`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn scale_and_minimum(xd: [u8; 2], xm: [u8; 2], y: &BlockQ8_1) -> __m128 {
    let all = f16x4_to_f32([xd, xm, y.d, y.s]);
    _mm_mul_ps(all, _mm_movehl_ps(all, all))
}

/// One block of Q4_1 or Q5_1 given its `d`, `m` and unsigned levels (at
/// most 31, so pair sums fit i16): `dx·dy·Σq·y` into the first
/// accumulator, `[dx·dy, m·s]` into the second (whose lane 1 sums the
/// minimum terms).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn step_with_minimum(
    (d, m, levels): ([u8; 2], [u8; 2], __m256i),
    y: &BlockQ8_1,
    (acc, acc_min): (__m256, __m128),
) -> (__m256, __m128) {
    let products = scale_and_minimum(d, m, y);
    let sums = dot_u8_i8(levels, load_256(&y.qs));
    (scaled(_mm256_broadcastss_ps(products), sums, acc), _mm_add_ps(acc_min, products))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn step_q4_1(x: &BlockQ4_1, y: &BlockQ8_1, acc: (__m256, __m128)) -> (__m256, __m128) {
    step_with_minimum((x.d, x.m, nibbles_32(&x.qs)), y, acc)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn step_q5_1(x: &BlockQ5_1, y: &BlockQ8_1, acc: (__m256, __m128)) -> (__m256, __m128) {
    step_with_minimum((x.d, x.m, q5_levels(&x.qs, x.qh)), y, acc)
}

/// Sums the two accumulators of the formats with a minimum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_with_minimum<X>(
    xs: &[X],
    ys: &[BlockQ8_1],
    step: impl Fn(&X, &BlockQ8_1, (__m256, __m128)) -> (__m256, __m128),
) -> f32 {
    let zero = (_mm256_setzero_ps(), _mm_setzero_ps());
    let combine = |(a, a_min): (__m256, __m128), (b, b_min): (__m256, __m128)| {
        (_mm256_add_ps(a, b), _mm_add_ps(a_min, b_min))
    };
    let (acc, acc_min) = fold_alternating(xs, ys, zero, step, combine);
    // Lane 1 of the minimum accumulator holds Σ m·s.
    hsum_f32x8(acc) + _mm_cvtss_f32(_mm_movehdup_ps(acc_min))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_1(xs: &[BlockQ4_1], ys: &[BlockQ8_1]) -> f32 {
    dot_with_minimum(xs, ys, |x, y, acc| step_q4_1(x, y, acc))
}

/// One Q5_0 block: levels `q − 16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn step_q5_0(x: &BlockQ5_0, y: &BlockQ8_0, acc: __m256) -> __m256 {
    let sums = dot_offset(q5_levels(&x.qs, x.qh), _mm256_set1_epi8(16), load_256(&y.qs));
    scaled(scale_product(x.d, y.d), sums, acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_0(xs: &[BlockQ5_0], ys: &[BlockQ8_0]) -> f32 {
    let zero = _mm256_setzero_ps();
    hsum_f32x8(fold_alternating(xs, ys, zero, |x, y, acc| step_q5_0(x, y, acc), |a, b| add(a, b)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_1(xs: &[BlockQ5_1], ys: &[BlockQ8_1]) -> f32 {
    dot_with_minimum(xs, ys, |x, y, acc| step_q5_1(x, y, acc))
}

/// Q5_0's and Q5_1's levels `0..32`: a nibble plus 16 for a set fifth bit.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn q5_levels(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    let fifth = _mm256_and_si256(bits_to_bytes_32(u32::from_le_bytes(qh)), _mm256_set1_epi8(16));
    _mm256_or_si256(nibbles_32(qs), fifth)
}

/// One Q8_0 block against Q8_0: both sides may hold −128, so widened.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn step_q8_0(x: &BlockQ8_0, y: &BlockQ8_0, acc: __m256) -> __m256 {
    let sums = dot_i8_i8_widened(load_256(&x.qs), load_256(&y.qs));
    scaled(scale_product(x.d, y.d), sums, acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q8_0(xs: &[BlockQ8_0], ys: &[BlockQ8_0]) -> f32 {
    let zero = _mm256_setzero_ps();
    hsum_f32x8(fold_alternating(xs, ys, zero, |x, y, acc| step_q8_0(x, y, acc), |a, b| add(a, b)))
}

/// [`IQ4_LEVELS`] as bytes, for `pshufb` lookups.
pub(super) const IQ4_LEVEL_BYTES: [u8; 16] = {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        bytes[i] = IQ4_LEVELS[i] as u8;
        i += 1;
    }
    bytes
};

/// The IQ4 levels of 32 nibbles (`nibbles_32`'s order), by table lookup;
/// `table` holds [`IQ4_LEVEL_BYTES`] in both 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn iq4_levels(table: __m256i, qs: &[u8; 16]) -> __m256i {
    _mm256_shuffle_epi8(table, nibbles_32(qs))
}

/// [`IQ4_LEVEL_BYTES`] in both lanes of a vector.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn iq4_table() -> __m256i {
    _mm256_broadcastsi128_si256(load_128(&IQ4_LEVEL_BYTES))
}

/// One IQ4_NL block: levels −127..=113, never −128.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn step_iq4_nl(x: &BlockIq4Nl, y: &BlockQ8_0, acc: __m256) -> __m256 {
    let sums = dot_signed(iq4_levels(iq4_table(), &x.qs), sign_split(load_256(&y.qs)));
    scaled(scale_product(x.d, y.d), sums, acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_iq4_nl(xs: &[BlockIq4Nl], ys: &[BlockQ8_0]) -> f32 {
    let zero = _mm256_setzero_ps();
    hsum_f32x8(fold_alternating(xs, ys, zero, |x, y, acc| step_iq4_nl(x, y, acc), |a, b| add(a, b)))
}

// ------------------------------------------------------------------ tiles

/// Folds the blocks of the weight row `xs` against each of the `C`
/// activation rows `ys`: `prepare` unpacks a weight block once for all
/// columns, `step` accumulates it against a column's block; two
/// accumulators per column alternate between even and odd blocks.
#[inline(always)]
fn fold_columns<X, Y, P: Copy, A: Copy, const C: usize>(
    xs: &[X],
    ys: [&[Y]; C],
    zero: A,
    prepare: impl Fn(&X) -> P,
    step: impl Fn(P, &X, &Y, A) -> A,
) -> [(A, A); C] {
    let (x_pairs, x_tail) = xs.as_chunks::<2>();
    let mut acc = [(zero, zero); C];
    for (i, [x0, x1]) in x_pairs.iter().enumerate() {
        let (p0, p1) = (prepare(x0), prepare(x1));
        for c in 0..C {
            if let (Some(y0), Some(y1)) = (ys[c].get(2 * i), ys[c].get(2 * i + 1)) {
                acc[c].0 = step(p0, x0, y0, acc[c].0);
                acc[c].1 = step(p1, x1, y1, acc[c].1);
            }
        }
    }
    for x in x_tail {
        let p = prepare(x);
        for c in 0..C {
            if let Some(y) = ys[c].get(2 * x_pairs.len()) {
                acc[c].0 = step(p, x, y, acc[c].0);
            }
        }
    }
    acc
}

/// The tile kernel shape of the formats with a Q8_0 activation: `levels`
/// unpacks a weight block, `sums` forms its exact lane sums with an
/// activation block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_with_q8_0<X: bytemuck::Pod, const C: usize>(
    xs: &[&[u8]],
    ys: [&[BlockQ8_0]; C],
    out: &mut [[f32; C]],
    scale: impl Fn(&X) -> [u8; 2],
    levels: impl Fn(&X) -> __m256i,
    sums: impl Fn(__m256i, __m256i) -> __m256i,
) {
    let step = |levels: __m256i, x: &X, y: &BlockQ8_0, acc| {
        scaled(scale_product(scale(x), y.d), sums(levels, load_256(&y.qs)), acc)
    };
    for_each_row(xs, out, |xs: &[X]| {
        fold_columns(xs, ys, _mm256_setzero_ps(), &levels, step).map(|(a, b)| hsum_f32x8(add(a, b)))
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tile_q4_0<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_0]; C], out: &mut [[f32; C]]) {
    let eight = _mm256_set1_epi8(8);
    let levels = |x: &BlockQ4_0| nibbles_32(&x.qs);
    tile_with_q8_0(xs, ys, out, |x| x.d, levels, |l, y| dot_offset(l, eight, y));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tile_q5_0<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_0]; C], out: &mut [[f32; C]]) {
    let sixteen = _mm256_set1_epi8(16);
    let levels = |x: &BlockQ5_0| q5_levels(&x.qs, x.qh);
    tile_with_q8_0(xs, ys, out, |x| x.d, levels, |l, y| dot_offset(l, sixteen, y));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tile_q8_0<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_0]; C], out: &mut [[f32; C]]) {
    let levels = |x: &BlockQ8_0| load_256(&x.qs);
    tile_with_q8_0(xs, ys, out, |x| x.d, levels, |l, y| dot_i8_i8_widened(l, y));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tile_iq4_nl<const C: usize>(
    xs: &[&[u8]],
    ys: [&[BlockQ8_0]; C],
    out: &mut [[f32; C]],
) {
    let table = iq4_table();
    let levels = |x: &BlockIq4Nl| iq4_levels(table, &x.qs);
    tile_with_q8_0(xs, ys, out, |x| x.d, levels, |l, y| dot_signed(l, sign_split(y)));
}

/// The tile kernel shape of the formats with a Q8_1 activation (Q4_1,
/// Q5_1): `header` gives a block's `d` and `m`, `levels` its unsigned
/// levels.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_with_q8_1<X: bytemuck::Pod, const C: usize>(
    xs: &[&[u8]],
    ys: [&[BlockQ8_1]; C],
    out: &mut [[f32; C]],
    header: impl Fn(&X) -> ([u8; 2], [u8; 2]),
    levels: impl Fn(&X) -> __m256i,
) {
    let step = |levels: __m256i, x: &X, y: &BlockQ8_1, acc| {
        let (d, m) = header(x);
        step_with_minimum((d, m, levels), y, acc)
    };
    let zero = (_mm256_setzero_ps(), _mm_setzero_ps());
    for_each_row(xs, out, |xs: &[X]| {
        fold_columns(xs, ys, zero, &levels, step).map(|((a, a_min), (b, b_min))| {
            // Lane 1 of the minimum accumulators holds Σ m·s.
            let minimums = _mm_add_ps(a_min, b_min);
            hsum_f32x8(add(a, b)) + _mm_cvtss_f32(_mm_movehdup_ps(minimums))
        })
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tile_q4_1<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_1]; C], out: &mut [[f32; C]]) {
    tile_with_q8_1(xs, ys, out, |x: &BlockQ4_1| (x.d, x.m), |x| nibbles_32(&x.qs));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tile_q5_1<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8_1]; C], out: &mut [[f32; C]]) {
    tile_with_q8_1(xs, ys, out, |x: &BlockQ5_1| (x.d, x.m), |x| q5_levels(&x.qs, x.qh));
}
