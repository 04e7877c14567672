//! MUL_MAT: `dst = src0ᵀ · src1` per batch (`ggml_mul_mat`), f32 result.
//!
//! `src0` holds the weights `[K, M, b02, b03]` (a row of K per output
//! feature), `src1` the activations `[K, N, b12, b13]`; `dst` is
//! `[M, N, b12, b13]` with `dst[m, n] = Σ_k src0[k, m] · src1[k, n]`.
//! Batches broadcast src0 as ggml does: batch `(i12, i13)` uses src0 batch
//! `(i12 / (b12 / b02), i13 / (b13 / b03))` — by division, not modulo.
//!
//! `src0` may be f32, f16, bf16 or any block format with a dot product
//! (Q4_0 ... Q8_0, the K quants, IQ4_NL, IQ4_XS); `src1` f32, f16 or bf16
//! (f32 for block weights, as ggml's CPU requires); both any strides beyond
//! `nb[0]` (permuted activations, views of a KV cache); everything is
//! computed in f32. (ggml rounds the activations to f16 for f16 weights and
//! to bf16 for bf16 ones; we keep them f32, which is at least as accurate
//! and well within test-backend-ops' tolerance of 5e-4 NMSE.)
//!
//! Two strategies, chosen by the number of columns N:
//! * few columns (token generation): each output is a dot product of a
//!   weight row with an activation column, the rows split across the GEMM
//!   pool; a row is read (and converted) once for all N columns. For block
//!   weights this is ggml's own method (`quant_dot`): the columns are
//!   quantized to the weights' dot-product format and dotted with
//!   `quant::vec_dot`;
//! * more columns: the GEMM backend, on tiles of weight rows converted
//!   (dequantized) to f32 (f32 weights stored aligned are used in place).

use rayon::prelude::*;

