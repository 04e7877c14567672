use super::{F16, F32, Tensor, assert_close, assert_nmse, float_params};
use crate::kernels::strided::{NormParams, OpError, check_norm, check_rms_norm, norm, rms_norm};

fn rows_of(t: &Tensor) -> Vec<Vec<f64>> {
    let [ne0, ne1, ne2, ne3] = t.layout.ne();
    let mut rows = Vec::new();
    for i3 in 0..ne3 {
        for i2 in 0..ne2 {
            for i1 in 0..ne1 {
                rows.push((0..ne0).map(|i0| f64::from(t.get([i0, i1, i2, i3]))).collect());
            }
        }
    }
    rows
}

fn rms_reference(t: &Tensor, eps: f64) -> Vec<f32> {
    rows_of(t)
        .into_iter()
        .flat_map(|row| {
            let mean = row.iter().map(|x| x * x).sum::<f64>() / row.len() as f64;
            let scale = 1.0 / (mean + eps).sqrt();
            row.into_iter().map(move |x| (x * scale) as f32)
        })
        .collect()
}

fn norm_reference(t: &Tensor, eps: f64) -> Vec<f32> {
    rows_of(t)
        .into_iter()
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / row.len() as f64;
            let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / row.len() as f64;
            let scale = 1.0 / (var + eps).sqrt();
            row.into_iter().map(move |x| ((x - mean) * scale) as f32)
        })
        .collect()
}

fn params(eps: f32) -> NormParams {
    NormParams::from_op_params(&float_params(0, &[eps]))
}

#[test]
fn eps_is_read_from_op_params() {
    assert_eq!(params(1e-6).eps, 1e-6);
}

#[test]
fn rms_norm_matches_the_reference_on_test_backend_ops_shapes() {
    for (seed, eps) in [(1, 1e-6f32), (2, 1e-5), (3, 0.1)] {
        let src0 = Tensor::random(F32, [64, 5, 4, 3], seed, 10.0);
        let mut dst = Tensor::poisoned(F32, src0.layout.ne());
        rms_norm(src0.view(), &mut dst.view_mut(), params(eps)).unwrap();
        assert_nmse(&dst.values(), &rms_reference(&src0, f64::from(eps)), 1e-7);
    }
}

#[test]
fn rms_norm_reads_a_strided_view() {
    // test-backend-ops' "v": half of every dimension of a larger tensor.
    let base = Tensor::random(F32, [64, 10, 8, 6], 4, 10.0);
    let src0 = base.sub_view([32, 5, 4, 3]);
    let mut dst = Tensor::poisoned(F32, [32, 5, 4, 3]);
    rms_norm(src0.view(), &mut dst.view_mut(), params(1e-6)).unwrap();
    assert_nmse(&dst.values(), &rms_reference(&src0, 1e-6), 1e-7);
}

#[test]
fn rms_norm_of_a_row_of_zeros_is_zeros() {
    let src0 = Tensor::new(F32, [4, 1, 1, 1], &[0.0; 4]);
    let mut dst = Tensor::poisoned(F32, [4, 1, 1, 1]);
    rms_norm(src0.view(), &mut dst.view_mut(), params(1e-6)).unwrap();
    assert_eq!(dst.values(), [0.0; 4]);
}

#[test]
fn norm_matches_the_reference_on_views_and_permuted_rows() {
    let plain = Tensor::random(F32, [64, 5, 4, 3], 5, 3.0);
    let viewed = Tensor::random(F32, [64, 10, 8, 6], 6, 3.0).sub_view([32, 5, 4, 3]);
    // test-backend-ops' noncontig_rows: made as [ne1, ne0], permuted.
    let permuted = Tensor::random(F32, [5, 64, 4, 3], 7, 3.0).permute([1, 0, 2, 3]);
    for src0 in [plain, viewed, permuted] {
        let mut dst = Tensor::poisoned(F32, src0.layout.ne());
        norm(src0.view(), &mut dst.view_mut(), params(1e-5)).unwrap();
        assert_nmse(&dst.values(), &norm_reference(&src0, 1e-5), 1e-7);
    }
}

#[test]
fn norm_writes_through_a_strided_destination() {
    let src0 = Tensor::random(F32, [6, 3, 1, 1], 8, 3.0);
    let mut dst = Tensor::poisoned(F32, [3, 6, 1, 1]).transpose();
    norm(src0.view(), &mut dst.view_mut(), params(1e-5)).unwrap();
    assert_close(&dst.values(), &norm_reference(&src0, 1e-5), 1e-5);
}

#[test]
fn norm_of_a_constant_row_is_zeros() {
    let src0 = Tensor::new(F32, [3, 1, 1, 1], &[2.5; 3]);
    let mut dst = Tensor::poisoned(F32, [3, 1, 1, 1]);
    norm(src0.view(), &mut dst.view_mut(), params(1e-5)).unwrap();
    assert_eq!(dst.values(), [0.0; 3]);
}

#[test]
fn rejects_a_negative_or_nan_eps() {
    let src0 = Tensor::random(F32, [4, 1, 1, 1], 9, 1.0);
    let err = check_rms_norm(&src0.layout, &src0.layout, params(-1e-6)).unwrap_err();
    assert_eq!(err.to_string(), "RMS_NORM: eps -0.000001 must be >= 0");
    let err = check_norm(&src0.layout, &src0.layout, params(f32::NAN)).unwrap_err();
    assert!(matches!(err, OpError::InvalidParam { param: "eps", .. }), "{err}");
}

#[test]
fn rejects_types_other_than_f32() {
    let src0 = Tensor::random(F16, [4, 1, 1, 1], 10, 1.0);
    let dst = Tensor::poisoned(F32, [4, 1, 1, 1]);
    let err = check_rms_norm(&src0.layout, &dst.layout, params(1e-6)).unwrap_err();
    assert_eq!(err.to_string(), "RMS_NORM: src0 has type f16, expected f32");
}

#[test]
fn rejects_a_dst_of_another_shape() {
    let src0 = Tensor::random(F32, [4, 2, 1, 1], 11, 1.0);
    let dst = Tensor::poisoned(F32, [4, 1, 1, 1]);
    let err = check_norm(&src0.layout, &dst.layout, params(1e-6)).unwrap_err();
    assert!(matches!(err, OpError::ShapeMismatch { operand: "dst", .. }), "{err}");
}

#[test]
fn rms_norm_rejects_rows_that_ggml_cannot_read_as_arrays() {
    let src0 = Tensor::random(F32, [2, 4, 1, 1], 12, 1.0).transpose();
    let dst = Tensor::poisoned(F32, [4, 2, 1, 1]);
    let err = check_rms_norm(&src0.layout, &dst.layout, params(1e-6)).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}

#[test]
fn l2_norm_scales_each_row_to_unit_length_or_by_eps() {
    use crate::kernels::strided::l2_norm;
    let src = Tensor::new(F32, [2, 2, 1, 1], &[3.0, 4.0, 0.0, 1e-9]);
    let mut dst = Tensor::poisoned(F32, [2, 2, 1, 1]);
    l2_norm(src.view(), &mut dst.view_mut(), NormParams { eps: 1e-6 }).unwrap();
    // The second row's length is below eps: divided by eps instead.
    assert_eq!(dst.values(), [0.6, 0.8, 0.0, 1e-9f32 * (1.0 / 1e-6f32)]);
    let err = l2_norm(src.view(), &mut dst.view_mut(), NormParams { eps: -1.0 }).unwrap_err();
    assert!(err.to_string().contains("eps -1 must be >= 0"), "{err}");
}
