use super::{BF16, F16, F32, Tensor, float_params, round_to};
use crate::kernels::strided::{OpError, ScaleParams, check_scale, scale};

fn params(s: f32, b: f32) -> ScaleParams {
    ScaleParams::from_op_params(&float_params(0, &[s, b]))
}

#[test]
fn scales_and_adds_the_bias() {
    for (s, b) in [(2.0, 0.0), (0.5, 1.5), (-3.0, -0.25)] {
        let src0 = Tensor::random(F32, [10, 10, 10, 10], 1, 1.0);
        let mut dst = Tensor::poisoned(F32, src0.layout.ne());
        scale(src0.view(), &mut dst.view_mut(), params(s, b)).unwrap();
        let expected: Vec<f32> = src0.values().iter().map(|&x| x * s + b).collect();
        assert_eq!(dst.values(), expected, "scale {s} bias {b}");
    }
}

#[test]
fn without_bias_negative_zero_stays_negative_zero() {
    let src0 = Tensor::new(F32, [1, 1, 1, 1], &[0.0]);
    let mut dst = Tensor::poisoned(F32, [1, 1, 1, 1]);
    scale(src0.view(), &mut dst.view_mut(), params(-1.0, 0.0)).unwrap();
    assert!(dst.values()[0].is_sign_negative());
}

#[test]
fn bf16_rounds_once() {
    let src0 = Tensor::random(BF16, [7, 3, 1, 1], 2, 4.0);
    let mut dst = Tensor::poisoned(BF16, [7, 3, 1, 1]);
    scale(src0.view(), &mut dst.view_mut(), params(1.7, 0.3)).unwrap();
    let expected: Vec<f32> = src0.values().iter().map(|&x| round_to(BF16, x * 1.7 + 0.3)).collect();
    assert_eq!(dst.values(), expected);
}

#[test]
fn rejects_f16_as_ggml_does() {
    let src0 = Tensor::random(F16, [4, 1, 1, 1], 3, 1.0);
    let err = check_scale(&src0.layout, &src0.layout).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SCALE: src0 has type f16, which SCALE does not support (supported: f32, bf16)"
    );
}

#[test]
fn rejects_a_non_contiguous_source() {
    let src0 = Tensor::random(F32, [4, 4, 2, 1], 4, 1.0).sub_view([2, 4, 2, 1]);
    let dst = Tensor::poisoned(F32, [2, 4, 2, 1]);
    let err = check_scale(&src0.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
