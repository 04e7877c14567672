//! AVX-512 (VNNI) dot products of the 256-element formats with Q8_K: 64
//! elements per vector, four vectors per super-block.
//!
//! The levels of elements `64·v..64·v + 64` are assembled in one vector
//! (from the packed layouts by shifts, 128-bit lane shuffles and byte
//! masks), multiplied with the activation bytes into i16 pair sums
//! (`vpmaddubsw`), and those are multiplied with their group's scale and
//! accumulated into i32 lanes in one instruction (`vpdpwssd`); a vector's
//! group scales are spread across its i16 lanes by `vpermw`. The stored
//! activation sums are used where the scalar reference uses them (the
//! minimums of Q2_K, Q4_K, Q5_K), as in the AVX2 kernels, whose helpers
//! (scale decoding, minimum terms) are shared. Bounds are as noted there.

use std::arch::x86_64::*;

use crate::kernels::quant::blocks::{
    BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K,
};
use crate::kernels::quant::x86::avx2_dot_k::{
    f16_pair, iq4_xs_scales, k4_decode_header, k4_header, q3_k_scales, q8_k_scale,
};
use crate::kernels::quant::x86::avx2_dot_legacy::IQ4_LEVEL_BYTES;
use crate::kernels::quant::x86::avx2_ops::{f16_to_f32, hsum_f32x8};
use crate::kernels::quant::x86::avx512_dot_legacy::hsum_f32x16;
use crate::kernels::quant::x86::for_each_row;
use crate::kernels::quant::x86::memory::{load_128, load_256, load_512};

/// `vpermw` indices spreading eight i16 scales of 16-element groups over
/// vector `v`'s 32 i16 pair sums: lane `i` takes group `4v + i / 8`.
const GROUPS_OF_16: [[u16; 32]; 4] = spread_groups(16);

/// The same for 32-element groups: lane `i` of vector `v` takes group
/// `2v + i / 16`.
const GROUPS_OF_32: [[u16; 32]; 4] = spread_groups(32);

const fn spread_groups(group: usize) -> [[u16; 32]; 4] {
    let mut indices = [[0u16; 32]; 4];
    let mut v = 0;
    while v < 4 {
        let mut lane = 0;
        while lane < 32 {
            // Pair sum `lane` covers elements 64v + 2·lane, + 1.
            indices[v][lane] = ((64 * v + 2 * lane) / group) as u16;
            lane += 1;
        }
        v += 1;
    }
    indices
}

/// Bit masks selecting, in a vector of a 32-byte bit field repeated twice,
/// bit `2v` in the low half and bit `2v + 1` in the high half: the high
/// bits of the 32-element groups `2v` and `2v + 1` (Q3_K's `hmask` in
/// element order, Q5_K's `qh`).
const GROUP_BITS: [[u8; 64]; 4] = {
    let mut masks = [[0u8; 64]; 4];
    let mut v = 0;
    while v < 4 {
        let mut i = 0;
        while i < 64 {
            masks[v][i] = 1 << (2 * v + i / 32);
            i += 1;
        }
        v += 1;
    }
    masks
};

/// The i16 scales of vector `v`'s pair sums, per `indices`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn spread_scales(scales16: __m512i, indices: &[u16; 32]) -> __m512i {
    _mm512_permutexvar_epi16(load_512(indices), scales16)
}

/// A 32-byte field in both halves of a vector.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn twice(field: &[u8; 32]) -> __m512i {
    _mm512_broadcast_i64x4(load_256(field))
}

/// Elements `64·v..64·v + 64` of the activation.
#[inline]
#[target_feature(enable = "avx512f")]
fn activation(y: &BlockQ8K, v: usize) -> __m512i {
    let pairs = y.qs.as_chunks::<2>().0;
    pairs.get(v).map_or(_mm512_setzero_si512(), |pair| load_512(pair))
}

/// The minimum terms `Σ bsums·min` of a super-block as eight i32 lanes,
/// `mins16` holding the sixteen 16-element groups' minimums as i16.
#[inline]
#[target_feature(enable = "avx2")]
fn minimum_sums(mins16: __m256i, y: &BlockQ8K) -> __m256i {
    _mm256_madd_epi16(mins16, load_256(&y.bsums))
}

