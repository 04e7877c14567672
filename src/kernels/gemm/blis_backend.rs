//! GEMM through BLIS (the `blis-src` crate builds BLIS 1.0 from its bundled
//! source and links it statically; on x86-64 with every kernel set and
//! run-time CPU dispatch).
//!
//! BLIS can thread a product itself: its threads share one packed block of
//! `b` and split the rows of `c` between them. On the 2-core machine that
//! measured 0.96–0.98× numpy (OpenBLAS) at 1024–2048 f32, in process, where
//! BLIS's serial kernel on our row bands measured 0.91–0.92× and
//! matrixmultiply's 0.88× (README, "Benchmarks"). But BLIS starts its
//! threads per product and they are not our pinned pool threads (they
//! inherit the caller's CPU mask; the compute workers are not pinned), so
//! only large products, which a late second thread hardly slows, run on
//! them; the rest run as BLIS serial calls on the pool's row bands. One lock
//! makes concurrent BLIS products queue for the cores either way.
//!
//! We call BLIS's typed API (`bli_sgemm`), which takes a row and a column
//! stride per operand like matrixmultiply, so transposed operands need no
//! copy. BLIS aborts the process on strides it considers inconsistent (zero,
//! or overlapping rows and columns); `BlisMatrix` applies BLIS's own rules
//! first and such a product runs on matrixmultiply instead.

use std::sync::{Mutex, OnceLock, PoisonError};

use crate::kernels::error::KernelError;
use crate::kernels::gemm::matrixmultiply_backend::MatrixMultiplyKernel;
use crate::kernels::gemm::{GemmElement, GemmKernel, GemmProblem, MatRef, pool};

// Linked for its static `libblis.a`; the functions are declared below.
use blis_src as _;

/// BLIS's `dim_t` and `inc_t`: `gint_t`, 64 bits unless BLIS is configured
/// otherwise (`blis_is_usable` checks).
type BlisInt = i64;

/// BLIS's `trans_t::BLIS_NO_TRANSPOSE` (a C enum, hence `c_int`).
const BLIS_NO_TRANSPOSE: libc::c_int = 0;

/// BLIS's typed gemm for element type `T` (`bli_sgemm`, `bli_dgemm`):
/// `c = alpha · op(a) · op(b) + beta · c` with dimensions m, n, k and a row
/// and a column stride per matrix.
type BlisGemm<T> = unsafe extern "C" fn(
    transa: libc::c_int,
    transb: libc::c_int,
    m: BlisInt,
    n: BlisInt,
    k: BlisInt,
    alpha: *const T,
    a: *const T,
    rs_a: BlisInt,
    cs_a: BlisInt,
    b: *const T,
    rs_b: BlisInt,
    cs_b: BlisInt,
    beta: *const T,
    c: *mut T,
    rs_c: BlisInt,
    cs_c: BlisInt,
);

unsafe extern "C" {
    fn bli_sgemm(
        transa: libc::c_int,
        transb: libc::c_int,
        m: BlisInt,
        n: BlisInt,
        k: BlisInt,
        alpha: *const f32,
        a: *const f32,
        rs_a: BlisInt,
        cs_a: BlisInt,
        b: *const f32,
        rs_b: BlisInt,
        cs_b: BlisInt,
        beta: *const f32,
        c: *mut f32,
        rs_c: BlisInt,
        cs_c: BlisInt,
    );
    fn bli_dgemm(
        transa: libc::c_int,
        transb: libc::c_int,
        m: BlisInt,
        n: BlisInt,
        k: BlisInt,
        alpha: *const f64,
        a: *const f64,
        rs_a: BlisInt,
        cs_a: BlisInt,
        b: *const f64,
        rs_b: BlisInt,
        cs_b: BlisInt,
        beta: *const f64,
        c: *mut f64,
        rs_c: BlisInt,
        cs_c: BlisInt,
    );
    fn bli_thread_set_num_threads(threads: BlisInt);
    fn bli_info_get_int_type_size() -> BlisInt;
}

/// The element types BLIS multiplies: each with its typed gemm.
trait BlisElement: GemmElement {
    const GEMM: BlisGemm<Self>;
}

impl BlisElement for f32 {
    const GEMM: BlisGemm<f32> = bli_sgemm;
}

impl BlisElement for f64 {
    const GEMM: BlisGemm<f64> = bli_dgemm;
}

