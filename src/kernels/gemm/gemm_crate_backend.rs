//! GEMM through the pure-Rust `gemm` crate, parallelised on the rayon pool
//! it is called in, the shared GEMM pool (`Parallelism::Rayon(0)` = as many
//! threads as that pool has). The crate itself falls back to one thread below
//! its size threshold.

use gemm::Parallelism;

use crate::kernels::gemm::{GemmElement, GemmKernel, GemmProblem};

pub(crate) struct GemmCrateKernel;

/// Let the crate use every thread of the pool it runs in.
const PARALLELISM: Parallelism = Parallelism::Rayon(0);

/// The element types this backend hands to the `gemm` crate (which panics on others).
trait GemmCrateElement: GemmElement {
    const ONE: Self;
    const ZERO: Self;
}

impl GemmCrateElement for f32 {
    const ONE: f32 = 1.0;
    const ZERO: f32 = 0.0;
}

impl GemmCrateElement for f64 {
    const ONE: f64 = 1.0;
    const ZERO: f64 = 0.0;
}

impl GemmKernel for GemmCrateKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        gemm(problem);
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        gemm(problem);
    }
}

fn gemm<T: GemmCrateElement>(problem: GemmProblem<'_, T>) {
    let (m, k, n) = (problem.m(), problem.k(), problem.n());
    let (a, b) = (problem.a, problem.b);
    // SAFETY: `GemmProblem::new` checked that m, k, n >= 1, that every
    // element (i, j) of `a` (m × k) and `b` (k × n) at the given strides
    // lies inside its slice, that every stride fits in isize, and that
    // `c` holds exactly m × n elements, so the destination strides
    // (row n, column 1) stay inside `c`. `c` is a unique borrow, so it
    // cannot alias `a` or `b`. `read_dst = false`: `c` is only written.
    // T is f32 or f64 (`GemmCrateElement`), types `gemm::gemm` supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            problem.c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            PARALLELISM,
        );
    }
}
