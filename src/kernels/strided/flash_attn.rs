//! FLASH_ATTN_EXT: fused attention `softmax(q·kᵀ·scale + mask)·v`
//! (`ggml_flash_attn_ext`), with online softmax, grouped-query heads, ALiBi,
//! logit soft-capping and attention sinks.
//!
//! * `q` f32 `[D, n_q, H, B]`; `k` `[D, n_kv, H_kv, B]` and `v`
//!   `[Dv, n_kv, H_v, B]` of f16, bf16 or f32, with `H` a multiple of `H_kv`
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

use rayon::prelude::*;

use crate::kernels::gemm::pool;
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::mul_mat::dot;
use crate::kernels::strided::rules::{
    OpParams, param_f32, require_contiguous, require_dim_at_least, require_dim_eq,
    require_dim_multiple, require_row_stride, require_same_type, require_shape, require_type,
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
    require_type(OP, "k", k, &KV_TYPES, "f16, bf16, f32")?;
    require_type(OP, "v", v, &KV_TYPES, "f16, bf16, f32")?;
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
    let mut keys = KvCache::new(k, n_kv, d);
    let mut values = KvCache::new(v, n_kv, dv);
    let mut outputs = vec![0.0f32; n_q * dv];
    for batch in 0..batches {
        for head in 0..heads {
            // dst is not empty, so heads > 0 and the kv head counts divide
            // it (checked): the ratios are at least 1.
            let keys = keys.load(head / (heads / k_heads), batch)?;
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

/// Everything one query head needs to attend.
struct HeadTask<'a> {
    q: View<'a>,
    mask: Option<View<'a>>,
    keys: &'a [f32],
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
        let n_kv = self.values.len() / dv.max(1);
        for index in 0..n_kv {
            let (Some(key), Some(value)) = (
                self.keys.get(index * d..(index + 1) * d),
                self.values.get(index * dv..(index + 1) * dv),
            ) else {
                return Err(OpError::Internal { op: OP, detail: "kv row outside its cache" });
            };
            let bias = match &mask {
                Some(mask) => self.slope * mask.get(index).copied().unwrap_or(0.0),
                None => 0.0,
            };
            if bias == f32::NEG_INFINITY {
                continue;
            }
            let mut score = dot(&query, key) * scale;
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