use crate::kernels::error::KernelError;
use crate::kernels::gemm::{GemmBackend, MatRef, gemm, pool};
use crate::kernels::quant::BlockFormat;
use crate::kernels::strided::convert::row_to_f32;
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::quant_dot::{QuantWeights, QuantizedColumns, quant_dot_products};
use crate::kernels::strided::rules::{
    require_dim_eq, require_dim_multiple, require_ordered_strides, require_row_stride,
    require_same_type, require_shape, require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "MUL_MAT";

const TYPES: [ElementType; 3] = [ElementType::F32, ElementType::F16, ElementType::BF16];

/// Up to this many columns the dot-product strategy runs; above it, GEMM.
///
/// Measured (`tests/timing_tests.rs`, 4096 × 4096 weights, both cores,
/// matrixmultiply, a loaded 2-core machine so ±30%): f32 weights, dot vs
/// GEMM, 1.7 vs 16 ms at n = 1, 2.8 vs 15 ms at 4, 3.8 vs 20 ms at 8, even
/// at 16, GEMM 2× faster from 32; f16 weights 2.2 vs 20 ms at 1, 8 vs 11 ms
/// at 8, even at 16. (Before the AVX2 dot, the switch was near 4.)
pub(crate) const MAX_DOT_COLUMNS: usize = 8;

/// Up to how many columns `format` weights take the dot-product strategy
/// (quantized columns and `quant::vec_dot`); above it, dequantized tiles and
/// GEMM.
///
/// Measured (`tests/timing_tests.rs`, 4096² and 1024² weights, matrixmultiply,
/// quant's vec_dot as of this commit, one and two threads alike): the GEMM
/// strategy costs about one dequantization of the weights (12 ms at 4096² on
/// one core) plus little per column, the dot strategy a fixed time per column
/// (q8_0 1.6 ms, q4_0 2.7, q4_K 3.4, q6_K 4.3 ms at 4096² on one core), so
/// they break even near 7, 4.5, 3.5 and 3 columns. A faster `vec_dot` moves
/// these up: re-measure when it changes.
pub(crate) const fn max_quant_dot_columns(format: BlockFormat) -> usize {
    match format {
        BlockFormat::Q8_0 => 6,
        BlockFormat::Q4_0
        | BlockFormat::Q4_1
        | BlockFormat::Q5_0
        | BlockFormat::Q5_1
        | BlockFormat::Iq4Nl => 4,
        _ => 3,
    }
}

/// The column count up to which `elem` weights take the dot-product
/// strategy.
pub(crate) fn max_dot_columns(elem: ElementType) -> usize {
    match elem.block_format() {
        Some(format) => max_quant_dot_columns(format),
        None => MAX_DOT_COLUMNS,
    }
}

/// Below this many multiply-adds a batch runs on the calling thread: handing
/// it to the pool would cost more than it saves.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// Weight rows per GEMM tile: about 1 Mi f32 (4 MiB), at least 64 rows.
const TILE_ELEMENTS: usize = 1 << 20;

/// Whether ggml's CPU multiplies `elem` weights: the float types, and the
/// block formats that have a dot product (not the activation formats Q8_1
/// and Q8_K).
fn is_weight_type(elem: ElementType) -> bool {
    match elem {
        ElementType::Quant(format) => format.vec_dot_format().is_some(),
        other => TYPES.contains(&other),
    }
}

/// `src0` has a type ggml's CPU multiplies as weights.
pub(crate) fn require_weight_type(op: &'static str, src0: &Layout) -> Result<(), OpError> {
    if is_weight_type(src0.elem()) {
        return Ok(());
    }
    Err(OpError::UnsupportedType {
        op,
        operand: "src0",
        actual: src0.elem(),
        supported: WEIGHT_TYPES,
    })
}

const WEIGHT_TYPES: &str =
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K..q6_K, iq4_nl, iq4_xs";

/// Checks types (src0 f32/f16/bf16 or a block format with a dot product;
/// src1 f32/f16/bf16, f32 for block weights; dst f32), `src1.ne[0] ==
/// src0.ne[0]`, src1's batches multiples of src0's, `dst.ne == [src0.ne[1],
/// src1.ne[1], src1.ne[2], src1.ne[3]]`, `nb[0]` the element size in
/// both sources (ggml: not transposed) and dst `nb` ascending with
/// `nb[0] == 4`.
pub fn check_mul_mat(src0: &Layout, src1: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_weight_type(OP, src0)?;
    if src0.elem().is_block_format() {
        require_same_type(OP, "src1", src1, ElementType::F32)?;
    } else {
        require_type(OP, "src1", src1, &TYPES, "f32, f16, bf16")?;
    }
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    let [ne00, ne01, ne02, ne03] = src0.ne();
    let [_, ne11, ne12, ne13] = src1.ne();
    require_dim_eq(OP, "src1", src1, 0, "src0 ne[0] ", ne00)?;
    require_dim_multiple(OP, "src1", src1, 2, "src0 ne[2] ", ne02)?;
    require_dim_multiple(OP, "src1", src1, 3, "src0 ne[3] ", ne03)?;
    require_shape(OP, "dst", dst, [ne01, ne11, ne12, ne13])?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "src1", src1)?;
    require_row_stride(OP, "dst", dst)?;
    require_ordered_strides(OP, "dst", dst)
}

/// `dst = src0ᵀ · src1`, products of more than `MAX_DOT_COLUMNS`
/// (`max_quant_dot_columns` for block weights) columns on `backend`.
pub fn mul_mat(
    src0: View<'_>,
    src1: View<'_>,
    dst: &mut ViewMut<'_>,
    backend: GemmBackend,
) -> Result<(), OpError> {
    let dot_columns = max_dot_columns(src0.layout().elem());
    mul_mat_with_dot_columns(src0, src1, dst, backend, dot_columns)
}

