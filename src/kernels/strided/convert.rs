//! Conversions between stored elements (little-endian bytes, possibly
//! misaligned) and the f32 values the ops compute with, rounding as ggml's
//! CPU backend does: f16 round-to-nearest-even (F16C), bf16 ggml's own
//! rounding (`ggml_compute_fp32_to_bf16`), integers by truncating casts.
//!
//! Rows convert in one call (`row_to_f32`, `row_from_f32`): that is where a
//! block format's dequantize / quantize functions plug in (`quant`'s
//! `dequantize_row`, bit-exact with ggml's `dequantize_row_*`, and
//! `cpu_quantize::quantize_row`, the quantizers ggml's CPU backend writes
//! blocks with).
//!
//! A block has no single element: `element_to_f32` of a block format reads
//! NaN and `element_from_f32` writes nothing; the ops that read elements one
//! by one refuse block formats in their checks.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::kernels::quant::{self, BlockFormat};
use crate::kernels::strided::cpu_quantize;
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;

pub(crate) fn f16_bits_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Round to nearest, ties to even, as F16C's `vcvtps2ph` with rounding mode 0.
pub(crate) fn f32_to_f16_bits(value: f32) -> u16 {
    f16::from_f32(value).to_bits()
}

pub(crate) fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// ggml's bf16 rounding: NaN made quiet, otherwise round to nearest even.
pub(crate) fn f32_to_bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 64) as u16;
    }
    // No overflow: the largest non-NaN pattern (-inf, 0xff80_0000) plus
    // 0x8000 is below 2^32.
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// The value of the one element in `bytes` (of `elem`'s size). Bytes
/// shorter than an element — which views never hand out — read as 0.
pub(crate) fn element_to_f32(elem: ElementType, bytes: &[u8]) -> f32 {
    fn read<const N: usize, T>(bytes: &[u8], decode: impl Fn([u8; N]) -> T) -> Option<T> {
        bytes.first_chunk::<N>().map(|chunk| decode(*chunk))
    }
    let value = match elem {
        ElementType::F32 => read(bytes, f32::from_le_bytes),
        ElementType::F16 => read(bytes, |b| f16_bits_to_f32(u16::from_le_bytes(b))),
        ElementType::BF16 => read(bytes, |b| bf16_bits_to_f32(u16::from_le_bytes(b))),
        ElementType::F64 => read(bytes, |b| f64::from_le_bytes(b) as f32),
        ElementType::I8 => read(bytes, |b: [u8; 1]| f32::from(i8::from_le_bytes(b))),
        ElementType::I16 => read(bytes, |b| f32::from(i16::from_le_bytes(b))),
        ElementType::I32 => read(bytes, |b| i32::from_le_bytes(b) as f32),
        ElementType::I64 => read(bytes, |b| i64::from_le_bytes(b) as f32),
        ElementType::Quant(_) => Some(f32::NAN),
    };
    value.unwrap_or(0.0)
}

/// Stores `value` as one `elem` into the first bytes of `bytes` (nothing if
/// they are shorter than an element, which views never hand out).
pub(crate) fn element_from_f32(elem: ElementType, value: f32, bytes: &mut [u8]) {
    fn write<const N: usize>(bytes: &mut [u8], encoded: [u8; N]) {
        if let Some(chunk) = bytes.first_chunk_mut::<N>() {
            *chunk = encoded;
        }
    }
    match elem {
        ElementType::F32 => write(bytes, value.to_le_bytes()),
        ElementType::F16 => write(bytes, f32_to_f16_bits(value).to_le_bytes()),
        ElementType::BF16 => write(bytes, f32_to_bf16_bits(value).to_le_bytes()),
        ElementType::F64 => write(bytes, f64::from(value).to_le_bytes()),
        ElementType::I8 => write(bytes, (value as i8).to_le_bytes()),
        ElementType::I16 => write(bytes, (value as i16).to_le_bytes()),
        ElementType::I32 => write(bytes, (value as i32).to_le_bytes()),
        ElementType::I64 => write(bytes, (value as i64).to_le_bytes()),
        ElementType::Quant(_) => {}
    }
}

