//! AVX2 dot products of the 256-element formats (the K quants, IQ4_XS)
//! with Q8_K.
//!
//! Per super-block, the levels are unpacked 32 at a time into the
//! elements' order, multiplied with the activation bytes into i16 pair
//! sums (`vpmaddubsw`), and those are multiplied with their group's scale
//! and summed into i32 lanes (`vpmaddwd`); the super-block's exact integer
//! sum is then scaled once in f32. As in the scalar reference, the
//! activation's stored 16-element sums (`bsums`) are used for the
//! minimums of Q2_K, Q4_K and Q5_K, and nowhere else.
//!
//! Bounds (so no i16 or i32 sum saturates or wraps, for any bytes): pairs
//! of level·activation products are noted at each `maddubs`; a `madd` with
//! a scale of at most 128 in magnitude gives at most `2·128·32767 < 2^23`
//! per lane and call, and a super-block makes 16 such calls per lane.

use std::arch::x86_64::*;

use bytemuck::Pod;

use crate::kernels::quant::blocks::{
    BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K,
};
use crate::kernels::quant::x86::avx2_dot_legacy::{iq4_levels, iq4_table};
use crate::kernels::quant::x86::avx2_ops::{
    dot_offset_pairs, dot_signed_pairs, f16_to_f32, hsum_f32x8, pick_i16, sign_split,
};
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

