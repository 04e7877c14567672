//! Timings that chose MUL_MAT's strategies (`MAX_DOT_COLUMNS`): ignored,
//! run in release:
//! `cargo test --release --no-default-features --lib strided::tests::timing -- --ignored --nocapture`.

use std::time::Instant;

use super::{F16, F32, Tensor};
use crate::kernels::GemmBackend;
use crate::kernels::strided::ElementType;
use crate::kernels::strided::mul_mat::{dot, dot_portable, mul_mat_with_dot_columns};

/// Best of `rounds` runs, in milliseconds.
fn best_ms(rounds: usize, mut run: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn time_mul_mat(elem: ElementType, m: usize, k: usize, n: usize, dot_columns: usize) -> f64 {
    let src0 = Tensor::random(elem, [k, m, 1, 1], 1, 1.0);
    let src1 = Tensor::random(F32, [k, n, 1, 1], 2, 1.0);
    let mut dst = Tensor::poisoned(F32, [m, n, 1, 1]);
    let backend = GemmBackend::default();
    best_ms(3, || {
        mul_mat_with_dot_columns(
            src0.view(),
            src1.view(),
            &mut dst.view_mut(),
            backend,
            dot_columns,
        )
        .unwrap();
    })
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn mul_mat_strategy_timings() {
    let (m, k) = (4096, 4096);
    println!("MUL_MAT {m} x {k} weights, backend {}", GemmBackend::default());
    for elem in [F32, F16] {
        for n in [1, 2, 4, 8, 16, 32, 64] {
            let dot = time_mul_mat(elem, m, k, n, usize::MAX);
            let gemm = time_mul_mat(elem, m, k, n, 0);
            let gflops = |ms: f64| 2.0 * (m * k * n) as f64 / ms / 1e6;
            println!(
                "{elem} n {n:3}: dot {dot:8.2} ms ({:6.1} GFLOP/s)  gemm {gemm:8.2} ms ({:6.1} GFLOP/s)",
                gflops(dot),
                gflops(gemm)
            );
        }
    }
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn quantized_mul_mat_strategy_timings() {
    use crate::kernels::quant::BlockFormat;
    let threads = crate::kernels::gemm::pool::thread_count();
    println!("MUL_MAT block weights, backend {}, {threads} threads", GemmBackend::default());
    for format in [BlockFormat::Q4_0, BlockFormat::Q8_0, BlockFormat::Q4K, BlockFormat::Q6K] {
        for size in [4096, 1024] {
            for n in [1, 2, 4, 8, 16, 64] {
                let elem = ElementType::Quant(format);
                let dot = time_mul_mat(elem, size, size, n, usize::MAX);
                let gemm = time_mul_mat(elem, size, size, n, 0);
                let gflops = |ms: f64| 2.0 * (size * size * n) as f64 / ms / 1e6;
                println!(
                    "{format:6} {size}² n {n:3}: dot {dot:8.2} ms ({:6.1} GFLOP/s)  gemm {gemm:8.2} ms ({:6.1} GFLOP/s)",
                    gflops(dot),
                    gflops(gemm)
                );
            }
        }
    }
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn dot_product_timings() {
    // Two cached rows of 4096: compute alone, no memory traffic.
    let a: Vec<f32> = (0..4096).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..4096).map(|i| (i % 5) as f32 * 0.2).collect();
    let rounds = 20_000;
    for (name, f) in [("dispatched", dot as fn(&[f32], &[f32]) -> f32), ("portable", dot_portable)]
    {
        let ms = best_ms(5, || {
            let mut sum = 0.0;
            for _ in 0..rounds {
                sum += f(std::hint::black_box(&a), std::hint::black_box(&b));
            }
            std::hint::black_box(sum);
        });
        let gflops = 2.0 * 4096.0 * rounds as f64 / ms / 1e6;
        println!("dot {name:10}: {ms:7.2} ms, {gflops:5.1} GFLOP/s on one thread");
    }
}
