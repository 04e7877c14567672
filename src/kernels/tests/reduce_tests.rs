use half::f16;

use super::reference;
use super::{Rng, Tensor, assert_close, element_count};
use crate::kernels::{
    DType, KernelError, ReduceOp, ReduceOptions, infer_reduce, max, mean, reduce, sum,
};

fn options(axis: i64, keepdims: bool) -> ReduceOptions {
    ReduceOptions { axis, keepdims }
}

fn run(op: ReduceOp, x: &Tensor, axis: i64, keepdims: bool) -> Result<Tensor, KernelError> {
    let spec = infer_reduce(op, x.view().desc(), options(axis, keepdims))?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    reduce(op, x.view(), options(axis, keepdims), &mut out.view_mut())?;
    Ok(out)
}

fn reference_shape(shape: &[i64], axis: usize, keepdims: bool) -> Vec<i64> {
    let mut out = shape.to_vec();
    if keepdims {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    out
}

fn random_float_tensor(rng: &mut Rng, dtype: DType, shape: &[i64]) -> Tensor {
    let values: Vec<f64> = (0..element_count(shape)).map(|_| rng.unit() * 4.0).collect();
    match dtype {
        DType::Float16 => {
            Tensor::from_vec(shape, values.iter().map(|&v| f16::from_f64(v)).collect())
        }
        DType::Float32 => Tensor::from_vec(shape, values.iter().map(|&v| v as f32).collect()),
        _ => Tensor::from_vec(shape, values),
    }
}

#[test]
fn float_reductions_match_reference_on_every_axis() {
    let mut rng = Rng::new(31);
    let shape = [3, 4, 5];
    for dtype in [DType::Float16, DType::Float32, DType::Float64] {
        let x = random_float_tensor(&mut rng, dtype, &shape);
        let values = x.to_f64s();
        let tolerance = if dtype == DType::Float16 { 1e-3 } else { 1e-6 };
        for axis in 0..3 {
            for keepdims in [false, true] {
                let sums = reference::reduce(&values, &shape, axis, 0.0, |a, v| a + v, |a, _| a);
                let means = reference::reduce(
                    &values,
                    &shape,
                    axis,
                    0.0,
                    |a, v| a + v,
                    |a, n| a / n as f64,
                );
                let maxima =
                    reference::reduce(&values, &shape, axis, f64::NEG_INFINITY, f64::max, |a, _| a);
                for (op, expected) in
                    [(ReduceOp::Sum, sums), (ReduceOp::Mean, means), (ReduceOp::Max, maxima)]
                {
                    let out = run(op, &x, axis as i64, keepdims).unwrap();
                    assert_eq!(out.shape, reference_shape(&shape, axis, keepdims), "{op:?}");
                    assert_close(&out.to_f64s(), &expected, tolerance, tolerance);
                }
            }
        }
    }
}

#[test]
fn integer_reductions_match_reference_on_every_axis() {
    let mut rng = Rng::new(32);
    let shape = [2, 3, 4];
    let values = rng.i64s(element_count(&shape), 1000);
    let x32 = Tensor::from_vec(&shape, values.iter().map(|&v| v as i32).collect());
    let x64 = Tensor::from_vec(&shape, values.clone());
    for axis in 0..3 {
        let sums = reference::reduce(&values, &shape, axis, 0i64, |a, v| a + v, |a, _| a);
        let maxima = reference::reduce(&values, &shape, axis, i64::MIN, i64::max, |a, _| a);
        for (op, expected) in [(ReduceOp::Sum, sums), (ReduceOp::Max, maxima)] {
            assert_eq!(run(op, &x64, axis as i64, false).unwrap().to_vec::<i64>(), expected);
            let expected32: Vec<i32> = expected.iter().map(|&v| v as i32).collect();
            assert_eq!(run(op, &x32, axis as i64, false).unwrap().to_vec::<i32>(), expected32);
        }
    }
}

#[test]
fn sum_over_rows_and_columns() {
    let x = Tensor::from_vec(&[2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut columns = Tensor::zeros(DType::Float32, &[3]);
    sum(x.view(), options(0, false), &mut columns.view_mut()).unwrap();
    assert_eq!(columns.to_vec::<f32>(), vec![5.0, 7.0, 9.0]);
    let mut rows = Tensor::zeros(DType::Float32, &[2]);
    sum(x.view(), options(1, false), &mut rows.view_mut()).unwrap();
    assert_eq!(rows.to_vec::<f32>(), vec![6.0, 15.0]);
}

#[test]
fn keepdims_keeps_reduced_axis_as_size_one() {
    let x = Tensor::from_vec(&[2, 3], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut out = Tensor::zeros(DType::Float64, &[2, 1]);
    mean(x.view(), options(1, true), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<f64>(), vec![2.0, 5.0]);
}

#[test]
fn negative_axis_counts_from_the_end() {
    let x = Tensor::from_vec(&[2, 3], vec![1i32, 9, 3, 4, 5, 6]);
    let mut out = Tensor::zeros(DType::Int32, &[2]);
    max(x.view(), options(-1, false), &mut out.view_mut()).unwrap();
    assert_eq!(out.to_vec::<i32>(), vec![9, 6]);
}

#[test]
fn reducing_the_only_axis_gives_a_scalar() {
    let x = Tensor::from_vec(&[4], vec![1i64, 2, 3, 4]);
    let out = run(ReduceOp::Sum, &x, 0, false).unwrap();
    assert_eq!(out.shape, Vec::<i64>::new());
    assert_eq!(out.to_vec::<i64>(), vec![10]);
}

#[test]
fn sum_of_empty_axis_is_zero() {
    let x = Tensor::zeros(DType::Float32, &[2, 0]);
    assert_eq!(run(ReduceOp::Sum, &x, 1, false).unwrap().to_vec::<f32>(), vec![0.0, 0.0]);
    let x = Tensor::zeros(DType::Int32, &[0, 3]);
    assert_eq!(run(ReduceOp::Sum, &x, 0, true).unwrap().to_vec::<i32>(), vec![0, 0, 0]);
}

#[test]
fn mean_of_empty_axis_is_nan() {
    let x = Tensor::zeros(DType::Float64, &[0, 2]);
    let out = run(ReduceOp::Mean, &x, 0, false).unwrap().to_vec::<f64>();
    assert!(out.len() == 2 && out.iter().all(|v| v.is_nan()));
}

#[test]
fn reducing_a_nonempty_axis_of_an_empty_tensor_gives_an_empty_output() {
    let x = Tensor::zeros(DType::Float32, &[3, 0]);
    let out = run(ReduceOp::Max, &x, 0, false).unwrap();
    assert_eq!(out.shape, vec![0]);
}

#[test]
fn max_rejects_empty_axis() {
    let x = Tensor::zeros(DType::Float32, &[2, 0]);
    let err = run(ReduceOp::Max, &x, 1, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "max: axis 1 of x with shape [2, 0] is empty, and max of an empty axis has no identity"
    );
}

#[test]
fn max_propagates_nan() {
    let x = Tensor::from_vec(&[3], vec![1.0f32, f32::NAN, 3.0]);
    assert!(run(ReduceOp::Max, &x, 0, false).unwrap().to_vec::<f32>()[0].is_nan());
}

#[test]
fn max_of_all_negative_infinity_is_negative_infinity() {
    let x = Tensor::from_vec(&[2], vec![f64::NEG_INFINITY; 2]);
    assert_eq!(run(ReduceOp::Max, &x, 0, false).unwrap().to_vec::<f64>(), vec![f64::NEG_INFINITY]);
}

#[test]
fn integer_sum_wraps_on_overflow() {
    let x = Tensor::from_vec(&[2], vec![i32::MAX, 1]);
    assert_eq!(run(ReduceOp::Sum, &x, 0, false).unwrap().to_vec::<i32>(), vec![i32::MIN]);
}

#[test]
fn float32_sum_accumulates_in_float64() {
    // Adding 1.0 to 1e8 one at a time in f32 would lose every 1.0.
    let mut values = vec![1e8f32];
    values.extend([1.0f32; 16]);
    let x = Tensor::from_vec(&[17], values);
    assert_eq!(run(ReduceOp::Sum, &x, 0, false).unwrap().to_vec::<f32>(), vec![100_000_016.0]);
}

#[test]
fn reduce_rejects_scalar_input() {
    let err = run(ReduceOp::Sum, &Tensor::scalar(1.0f32), 0, false).unwrap_err();
    assert_eq!(err.to_string(), "sum: axis 0 is out of range for x with shape [] (rank 0)");
}

#[test]
fn reduce_rejects_axis_out_of_range() {
    let x = Tensor::zeros(DType::Float32, &[2, 3]);
    for axis in [2, -3, i64::MAX, i64::MIN] {
        let err = run(ReduceOp::Sum, &x, axis, false).unwrap_err();
        assert!(matches!(err, KernelError::AxisOutOfRange { .. }), "{axis}");
    }
}

#[test]
fn mean_rejects_integers() {
    let err = run(ReduceOp::Mean, &Tensor::zeros(DType::Int32, &[2]), 0, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mean: x has dtype int32, which mean does not support (supported: float16, float32, float64)"
    );
}

#[test]
fn sum_rejects_unsupported_dtypes() {
    for dtype in [DType::UInt8, DType::Bool, DType::Int16] {
        let err = run(ReduceOp::Sum, &Tensor::zeros(dtype, &[2]), 0, false).unwrap_err();
        assert!(matches!(err, KernelError::UnsupportedDType { .. }), "{dtype}");
    }
}

#[test]
fn reduce_rejects_output_shape_without_keepdims() {
    let x = Tensor::zeros(DType::Float32, &[2, 3]);
    let mut out = Tensor::zeros(DType::Float32, &[2, 1]);
    let err = sum(x.view(), options(1, false), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "sum: out has shape [2, 1], expected [2]");
}

#[test]
fn reduce_rejects_wrong_output_dtype() {
    let x = Tensor::zeros(DType::Int32, &[2, 3]);
    let mut out = Tensor::zeros(DType::Int64, &[2]);
    let err = sum(x.view(), options(1, false), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "sum: out has dtype int64, expected int32");
}
