//! SGEMM through `matmul_with_backend` on square matrices, for each GEMM
//! backend compiled in.
//!
//! Criterion's throughput is set to the flop count (2·n³), so its
//! "elem/s" figure reads as flop/s; a plain GFLOP/s summary (the backends in
//! turn over five rounds, each keeping its best) is printed at the end as well.
//!
//! Run: `cargo bench --bench gemm_backends` (append
//! `-- --measurement-time 3` for a quicker run, or `-- summary-only`, a
//! filter no Criterion benchmark matches, for the summary alone).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tensor_rpc::kernels::{
    DType, GemmBackend, MatmulOptions, TensorView, TensorViewMut, matmul_with_backend,
};

const SIZES: [usize; 3] = [256, 1024, 2048];

/// Square f32 operands and output buffer for an `n × n` SGEMM.
struct Problem {
    shape: [i64; 2],
    a: Vec<f32>,
    b: Vec<f32>,
    out: Vec<f32>,
}

impl Problem {
    fn new(n: usize) -> Problem {
        // Deterministic, non-trivial values; the exact numbers do not matter.
        let values = |seed: usize| {
            (0..n * n)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5)
                .collect::<Vec<f32>>()
        };
        Problem { shape: [n as i64, n as i64], a: values(1), b: values(2), out: vec![0.0; n * n] }
    }

    fn run(&mut self, backend: GemmBackend) {
        let a =
            TensorView::new(DType::Float32, &self.shape, bytemuck::cast_slice(&self.a)).unwrap();
        let b =
            TensorView::new(DType::Float32, &self.shape, bytemuck::cast_slice(&self.b)).unwrap();
        let mut out = TensorViewMut::new(
            DType::Float32,
            &self.shape,
            bytemuck::cast_slice_mut(&mut self.out),
        )
        .unwrap();
        matmul_with_backend(a, b, &mut out, MatmulOptions::default(), backend).unwrap();
        black_box(&self.out);
    }
}

fn flops(n: usize) -> u64 {
    2 * (n as u64).pow(3)
}

fn bench_sgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(10);
    for n in SIZES {
        let mut problem = Problem::new(n);
        group.throughput(Throughput::Elements(flops(n)));
        for &backend in GemmBackend::available() {
            group.bench_function(BenchmarkId::new(backend.name(), n), |bencher| {
                bencher.iter(|| problem.run(backend));
            });
        }
    }
    group.finish();
}

/// Best GFLOP/s of a few timed runs after one warm-up run. The best run is
/// the better estimate on a machine shared with other work.
fn best_gflops(problem: &mut Problem, n: usize, backend: GemmBackend) -> f64 {
    problem.run(backend);
    let runs = if n >= 2048 { 3 } else { 10 };
    let best = (0..runs)
        .map(|_| {
            let start = Instant::now();
            problem.run(backend);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    flops(n) as f64 / best / 1e9
}

/// The backends measured in turn, round after round, each keeping its best
/// round: this machine's speed drifts by tens of percent from minute to
/// minute, so only figures taken close together compare.
fn print_gflops_summary() {
    const ROUNDS: usize = 5;
    println!("\nSGEMM GFLOP/s (best of {ROUNDS} rounds, backends in turn):");
    for n in SIZES {
        let mut problem = Problem::new(n);
        let backends = GemmBackend::available();
        let mut best = vec![0.0f64; backends.len()];
        for _ in 0..ROUNDS {
            for (slot, &backend) in best.iter_mut().zip(backends) {
                *slot = slot.max(best_gflops(&mut problem, n, backend));
            }
        }
        for (&backend, gflops) in backends.iter().zip(&best) {
            let ratio = gflops / best[0];
            println!(
                "  n = {n:>4}  {:<15} {gflops:>6.1} GFLOP/s  ({ratio:.2}× {})",
                backend.name(),
                backends[0].name()
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_sgemm
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_gflops_summary();
}
