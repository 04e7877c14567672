//! AVX2 building blocks shared by the kernels: fp16 scales, horizontal
//! sums, unpacking of nibbles and bit planes, and exact byte dot products.
//!
//! The byte products use `vpmaddubsw` (unsigned × signed bytes, adjacent
//! pairs summed into i16 with saturation), so every use states why its
//! pair sums stay within i16 and the result is exact. ggml's trick of
//! taking `|x|` and moving x's sign onto y is wrong for y = −128 (its
//! negation does not exist); here the absolute value is taken of the
//! activation (y) side, which may be −128, and its sign moved onto the
//! weight side, whose levels never are −128.

use std::arch::x86_64::*;

use crate::kernels::quant::x86::memory::load_128;

/// The f32 value of a little-endian fp16 (F16C, exact).
///
/// Inserted into an explicit zero vector: converting from
/// `_mm_cvtsi32_si128` lets LLVM insert the value into whatever register it
/// picks (only lane 0 is used), which in a loop can be the previous
/// iteration's result and chain every iteration to the last.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_to_f32(h: [u8; 2]) -> f32 {
    let bits = _mm_insert_epi16::<0>(_mm_setzero_si128(), i32::from(u16::from_le_bytes(h)));
    _mm_cvtss_f32(_mm_cvtph_ps(bits))
}

/// The f32 value of a little-endian fp16 in all eight lanes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_splat(h: [u8; 2]) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes(h)))
}

/// Four little-endian fp16 values as the f32 lanes 0..4.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16x4_to_f32(h: [[u8; 2]; 4]) -> __m128 {
    let [[a0, a1], [b0, b1], [c0, c1], [d0, d1]] = h;
    let bits = u64::from_le_bytes([a0, a1, b0, b1, c0, c1, d0, d1]);
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// `a·b` of two fp16 scales, broadcast to eight lanes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn scale_product(a: [u8; 2], b: [u8; 2]) -> __m256 {
    let bits = u32::from(u16::from_le_bytes(a)) | (u32::from(u16::from_le_bytes(b)) << 16);
    let both = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    _mm256_broadcastss_ps(_mm_mul_ss(both, _mm_movehdup_ps(both)))
}

/// The sum of eight floats.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum_f32x8(v: __m256) -> f32 {
    let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
}

/// The sum of eight i32 (wrapping; callers' sums are bounded far below).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum_i32x8(v: __m256i) -> i32 {
    let four = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let two = _mm_add_epi32(four, _mm_unpackhi_epi64(four, four));
    _mm_cvtsi128_si32(_mm_add_epi32(two, _mm_shuffle_epi32::<0b01>(two)))
}

/// The 32 nibbles of 16 packed bytes as bytes `0..16`: the low nibbles
/// first (elements 0..16 of a Q4_0-style block), then the high ones.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn nibbles_32(qs: &[u8; 16]) -> __m256i {
    let packed = load_128(qs);
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Byte `i` of the result is 0xFF where bit `i` of `bits` is set, else 0.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn bits_to_bytes_32(bits: u32) -> __m256i {
    // Byte i takes the byte of `bits` holding bit i, then tests its bit.
    let byte_of_bit =
        _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303);
    let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), byte_of_bit);
    let bit_of_byte = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_of_byte), bit_of_byte)
}

/// Sums of `u·s` over each four consecutive bytes (eight i32), for
/// unsigned bytes `u` and signed bytes `s` whose adjacent pairs' sums fit
/// i16 (true when `u ≤ 127`: `2·127·128 = 32512`).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// `|y|` as unsigned bytes (−128 becomes 128) and the signs of `y`, the
/// activation side of [`dot_signed`], computed once per activation vector.
#[derive(Clone, Copy)]
pub(super) struct SignSplit {
    pub abs: __m256i,
    pub signs: __m256i,
}

/// Splits activation bytes for [`dot_signed`].
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn sign_split(y: __m256i) -> SignSplit {
    SignSplit { abs: _mm256_abs_epi8(y), signs: y }
}

/// `x·y` as i16 pair sums, for weight bytes `x` in `−127..=127` and any
/// activation bytes `y` (split by [`sign_split`]): `|y| · (x·sign(y))`,
/// exact because `x·sign(y)` never overflows and `2·128·127 ≤ 32767`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_signed_pairs(x: __m256i, y: SignSplit) -> __m256i {
    _mm256_maddubs_epi16(y.abs, _mm256_sign_epi8(x, y.signs))
}

/// Sums of `x·y` over each four consecutive bytes, `x` in `−127..=127`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_signed(x: __m256i, y: SignSplit) -> __m256i {
    _mm256_madd_epi16(dot_signed_pairs(x, y), _mm256_set1_epi16(1))
}

/// Sums of `x·y` for any signed bytes on both sides (Q8_0 · Q8_0, where
/// both may hold −128): widened to i16 first, so always exact. Lane `i`
/// sums elements `2i, 2i+1, 16+2i, 17+2i`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_i8_i8_widened(x: __m256i, y: __m256i) -> __m256i {
    let x_low = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
    let x_high = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(x));
    let y_low = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(y));
    let y_high = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(y));
    _mm256_add_epi32(_mm256_madd_epi16(x_low, y_low), _mm256_madd_epi16(x_high, y_high))
}

/// `(u − offset)·y` as i16 pair sums, for unsigned levels `u ≤ 63`, an
/// offset of at most 32 and any activation bytes `y`: both products'
/// pairs fit i16 (`2·63·128`, `2·32·128`) and so does their difference.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_offset_pairs(levels: __m256i, offset: __m256i, y: __m256i) -> __m256i {
    _mm256_sub_epi16(_mm256_maddubs_epi16(levels, y), _mm256_maddubs_epi16(offset, y))
}

/// Sums of `(u − offset)·y` over each four consecutive bytes (see
/// [`dot_offset_pairs`]).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_offset(levels: __m256i, offset: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(dot_offset_pairs(levels, offset, y), _mm256_set1_epi16(1))
}

/// A `pshufb` control that fills a 128-bit lane with copies of its i16
/// number `low` (low lane) or `high` (high lane), for picking per-group
/// scales out of a vector holding eight i16 scales in both lanes.
pub(super) const fn pick_i16(low: usize, high: usize) -> [u8; 32] {
    let mut control = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        control[i] = (2 * low + i % 2) as u8;
        control[16 + i] = (2 * high + i % 2) as u8;
        i += 1;
    }
    control
}
