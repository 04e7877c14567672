//! The fp16 scales of the block formats, converted as ggml converts them.
//!
//! f16 → f32 is exact (every f16 is an f32). f32 → f16 rounds to nearest
//! even like `half` does; the one difference is NaN: ggml's conversion
//! (`ggml_compute_fp32_to_fp16`) returns the canonical quiet NaN `0x7e00`
//! with the input's sign, where `half` keeps payload bits.
//!
//! Scales are read once per block, so their conversion is on every hot
//! path. Without F16C (this crate builds for baseline x86-64) `half` falls
//! back to a branchy software conversion; [`f16_to_f32`] is branch-free
//! instead, and exhaustively equal to `half`.

use half::f16;

/// The f32 value of the little-endian fp16 at `bytes[at..at + 2]`.
#[inline(always)]
pub(super) fn f16_at<const N: usize>(bytes: &[u8; N], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// fp16 bits to f32, exactly, without branches (the selects compile to
/// conditional moves).
///
/// Normal numbers, infinities and NaN: the exponent and mantissa bits
/// shifted into f32 position carry an exponent 112 too small, so adding
/// 224 to the exponent field and multiplying by 2^-112 rebiases normals
/// exactly and maps the all-ones exponent to f32's (255). Subnormals
/// (and zero): the mantissa placed under the exponent of 0.5 reads as
/// `0.5 + m·2^-24`; subtracting 0.5 leaves `m·2^-24`, exactly.
#[inline(always)]
pub(super) fn f16_to_f32(bits: u16) -> f32 {
    // Exponent field 15: 2^(15 − 127).
    const TWO_POW_MINUS_112: f32 = f32::from_bits(0x0780_0000);
    let word = (bits as u32) << 16;
    let sign = word & 0x8000_0000;
    let unsigned = word << 1;
    let normal = f32::from_bits((unsigned >> 4) + (0xe0 << 23)) * TWO_POW_MINUS_112;
    let subnormal = f32::from_bits((unsigned >> 17) | (126 << 23)) - 0.5;
    let magnitude = if unsigned < (1 << 27) { subnormal } else { normal };
    f32::from_bits(sign | magnitude.to_bits())
}

/// Writes `value` as a little-endian fp16 at `bytes[at..at + 2]`.
#[inline(always)]
pub(super) fn put_f16<const N: usize>(bytes: &mut [u8; N], at: usize, value: f32) {
    let [low, high] = f32_to_f16_bits(value).to_le_bytes();
    bytes[at] = low;
    bytes[at + 1] = high;
}

/// ggml's `GGML_FP32_TO_FP16` as bits.
pub(super) fn f32_to_f16_bits(value: f32) -> u16 {
    if value.is_nan() {
        let sign = ((value.to_bits() >> 16) & 0x8000) as u16;
        return sign | 0x7e00;
    }
    f16::from_f32(value).to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_to_f32_equals_half_for_every_fp16_value() {
        for bits in 0..=u16::MAX {
            let ours = f16_to_f32(bits);
            let theirs = f16::from_bits(bits).to_f32();
            assert_eq!(ours.to_bits(), theirs.to_bits(), "fp16 {bits:#06x}: {ours} vs {theirs}");
        }
    }

    #[test]
    fn nan_becomes_the_canonical_quiet_nan_keeping_its_sign() {
        assert_eq!(f32_to_f16_bits(f32::from_bits(0x7fc0_1234)), 0x7e00);
        assert_eq!(f32_to_f16_bits(f32::from_bits(0xff80_0001)), 0xfe00);
    }

    #[test]
    fn rounds_to_nearest_even_and_overflows_to_infinity() {
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to even.
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00);
        assert_eq!(f32_to_f16_bits(-1e10), 0xfc00);
        assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
        // The smallest subnormal f16, and half of it (a tie, to even: 0).
        assert_eq!(f32_to_f16_bits(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0x0000);
    }
}
