//! MUL_MAT's dot-product strategy for quantized weights, as ggml's CPU
//! computes it: each activation column is quantized once to the weight
//! format's `vec_dot_format()` (Q8_0, Q8_1 or Q8_K; with ggml's CPU
//! quantizer, `cpu_quantize`) and every output is
//! `quant::vec_dot` of a weight row with a quantized column. That is also
//! what test-backend-ops' tolerance for quantized MUL_MAT is set against.
//!
//! (For many columns MUL_MAT instead dequantizes tiles of weight rows to
//! f32 for the GEMM backend: more accurate than ggml, and well within the
//! tolerance of 5e-4 NMSE; see `mul_mat`.)

use rayon::prelude::*;

use crate::kernels::gemm::pool;
use crate::kernels::quant::{self, BlockFormat};
use crate::kernels::strided::cpu_quantize;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::view::View;

/// Below this many multiply-adds a batch runs on the calling thread.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// Activation columns quantized to a weight format's dot-product format:
/// `n` rows of `row_bytes` bytes.
pub(crate) struct QuantizedColumns {
    bytes: Vec<u8>,
    row_bytes: usize,
}

impl QuantizedColumns {
    /// Quantizes the `n` f32 columns of `k` values in `columns` (`[n][k]`)
    /// to `format`'s `vec_dot_format()`.
    pub(crate) fn new(
        format: BlockFormat,
        columns: &[f32],
        k: usize,
    ) -> Result<QuantizedColumns, OpError> {
        let target = format.vec_dot_format().ok_or(OpError::Internal {
            op: "MUL_MAT",
            detail: "weights in a format without a dot product",
        })?;
        let row_bytes = target.row_bytes(k)?;
        let n = columns.len() / k.max(1);
        let len = row_bytes
            .checked_mul(n)
            .ok_or(OpError::Internal { op: "MUL_MAT", detail: "quantized columns overflow" })?;
        let mut bytes = vec![0u8; len];
        if row_bytes > 0 {
            for (column, out) in columns.chunks_exact(k).zip(bytes.chunks_exact_mut(row_bytes)) {
                cpu_quantize::quantize_row(target, column, out)?;
            }
        }
        Ok(QuantizedColumns { bytes, row_bytes })
    }

    /// The quantized columns, one after the other.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks_exact(self.row_bytes.max(1))
    }
}

/// One batch of quantized weights: `m` rows of `k` values, batch
/// `(i2, i3)` of `view`.
pub(crate) struct QuantWeights<'a> {
    pub view: View<'a>,
    pub format: BlockFormat,
    pub i2: usize,
    pub i3: usize,
    pub k: usize,
    pub m: usize,
}

impl QuantWeights<'_> {
    /// The blocks of row `row`.
    fn row(&self, row: usize) -> Result<&[u8], OpError> {
        let bytes = self.view.row(row, self.i2, self.i3)?;
        let len = self.format.row_bytes(self.k)?;
        bytes.get(..len).ok_or(OpError::Internal { op: "MUL_MAT", detail: "row shorter than k" })
    }
}

/// `products[i][j] = vec_dot(weights.row(i), columns[j])` (`products` is
/// `[m][n]`), rows split across the pool when the batch is large enough.
pub(crate) fn quant_dot_products(
    weights: &QuantWeights<'_>,
    columns: &QuantizedColumns,
    n: usize,
    products: &mut [f32],
) -> Result<(), OpError> {
    let (format, k) = (weights.format, weights.k);
    let rows_of = |first_row: usize, out: &mut [f32]| {
        for (offset, outputs) in out.chunks_exact_mut(n).enumerate() {
            let row = weights.row(first_row + offset)?;
            for (output, column) in outputs.iter_mut().zip(columns.iter()) {
                *output = quant::vec_dot(format, k, row, column)?;
            }
        }
        Ok(())
    };
    let work = weights.m.saturating_mul(k).saturating_mul(n);
    let threads = pool::thread_count();
    if work < MIN_PARALLEL_WORK || threads == 1 {
        return rows_of(0, products);
    }
    // A few chunks per thread, so that a thread slowed by another process
    // does not hold everyone up.
    let chunk_rows = weights.m.div_ceil(threads * 4).max(16);
    pool::install(|| {
        products
            .par_chunks_mut(chunk_rows * n)
            .enumerate()
            .try_for_each(|(chunk, out)| rows_of(chunk * chunk_rows, out))
    })
}
