use super::{F16, F32, Tensor, float_params, round_to};
use crate::kernels::strided::{LeakyReluParams, OpError, check_leaky_relu, leaky_relu};

#[test]
fn negative_values_are_scaled_by_the_slope() {
    for elem in [F32, F16] {
        let src = Tensor::new(elem, [4, 1, 1, 1], &[-2.0, -0.5, 0.0, 3.0]);
        let mut dst = Tensor::poisoned(elem, [4, 1, 1, 1]);
        let params = LeakyReluParams::from_op_params(&float_params(0, &[0.1]));
        leaky_relu(src.view(), &mut dst.view_mut(), params).unwrap();
        let expected = [-0.2f32, -0.05, 0.0, 3.0].map(|v| round_to(elem, v));
        assert_eq!(dst.values(), expected, "{elem}");
    }
}

#[test]
fn refuses_a_permuted_source() {
    let src = Tensor::random(F32, [4, 3, 2, 1], 1, 1.0).permute([0, 2, 1, 3]);
    let err = check_leaky_relu(&src.layout, &src.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
