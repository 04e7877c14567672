//! Small vectors worked out by hand from the block layouts (see each
//! format's module doc), one behaviour each. The golden tests check the
//! same code against ggml on large inputs; these say what the bytes mean.

use super::{dequantize, quantize};
use crate::kernels::quant::BlockFormat;

const F16_ONE: [u8; 2] = [0x00, 0x3c];
const F16_HALF: [u8; 2] = [0x00, 0x38];
const F16_QUARTER: [u8; 2] = [0x00, 0x34];

/// ggml's `kvalues_iq4nl`.
const LEVELS: [f32; 16] =
    [-127., -104., -83., -65., -49., -35., -22., -10., 1., 13., 25., 38., 53., 69., 89., 113.];

fn block(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn q4_0_scales_by_the_signed_extreme_over_minus_8_and_rounds_half_up() {
    // The extreme is −16, so d = 2 and q = trunc(x/2 + 8.5), capped at 15.
    let x: Vec<f32> = (0..32).map(|j| (j - 16) as f32).collect();
    let expected = block(&[
        &[0x00, 0x40],
        &[0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4],
        &[0xc4, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7, 0xf8],
    ]);
    assert_eq!(quantize(BlockFormat::Q4_0, &x), expected);
    let decoded: Vec<f32> = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]
        .iter()
        .chain(&[8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 15])
        .map(|&q| ((q - 8) * 2) as f32)
        .collect();
    assert_eq!(dequantize(BlockFormat::Q4_0, &expected), decoded);
}

#[test]
fn q4_1_stores_the_minimum_and_a_step_of_range_over_15() {
    // 0..16 twice: min 0, max 15, so d = 1 and every value is its own level.
    let x: Vec<f32> = (0..32).map(|j| (j % 16) as f32).collect();
    let qs: Vec<u8> = (0..16).map(|j| j | (j << 4)).collect();
    let expected = block(&[&F16_ONE, &[0, 0], &qs]);
    assert_eq!(quantize(BlockFormat::Q4_1, &x), expected);
    assert_eq!(dequantize(BlockFormat::Q4_1, &expected), x);
}

#[test]
fn q5_0_keeps_the_fifth_bits_in_a_little_endian_u32() {
    // The extreme is −16, so d = 1 and element j has level j: elements
    // 16..32 have their fifth bit set.
    let x: Vec<f32> = (0..32).map(|j| (j - 16) as f32).collect();
    let qs: Vec<u8> = (0..16).map(|j| j | (j << 4)).collect();
    let expected = block(&[&F16_ONE, &[0x00, 0x00, 0xff, 0xff], &qs]);
    assert_eq!(quantize(BlockFormat::Q5_0, &x), expected);
    assert_eq!(dequantize(BlockFormat::Q5_0, &expected), x);
}

#[test]
fn q5_1_spans_the_range_in_31_steps() {
    let x: Vec<f32> = (0..32).map(|j| j as f32).collect();
    let qs: Vec<u8> = (0..16).map(|j| j | (j << 4)).collect();
    let expected = block(&[&F16_ONE, &[0, 0], &[0x00, 0x00, 0xff, 0xff], &qs]);
    assert_eq!(quantize(BlockFormat::Q5_1, &x), expected);
    assert_eq!(dequantize(BlockFormat::Q5_1, &expected), x);
}

/// 127 sets d = 1; ±2.5 show C's `roundf` (ties away from zero).
fn q8_input() -> Vec<f32> {
    let mut x = vec![127.0, 2.5, -2.5];
    x.extend((3..32).map(|j| (j - 16) as f32));
    x
}

fn q8_expected_quants() -> Vec<u8> {
    let mut q: Vec<i8> = vec![127, 3, -3];
    q.extend((3..32).map(|j| (j - 16) as i8));
    q.iter().map(|&q| q as u8).collect()
}

#[test]
fn q8_0_rounds_ties_away_from_zero() {
    let expected = block(&[&F16_ONE, &q8_expected_quants()]);
    assert_eq!(quantize(BlockFormat::Q8_0, &q8_input()), expected);
    let decoded = dequantize(BlockFormat::Q8_0, &expected);
    assert_eq!(&decoded[..3], &[127.0, 3.0, -3.0]);
    assert_eq!(&decoded[3..], &q8_input()[3..]);
}

