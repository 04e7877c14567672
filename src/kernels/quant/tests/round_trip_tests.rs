//! Quantizing then dequantizing stays within each format's error.

use super::{SplitMix, dequantize, quantize};
use crate::kernels::quant::BlockFormat;

/// Per format: the largest error of one element relative to its block's
/// largest magnitude, and the error's RMS relative to the data's RMS.
///
/// The 32-element formats' element bounds are analytic: half a step (Q4_0,
/// Q5_0: a whole step at the capped top level), plus the fp16 rounding of
/// the scale. The K quants and IQ4 search their scales, so theirs are the
/// errors measured on these inputs with about 10% margin; the RMS bounds
/// likewise.
fn error_bounds(format: BlockFormat) -> (f64, f64) {
    match format {
        BlockFormat::Q4_0 => (1.0 / 8.0 + 1e-3, 0.09),
        BlockFormat::Q4_1 => (1.0 / 15.0 + 1e-3, 0.085),
        BlockFormat::Q5_0 => (1.0 / 16.0 + 1e-3, 0.045),
        BlockFormat::Q5_1 => (1.0 / 31.0 + 1e-3, 0.042),
        BlockFormat::Q8_0 | BlockFormat::Q8_1 => (1.0 / 254.0 + 1.0 / 2048.0, 0.006),
        BlockFormat::Q8K => (1.0 / 254.0 + 1e-6, 0.007),
        BlockFormat::Q2K => (0.40, 0.32),
        BlockFormat::Q3K => (0.26, 0.165),
        BlockFormat::Q4K => (0.115, 0.078),
        BlockFormat::Q5K => (0.05, 0.04),
        BlockFormat::Q6K => (0.02, 0.019),
        BlockFormat::Iq4Nl => (0.14, 0.085),
        BlockFormat::Iq4Xs => (0.14, 0.083),
    }
}

/// Uniform data and bell-shaped (sum of four uniforms) data, 64 super-blocks each.
fn inputs() -> [Vec<f32>; 2] {
    let mut rng = SplitMix::new(77);
    let uniform = (0..256 * 64).map(|_| rng.signed_unit()).collect();
    let mut rng = SplitMix::new(78);
    let bell =
        (0..256 * 64).map(|_| rng.unit() + rng.unit() + rng.unit() + rng.unit() - 2.0).collect();
    [uniform, bell]
}

fn check_round_trip(format: BlockFormat, x: &[f32], scale: f32) {
    let x: Vec<f32> = x.iter().map(|v| v * scale).collect();
    let y = dequantize(format, &quantize(format, &x));
    let (max_bound, rms_bound) = error_bounds(format);
    for (block, (xb, yb)) in
        x.chunks(format.block_elems()).zip(y.chunks(format.block_elems())).enumerate()
    {
        let amax = xb.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
        for (e, (&a, &b)) in xb.iter().zip(yb).enumerate() {
            let err = (a as f64 - b as f64).abs();
            assert!(
                err <= max_bound * amax,
                "{format} ×{scale}: block {block} element {e}: {a} came back as {b}"
            );
        }
    }
    let err2: f64 = x.iter().zip(&y).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let sum2: f64 = x.iter().map(|&a| (a as f64).powi(2)).sum();
    let rms = (err2 / sum2).sqrt();
    assert!(rms <= rms_bound, "{format} ×{scale}: relative RMS error {rms}");
}

#[test]
fn round_trips_stay_within_each_format_s_error() {
    for format in BlockFormat::ALL {
        for x in &inputs() {
            check_round_trip(format, x, 1.0);
        }
    }
}

#[test]
fn round_trip_error_scales_with_the_data() {
    // Scales far from 1, within the range where the fp16 scales stay normal
    // (or nearly: Q6_K's `d` is about amax/4096). Far smaller data gets
    // subnormal fp16 scales, and coarser results, in ggml too.
    for format in BlockFormat::ALL {
        for scale in [0.05, 300.0] {
            check_round_trip(format, &inputs()[0], scale);
        }
    }
}

#[test]
fn finer_formats_have_smaller_errors() {
    let rms = |format| {
        let x = &inputs()[1];
        let y = dequantize(format, &quantize(format, x));
        x.iter().zip(&y).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>()
    };
    use BlockFormat::*;
    for ladder in [[Q4_0, Q5_0, Q8_0], [Q4_1, Q5_1, Q8_1], [Q3K, Q4K, Q5K], [Q4K, Q6K, Q8K]] {
        let errors = ladder.map(rms);
        assert!(errors[0] > errors[1] && errors[1] > errors[2], "{ladder:?}: {errors:?}");
    }
    assert!(rms(Q2K) > rms(Q3K));
}

#[test]
fn dequantized_rows_requantize_to_the_same_values_in_q8_0() {
    // A value on a block's grid stays on it: quantizing the decoded row
    // again gives back the same decoded row.
    let x = &inputs()[0];
    let once = dequantize(BlockFormat::Q8_0, &quantize(BlockFormat::Q8_0, x));
    let twice = dequantize(BlockFormat::Q8_0, &quantize(BlockFormat::Q8_0, &once));
    let max_diff = once.iter().zip(&twice).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    // Only the fp16 rounding of the rescaled step can move a value.
    assert!(max_diff <= 1.0 / 127.0 * 2f32.powi(-10), "{max_diff}");
}
