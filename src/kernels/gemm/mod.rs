//! Single-matrix GEMM (`c = a · b`) behind one small interface, with three
//! interchangeable backends:
//!
//! * BLIS: the default, compiled in with the default cargo feature `blis`.
//!   Large products run on BLIS's own threads, the rest on the pool's row
//!   bands. It measured fastest here (see `blis_backend`);
//! * `matrixmultiply` (sgemm/dgemm): portable, always compiled in. Its
//!   single-threaded kernels run on row bands of `c`, one per core of a
//!   shared pool (see `pool`);
//! * the pure-Rust `gemm` crate with rayon parallelism, compiled in with the
//!   default cargo feature `gemm-crate`. It measured slower here, both alone
//!   and through the RPC.
//!
//! Every backend receives a `GemmProblem`, whose constructor proves that every
//! element the backend will touch lies inside the slices; that is what makes
//! their raw-pointer calls sound.

#[cfg(feature = "blis")]
mod blis_backend;
#[cfg(feature = "gemm-crate")]
mod gemm_crate_backend;
mod matrixmultiply_backend;
pub(crate) mod pool;

use std::fmt;

use crate::kernels::element::Element;
use crate::kernels::error::KernelError;

/// Which GEMM implementation `matmul` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmBackend {
    /// BLIS: large products on BLIS's threads, the rest on row bands across
    /// the cores (needs cargo feature `blis`, on by default).
    Blis,
    /// The `matrixmultiply` crate's kernels on row bands across the cores
    /// (portable; always available).
    MatrixMultiply,
    /// The `gemm` crate with rayon parallelism (needs cargo feature
    /// `gemm-crate`, on by default).
    GemmCrate,
}

impl GemmBackend {
    /// Every backend, compiled in or not.
    pub const ALL: [GemmBackend; 3] =
        [GemmBackend::Blis, GemmBackend::GemmCrate, GemmBackend::MatrixMultiply];

    /// Every backend compiled into this build.
    pub fn available() -> &'static [GemmBackend] {
        match (cfg!(feature = "blis"), cfg!(feature = "gemm-crate")) {
            (true, true) => {
                &[GemmBackend::Blis, GemmBackend::GemmCrate, GemmBackend::MatrixMultiply]
            }
            (true, false) => &[GemmBackend::Blis, GemmBackend::MatrixMultiply],
            (false, true) => &[GemmBackend::GemmCrate, GemmBackend::MatrixMultiply],
            (false, false) => &[GemmBackend::MatrixMultiply],
        }
    }

    /// The backend named `name` (as `name()` spells it), compiled in or not.
    pub fn from_name(name: &str) -> Option<GemmBackend> {
        Self::ALL.into_iter().find(|backend| backend.name() == name)
    }

    /// The cargo feature that compiles this backend in (`None`: always in).
    pub const fn cargo_feature(self) -> Option<&'static str> {
        match self {
            GemmBackend::Blis => Some("blis"),
            GemmBackend::GemmCrate => Some("gemm-crate"),
            GemmBackend::MatrixMultiply => None,
        }
    }

    /// Whether this backend is compiled into this build.
    pub fn is_available(self) -> bool {
        Self::available().contains(&self)
    }

    pub const fn name(self) -> &'static str {
        match self {
            GemmBackend::Blis => "blis",
            GemmBackend::MatrixMultiply => "matrixmultiply",
            GemmBackend::GemmCrate => "gemm-crate",
        }
    }
}

impl Default for GemmBackend {
    /// BLIS where it is compiled in: measured fastest on the 2-core machine, in process
    /// (0.96–0.98× numpy at 1024–2048 f32, against 0.88× for matrixmultiply on row bands)
    /// and through the RPC (bench/run.py). Otherwise matrixmultiply, which measured faster
    /// than the gemm crate (single-threaded 65–70 vs 51 GFLOP/s f32 at 1024–2048).
    /// `--gemm-backend` selects another.
    fn default() -> Self {
        if cfg!(feature = "blis") { GemmBackend::Blis } else { GemmBackend::MatrixMultiply }
    }
}

