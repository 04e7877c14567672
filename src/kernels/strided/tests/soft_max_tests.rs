use super::{F16, F32, Tensor, assert_close, assert_nmse, float_params};
use crate::kernels::strided::{OpError, SoftMaxParams, check_soft_max, soft_max};

fn params(scale: f32, max_bias: f32) -> SoftMaxParams {
    SoftMaxParams::from_op_params(&float_params(0, &[scale, max_bias]))
}

/// ggml's ALiBi slope of head `h` of `n_head`, in f64.
fn slope(h: usize, n_head: usize, max_bias: f64) -> f64 {
    if max_bias <= 0.0 {
        return 1.0;
    }
    let n = 1usize << n_head.ilog2();
    let m0 = 2f64.powf(-max_bias / n as f64);
    let m1 = 2f64.powf(-(max_bias / 2.0) / n as f64);
    if h < n { m0.powi(h as i32 + 1) } else { m1.powi(2 * (h - n) as i32 + 1) }
}

fn reference(
    src0: &Tensor,
    mask: Option<&Tensor>,
    sinks: Option<&Tensor>,
    scale: f64,
    max_bias: f64,
) -> Vec<f32> {
    let [ne0, ne1, ne2, ne3] = src0.layout.ne();
    let mut out = Vec::new();
    for i3 in 0..ne3 {
        for i2 in 0..ne2 {
            for i1 in 0..ne1 {
                let logits: Vec<f64> = (0..ne0)
                    .map(|i0| {
                        let mut x = f64::from(src0.get([i0, i1, i2, i3])) * scale;
                        if let Some(mask) = mask {
                            let [_, _, m2, m3] = mask.layout.ne();
                            let m = f64::from(mask.get([i0, i1, i2 % m2, i3 % m3]));
                            x += slope(i2, ne2, max_bias) * m;
                        }
                        x
                    })
                    .collect();
                let sink = sinks.map(|s| f64::from(s.get([i2, 0, 0, 0])));
                let max = logits.iter().copied().chain(sink).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = logits.iter().chain(sink.as_ref()).map(|x| (x - max).exp()).sum();
                out.extend(logits.iter().map(|x| ((x - max).exp() / sum) as f32));
            }
        }
    }
    out
}

fn run(
    src0: &Tensor,
    mask: Option<&Tensor>,
    sinks: Option<&Tensor>,
    p: SoftMaxParams,
) -> Result<Tensor, OpError> {
    let mut dst = Tensor::poisoned(F32, src0.layout.ne());
    soft_max(src0.view(), mask.map(Tensor::view), sinks.map(Tensor::view), &mut dst.view_mut(), p)?;
    Ok(dst)
}

#[test]
fn rows_are_softmaxed_after_scaling() {
    let src0 = Tensor::random(F32, [10, 5, 4, 3], 1, 4.0);
    let dst = run(&src0, None, None, params(0.5, 0.0)).unwrap();
    assert_nmse(&dst.values(), &reference(&src0, None, None, 0.5, 0.0), 1e-6);
}

#[test]
fn a_mask_of_either_type_is_added_and_broadcast_over_planes() {
    for mask_elem in [F16, F32] {
        // test-backend-ops' nr23: src0 planes 2× and 3× the mask's.
        let src0 = Tensor::random(F32, [16, 4, 4, 3], 2, 3.0);
        let mask = Tensor::random(mask_elem, [16, 4, 2, 1], 3, 2.0);
        let dst = run(&src0, Some(&mask), None, params(0.7, 0.0)).unwrap();
        assert_nmse(&dst.values(), &reference(&src0, Some(&mask), None, 0.7, 0.0), 1e-6);
    }
}

#[test]
fn a_mask_may_have_more_rows_than_src0() {
    let src0 = Tensor::random(F32, [8, 3, 1, 1], 4, 3.0);
    let mask = Tensor::random(F16, [8, 32, 1, 1], 5, 2.0);
    let dst = run(&src0, Some(&mask), None, params(1.0, 0.0)).unwrap();
    assert_nmse(&dst.values(), &reference(&src0, Some(&mask), None, 1.0, 0.0), 1e-6);
}

#[test]
fn alibi_scales_the_mask_per_head() {
    // 6 heads: 4 below the power of two, 2 above it.
    let src0 = Tensor::random(F32, [12, 3, 6, 1], 6, 3.0);
    let mask = Tensor::random(F32, [12, 3, 1, 1], 7, 2.0);
    let dst = run(&src0, Some(&mask), None, params(1.0, 8.0)).unwrap();
    assert_nmse(&dst.values(), &reference(&src0, Some(&mask), None, 1.0, 8.0), 1e-6);
}

