//! FLASH_ATTN_EXT: fused attention `softmax(q·kᵀ·scale + mask)·v`
//! (`ggml_flash_attn_ext`), with online softmax, grouped-query heads, ALiBi,
//! logit soft-capping and attention sinks.
//!
//! * `q` f32 `[D, n_q, H, B]`; `k` `[D, n_kv, H_kv, B]` and `v`
//!   `[Dv, n_kv, H_v, B]` of f16, bf16, f32 or a block format (the
//!   `-ctk`/`-ctv` caches: q8_0, q4_0, ...), with `H` a multiple of `H_kv`
//!   and `H_v` (query head `h` reads kv head `h / (H / H_kv)`);
//! * `mask` (f16, optional): row `iq1` of plane `(h % ne2, b % ne3)` adds to
//!   the scores of query `iq1` (it may be padded beyond `n_q` rows and
//!   `n_kv` columns); a `-inf` entry skips that key entirely;
//! * `sinks` (f32, one per query head, optional);
//! * `dst` f32 `[Dv, H, n_q, B]` — heads and queries swapped
//!   (`permute(0, 2, 1, 3)`), contiguous, as ggml's CPU writes it.
//!
//! `op_params`: f32 scale, max_bias, logit_softcap, then the precision
//! (`GGML_PREC_DEFAULT` 0 or `GGML_PREC_F32` 10; ggml's CPU aborts on
//! others). Scores, the running maximum and sum, and the value accumulator
//! are all f32 — ggml's tiled path does the same; its path for fewer than 64
//! queries accumulates f16 values in f16, which we do not reproduce.
//!
//! Block-format caches are read as ggml's CPU reads them: each query row is
//! quantized to K's dot-product format (Q8_0 for q8_0 and q4_0 keys) and
//! dotted with the key rows by `quant::vec_dot`; value rows are dequantized
//! (exactly) and accumulated in f32.

use rayon::prelude::*;

use crate::kernels::gemm::pool;
use crate::kernels::quant::{self, BlockFormat};
use crate::kernels::strided::cpu_quantize;
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::mul_mat::dot;
use crate::kernels::strided::rules::{
    OpParams, param_f32, require_contiguous, require_dim_at_least, require_dim_eq,
    require_dim_multiple, require_row_stride, require_same_type, require_shape,
};
use crate::kernels::strided::soft_max::Alibi;
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "FLASH_ATTN_EXT";

/// `GGML_PREC_DEFAULT` and `GGML_PREC_F32`, the precisions ggml's CPU runs.
const PRECISIONS: [i32; 2] = [0, 10];

/// Below this many multiply-adds per head the queries run on the calling
/// thread.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// The parameters of FLASH_ATTN_EXT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashAttnParams {
    pub scale: f32,
    pub max_bias: f32,
    /// 0 disables soft-capping; otherwise scores become `c·tanh(s/c)`.
    pub logit_softcap: f32,
}

impl FlashAttnParams {
    /// Fails for a precision other than default (0) or f32 (10).
    pub fn from_op_params(params: &OpParams) -> Result<FlashAttnParams, OpError> {
        if !PRECISIONS.contains(&params[3]) {
            return Err(OpError::InvalidParam {
                op: OP,
                param: "precision",
                value: params[3].to_string(),
                reason: "is not supported (GGML_PREC_DEFAULT 0 and GGML_PREC_F32 10 are)",
            });
        }
        Ok(FlashAttnParams {
            scale: param_f32(params, 0),
            max_bias: param_f32(params, 1),
            logit_softcap: param_f32(params, 2),
        })
    }
}

const KV_TYPES: [ElementType; 3] = [ElementType::F16, ElementType::BF16, ElementType::F32];

const K_SUPPORTED: &str = "f16, bf16, f32, or a block format with a dot product";
const V_SUPPORTED: &str = "f16, bf16, f32, or a block format other than q8_1 and q8_K";

/// Keys: the float types, or a block format ggml can dot a quantized query
/// with.
fn is_key_type(elem: ElementType) -> bool {
    match elem.block_format() {
        Some(format) => format.vec_dot_format().is_some(),
        None => KV_TYPES.contains(&elem),
    }
}

