use half::f16;

use super::Tensor;
use crate::kernels::{DType, KernelError, cast, infer_cast};

const CASTABLE: [DType; 5] =
    [DType::Int32, DType::Int64, DType::Float16, DType::Float32, DType::Float64];

fn run(x: &Tensor, to: DType) -> Result<Tensor, KernelError> {
    let spec = infer_cast(x.view().desc(), to)?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    cast(x.view(), &mut out.view_mut())?;
    Ok(out)
}

/// Small integers, exactly representable in every castable dtype.
fn small_integers(dtype: DType) -> Tensor {
    let values = [-3i32, 0, 7, 100];
    match dtype {
        DType::Int32 => Tensor::from_vec(&[2, 2], values.to_vec()),
        DType::Int64 => Tensor::from_vec(&[2, 2], values.iter().map(|&v| i64::from(v)).collect()),
        DType::Float16 => {
            Tensor::from_vec(&[2, 2], values.iter().map(|&v| f16::from_f32(v as f32)).collect())
        }
        DType::Float32 => Tensor::from_vec(&[2, 2], values.iter().map(|&v| v as f32).collect()),
        DType::Float64 => Tensor::from_vec(&[2, 2], values.iter().map(|&v| f64::from(v)).collect()),
        other => panic!("{other} is not castable"),
    }
}

#[test]
fn cast_preserves_exact_values_between_every_pair() {
    for from in CASTABLE {
        for to in CASTABLE {
            let out = run(&small_integers(from), to).unwrap();
            assert_eq!(out.dtype, to);
            assert_eq!(out.shape, vec![2, 2]);
            assert_eq!(out.to_f64s(), vec![-3.0, 0.0, 7.0, 100.0], "{from} -> {to}");
        }
    }
}

#[test]
fn float_to_int_truncates_toward_zero() {
    let x = Tensor::from_vec(&[4], vec![2.9f64, -2.9, 0.5, -0.5]);
    assert_eq!(run(&x, DType::Int32).unwrap().to_vec::<i32>(), vec![2, -2, 0, 0]);
}

#[test]
fn float_to_int_saturates_and_maps_nan_to_zero() {
    let x =
        Tensor::from_vec(&[5], vec![1e20f32, -1e20, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    assert_eq!(
        run(&x, DType::Int32).unwrap().to_vec::<i32>(),
        vec![i32::MAX, i32::MIN, i32::MAX, i32::MIN, 0]
    );
    assert_eq!(
        run(&x, DType::Int64).unwrap().to_vec::<i64>(),
        vec![i64::MAX, i64::MIN, i64::MAX, i64::MIN, 0]
    );
}

#[test]
fn float16_to_int_saturates_infinity() {
    let x = Tensor::from_vec(&[2], vec![f16::INFINITY, f16::from_f32(-65504.0)]);
    assert_eq!(run(&x, DType::Int32).unwrap().to_vec::<i32>(), vec![i32::MAX, -65504]);
}

#[test]
fn int64_to_int32_wraps() {
    let x = Tensor::from_vec(&[2], vec![(1i64 << 32) + 5, -1]);
    assert_eq!(run(&x, DType::Int32).unwrap().to_vec::<i32>(), vec![5, -1]);
}

#[test]
fn large_values_overflow_to_infinity_in_float16() {
    let x = Tensor::from_vec(&[3], vec![70000i32, -70000, 65504]);
    assert_eq!(
        run(&x, DType::Float16).unwrap().to_vec::<f16>(),
        vec![f16::INFINITY, f16::NEG_INFINITY, f16::MAX]
    );
}

#[test]
fn float64_to_float32_rounds_to_nearest() {
    let x = Tensor::from_vec(&[2], vec![0.1f64, 1e300]);
    assert_eq!(run(&x, DType::Float32).unwrap().to_vec::<f32>(), vec![0.1f32, f32::INFINITY]);
}

#[test]
fn int_to_float16_rounds_once() {
    // 2049 is halfway between the float16 neighbours 2048 and 2050 and
    // rounds to even (2048); 2051 rounds up to 2052.
    let x = Tensor::from_vec(&[2], vec![2049i64, 2051]);
    assert_eq!(run(&x, DType::Float16).unwrap().to_f64s(), vec![2048.0, 2052.0]);
}

#[test]
fn cast_of_scalar_and_empty_tensor() {
    assert_eq!(run(&Tensor::scalar(2.5f32), DType::Int64).unwrap().to_vec::<i64>(), vec![2]);
    let out = run(&Tensor::zeros(DType::Int32, &[0, 5]), DType::Float64).unwrap();
    assert_eq!(out.shape, vec![0, 5]);
}

#[test]
fn cast_rejects_unsupported_source_dtype() {
    let err = run(&Tensor::zeros(DType::UInt8, &[2]), DType::Float32).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cast: x has dtype uint8, which cast does not support (supported: int32, int64, float16, float32, float64)"
    );
}

#[test]
fn cast_rejects_unsupported_target_dtype() {
    let err = run(&Tensor::zeros(DType::Float32, &[2]), DType::Bool).unwrap_err();
    assert!(matches!(err, KernelError::UnsupportedDType { arg: "out", .. }));
}

#[test]
fn cast_rejects_wrong_output_shape() {
    let x = Tensor::zeros(DType::Float32, &[2, 2]);
    let mut out = Tensor::zeros(DType::Int32, &[4]);
    let err = cast(x.view(), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "cast: out has shape [4], expected [2, 2]");
}