/// `[a.lanes 0, 1 | b.lanes 0, 1]` and `[a.lanes 2, 3 | b.lanes 2, 3]` (128-bit
/// lanes): regroups two vectors whose halves hold different element runs.
#[inline]
#[target_feature(enable = "avx512f")]
fn regroup(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    (_mm512_shuffle_i64x2::<0b01_00_01_00>(a, b), _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b))
}

/// The 2-bit planes of Q2_K's and Q3_K's `qs` in element order: vector
/// `v` holds elements `64v..64v + 64` (element `128·half + 32·k + l` is
/// bits `2k..2k + 2` of `qs[half]` byte `l`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn two_bit_levels(qs: &[[u8; 32]; 2]) -> [__m512i; 4] {
    let three = _mm512_set1_epi8(3);
    let bits = load_512(qs);
    // plane[k] = [half 0, chunk k | half 1, chunk k].
    let plane0 = _mm512_and_si512(bits, three);
    let plane1 = _mm512_and_si512(_mm512_srli_epi16::<2>(bits), three);
    let plane2 = _mm512_and_si512(_mm512_srli_epi16::<4>(bits), three);
    let plane3 = _mm512_and_si512(_mm512_srli_epi16::<6>(bits), three);
    let (v0, v2) = regroup(plane0, plane1);
    let (v1, v3) = regroup(plane2, plane3);
    [v0, v1, v2, v3]
}

/// A weight super-block unpacked once for every activation column: the
/// levels of its four 64-element vectors, each vector's group scales
/// spread over its i16 pair sums, its f32 scale, and for the formats with
/// minimums their scale and the sixteen 16-element groups' minimums.
struct SuperBlock {
    levels: [__m512i; 4],
    scales: [__m512i; 4],
    d: f32,
    minimums: Option<(f32, __m256i)>,
}

/// The i16 scales of a super-block's four vectors, spread per `indices`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn spread_all(scales16: __m512i, indices: &[[u16; 32]; 4]) -> [__m512i; 4] {
    let mut spread = [_mm512_setzero_si512(); 4];
    for v in 0..4 {
        spread[v] = spread_scales(scales16, &indices[v]);
    }
    spread
}

/// Folds the weight row `xs` against each of the `C` activation rows
/// `ys`: `unpack` prepares a super-block once, `pairs` multiplies a vector
/// of its levels with a vector of activation bytes into i16 pair sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot_columns<X, const C: usize>(
    xs: &[X],
    ys: [&[BlockQ8K]; C],
    unpack: impl Fn(&X) -> SuperBlock,
    pairs: impl Fn(__m512i, __m512i) -> __m512i,
) -> [f32; C] {
    let mut acc = [_mm512_setzero_ps(); C];
    let mut acc_min = [_mm256_setzero_ps(); C];
    for (i, x) in xs.iter().enumerate() {
        let block = unpack(x);
        for c in 0..C {
            let Some(y) = ys[c].get(i) else { continue };
            let d8 = q8_k_scale(y);
            // Four independent `vpdpwssd`s, summed as a tree: chained
            // through one accumulator, their latency bounded a one-column
            // dot product.
            let zero = _mm512_setzero_si512();
            let mut partial = [zero; 4];
            for v in 0..4 {
                let products = pairs(block.levels[v], activation(y, v));
                partial[v] = _mm512_dpwssd_epi32(zero, products, block.scales[v]);
            }
            let sumi = _mm512_add_epi32(
                _mm512_add_epi32(partial[0], partial[1]),
                _mm512_add_epi32(partial[2], partial[3]),
            );
            acc[c] =
                _mm512_fmadd_ps(_mm512_set1_ps(block.d * d8), _mm512_cvtepi32_ps(sumi), acc[c]);
            if let Some((dmin, mins16)) = block.minimums {
                let min_sums = _mm256_cvtepi32_ps(minimum_sums(mins16, y));
                acc_min[c] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * d8), min_sums, acc_min[c]);
            }
        }
    }
    let mut dots = [0f32; C];
    for c in 0..C {
        dots[c] = hsum_f32x16(acc[c]) - hsum_f32x8(acc_min[c]);
    }
    dots
}

