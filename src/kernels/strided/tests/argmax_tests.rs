use super::{F32, I32, I64, Tensor};
use crate::kernels::strided::{OpError, argmax, check_argmax, check_count_equal, count_equal};

#[test]
fn argmax_finds_each_rows_largest_value_and_the_last_of_ties() {
    let src = Tensor::new(F32, [4, 3, 1, 1], &[1., 5., 2., 5., -1., -3., -2., -9., 0., 0., 7., 1.]);
    let mut dst = Tensor::poisoned(I32, [3, 1, 1, 1]);
    argmax(src.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.values(), [3.0, 0.0, 2.0]);
}

#[test]
fn argmax_restarts_after_a_nan_as_ggml_does() {
    // MAX(max, NaN) is NaN, which equals nothing; MAX(NaN, x) is x again.
    let src = Tensor::new(F32, [4, 1, 1, 1], &[9.0, f32::NAN, 1.0, 0.5]);
    let mut dst = Tensor::poisoned(I32, [1, 1, 1, 1]);
    argmax(src.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.values(), [2.0]);
}

#[test]
fn argmax_refuses_more_than_a_matrix() {
    let src = Tensor::random(F32, [4, 3, 2, 1], 1, 1.0);
    let dst = Tensor::poisoned(I32, [3, 1, 1, 1]);
    let err = check_argmax(&src.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "ARGMAX: src0 ne[2] 2 != 1");
}

#[test]
fn count_equal_counts_matching_elements_through_strides() {
    let a = Tensor::ids(I32, [3, 2, 1, 1], &[1, 2, 3, 4, 5, 6]);
    let b = Tensor::ids(I32, [2, 3, 1, 1], &[1, 4, 0, 5, 3, 7]).transpose();
    let mut dst = Tensor::poisoned(I64, [1, 1, 1, 1]);
    count_equal(a.view(), b.view(), &mut dst.view_mut()).unwrap();
    // b transposed is [[1, 0, 3], [4, 5, 7]]: 1, 3, 4 and 5 match.
    assert_eq!(dst.values(), [4.0]);
    let floats = Tensor::random(F32, [3, 2, 1, 1], 2, 1.0);
    let err = check_count_equal(&floats.layout, &a.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::TypeMismatch { operand: "src0", .. }), "{err}");
}
