//! SCALE: `dst = src0 * scale + bias` (`ggml_scale`, `ggml_scale_bias`), for
//! f32 and bf16, both contiguous as ggml's CPU kernel asserts.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_contiguous, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "SCALE";

/// The parameters of SCALE: `op_params[0]` and `[1]` as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleParams {
    pub scale: f32,
    pub bias: f32,
}

impl ScaleParams {
    pub fn from_op_params(params: &OpParams) -> ScaleParams {
        ScaleParams { scale: param_f32(params, 0), bias: param_f32(params, 1) }
    }
}

/// Checks src0 f32 or bf16, dst of the same type and shape, both contiguous.
pub fn check_scale(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &[ElementType::F32, ElementType::BF16], "f32, bf16")?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_contiguous(OP, "src0", src0)?;
    require_contiguous(OP, "dst", dst)
}

/// `dst = src0 * scale + bias`. Like ggml's f32 kernel, f32 skips the
/// addition when `bias` is 0 (so `-0 * s` stays `-0`); its bf16 kernel
/// always adds.
pub fn scale(src0: View<'_>, dst: &mut ViewMut<'_>, params: ScaleParams) -> Result<(), OpError> {
    check_scale(src0.layout(), dst.layout())?;
    let ScaleParams { scale, bias } = params;
    let skip_bias = bias == 0.0 && src0.layout().elem() == ElementType::F32;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        if skip_bias {
            row.iter_mut().for_each(|x| *x *= scale);
        } else {
            row.iter_mut().for_each(|x| *x = *x * scale + bias);
        }
        dst.write_row_f32(i1, i2, i3, &row)
    })
}