/// `(level − offset)·y` as i16 pair sums, for levels at most 63 and an
/// offset of at most 32 (both products' pairs fit i16, as noted in
/// `avx2_ops::dot_offset_pairs`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn offset_pairs(levels: __m512i, offset: __m512i, y: __m512i) -> __m512i {
    _mm512_sub_epi16(_mm512_maddubs_epi16(levels, y), _mm512_maddubs_epi16(offset, y))
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q2_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let nibble = _mm_set1_epi8(0x0f);
    let unpack = |x: &BlockQ2K| {
        let packed = load_128(&x.scales);
        let mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), nibble));
        let scales16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(packed, nibble)));
        let d_dmin = f16_pair(x.d, x.dmin);
        SuperBlock {
            levels: two_bit_levels(&x.qs),
            scales: spread_all(scales16, &GROUPS_OF_16),
            d: _mm_cvtss_f32(d_dmin),
            minimums: Some((_mm_cvtss_f32(_mm_movehdup_ps(d_dmin)), mins16)),
        }
    };
    // Levels 0..=3: pairs at most 2·3·128.
    for_each_row(xs, out, |xs: &[BlockQ2K]| {
        dot_columns(xs, ys, unpack, |levels, y| _mm512_maddubs_epi16(levels, y))
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q3_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let four = _mm512_set1_epi8(4);
    let unpack = |x: &BlockQ3K| {
        let scales16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(q3_k_scales(&x.scales)));
        let mut levels = two_bit_levels(&x.qs);
        let high = twice(&x.hmask);
        for v in 0..4 {
            // Levels 0..=7 meaning −4..=3: the third bit adds 4.
            let third = _mm512_test_epi8_mask(high, load_512(&GROUP_BITS[v]));
            levels[v] = _mm512_mask_add_epi8(levels[v], third, levels[v], four);
        }
        SuperBlock {
            levels,
            scales: spread_all(scales16, &GROUPS_OF_16),
            d: f16_to_f32(x.d),
            minimums: None,
        }
    };
    for_each_row(xs, out, |xs: &[BlockQ3K]| {
        dot_columns(xs, ys, unpack, |levels, y| offset_pairs(levels, four, y))
    });
}

/// Q4_K's and Q5_K's nibbles in element order: vector `v` holds elements
/// `64v..64v + 64` (the low nibbles of `qs[v]`, then its high nibbles).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn k4_nibbles(qs: &[[u8; 32]; 4]) -> [__m512i; 4] {
    let nibble = _mm512_set1_epi8(0x0f);
    let [first, second] = qs.as_chunks::<2>().0 else { return [_mm512_setzero_si512(); 4] };
    let (bits01, bits23) = (load_512(first), load_512(second));
    let (low01, high01) = (
        _mm512_and_si512(bits01, nibble),
        _mm512_and_si512(_mm512_srli_epi16::<4>(bits01), nibble),
    );
    let (low23, high23) = (
        _mm512_and_si512(bits23, nibble),
        _mm512_and_si512(_mm512_srli_epi16::<4>(bits23), nibble),
    );
    let (v0, v1) = regroup(low01, high01);
    let (v2, v3) = regroup(low23, high23);
    [v0, v1, v2, v3]
}

