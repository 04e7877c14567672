//! GEMM through the `matrixmultiply` crate, single-threaded (its `threading`
//! feature is off): `pool` runs one call per row band on each core.

use crate::kernels::gemm::{GemmElement, GemmKernel, GemmProblem};

pub(crate) struct MatrixMultiplyKernel;

/// matrixmultiply's gemm for one element type: `sgemm` or `dgemm`.
type MatrixMultiplyGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

/// The element types matrixmultiply multiplies: each with its typed gemm.
trait MatrixMultiplyElement: GemmElement {
    const GEMM: MatrixMultiplyGemm<Self>;
}

impl MatrixMultiplyElement for f32 {
    const GEMM: MatrixMultiplyGemm<f32> = matrixmultiply::sgemm;
}

impl MatrixMultiplyElement for f64 {
    const GEMM: MatrixMultiplyGemm<f64> = matrixmultiply::dgemm;
}

impl GemmKernel for MatrixMultiplyKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        gemm(problem);
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        gemm(problem);
    }
}

fn gemm<T: MatrixMultiplyElement>(problem: GemmProblem<'_, T>) {
    let (m, k, n) = (problem.m(), problem.k(), problem.n());
    let ((a, a_rows, a_cols), (b, b_rows, b_cols)) = (problem.a.raw_parts(), problem.b.raw_parts());
    // SAFETY: `GemmProblem::new` checked that m, k, n >= 1, that every
    // element (i, j) of `a` (m × k) and `b` (k × n) at the given strides
    // lies inside its slice, that every stride fits in isize, and that
    // `c` holds exactly m × n elements, so the compact row-major strides
    // (n, 1) stay inside `c`. `c` is a unique borrow, so it cannot alias
    // `a` or `b`. The slices come from aligned `&[T]`/`&mut [T]`. With
    // beta = 0, `c` is only written, never read. `T::GEMM` is
    // matrixmultiply's gemm for `T`.
    unsafe {
        (T::GEMM)(
            m,
            k,
            n,
            T::ONE,
            a,
            a_rows,
            a_cols,
            b,
            b_rows,
            b_cols,
            T::ZERO,
            problem.c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