/// `mul_mat` with the column count up to which the dot-product strategy
/// runs (benchmarks compare the two strategies with it).
pub(crate) fn mul_mat_with_dot_columns(
    src0: View<'_>,
    src1: View<'_>,
    dst: &mut ViewMut<'_>,
    backend: GemmBackend,
    max_dot_columns: usize,
) -> Result<(), OpError> {
    check_mul_mat(src0.layout(), src1.layout(), dst.layout())?;
    if !backend.is_available() {
        let source = Box::new(KernelError::BackendUnavailable { backend });
        return Err(OpError::Gemm { op: OP, source });
    }
    let [k, m, ne02, ne03] = src0.layout().ne();
    let [_, n, ne12, ne13] = src1.layout().ne();
    if dst.layout().is_empty() {
        return Ok(());
    }
    // dst is not empty, so neither are src1's batches, and src0's divide
    // them (checked): the ratios are at least 1.
    let (r2, r3) = (ne12 / ne02, ne13 / ne03);
    let mut columns = vec![0.0f32; n * k];
    let mut products = vec![0.0f32; m * n];
    let mut dst_row = vec![0.0f32; m];
    let strategy = Strategy { backend, max_dot_columns };
    for i13 in 0..ne13 {
        for i12 in 0..ne12 {
            // Column j of src1's batch as row j of `columns` ([n][k], f32).
            for (j, column) in columns.chunks_exact_mut(k.max(1)).enumerate() {
                src1.read_row_f32(j, i12, i13, column)?;
            }
            batch_products(src0, [i12 / r2, i13 / r3], &columns, &mut products, strategy)?;
            // products is [m][n]; dst's row j (over m) is column j of it.
            for j in 0..n {
                for (value, row) in dst_row.iter_mut().zip(products.chunks_exact(n)) {
                    *value = row[j];
                }
                dst.write_row_f32(j, i12, i13, &dst_row)?;
            }
        }
    }
    Ok(())
}

/// How a product is computed: the GEMM backend, and up to how many columns
/// the dot-product strategy runs instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Strategy {
    pub backend: GemmBackend,
    pub max_dot_columns: usize,
}

/// `products[i][j] = src0[:, i, batch]ᵀ · columns[j]` (`products` `[m][n]`,
/// `columns` `[n][k]` f32, `n = columns.len() / k`), by the strategy the
/// column count calls for. `src0` and `batch` must have been checked as
/// MUL_MAT checks them.
pub(crate) fn batch_products(
    src0: View<'_>,
    batch: [usize; 2],
    columns: &[f32],
    products: &mut [f32],
    strategy: Strategy,
) -> Result<(), OpError> {
    let [k, m, ..] = src0.layout().ne();
    let [i2, i3] = batch;
    if k == 0 {
        products.fill(0.0);
        return Ok(());
    }
    let n = columns.len() / k;
    if n <= strategy.max_dot_columns
        && let Some(format) = src0.layout().elem().block_format()
    {
        let quantized = QuantizedColumns::new(format, columns, k)?;
        let weights = QuantWeights { view: src0, format, i2, i3, k, m };
        quant_dot_products(&weights, &quantized, n, products)
    } else if n <= strategy.max_dot_columns {
        dot_products(&Weights { view: src0, i2, i3, k, m }, columns, n, products)
    } else {
        let weights = Weights { view: src0, i2, i3, k, m };
        gemm_products(&weights, columns, n, products, strategy.backend)
    }
}

/// One batch of weights: `m` rows of `k` values, batch `(i2, i3)` of `view`.
struct Weights<'a> {
    view: View<'a>,
    i2: usize,
    i3: usize,
    k: usize,
    m: usize,
}

impl Weights<'_> {
    /// Row `row` as f32: borrowed when stored as aligned f32, else converted
    /// into `buffer`.
    fn row<'b>(&'b self, row: usize, buffer: &'b mut [f32]) -> Result<&'b [f32], OpError> {
        let bytes = self.view.row(row, self.i2, self.i3)?;
        let elem = self.view.layout().elem();
        if elem == ElementType::F32
            && let Some(values) =
                bytes.get(..self.k * 4).and_then(|b| bytemuck::try_cast_slice::<u8, f32>(b).ok())
        {
            return Ok(values);
        }
        row_to_f32(elem, bytes, buffer)?;
        Ok(buffer)
    }

    /// The whole batch as a row-major f32 matrix, when stored as aligned f32
    /// with a row stride of whole elements.
    fn as_f32_matrix(&self) -> Option<MatRef<'_, f32>> {
        let layout = self.view.layout();
        let row_stride = layout.nb()[1];
        if layout.elem() != ElementType::F32 || !row_stride.is_multiple_of(4) {
            return None;
        }
        let start = layout.offset([0, 0, self.i2, self.i3]);
        let len = (self.m - 1) * row_stride + self.k * 4;
        let bytes = self.view.bytes().get(start..start + len)?;
        let data = bytemuck::try_cast_slice::<u8, f32>(bytes).ok()?;
        Some(MatRef { data, rows: self.m, cols: self.k, row_stride: row_stride / 4, col_stride: 1 })
    }
}