impl fmt::Display for GemmBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A read-only strided matrix: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

// A view is copyable whatever `T` is (derive would demand `T: Copy`).
impl<T> Clone for MatRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MatRef<'_, T> {}

impl<T> MatRef<'_, T> {
    /// The first element's address and the row and column strides, as the
    /// backends' C-style interfaces take them. Only meaningful once
    /// `GemmProblem::new` has checked the bounds and that the strides fit in
    /// `isize`.
    fn raw_parts(&self) -> (*const T, isize, isize) {
        (self.data.as_ptr(), self.row_stride as isize, self.col_stride as isize)
    }

    /// Whether every element lies inside `data`, and every stride and
    /// offset fits in `isize` (the backends take signed strides).
    fn is_in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c));
        let strides_fit =
            isize::try_from(self.row_stride).is_ok() && isize::try_from(self.col_stride).is_ok();
        matches!(last, Some(last) if last < self.data.len()) && strides_fit
    }
}

/// `c = a · b` with `a` of `m × k`, `b` of `k × n` and `c` a compact
/// row-major `m × n` slice — checked, so backends may trust it. All of
/// `m`, `n` and `k` are at least 1.
pub(crate) struct GemmProblem<'a, T> {
    a: MatRef<'a, T>,
    b: MatRef<'a, T>,
    c: &'a mut [T],
}

impl<'a, T> GemmProblem<'a, T> {
    fn new(a: MatRef<'a, T>, b: MatRef<'a, T>, c: &'a mut [T]) -> Option<Self> {
        let shapes_agree = a.cols == b.rows
            && a.rows.checked_mul(b.cols) == Some(c.len())
            && isize::try_from(b.cols).is_ok();
        let non_empty = a.rows > 0 && a.cols > 0 && b.cols > 0;
        (shapes_agree && non_empty && a.is_in_bounds() && b.is_in_bounds()).then_some(GemmProblem {
            a,
            b,
            c,
        })
    }

    fn m(&self) -> usize {
        self.a.rows
    }

    fn k(&self) -> usize {
        self.a.cols
    }

    fn n(&self) -> usize {
        self.b.cols
    }
}