/// The bytes of the blocks that hold `elements` values of `format`, from
/// the start of `bytes`.
fn block_bytes(format: BlockFormat, elements: usize) -> Result<usize, OpError> {
    format.row_bytes(elements).map_err(OpError::from)
}

/// Converts the `dst.len()` elements stored contiguously at the start of
/// `src` to f32 (for a block format: dequantizes whole blocks). Fails only
/// for a block format when `dst` is not a whole number of blocks or `src`
/// is shorter than they are, which views never hand out.
pub(crate) fn row_to_f32(elem: ElementType, src: &[u8], dst: &mut [f32]) -> Result<(), OpError> {
    match elem {
        ElementType::Quant(format) => {
            let len = block_bytes(format, dst.len())?;
            let src = src.get(..len).ok_or(OpError::Internal {
                op: "dequantize",
                detail: "row shorter than its blocks",
            })?;
            quant::dequantize_row(format, src, dst)?;
        }
        ElementType::F32 => {
            for (value, chunk) in dst.iter_mut().zip(src.as_chunks::<4>().0) {
                *value = f32::from_le_bytes(*chunk);
            }
        }
        ElementType::F16 => {
            // Aligned rows (the usual case) convert 8 at a time with F16C.
            let aligned = src
                .get(..dst.len() * 2)
                .and_then(|bytes| bytemuck::try_cast_slice::<u8, f16>(bytes).ok());
            match aligned {
                Some(halves) => halves.convert_to_f32_slice(dst),
                None => {
                    for (value, chunk) in dst.iter_mut().zip(src.as_chunks::<2>().0) {
                        *value = f16_bits_to_f32(u16::from_le_bytes(*chunk));
                    }
                }
            }
        }
        ElementType::BF16 => {
            for (value, chunk) in dst.iter_mut().zip(src.as_chunks::<2>().0) {
                *value = bf16_bits_to_f32(u16::from_le_bytes(*chunk));
            }
        }
        _ => {
            let size = elem.block_bytes();
            for (value, chunk) in dst.iter_mut().zip(src.chunks_exact(size)) {
                *value = element_to_f32(elem, chunk);
            }
        }
    }
    Ok(())
}

