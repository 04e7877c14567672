//! The quantizers ggml's CPU backend writes blocks with (its `from_float`):
//! what CPY / SET_ROWS into a block format store, and what MUL_MAT and
//! FLASH_ATTN_EXT quantize activations and queries to.
//!
//! For every format but two that is ggml's reference quantizer
//! (`quant::quantize_row`). Q8_0 and Q8_1 differ: ggml's x86 build (AVX,
//! which every machine it runs on here has) quantizes them with vector code
//! that scales by `127 / amax` rather than `1 / (amax / 127)`, rounds ties
//! to even rather than away from zero, and takes `amax` with MAXPS's
//! lane-wise `a > b ? a : b`. Those differ from the reference by one step on
//! some elements (often for inputs with few mantissa bits, such as bf16
//! values), which is enough to fail test-backend-ops' tolerance for a
//! quantizing CPY; so they are reproduced here, operation for operation.

use half::f16;

use crate::kernels::quant::{self, BlockFormat};
use crate::kernels::strided::error::OpError;

/// Elements of a Q8_0 / Q8_1 block.
const QK: usize = 32;

/// Encodes `src` into whole blocks of `format` in `dst`, as ggml's CPU
/// backend does. `src.len()` must be a whole number of blocks and `dst`
/// exactly their bytes.
pub(crate) fn quantize_row(
    format: BlockFormat,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), OpError> {
    let with_sum = match format {
        BlockFormat::Q8_0 => false,
        BlockFormat::Q8_1 => true,
        _ => return Ok(quant::quantize_row(format, src, dst)?),
    };
    let expected = format.row_bytes(src.len())?;
    if dst.len() != expected {
        return Err(OpError::Quant(quant::QuantError::ByteLengthMismatch {
            format,
            elements: src.len(),
            expected,
            actual: dst.len(),
        }));
    }
    let (blocks, _) = src.as_chunks::<QK>();
    for (x, block) in blocks.iter().zip(dst.chunks_exact_mut(format.block_bytes())) {
        let (d, qs, sum) = quantize_block(x);
        block[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        let quants = if with_sum {
            // ggml: d times the sum of the (unsaturated) 32-bit quants.
            let s = d * sum as f32;
            block[2..4].copy_from_slice(&f16::from_f32(s).to_bits().to_le_bytes());
            &mut block[4..]
        } else {
            &mut block[2..]
        };
        for (byte, q) in quants.iter_mut().zip(qs) {
            *byte = q as u8;
        }
    }
    Ok(())
}

/// x86's MAXPS on one lane: `a > b ? a : b` (so a NaN in either gives `b`).
fn maxps(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// The scale, the 8-bit quants and the sum of the 32-bit quants of one
/// block, as ggml's AVX `quantize_row_q8_0` / `_q8_1` compute them.
fn quantize_block(x: &[f32; QK]) -> (f32, [i8; QK], i32) {
    // Four 8-lane registers folded lane-wise, then 8 -> 4 -> 2 -> 1 lanes.
    let mut lanes = [0.0f32; 8];
    for (lane, value) in lanes.iter_mut().enumerate() {
        *value = x[lane].abs();
        for register in 1..4 {
            *value = maxps(*value, x[register * 8 + lane].abs());
        }
    }
    let m: [f32; 4] = std::array::from_fn(|j| maxps(lanes[4 + j], lanes[j]));
    let amax = maxps(maxps(m[0], m[2]), maxps(m[1], m[3]));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let rounded = (v * id).round_ties_even();
        // CVTPS2DQ: NaN and out-of-range values give i32::MIN.
        let wide = if rounded.is_nan() || rounded.abs() >= 2_147_483_648.0 {
            i32::MIN
        } else {
            rounded as i32
        };
        sum = sum.wrapping_add(wide);
        // PACKSSDW then PACKSSWB: saturated to i16, then to i8.
        *q = wide.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
    }
    (d, qs, sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_to_even_where_the_reference_rounds_away() {
        // amax 127 makes id exactly 1: 2.5 and -3.5 are ties.
        let mut x = [0.0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        let (d, qs, _) = quantize_block(&x);
        assert_eq!(d, 1.0);
        assert_eq!(&qs[..3], &[127, 2, -4]);
        let mut reference = [0u8; 34];
        quant::quantize_row(BlockFormat::Q8_0, &x, &mut reference).unwrap();
        assert_eq!(reference[2 + 1] as i8, 3, "the reference rounds 2.5 away from zero");
    }

    #[test]
    fn q8_1_stores_the_scaled_sum_of_its_quants() {
        let x: [f32; QK] = std::array::from_fn(|i| i as f32 - 10.0);
        let mut bytes = [0u8; 36];
        quantize_row(BlockFormat::Q8_1, &x, &mut bytes).unwrap();
        let d = f16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32();
        let s = f16::from_bits(u16::from_le_bytes([bytes[2], bytes[3]])).to_f32();
        let sum: i32 = bytes[4..].iter().map(|&b| i32::from(b as i8)).sum();
        assert_eq!(s, f16::from_f32((21.0f32 / 127.0) * sum as f32).to_f32());
        assert_eq!(d, f16::from_f32(21.0 / 127.0).to_f32());
    }

    #[test]
    fn other_formats_use_the_reference_quantizer() {
        let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        for format in [BlockFormat::Q4_0, BlockFormat::Q4K, BlockFormat::Q8K] {
            let mut ours = vec![0u8; format.row_bytes(256).unwrap()];
            let mut reference = ours.clone();
            quantize_row(format, &x, &mut ours).unwrap();
            quant::quantize_row(format, &x, &mut reference).unwrap();
            assert_eq!(ours, reference, "{format}");
        }
    }

    #[test]
    fn nan_and_infinite_inputs_and_wrong_lengths_are_handled() {
        let mut x = [1.0f32; QK];
        x[3] = f32::NAN;
        x[9] = f32::INFINITY;
        let mut bytes = [0u8; 36];
        quantize_row(BlockFormat::Q8_1, &x, &mut bytes).unwrap();
        assert!(quantize_row(BlockFormat::Q8_0, &x, &mut [0u8; 33]).is_err());
        assert!(quantize_row(BlockFormat::Q8_0, &x[..31], &mut [0u8; 34]).is_err());
    }
}
