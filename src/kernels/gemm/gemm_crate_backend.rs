//! GEMM through the pure-Rust `gemm` crate, parallelised on the rayon pool
//! it is called in, the shared GEMM pool (`Parallelism::Rayon(0)` = as many
//! threads as that pool has). The crate itself falls back to one thread below
//! its size threshold.

use gemm::Parallelism;

use crate::kernels::gemm::{GemmKernel, GemmProblem};

pub(crate) struct GemmCrateKernel;

/// Let the crate use every thread of the pool it runs in.
const PARALLELISM: Parallelism = Parallelism::Rayon(0);

impl GemmKernel for GemmCrateKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        let (m, k, n) = (problem.m(), problem.k(), problem.n());
        let (a, b) = (problem.a, problem.b);
        // SAFETY: `GemmProblem::new` checked that m, k, n >= 1, that every
        // element (i, j) of `a` (m × k) and `b` (k × n) at the given strides
        // lies inside its slice, that every stride fits in isize, and that
        // `c` holds exactly m × n elements, so the destination strides
        // (row n, column 1) stay inside `c`. `c` is a unique borrow, so it
        // cannot alias `a` or `b`. `read_dst = false`: `c` is only written.
        // T = f32 is one of the types `gemm::gemm` supports (others panic).
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
                0.0,
                1.0,
                false,
                false,
                false,
                PARALLELISM,
            );
        }
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        let (m, k, n) = (problem.m(), problem.k(), problem.n());
        let (a, b) = (problem.a, problem.b);
        // SAFETY: as in `sgemm` above: bounds, strides and the size of `c`
        // were checked by `GemmProblem::new`, `c` is uniquely borrowed and
        // only written (`read_dst = false`), and f64 is a supported type.
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
                0.0,
                1.0,
                false,
                false,
                false,
                PARALLELISM,
            );
        }
    }
}