/// Values: the float types, or a block format ggml dequantizes.
fn is_value_type(elem: ElementType) -> bool {
    KV_TYPES.contains(&elem) || (elem.is_block_format() && elem.dequantizes())
}

fn require_kv_type(
    operand: &'static str,
    layout: &Layout,
    accepted: fn(ElementType) -> bool,
    supported: &'static str,
) -> Result<(), OpError> {
    if accepted(layout.elem()) {
        return Ok(());
    }
    Err(OpError::UnsupportedType { op: OP, operand, actual: layout.elem(), supported })
}

/// The optional operands of FLASH_ATTN_EXT's layouts.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlashAttnExtras<'a> {
    pub mask: Option<&'a Layout>,
    pub sinks: Option<&'a Layout>,
}

/// Checks the types and shapes described in the module documentation:
/// `k.ne0 == q.ne0`; `v.ne1 == k.ne1`; `q.ne2` a multiple of `k.ne2` and
/// `v.ne2`; `q.ne3 == k.ne3 == v.ne3`; rows of q, k, v contiguous; a mask
/// (contiguous, `ne0 >= n_kv`, `ne1 >= n_q`, dividing q's heads and batches)
/// when `max_bias > 0`; sinks with one value per query head; dst
/// `[v.ne0, q.ne2, q.ne1, q.ne3]` contiguous.
pub fn check_flash_attn_ext(
    q: &Layout,
    k: &Layout,
    v: &Layout,
    extras: FlashAttnExtras<'_>,
    dst: &Layout,
    params: &FlashAttnParams,
) -> Result<(), OpError> {
    require_same_type(OP, "q", q, ElementType::F32)?;
    require_kv_type("k", k, is_key_type, K_SUPPORTED)?;
    require_kv_type("v", v, is_value_type, V_SUPPORTED)?;
    let [d, n_q, heads, batches] = q.ne();
    let n_kv = k.ne()[1];
    require_dim_eq(OP, "k", k, 0, "q ne[0] ", d)?;
    require_dim_eq(OP, "v", v, 1, "k ne[1] ", n_kv)?;
    require_dim_multiple(OP, "q", q, 2, "k ne[2] ", k.ne()[2])?;
    require_dim_multiple(OP, "q", q, 2, "v ne[2] ", v.ne()[2])?;
    require_dim_eq(OP, "k", k, 3, "q ne[3] ", batches)?;
    require_dim_eq(OP, "v", v, 3, "q ne[3] ", batches)?;
    for (operand, layout) in [("q", q), ("k", k), ("v", v)] {
        require_row_stride(OP, operand, layout)?;
    }
    match extras.mask {
        Some(mask) => {
            require_same_type(OP, "mask", mask, ElementType::F16)?;
            require_contiguous(OP, "mask", mask)?;
            require_dim_at_least(OP, "mask", mask, 0, "k ne[1] ", n_kv)?;
            require_dim_at_least(OP, "mask", mask, 1, "q ne[1] ", n_q)?;
            require_dim_multiple(OP, "q", q, 2, "mask ne[2] ", mask.ne()[2])?;
            require_dim_multiple(OP, "q", q, 3, "mask ne[3] ", mask.ne()[3])?;
        }
        None if params.max_bias > 0.0 => {
            return Err(OpError::MissingOperand {
                op: OP,
                operand: "mask",
                reason: "max_bias > 0",
            });
        }
        None => {}
    }
    if let Some(sinks) = extras.sinks {
        require_same_type(OP, "sinks", sinks, ElementType::F32)?;
        require_dim_eq(OP, "sinks", sinks, 0, "q ne[2] ", heads)?;
    }
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    require_shape(OP, "dst", dst, [v.ne()[0], heads, n_q, batches])?;
    require_contiguous(OP, "dst", dst)
}

/// The optional operands of FLASH_ATTN_EXT.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlashAttnExtraViews<'a> {
    pub mask: Option<View<'a>>,
    pub sinks: Option<View<'a>>,
}

