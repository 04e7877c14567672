//! AVX2 dot products of the 256-element formats (the K quants, IQ4_XS)
//! with Q8_K, one weight row against `C` activation rows at once (`C = 1`
//! is a plain dot product).
//!
//! A super-block is unpacked once for all `C` columns: its levels into
//! the elements' order, 32 at a time, and each 32-element chunk's group
//! scales spread over i16 lanes. Per column, each chunk's levels and
//! activation bytes make i16 pair sums (`vpmaddubsw`), which are multiplied
//! with the scales and summed into i32 lanes (`vpmaddwd`); the
//! super-block's exact integer sum is then scaled once in f32. As in the
//! scalar reference, the activation's stored 16-element sums (`bsums`)
//! are used for the minimums of Q2_K, Q4_K and Q5_K, and nowhere else.
//!
//! Bounds (so no i16 or i32 sum saturates or wraps, for any bytes): pairs
//! of level·activation products are noted at each `maddubs`; a `madd` with
//! a scale of at most 128 in magnitude gives at most `2·128·32767 < 2^23`
//! per lane and call, and a super-block makes eight such calls per lane.

use std::arch::x86_64::*;

use bytemuck::Pod;

use crate::kernels::quant::blocks::{
    BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K,
};
use crate::kernels::quant::x86::avx2_dot_legacy::{iq4_levels, iq4_table};
use crate::kernels::quant::x86::avx2_ops::{
    dot_offset_pairs, dot_signed_pairs, f16_to_f32, hsum_f32x8, pick_i16, sign_split,
};
use crate::kernels::quant::x86::for_each_row;
use crate::kernels::quant::x86::memory::{load_128, load_256};

/// `pshufb` controls picking the scales of groups `2k` (low lane) and
/// `2k + 1` (high lane) out of eight i16 scales: for 16-element groups,
/// whose 32-element chunk `k` spans two groups.
const PICK_PAIR: [[u8; 32]; 4] = [pick_i16(0, 1), pick_i16(2, 3), pick_i16(4, 5), pick_i16(6, 7)];

/// `pshufb` controls filling both lanes with scale `s`: for 32-element
/// groups.
const PICK_ONE: [[u8; 32]; 8] = [
    pick_i16(0, 0),
    pick_i16(1, 1),
    pick_i16(2, 2),
    pick_i16(3, 3),
    pick_i16(4, 4),
    pick_i16(5, 5),
    pick_i16(6, 6),
    pick_i16(7, 7),
];

/// Q8_K's f32 scale.
#[inline(always)]
pub(super) fn q8_k_scale(y: &BlockQ8K) -> f32 {
    f32::from_le_bytes(y.d)
}

/// Eight i16 (half `half` of sixteen: groups `8·half..8·half + 8`) in both
/// 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn both_lanes_of_half(scales16: __m256i, half: usize) -> __m256i {
    if half == 0 {
        _mm256_permute2x128_si256::<0x00>(scales16, scales16)
    } else {
        _mm256_permute2x128_si256::<0x11>(scales16, scales16)
    }
}

/// The scales of a chunk's pair sums: `control` ([`PICK_PAIR`] or
/// [`PICK_ONE`]) applied to eight i16 scales in both lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn pick(scales: __m256i, control: &[u8; 32]) -> __m256i {
    _mm256_shuffle_epi8(scales, load_256(control))
}