/// One GEMM implementation.
pub(crate) trait GemmKernel {
    fn sgemm(problem: GemmProblem<'_, f32>);
    fn dgemm(problem: GemmProblem<'_, f64>);
}

/// The element types GEMM is defined for (f32, f64), routing each to the
/// kernel's sgemm or dgemm; `ONE` and `ZERO` are the alpha and beta every
/// backend is called with (`c = 1 · a · b + 0 · c`).
pub(crate) trait GemmElement: Element {
    const ONE: Self;
    const ZERO: Self;
    fn run<K: GemmKernel>(problem: GemmProblem<'_, Self>);
}

impl GemmElement for f32 {
    const ONE: f32 = 1.0;
    const ZERO: f32 = 0.0;
    fn run<K: GemmKernel>(problem: GemmProblem<'_, Self>) {
        K::sgemm(problem);
    }
}

impl GemmElement for f64 {
    const ONE: f64 = 1.0;
    const ZERO: f64 = 0.0;
    fn run<K: GemmKernel>(problem: GemmProblem<'_, Self>) {
        K::dgemm(problem);
    }
}

/// Computes `c = a · b` (overwriting `c`) with `backend`. Empty `m`/`n` is a
/// no-op and `k == 0` gives zeros, so backends never see degenerate sizes.
pub(crate) fn gemm<T: GemmElement + Default>(
    backend: GemmBackend,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
) -> Result<(), KernelError> {
    if !backend.is_available() {
        return Err(KernelError::BackendUnavailable { backend });
    }
    let shapes_agree = a.cols == b.rows && a.rows.checked_mul(b.cols) == Some(c.len());
    if !shapes_agree {
        return Err(KernelError::Internal { op: "matmul", detail: "gemm operand sizes disagree" });
    }
    if c.is_empty() {
        return Ok(());
    }
    if a.cols == 0 {
        c.fill(T::default());
        return Ok(());
    }
    let problem = GemmProblem::new(a, b, c)
        .ok_or(KernelError::Internal { op: "matmul", detail: "gemm operand out of bounds" })?;
    match backend {
        #[cfg(feature = "blis")]
        GemmBackend::Blis => blis_backend::run(problem),
        #[cfg(not(feature = "blis"))]
        GemmBackend::Blis => Err(KernelError::BackendUnavailable { backend }),
        GemmBackend::MatrixMultiply => {
            pool::run_in_row_bands::<T, matrixmultiply_backend::MatrixMultiplyKernel>(problem)
        }
        #[cfg(feature = "gemm-crate")]
        GemmBackend::GemmCrate => {
            pool::install(|| T::run::<gemm_crate_backend::GemmCrateKernel>(problem));
            Ok(())
        }
        #[cfg(not(feature = "gemm-crate"))]
        GemmBackend::GemmCrate => Err(KernelError::BackendUnavailable { backend }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_major(data: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    #[test]
    fn default_backend_is_available() {
        assert!(GemmBackend::default().is_available());
    }

    #[cfg(feature = "blis")]
    #[test]
    fn default_backend_is_blis_the_fastest_one_measured() {
        assert_eq!(GemmBackend::default(), GemmBackend::Blis);
    }

    #[cfg(not(feature = "blis"))]
    #[test]
    fn default_backend_without_blis_is_matrixmultiply_faster_than_the_gemm_crate() {
        assert_eq!(GemmBackend::default(), GemmBackend::MatrixMultiply);
    }

    #[test]
    fn every_backend_is_found_by_its_name() {
        for backend in GemmBackend::ALL {
            assert_eq!(GemmBackend::from_name(backend.name()), Some(backend));
        }
        assert_eq!(GemmBackend::from_name("openblas"), None);
    }

    #[cfg(not(feature = "gemm-crate"))]
    #[test]
    fn gemm_crate_backend_is_reported_unavailable_without_its_feature() {
        let mut c = [0.0f64; 1];
        let a = [1.0];
        let err = gemm(GemmBackend::GemmCrate, row_major(&a, 1, 1), row_major(&a, 1, 1), &mut c)
            .unwrap_err();
        assert!(matches!(err, KernelError::BackendUnavailable { .. }));
    }

    #[test]
    fn every_backend_multiplies_two_by_two() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        for &backend in GemmBackend::available() {
            let mut c = [0.0; 4];
            gemm(backend, row_major(&a, 2, 2), row_major(&b, 2, 2), &mut c).unwrap();
            assert_eq!(c, [19.0, 22.0, 43.0, 50.0], "{backend}");
        }
    }

    #[test]
    fn zero_inner_dimension_gives_zeros() {
        for &backend in GemmBackend::available() {
            let mut c = [9.0; 6];
            gemm(backend, row_major(&[], 2, 0), row_major(&[], 0, 3), &mut c).unwrap();
            assert_eq!(c, [0.0; 6], "{backend}");
        }
    }

    #[test]
    fn out_of_bounds_operand_is_an_error_not_a_read() {
        let a = [1.0, 2.0];
        let mut c = [0.0; 4];
        let err =
            gemm(GemmBackend::MatrixMultiply, row_major(&a, 2, 2), row_major(&a, 2, 2), &mut c)
                .unwrap_err();
        assert!(matches!(err, KernelError::Internal { .. }));
    }

    #[test]
    fn mismatched_output_length_is_an_error() {
        let a = [1.0; 4];
        let mut c = [0.0; 3];
        let err =
            gemm(GemmBackend::MatrixMultiply, row_major(&a, 2, 2), row_major(&a, 2, 2), &mut c)
                .unwrap_err();
        assert!(matches!(err, KernelError::Internal { .. }));
    }
}