/// A Q4_K or Q5_K super-block around its levels (at most 31: pairs within
/// `2·31·128`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2,f16c")]
fn k4_super_block(header: &[u8; 16], levels: [__m512i; 4]) -> SuperBlock {
    let (d_dmin, scales_and_mins) = k4_decode_header(header);
    // Each minimum serves two 16-element sums: duplicate, widen.
    let mins = _mm_unpackhi_epi8(scales_and_mins, scales_and_mins);
    let scales16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(scales_and_mins));
    let (d, dmin) = (_mm_cvtss_f32(d_dmin), _mm_cvtss_f32(_mm_movehdup_ps(d_dmin)));
    SuperBlock {
        levels,
        scales: spread_all(scales16, &GROUPS_OF_32),
        d,
        minimums: Some((dmin, _mm256_cvtepu8_epi16(mins))),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q4_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let unpack = |x: &BlockQ4K| k4_super_block(k4_header(x), k4_nibbles(&x.qs));
    for_each_row(xs, out, |xs: &[BlockQ4K]| {
        dot_columns(xs, ys, unpack, |levels, y| _mm512_maddubs_epi16(levels, y))
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q5_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let sixteen = _mm512_set1_epi8(16);
    let unpack = |x: &BlockQ5K| {
        let mut levels = k4_nibbles(&x.qs);
        let fifth = twice(&x.qh);
        for v in 0..4 {
            let set = _mm512_test_epi8_mask(fifth, load_512(&GROUP_BITS[v]));
            levels[v] = _mm512_mask_add_epi8(levels[v], set, levels[v], sixteen);
        }
        k4_super_block(k4_header(x), levels)
    };
    for_each_row(xs, out, |xs: &[BlockQ5K]| {
        dot_columns(xs, ys, unpack, |levels, y| _mm512_maddubs_epi16(levels, y))
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_q6_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let nibble = _mm512_set1_epi8(0x0f);
    let two_bits = _mm512_set1_epi8(0x30);
    // Rotations moving bits 2k, 2k + 1 of each byte to bits 4, 5: k = 0
    // (low half) and 1 (high half), then k = 2 and 3.
    let rotate_01 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2);
    let rotate_23 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 30, 30, 30, 30, 30, 30, 30, 30);
    let unpack = |x: &BlockQ6K| {
        let scales16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(load_128(&x.scales)));
        let ql = x.ql.as_chunks::<2>().0;
        let mut levels = [_mm512_setzero_si512(); 4];
        for half in 0..2 {
            // Elements 128·half + 32·k + l: the low nibbles of ql[2·half]
            // (k = 0) and ql[2·half + 1] (1), their high nibbles (2, 3),
            // bits 2k.. of qh[half] byte l on top; levels 0..=63 mean
            // −32..=31.
            let Some(low_bits) = ql.get(half) else { continue };
            let bits = load_512(low_bits);
            let high = twice(&x.qh[half]);
            let high_01 = _mm512_and_si512(_mm512_rolv_epi32(high, rotate_01), two_bits);
            let high_23 = _mm512_and_si512(_mm512_rolv_epi32(high, rotate_23), two_bits);
            levels[2 * half] = _mm512_or_si512(_mm512_and_si512(bits, nibble), high_01);
            levels[2 * half + 1] =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(bits), nibble), high_23);
        }
        SuperBlock {
            levels,
            scales: spread_all(scales16, &GROUPS_OF_16),
            d: f16_to_f32(x.d),
            minimums: None,
        }
    };
    let thirty_two = _mm512_set1_epi8(32);
    for_each_row(xs, out, |xs: &[BlockQ6K]| {
        dot_columns(xs, ys, unpack, |levels, y| offset_pairs(levels, thirty_two, y))
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn dot_iq4_xs<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let nibble = _mm512_set1_epi8(0x0f);
    let table = _mm512_broadcast_i32x4(load_128(&IQ4_LEVEL_BYTES));
    // 64-bit lane indices interleaving the low and high nibbles of
    // sub-blocks: [low 0, high 0, low 1, high 1], then 2 and 3.
    let first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    let second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    let unpack = |x: &BlockIq4Xs| {
        let scales8 = _mm_cvtsi64_si128(iq4_xs_scales(x) as i64);
        let scales16 =
            _mm512_castsi128_si512(_mm_sub_epi16(_mm_cvtepu8_epi16(scales8), _mm_set1_epi16(32)));
        let quads = x.qs.as_chunks::<4>().0;
        let mut levels = [_mm512_setzero_si512(); 4];
        for p in 0..2 {
            let Some(quad) = quads.get(p) else { continue };
            let bits = load_512(quad);
            let low = _mm512_and_si512(bits, nibble);
            let high = _mm512_and_si512(_mm512_srli_epi16::<4>(bits), nibble);
            levels[2 * p] = _mm512_shuffle_epi8(table, _mm512_permutex2var_epi64(low, first, high));
            levels[2 * p + 1] =
                _mm512_shuffle_epi8(table, _mm512_permutex2var_epi64(low, second, high));
        }
        SuperBlock {
            levels,
            scales: spread_all(scales16, &GROUPS_OF_32),
            d: f16_to_f32(x.d),
            minimums: None,
        }
    };
    // Levels −127..=113: |y| times the level with y's sign, pairs at most
    // 2·128·127.
    let signed_pairs = |levels: __m512i, y: __m512i| {
        let negative = _mm512_movepi8_mask(y);
        let signed = _mm512_mask_sub_epi8(levels, negative, _mm512_setzero_si512(), levels);
        _mm512_maddubs_epi16(_mm512_abs_epi8(y), signed)
    };
    for_each_row(xs, out, |xs: &[BlockIq4Xs]| dot_columns(xs, ys, unpack, signed_pairs));
}
