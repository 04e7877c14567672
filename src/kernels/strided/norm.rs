//! RMS_NORM, NORM and L2_NORM over each row (`ggml_rms_norm`, `ggml_norm`,
//! `ggml_l2_norm`), f32.
//!
//! RMS_NORM: `y = x / sqrt(mean(x²) + eps)`; NORM: `y = (x - mean(x)) /
//! sqrt(var(x) + eps)`; L2_NORM: `y = x / max(sqrt(Σx²), eps)`. As in ggml
//! the sums accumulate in f64 and the rest is f32. `eps` is `op_params[0]`
//! (an f32) and must be `>= 0`.
//!
//! ggml asserts contiguous rows for RMS_NORM's source (and writes its
//! destination as an array), while NORM reads and writes any strides.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_row_stride, require_same_type, require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

/// The parameter of RMS_NORM and NORM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormParams {
    /// Added to the mean square (variance) before the square root.
    pub eps: f32,
}

impl NormParams {
    /// `eps` from `op_params[0]`.
    pub fn from_op_params(params: &OpParams) -> NormParams {
        NormParams { eps: param_f32(params, 0) }
    }
}

fn check_common(
    op: &'static str,
    src0: &Layout,
    dst: &Layout,
    params: NormParams,
) -> Result<(), OpError> {
    require_same_type(op, "src0", src0, ElementType::F32)?;
    require_same_type(op, "dst", dst, ElementType::F32)?;
    require_shape(op, "dst", dst, src0.ne())?;
    // NaN fails ggml's `eps >= 0.0f` assert too.
    if params.eps.is_nan() || params.eps < 0.0 {
        return Err(OpError::InvalidParam {
            op,
            param: "eps",
            value: params.eps.to_string(),
            reason: "must be >= 0",
        });
    }
    Ok(())
}

/// Checks f32 src0 and dst of the same shape, `eps >= 0`, and
/// `nb[0] == 4` for `src0` and `dst`.
pub fn check_rms_norm(src0: &Layout, dst: &Layout, params: NormParams) -> Result<(), OpError> {
    const OP: &str = "RMS_NORM";
    check_common(OP, src0, dst, params)?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "dst", dst)
}

/// Checks f32 src0 and dst of the same shape and `eps >= 0`.
pub fn check_l2_norm(src0: &Layout, dst: &Layout, params: NormParams) -> Result<(), OpError> {
    check_common("L2_NORM", src0, dst, params)
}

/// `dst = src0 / max(sqrt(Σ src0²), eps)` per row (the squares rounded to
/// f32 and summed in f64, the root taken in f32, as ggml does).
pub fn l2_norm(src0: View<'_>, dst: &mut ViewMut<'_>, params: NormParams) -> Result<(), OpError> {
    check_l2_norm(src0.layout(), dst.layout(), params)?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        let sum: f64 = row.iter().map(|&x| f64::from(x * x)).sum();
        // C's fmaxf: a NaN root gives eps.
        let root = (sum as f32).sqrt();
        let scale = 1.0 / if root.is_nan() { params.eps } else { root.max(params.eps) };
        row.iter_mut().for_each(|x| *x *= scale);
        dst.write_row_f32(i1, i2, i3, &row)
    })
}

/// Checks f32 src0 and dst of the same shape and `eps >= 0`.
pub fn check_norm(src0: &Layout, dst: &Layout, params: NormParams) -> Result<(), OpError> {
    check_common("NORM", src0, dst, params)
}

/// `dst = src0 / sqrt(mean(src0²) + eps)` per row.
pub fn rms_norm(src0: View<'_>, dst: &mut ViewMut<'_>, params: NormParams) -> Result<(), OpError> {
    check_rms_norm(src0.layout(), dst.layout(), params)?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        let sum: f64 = row.iter().map(|&x| f64::from(x * x)).sum();
        let mean = (sum / row.len() as f64) as f32;
        let scale = 1.0 / (mean + params.eps).sqrt();
        row.iter_mut().for_each(|x| *x *= scale);
        dst.write_row_f32(i1, i2, i3, &row)
    })
}

/// `dst = (src0 - mean) / sqrt(variance + eps)` per row.
pub fn norm(src0: View<'_>, dst: &mut ViewMut<'_>, params: NormParams) -> Result<(), OpError> {
    check_norm(src0.layout(), dst.layout(), params)?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        let sum: f64 = row.iter().map(|&x| f64::from(x)).sum();
        let mean = sum as f32 / row.len() as f32;
        let mut squares = 0.0f64;
        for x in row.iter_mut() {
            *x -= mean;
            squares += f64::from(*x * *x);
        }
        let variance = (squares / row.len() as f64) as f32;
        let scale = 1.0 / (variance + params.eps).sqrt();
        row.iter_mut().for_each(|x| *x *= scale);
        dst.write_row_f32(i1, i2, i3, &row)
    })
}
