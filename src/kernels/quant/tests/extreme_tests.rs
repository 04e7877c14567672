//! All-zero, huge, tiny, NaN and infinite inputs, and arbitrary bytes:
//! results follow ggml (the golden tests pin the exact bytes), and nothing
//! panics. Tests run with overflow checks on, so any integer overflow in a
//! kernel would fail them too.

use super::{SplitMix, dequantize, formats_with_dot, quantize};
use crate::kernels::quant::{BlockFormat, vec_dot};

#[test]
fn an_all_zero_row_quantizes_to_zero_scales_and_decodes_to_zeros() {
    for format in BlockFormat::ALL {
        let bytes = quantize(format, &[0.0; 512]);
        let decoded = dequantize(format, &bytes);
        assert!(decoded.iter().all(|&v| v == 0.0), "{format}: {decoded:?}");
    }
}

#[test]
fn an_all_zero_q8_k_block_is_all_zero_bytes_including_its_sums() {
    // ggml leaves the sums of such a block unwritten; here they are zero.
    assert!(quantize(BlockFormat::Q8K, &[0.0; 256]).iter().all(|&b| b == 0));
}

#[test]
fn an_all_zero_iq4_xs_block_stores_minus_zero_as_ggml_does() {
    // d = −max_scale/32 = −0.0.
    let bytes = quantize(BlockFormat::Iq4Xs, &[0.0; 256]);
    assert_eq!(&bytes[..2], &[0x00, 0x80]);
}

#[test]
fn an_all_zero_iq4_nl_block_keeps_the_previous_block_s_indices_like_ggml() {
    let mut x = vec![0.0f32; 64];
    for (i, v) in x[..32].iter_mut().enumerate() {
        *v = i as f32 - 10.0;
    }
    let bytes = quantize(BlockFormat::Iq4Nl, &x);
    assert_eq!(&bytes[18..20], &[0, 0], "zero scale");
    assert_eq!(bytes[20..36], bytes[2..18], "indices carried over");
    assert!(dequantize(BlockFormat::Iq4Nl, &bytes)[32..].iter().all(|&v| v == 0.0));
}

#[test]
fn a_single_huge_value_overflows_an_fp16_scale_to_infinity_as_in_ggml() {
    let mut x = vec![0.0f32; 32];
    x[5] = 1e30;
    let bytes = quantize(BlockFormat::Q8_0, &x);
    assert_eq!(&bytes[..2], &[0x00, 0x7c], "d = +inf");
    assert_eq!(bytes[2 + 5] as i8, 127);
    let decoded = dequantize(BlockFormat::Q8_0, &bytes);
    assert_eq!(decoded[5], f32::INFINITY);
    assert!(decoded[0].is_nan(), "0 · inf");
}

#[test]
fn a_single_huge_value_survives_q8_k_s_f32_scale() {
    let mut x = vec![0.0f32; 256];
    x[200] = -1e30;
    x[0] = 1e28;
    let decoded = dequantize(BlockFormat::Q8K, &quantize(BlockFormat::Q8K, &x));
    assert!((decoded[200] / -1e30 - 1.0).abs() < 1e-6);
    // 1e28 is about one step (1e30/127) of this block: within half a step.
    assert!((decoded[0] - 1e28).abs() <= 1e30 / 254.0);
    assert_eq!(decoded[1], 0.0);
}

#[test]
fn tiny_values_quantize_to_zero_in_the_k_quants() {
    // Below ggml's GROUP_MAX_EPS (1e-15) a group counts as all zero.
    let x = vec![1e-17f32; 256];
    for format in [BlockFormat::Q3K, BlockFormat::Q6K, BlockFormat::Iq4Xs] {
        let decoded = dequantize(format, &quantize(format, &x));
        assert!(decoded.iter().all(|&v| v == 0.0), "{format}");
    }
}