/// `dst = softmax(q·kᵀ·scale + mask)·v` per query row and head.
pub fn flash_attn_ext(
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    extras: FlashAttnExtraViews<'_>,
    dst: &mut ViewMut<'_>,
    params: &FlashAttnParams,
) -> Result<(), OpError> {
    let extra_layouts = FlashAttnExtras {
        mask: extras.mask.as_ref().map(View::layout),
        sinks: extras.sinks.as_ref().map(View::layout),
    };
    check_flash_attn_ext(q.layout(), k.layout(), v.layout(), extra_layouts, dst.layout(), params)?;
    if dst.layout().is_empty() {
        return Ok(());
    }
    let [d, n_q, heads, batches] = q.layout().ne();
    let [dv, n_kv, v_heads, _] = v.layout().ne();
    let k_heads = k.layout().ne()[2];
    let alibi = Alibi::new(params.max_bias, heads);
    let key_format = k.layout().elem().block_format();
    let mut keys = KvCache::new(k, if key_format.is_some() { 0 } else { n_kv }, d);
    let mut values = KvCache::new(v, n_kv, dv);
    let mut outputs = vec![0.0f32; n_q * dv];
    for batch in 0..batches {
        for head in 0..heads {
            // dst is not empty, so heads > 0 and the kv head counts divide
            // it (checked): the ratios are at least 1.
            let k_head = head / (heads / k_heads);
            let keys = match key_format {
                Some(format) => Keys::Blocks { view: k, format, head: k_head, batch, n_kv },
                None => Keys::F32(keys.load(k_head, batch)?),
            };
            let values = values.load(head / (heads / v_heads), batch)?;
            let sink = match &extras.sinks {
                Some(sinks) => Some(sinks.read_f32([head, 0, 0, 0])?),
                None => None,
            };
            let task = HeadTask {
                q,
                mask: extras.mask,
                keys,
                values,
                head,
                batch,
                slope: alibi.slope(head),
                sink,
                params,
            };
            let run = |(row, out): (usize, &mut [f32])| task.attend(row, out);
            let work = n_q.saturating_mul(n_kv).saturating_mul(d + dv);
            if work < MIN_PARALLEL_WORK || pool::thread_count() == 1 {
                outputs.chunks_exact_mut(dv).enumerate().try_for_each(run)?;
            } else {
                pool::install(|| outputs.par_chunks_exact_mut(dv).enumerate().try_for_each(run))?;
            }
            for (row, out) in outputs.chunks_exact(dv).enumerate() {
                // permute(0, 2, 1, 3): dst row (head, query, batch).
                dst.write_row_f32(head, row, batch, out)?;
            }
        }
    }
    Ok(())
}

/// The keys (or values) of one kv head as f32 rows, converted once for all
/// the query heads that share them.
struct KvCache<'a> {
    view: View<'a>,
    rows: usize,
    width: usize,
    data: Vec<f32>,
    loaded: Option<(usize, usize)>,
}

impl<'a> KvCache<'a> {
    fn new(view: View<'a>, rows: usize, width: usize) -> KvCache<'a> {
        KvCache { view, rows, width, data: vec![0.0; rows * width], loaded: None }
    }

    /// Rows of kv head `head` of batch `batch`, `[rows][width]`.
    fn load(&mut self, head: usize, batch: usize) -> Result<&[f32], OpError> {
        if self.loaded != Some((head, batch)) {
            for (row, values) in self.data.chunks_exact_mut(self.width.max(1)).enumerate() {
                self.view.read_row_f32(row, head, batch, values)?;
            }
            self.loaded = Some((head, batch));
        }
        Ok(&self.data[..self.rows * self.width])
    }
}

/// The keys of one kv head: f32 rows, or block rows of the cache itself.
enum Keys<'a> {
    F32(&'a [f32]),
    Blocks { view: View<'a>, format: BlockFormat, head: usize, batch: usize, n_kv: usize },
}

/// A query row as the keys are dotted with it.
enum Query {
    F32(Vec<f32>),
    /// Quantized to the key format's `vec_dot_format()`.
    Blocks(Vec<u8>),
}

impl Keys<'_> {
    fn count(&self, d: usize) -> usize {
        match self {
            Keys::F32(rows) => rows.len() / d.max(1),
            Keys::Blocks { n_kv, .. } => *n_kv,
        }
    }

    /// `query` as these keys are dotted with it.
    fn prepare(&self, query: Vec<f32>) -> Result<Query, OpError> {
        match self {
            Keys::F32(_) => Ok(Query::F32(query)),
            Keys::Blocks { format, .. } => {
                let target = format.vec_dot_format().ok_or(OpError::Internal {
                    op: OP,
                    detail: "key format without a dot product",
                })?;
                let mut bytes = vec![0u8; target.row_bytes(query.len())?];
                cpu_quantize::quantize_row(target, &query, &mut bytes)?;
                Ok(Query::Blocks(bytes))
            }
        }
    }

    /// Key `index` dotted with `query` (`d` values).
    fn dot(&self, index: usize, query: &Query, d: usize) -> Result<f32, OpError> {
        match (self, query) {
            (Keys::F32(rows), Query::F32(query)) => {
                let key = rows
                    .get(index * d..(index + 1) * d)
                    .ok_or(OpError::Internal { op: OP, detail: "key row outside its cache" })?;
                Ok(dot(query, key))
            }
            (Keys::Blocks { view, format, head, batch, .. }, Query::Blocks(query)) => {
                let row = view.row(index, *head, *batch)?;
                let key = row.get(..format.row_bytes(d)?).ok_or(OpError::Internal {
                    op: OP,
                    detail: "key row shorter than its blocks",
                })?;
                Ok(quant::vec_dot(*format, d, key, query)?)
            }
            _ => Err(OpError::Internal { op: OP, detail: "query prepared for other keys" }),
        }
    }
}

/// Everything one query head needs to attend.
struct HeadTask<'a> {
    q: View<'a>,
    mask: Option<View<'a>>,
    keys: Keys<'a>,
    values: &'a [f32],
    head: usize,
    batch: usize,
    slope: f32,
    sink: Option<f32>,
    params: &'a FlashAttnParams,
}

