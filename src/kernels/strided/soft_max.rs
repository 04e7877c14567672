//! SOFT_MAX over each row (`ggml_soft_max_ext`): `dst = softmax(src0 · scale
//! + slope · mask)`, with optional attention sinks (`ggml_soft_max_add_sinks`).
//!
//! * `mask` (f16 or f32, optional): row `i1` of mask plane
//!   `(i2 % mask.ne2, i3 % mask.ne3)` is added to row `(i1, i2, i3)`; it may
//!   have more rows than `src0` (ggml pads it).
//! * ALiBi: with `max_bias > 0` (which needs a mask), head `i2` scales the
//!   mask by ggml's slope `m0^(h+1)` or `m1^(2(h - n)+1)`.
//! * `sinks` (f32, one per head `i2`, optional): an extra logit per head that
//!   takes part in the normalisation but has no output.
//!
//! As in ggml, a row whose logits are all `-inf` (and no sink) gives NaN:
//! `exp(-inf - -inf)`. Sums accumulate in f64.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_contiguous, require_contiguous_rows,
    require_dim_at_least, require_dim_eq, require_dim_multiple, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "SOFT_MAX";

/// The parameters of SOFT_MAX: `op_params[0]` and `[1]` as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftMaxParams {
    /// Multiplies the logits before the mask is added.
    pub scale: f32,
    /// ALiBi's maximum bias; 0 disables it.
    pub max_bias: f32,
}

impl SoftMaxParams {
    pub fn from_op_params(params: &OpParams) -> SoftMaxParams {
        SoftMaxParams { scale: param_f32(params, 0), max_bias: param_f32(params, 1) }
    }
}

/// ggml's ALiBi slopes for `n_head` heads and `max_bias` (shared with
/// FLASH_ATTN_EXT).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Alibi {
    max_bias: f32,
    n_head_log2: u32,
    m0: f32,
    m1: f32,
}

impl Alibi {
    pub(crate) fn new(max_bias: f32, n_head: usize) -> Alibi {
        // 1 << floor(log2(n_head)): the largest power of two <= n_head.
        let n_head = u32::try_from(n_head).unwrap_or(u32::MAX).max(1);
        let n_head_log2 = 1u32 << (31 - n_head.leading_zeros());
        let m0 = 2.0f32.powf(-max_bias / n_head_log2 as f32);
        let m1 = 2.0f32.powf(-(max_bias / 2.0) / n_head_log2 as f32);
        Alibi { max_bias, n_head_log2, m0, m1 }
    }

    /// The slope of head `head`: 1 without ALiBi.
    pub(crate) fn slope(&self, head: usize) -> f32 {
        if self.max_bias.is_nan() || self.max_bias <= 0.0 {
            return 1.0;
        }
        let head = u32::try_from(head).unwrap_or(u32::MAX);
        if head < self.n_head_log2 {
            self.m0.powf((head + 1) as f32)
        } else {
            self.m1.powf((2 * u64::from(head - self.n_head_log2) + 1) as f32)
        }
    }
}

/// C's `MAX(a, b)`: `a > b ? a : b` (a NaN `a` yields `b`).
pub(crate) fn c_max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Checks src0 f32 contiguous; dst f32 of its shape with contiguous rows;
/// `mask` f16/f32 contiguous with `ne0 == src0.ne0`, `ne1 >= src0.ne1` and
/// src0's dimensions 2 and 3 multiples of its own; `sinks` f32 with
/// `ne0 == src0.ne2`; a mask when `max_bias > 0`.
pub fn check_soft_max(
    src0: &Layout,
    mask: Option<&Layout>,
    sinks: Option<&Layout>,
    dst: &Layout,
    params: SoftMaxParams,
) -> Result<(), OpError> {
    require_same_type(OP, "src0", src0, ElementType::F32)?;
    require_contiguous(OP, "src0", src0)?;
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_contiguous_rows(OP, "dst", dst)?;
    let [ne00, ne01, ne02, _] = src0.ne();
    if let Some(mask) = mask {
        require_type(OP, "mask", mask, &[ElementType::F16, ElementType::F32], "f16, f32")?;
        require_contiguous(OP, "mask", mask)?;
        require_dim_eq(OP, "mask", mask, 0, "src0 ne[0] ", ne00)?;
        require_dim_at_least(OP, "mask", mask, 1, "src0 ne[1] ", ne01)?;
        require_dim_multiple(OP, "src0", src0, 2, "mask ne[2] ", mask.ne()[2])?;
        require_dim_multiple(OP, "src0", src0, 3, "mask ne[3] ", mask.ne()[3])?;
    } else if params.max_bias > 0.0 {
        return Err(OpError::MissingOperand { op: OP, operand: "mask", reason: "max_bias > 0" });
    }
    if let Some(sinks) = sinks {
        require_same_type(OP, "sinks", sinks, ElementType::F32)?;
        require_dim_eq(OP, "sinks", sinks, 0, "src0 ne[2] ", ne02)?;
    }
    Ok(())
}

/// `dst = softmax(src0 · scale + slope · mask)` per row, sinks included in
/// the normalisation.
pub fn soft_max(
    src0: View<'_>,
    mask: Option<View<'_>>,
    sinks: Option<View<'_>>,
    dst: &mut ViewMut<'_>,
    params: SoftMaxParams,
) -> Result<(), OpError> {
    check_soft_max(
        src0.layout(),
        mask.as_ref().map(View::layout),
        sinks.as_ref().map(View::layout),
        dst.layout(),
        params,
    )?;
    let [ne00, _, ne02, _] = src0.layout().ne();
    let alibi = Alibi::new(params.max_bias, ne02);
    let mut logits = vec![0.0f32; ne00];
    let mut mask_row = vec![0.0f32; if mask.is_some() { ne00 } else { 0 }];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut logits)?;
        logits.iter_mut().for_each(|x| *x *= params.scale);
        if let Some(mask) = &mask {
            // The checks made mask.ne2 and mask.ne3 divide non-empty planes.
            let [_, _, ne12, ne13] = mask.layout().ne();
            mask.read_row_f32(i1, i2 % ne12, i3 % ne13, &mut mask_row)?;
            let slope = alibi.slope(i2);
            for (x, &m) in logits.iter_mut().zip(&mask_row) {
                *x += slope * m;
            }
        }
        let sink = match &sinks {
            Some(sinks) => Some(sinks.read_f32([i2, 0, 0, 0])?),
            None => None,
        };
        let mut max = logits.iter().fold(f32::NEG_INFINITY, |max, &x| c_max(max, x));
        if let Some(sink) = sink {
            max = c_max(max, sink);
        }
        let mut sum = 0.0f64;
        for x in logits.iter_mut() {
            *x = (*x - max).exp();
            sum += f64::from(*x);
        }
        if let Some(sink) = sink {
            sum += f64::from((sink - max).exp());
        }
        let inverse = (1.0 / sum) as f32;
        logits.iter_mut().for_each(|x| *x *= inverse);
        dst.write_row_f32(i1, i2, i3, &logits)
    })
}
