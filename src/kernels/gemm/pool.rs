//! The threads GEMM runs on, and the split of one product into row bands
//! across them.
//!
//! matrixmultiply's single-threaded kernels reach ≈ 65–70 GFLOP/s f32 at
//! 1024–2048 on one core here (numpy with one thread: about 10% more, run in
//! turn), but its own `threading` feature scaled to only ≈ 97–100 GFLOP/s on
//! two cores (and stops at four threads). Giving each core its own band of
//! rows of `c`, each computed single-threaded, measured 115–135 GFLOP/s on
//! the same two cores, against numpy's 130–144. The bands share nothing but
//! read-only operands, so splitting needs no `unsafe`: `c` is cut with
//! `chunks_mut`.
//!
//! One pool serves every matrixmultiply and `gemm` crate product in the
//! process, however many compute workers call it, so concurrent products
//! queue for the cores instead of oversubscribing them. The `gemm` crate
//! backend runs inside the same pool (its `Parallelism::Rayon(0)` means "the
//! current pool"). BLIS starts threads of its own and queues its products on
//! a lock instead (`blis_backend`).
//!
//! When the pool has one thread per core the process may run on, each thread
//! is pinned to its own core. Unpinned, on the 2-vCPU machines, the scheduler
//! put the thread woken for the second band on the already busy vCPU in about
//! half of the products that followed an idle spell (`perf sched`: both GEMM
//! threads sharing one vCPU in 1–4 ms slices while the other sat idle), so
//! the second band started 0.4–2 ms late (median) and both ran slower. Pinned,
//! it starts within about 0.1 ms: a 1024³ SGEMM through TVM's client after
//! 0.3 s idle went from 100–103 to 110–115 GFLOP/s (median of 40, three runs
//! each), and back to back from 118–124 to 126–130.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::kernels::error::KernelError;
use crate::kernels::gemm::{GemmElement, GemmKernel, GemmProblem, MatRef};

/// Below this many multiply-adds (m·n·k, ≈ 100³) a product takes tens of
/// microseconds on one core, and handing it to other threads costs a
/// noticeable share of that.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// A band smaller than this many rows wastes the kernels' 8-row micro-tiles
/// and repacks `b` for little work.
const MIN_BAND_ROWS: usize = 16;

/// The process-wide GEMM pool: one thread per core, each pinned to its own
/// core when there is one thread per allowed core. `None` when its threads
/// could not be started; GEMM then runs on the calling thread.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = match CONFIGURED_THREADS.load(Ordering::SeqCst) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut builder = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("gemm-{i}"));
        if let Some(cores) = core_per_thread(threads, core_affinity::get_core_ids()) {
            builder = builder.start_handler(move |i| pin_to(cores.get(i).copied(), i));
        }
        POOL_STARTED.store(1, Ordering::SeqCst);
        builder
            .build()
            .map_err(|err| log::warn!("GEMM runs single-threaded: no thread pool ({err})"))
            .ok()
    })
    .as_ref()
}

/// The core each of `threads` pool threads is pinned to: the cores this
/// process may run on, one per thread, when there are exactly as many as
/// threads. `None` (no pinning) when there is one thread, when the cores are
/// unknown, or when their number differs from the pool's (a CPU quota smaller
/// than the cores allowed, say: the pool's threads must then share the cores
/// with everyone's, and the scheduler places them better than a fixed guess).
fn core_per_thread(
    threads: usize,
    allowed: Option<Vec<core_affinity::CoreId>>,
) -> Option<Vec<core_affinity::CoreId>> {
    allowed.filter(|cores| threads > 1 && cores.len() == threads)
}

/// Pins the calling pool thread `index` to `core`; a failure only costs speed.
fn pin_to(core: Option<core_affinity::CoreId>, index: usize) {
    let pinned = core.is_some_and(core_affinity::set_for_current);
    if !pinned {
        log::debug!("GEMM thread {index} could not be pinned to core {core:?}; it runs unpinned");
    }
}

