//! GEMM through the pure-Rust `gemm` crate, parallelised on the rayon pool
//! it is called in, the shared GEMM pool (`Parallelism::Rayon(0)` = as many
//! threads as that pool has). The crate itself falls back to one thread below
//! its size threshold.

use gemm::Parallelism;

use crate::kernels::gemm::{GemmElement, GemmKernel, GemmProblem};

pub(crate) struct GemmCrateKernel;

/// Let the crate use every thread of the pool it runs in.
const PARALLELISM: Parallelism = Parallelism::Rayon(0);

impl GemmKernel for GemmCrateKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        gemm(problem);
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        gemm(problem);
    }
}

fn gemm<T: GemmElement>(problem: GemmProblem<'_, T>) {
    let (m, k, n) = (problem.m(), problem.k(), problem.n());
    let ((a, a_rows, a_cols), (b, b_rows, b_cols)) = (problem.a.raw_parts(), problem.b.raw_parts());
    // SAFETY: `GemmProblem::new` checked that m, k, n >= 1, that every
    // element (i, j) of `a` (m × k) and `b` (k × n) at the given strides
    // lies inside its slice, that every stride fits in isize, and that
    // `c` holds exactly m × n elements, so the destination strides
    // (row n, column 1) stay inside `c`. `c` is a unique borrow, so it
    // cannot alias `a` or `b`. `read_dst = false`: `c` is only written.
    // T is f32 or f64 (the `GemmElement`s), types `gemm::gemm` supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            problem.c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a,
            a_cols,
            a_rows,
            b,
            b_cols,
            b_rows,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            PARALLELISM,
        );
    }
}
