//! Our own blocked GEMM (the Goto/BLIS loop nest) over register-tile
//! micro-kernels, single-threaded; `pool` runs one call per row band on each
//! core, as it does for matrixmultiply.
//!
//! Why beside matrixmultiply: its packing buffers carry no alignment, so
//! about half of its 32-byte loads of packed `b` straddle two cache lines,
//! and it allocates them anew on every call. Here the panels start on cache
//! lines, the buffers are kept per thread, and the f32 tile is 6 × 16 (12
//! accumulators) rather than 8 × 8. Measured through TVM's client against
//! numpy on the 2-core Zen 3 machine (bench/run.py), best rounds at 1024³ and
//! 2048³: 145 and 168 GFLOP/s against matrixmultiply's 133 and 156.
//!
//! Tried and dropped: one packed copy of `b` shared by the threads. In
//! process it was faster still, but through the server it made every other
//! product ≈ 30% slower at 1024³ (packing all of `b` up front) or added a
//! hand-off to the pool per block of `b` (packing block by block), and an
//! idle GEMM thread falls asleep between hand-offs; waking a vCPU here takes
//! tens to hundreds of microseconds.
//!
//! Everything here is safe code; the only `unsafe` is inside the kernels'
//! `tile`, behind a bounds check of the slices it is given.

pub(crate) mod avx2;

use std::cell::RefCell;

use crate::kernels::gemm::matrixmultiply_backend::MatrixMultiplyKernel;
use crate::kernels::gemm::{GemmKernel, GemmProblem, MatRef};
use avx2::{Avx2F32, Avx2F64, Avx2Fma};

/// The `avx2` backend: this driver with the AVX2 + FMA kernels, one call
/// per row band (see `pool`).
pub(crate) struct Avx2Backend;

/// f32 blocking: a 147 KB block of `a` (144 × 256) and a 2 MiB one of `b`
/// (256 × 2048). Chosen among KC 128–512 and MC 48–240 at 2048³ on the 2-core
/// Zen 3 machine; KC 256 with MC 72–144 were best, within noise of each other.
const F32_BLOCKING: Blocking = Blocking { kc: 256, mc: 144, nc: 2048 };

/// f64: the same bytes per block as f32.
const F64_BLOCKING: Blocking = Blocking { kc: 256, mc: 72, nc: 1024 };

impl GemmKernel for Avx2Backend {
    fn sgemm(problem: GemmProblem<'_, f32>) {
        match Avx2Fma::detect() {
            Some(cpu) => gemm(Avx2F32(cpu), F32_BLOCKING, problem),
            // `gemm` only offers this backend where the CPU has AVX2 and FMA;
            // should that ever not hold, compute the product anyway.
            None => MatrixMultiplyKernel::sgemm(problem),
        }
    }

    fn dgemm(problem: GemmProblem<'_, f64>) {
        match Avx2Fma::detect() {
            Some(cpu) => gemm(Avx2F64(cpu), F64_BLOCKING, problem),
            None => MatrixMultiplyKernel::dgemm(problem),
        }
    }
}

/// One register-tile kernel: `c (+)= a_panel · b_panel` for an `MR × NR`
/// tile, where `a_panel` holds `kc` steps of `MR` elements (a column of the
/// tile's rows of `a` per step) and `b_panel` `kc` steps of `NR` (a row of
/// its columns of `b`).
pub(crate) trait MicroKernel: Copy + Send + Sync {
    type Elem: bytemuck::Pod + Default + Send + Sync + std::ops::AddAssign;
    /// `MR`, the tile's rows: lanes of the packed panels of `a`.
    type Rows: PanelWidth;
    /// `NR`, the tile's columns: lanes of the packed panels of `b`.
    type Cols: PanelWidth;

    /// Row `i` of the tile is `c[i·rsc .. i·rsc + NR]`. With `accumulate`
    /// the sums are added to `c`; without, `c` is only written. Panics if a
    /// slice is too short (a bug in the driver, never a read out of bounds).
    fn tile(
        &self,
        kc: usize,
        a: &[Self::Elem],
        b: &[Self::Elem],
        c: &mut [Self::Elem],
        rsc: usize,
        accumulate: bool,
    );
}

