//! Every implementation this CPU runs computes what the scalar reference
//! computes: the same bytes and floats for conversions, and dot products
//! within a few ulps of the terms' magnitude, for every format, every
//! length (loop tails included) and hostile blocks (extreme scales, every
//! quant at its extreme, activation bytes −128, stored sums that do not
//! match the quants).

use super::{ScaleFields, SplitMix, fix_q8_1_sums, fix_q8_k_sums, formats_with_dot, scale_fields};
use crate::kernels::quant::{BlockFormat, Implementation, QuantError};

/// The implementations to compare with the scalar reference here.
fn simd_implementations() -> Vec<Implementation> {
    Implementation::available().filter(|&i| i != Implementation::Scalar).collect()
}

/// Block counts covering empty rows, every tail of loops unrolled by up to
/// eight blocks, and longer rows.
const BLOCK_COUNTS: [usize; 14] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 33];

fn scalar_decode(format: BlockFormat, bytes: &[u8]) -> Vec<f32> {
    let elements = bytes.len() / format.block_bytes() * format.block_elems();
    let mut out = vec![0.0; elements];
    Implementation::Scalar.dequantize_row(format, bytes, &mut out).unwrap();
    out
}

/// The byte range of a block holding its quants (not scales or sums).
fn quant_bytes(format: BlockFormat) -> std::ops::Range<usize> {
    use BlockFormat::*;
    match format {
        Q4_0 | Iq4Nl => 2..18,
        Q4_1 => 4..20,
        Q5_0 => 2..22,
        Q5_1 => 4..24,
        Q8_0 => 2..34,
        Q8_1 => 4..36,
        Q2K => 16..80,
        Q3K => 0..96,
        Q4K => 16..144,
        Q5K => 16..176,
        Q6K => 0..192,
        Q8K => 4..260,
        Iq4Xs => 8..136,
    }
}

/// A bound on the sum of the magnitudes of every term either computation
/// adds: `Σ (|x| + |z|)·|y|` over the decoded rows, where `z` is `x`
/// decoded with its quants zeroed (the offset part of formats with
/// minimums), plus the terms of Q8_1's and Q8_K's stored sums.
fn magnitude(x_format: BlockFormat, x: &[u8], y_format: BlockFormat, y: &[u8]) -> f64 {
    let mut zeroed = x.to_vec();
    for block in zeroed.chunks_exact_mut(x_format.block_bytes()) {
        block[quant_bytes(x_format)].fill(0);
    }
    let (dx, dz, dy) =
        (scalar_decode(x_format, x), scalar_decode(x_format, &zeroed), scalar_decode(y_format, y));
    let mut total: f64 = dx
        .iter()
        .zip(&dz)
        .zip(&dy)
        .map(|((&a, &z), &b)| (a.abs() as f64 + z.abs() as f64) * b.abs() as f64)
        .sum();
    let group = match y_format {
        BlockFormat::Q8K => 16,
        _ => 32,
    };
    for (g, zs) in dz.chunks_exact(group).enumerate() {
        let z_max = zs.iter().fold(0f64, |m, &z| m.max(z.abs() as f64));
        let stored_sum = match y_format {
            BlockFormat::Q8_1 => {
                let block = &y[g * 36..];
                half::f16::from_le_bytes([block[2], block[3]]).to_f64()
            }
            BlockFormat::Q8K => {
                let block = &y[(g / 16) * 292..];
                let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]) as f64;
                let at = 260 + 2 * (g % 16);
                d * i16::from_le_bytes([block[at], block[at + 1]]) as f64
            }
            _ => 0.0,
        };
        total += z_max * stored_sum.abs();
    }
    total
}