/// Stores `src` as `src.len()` contiguous `elem`s at the start of `dst`
/// (for a block format: quantizes whole blocks as ggml's CPU backend does). Fails, writing nothing, only for a block format when `src` is
/// not a whole number of blocks or `dst` is shorter than they are.
pub(crate) fn row_from_f32(elem: ElementType, src: &[f32], dst: &mut [u8]) -> Result<(), OpError> {
    match elem {
        ElementType::Quant(format) => {
            let len = block_bytes(format, src.len())?;
            let dst = dst.get_mut(..len).ok_or(OpError::Internal {
                op: "quantize",
                detail: "row shorter than its blocks",
            })?;
            cpu_quantize::quantize_row(format, src, dst)?;
        }
        ElementType::F32 => {
            for (chunk, value) in dst.as_chunks_mut::<4>().0.iter_mut().zip(src) {
                *chunk = value.to_le_bytes();
            }
        }
        ElementType::F16 => {
            let aligned = dst
                .get_mut(..src.len() * 2)
                .and_then(|bytes| bytemuck::try_cast_slice_mut::<u8, f16>(bytes).ok());
            match aligned {
                Some(halves) => halves.convert_from_f32_slice(src),
                None => {
                    for (chunk, &value) in dst.as_chunks_mut::<2>().0.iter_mut().zip(src) {
                        *chunk = f32_to_f16_bits(value).to_le_bytes();
                    }
                }
            }
        }
        ElementType::BF16 => {
            for (chunk, &value) in dst.as_chunks_mut::<2>().0.iter_mut().zip(src) {
                *chunk = f32_to_bf16_bits(value).to_le_bytes();
            }
        }
        _ => {
            let size = elem.block_bytes();
            for (chunk, &value) in dst.chunks_exact_mut(size).zip(src) {
                element_from_f32(elem, value, chunk);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_like_ggml() {
        // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
        assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3·2^-8 is halfway too: ties go up to the even 1 + 2^-6.
        assert_eq!(f32_to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81);
        assert_eq!(bf16_bits_to_f32(0x3f81), 1.0 + 2f32.powi(-7));
    }

    #[test]
    fn bf16_keeps_nan_quiet_and_infinities() {
        let signalling = f32::from_bits(0x7f80_0001);
        assert!(bf16_bits_to_f32(f32_to_bf16_bits(signalling)).is_nan());
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16_bits(f32::NEG_INFINITY), 0xff80);
        // The largest finite f32 rounds up to infinity, as in ggml.
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), f16::ONE.to_bits());
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16_bits(70000.0), f16::INFINITY.to_bits());
    }

    #[test]
    fn rows_convert_the_same_aligned_and_misaligned() {
        let values: Vec<f32> = (0..37).map(|i| i as f32 * 0.37 - 5.0).collect();
        for elem in [ElementType::F32, ElementType::F16, ElementType::BF16, ElementType::I32] {
            let size = elem.block_bytes();
            let mut backing = vec![0u8; values.len() * size + 1];
            for offset in [0, 1] {
                let bytes = &mut backing[offset..offset + values.len() * size];
                row_from_f32(elem, &values, bytes).unwrap();
                let mut back = vec![0.0; values.len()];
                row_to_f32(elem, bytes, &mut back).unwrap();
                for (index, (&v, &b)) in values.iter().zip(&back).enumerate() {
                    let mut one = vec![0u8; size];
                    element_from_f32(elem, v, &mut one);
                    assert_eq!(b, element_to_f32(elem, &one), "{elem} offset {offset} #{index}");
                }
            }
        }
    }

    #[test]
    fn integers_truncate_toward_zero() {
        let mut bytes = [0u8; 4];
        element_from_f32(ElementType::I32, -2.7, &mut bytes);
        assert_eq!(i32::from_le_bytes(bytes), -2);
        element_from_f32(ElementType::I32, 149.9, &mut bytes);
        assert_eq!(element_to_f32(ElementType::I32, &bytes), 149.0);
    }

    #[test]
    fn block_rows_convert_through_ggmls_cpu_quantizer_bit_exactly() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 * 0.71).sin() * 3.0).collect();
        let format = BlockFormat::Q4_1;
        let mut expected = vec![0u8; format.row_bytes(64).unwrap()];
        cpu_quantize::quantize_row(format, &values, &mut expected).unwrap();
        // A longer destination: only the blocks' bytes are written.
        let mut bytes = vec![0xEEu8; expected.len() + 3];
        row_from_f32(ElementType::Quant(format), &values, &mut bytes).unwrap();
        assert_eq!(&bytes[..expected.len()], &expected[..]);
        assert_eq!(&bytes[expected.len()..], &[0xEE; 3]);
        let mut back = vec![0.0; 64];
        row_to_f32(ElementType::Quant(format), &bytes, &mut back).unwrap();
        let mut reference = vec![0.0; 64];
        quant::dequantize_row(format, &expected, &mut reference).unwrap();
        assert_eq!(back, reference);
    }

    #[test]
    fn block_rows_refuse_partial_blocks_and_short_bytes() {
        let q8_0 = ElementType::Quant(BlockFormat::Q8_0);
        let mut out = vec![0.0; 33];
        assert!(row_to_f32(q8_0, &[0; 68], &mut out).is_err());
        let mut out = vec![0.0; 32];
        assert!(row_to_f32(q8_0, &[0; 33], &mut out).is_err());
        let mut short = [7u8; 33];
        assert!(row_from_f32(q8_0, &[1.0; 32], &mut short).is_err());
        assert_eq!(short, [7; 33]);
    }

    #[test]
    fn short_bytes_read_as_zero_and_are_not_written() {
        assert_eq!(element_to_f32(ElementType::F32, &[1, 2]), 0.0);
        let mut short = [9u8; 3];
        element_from_f32(ElementType::F32, 1.0, &mut short);
        assert_eq!(short, [9; 3]);
    }
}
