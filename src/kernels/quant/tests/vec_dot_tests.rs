//! `vec_dot` computes the dot product of the two rows the blocks decode to.

use super::{
    SplitMix, dequantize, fix_q8_1_sums, fix_q8_k_sums, formats_with_dot, quantize,
    random_blocks_with_tame_scales,
};
use crate::kernels::quant::{BlockFormat, vec_dot};

/// `Σ x·y` of the decoded rows in f64, and `Σ |x·y|` to scale tolerances.
fn decoded_dot(x_format: BlockFormat, x: &[u8], y_format: BlockFormat, y: &[u8]) -> (f64, f64) {
    let (dx, dy) = (dequantize(x_format, x), dequantize(y_format, y));
    let dot = dx.iter().zip(&dy).map(|(&a, &b)| a as f64 * b as f64).sum();
    let magnitude = dx.iter().zip(&dy).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
    (dot, magnitude)
}

/// Q4_1 and Q5_1 dot products use Q8_1's stored `s = fp16(d·Σq)` for the
/// minimum's term, where the decoded rows give `d·Σq` exactly: the fp16
/// rounding of `s` (half an ulp, 2^-11 relative) adds `|m·s|·2^-11` per block.
fn minimum_term_slack(x_format: BlockFormat, x: &[u8], y: &[u8]) -> f64 {
    let (x_min_at, y_sum_at) = (2, 2);
    if !matches!(x_format, BlockFormat::Q4_1 | BlockFormat::Q5_1) {
        return 0.0;
    }
    let f16 = |b: &[u8], at: usize| half::f16::from_le_bytes([b[at], b[at + 1]]).to_f64();
    x.chunks_exact(x_format.block_bytes())
        .zip(y.chunks_exact(BlockFormat::Q8_1.block_bytes()))
        .map(|(bx, by)| (f16(bx, x_min_at) * f16(by, y_sum_at)).abs() * 2f64.powi(-11))
        .sum()
}

#[track_caller]
fn check(x_format: BlockFormat, x: &[u8], y_format: BlockFormat, y: &[u8]) {
    let n = x.len() / x_format.block_bytes() * x_format.block_elems();
    let ours = vec_dot(x_format, n, x, y).unwrap() as f64;
    let (exact, magnitude) = decoded_dot(x_format, x, y_format, y);
    // f32 accumulation over n/32 block terms: a few ulps of the magnitude.
    let tolerance = 1e-5 * magnitude + minimum_term_slack(x_format, x, y) + 1e-30;
    assert!(
        (ours - exact).abs() <= tolerance,
        "{x_format}: vec_dot {ours}, decoded rows' dot {exact} (tolerance {tolerance})"
    );
}

#[test]
fn vec_dot_equals_the_dot_of_the_decoded_rows() {
    for (x_format, y_format) in formats_with_dot() {
        for seed in 0..4 {
            let mut rng = SplitMix::new(500 + seed);
            let xs: Vec<f32> = (0..2048).map(|_| rng.signed_unit()).collect();
            let ys: Vec<f32> = (0..2048).map(|_| 3.0 * rng.signed_unit()).collect();
            check(x_format, &quantize(x_format, &xs), y_format, &quantize(y_format, &ys));
        }
    }
}

#[test]
fn vec_dot_equals_the_dot_of_the_decoded_rows_for_any_quant_bits() {
    // Random bytes reach level, scale and minimum combinations that no
    // quantizer writes (e.g. Q3_K scale 0, Q6_K scale −128).
    for (x_format, y_format) in formats_with_dot() {
        for seed in 0..4 {
            let x = random_blocks_with_tame_scales(x_format, 600 + seed);
            let mut y = random_blocks_with_tame_scales(y_format, 700 + seed);
            match y_format {
                BlockFormat::Q8K => fix_q8_k_sums(&mut y),
                BlockFormat::Q8_1 => fix_q8_1_sums(&mut y),
                _ => {}
            }
            check(x_format, &x, y_format, &y);
        }
    }
}

#[test]
fn vec_dot_of_orthogonal_rows_is_zero() {
    // x nonzero only in the first half of each block, y only in the second.
    // Not IQ4_NL/IQ4_XS: their level table has no zero (the levels nearest
    // it are 1 and −10), so a zero decodes to d·1.
    let has_zero_level = |format| !matches!(format, BlockFormat::Iq4Nl | BlockFormat::Iq4Xs);
    for (x_format, y_format) in formats_with_dot().filter(|&(x, _)| has_zero_level(x)) {
        let block = x_format.block_elems();
        let xs: Vec<f32> =
            (0..1024).map(|i| if i % block < block / 2 { 1.0 } else { 0.0 }).collect();
        let ys: Vec<f32> =
            (0..1024).map(|i| if i % block < block / 2 { 0.0 } else { 1.0 }).collect();
        let (x, y) = (quantize(x_format, &xs), quantize(y_format, &ys));
        let (exact, _) = decoded_dot(x_format, &x, y_format, &y);
        let ours = vec_dot(x_format, 1024, &x, &y).unwrap() as f64;
        assert_eq!(exact, 0.0, "{x_format}: the decoded rows are orthogonal");
        assert_eq!(ours, 0.0, "{x_format}");
    }
}

#[test]
fn vec_dot_of_a_block_with_all_ones_sums_the_other_row() {
    // Q8_0 blocks of ones (d = 1/127, q = 127) against Q8_0 blocks of a ramp.
    let ones = vec![1.0f32; 64];
    let ramp: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 32.0).collect();
    let (x, y) = (quantize(BlockFormat::Q8_0, &ones), quantize(BlockFormat::Q8_0, &ramp));
    let dot = vec_dot(BlockFormat::Q8_0, 64, &x, &y).unwrap();
    let expected: f32 = ramp.iter().sum();
    assert!((dot - expected).abs() < 2e-3, "{dot} vs {expected}");
}