/// Q3_K's sixteen 6-bit scales minus 32, as bytes (see `q3_k_scales`):
/// scale `j`'s low four bits are nibble `j / 8` of byte `j % 8`, its high
/// two bits are bits `2·(j / 4)..` of byte `8 + j % 4`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn q3_k_scales(packed: &[u8; 12]) -> __m128i {
    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = *packed;
    let (w0, w1, w2) = (
        u32::from_le_bytes([a0, a1, a2, a3]),
        u32::from_le_bytes([b0, b1, b2, b3]),
        u32::from_le_bytes([c0, c1, c2, c3]),
    );
    const LOW: u32 = 0x0f0f_0f0f;
    const TWO: u32 = 0x0303_0303;
    let scales = _mm_setr_epi32(
        ((w0 & LOW) | ((w2 & TWO) << 4)) as i32,
        ((w1 & LOW) | (((w2 >> 2) & TWO) << 4)) as i32,
        (((w0 >> 4) & LOW) | (((w2 >> 4) & TWO) << 4)) as i32,
        (((w1 >> 4) & LOW) | (((w2 >> 6) & TWO) << 4)) as i32,
    );
    _mm_sub_epi8(scales, _mm_set1_epi8(32))
}

/// Q4_K's and Q5_K's header: `d`, `dmin` and the 12 packed scale bytes,
/// the block's first 16 bytes.
#[inline(always)]
pub(super) fn k4_header<B: Pod>(block: &B) -> &[u8; 16] {
    bytemuck::bytes_of(block).first_chunk::<16>().unwrap_or(&[0; 16])
}

/// A Q4_K or Q5_K header decoded with vector shuffles: `[d, dmin]` (f32
/// lanes 0 and 1), and the eight 6-bit scales (bytes 0..8) and minimums
/// (bytes 8..16), see `scales_and_mins_k4`: packed bytes 0..4 hold scales
/// 0..4, bytes 4..8 minimums 0..4, bytes 8..12 the low nibbles of scales
/// (low) and minimums (high) 4..8, whose top two bits are the top bits of
/// bytes 0..8.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn k4_decode_header(header: &[u8; 16]) -> (__m128, __m128i) {
    let v = load_128(header);
    let scales = _mm_cvtph_ps(v);
    // Packed byte j is header byte 4 + j. Low bits: scales 0..4 from
    // bytes 0..4, scales 4..8 from the low nibbles of 8..12, minimums 0..4
    // from 4..8, minimums 4..8 from the high nibbles of 8..12.
    let low_source = _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    let lows = _mm_shuffle_epi8(v, low_source);
    let low_mask = _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0);
    let nibble_mask = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15);
    let low_bits = _mm_or_si128(
        _mm_and_si128(lows, low_mask),
        _mm_and_si128(_mm_srli_epi16::<4>(lows), nibble_mask),
    );
    // Top bits of scales 4..8 from bytes 0..4, of minimums 4..8 from 4..8
    // (−1 selects zero): (byte >> 6) << 4.
    let top_source = _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11);
    let tops = _mm_shuffle_epi8(v, top_source);
    let top_bits = _mm_and_si128(_mm_srli_epi16::<2>(tops), _mm_set1_epi8(0x30));
    (scales, _mm_or_si128(low_bits, top_bits))
}

/// Two adjacent little-endian fp16 values (`d`, `dmin`) as f32 lanes 0, 1.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_pair(a: [u8; 2], b: [u8; 2]) -> __m128 {
    let bits = u32::from_le_bytes([a[0], a[1], b[0], b[1]]);
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
}

/// Q4_K's and Q5_K's nibbles in the elements' order: per 32 bytes, the low
/// nibbles are one 32-element group, the high nibbles the next.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn k4_nibbles(qs: &[[u8; 32]; 4]) -> [__m256i; 8] {
    let nibble = _mm256_set1_epi8(0x0f);
    let mut groups = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        let bits = load_256(&qs[j]);
        groups[2 * j] = _mm256_and_si256(bits, nibble);
        groups[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), nibble);
    }
    groups
}

/// Q5_K's levels `0..32`: [`k4_nibbles`] plus 16 where the fifth bit is
/// set (bit `g` of qh byte `l` for element `32·g + l`).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn q5_k_levels(x: &BlockQ5K) -> [__m256i; 8] {
    let sixteen = _mm256_set1_epi8(16);
    let mut groups = k4_nibbles(&x.qs);
    let mut fifth = load_256(&x.qh);
    for group in &mut groups {
        let bit = _mm256_and_si256(_mm256_slli_epi16::<4>(fifth), sixteen);
        *group = _mm256_or_si256(*group, bit);
        fifth = _mm256_srli_epi16::<1>(fifth);
    }
    groups
}