#[test]
fn q8_1_also_stores_d_times_the_sum_of_its_quants() {
    // Σq = 127 + 3 − 3 + Σ(−13..=15) = 156; 156 is exact in fp16 (0x58e0).
    let expected = block(&[&F16_ONE, &[0xe0, 0x58], &q8_expected_quants()]);
    assert_eq!(quantize(BlockFormat::Q8_1, &q8_input()), expected);
    assert_eq!(&dequantize(BlockFormat::Q8_1, &expected)[..3], &[127.0, 3.0, -3.0]);
}

#[test]
fn q8_k_stores_an_f32_scale_and_sums_of_16() {
    // −127 is the extreme, so iscale = 1, d = 1 and every quant is its value.
    let mut x = vec![-127.0f32];
    x.extend((1..256).map(|j| ((j % 100) - 50) as f32));
    let bytes = quantize(BlockFormat::Q8K, &x);
    assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
    let quants: Vec<f32> = bytes[4..260].iter().map(|&q| q as i8 as f32).collect();
    assert_eq!(quants, x);
    let sums: Vec<i16> =
        bytes[260..].chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect();
    assert_eq!(
        sums,
        [-757, -424, -168, 88, 344, 600, -344, -488, -232, 24, 280, 536, -8, -552, -296, -40]
    );
    assert_eq!(dequantize(BlockFormat::Q8K, &bytes), x);
}

#[test]
fn iq4_nl_values_on_its_level_table_quantize_exactly() {
    let x: Vec<f32> = (0..32).map(|j| LEVELS[j % 16]).collect();
    let qs: Vec<u8> = (0..16).map(|j| j | (j << 4)).collect();
    let expected = block(&[&F16_ONE, &qs]);
    assert_eq!(quantize(BlockFormat::Iq4Nl, &x), expected);
    assert_eq!(dequantize(BlockFormat::Iq4Nl, &expected), x);
}

#[test]
fn iq4_nl_decodes_indices_through_the_level_table() {
    let qs: Vec<u8> = (0..16).map(|j| j | ((15 - j) << 4)).collect();
    let decoded = dequantize(BlockFormat::Iq4Nl, &block(&[&F16_HALF, &qs]));
    for j in 0..16 {
        assert_eq!(decoded[j], 0.5 * LEVELS[j]);
        assert_eq!(decoded[j + 16], 0.5 * LEVELS[15 - j]);
    }
}

#[test]
fn iq4_decodes_zero_to_the_scale_times_level_one() {
    // The level table has no zero: a zero picks level 1 (index 8), so it
    // decodes to the (possibly negative) scale. For −127 among zeros IQ4_NL
    // finds d = 1 (−127 is level 0); IQ4_XS's wider search ties d = 1 with
    // d = −127/113 (−127 as level 15, 113) and keeps the first, −127/113.
    let mut x = vec![0.0f32; 256];
    x[0] = -127.0;
    for (format, level_of_x0) in [(BlockFormat::Iq4Nl, -127.0), (BlockFormat::Iq4Xs, 113.0)] {
        let decoded = dequantize(format, &quantize(format, &x));
        // IQ4_XS stores its scale as a six-bit multiple of an fp16 one.
        assert!((decoded[0] + 127.0).abs() < 0.1, "{format}: {}", decoded[0]);
        let scale = decoded[0] / level_of_x0;
        for &v in &decoded[1..32] {
            assert!((v - scale).abs() <= 1e-6, "{format}: {v} vs {scale}");
        }
    }
}

#[test]
fn iq4_xs_has_six_bit_sub_scales_biased_by_32() {
    // Sub-scales 28 + ib (so ib − 4): low nibbles in scales_l, high bits in
    // scales_h (0xaa55 little-endian).
    let qs: Vec<u8> = (0..128).map(|i| (i % 16) | ((15 - i % 16) << 4)).collect();
    let bytes = block(&[&F16_HALF, &[0x55, 0xaa], &[0xdc, 0xfe, 0x10, 0x32], &qs]);
    let decoded = dequantize(BlockFormat::Iq4Xs, &bytes);
    for (e, &value) in decoded.iter().enumerate() {
        let (ib, j) = (e / 32, e % 32);
        let level = if j < 16 { LEVELS[j] } else { LEVELS[15 - (j - 16)] };
        assert_eq!(value, 0.5 * (ib as f32 - 4.0) * level, "element {e}");
    }
}

