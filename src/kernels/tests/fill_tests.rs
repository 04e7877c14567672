use half::f16;

use super::Tensor;
use crate::kernels::{DType, fill, infer_fill};

fn filled(dtype: DType, shape: &[i64], value: f64) -> Tensor {
    let mut out = Tensor::filled_with_byte(dtype, shape, 0xAB);
    fill(&mut out.view_mut(), value).unwrap();
    out
}

#[test]
fn fill_sets_every_element_of_every_dtype() {
    for dtype in DType::ALL {
        let out = filled(dtype, &[2, 3], 1.0);
        let expected_one: Vec<u8> = match dtype {
            DType::Float16 => f16::ONE.to_ne_bytes().to_vec(),
            DType::Float32 => 1.0f32.to_ne_bytes().to_vec(),
            DType::Float64 => 1.0f64.to_ne_bytes().to_vec(),
            other => {
                let mut bytes = vec![0u8; other.size_bytes()];
                bytes[0] = 1; // little-endian one
                bytes
            }
        };
        for element in out.bytes().chunks(dtype.size_bytes()) {
            assert_eq!(element, expected_one.as_slice(), "{dtype}");
        }
    }
}

#[test]
fn fill_writes_floats_exactly() {
    assert_eq!(filled(DType::Float64, &[3], -0.1).to_vec::<f64>(), vec![-0.1; 3]);
    assert_eq!(filled(DType::Float32, &[2], 0.1).to_vec::<f32>(), vec![0.1f32; 2]);
    assert_eq!(filled(DType::Float16, &[2], 0.1).to_vec::<f16>(), vec![f16::from_f64(0.1); 2]);
}

#[test]
fn fill_truncates_toward_zero_for_integers() {
    assert_eq!(filled(DType::Int32, &[2], -2.7).to_vec::<i32>(), vec![-2, -2]);
    assert_eq!(filled(DType::UInt16, &[1], 3.9).to_vec::<u16>(), vec![3]);
}

#[test]
fn fill_saturates_out_of_range_integers() {
    assert_eq!(filled(DType::Int8, &[1], 1000.0).to_vec::<i8>(), vec![127]);
    assert_eq!(filled(DType::UInt8, &[1], -5.0).to_vec::<u8>(), vec![0]);
    assert_eq!(filled(DType::Int64, &[1], f64::INFINITY).to_vec::<i64>(), vec![i64::MAX]);
}

#[test]
fn fill_with_nan_gives_zero_for_integers_and_nan_for_floats() {
    assert_eq!(filled(DType::Int32, &[1], f64::NAN).to_vec::<i32>(), vec![0]);
    assert!(filled(DType::Float32, &[1], f64::NAN).to_vec::<f32>()[0].is_nan());
}

#[test]
fn fill_bool_is_true_for_nonzero() {
    assert_eq!(filled(DType::Bool, &[2], 0.0).bytes(), &[0, 0]);
    assert_eq!(filled(DType::Bool, &[2], -3.5).bytes(), &[1, 1]);
    assert_eq!(filled(DType::Bool, &[1], f64::NAN).bytes(), &[1]);
}

#[test]
fn fill_works_on_scalars_and_empty_tensors() {
    assert_eq!(filled(DType::Int64, &[], 9.0).to_vec::<i64>(), vec![9]);
    assert!(filled(DType::Float32, &[0, 4], 9.0).bytes().is_empty());
}

#[test]
fn infer_fill_accepts_every_dtype_and_keeps_shape() {
    for dtype in DType::ALL {
        let out = Tensor::zeros(dtype, &[4, 5]);
        let spec = infer_fill(out.view().desc()).unwrap();
        assert_eq!((spec.dtype, spec.shape, spec.estimated_flops), (dtype, vec![4, 5], 20));
    }
}
