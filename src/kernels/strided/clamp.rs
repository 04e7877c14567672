//! CLAMP: `dst = max(min(src0, max), min)` elementwise (`ggml_clamp`), f32
//! and f16, with C's `MIN`/`MAX` macros (so a NaN element becomes `max`),
//! computed in f32 and rounded once. `op_params[0]` and `[1]` are the f32
//! bounds.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_row_stride, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "CLAMP";

/// The bounds of CLAMP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClampParams {
    pub min: f32,
    pub max: f32,
}

impl ClampParams {
    pub fn from_op_params(params: &OpParams) -> ClampParams {
        ClampParams { min: param_f32(params, 0), max: param_f32(params, 1) }
    }

    /// `MAX(MIN(x, max), min)` with C's `a < b ? a : b` and `a > b ? a : b`.
    fn apply(self, x: f32) -> f32 {
        let upper = if x < self.max { x } else { self.max };
        if upper > self.min { upper } else { self.min }
    }
}

/// Checks src0 f32/f16 with `nb[0]` the element size and dst of its type and
/// shape, also `nb[0]` the element size.
pub fn check_clamp(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &[ElementType::F32, ElementType::F16], "f32, f16")?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "dst", dst)
}

/// `dst = clamp(src0, min, max)`.
pub fn clamp(src0: View<'_>, dst: &mut ViewMut<'_>, params: ClampParams) -> Result<(), OpError> {
    check_clamp(src0.layout(), dst.layout())?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        row.iter_mut().for_each(|x| *x = params.apply(*x));
        dst.write_row_f32(i1, i2, i3, &row)
    })
}