#[test]
fn q2_k_decodes_two_bit_planes_with_four_bit_scales_and_minimums() {
    // Scale g and minimum 15 − g per 16 elements; byte 0xe4 holds levels
    // 0, 1, 2, 3 in its four planes, so element e has level (e % 128) / 32.
    let scales: Vec<u8> = (0..16).map(|g| g | ((15 - g) << 4)).collect();
    let bytes = block(&[&scales, &[0xe4; 64], &F16_HALF, &F16_QUARTER]);
    let decoded = dequantize(BlockFormat::Q2K, &bytes);
    for (e, &value) in decoded.iter().enumerate() {
        let (g, level) = ((e / 16) as f32, ((e % 128) / 32) as f32);
        assert_eq!(value, 0.5 * g * level - 0.25 * (15.0 - g), "element {e}");
    }
}

#[test]
fn q3_k_subtracts_4_where_the_high_bit_is_clear() {
    // Scales 24 + g (so g − 8); hmask byte 0 clear: elements e with
    // e % 32 == 0 lose 4.
    let mut hmask = [0xffu8; 32];
    hmask[0] = 0;
    let scales = [0x08, 0x19, 0x2a, 0x3b, 0x4c, 0x5d, 0x6e, 0x7f, 0xa5, 0xa5, 0xa5, 0xa5];
    let bytes = block(&[&hmask, &[0xe4; 64], &scales, &F16_QUARTER]);
    let decoded = dequantize(BlockFormat::Q3K, &bytes);
    for (e, &value) in decoded.iter().enumerate() {
        let g = (e / 16) as f32;
        let level = ((e % 128) / 32) as f32 - if e % 32 == 0 { 4.0 } else { 0.0 };
        assert_eq!(value, 0.25 * (g - 8.0) * level, "element {e}");
    }
}

/// Q4_K/Q5_K scales 1..=7 and 40, minimums 0, 2, .., 12 and 20 (the last
/// two use the six-bit high bits).
const K4_SCALES: [u8; 12] = [1, 2, 3, 0x84, 0, 2, 4, 0x46, 0x85, 0xa6, 0xc7, 0x48];
const K4_SCALE: [f32; 8] = [1., 2., 3., 4., 5., 6., 7., 40.];
const K4_MIN: [f32; 8] = [0., 2., 4., 6., 8., 10., 12., 20.];

#[test]
fn q4_k_decodes_nibbles_with_six_bit_scales_and_minimums() {
    // Byte 0x21: level 1 in even sub-blocks (low nibbles), 2 in odd ones.
    let bytes = block(&[&F16_ONE, &F16_HALF, &K4_SCALES, &[0x21; 128]]);
    let decoded = dequantize(BlockFormat::Q4K, &bytes);
    for (e, &value) in decoded.iter().enumerate() {
        let s = e / 32;
        let level = if s % 2 == 0 { 1.0 } else { 2.0 };
        assert_eq!(value, K4_SCALE[s] * level - 0.5 * K4_MIN[s], "element {e}");
    }
}

#[test]
fn q5_k_adds_16_for_a_set_high_bit() {
    // qh bit 7 everywhere: the last sub-block's levels gain 16.
    let bytes = block(&[&F16_ONE, &F16_HALF, &K4_SCALES, &[0x80; 32], &[0x21; 128]]);
    let decoded = dequantize(BlockFormat::Q5K, &bytes);
    for (e, &value) in decoded.iter().enumerate() {
        let s = e / 32;
        let level = if s % 2 == 0 { 1.0 } else { 2.0 } + if s == 7 { 16.0 } else { 0.0 };
        assert_eq!(value, K4_SCALE[s] * level - 0.5 * K4_MIN[s], "element {e}");
    }
}

#[test]
fn q6_k_joins_nibbles_and_two_high_bits_minus_32() {
    // ql 0x21 and qh 0xe4: per 128 elements the levels are
    // 1|0<<4, 1|1<<4, 2|2<<4, 2|3<<4, minus 32. Scales g − 8 per 16.
    let scales: Vec<u8> = (0..16).map(|g| (g as i8 - 8) as u8).collect();
    let bytes = block(&[&[0x21; 128], &[0xe4; 64], &scales, &F16_HALF]);
    let decoded = dequantize(BlockFormat::Q6K, &bytes);
    let levels = [-31.0, -15.0, 2.0, 18.0];
    for (e, &value) in decoded.iter().enumerate() {
        let g = (e / 16) as f32;
        assert_eq!(value, 0.5 * (g - 8.0) * levels[(e % 128) / 32], "element {e}");
    }
}
