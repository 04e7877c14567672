use half::f16;

use super::reference;
use super::{Rng, Tensor, TestElement, element_count};
use crate::kernels::{
    BinaryOp, DType, KernelError, add, binary, div, infer_binary, maximum, mul, sub,
};

const ALL_OPS: [BinaryOp; 5] =
    [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum];

/// Infers the output, allocates it and runs `op`.
fn run(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, KernelError> {
    let spec = infer_binary(op, a.view().desc(), b.view().desc())?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    binary(op, a.view(), b.view(), &mut out.view_mut())?;
    Ok(out)
}

/// The documented semantics of each op, written independently of the
/// kernels' `Arithmetic` trait.
trait ReferenceArithmetic: TestElement + Copy {
    fn apply(op: BinaryOp, a: Self, b: Self) -> Self;
    fn random(rng: &mut Rng, count: usize) -> Vec<Self>;
}

macro_rules! float_reference {
    ($($ty:ty),*) => {$(
        impl ReferenceArithmetic for $ty {
            fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div => a / b,
                    BinaryOp::Maximum if a.is_nan() || b.is_nan() => <$ty>::NAN,
                    BinaryOp::Maximum => a.max(b),
                }
            }
            fn random(rng: &mut Rng, count: usize) -> Vec<Self> {
                (0..count).map(|_| (rng.unit() * 10.0) as $ty).collect()
            }
        }
    )*};
}

float_reference!(f32, f64);

impl ReferenceArithmetic for f16 {
    fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
        f16::from_f32(f32::apply(op, a.to_f32(), b.to_f32()))
    }
    fn random(rng: &mut Rng, count: usize) -> Vec<Self> {
        (0..count).map(|_| f16::from_f64(rng.unit() * 10.0)).collect()
    }
}

macro_rules! integer_reference {
    ($($ty:ty),*) => {$(
        impl ReferenceArithmetic for $ty {
            fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
                match op {
                    BinaryOp::Add => a.wrapping_add(b),
                    BinaryOp::Sub => a.wrapping_sub(b),
                    BinaryOp::Mul => a.wrapping_mul(b),
                    BinaryOp::Div if b == 0 => 0,
                    BinaryOp::Div => a.wrapping_div(b),
                    BinaryOp::Maximum => a.max(b),
                }
            }
            fn random(rng: &mut Rng, count: usize) -> Vec<Self> {
                // Small values, zero included, so division by zero occurs.
                rng.i64s(count, 20).into_iter().map(|v| v as $ty).collect()
            }
        }
    )*};
}

integer_reference!(i32, i64);

