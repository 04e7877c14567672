use super::reference;
use super::{Rng, Tensor, assert_close, element_count};
use crate::kernels::{
    DType, GemmBackend, KernelError, MatmulOptions, infer_matmul, matmul, matmul_with_backend,
};

const NO_TRANSPOSE: MatmulOptions = MatmulOptions { transpose_a: false, transpose_b: false };

/// Infers the output, allocates it and runs matmul with `backend`.
fn run(
    a: &Tensor,
    b: &Tensor,
    options: MatmulOptions,
    backend: GemmBackend,
) -> Result<Tensor, KernelError> {
    let spec = infer_matmul(a.view().desc(), b.view().desc(), options)?;
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    matmul_with_backend(a.view(), b.view(), &mut out.view_mut(), options, backend)?;
    Ok(out)
}

fn random_tensor(rng: &mut Rng, dtype: DType, shape: &[i64]) -> Tensor {
    let count = element_count(shape);
    match dtype {
        DType::Float32 => Tensor::from_vec(shape, rng.f32s(count)),
        DType::Float64 => Tensor::from_vec(shape, rng.f64s(count)),
        other => panic!("no random {other} tensors"),
    }
}

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::Float32 { 1e-5 } else { 1e-12 }
}

/// Checks matmul of random operands of the given shapes against the
/// reference, for both dtypes and every backend.
fn check_against_reference(a_shape: &[i64], b_shape: &[i64], options: MatmulOptions) {
    let mut rng = Rng::new(element_count(a_shape) as u64 * 31 + element_count(b_shape) as u64);
    for dtype in [DType::Float32, DType::Float64] {
        let a = random_tensor(&mut rng, dtype, a_shape);
        let b = random_tensor(&mut rng, dtype, b_shape);
        let (expected, expected_shape) = reference::matmul(
            &a.to_f64s(),
            a_shape,
            &b.to_f64s(),
            b_shape,
            options.transpose_a,
            options.transpose_b,
        );
        for &backend in GemmBackend::available() {
            let out = run(&a, &b, options, backend).unwrap();
            assert_eq!(out.shape, expected_shape, "{backend} {dtype}");
            assert_close(&out.to_f64s(), &expected, tolerance(dtype), tolerance(dtype));
        }
    }
}