/// Rows mixing NaN, infinities, extremes and subnormals in many ways.
fn hostile_rows() -> Vec<Vec<f32>> {
    let specials =
        [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX, 1e-45, -1e-39, -0.0];
    let mut rows: Vec<Vec<f32>> = specials.iter().map(|&v| vec![v; 256]).collect();
    let mut rng = SplitMix::new(9);
    for _ in 0..32 {
        let row = (0..256)
            .map(|_| match rng.next_u64() % 4 {
                0 => specials[(rng.next_u64() % specials.len() as u64) as usize],
                1 => rng.signed_unit() * 1e-38,
                _ => rng.signed_unit(),
            })
            .collect();
        rows.push(row);
    }
    rows
}

#[test]
fn nan_infinite_and_extreme_inputs_never_panic() {
    for format in BlockFormat::ALL {
        for row in hostile_rows() {
            let bytes = quantize(format, &row);
            let decoded = dequantize(format, &bytes);
            assert_eq!(decoded.len(), row.len());
        }
    }
}

#[test]
fn finite_values_next_to_nan_still_decode_finitely_in_q8_0() {
    // ggml's running `MAX(amax, |x|)` lets a NaN win only until the next
    // finite value, so the scale comes from the finite values here and only
    // the NaN's own level is garbage (x86's float → int of NaN, low byte 0).
    let mut x: Vec<f32> = (0..32).map(|i| i as f32 / 31.0).collect();
    x[7] = f32::NAN;
    let decoded = dequantize(BlockFormat::Q8_0, &quantize(BlockFormat::Q8_0, &x));
    assert_eq!(decoded[7], 0.0);
    for (i, &v) in decoded.iter().enumerate().filter(|&(i, _)| i != 7) {
        assert!((v - x[i]).abs() < 0.005, "element {i}: {v}");
    }
}

/// Byte patterns at the edges: all zero, all ones, all 0x80 (i8::MIN
/// quants), alternating, and random.
fn hostile_bytes(len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut patterns = vec![vec![0u8; len], vec![0xff; len], vec![0x80; len]];
    patterns.push((0..len).map(|i| if i % 2 == 0 { 0x7f } else { 0x80 }).collect());
    patterns.push(SplitMix::new(seed).bytes(len));
    patterns
}

#[test]
fn any_block_bytes_dequantize_without_panicking() {
    for format in BlockFormat::ALL {
        for bytes in hostile_bytes(4 * format.block_bytes(), 11) {
            let decoded = dequantize(format, &bytes);
            assert_eq!(decoded.len(), 4 * format.block_elems());
        }
    }
}

#[test]
fn any_block_bytes_dot_without_panicking_or_overflowing() {
    for (x_format, y_format) in formats_with_dot() {
        let n = 4 * x_format.block_elems();
        let xs = hostile_bytes(x_format.row_bytes(n).unwrap(), 12);
        let ys = hostile_bytes(y_format.row_bytes(n).unwrap(), 13);
        for x in &xs {
            for y in &ys {
                vec_dot(x_format, n, x, y).unwrap();
            }
        }
    }
}

#[test]
fn dot_products_of_maximal_integer_parts_are_exact() {
    // Scales 1 and every quant at the integer extreme: the exact integer
    // sum must survive (no wrap), so the result is an exact product.
    // Q8_0 · Q8_0 with all quants −128: 64 blocks of 32·16384.
    let block: Vec<u8> = [&[0x00, 0x3c][..], &[0x80; 32]].concat();
    let x = block.repeat(64);
    assert_eq!(vec_dot(BlockFormat::Q8_0, 2048, &x, &x).unwrap(), 64.0 * 32.0 * 16384.0);
    // Q6_K with scale −128 and level −32 against Q8_K quants −128, sums
    // −2048, d = 1: per block 256·(−128)·(−32)·(−128) = −134217728.
    let q6k = [&[0u8; 128][..], &[0u8; 64], &[0x80; 16], &[0x00, 0x3c]].concat();
    let q8k =
        [&1.0f32.to_le_bytes()[..], &[0x80; 256], &(-2048i16).to_le_bytes().repeat(16)].concat();
    assert_eq!(vec_dot(BlockFormat::Q6K, 256, &q6k, &q8k).unwrap(), -134_217_728.0);
}
