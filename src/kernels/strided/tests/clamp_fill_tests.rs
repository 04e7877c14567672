use super::{BF16, F16, F32, Tensor, float_params, round_to};
use crate::kernels::strided::{
    ClampParams, FillParams, OpError, check_clamp, check_fill, clamp, fill,
};

#[test]
fn clamp_bounds_every_element_and_turns_nan_into_max() {
    let src = Tensor::new(F32, [5, 1, 1, 1], &[-3.0, 0.5, 7.0, f32::NAN, f32::NEG_INFINITY]);
    let mut dst = Tensor::poisoned(F32, [5, 1, 1, 1]);
    let params = ClampParams::from_op_params(&float_params(0, &[-1.0, 2.0]));
    clamp(src.view(), &mut dst.view_mut(), params).unwrap();
    // C's MIN(NaN, max) is max.
    assert_eq!(dst.values(), [-1.0, 0.5, 2.0, 2.0, -1.0]);
}

#[test]
fn clamp_of_f16_rounds_once_and_reads_strided_views() {
    let src = Tensor::random(F16, [12, 3, 2, 1], 1, 4.0).sub_view([5, 3, 2, 1]);
    let mut dst = Tensor::poisoned(F16, [5, 3, 2, 1]);
    // The MoE weight-sum clamp: [6.1e-5, inf).
    let params = ClampParams::from_op_params(&float_params(0, &[6.103_515_6e-5, f32::INFINITY]));
    clamp(src.view(), &mut dst.view_mut(), params).unwrap();
    let expected: Vec<f32> =
        src.values().iter().map(|&v| round_to(F16, v.max(6.103_515_6e-5))).collect();
    assert_eq!(dst.values(), expected);
}

#[test]
fn clamp_refuses_bf16_as_ggml_does() {
    let src = Tensor::random(BF16, [4, 1, 1, 1], 2, 1.0);
    let err = check_clamp(&src.layout, &src.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { operand: "src0", .. }), "{err}");
}

#[test]
fn fill_sets_every_element() {
    for elem in [F32, F16] {
        let src = Tensor::random(elem, [3, 2, 2, 1], 3, 1.0);
        let mut dst = Tensor::poisoned(elem, [3, 2, 2, 1]);
        let params = FillParams::from_op_params(&float_params(0, &[f32::NEG_INFINITY]));
        fill(src.view(), &mut dst.view_mut(), params).unwrap();
        assert!(dst.values().iter().all(|&v| v == f32::NEG_INFINITY), "{elem}");
    }
    let strided = Tensor::random(F32, [6, 2, 1, 1], 4, 1.0).sub_view([3, 2, 1, 1]);
    let err = check_fill(&strided.layout, &strided.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { .. }), "{err}");
}