/// `products[i][j] = weights.row(i) · columns[j]` (`products` is `[m][n]`),
/// rows split across the pool when the batch is large enough.
fn dot_products(
    weights: &Weights<'_>,
    columns: &[f32],
    n: usize,
    products: &mut [f32],
) -> Result<(), OpError> {
    let k = weights.k;
    let rows_of = |first_row: usize, out: &mut [f32], buffer: &mut Vec<f32>| {
        for (offset, outputs) in out.chunks_exact_mut(n).enumerate() {
            let row = weights.row(first_row + offset, buffer)?;
            for (output, column) in outputs.iter_mut().zip(columns.chunks_exact(k)) {
                *output = dot(row, column);
            }
        }
        Ok(())
    };
    let work = weights.m.saturating_mul(k).saturating_mul(n);
    let threads = pool::thread_count();
    if work < MIN_PARALLEL_WORK || threads == 1 {
        return rows_of(0, products, &mut vec![0.0; k]);
    }
    // A few chunks per thread, so that a thread slowed by another process
    // does not hold everyone up.
    let chunk_rows = weights.m.div_ceil(threads * 4).max(16);
    pool::install(|| {
        products.par_chunks_mut(chunk_rows * n).enumerate().try_for_each_init(
            || vec![0.0f32; k],
            |buffer, (chunk, out)| rows_of(chunk * chunk_rows, out, buffer),
        )
    })
}

/// `products = weights · columnsᵀ` through the GEMM backend, on tiles of
/// weight rows converted to f32 (in parallel on the pool).
fn gemm_products(
    weights: &Weights<'_>,
    columns: &[f32],
    n: usize,
    products: &mut [f32],
    backend: GemmBackend,
) -> Result<(), OpError> {
    let k = weights.k;
    // columns is [n][k]: as the k × n matrix B, element (i, j) at j·k + i.
    let b = MatRef { data: columns, rows: k, cols: n, row_stride: 1, col_stride: k };
    let run = |a: MatRef<'_, f32>, c: &mut [f32]| {
        gemm(backend, a, b, c).map_err(|source| OpError::Gemm { op: OP, source: Box::new(source) })
    };
    if let Some(a) = weights.as_f32_matrix() {
        return run(a, products);
    }
    let tile_rows = (TILE_ELEMENTS / k).clamp(64, weights.m.max(64));
    let mut tile = vec![0.0f32; tile_rows.min(weights.m) * k];
    for (index, c) in products.chunks_mut(tile_rows * n).enumerate() {
        let first_row = index * tile_rows;
        let rows = c.len() / n;
        let tile = &mut tile[..rows * k];
        pool::install(|| {
            tile.par_chunks_mut(k).enumerate().try_for_each(|(offset, values)| {
                let bytes = weights.view.row(first_row + offset, weights.i2, weights.i3)?;
                row_to_f32(weights.view.layout().elem(), bytes, values)
            })
        })?;
        run(MatRef { data: tile, rows, cols: k, row_stride: k, col_stride: 1 }, c)?;
    }
    Ok(())
}

/// `Σ a[i]·b[i]` in f32: with AVX2 and FMA when the CPU has them (checked
/// at run time; the build targets baseline x86-64), else portable code.
/// On cached rows of 4096 the AVX2 version measured 53 GFLOP/s on one core
/// against 18 for the portable one (SSE2), which is what the dot-product
/// strategy and FLASH_ATTN_EXT spend their time in.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: `dot_avx2_fma` only requires the CPU features AVX2 and FMA,
        // which were just detected; its body is safe code.
        return unsafe { dot_avx2_fma(a, b) };
    }
    dot_portable(a, b)
}

/// `dot` compiled for AVX2 and FMA: 32 partial sums (four 8-lane
/// registers) updated by fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<32>();
    let (b_chunks, b_tail) = b.as_chunks::<32>();
    let mut sums = [0.0f32; 32];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..32 {
            sums[lane] = x[lane].mul_add(y[lane], sums[lane]);
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + tail
}

/// `Σ a[i]·b[i]` in f32 with 16 partial sums (which the compiler keeps in
/// SSE registers).
pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<16>();
    let (b_chunks, b_tail) = b.as_chunks::<16>();
    let mut sums = [0.0f32; 16];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..16 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + tail
}