impl HeadTask<'_> {
    /// Attention output of query `row` into `out` (`Dv` values).
    fn attend(&self, row: usize, out: &mut [f32]) -> Result<(), OpError> {
        let d = self.q.layout().ne()[0];
        let mut query = vec![0.0f32; d];
        self.q.read_row_f32(row, self.head, self.batch, &mut query)?;
        let query = self.keys.prepare(query)?;
        let mask = match &self.mask {
            Some(mask) => {
                let [width, _, planes, mask_batches] = mask.layout().ne();
                let mut values = vec![0.0f32; width];
                // The checks made the mask's planes and batches divide q's.
                mask.read_row_f32(row, self.head % planes, self.batch % mask_batches, &mut values)?;
                Some(values)
            }
            None => None,
        };
        let FlashAttnParams { scale, logit_softcap, .. } = *self.params;
        let scale = if logit_softcap != 0.0 { scale / logit_softcap } else { scale };
        let mut max = f32::NEG_INFINITY;
        let mut sum = 0.0f32;
        out.fill(0.0);
        let dv = out.len();
        let n_kv = self.keys.count(d);
        for index in 0..n_kv {
            let Some(value) = self.values.get(index * dv..(index + 1) * dv) else {
                return Err(OpError::Internal { op: OP, detail: "value row outside its cache" });
            };
            let bias = match &mask {
                Some(mask) => self.slope * mask.get(index).copied().unwrap_or(0.0),
                None => 0.0,
            };
            if bias == f32::NEG_INFINITY {
                continue;
            }
            let mut score = self.keys.dot(index, &query, d)? * scale;
            if logit_softcap != 0.0 {
                score = logit_softcap * score.tanh();
            }
            score += bias;
            // Online softmax: rescale what was accumulated when the maximum
            // grows, so every exponent is at most 0.
            let (old_scale, weight) = if score > max {
                let old_scale = (max - score).exp();
                max = score;
                out.iter_mut().for_each(|acc| *acc *= old_scale);
                (old_scale, 1.0)
            } else {
                (1.0, (score - max).exp())
            };
            for (acc, &x) in out.iter_mut().zip(value) {
                *acc += weight * x;
            }
            sum = sum * old_scale + weight;
        }
        if let Some(sink) = self.sink {
            let (old_scale, weight) = if sink > max {
                let old_scale = (max - sink).exp();
                out.iter_mut().for_each(|acc| *acc *= old_scale);
                (old_scale, 1.0)
            } else {
                (1.0, (sink - max).exp())
            };
            sum = sum * old_scale + weight;
        }
        let inverse = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        out.iter_mut().for_each(|acc| *acc *= inverse);
        Ok(())
    }
}
