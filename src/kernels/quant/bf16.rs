//! Rows of bf16 (ggml's `GGML_TYPE_BF16`) to and from f32.
//!
//! bf16 is the top half of an f32. f32 → bf16 rounds to nearest even and
//! turns NaN into a quiet NaN keeping the top bits (`ggml_compute_fp32_to_bf16`);
//! bf16 → f32 appends sixteen zero bits, so it is exact.

use crate::kernels::quant::QuantError;

/// ggml's `GGML_FP32_TO_BF16` as bits.
fn f32_to_bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        // NaN: keep sign and top payload bits, force the quiet bit.
        return ((bits >> 16) | 0x40) as u16;
    }
    // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to
    // even; a carry out of the mantissa rounds up to the next binade (or
    // to infinity), which is the correct result.
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

fn check_lengths(elements: usize, bytes: usize) -> Result<(), QuantError> {
    let expected = elements.checked_mul(2).ok_or(QuantError::Bf16LengthMismatch {
        elements,
        expected: usize::MAX,
        actual: bytes,
    })?;
    if bytes != expected {
        return Err(QuantError::Bf16LengthMismatch { elements, expected, actual: bytes });
    }
    Ok(())
}

/// Converts `src` to little-endian bf16 in `dst` (`dst.len() == 2·src.len()`).
pub fn f32_to_bf16_row(src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_lengths(src.len(), dst.len())?;
    let (pairs, _) = dst.as_chunks_mut::<2>();
    for (pair, &value) in pairs.iter_mut().zip(src) {
        *pair = f32_to_bf16_bits(value).to_le_bytes();
    }
    Ok(())
}

/// Converts little-endian bf16 in `src` to `dst` (`src.len() == 2·dst.len()`).
pub fn bf16_to_f32_row(src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_lengths(dst.len(), src.len())?;
    let (pairs, _) = src.as_chunks::<2>();
    for (out, pair) in dst.iter_mut().zip(pairs) {
        *out = f32::from_bits(u32::from(u16::from_le_bytes(*pair)) << 16);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(f32_to_bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(f32_to_bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
    }

    #[test]
    fn overflows_to_infinity_and_quiets_nan() {
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
        assert_eq!(f32_to_bf16_bits(f32::NEG_INFINITY), 0xff80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0xffa1_0000)), 0xffe1);
    }

    #[test]
    fn agrees_with_the_half_crate_except_for_nan_payloads() {
        let mut bits = 0u32;
        for _ in 0..200_000 {
            bits = bits.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
            let value = f32::from_bits(bits);
            if !value.is_nan() {
                assert_eq!(f32_to_bf16_bits(value), half::bf16::from_f32(value).to_bits());
            }
        }
    }

    #[test]
    fn a_row_converts_to_bf16_and_back() {
        let values = [1.0f32, -2.5, 0.0, -0.0, 3.0e38, 1.0e-40, f32::INFINITY];
        let mut bytes = [0u8; 14];
        f32_to_bf16_row(&values, &mut bytes).unwrap();
        let mut back = [0f32; 7];
        bf16_to_f32_row(&bytes, &mut back).unwrap();
        let back_bits: Vec<u32> = back.iter().map(|v| v.to_bits()).collect();
        // 3e38 and 1e-40 are not bf16 values: they come back rounded.
        assert_eq!(
            back_bits,
            [0x3f80_0000, 0xc020_0000, 0, 0x8000_0000, 0x7f62_0000, 0x0001_0000, 0x7f80_0000]
        );
    }

    #[test]
    fn rejects_a_byte_count_that_is_not_two_per_element() {
        let mut bytes = [0u8; 5];
        assert_eq!(
            f32_to_bf16_row(&[1.0, 2.0, 3.0], &mut bytes),
            Err(QuantError::Bf16LengthMismatch { elements: 3, expected: 6, actual: 5 })
        );
        let mut out = [0f32; 2];
        assert_eq!(
            bf16_to_f32_row(&[0u8; 3], &mut out),
            Err(QuantError::Bf16LengthMismatch { elements: 2, expected: 4, actual: 3 })
        );
    }
}
