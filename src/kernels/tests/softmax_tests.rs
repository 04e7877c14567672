use half::f16;

use super::reference;
use super::{Rng, Tensor, assert_close, element_count};
use crate::kernels::{DType, KernelError, infer_softmax, softmax};

fn run(x: &Tensor) -> Result<Tensor, KernelError> {
    let spec = infer_softmax(x.view().desc())?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    softmax(x.view(), &mut out.view_mut())?;
    Ok(out)
}

#[test]
fn softmax_matches_reference_on_random_inputs() {
    let mut rng = Rng::new(21);
    for shape in [vec![5], vec![3, 7], vec![2, 3, 33], vec![1, 1]] {
        let values: Vec<f64> = (0..element_count(&shape)).map(|_| rng.unit() * 8.0).collect();
        let cases = [
            (Tensor::from_vec(&shape, values.iter().map(|&v| f16::from_f64(v)).collect()), 2e-3),
            (Tensor::from_vec(&shape, values.iter().map(|&v| v as f32).collect()), 1e-6),
            (Tensor::from_vec(&shape, values.clone()), 1e-14),
        ];
        for (x, tolerance) in cases {
            let out = run(&x).unwrap();
            let expected = reference::softmax(&x.to_f64s(), &shape);
            assert_close(&out.to_f64s(), &expected, tolerance, tolerance);
        }
    }
}

#[test]
fn softmax_rows_sum_to_one() {
    let x = Tensor::from_vec(&[2, 3], vec![1.0f64, 2.0, 3.0, -1.0, 0.0, 1.0]);
    let out = run(&x).unwrap().to_vec::<f64>();
    for row in out.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}

#[test]
fn softmax_is_stable_for_large_inputs() {
    let x = Tensor::from_vec(&[3], vec![1000.0f32, 1001.0, 1002.0]);
    let out = run(&x).unwrap().to_vec::<f32>();
    let expected = reference::softmax(&[0.0, 1.0, 2.0], &[3]);
    assert_close(&out.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), &expected, 1e-6, 1e-7);
}

#[test]
fn softmax_of_uniform_row_is_uniform() {
    let x = Tensor::from_vec(&[4], vec![f16::from_f32(-3.0); 4]);
    assert_eq!(run(&x).unwrap().to_vec::<f16>(), vec![f16::from_f32(0.25); 4]);
}

#[test]
fn softmax_works_over_last_axis_only() {
    let x = Tensor::from_vec(&[2, 2], vec![0.0f64, 0.0, 0.0, 100.0]);
    let out = run(&x).unwrap().to_vec::<f64>();
    assert_close(&out[..2], &[0.5, 0.5], 1e-15, 1e-15);
    assert!(out[3] > 0.999_999);
}

#[test]
fn softmax_row_with_nan_is_nan() {
    let x = Tensor::from_vec(&[2, 2], vec![1.0f32, f32::NAN, 1.0, 2.0]);
    let out = run(&x).unwrap().to_vec::<f32>();
    assert!(out[0].is_nan() && out[1].is_nan());
    assert!(!out[2].is_nan() && !out[3].is_nan());
}

#[test]
fn softmax_of_scalar_is_one() {
    let out = run(&Tensor::scalar(42.0f64)).unwrap();
    assert_eq!(out.shape, Vec::<i64>::new());
    assert_eq!(out.to_vec::<f64>(), vec![1.0]);
}

#[test]
fn softmax_of_empty_tensors_is_empty() {
    assert_eq!(run(&Tensor::zeros(DType::Float32, &[3, 0])).unwrap().shape, vec![3, 0]);
    assert_eq!(run(&Tensor::zeros(DType::Float32, &[0, 4])).unwrap().shape, vec![0, 4]);
}

#[test]
fn softmax_rejects_integers() {
    let err = run(&Tensor::zeros(DType::Int32, &[3])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "softmax: x has dtype int32, which softmax does not support (supported: float16, float32, float64)"
    );
}

#[test]
fn softmax_rejects_wrong_output_shape() {
    let x = Tensor::zeros(DType::Float32, &[2, 3]);
    let mut out = Tensor::zeros(DType::Float32, &[3, 2]);
    let err = softmax(x.view(), &mut out.view_mut()).unwrap_err();
    assert!(matches!(err, KernelError::ShapeMismatch { arg: "out", .. }));
}

#[test]
fn softmax_rejects_wrong_output_dtype() {
    let x = Tensor::zeros(DType::Float32, &[2]);
    let mut out = Tensor::zeros(DType::Float16, &[2]);
    let err = softmax(x.view(), &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "softmax: out has dtype float16, expected float32");
}

#[test]
fn softmax_row_of_negative_infinity_is_nan() {
    let x = Tensor::from_vec(&[2], vec![f64::NEG_INFINITY; 2]);
    assert!(run(&x).unwrap().to_vec::<f64>().iter().all(|v| v.is_nan()));
}

#[test]
fn softmax_of_empty_tensor_with_a_huge_last_axis_allocates_nothing() {
    let out = run(&Tensor::zeros(DType::Float32, &[0, 1 << 40])).unwrap();
    assert_eq!(out.shape, vec![0, 1 << 40]);
}