/// The pool's size as set before it started (0: one thread per core).
static CONFIGURED_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads the compute pool will have (ggml's `-t/--threads`); must be
/// called before the pool's first use, after which the size is fixed. Returns whether it
/// took effect.
pub fn set_thread_count(threads: usize) -> bool {
    CONFIGURED_THREADS.store(threads.max(1), Ordering::SeqCst);
    POOL_STARTED.load(Ordering::SeqCst) == 0
}

/// Set once the pool has been built.
static POOL_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` on the GEMM pool's threads (or on this thread if there is no
/// pool), so that code parallelised with rayon inside it uses that pool.
pub(crate) fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// How many threads GEMM runs on: the pool's (one per core), or 1 without
/// a pool.
pub(crate) fn thread_count() -> usize {
    pool().map_or(1, |pool| pool.current_num_threads())
}

/// How many row bands to cut an `m × k · k × n` product into for `threads`
/// threads: one per thread, but never bands under `MIN_BAND_ROWS` rows, and
/// one band for products too small to gain from more.
fn band_count(m: usize, n: usize, k: usize, threads: usize) -> usize {
    let work = m.saturating_mul(n).saturating_mul(k);
    if work < MIN_PARALLEL_WORK {
        return 1;
    }
    threads.min(m / MIN_BAND_ROWS).max(1)
}

/// Computes `problem` with kernel `K`, its rows split into one band per pool
/// thread when it is large enough; each band runs `K` single-threaded.
pub(crate) fn run_in_row_bands<T: GemmElement, K: GemmKernel>(
    problem: GemmProblem<'_, T>,
) -> Result<(), KernelError> {
    let bands = band_count(problem.m(), problem.n(), problem.k(), thread_count());
    run_bands::<T, K>(problem, bands)
}

/// Computes `problem` with kernel `K` as `bands` row bands, in parallel on
/// the pool.
fn run_bands<T: GemmElement, K: GemmKernel>(
    problem: GemmProblem<'_, T>,
    bands: usize,
) -> Result<(), KernelError> {
    if bands <= 1 {
        T::run::<K>(problem);
        return Ok(());
    }
    let bands = problem
        .into_row_bands(bands)
        .ok_or(KernelError::Internal { op: "matmul", detail: "gemm row band out of bounds" })?;
    install(|| bands.into_par_iter().for_each(|band| T::run::<K>(band)));
    Ok(())
}

impl<'a, T> GemmProblem<'a, T> {
    /// This product cut into `bands` products over consecutive rows of `a`
    /// and `c` (the last may be shorter), all sharing `b`. Each band is
    /// checked again by `GemmProblem::new`; `None` if one fails, which the
    /// parent's own checks rule out.
    fn into_row_bands(self, bands: usize) -> Option<Vec<GemmProblem<'a, T>>> {
        let GemmProblem { a, b, c } = self;
        let n = b.cols;
        let band_rows = a.rows.div_ceil(bands.max(1));
        c.chunks_mut(band_rows.checked_mul(n)?)
            .enumerate()
            .map(|(index, c_band)| {
                let first_row = index * band_rows;
                let a_band = MatRef {
                    data: a.data.get(first_row.checked_mul(a.row_stride)?..)?,
                    rows: c_band.len() / n,
                    ..a
                };
                GemmProblem::new(a_band, b, c_band)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores(ids: &[usize]) -> Option<Vec<core_affinity::CoreId>> {
        Some(ids.iter().map(|&id| core_affinity::CoreId { id }).collect())
    }

    #[test]
    fn threads_are_pinned_one_per_core_when_the_pool_covers_every_allowed_core() {
        assert_eq!(core_per_thread(2, cores(&[4, 7])), cores(&[4, 7]));
    }

    #[test]
    fn threads_are_not_pinned_when_pool_and_allowed_cores_differ_in_number() {
        assert_eq!(core_per_thread(2, cores(&[0, 1, 2, 3])), None);
        assert_eq!(core_per_thread(4, cores(&[0, 1])), None);
    }

    #[test]
    fn a_single_thread_or_unknown_cores_are_not_pinned() {
        assert_eq!(core_per_thread(1, cores(&[3])), None);
        assert_eq!(core_per_thread(2, None), None);
    }

    #[test]
    fn every_pool_thread_runs_where_the_pinning_plan_puts_it() {
        let Some(pool) = pool() else { return };
        let allowed = core_affinity::get_core_ids();
        let plan = core_per_thread(pool.current_num_threads(), allowed.clone());
        let mut seen: Vec<_> = pool.broadcast(|ctx| (ctx.index(), core_affinity::get_core_ids()));
        seen.sort_by_key(|(index, _)| *index);
        for (index, cores) in seen {
            match &plan {
                Some(plan) => assert_eq!(cores, Some(vec![plan[index]]), "thread {index}"),
                None => assert_eq!(cores, allowed, "thread {index}"),
            }
        }
    }

    #[test]
    fn small_products_stay_in_one_band() {
        assert_eq!(band_count(64, 64, 64, 8), 1);
    }

    #[test]
    fn large_products_get_one_band_per_thread() {
        assert_eq!(band_count(1024, 1024, 1024, 2), 2);
        assert_eq!(band_count(1024, 1024, 1024, 8), 8);
    }

    #[test]
    fn bands_never_shrink_below_the_minimum_rows() {
        assert_eq!(band_count(40, 4096, 4096, 8), 40 / MIN_BAND_ROWS);
        assert_eq!(band_count(8, 4096, 4096, 8), 1);
    }

    /// A `rows × cols` matrix of small distinct values, stored transposed
    /// when `transposed`.
    fn matrix(
        rows: usize,
        cols: usize,
        transposed: bool,
        seed: usize,
    ) -> (Vec<f32>, MatRef<'static, f32>) {
        let data: Vec<f32> = (0..rows * cols).map(|i| ((i * 7 + seed) % 13) as f32 - 6.0).collect();
        let (row_stride, col_stride) = if transposed { (1, rows) } else { (cols, 1) };
        let view = MatRef { data: &[], rows, cols, row_stride, col_stride };
        (data, view)
    }

    #[test]
    fn banded_product_equals_the_one_band_product() {
        use crate::kernels::gemm::matrixmultiply_backend::MatrixMultiplyKernel;
        let (m, k, n) = (37, 19, 23);
        let (a_data, a_shape) = matrix(m, k, true, 1);
        let (b_data, b_shape) = matrix(k, n, false, 2);
        let a = MatRef { data: &a_data, ..a_shape };
        let b = MatRef { data: &b_data, ..b_shape };
        let mut whole = vec![0.0f32; m * n];
        run_bands::<f32, MatrixMultiplyKernel>(GemmProblem::new(a, b, &mut whole).unwrap(), 1)
            .unwrap();
        for bands in [2, 3, 5, 37] {
            let mut banded = vec![f32::NAN; m * n];
            let problem = GemmProblem::new(a, b, &mut banded).unwrap();
            run_bands::<f32, MatrixMultiplyKernel>(problem, bands).unwrap();
            // Small integers: every sum is exact, so the results are equal.
            assert_eq!(banded, whole, "{bands} bands");
        }
    }

    #[test]
    fn row_bands_cover_every_row_once_with_the_right_operand_rows() {
        // a: 5 × 2 transposed storage (row stride 1, column stride 5).
        let a_data: Vec<f64> = (0..10).map(f64::from).collect();
        let b_data = [1.0, 0.0, 0.0, 1.0];
        let a = MatRef { data: &a_data, rows: 5, cols: 2, row_stride: 1, col_stride: 5 };
        let b = MatRef { data: &b_data, rows: 2, cols: 2, row_stride: 2, col_stride: 1 };
        let mut c = [0.0; 10];
        let bands = GemmProblem::new(a, b, &mut c).unwrap().into_row_bands(2).unwrap();
        let rows: Vec<usize> = bands.iter().map(|band| band.m()).collect();
        assert_eq!(rows, [3, 2]);
        // The second band starts at a's row 3: elements (3, 0) and (3, 1).
        assert_eq!(bands[1].a.data[0], 3.0);
        assert_eq!(bands[1].a.data[5], 8.0);
    }
}