#[track_caller]
fn assert_dot_matches_scalar(
    implementation: Implementation,
    x_format: BlockFormat,
    x: &[u8],
    y: &[u8],
    what: &str,
) {
    let y_format = x_format.vec_dot_format().unwrap();
    let blocks = x.len() / x_format.block_bytes();
    let n = blocks * x_format.block_elems();
    let ours = implementation.vec_dot(x_format, n, x, y).unwrap();
    let reference = Implementation::Scalar.vec_dot(x_format, n, x, y).unwrap();
    let bound = magnitude(x_format, x, y_format, y);
    if bound.is_nan() || bound >= 1e36 {
        // Some order of additions may overflow: only "no panic" is asked.
        return;
    }
    // Each side adds at most `blocks + 16` rounded terms in sequence.
    let tolerance = (2 * blocks + 32) as f64 * f32::EPSILON as f64 * bound + 1e-30;
    let error = (ours as f64 - reference as f64).abs();
    assert!(
        error <= tolerance,
        "{implementation} {x_format} {what}, {blocks} blocks: {ours} vs scalar {reference} \
         (error {error:e}, tolerance {tolerance:e})"
    );
}

/// `blocks` random blocks whose scales are finite and below 1/2.
fn random_row(format: BlockFormat, blocks: usize, rng: &mut SplitMix) -> Vec<u8> {
    let mut bytes = rng.bytes(blocks * format.block_bytes());
    for block in bytes.chunks_exact_mut(format.block_bytes()) {
        match scale_fields(format) {
            ScaleFields::F16(offsets) => {
                for &at in offsets {
                    let v = u16::from_le_bytes([block[at], block[at + 1]]) & 0xB7FF;
                    block[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            ScaleFields::F32AtZero => {
                let v = u32::from_le_bytes([block[0], block[1], block[2], block[3]]) & 0xBDFF_FFFF;
                block[..4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    bytes
}

/// Makes the stored sums of an activation row true to its quants.
fn fix_sums(y_format: BlockFormat, y: &mut [u8]) {
    match y_format {
        BlockFormat::Q8K => fix_q8_k_sums(y),
        BlockFormat::Q8_1 => fix_q8_1_sums(y),
        _ => {}
    }
}

#[test]
fn simd_dot_products_equal_the_scalar_one_on_random_blocks_of_every_length() {
    for implementation in simd_implementations() {
        for (x_format, y_format) in formats_with_dot() {
            let mut rng = SplitMix::new(41 + x_format.ggml_type() as u64);
            for blocks in BLOCK_COUNTS {
                for _ in 0..3 {
                    let x = random_row(x_format, blocks, &mut rng);
                    let mut y = random_row(y_format, blocks, &mut rng);
                    fix_sums(y_format, &mut y);
                    assert_dot_matches_scalar(implementation, x_format, &x, &y, "random");
                }
            }
        }
    }
}

#[test]
fn simd_dot_products_use_the_stored_sums_as_the_scalar_one_does() {
    // Random stored sums (Q8_K's bsums, Q8_1's s) that do not match the
    // quants: each implementation must read them exactly where the
    // reference does.
    for implementation in simd_implementations() {
        for (x_format, y_format) in formats_with_dot() {
            let mut rng = SplitMix::new(43 + x_format.ggml_type() as u64);
            for blocks in [1, 3, 8, 9] {
                let x = random_row(x_format, blocks, &mut rng);
                let y = random_row(y_format, blocks, &mut rng);
                assert_dot_matches_scalar(implementation, x_format, &x, &y, "unfixed sums");
            }
        }
    }
}

/// Fills every block's scale fields with `scale` (fp16 bits) or, for
/// Q8_K's f32 scale, `q8_k_scale`.
fn set_scales(format: BlockFormat, bytes: &mut [u8], scale: u16, q8_k_scale: f32) {
    for block in bytes.chunks_exact_mut(format.block_bytes()) {
        match scale_fields(format) {
            ScaleFields::F16(offsets) => {
                for &at in offsets {
                    block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
                }
            }
            ScaleFields::F32AtZero => block[..4].copy_from_slice(&q8_k_scale.to_le_bytes()),
        }
    }
}

/// Rows whose quant bytes are all `fill`, or random.
fn filled_row(format: BlockFormat, blocks: usize, fill: Option<u8>, rng: &mut SplitMix) -> Vec<u8> {
    let mut bytes = rng.bytes(blocks * format.block_bytes());
    if let Some(fill) = fill {
        for block in bytes.chunks_exact_mut(format.block_bytes()) {
            block[quant_bytes(format)].fill(fill);
        }
    }
    bytes
}

#[test]
fn simd_dot_products_equal_the_scalar_one_on_hostile_blocks() {
    // fp16 scales: 1, the largest, its negative, the smallest subnormal,
    // −0; Q8_K's f32 scales alike. Quants: all bits clear, all set, 0x80
    // (−128 in activations), 0x7f, random; every sub-block scale byte too.
    let f16_scales = [0x3c00u16, 0x7bff, 0xfbff, 0x0001, 0x8000];
    let f32_scales = [1.0f32, 1e20, -1e-30, f32::MIN_POSITIVE, -0.0];
    let fills = [Some(0x00), Some(0xff), Some(0x80), Some(0x7f), None];
    for implementation in simd_implementations() {
        for (x_format, y_format) in formats_with_dot() {
            let mut rng = SplitMix::new(47 + x_format.ggml_type() as u64);
            for blocks in [1, 2, 5, 9] {
                for (&x_fill, &y_fill) in fills.iter().zip(fills.iter().cycle().skip(2)) {
                    for (scale_index, &scale) in f16_scales.iter().enumerate() {
                        let mut x = filled_row(x_format, blocks, x_fill, &mut rng);
                        let mut y = filled_row(y_format, blocks, y_fill, &mut rng);
                        let y_scale = f16_scales[(scale_index + 1) % f16_scales.len()];
                        set_scales(x_format, &mut x, scale, 0.0);
                        set_scales(y_format, &mut y, y_scale, f32_scales[scale_index]);
                        assert_dot_matches_scalar(implementation, x_format, &x, &y, "hostile");
                        fix_sums(y_format, &mut y);
                        assert_dot_matches_scalar(implementation, x_format, &x, &y, "hostile");
                    }
                }
            }
        }
    }
}

#[test]
fn simd_dot_products_of_any_bytes_do_not_panic() {
    // Scales NaN, infinite, anything: only the absence of a panic (and of
    // an out-of-bounds read) is asked; NaN and infinity propagate as the
    // additions' order has them.
    for implementation in simd_implementations() {
        for (x_format, y_format) in formats_with_dot() {
            let mut rng = SplitMix::new(53 + x_format.ggml_type() as u64);
            for blocks in [1, 2, 3, 8, 9] {
                let x = rng.bytes(blocks * x_format.block_bytes());
                let y = rng.bytes(blocks * y_format.block_bytes());
                let n = blocks * x_format.block_elems();
                implementation.vec_dot(x_format, n, &x, &y).unwrap();
            }
        }
    }
}

#[test]
fn simd_dot_products_of_maximal_integer_parts_are_exact() {
    // Q8_0 with every quant −128 on both sides, scale 1: each block is
    // 32·16384, exactly.
    let block: Vec<u8> = [&[0x00, 0x3c][..], &[0x80; 32]].concat();
    let x = block.repeat(64);
    for implementation in Implementation::available() {
        let dot = implementation.vec_dot(BlockFormat::Q8_0, 2048, &x, &x).unwrap();
        assert_eq!(dot, 64.0 * 32.0 * 16384.0, "{implementation}");
    }
}

#[test]
fn every_implementation_is_available_or_says_it_is_not() {
    for implementation in Implementation::ALL {
        let result = implementation.vec_dot(BlockFormat::Q4_0, 32, &[0; 18], &[0; 34]);
        match implementation.is_available() {
            true => assert_eq!(result, Ok(0.0), "{implementation}"),
            false => assert_eq!(result, Err(QuantError::Unavailable { implementation })),
        }
    }
    assert!(Implementation::Scalar.is_available());
    assert_eq!(Implementation::available().last(), Some(Implementation::best()));
}

#[test]
fn the_best_implementation_uses_the_widest_vectors_this_cpu_has() {
    #[cfg(target_arch = "x86_64")]
    {
        let expected = if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            Implementation::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            Implementation::Avx2
        } else {
            Implementation::Scalar
        };
        assert_eq!(Implementation::best(), expected);
    }
    #[cfg(not(target_arch = "x86_64"))]
    assert_eq!(Implementation::best(), Implementation::Scalar);
}

// ------------------------------------------------------------ conversions

/// NaN payloads aside (which NaN a float operation keeps is unspecified),
/// the floats' bits.
fn canonical_bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| if v.is_nan() { 0x7fc0_0000 } else { v.to_bits() }).collect()
}

#[test]
fn every_implementation_dequantizes_any_bytes_to_the_same_floats() {
    for implementation in simd_implementations() {
        for format in BlockFormat::ALL {
            let mut rng = SplitMix::new(59 + format.ggml_type() as u64);
            for blocks in BLOCK_COUNTS {
                let bytes = rng.bytes(blocks * format.block_bytes());
                let mut ours = vec![0.0; blocks * format.block_elems()];
                implementation.dequantize_row(format, &bytes, &mut ours).unwrap();
                let reference = scalar_decode(format, &bytes);
                assert_eq!(
                    canonical_bits(&ours),
                    canonical_bits(&reference),
                    "{implementation} {format}, {blocks} blocks"
                );
            }
        }
    }
}

/// Rows of `blocks` blocks of floats: uniform, with outliers, zeros, ties
/// (halves of the quantization step), huge and tiny, NaN and infinities.
fn float_rows(format: BlockFormat, blocks: usize, rng: &mut SplitMix) -> Vec<Vec<f32>> {
    let n = blocks * format.block_elems();
    let uniform: Vec<f32> = (0..n).map(|_| rng.signed_unit()).collect();
    let outliers: Vec<f32> =
        uniform.iter().enumerate().map(|(i, &v)| if i % 29 == 3 { v * 300.0 } else { v }).collect();
    let zeros = vec![0.0; n];
    let ties: Vec<f32> = (0..n).map(|i| (i % 64) as f32 * 0.5 - 16.0).collect();
    let huge: Vec<f32> = uniform.iter().map(|v| v * 3e38).collect();
    let tiny: Vec<f32> = uniform.iter().map(|v| v * 1e-39).collect();
    let mut special = uniform.clone();
    for (i, v) in special.iter_mut().enumerate() {
        *v = match i % 23 {
            0 => f32::NAN,
            5 => f32::INFINITY,
            9 => f32::NEG_INFINITY,
            13 => -0.0,
            17 => f32::MAX,
            _ => *v,
        };
    }
    let mut nan_last = uniform.clone();
    for v in nan_last.iter_mut().skip(31).step_by(32) {
        *v = f32::NAN;
    }
    vec![uniform, outliers, zeros, ties, huge, tiny, special, nan_last]
}

#[test]
fn every_implementation_quantizes_to_the_same_bytes() {
    for implementation in simd_implementations() {
        for format in BlockFormat::ALL {
            let mut rng = SplitMix::new(61 + format.ggml_type() as u64);
            for blocks in [0, 1, 2, 3, 4, 5, 9] {
                for (case, row) in float_rows(format, blocks, &mut rng).iter().enumerate() {
                    let mut ours = vec![0xA5; blocks * format.block_bytes()];
                    let mut reference = vec![0x5A; blocks * format.block_bytes()];
                    implementation.quantize_row(format, row, &mut ours).unwrap();
                    Implementation::Scalar.quantize_row(format, row, &mut reference).unwrap();
                    assert_eq!(
                        ours, reference,
                        "{implementation} {format}, {blocks} blocks, case {case}"
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------------ tiles

#[test]
fn a_tile_holds_the_dot_product_of_every_weight_row_with_every_activation_row() {
    for implementation in Implementation::available() {
        for (x_format, y_format) in formats_with_dot() {
            let mut rng = SplitMix::new(67 + x_format.ggml_type() as u64);
            // Rows of one to five blocks (every tail of loops unrolled by
            // two), up to nine activation rows (kernels take four, two, one
            // at a time) and more weight rows than a kernel call takes (32).
            let shapes =
                [(1, 1, 5), (3, 1, 1), (1, 5, 2), (7, 6, 3), (9, 4, 5), (16, 9, 1), (70, 3, 5)];
            for (columns, rows, blocks) in shapes {
                let n = blocks * x_format.block_elems();
                let xs: Vec<Vec<u8>> =
                    (0..columns).map(|_| random_row(x_format, blocks, &mut rng)).collect();
                let ys: Vec<Vec<u8>> = (0..rows)
                    .map(|_| {
                        let mut y = random_row(y_format, blocks, &mut rng);
                        fix_sums(y_format, &mut y);
                        y
                    })
                    .collect();
                let x_refs: Vec<&[u8]> = xs.iter().map(Vec::as_slice).collect();
                let y_refs: Vec<&[u8]> = ys.iter().map(Vec::as_slice).collect();
                let stride = columns + 2;
                let mut out = vec![f32::NAN; stride * rows];
                implementation
                    .vec_dot_tile(x_format, n, &x_refs, &y_refs, &mut out, stride)
                    .unwrap();
                for (iy, y) in ys.iter().enumerate() {
                    for (ix, x) in xs.iter().enumerate() {
                        let single = implementation.vec_dot(x_format, n, x, y).unwrap();
                        let tiled = out[iy * stride + ix];
                        let bound = magnitude(x_format, x, y_format, y);
                        let tolerance = 64.0 * f32::EPSILON as f64 * bound + 1e-30;
                        assert!(
                            ((tiled - single) as f64).abs() <= tolerance,
                            "{implementation} {x_format} {columns}x{rows} ({ix}, {iy}): \
                             {tiled} vs {single}"
                        );
                    }
                    for gap in &out[iy * stride + columns..(iy + 1) * stride] {
                        assert!(gap.is_nan(), "{implementation} {x_format}: gap written");
                    }
                }
            }
        }
    }
}

#[test]
fn a_tile_output_may_end_right_after_its_last_row() {
    let (x, y) = (vec![0u8; 18], vec![0u8; 34]);
    let mut out = vec![1.0f32; 5 + 2];
    Implementation::best()
        .vec_dot_tile(BlockFormat::Q4_0, 32, &[&x, &x], &[&y, &y], &mut out, 5)
        .unwrap();
    assert_eq!(out, [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn a_tile_rejects_a_stride_below_its_width_and_a_short_output() {
    let (x, y) = (vec![0u8; 18], vec![0u8; 34]);
    let mut out = vec![7.0f32; 6];
    let tile = |out: &mut [f32], stride| {
        Implementation::best().vec_dot_tile(
            BlockFormat::Q4_0,
            32,
            &[&x, &x, &x],
            &[&y, &y],
            out,
            stride,
        )
    };
    assert_eq!(tile(&mut out, 2), Err(QuantError::TileStrideTooSmall { stride: 2, columns: 3 }));
    assert_eq!(
        tile(&mut out, 4),
        Err(QuantError::TileOutputTooShort { rows: 2, columns: 3, stride: 4, actual: 6 })
    );
    assert_eq!(
        tile(&mut out, usize::MAX),
        Err(QuantError::TileOutputTooShort { rows: 2, columns: 3, stride: usize::MAX, actual: 6 })
    );
    assert_eq!(out, [7.0; 6], "nothing written");
}

#[test]
fn a_tile_checks_every_row_before_writing_anything() {
    let (x, y) = (vec![0u8; 18], vec![0u8; 34]);
    let short_y = vec![0u8; 33];
    let mut out = vec![7.0f32; 4];
    let result = Implementation::best().vec_dot_tile(
        BlockFormat::Q4_0,
        32,
        &[&x, &x],
        &[&y, &short_y],
        &mut out,
        2,
    );
    assert!(matches!(result, Err(QuantError::ByteLengthMismatch { .. })), "{result:?}");
    let result =
        Implementation::best().vec_dot_tile(BlockFormat::Q8K, 256, &[&x], &[&y], &mut out, 2);
    assert_eq!(result, Err(QuantError::NoDotProduct { format: BlockFormat::Q8K }));
    assert_eq!(out, [7.0; 4]);
}

#[test]
fn an_empty_tile_writes_nothing_whatever_its_stride() {
    let y = vec![0u8; 34];
    let mut out = vec![7.0f32; 2];
    for stride in [0, 1, 5] {
        Implementation::best()
            .vec_dot_tile(BlockFormat::Q4_0, 32, &[], &[&y, &y], &mut out, stride)
            .unwrap();
        Implementation::best()
            .vec_dot_tile(BlockFormat::Q4_0, 32, &[&[0; 18]], &[], &mut out, stride)
            .unwrap();
    }
    assert_eq!(out, [7.0; 2]);
}