#[test]
fn matmul_multiplies_fixed_two_by_three_and_three_by_two() {
    let a = Tensor::from_vec(&[2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = Tensor::from_vec(&[3, 2], vec![7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let mut out = Tensor::zeros(DType::Float32, &[2, 2]);
    matmul(a.view(), b.view(), &mut out.view_mut(), NO_TRANSPOSE).unwrap();
    assert_eq!(out.to_vec::<f32>(), vec![58.0, 64.0, 139.0, 154.0]);
}

#[test]
fn matmul_matches_reference_on_non_square_shapes() {
    check_against_reference(&[7, 13], &[13, 5], NO_TRANSPOSE);
    check_against_reference(&[1, 64], &[64, 1], NO_TRANSPOSE);
    check_against_reference(&[65, 3], &[3, 129], NO_TRANSPOSE);
}

#[test]
fn matmul_matches_reference_on_random_shapes() {
    let mut rng = Rng::new(7);
    for _ in 0..20 {
        let (m, k, n) =
            (rng.below(40) as i64 + 1, rng.below(40) as i64 + 1, rng.below(40) as i64 + 1);
        check_against_reference(&[m, k], &[k, n], NO_TRANSPOSE);
    }
}

#[test]
fn matmul_matches_reference_on_a_large_matrix() {
    // Large enough for both backends to use their threaded, packed paths.
    check_against_reference(&[130, 257], &[257, 190], NO_TRANSPOSE);
}

#[test]
fn matmul_transposes_a() {
    let options = MatmulOptions { transpose_a: true, transpose_b: false };
    check_against_reference(&[6, 4], &[6, 3], options);
}

#[test]
fn matmul_transposes_b() {
    let options = MatmulOptions { transpose_a: false, transpose_b: true };
    check_against_reference(&[4, 6], &[3, 6], options);
}

#[test]
fn matmul_transposes_both_operands() {
    let options = MatmulOptions { transpose_a: true, transpose_b: true };
    check_against_reference(&[6, 4], &[3, 6], options);
    check_against_reference(&[2, 9, 5], &[2, 7, 9], options);
}

#[test]
fn matmul_transpose_a_gives_known_result() {
    // aᵀ with a = [[1, 2], [3, 4], [5, 6]] is [[1, 3, 5], [2, 4, 6]].
    let a = Tensor::from_vec(&[3, 2], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = Tensor::from_vec(&[3, 1], vec![1.0f64, 1.0, 1.0]);
    let options = MatmulOptions { transpose_a: true, transpose_b: false };
    let out = run(&a, &b, options, GemmBackend::default()).unwrap();
    assert_eq!(out.shape, vec![2, 1]);
    assert_eq!(out.to_vec::<f64>(), vec![9.0, 12.0]);
}

#[test]
fn matmul_batches_over_leading_dims() {
    check_against_reference(&[3, 4, 5], &[3, 5, 2], NO_TRANSPOSE);
    check_against_reference(&[2, 3, 4, 5], &[2, 3, 5, 6], NO_TRANSPOSE);
}

#[test]
fn matmul_broadcasts_batch_dims() {
    check_against_reference(&[2, 1, 3, 4], &[5, 4, 6], NO_TRANSPOSE);
    check_against_reference(&[1, 3, 4], &[4, 3, 4, 2], NO_TRANSPOSE);
}

#[test]
fn matmul_broadcasts_a_single_matrix_over_a_batch() {
    check_against_reference(&[3, 4], &[5, 4, 2], NO_TRANSPOSE);
    check_against_reference(&[5, 3, 4], &[4, 2], NO_TRANSPOSE);
}

#[test]
fn matmul_with_zero_inner_dimension_gives_zeros() {
    let a = Tensor::zeros(DType::Float32, &[2, 0]);
    let b = Tensor::zeros(DType::Float32, &[0, 3]);
    for &backend in GemmBackend::available() {
        let out = run(&a, &b, NO_TRANSPOSE, backend).unwrap();
        assert_eq!(out.shape, vec![2, 3]);
        assert_eq!(out.to_vec::<f32>(), vec![0.0; 6]);
    }
}

#[test]
fn matmul_with_zero_rows_gives_empty_output() {
    let a = Tensor::zeros(DType::Float64, &[0, 4]);
    let b = Tensor::zeros(DType::Float64, &[4, 3]);
    let out = run(&a, &b, NO_TRANSPOSE, GemmBackend::default()).unwrap();
    assert_eq!(out.shape, vec![0, 3]);
}

#[test]
fn matmul_with_zero_batch_gives_empty_output() {
    let a = Tensor::zeros(DType::Float32, &[0, 2, 4]);
    let b = Tensor::zeros(DType::Float32, &[4, 3]);
    let out = run(&a, &b, NO_TRANSPOSE, GemmBackend::default()).unwrap();
    assert_eq!(out.shape, vec![0, 2, 3]);
}

#[test]
fn matmul_rejects_inner_dimension_mismatch() {
    let a = Tensor::zeros(DType::Float32, &[3, 4]);
    let b = Tensor::zeros(DType::Float32, &[5, 2]);
    let err = run(&a, &b, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul: a has shape [3, 4] but b has shape [5, 2]: inner dimensions 4 and 5 differ"
    );
}

#[test]
fn matmul_rejects_inner_dimension_mismatch_after_transpose() {
    let a = Tensor::zeros(DType::Float32, &[3, 4]);
    let b = Tensor::zeros(DType::Float32, &[4, 2]);
    let options = MatmulOptions { transpose_a: true, transpose_b: false };
    let err = run(&a, &b, options, GemmBackend::default()).unwrap_err();
    assert!(matches!(err, KernelError::InnerDimensionMismatch { a_inner: 3, b_inner: 4, .. }));
}

#[test]
fn matmul_rejects_one_dimensional_operands() {
    let a = Tensor::zeros(DType::Float32, &[4]);
    let b = Tensor::zeros(DType::Float32, &[4, 2]);
    let err = run(&a, &b, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul: a has shape [4] (rank 1), but matmul needs rank at least 2"
    );
    let err = run(&b, &a, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert!(matches!(err, KernelError::RankTooLow { arg: "b", .. }));
}

#[test]
fn matmul_rejects_scalars() {
    let a = Tensor::scalar(1.0f32);
    let err = run(&a, &a, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert!(matches!(err, KernelError::RankTooLow { .. }));
}

#[test]
fn matmul_rejects_integer_dtype() {
    let a = Tensor::zeros(DType::Int32, &[2, 2]);
    let err = run(&a, &a, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul: a has dtype int32, which matmul does not support (supported: float32, float64)"
    );
}

#[test]
fn matmul_rejects_float16() {
    let a = Tensor::zeros(DType::Float16, &[2, 2]);
    let err = run(&a, &a, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert!(matches!(err, KernelError::UnsupportedDType { .. }));
}

#[test]
fn matmul_rejects_mixed_dtypes() {
    let a = Tensor::zeros(DType::Float32, &[2, 2]);
    let b = Tensor::zeros(DType::Float64, &[2, 2]);
    let err = run(&a, &b, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert_eq!(err.to_string(), "matmul: b has dtype float64, expected float32");
}

#[test]
fn matmul_rejects_incompatible_batch_dims() {
    let a = Tensor::zeros(DType::Float32, &[2, 3, 4]);
    let b = Tensor::zeros(DType::Float32, &[3, 4, 5]);
    let err = run(&a, &b, NO_TRANSPOSE, GemmBackend::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul: a has shape [2, 3, 4] and b has shape [3, 4, 5]: dimensions 2 and 3 cannot be broadcast together"
    );
}

#[test]
fn matmul_rejects_wrong_output_shape_and_leaves_it_untouched() {
    let a = Tensor::from_vec(&[2, 3], vec![1.0f32; 6]);
    let b = Tensor::from_vec(&[3, 2], vec![1.0f32; 6]);
    let mut out = Tensor::filled_with_byte(DType::Float32, &[2, 3], 0xAB);
    let err = matmul(a.view(), b.view(), &mut out.view_mut(), NO_TRANSPOSE).unwrap_err();
    assert_eq!(err.to_string(), "matmul: out has shape [2, 3], expected [2, 2]");
    assert!(out.bytes().iter().all(|&byte| byte == 0xAB));
}

#[test]
fn matmul_rejects_wrong_output_dtype() {
    let a = Tensor::zeros(DType::Float32, &[2, 2]);
    let mut out = Tensor::zeros(DType::Float64, &[2, 2]);
    let err = matmul(a.view(), a.view(), &mut out.view_mut(), NO_TRANSPOSE).unwrap_err();
    assert_eq!(err.to_string(), "matmul: out has dtype float64, expected float32");
}

#[cfg(not(feature = "gemm-crate"))]
#[test]
fn matmul_rejects_backend_not_compiled_in() {
    let a = Tensor::zeros(DType::Float32, &[2, 2]);
    let err = run(&a, &a, NO_TRANSPOSE, GemmBackend::GemmCrate).unwrap_err();
    assert!(matches!(err, KernelError::BackendUnavailable { .. }));
}

#[test]
fn infer_matmul_reports_shape_dtype_and_flops() {
    let a = Tensor::zeros(DType::Float64, &[4, 1, 8, 16]);
    let b = Tensor::zeros(DType::Float64, &[3, 16, 2]);
    let spec = infer_matmul(a.view().desc(), b.view().desc(), NO_TRANSPOSE).unwrap();
    assert_eq!(spec.dtype, DType::Float64);
    assert_eq!(spec.shape, vec![4, 3, 8, 2]);
    assert_eq!(spec.estimated_flops, 2 * 4 * 3 * 8 * 2 * 16);
}

#[test]
fn matmul_with_zero_rows_in_a_broadcast_batch_gives_empty_output() {
    let a = Tensor::zeros(DType::Float32, &[2, 2, 0, 1]);
    let b = Tensor::zeros(DType::Float32, &[2, 1, 1]);
    for &backend in GemmBackend::available() {
        let out = run(&a, &b, NO_TRANSPOSE, backend).unwrap();
        assert_eq!(out.shape, vec![2, 2, 0, 1]);
    }
}
