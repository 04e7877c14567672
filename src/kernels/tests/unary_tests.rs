use half::f16;

use super::reference;
use super::{Rng, Tensor, assert_close, element_count};
use crate::kernels::{DType, KernelError, UnaryOp, exp, gelu, infer_unary, neg, relu, unary};

fn run(op: UnaryOp, x: &Tensor) -> Result<Tensor, KernelError> {
    let spec = infer_unary(op, x.view().desc())?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    unary(op, x.view(), &mut out.view_mut())?;
    Ok(out)
}

fn reference_op(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Relu => {
            if x.is_nan() {
                x
            } else {
                x.max(0.0)
            }
        }
        UnaryOp::Gelu => reference::gelu(x),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Neg => -x,
    }
}

/// A float tensor of `dtype` holding `values` (rounded to the dtype).
fn float_tensor(dtype: DType, shape: &[i64], values: &[f64]) -> Tensor {
    match dtype {
        DType::Float16 => {
            Tensor::from_vec(shape, values.iter().map(|&v| f16::from_f64(v)).collect())
        }
        DType::Float32 => Tensor::from_vec(shape, values.iter().map(|&v| v as f32).collect()),
        DType::Float64 => Tensor::from_vec(shape, values.to_vec()),
        other => panic!("{other} is not a float dtype"),
    }
}

fn relative_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::Float16 => 1e-3,
        DType::Float32 => 1e-6,
        _ => 1e-14,
    }
}

#[test]
fn float_ops_match_reference_on_random_inputs() {
    let mut rng = Rng::new(11);
    let shape = [3, 17];
    let values: Vec<f64> = (0..element_count(&shape)).map(|_| rng.unit() * 6.0).collect();
    for dtype in [DType::Float16, DType::Float32, DType::Float64] {
        let x = float_tensor(dtype, &shape, &values);
        let inputs = x.to_f64s();
        for op in [UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Exp, UnaryOp::Neg] {
            let out = run(op, &x).unwrap();
            assert_eq!(out.shape, shape.to_vec());
            let expected: Vec<f64> = inputs.iter().map(|&v| reference_op(op, v)).collect();
            let tolerance = relative_tolerance(dtype);
            assert_close(&out.to_f64s(), &expected, tolerance, tolerance);
        }
    }
}

#[test]
fn relu_zeroes_negatives_and_keeps_positives() {
    let x = Tensor::from_vec(&[4], vec![-2.0f32, -0.5, 0.0, 3.0]);
    let mut out = Tensor::zeros(DType::Float32, &[4]);
    relu(x.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f32>(), vec![0.0, 0.0, 0.0, 3.0]);
}

#[test]
fn relu_keeps_nan() {
    let out = run(UnaryOp::Relu, &Tensor::scalar(f64::NAN)).unwrap();
    assert!(out.to_vec::<f64>()[0].is_nan());
}

#[test]
fn relu_works_on_integers() {
    let x = Tensor::from_vec(&[3], vec![-5i64, 0, 7]);
    assert_eq!(run(UnaryOp::Relu, &x).unwrap().to_vec::<i64>(), vec![0, 0, 7]);
}

#[test]
fn gelu_uses_the_tanh_approximation() {
    // gelu_tanh(1) = 0.8411919906082768; the exact erf form gives 0.8413447.
    let x = Tensor::from_vec(&[3], vec![1.0f64, 0.0, -1.0]);
    let mut out = Tensor::zeros(DType::Float64, &[3]);
    gelu(x.view(), &mut out.view_mut()).unwrap();
    assert_close(
        &out.to_vec::<f64>(),
        &[0.8411919906082768, 0.0, -0.15880800939172324],
        1e-15,
        1e-15,
    );
}

#[test]
fn gelu_of_large_negative_is_zero_and_large_positive_is_identity() {
    let x = Tensor::from_vec(&[2], vec![-50.0f32, 50.0]);
    assert_eq!(run(UnaryOp::Gelu, &x).unwrap().to_vec::<f32>(), vec![-0.0, 50.0]);
}

