//! Every GEMM backend compiled in against each other and against the naive reference,
//! on shapes chosen by proptest.

use proptest::prelude::*;

use super::reference;
use super::{Rng, Tensor, assert_close};
use crate::kernels::{DType, GemmBackend, MatmulOptions, infer_matmul, matmul_with_backend};

#[derive(Debug, Clone)]
struct Case {
    dtype: DType,
    batch: Vec<i64>,
    m: i64,
    k: i64,
    n: i64,
    options: MatmulOptions,
    seed: u64,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(DType::Float32), Just(DType::Float64)],
        prop::collection::vec(1i64..4, 0..3),
        0i64..70,
        0i64..70,
        0i64..70,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(dtype, batch, m, k, n, transpose_a, transpose_b, seed)| Case {
            dtype,
            batch,
            m,
            k,
            n,
            options: MatmulOptions { transpose_a, transpose_b },
            seed,
        })
}

fn operand(rng: &mut Rng, dtype: DType, shape: &[i64]) -> Tensor {
    let count = shape.iter().map(|&d| d as usize).product();
    if dtype == DType::Float32 {
        Tensor::from_vec(shape, rng.f32s(count))
    } else {
        Tensor::from_vec(shape, rng.f64s(count))
    }
}

fn run(a: &Tensor, b: &Tensor, options: MatmulOptions, backend: GemmBackend) -> Tensor {
    let spec = infer_matmul(a.view().desc(), b.view().desc(), options).unwrap();
    let mut out = Tensor::filled_with_byte(spec.dtype, &spec.shape, 0xAB);
    matmul_with_backend(a.view(), b.view(), &mut out.view_mut(), options, backend).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gemm_backends_agree_with_each_other_and_the_reference(case in cases()) {
        let mut rng = Rng::new(case.seed);
        let matrix = |rows: i64, cols: i64, transposed: bool| {
            if transposed { [cols, rows] } else { [rows, cols] }
        };
        let mut a_shape = case.batch.clone();
        a_shape.extend(matrix(case.m, case.k, case.options.transpose_a));
        // b gets only the last batch dimension, to exercise broadcasting.
        let mut b_shape: Vec<i64> = case.batch.last().copied().into_iter().collect();
        b_shape.extend(matrix(case.k, case.n, case.options.transpose_b));
        let a = operand(&mut rng, case.dtype, &a_shape);
        let b = operand(&mut rng, case.dtype, &b_shape);
        let (expected, expected_shape) = reference::matmul(
            &a.to_f64s(), &a_shape, &b.to_f64s(), &b_shape,
            case.options.transpose_a, case.options.transpose_b,
        );
        let tolerance = if case.dtype == DType::Float32 { 1e-5 } else { 1e-12 };
        let results: Vec<Tensor> = GemmBackend::available()
            .iter()
            .map(|&backend| run(&a, &b, case.options, backend))
            .collect();
        for out in &results {
            prop_assert_eq!(&out.shape, &expected_shape);
            assert_close(&out.to_f64s(), &expected, tolerance, tolerance);
        }
        for pair in results.windows(2) {
            assert_close(&pair[0].to_f64s(), &pair[1].to_f64s(), tolerance, tolerance);
        }
    }
}

/// Large enough (m·n·k ≈ 1.5 M) that matrixmultiply splits it into row
/// bands across the GEMM pool's threads.
#[test]
fn gemm_backends_agree_on_a_product_split_into_row_bands() {
    agree_with_reference(DType::Float64, (150, 90, 110), 1e-12);
}

/// k = 600 spans three of matrixmultiply's blocks of k (256 steps) and
/// n = 2100 three of its blocks of columns (1024), so `c` is summed into
/// across blocks.
#[test]
fn gemm_backends_agree_on_a_product_of_several_cache_blocks() {
    agree_with_reference(DType::Float64, (13, 600, 2100), 1e-12);
    agree_with_reference(DType::Float32, (13, 600, 2100), 1e-4);
}

fn agree_with_reference(dtype: DType, (m, k, n): (i64, i64, i64), tolerance: f64) {
    let mut rng = Rng::new(7);
    for options in
        [MatmulOptions::default(), MatmulOptions { transpose_a: true, transpose_b: true }]
    {
        let a_shape = if options.transpose_a { [k, m] } else { [m, k] };
        let b_shape = if options.transpose_b { [n, k] } else { [k, n] };
        let a = operand(&mut rng, dtype, &a_shape);
        let b = operand(&mut rng, dtype, &b_shape);
        let (expected, _) = reference::matmul(
            &a.to_f64s(),
            &a_shape,
            &b.to_f64s(),
            &b_shape,
            options.transpose_a,
            options.transpose_b,
        );
        for &backend in GemmBackend::available() {
            let out = run(&a, &b, options, backend);
            assert_close(&out.to_f64s(), &expected, tolerance, tolerance);
        }
    }
}

#[cfg(all(feature = "blis", feature = "gemm-crate"))]
#[test]
fn all_three_backends_are_compiled_in_by_default() {
    assert_eq!(GemmBackend::available().len(), 3);
}