/// The cache blocking of one element type: `KC` steps of `k` per packed
/// panel (a `b` micro-panel of `KC × NR` stays in L1), `MC` rows of `a` per
/// packed block (`MC × KC`, ≈ 147 KB, stays in L2) and `NC` columns of `b`
/// per packed block (`KC × NC`, 2 MiB, in L3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blocking {
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

/// Buffers are aligned to a cache line so that no vector load of a panel
/// straddles two lines.
const CACHE_LINE_BYTES: usize = 64;

thread_local! {
    /// This thread's buffer for packed blocks of `b`, kept from product to
    /// product (see `with_packing_buffer`).
    static B_BLOCKS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// This thread's buffer for packed blocks of `a`.
    static A_BLOCKS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` on `len` elements of this thread's packing buffer `slot`,
/// starting on a cache-line boundary. The buffer is kept between products:
/// allocating it anew each time measured about 10% slower at 1024³ in
/// process with the server's allocator settings (benches/gemm_backends.rs).
/// Should a product ever start inside another on one thread, the inner one
/// gets a fresh buffer.
fn with_packing_buffer<T: bytemuck::Pod, R>(
    slot: &'static std::thread::LocalKey<RefCell<Vec<u64>>>,
    len: usize,
    work: impl FnOnce(&mut [T]) -> R,
) -> R {
    slot.with(|cell| match cell.try_borrow_mut() {
        Ok(mut words) => work(aligned_elements(&mut words, len)),
        Err(_) => work(aligned_elements(&mut Vec::new(), len)),
    })
}

/// `len` elements of `T` inside `words` (grown as needed), starting on a
/// cache-line boundary.
fn aligned_elements<T: bytemuck::Pod>(words: &mut Vec<u64>, len: usize) -> &mut [T] {
    let word_bytes = std::mem::size_of::<u64>();
    let bytes = len * std::mem::size_of::<T>();
    let needed = (bytes + CACHE_LINE_BYTES).div_ceil(word_bytes);
    if words.len() < needed {
        words.resize(needed, 0);
    }
    let all: &mut [u8] = bytemuck::cast_slice_mut(words.as_mut_slice());
    let offset = all.as_ptr().align_offset(CACHE_LINE_BYTES).min(CACHE_LINE_BYTES);
    bytemuck::cast_slice_mut(&mut all[offset..offset + bytes])
}

impl<T> MatRef<'_, T> {
    /// The same elements seen as the transposed matrix.
    fn transposed(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A panel width known at compile time, so that packing a panel moves whole
/// fixed-size rows (a copy of 16 `f32` is two vector moves, not a call).
pub(crate) trait PanelWidth {
    const LANES: usize;

    /// `pack_panels` with this width.
    fn pack<T: Copy + Default>(src: MatRef<'_, T>, lanes: Lanes, steps: Steps, out: &mut [T]);
}

/// The panel width `N`.
pub(crate) struct Width<const N: usize>;

impl<const N: usize> PanelWidth for Width<N> {
    const LANES: usize = N;

    fn pack<T: Copy + Default>(src: MatRef<'_, T>, lanes: Lanes, steps: Steps, out: &mut [T]) {
        pack_panels::<T, N>(src, lanes, steps, out);
    }
}

/// Rows `first..first + count` of a matrix to pack: the lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lanes {
    first: usize,
    count: usize,
}

/// Columns `first..first + count` of a matrix to pack: the steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    first: usize,
    count: usize,
}

/// Packs `lanes` rows and `steps` columns of `src` into panels of `W` rows
/// each: panel `q`, step `p`, lane `i` is `src(lanes.first + q·W + i,
/// steps.first + p)`, at `out[q·W·steps + p·W + i]`. Lanes past the last row
/// are zero, so kernels can always compute whole tiles.
///
/// `a` is packed as is (lanes are rows of `a`); `b` as its transpose (lanes
/// are columns of `b`).
fn pack_panels<T: Copy + Default, const W: usize>(
    src: MatRef<'_, T>,
    lanes: Lanes,
    steps: Steps,
    out: &mut [T],
) {
    let (rs, cs) = (src.row_stride, src.col_stride);
    for (q, panel) in out.chunks_mut(W * steps.count).enumerate() {
        let panel_row = lanes.first + q * W;
        let full = panel_row + W <= lanes.first + lanes.count;
        let panel_steps = panel.chunks_exact_mut(W).take(steps.count);
        if full && rs == 1 {
            // The lanes are adjacent in memory: one fixed-size copy per step.
            for (p, step) in panel_steps.enumerate() {
                let start = panel_row + (steps.first + p) * cs;
                step.copy_from_slice(&src.data[start..start + W]);
            }
        } else if full && cs == 1 {
            // Each lane's steps are adjacent: read W lines side by side.
            let line_start = |i: usize| (panel_row + i) * rs + steps.first;
            let lines: [&[T]; W] =
                std::array::from_fn(|i| &src.data[line_start(i)..line_start(i) + steps.count]);
            for (p, step) in panel_steps.enumerate() {
                for (slot, line) in step.iter_mut().zip(&lines) {
                    *slot = line[p];
                }
            }
        } else {
            // Edge panels and other strides, element by element.
            let live = W.min(lanes.first + lanes.count - panel_row);
            for (p, step) in panel_steps.enumerate() {
                for (i, slot) in step.iter_mut().enumerate() {
                    *slot = if i < live {
                        src.data[(panel_row + i) * rs + (steps.first + p) * cs]
                    } else {
                        T::default()
                    };
                }
            }
        }
    }
}

/// Computes `problem` with `kernel` on this thread. `pool` runs one call per
/// row band on each core, as for matrixmultiply.
pub(crate) fn gemm<K: MicroKernel>(
    kernel: K,
    blocking: Blocking,
    problem: GemmProblem<'_, K::Elem>,
) {
    let GemmProblem { a, b, c } = problem;
    let (n, k, mr, nr) = (b.cols, b.rows, K::Rows::LANES, K::Cols::LANES);
    let b_len = blocking.kc.min(k) * blocking.nc.min(n).div_ceil(nr) * nr;
    let a_len = blocking.mc.min(a.rows).div_ceil(mr) * mr * blocking.kc.min(k);
    with_packing_buffer(&B_BLOCKS, b_len, |b_buffer: &mut [K::Elem]| {
        with_packing_buffer(&A_BLOCKS, a_len, |a_buffer: &mut [K::Elem]| {
            for block in blocks(n, k, blocking) {
                let packed_b = &mut b_buffer[..block.packed_len(nr)];
                pack_b::<K>(b, block, packed_b);
                multiply_block(kernel, blocking, a, packed_b, block, c, a_buffer);
            }
        })
    });
}

/// The blocks of `b` of an `n`-column, `k`-step product, in the order they
/// are summed into `c`: blocks of columns outer, blocks of `k` inner.
fn blocks(n: usize, k: usize, blocking: Blocking) -> impl Iterator<Item = Block> {
    (0..n).step_by(blocking.nc).flat_map(move |first_col| {
        let cols = blocking.nc.min(n - first_col);
        (0..k).step_by(blocking.kc).map(move |first_step| Block {
            first_col,
            cols,
            first_step,
            kc: blocking.kc.min(k - first_step),
            accumulate: first_step > 0,
        })
    })
}

/// Packs `block` of `b` into `out`: its columns as panels of `NR` lanes.
fn pack_b<K: MicroKernel>(b: MatRef<'_, K::Elem>, block: Block, out: &mut [K::Elem]) {
    let nr = K::Cols::LANES;
    let steps = Steps { first: block.first_step, count: block.kc };
    for (q, panel) in out.chunks_mut(nr * block.kc).enumerate() {
        let first = block.first_col + q * nr;
        let lanes = Lanes { first, count: nr.min(block.first_col + block.cols - first) };
        K::Cols::pack(b.transposed(), lanes, steps, panel);
    }
}

/// A block of `b`: columns `first_col..+cols`, steps `first_step..+kc` of
/// `k`.
#[derive(Clone, Copy)]
struct Block {
    first_col: usize,
    cols: usize,
    first_step: usize,
    kc: usize,
    /// Whether earlier steps were already summed into `c`.
    accumulate: bool,
}

impl Block {
    /// Elements of the block packed as panels of `nr` lanes (the last one
    /// padded).
    fn packed_len(&self, nr: usize) -> usize {
        self.cols.div_ceil(nr) * nr * self.kc
    }
}

/// Adds the product of `a` and the packed `block` of `b` into `c` (row-major,
/// `b.cols` wide), packing `a` block by block into `a_buffer`.
fn multiply_block<K: MicroKernel>(
    kernel: K,
    blocking: Blocking,
    a: MatRef<'_, K::Elem>,
    packed_b: &[K::Elem],
    block: Block,
    c: &mut [K::Elem],
    a_buffer: &mut [K::Elem],
) {
    let (mr, nr, kc) = (K::Rows::LANES, K::Cols::LANES, block.kc);
    let (rows, n) = (a.rows, c.len() / a.rows.max(1));
    let mut edge_tile = vec![K::Elem::default(); mr * nr];
    for block_row in (0..rows).step_by(blocking.mc) {
        let mc = blocking.mc.min(rows - block_row);
        let packed_a = &mut a_buffer[..mc.div_ceil(mr) * mr * kc];
        let lanes = Lanes { first: block_row, count: mc };
        K::Rows::pack(a, lanes, Steps { first: block.first_step, count: kc }, packed_a);
        for (q, b_panel) in packed_b.chunks(nr * kc).enumerate() {
            let col = block.first_col + q * nr;
            let width = nr.min(block.first_col + block.cols - col);
            for (r, a_panel) in packed_a.chunks(mr * kc).enumerate() {
                let row = block_row + r * mr;
                let height = mr.min(block_row + mc - row);
                let origin = row * n + col;
                if height == mr && width == nr {
                    let tile = &mut c[origin..origin + (mr - 1) * n + nr];
                    kernel.tile(kc, a_panel, b_panel, tile, n, block.accumulate);
                } else {
                    // A partial tile: compute it whole aside, keep its part.
                    kernel.tile(kc, a_panel, b_panel, &mut edge_tile, nr, false);
                    for (i, sums) in edge_tile.chunks(nr).take(height).enumerate() {
                        let start = origin + i * n;
                        let target = &mut c[start..start + width];
                        if block.accumulate {
                            target.iter_mut().zip(sums).for_each(|(t, &s)| *t += s);
                        } else {
                            target.copy_from_slice(&sums[..width]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A portable kernel with the same contract, so the driver's blocking,
    /// packing and edge handling are tested on any CPU.
    #[derive(Clone, Copy)]
    struct ScalarKernel;

    impl MicroKernel for ScalarKernel {
        type Elem = f64;
        type Rows = Width<3>;
        type Cols = Width<4>;

        fn tile(&self, kc: usize, a: &[f64], b: &[f64], c: &mut [f64], rsc: usize, acc: bool) {
            assert!(a.len() >= 3 * kc && b.len() >= 4 * kc && c.len() >= 2 * rsc + 4);
            for i in 0..3 {
                for j in 0..4 {
                    let sum: f64 = (0..kc).map(|p| a[p * 3 + i] * b[p * 4 + j]).sum();
                    let slot = &mut c[i * rsc + j];
                    *slot = if acc { *slot + sum } else { sum };
                }
            }
        }
    }

    const SMALL_BLOCKS: Blocking = Blocking { kc: 5, mc: 7, nc: 9 };

    /// Small integers, so every sum is exact and results compare equal.
    fn matrix(
        rows: usize,
        cols: usize,
        transposed: bool,
        seed: usize,
    ) -> (Vec<f64>, MatRef<'static, f64>) {
        let data = (0..rows * cols).map(|i| ((i * 7 + seed) % 13) as f64 - 6.0).collect();
        let (row_stride, col_stride) = if transposed { (1, rows) } else { (cols, 1) };
        (data, MatRef { data: &[], rows, cols, row_stride, col_stride })
    }

    fn reference(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Vec<f64> {
        let at =
            |m: MatRef<'_, f64>, i: usize, j: usize| m.data[i * m.row_stride + j * m.col_stride];
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols).map(|p| at(a, i, p) * at(b, p, j)).sum();
            }
        }
        c
    }

    fn run<K: MicroKernel<Elem = f64>>(
        kernel: K,
        blocking: Blocking,
        a: MatRef<'_, f64>,
        b: MatRef<'_, f64>,
    ) -> Vec<f64> {
        // NaN everywhere: the first block of k must overwrite, never read.
        let mut c = vec![f64::NAN; a.rows * b.cols];
        let problem = GemmProblem::new(a, b, &mut c).unwrap();
        gemm(kernel, blocking, problem);
        c
    }

    #[test]
    fn every_block_edge_and_layout_gives_the_reference_product() {
        // m, n, k cross the tile and block sizes at uneven points, so
        // partial tiles, several k blocks and several column blocks occur.
        for (m, k, n) in [(1, 1, 1), (3, 5, 4), (10, 11, 19), (23, 17, 9), (8, 3, 30)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (a_data, a_shape) = matrix(m, k, ta, 1);
                let (b_data, b_shape) = matrix(k, n, tb, 2);
                let a = MatRef { data: &a_data, ..a_shape };
                let b = MatRef { data: &b_data, ..b_shape };
                let c = run(ScalarKernel, SMALL_BLOCKS, a, b);
                assert_eq!(c, reference(a, b), "{m}×{k}·{k}×{n} transposed a {ta} b {tb}");
            }
        }
    }

    /// The values 1 to 6, for a 2 × 3 row-major matrix.
    const ONE_TO_SIX: [f64; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

    fn two_by_three(data: &[f64]) -> MatRef<'_, f64> {
        MatRef { data, rows: 2, cols: 3, row_stride: 3, col_stride: 1 }
    }

    #[test]
    fn packed_panels_are_zero_past_the_last_lane() {
        let src = two_by_three(&ONE_TO_SIX);
        let mut out = vec![f64::NAN; 3 * 3];
        let (lanes, steps) = (Lanes { first: 0, count: 2 }, Steps { first: 0, count: 3 });
        pack_panels::<f64, 3>(src, lanes, steps, &mut out);
        assert_eq!(out, [1.0, 4.0, 0.0, 2.0, 5.0, 0.0, 3.0, 6.0, 0.0]);
    }

    #[test]
    fn packing_adjacent_lanes_copies_each_step() {
        let src = two_by_three(&ONE_TO_SIX);
        // Lanes are the columns 1..3 of `src`, steps its rows.
        let mut out = vec![f64::NAN; 2 * 4];
        let (lanes, steps) = (Lanes { first: 1, count: 2 }, Steps { first: 0, count: 2 });
        pack_panels::<f64, 4>(src.transposed(), lanes, steps, &mut out);
        assert_eq!(out, [2.0, 3.0, 0.0, 0.0, 5.0, 6.0, 0.0, 0.0]);
    }

    #[test]
    fn packing_buffers_start_on_a_cache_line_and_grow_as_needed() {
        let mut words = Vec::new();
        for len in [1, 7, 100, 4096, 3] {
            let slice: &mut [f32] = aligned_elements(&mut words, len);
            assert_eq!(slice.len(), len);
            assert_eq!(slice.as_ptr() as usize % CACHE_LINE_BYTES, 0);
        }
        assert!(words.len() * 8 >= 4096 * 4);
    }

    #[test]
    fn a_thread_already_using_its_buffer_gets_a_fresh_one() {
        with_packing_buffer(&A_BLOCKS, 16, |outer: &mut [f64]| {
            outer.fill(1.0);
            with_packing_buffer(&A_BLOCKS, 16, |inner: &mut [f64]| inner.fill(2.0));
            assert!(outer.iter().all(|&x| x == 1.0));
        });
    }

    #[test]
    fn avx2_kernels_give_the_reference_product() {
        let Some(cpu) = avx2::Avx2Fma::detect() else { return };
        let blocking = Blocking { kc: 16, mc: 12, nc: 24 };
        let (a_data, a_shape) = matrix(29, 37, false, 5);
        let (b_data, b_shape) = matrix(37, 53, true, 6);
        let a = MatRef { data: &a_data, ..a_shape };
        let b = MatRef { data: &b_data, ..b_shape };
        assert_eq!(run(avx2::Avx2F64(cpu), blocking, a, b), reference(a, b));
    }
}