/// `Σ_g scale[g]·pairs` accumulated: `pairs` holds the i16 pair sums of a
/// 32-element chunk, `scales` eight i16 scales in both lanes, `control`
/// the chunk's [`PICK_PAIR`] or [`PICK_ONE`].
#[inline]
#[target_feature(enable = "avx2")]
fn add_scaled(acc: __m256i, scales: __m256i, control: &[u8; 32], pairs: __m256i) -> __m256i {
    let picked = _mm256_shuffle_epi8(scales, load_256(control));
    _mm256_add_epi32(acc, _mm256_madd_epi16(picked, pairs))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q2_k(xs: &[BlockQ2K], ys: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    let three = _mm256_set1_epi8(3);
    let nibble = _mm_set1_epi8(0x0f);
    for (x, y) in xs.iter().zip(ys) {
        let d8 = q8_k_scale(y);
        let packed = load_128(&x.scales);
        let scales16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, nibble));
        let mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), nibble));
        // Σ bsums·min: at most 16·32768·15.
        let min_sums = _mm256_madd_epi16(mins16, load_256(&y.bsums));
        let d_dmin = f16_pair(x.d, x.dmin);
        let dmin = _mm256_set1_ps(d8 * _mm_cvtss_f32(_mm_movehdup_ps(d_dmin)));
        acc_min = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(min_sums), acc_min);

        // Element 128·half + 32·k + l: bits 2k..2k + 2 of qs[half] byte l.
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let scales = both_lanes_of_half(scales16, half);
            let mut bits = load_256(&x.qs[half]);
            for k in 0..4 {
                // Levels 0..=3: pairs at most 2·3·128.
                let levels = _mm256_and_si256(bits, three);
                let pairs = _mm256_maddubs_epi16(levels, load_256(&y.qs[4 * half + k]));
                sumi = add_scaled(sumi, scales, &PICK_PAIR[k], pairs);
                bits = _mm256_srli_epi16::<2>(bits);
            }
        }
        let d = _mm256_set1_ps(d8 * _mm_cvtss_f32(d_dmin));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc) - hsum_f32x8(acc_min)
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q3_k(xs: &[BlockQ3K], ys: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let three = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    for (x, y) in xs.iter().zip(ys) {
        let scales16 = _mm256_cvtepi8_epi16(q3_k_scales(&x.scales));
        // Bit 4·half + k of hmask byte l is the third bit of element
        // 128·half + 32·k + l; shifted down one per chunk.
        let mut high = load_256(&x.hmask);
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let scales = both_lanes_of_half(scales16, half);
            let mut bits = load_256(&x.qs[half]);
            for k in 0..4 {
                // Levels 0..=7 meaning −4..=3: pairs at most 2·7·128.
                let third = _mm256_and_si256(_mm256_slli_epi16::<2>(high), four);
                let levels = _mm256_or_si256(_mm256_and_si256(bits, three), third);
                let pairs = dot_offset_pairs(levels, four, load_256(&y.qs[4 * half + k]));
                sumi = add_scaled(sumi, scales, &PICK_PAIR[k], pairs);
                bits = _mm256_srli_epi16::<2>(bits);
                high = _mm256_srli_epi16::<1>(high);
            }
        }
        let d = _mm256_set1_ps(q8_k_scale(y) * f16_to_f32(x.d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
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

/// The shared part of Q4_K's and Q5_K's dot products: `levels(x)` gives
/// a super-block's eight 32-element groups of levels (at most 31, so pairs
/// stay within `2·31·128`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_k4<X: Pod>(xs: &[X], ys: &[BlockQ8K], levels: impl Fn(&X) -> [__m256i; 8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (x, y) in xs.iter().zip(ys) {
        let (d_dmin, scales_and_mins) = k4_decode_header(k4_header(x));
        let d8 = q8_k_scale(y);
        let (d, dmin) = (_mm_cvtss_f32(d_dmin), _mm_cvtss_f32(_mm_movehdup_ps(d_dmin)));
        // Each minimum serves two 16-element sums: duplicate, widen.
        let mins = _mm_unpackhi_epi8(scales_and_mins, scales_and_mins);
        let min_sums = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mins), load_256(&y.bsums));
        let dmin = _mm256_set1_ps(d8 * dmin);
        acc_min = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(min_sums), acc_min);

        let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scales_and_mins));
        let levels = levels(x);
        let mut sumi = _mm256_setzero_si256();
        for g in 0..8 {
            let pairs = _mm256_maddubs_epi16(levels[g], load_256(&y.qs[g]));
            sumi = add_scaled(sumi, scales, &PICK_ONE[g], pairs);
        }
        let d = _mm256_set1_ps(d8 * d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc) - hsum_f32x8(acc_min)
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_k(xs: &[BlockQ4K], ys: &[BlockQ8K]) -> f32 {
    dot_k4(xs, ys, |x| k4_nibbles(&x.qs))
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_k(xs: &[BlockQ5K], ys: &[BlockQ8K]) -> f32 {
    dot_k4(xs, ys, |x| q5_k_levels(x))
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q6_k(xs: &[BlockQ6K], ys: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let thirty_two = _mm256_set1_epi8(32);
    for (x, y) in xs.iter().zip(ys) {
        let scales16 = _mm256_cvtepi8_epi16(load_128(&x.scales));
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let scales = both_lanes_of_half(scales16, half);
            let levels = q6_k_levels(x, half);
            for k in 0..4 {
                // Pairs of (level − 32)·y within ±2·32·128.
                let pairs = dot_offset_pairs(levels[k], thirty_two, load_256(&y.qs[4 * half + k]));
                sumi = add_scaled(sumi, scales, &PICK_PAIR[k], pairs);
            }
        }
        let d = _mm256_set1_ps(q8_k_scale(y) * f16_to_f32(x.d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_iq4_xs(xs: &[BlockIq4Xs], ys: &[BlockQ8K]) -> f32 {
    let table = iq4_table();
    let mut acc = _mm256_setzero_ps();
    for (x, y) in xs.iter().zip(ys) {
        let scales8 = _mm_cvtsi64_si128(iq4_xs_scales(x) as i64);
        let scales16 = _mm_sub_epi16(_mm_cvtepu8_epi16(scales8), _mm_set1_epi16(32));
        let scales = _mm256_broadcastsi128_si256(scales16);
        let mut sumi = _mm256_setzero_si256();
        for g in 0..8 {
            // Levels −127..=113: pairs at most 2·128·127.
            let y = sign_split(load_256(&y.qs[g]));
            let pairs = dot_signed_pairs(iq4_levels(table, &x.qs[g]), y);
            sumi = add_scaled(sumi, scales, &PICK_ONE[g], pairs);
        }
        let d = _mm256_set1_ps(f16_to_f32(x.d) * q8_k_scale(y));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}
