//! GEMM through the `matrixmultiply` crate, single-threaded (its `threading`
//! feature is off): `pool` runs one call per row band on each core.

use crate::kernels::gemm::{GemmKernel, GemmProblem};

pub(crate) struct MatrixMultiplyKernel;

impl GemmKernel for MatrixMultiplyKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        let (m, k, n) = (problem.m(), problem.k(), problem.n());
        let (a, b) = (problem.a, problem.b);
        // SAFETY: `GemmProblem::new` checked that m, k, n >= 1, that every
        // element (i, j) of `a` (m × k) and `b` (k × n) at the given strides
        // lies inside its slice, that every stride fits in isize, and that
        // `c` holds exactly m × n elements, so the compact row-major strides
        // (n, 1) stay inside `c`. `c` is a unique borrow, so it cannot alias
        // `a` or `b`. The slices come from aligned `&[f32]`/`&mut [f32]`.
        // With beta = 0, `c` is only written, never read.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.data.as_ptr(),
                a.row_stride as isize,
                a.col_stride as isize,
                b.data.as_ptr(),
                b.row_stride as isize,
                b.col_stride as isize,
                0.0,
                problem.c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        let (m, k, n) = (problem.m(), problem.k(), problem.n());
        let (a, b) = (problem.a, problem.b);
        // SAFETY: as in `sgemm` above: bounds, strides and the size of `c`
        // were checked by `GemmProblem::new`, `c` is uniquely borrowed, and
        // beta = 0 means `c` is only written.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.data.as_ptr(),
                a.row_stride as isize,
                a.col_stride as isize,
                b.data.as_ptr(),
                b.row_stride as isize,
                b.col_stride as isize,
                0.0,
                problem.c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
}
