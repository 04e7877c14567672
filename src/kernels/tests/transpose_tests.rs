use half::f16;

use super::reference;
use super::{Rng, Tensor, element_count};
use crate::kernels::{DType, KernelError, infer_transpose, transpose};

fn run(x: &Tensor, axis0: i64, axis1: i64) -> Result<Tensor, KernelError> {
    let spec = infer_transpose(x.view().desc(), axis0, axis1)?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    transpose(x.view(), axis0, axis1, &mut out.view_mut())?;
    Ok(out)
}

#[test]
fn transpose_swaps_matrix_axes() {
    let x = Tensor::from_vec(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
    let out = run(&x, 0, 1).unwrap();
    assert_eq!(out.shape, vec![3, 2]);
    assert_eq!(out.to_vec::<i32>(), vec![1, 4, 2, 5, 3, 6]);
}

#[test]
fn transpose_matches_reference_for_every_axis_pair() {
    let mut rng = Rng::new(41);
    for shape in [vec![2, 3, 4], vec![3, 1, 2, 5], vec![4, 2, 3, 2, 2]] {
        let values = rng.i64s(element_count(&shape), 1_000_000);
        let x = Tensor::from_vec(&shape, values.clone());
        for axis0 in 0..shape.len() {
            for axis1 in 0..shape.len() {
                let out = run(&x, axis0 as i64, axis1 as i64).unwrap();
                let mut expected_shape = shape.clone();
                expected_shape.swap(axis0, axis1);
                assert_eq!(out.shape, expected_shape);
                assert_eq!(
                    out.to_vec::<i64>(),
                    reference::swapaxes(&values, &shape, axis0, axis1),
                    "{shape:?} {axis0} {axis1}"
                );
            }
        }
    }
}

#[test]
fn transpose_moves_elements_of_every_size() {
    let shape = [3, 4, 2];
    let expected_order = reference::swapaxes(&(0..24).collect::<Vec<i64>>(), &shape, 0, 2);
    let check = |out: Tensor| {
        assert_eq!(out.to_f64s(), expected_order.iter().map(|&v| v as f64).collect::<Vec<_>>())
    };
    check(run(&Tensor::from_vec(&shape, (0..24).map(|v| v as f32).collect()), 0, 2).unwrap());
    check(
        run(&Tensor::from_vec(&shape, (0..24).map(|v| f16::from_f32(v as f32)).collect()), 0, 2)
            .unwrap(),
    );
    check(run(&Tensor::from_vec(&shape, (0..24).collect::<Vec<i32>>()), 0, 2).unwrap());
    let bools = Tensor::from_vec(&shape, (0..24u8).map(|v| v % 2).collect());
    let out = run(&Tensor { dtype: DType::Bool, ..bools }, 0, 2).unwrap();
    let expected: Vec<u8> = expected_order.iter().map(|&v| (v % 2) as u8).collect();
    assert_eq!(out.bytes(), expected.as_slice());
}

#[test]
fn transpose_accepts_negative_axes() {
    let x = Tensor::from_vec(&[2, 1, 3], (0..6).map(|v| v as f64).collect());
    let out = run(&x, -1, 0).unwrap();
    assert_eq!(out.shape, vec![3, 1, 2]);
    assert_eq!(out.to_vec::<f64>(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn transpose_of_an_axis_with_itself_copies() {
    let x = Tensor::from_vec(&[2, 2], vec![1u16, 2, 3, 4]);
    assert_eq!(run(&x, 1, -1).unwrap().to_vec::<u16>(), vec![1, 2, 3, 4]);
}

#[test]
fn transpose_of_empty_tensor_is_empty() {
    let out = run(&Tensor::zeros(DType::Float32, &[0, 3]), 0, 1).unwrap();
    assert_eq!(out.shape, vec![3, 0]);
}

#[test]
fn transpose_rejects_scalar() {
    let err = run(&Tensor::scalar(1.0f32), 0, 0).unwrap_err();
    assert_eq!(err.to_string(), "transpose: axis0 0 is out of range for x with shape [] (rank 0)");
}

#[test]
fn transpose_rejects_axis_out_of_range() {
    let x = Tensor::zeros(DType::Int8, &[2, 3]);
    let err = run(&x, 0, 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "transpose: axis1 2 is out of range for x with shape [2, 3] (rank 2)"
    );
    assert!(run(&x, -3, 1).is_err());
}

#[test]
fn transpose_rejects_unswapped_output_shape() {
    let x = Tensor::zeros(DType::Float32, &[2, 3]);
    let mut out = Tensor::zeros(DType::Float32, &[2, 3]);
    let err = transpose(x.view(), 0, 1, &mut out.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "transpose: out has shape [2, 3], expected [3, 2]");
}

#[test]
fn transpose_rejects_wrong_output_dtype() {
    let x = Tensor::zeros(DType::Float32, &[2, 3]);
    let mut out = Tensor::zeros(DType::Int32, &[3, 2]);
    let err = transpose(x.view(), 0, 1, &mut out.view_mut()).unwrap_err();
    assert!(matches!(err, KernelError::DTypeMismatch { .. }));
}

#[test]
fn transpose_of_empty_tensor_with_a_huge_dimension_returns_at_once() {
    let shape = [0, 1 << 40, 3];
    let x = Tensor::zeros(DType::Int8, &shape);
    let out = run(&x, 0, 1).unwrap();
    assert_eq!(out.shape, vec![1 << 40, 0, 3]);
}