/// Q6_K's levels `0..64` (meaning −32..=31) of elements `128·half +
/// 32·k..`, `k = 0..4`: the low nibbles of `ql[2·half]` (k = 0) and
/// `ql[2·half + 1]` (1), then their high nibbles (2, 3), with bits
/// `2k..2k + 2` of `qh[half]` on top.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn q6_k_levels(x: &BlockQ6K, half: usize) -> [__m256i; 4] {
    let nibble = _mm256_set1_epi8(0x0f);
    let (a, b) = (load_256(&x.ql[2 * half]), load_256(&x.ql[2 * half + 1]));
    let high = load_256(&x.qh[half]);
    let high_bits = |mask: u8| _mm256_and_si256(high, _mm256_set1_epi8(mask as i8));
    [
        _mm256_or_si256(_mm256_and_si256(a, nibble), _mm256_slli_epi16::<4>(high_bits(0x03))),
        _mm256_or_si256(_mm256_and_si256(b, nibble), _mm256_slli_epi16::<2>(high_bits(0x0c))),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(a), nibble), high_bits(0x30)),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(b), nibble),
            _mm256_srli_epi16::<2>(high_bits(0xc0)),
        ),
    ]
}

/// IQ4_XS's eight 6-bit scales (0..64, meaning − 32) as the bytes of a
/// u64: scale `i`'s low four bits are nibble `i` of `scales_l`, its high
/// two bits are bits `2i..2i + 2` of `scales_h`. Each value's bits are
/// spread to its own byte by halving shifts.
#[inline(always)]
pub(super) fn iq4_xs_scales(x: &BlockIq4Xs) -> u64 {
    let mut low = u64::from(u32::from_le_bytes(x.scales_l));
    low = (low | (low << 16)) & 0x0000_ffff_0000_ffff;
    low = (low | (low << 8)) & 0x00ff_00ff_00ff_00ff;
    low = (low | (low << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    let mut high = u64::from(u16::from_le_bytes(x.scales_h));
    high = (high | (high << 24)) & 0x0000_00ff_0000_00ff;
    high = (high | (high << 12)) & 0x000f_000f_000f_000f;
    high = (high | (high << 6)) & 0x0303_0303_0303_0303;
    low | (high << 4)
}

/// A weight super-block unpacked once for every activation column: the
/// levels of its eight 32-element chunks, each chunk's group scales spread
/// over its i16 pair sums, its f32 scale, and for the formats with
/// minimums their scale and the sixteen 16-element groups' minimums.
struct SuperBlock {
    levels: [__m256i; 8],
    scales: [__m256i; 8],
    d: f32,
    minimums: Option<(f32, __m256i)>,
}

/// Folds the weight row `xs` against each of the `C` activation rows `ys`:
/// `unpack` prepares a super-block once, `pairs` multiplies a chunk of its
/// levels with 32 activation bytes into i16 pair sums (`madd` with the
/// chunk's scales then sums them into i32 lanes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_columns<X, const C: usize>(
    xs: &[X],
    ys: [&[BlockQ8K]; C],
    unpack: impl Fn(&X) -> SuperBlock,
    pairs: impl Fn(__m256i, __m256i) -> __m256i,
) -> [f32; C] {
    let mut acc = [_mm256_setzero_ps(); C];
    let mut acc_min = [_mm256_setzero_ps(); C];
    for (i, x) in xs.iter().enumerate() {
        let block = unpack(x);
        for c in 0..C {
            let Some(y) = ys[c].get(i) else { continue };
            let d8 = q8_k_scale(y);
            // Two chains of additions, even and odd chunks.
            let mut sums = [_mm256_setzero_si256(); 2];
            for g in 0..8 {
                let products = pairs(block.levels[g], load_256(&y.qs[g]));
                let scaled = _mm256_madd_epi16(block.scales[g], products);
                sums[g % 2] = _mm256_add_epi32(sums[g % 2], scaled);
            }
            let sumi = _mm256_add_epi32(sums[0], sums[1]);
            acc[c] =
                _mm256_fmadd_ps(_mm256_set1_ps(block.d * d8), _mm256_cvtepi32_ps(sumi), acc[c]);
            if let Some((dmin, mins16)) = block.minimums {
                let min_sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, load_256(&y.bsums)));
                acc_min[c] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * d8), min_sums, acc_min[c]);
            }
        }
    }
    let mut dots = [0f32; C];
    for c in 0..C {
        dots[c] = hsum_f32x8(acc[c]) - hsum_f32x8(acc_min[c]);
    }
    dots
}