/// From this many multiply-adds (m·n·k, ≈ 1290³) on, a product runs on
/// BLIS's own threads, sharing one packed `b`; smaller ones run on row bands
/// of the pinned pool. BLIS starts its threads per product and leaves their
/// placement to the scheduler, which after an idle spell often queues the
/// second behind the first on one vCPU for a millisecond or more (see `pool`):
/// through the RPC, three runs in turn, BLIS's threads led the bands by about
/// 5% at 2048³ (≈ 120 ms a product) and were level at 1024³ (≈ 16 ms); at
/// 256³ they were the slowest of all.
const THREADED_MIN_WORK: usize = 1 << 31;

/// Whether the linked BLIS uses 64-bit `dim_t`/`inc_t`, as declared above.
fn blis_is_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        // SAFETY: takes no arguments and only reads BLIS's configuration.
        // Its `gint_t` result is read as 64 bits; on a 32-bit build the upper
        // half is garbage, which is why only the low 32 bits are compared.
        let bits = unsafe { bli_info_get_int_type_size() } as i32;
        if bits != 64 {
            log::warn!("BLIS was built with {bits}-bit integers; matmul uses matrixmultiply");
        }
        bits == 64
    })
}

/// Computes `problem` with BLIS after any BLIS product already running:
/// large ones on BLIS's threads, the rest on the pool's row bands.
pub(crate) fn run<T: GemmElement>(problem: GemmProblem<'_, T>) -> Result<(), KernelError> {
    if !blis_is_usable() {
        return pool::run_in_row_bands::<T, MatrixMultiplyKernel>(problem);
    }
    // Queues products for the cores, whichever of the two ways they run.
    // The lock guards no data: a panic elsewhere cannot leave anything
    // inconsistent.
    static CORES: Mutex<()> = Mutex::new(());
    let _cores = CORES.lock().unwrap_or_else(PoisonError::into_inner);
    let work = problem.m().saturating_mul(problem.n()).saturating_mul(problem.k());
    if work >= THREADED_MIN_WORK {
        T::run::<BlisThreadedKernel>(problem);
        Ok(())
    } else {
        pool::run_in_row_bands::<T, BlisKernel>(problem)
    }
}

/// One operand as BLIS takes it: dimensions and strides BLIS accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlisMatrix {
    rows: BlisInt,
    cols: BlisInt,
    row_stride: BlisInt,
    col_stride: BlisInt,
}

impl BlisMatrix {
    /// `rows × cols` at the given strides, `None` if BLIS would reject the
    /// strides. A dimension of extent 1 only ever uses index 0, so its stride
    /// is replaced by one BLIS accepts; that leaves every address the same.
    fn new(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<Self> {
        let (mut row_stride, mut col_stride) = (row_stride, col_stride);
        if rows == 1 && cols == 1 {
            (row_stride, col_stride) = (1, 1);
        } else if cols == 1 {
            col_stride = rows.checked_mul(row_stride)?;
        } else if rows == 1 {
            row_stride = cols.checked_mul(col_stride)?;
        }
        let matrix = BlisMatrix {
            rows: rows.try_into().ok()?,
            cols: cols.try_into().ok()?,
            row_stride: row_stride.try_into().ok()?,
            col_stride: col_stride.try_into().ok()?,
        };
        matrix.strides_accepted().then_some(matrix)
    }

    fn of<T>(view: &MatRef<'_, T>) -> Option<Self> {
        Self::new(view.rows, view.cols, view.row_stride, view.col_stride)
    }

    /// BLIS's rule for a matrix's strides (`bli_check_matrix_strides`, which
    /// aborts when it fails): no zero stride; with neither stride 1, the
    /// rows and columns must not interleave; in row or column storage, the
    /// leading stride must cover the other dimension.
    fn strides_accepted(&self) -> bool {
        let BlisMatrix { rows: m, cols: n, row_stride: rs, col_stride: cs } = *self;
        if m == 0 || n == 0 {
            return true;
        }
        if rs == 0 || cs == 0 {
            return false;
        }
        match (rs == 1, cs == 1) {
            (true, true) => m == 1 || n == 1,
            (true, false) => cs >= m,
            (false, true) => rs >= n,
            (false, false) if rs == cs => m == 1 || n == 1,
            (false, false) if rs < cs => m.checked_mul(rs).is_some_and(|span| span <= cs),
            (false, false) => n.checked_mul(cs).is_some_and(|span| span <= rs),
        }
    }
}

/// The operands of one product in BLIS's terms, when BLIS accepts them all.
struct BlisOperands {
    a: BlisMatrix,
    b: BlisMatrix,
    c: BlisMatrix,
}

impl BlisOperands {
    fn of<T>(problem: &GemmProblem<'_, T>) -> Option<Self> {
        let (m, n) = (problem.m(), problem.n());
        Some(BlisOperands {
            a: BlisMatrix::of(&problem.a)?,
            b: BlisMatrix::of(&problem.b)?,
            c: BlisMatrix::new(m, n, n, 1)?,
        })
    }
}

/// BLIS on the calling thread alone (a band on a pool thread).
pub(crate) struct BlisKernel;

impl GemmKernel for BlisKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        gemm_on_threads(problem, 1);
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        gemm_on_threads(problem, 1);
    }
}