#[test]
fn sinks_take_part_in_the_normalisation() {
    let src0 = Tensor::random(F32, [10, 2, 4, 1], 8, 3.0);
    let sinks = Tensor::random(F32, [4, 1, 1, 1], 9, 10.0);
    let dst = run(&src0, None, Some(&sinks), params(1.0, 0.0)).unwrap();
    assert_nmse(&dst.values(), &reference(&src0, None, Some(&sinks), 1.0, 0.0), 1e-6);
    let row_sum: f32 = dst.values()[..10].iter().sum();
    assert!(row_sum < 1.0, "a sink takes some of the probability");
}

#[test]
fn masked_entries_get_zero_probability() {
    let src0 = Tensor::new(F32, [3, 1, 1, 1], &[1.0, 2.0, 3.0]);
    let mask = Tensor::new(F16, [3, 1, 1, 1], &[0.0, f32::NEG_INFINITY, 0.0]);
    let dst = run(&src0, Some(&mask), None, params(1.0, 0.0)).unwrap();
    let e = (-2.0f32).exp();
    assert_close(&dst.values(), &[e / (1.0 + e), 0.0, 1.0 / (1.0 + e)], 1e-6);
}

#[test]
fn a_fully_masked_row_is_nan_as_in_ggml() {
    let src0 = Tensor::new(F32, [2, 1, 1, 1], &[1.0, 2.0]);
    let mask = Tensor::new(F32, [2, 1, 1, 1], &[f32::NEG_INFINITY; 2]);
    let dst = run(&src0, Some(&mask), None, params(1.0, 0.0)).unwrap();
    assert!(dst.values().iter().all(|v| v.is_nan()));
}

#[test]
fn a_sink_rescues_a_fully_masked_row() {
    let src0 = Tensor::new(F32, [2, 1, 1, 1], &[1.0, 2.0]);
    let mask = Tensor::new(F32, [2, 1, 1, 1], &[f32::NEG_INFINITY; 2]);
    let sinks = Tensor::new(F32, [1, 1, 1, 1], &[0.5]);
    let dst = run(&src0, Some(&mask), Some(&sinks), params(1.0, 0.0)).unwrap();
    assert_eq!(dst.values(), [0.0, 0.0]);
}

#[test]
fn rejects_alibi_without_a_mask() {
    let src0 = Tensor::random(F32, [4, 1, 2, 1], 10, 1.0);
    let err = check_soft_max(&src0.layout, None, None, &src0.layout, params(1.0, 8.0)).unwrap_err();
    assert_eq!(err.to_string(), "SOFT_MAX: mask is required: max_bias > 0");
}

#[test]
fn rejects_a_mask_with_fewer_rows_or_other_columns() {
    let src0 = Tensor::random(F32, [4, 5, 1, 1], 11, 1.0);
    let short = Tensor::random(F16, [4, 3, 1, 1], 12, 1.0);
    let err =
        check_soft_max(&src0.layout, Some(&short.layout), None, &src0.layout, params(1.0, 0.0))
            .unwrap_err();
    assert_eq!(err.to_string(), "SOFT_MAX: mask ne[1] 3 < src0 ne[1] 5");
    let wide = Tensor::random(F16, [8, 5, 1, 1], 13, 1.0);
    let err =
        check_soft_max(&src0.layout, Some(&wide.layout), None, &src0.layout, params(1.0, 0.0))
            .unwrap_err();
    assert!(matches!(err, OpError::DimRule { operand: "mask", dim: 0, .. }), "{err}");
}

#[test]
fn rejects_mask_planes_that_do_not_divide_src0s() {
    let src0 = Tensor::random(F32, [4, 2, 3, 1], 14, 1.0);
    let mask = Tensor::random(F32, [4, 2, 2, 1], 15, 1.0);
    let err =
        check_soft_max(&src0.layout, Some(&mask.layout), None, &src0.layout, params(1.0, 0.0))
            .unwrap_err();
    assert_eq!(err.to_string(), "SOFT_MAX: src0 ne[2] 3 is not a multiple of mask ne[2] 2");
}

#[test]
fn rejects_sinks_of_another_head_count_and_a_non_contiguous_src0() {
    let src0 = Tensor::random(F32, [4, 2, 3, 1], 16, 1.0);
    let sinks = Tensor::random(F32, [2, 1, 1, 1], 17, 1.0);
    let err =
        check_soft_max(&src0.layout, None, Some(&sinks.layout), &src0.layout, params(1.0, 0.0))
            .unwrap_err();
    assert!(matches!(err, OpError::DimRule { operand: "sinks", .. }), "{err}");
    let permuted = src0.permute([0, 2, 1, 3]);
    let dst = Tensor::poisoned(F32, permuted.layout.ne());
    let err =
        check_soft_max(&permuted.layout, None, None, &dst.layout, params(1.0, 0.0)).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