/// A random output shape and two operand shapes that broadcast to it.
fn random_broadcast_shapes(rng: &mut Rng) -> (Vec<i64>, Vec<i64>) {
    let rank = rng.below(5);
    let out: Vec<i64> = (0..rank).map(|_| rng.below(4) as i64 + 1).collect();
    let operand = |rng: &mut Rng| -> Vec<i64> {
        let dropped = rng.below(rank + 1);
        out[dropped..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
    };
    let a = operand(rng);
    let b = operand(rng);
    (a, b)
}

fn check_random_against_reference<T: ReferenceArithmetic>(seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..40 {
        let (a_shape, b_shape) = random_broadcast_shapes(&mut rng);
        let a_values = T::random(&mut rng, element_count(&a_shape));
        let b_values = T::random(&mut rng, element_count(&b_shape));
        let a = Tensor::from_vec(&a_shape, a_values.clone());
        let b = Tensor::from_vec(&b_shape, b_values.clone());
        for op in ALL_OPS {
            let (expected, expected_shape) =
                reference::binary(&a_values, &a_shape, &b_values, &b_shape, |x, y| {
                    T::apply(op, x, y)
                });
            let out = run(op, &a, &b).unwrap();
            assert_eq!(out.shape, expected_shape, "{op:?} {a_shape:?} {b_shape:?}");
            assert_eq!(out.to_vec::<T>(), expected, "{op:?} {a_shape:?} {b_shape:?}");
        }
    }
}

#[test]
fn every_op_matches_reference_on_random_broadcasts_float32() {
    check_random_against_reference::<f32>(1);
}

#[test]
fn every_op_matches_reference_on_random_broadcasts_float64() {
    check_random_against_reference::<f64>(2);
}

#[test]
fn every_op_matches_reference_on_random_broadcasts_float16() {
    check_random_against_reference::<f16>(3);
}

#[test]
fn every_op_matches_reference_on_random_broadcasts_int32() {
    check_random_against_reference::<i32>(4);
}

#[test]
fn every_op_matches_reference_on_random_broadcasts_int64() {
    check_random_against_reference::<i64>(5);
}

#[test]
fn add_adds_same_shape_tensors() {
    let a = Tensor::from_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
    let b = Tensor::from_vec(&[2, 2], vec![10.0f32, 20.0, 30.0, 40.0]);
    let mut out = Tensor::zeros(DType::Float32, &[2, 2]);
    add(a.view(), b.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f32>(), vec![11.0, 22.0, 33.0, 44.0]);
}

#[test]
fn add_broadcasts_row_vector_over_matrix() {
    let a = Tensor::from_vec(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
    let b = Tensor::from_vec(&[3], vec![10i32, 20, 30]);
    let out = run(BinaryOp::Add, &a, &b).unwrap();
    assert_eq!(out.shape, vec![2, 3]);
    assert_eq!(out.to_vec::<i32>(), vec![11, 22, 33, 14, 25, 36]);
}

#[test]
fn add_broadcasts_column_vector_over_matrix() {
    let a = Tensor::from_vec(&[2, 3], vec![1i64, 2, 3, 4, 5, 6]);
    let b = Tensor::from_vec(&[2, 1], vec![100i64, 200]);
    let out = run(BinaryOp::Add, &a, &b).unwrap();
    assert_eq!(out.to_vec::<i64>(), vec![101, 102, 103, 204, 205, 206]);
}

#[test]
fn add_broadcasts_scalar_over_tensor() {
    let a = Tensor::scalar(0.5f64);
    let b = Tensor::from_vec(&[3], vec![1.0f64, 2.0, 3.0]);
    let out = run(BinaryOp::Add, &a, &b).unwrap();
    assert_eq!(out.shape, vec![3]);
    assert_eq!(out.to_vec::<f64>(), vec![1.5, 2.5, 3.5]);
}

#[test]
fn mul_broadcasts_column_against_row_to_outer_product() {
    let a = Tensor::from_vec(&[3, 1], vec![1.0f32, 2.0, 3.0]);
    let b = Tensor::from_vec(&[1, 2], vec![10.0f32, 100.0]);
    let out = run(BinaryOp::Mul, &a, &b).unwrap();
    assert_eq!(out.shape, vec![3, 2]);
    assert_eq!(out.to_vec::<f32>(), vec![10.0, 100.0, 20.0, 200.0, 30.0, 300.0]);
}

#[test]
fn scalar_op_scalar_is_scalar() {
    let out = run(BinaryOp::Sub, &Tensor::scalar(5i32), &Tensor::scalar(7i32)).unwrap();
    assert_eq!(out.shape, Vec::<i64>::new());
    assert_eq!(out.to_vec::<i32>(), vec![-2]);
}

#[test]
fn sub_subtracts_in_operand_order() {
    let a = Tensor::from_vec(&[2], vec![10.0f32, 1.0]);
    let b = Tensor::scalar(3.0f32);
    let mut out = Tensor::zeros(DType::Float32, &[2]);
    sub(a.view(), b.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f32>(), vec![7.0, -2.0]);
    sub(b.view(), a.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f32>(), vec![-7.0, 2.0]);
}

#[test]
fn div_of_integers_truncates_toward_zero() {
    let a = Tensor::from_vec(&[4], vec![7i32, -7, 7, -7]);
    let b = Tensor::from_vec(&[4], vec![2i32, 2, -2, -2]);
    let mut out = Tensor::zeros(DType::Int32, &[4]);
    div(a.view(), b.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<i32>(), vec![3, -3, -3, 3]);
}

#[test]
fn div_of_integers_by_zero_is_zero() {
    let a = Tensor::from_vec(&[3], vec![5i64, -5, 0]);
    let b = Tensor::scalar(0i64);
    let out = run(BinaryOp::Div, &a, &b).unwrap();
    assert_eq!(out.to_vec::<i64>(), vec![0, 0, 0]);
}

#[test]
fn div_of_integer_min_by_minus_one_wraps() {
    let out = run(BinaryOp::Div, &Tensor::scalar(i32::MIN), &Tensor::scalar(-1i32)).unwrap();
    assert_eq!(out.to_vec::<i32>(), vec![i32::MIN]);
}

#[test]
fn div_of_floats_by_zero_follows_ieee() {
    let a = Tensor::from_vec(&[3], vec![1.0f32, -1.0, 0.0]);
    let out = run(BinaryOp::Div, &a, &Tensor::scalar(0.0f32)).unwrap();
    let values = out.to_vec::<f32>();
    assert_eq!(values[0], f32::INFINITY);
    assert_eq!(values[1], f32::NEG_INFINITY);
    assert!(values[2].is_nan());
}

#[test]
fn integer_add_and_mul_wrap_on_overflow() {
    let a = Tensor::scalar(i32::MAX);
    assert_eq!(
        run(BinaryOp::Add, &a, &Tensor::scalar(1i32)).unwrap().to_vec::<i32>(),
        vec![i32::MIN]
    );
    assert_eq!(run(BinaryOp::Mul, &a, &Tensor::scalar(2i32)).unwrap().to_vec::<i32>(), vec![-2]);
}

#[test]
fn maximum_takes_larger_element() {
    let a = Tensor::from_vec(&[3], vec![1i32, 5, -3]);
    let b = Tensor::from_vec(&[3], vec![4i32, 2, -3]);
    let mut out = Tensor::zeros(DType::Int32, &[3]);
    maximum(a.view(), b.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<i32>(), vec![4, 5, -3]);
}

#[test]
fn maximum_propagates_nan() {
    let a = Tensor::from_vec(&[2], vec![f64::NAN, 1.0]);
    let b = Tensor::from_vec(&[2], vec![0.0f64, f64::NAN]);
    let out = run(BinaryOp::Maximum, &a, &b).unwrap();
    assert!(out.to_vec::<f64>().iter().all(|v| v.is_nan()));
}

#[test]
fn float16_mul_matches_float32_rounded_once() {
    let a = Tensor::from_vec(&[2], vec![f16::from_f32(1.1), f16::from_f32(-3.3)]);
    let b = Tensor::from_vec(&[2], vec![f16::from_f32(7.7), f16::from_f32(0.01)]);
    let mut out = Tensor::zeros(DType::Float16, &[2]);
    mul(a.view(), b.view(), &mut out.view_mut()).unwrap();
    let expected: Vec<f16> = [(1.1f32, 7.7f32), (-3.3, 0.01)]
        .iter()
        .map(|&(x, y)| f16::from_f32(f16::from_f32(x).to_f32() * f16::from_f32(y).to_f32()))
        .collect();
    assert_eq!(out.to_vec::<f16>(), expected);
}

#[test]
fn binary_of_zero_size_tensor_is_empty() {
    let a = Tensor::zeros(DType::Float32, &[0, 3]);
    let b = Tensor::from_vec(&[3], vec![1.0f32, 2.0, 3.0]);
    let out = run(BinaryOp::Add, &a, &b).unwrap();
    assert_eq!(out.shape, vec![0, 3]);
    assert!(out.bytes().is_empty());
}

#[test]
fn binary_broadcasts_size_one_against_size_zero() {
    let a = Tensor::zeros(DType::Int64, &[1, 3]);
    let b = Tensor::zeros(DType::Int64, &[0, 1]);
    let out = run(BinaryOp::Mul, &a, &b).unwrap();
    assert_eq!(out.shape, vec![0, 3]);
}

#[test]
fn add_rejects_incompatible_broadcast() {
    let a = Tensor::zeros(DType::Float32, &[2, 3]);
    let b = Tensor::zeros(DType::Float32, &[4]);
    let err = run(BinaryOp::Add, &a, &b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "add: a has shape [2, 3] and b has shape [4]: dimensions 3 and 4 cannot be broadcast together"
    );
}

#[test]
fn add_rejects_mixed_dtypes() {
    let a = Tensor::zeros(DType::Float32, &[2]);
    let b = Tensor::zeros(DType::Int32, &[2]);
    let err = run(BinaryOp::Add, &a, &b).unwrap_err();
    assert_eq!(err.to_string(), "add: b has dtype int32, expected float32");
}

#[test]
fn binary_ops_reject_unsupported_dtypes() {
    for dtype in [DType::UInt8, DType::Int8, DType::Int16, DType::UInt64, DType::Bool] {
        let a = Tensor::zeros(dtype, &[2]);
        let err = run(BinaryOp::Mul, &a, &a).unwrap_err();
        assert!(matches!(err, KernelError::UnsupportedDType { op: "mul", .. }), "{dtype}: {err}");
    }
}

#[test]
fn add_rejects_wrong_output_dtype() {
    let a = Tensor::zeros(DType::Float32, &[2]);
    let mut out = Tensor::zeros(DType::Int32, &[2]);
    let err = add(a.view(), a.view(), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "add: out has dtype int32, expected float32");
}

#[test]
fn add_rejects_wrong_output_shape_and_leaves_it_untouched() {
    let a = Tensor::from_vec(&[2, 3], vec![1.0f64; 6]);
    let b = Tensor::from_vec(&[3], vec![1.0f64; 3]);
    let mut out = Tensor::filled_with_byte(DType::Float64, &[3, 2], 0xCD);
    let err = add(a.view(), b.view(), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "add: out has shape [3, 2], expected [2, 3]");
    assert!(out.bytes().iter().all(|&byte| byte == 0xCD));
}

#[test]
fn infer_binary_reports_broadcast_shape_and_flops() {
    let a = Tensor::zeros(DType::Float16, &[4, 1, 3]);
    let b = Tensor::zeros(DType::Float16, &[5, 1]);
    let spec = infer_binary(BinaryOp::Div, a.view().desc(), b.view().desc()).unwrap();
    assert_eq!(spec.shape, vec![4, 5, 3]);
    assert_eq!(spec.dtype, DType::Float16);
    assert_eq!(spec.estimated_flops, 60);
}