/// The scales of a super-block's eight chunks for 16-element groups:
/// chunk `4·half + k` spans groups `8·half + 2k` and `+ 1`.
#[inline]
#[target_feature(enable = "avx2")]
fn scales_of_16(scales16: __m256i) -> [__m256i; 8] {
    let mut scales = [_mm256_setzero_si256(); 8];
    for half in 0..2 {
        let both = both_lanes_of_half(scales16, half);
        for k in 0..4 {
            scales[4 * half + k] = pick(both, &PICK_PAIR[k]);
        }
    }
    scales
}

/// The scales of a super-block's eight chunks for 32-element groups:
/// chunk `g` is group `g`; `scales8` holds the eight i16 scales.
#[inline]
#[target_feature(enable = "avx2")]
fn scales_of_32(scales8: __m128i) -> [__m256i; 8] {
    let both = _mm256_broadcastsi128_si256(scales8);
    let mut scales = [_mm256_setzero_si256(); 8];
    for g in 0..8 {
        scales[g] = pick(both, &PICK_ONE[g]);
    }
    scales
}

/// Q2_K's and Q3_K's two-bit levels in element order: chunk `4·half + k`
/// is bits `2k..2k + 2` of `qs[half]`.
#[inline]
#[target_feature(enable = "avx2")]
fn two_bit_levels(qs: &[[u8; 32]; 2]) -> [__m256i; 8] {
    let three = _mm256_set1_epi8(3);
    let mut levels = [_mm256_setzero_si256(); 8];
    for half in 0..2 {
        let mut bits = load_256(&qs[half]);
        for k in 0..4 {
            levels[4 * half + k] = _mm256_and_si256(bits, three);
            bits = _mm256_srli_epi16::<2>(bits);
        }
    }
    levels
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q2_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let nibble = _mm_set1_epi8(0x0f);
    let unpack = |x: &BlockQ2K| {
        let packed = load_128(&x.scales);
        let scales16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, nibble));
        let mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), nibble));
        let d_dmin = f16_pair(x.d, x.dmin);
        SuperBlock {
            levels: two_bit_levels(&x.qs),
            scales: scales_of_16(scales16),
            d: _mm_cvtss_f32(d_dmin),
            minimums: Some((_mm_cvtss_f32(_mm_movehdup_ps(d_dmin)), mins16)),
        }
    };
    // Levels 0..=3: pairs at most 2·3·128.
    let pairs = |levels, y| _mm256_maddubs_epi16(levels, y);
    for_each_row(xs, out, |xs: &[BlockQ2K]| dot_columns(xs, ys, unpack, pairs));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q3_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let four = _mm256_set1_epi8(4);
    let unpack = |x: &BlockQ3K| {
        let scales16 = _mm256_cvtepi8_epi16(q3_k_scales(&x.scales));
        let mut levels = two_bit_levels(&x.qs);
        // Bit 4·half + k of hmask byte l is the third bit of element
        // 128·half + 32·k + l: bit g for chunk g, shifted down one per
        // chunk. Levels 0..=7 mean −4..=3.
        let mut high = load_256(&x.hmask);
        for level in &mut levels {
            let third = _mm256_and_si256(_mm256_slli_epi16::<2>(high), four);
            *level = _mm256_or_si256(*level, third);
            high = _mm256_srli_epi16::<1>(high);
        }
        SuperBlock { levels, scales: scales_of_16(scales16), d: f16_to_f32(x.d), minimums: None }
    };
    // Pairs at most 2·7·128.
    let pairs = |levels, y| dot_offset_pairs(levels, four, y);
    for_each_row(xs, out, |xs: &[BlockQ3K]| dot_columns(xs, ys, unpack, pairs));
}