#[test]
fn exp_computes_e_to_the_x() {
    let x = Tensor::from_vec(&[3], vec![0.0f64, 1.0, -1000.0]);
    let mut out = Tensor::zeros(DType::Float64, &[3]);
    exp(x.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f64>(), vec![1.0, std::f64::consts::E, 0.0]);
}

#[test]
fn exp_overflows_to_infinity() {
    let out = run(UnaryOp::Exp, &Tensor::scalar(f16::from_f32(20.0))).unwrap();
    assert_eq!(out.to_vec::<f16>(), vec![f16::INFINITY]);
}

#[test]
fn neg_negates_floats_and_integers() {
    let x = Tensor::from_vec(&[2], vec![1.5f32, -2.0]);
    let mut out = Tensor::zeros(DType::Float32, &[2]);
    neg(x.view(), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f32>(), vec![-1.5, 2.0]);
    let x = Tensor::from_vec(&[2], vec![3i32, -4]);
    assert_eq!(run(UnaryOp::Neg, &x).unwrap().to_vec::<i32>(), vec![-3, 4]);
}

#[test]
fn neg_of_integer_min_wraps() {
    let out = run(UnaryOp::Neg, &Tensor::scalar(i64::MIN)).unwrap();
    assert_eq!(out.to_vec::<i64>(), vec![i64::MIN]);
}

#[test]
fn unary_ops_work_on_scalars_and_empty_tensors() {
    let out = run(UnaryOp::Exp, &Tensor::scalar(0.0f32)).unwrap();
    assert_eq!(out.shape, Vec::<i64>::new());
    assert_eq!(out.to_vec::<f32>(), vec![1.0]);
    let out = run(UnaryOp::Gelu, &Tensor::zeros(DType::Float64, &[4, 0])).unwrap();
    assert_eq!(out.shape, vec![4, 0]);
}

#[test]
fn gelu_and_exp_reject_integers() {
    for op in [UnaryOp::Gelu, UnaryOp::Exp] {
        let err = run(op, &Tensor::zeros(DType::Int32, &[2])).unwrap_err();
        assert!(matches!(err, KernelError::UnsupportedDType { .. }), "{err}");
    }
    let err = run(UnaryOp::Exp, &Tensor::zeros(DType::Int64, &[2])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exp: x has dtype int64, which exp does not support (supported: float16, float32, float64)"
    );
}

#[test]
fn relu_and_neg_reject_unsupported_dtypes() {
    for op in [UnaryOp::Relu, UnaryOp::Neg] {
        let err = run(op, &Tensor::zeros(DType::UInt8, &[2])).unwrap_err();
        assert!(matches!(err, KernelError::UnsupportedDType { .. }), "{err}");
    }
}

#[test]
fn unary_rejects_wrong_output_shape() {
    let x = Tensor::zeros(DType::Float32, &[2, 3]);
    let mut out = Tensor::zeros(DType::Float32, &[6]);
    let err = relu(x.view(), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "relu: out has shape [6], expected [2, 3]");
}

#[test]
fn unary_rejects_wrong_output_dtype() {
    let x = Tensor::zeros(DType::Float32, &[2]);
    let mut out = Tensor::zeros(DType::Float64, &[2]);
    let err = exp(x.view(), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "exp: out has dtype float64, expected float32");
}

#[test]
fn infer_unary_counts_transcendentals_as_more_flops() {
    let x = Tensor::zeros(DType::Float32, &[10]);
    let relu_cost = infer_unary(UnaryOp::Relu, x.view().desc()).unwrap().estimated_flops;
    let exp_cost = infer_unary(UnaryOp::Exp, x.view().desc()).unwrap().estimated_flops;
    assert!(exp_cost > relu_cost);
}