/// BLIS on the calling thread and threads of its own: as many in all as the
/// pool has (one per core).
struct BlisThreadedKernel;

impl GemmKernel for BlisThreadedKernel {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        gemm_on_threads(problem, pool::thread_count());
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        gemm_on_threads(problem, pool::thread_count());
    }
}

/// Sets how many threads (at least 1) the calling thread's next BLIS call
/// runs on.
fn set_blis_threads(threads: usize) {
    let threads = BlisInt::try_from(threads.max(1)).unwrap_or(1);
    // SAFETY: sets the calling thread's BLIS thread count (a thread-local
    // setting in BLIS 1.0) to a positive value.
    unsafe { bli_thread_set_num_threads(threads) };
}

/// `problem` on BLIS with `threads` threads; on matrixmultiply's kernel
/// (this thread only) if BLIS would reject a stride.
fn gemm_on_threads<T: BlisElement>(problem: GemmProblem<'_, T>, threads: usize) {
    let Some(BlisOperands { a, b, c }) = BlisOperands::of(&problem) else {
        return T::run::<MatrixMultiplyKernel>(problem);
    };
    set_blis_threads(threads);
    // SAFETY: `GemmProblem::new` checked that m, k, n >= 1, that every
    // element (i, j) of `a` (m × k) and `b` (k × n) at the given strides lies
    // inside its slice, and that `c` holds exactly m × n elements (compact
    // row-major). `BlisMatrix` only changed strides of extent-1 dimensions,
    // whose one index is 0, so BLIS reads and writes exactly those elements;
    // it also checked that BLIS accepts the strides (so BLIS does not abort).
    // `c` is a unique borrow, so it aliases neither operand; with beta = 0 it
    // is only written. alpha and beta outlive the call. `T::GEMM` is BLIS's
    // gemm for `T`, declared above with BLIS's signature.
    unsafe {
        (T::GEMM)(
            BLIS_NO_TRANSPOSE,
            BLIS_NO_TRANSPOSE,
            c.rows,
            c.cols,
            a.cols,
            &T::ONE,
            problem.a.data.as_ptr(),
            a.row_stride,
            a.col_stride,
            problem.b.data.as_ptr(),
            b.row_stride,
            b.col_stride,
            &T::ZERO,
            problem.c.as_mut_ptr(),
            c.row_stride,
            c.col_stride,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
        BlisMatrix::new(rows, cols, row_stride, col_stride).is_some()
    }

    #[test]
    fn linked_blis_uses_the_64_bit_integers_declared_here() {
        assert!(blis_is_usable());
    }

    #[test]
    fn row_and_column_major_compact_matrices_are_accepted() {
        assert!(accepted(3, 5, 5, 1));
        assert!(accepted(3, 5, 1, 3));
    }

    #[test]
    fn padded_leading_strides_are_accepted() {
        assert!(accepted(3, 5, 8, 1));
        assert!(accepted(3, 5, 1, 4));
    }

    #[test]
    fn a_leading_stride_shorter_than_the_other_dimension_is_rejected() {
        assert!(!accepted(3, 5, 4, 1));
        assert!(!accepted(3, 5, 1, 2));
    }

    #[test]
    fn zero_strides_on_a_real_dimension_are_rejected() {
        assert!(!accepted(3, 5, 0, 1));
        assert!(!accepted(3, 5, 5, 0));
    }

    #[test]
    fn general_strides_that_do_not_interleave_are_accepted() {
        assert!(accepted(3, 5, 10, 2));
        assert!(accepted(3, 5, 2, 6));
        assert!(!accepted(3, 5, 4, 2));
        assert!(!accepted(3, 5, 3, 3));
    }

    #[test]
    fn strides_of_extent_one_dimensions_are_replaced_by_accepted_ones() {
        // One row: its row stride (here 0 or 1) addresses nothing.
        assert_eq!(
            BlisMatrix::new(1, 5, 0, 1),
            Some(BlisMatrix { rows: 1, cols: 5, row_stride: 5, col_stride: 1 })
        );
        // One column of a row-major matrix: row stride 1, column stride 1.
        assert_eq!(
            BlisMatrix::new(4, 1, 1, 1),
            Some(BlisMatrix { rows: 4, cols: 1, row_stride: 1, col_stride: 4 })
        );
        assert!(accepted(1, 1, 0, 0));
    }

    #[test]
    fn a_product_with_a_broadcast_operand_runs_on_matrixmultiply() {
        // b's rows all alias one row (row stride 0): BLIS would abort.
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [5.0f32, 6.0];
        let a = MatRef { data: &a, rows: 2, cols: 2, row_stride: 2, col_stride: 1 };
        let b = MatRef { data: &b, rows: 2, cols: 2, row_stride: 0, col_stride: 1 };
        let mut c = [0.0f32; 4];
        run(GemmProblem::new(a, b, &mut c).unwrap()).unwrap();
        assert_eq!(c, [15.0, 18.0, 35.0, 42.0]);
    }

    /// Small integers, so every sum is exact and all results are equal.
    fn integers(count: usize, seed: usize) -> Vec<i16> {
        (0..count).map(|i| ((i * 7 + seed) % 13) as i16 - 6).collect()
    }

    // Below THREADED_MIN_WORK: the threaded kernel is called directly. `b`
    // is stored transposed.
    const M: usize = 260;
    const K: usize = 190;
    const N: usize = 170;

    fn operands<T: From<i16>>() -> (Vec<T>, Vec<T>) {
        let convert = |values: Vec<i16>| values.into_iter().map(T::from).collect();
        (convert(integers(M * K, 1)), convert(integers(N * K, 2)))
    }

    /// The product on BLIS's threads equals matrixmultiply's, element for
    /// element.
    fn blis_threads_match_matrixmultiply<T: BlisElement + From<i16> + Default + std::fmt::Debug>() {
        let (a, b) = operands::<T>();
        let a = MatRef { data: &a[..], rows: M, cols: K, row_stride: K, col_stride: 1 };
        let b = MatRef { data: &b[..], rows: K, cols: N, row_stride: 1, col_stride: K };
        let mut expected = vec![T::default(); M * N];
        T::run::<MatrixMultiplyKernel>(GemmProblem::new(a, b, &mut expected).unwrap());
        let mut threaded = vec![T::from(99); M * N];
        T::run::<BlisThreadedKernel>(GemmProblem::new(a, b, &mut threaded).unwrap());
        assert_eq!(threaded, expected);
    }

    #[test]
    fn blis_threads_compute_what_matrixmultiply_computes_in_f64() {
        blis_threads_match_matrixmultiply::<f64>();
    }

    #[test]
    fn blis_threads_compute_what_matrixmultiply_computes_in_f32() {
        blis_threads_match_matrixmultiply::<f32>();
    }

    #[test]
    fn a_product_above_the_threshold_runs_on_blis_threads_and_matches_matrixmultiply() {
        let n = 1300;
        assert!(n * n * n >= THREADED_MIN_WORK);
        let a: Vec<f32> = integers(n * n, 3).into_iter().map(f32::from).collect();
        let b: Vec<f32> = integers(n * n, 4).into_iter().map(f32::from).collect();
        let view = |data| MatRef { data, rows: n, cols: n, row_stride: n, col_stride: 1 };
        let mut expected = vec![0.0f32; n * n];
        MatrixMultiplyKernel::sgemm(GemmProblem::new(view(&a), view(&b), &mut expected).unwrap());
        let mut c = vec![f32::NAN; n * n];
        run(GemmProblem::new(view(&a), view(&b), &mut c).unwrap()).unwrap();
        assert!(c == expected, "BLIS's product differs from matrixmultiply's");
    }
}