/// A Q4_K or Q5_K super-block around its levels (at most 31: pairs within
/// `2·31·128`).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn k4_super_block(header: &[u8; 16], levels: [__m256i; 8]) -> SuperBlock {
    let (d_dmin, scales_and_mins) = k4_decode_header(header);
    // Each minimum serves two 16-element sums: duplicate, widen.
    let mins = _mm_unpackhi_epi8(scales_and_mins, scales_and_mins);
    SuperBlock {
        levels,
        scales: scales_of_32(_mm_cvtepu8_epi16(scales_and_mins)),
        d: _mm_cvtss_f32(d_dmin),
        minimums: Some((_mm_cvtss_f32(_mm_movehdup_ps(d_dmin)), _mm256_cvtepu8_epi16(mins))),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let unpack = |x: &BlockQ4K| k4_super_block(k4_header(x), k4_nibbles(&x.qs));
    let pairs = |levels, y| _mm256_maddubs_epi16(levels, y);
    for_each_row(xs, out, |xs: &[BlockQ4K]| dot_columns(xs, ys, unpack, pairs));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let unpack = |x: &BlockQ5K| k4_super_block(k4_header(x), q5_k_levels(x));
    let pairs = |levels, y| _mm256_maddubs_epi16(levels, y);
    for_each_row(xs, out, |xs: &[BlockQ5K]| dot_columns(xs, ys, unpack, pairs));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q6_k<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let unpack = |x: &BlockQ6K| {
        let scales16 = _mm256_cvtepi8_epi16(load_128(&x.scales));
        let mut levels = [_mm256_setzero_si256(); 8];
        for half in 0..2 {
            let quarter = q6_k_levels(x, half);
            for k in 0..4 {
                levels[4 * half + k] = quarter[k];
            }
        }
        SuperBlock { levels, scales: scales_of_16(scales16), d: f16_to_f32(x.d), minimums: None }
    };
    // Pairs of (level − 32)·y within ±2·32·128.
    let thirty_two = _mm256_set1_epi8(32);
    let pairs = |levels, y| dot_offset_pairs(levels, thirty_two, y);
    for_each_row(xs, out, |xs: &[BlockQ6K]| dot_columns(xs, ys, unpack, pairs));
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_iq4_xs<const C: usize>(xs: &[&[u8]], ys: [&[BlockQ8K]; C], out: &mut [[f32; C]]) {
    let table = iq4_table();
    let unpack = |x: &BlockIq4Xs| {
        let scales8 = _mm_cvtsi64_si128(iq4_xs_scales(x) as i64);
        let scales16 = _mm_sub_epi16(_mm_cvtepu8_epi16(scales8), _mm_set1_epi16(32));
        let mut levels = [_mm256_setzero_si256(); 8];
        for g in 0..8 {
            levels[g] = iq4_levels(table, &x.qs[g]);
        }
        SuperBlock { levels, scales: scales_of_32(scales16), d: f16_to_f32(x.d), minimums: None }
    };
    // Levels −127..=113: pairs at most 2·128·127.
    let pairs = |levels, y| dot_signed_pairs(levels, sign_split(y));
    for_each_row(xs, out, |xs: &[BlockIq4Xs]| dot_columns(xs, ys, unpack, pairs));
}
