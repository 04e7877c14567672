//! FILL: every element of `dst` set to the f32 `op_params[0]`
//! (`ggml_fill`), f32 or f16 (rounded once), `dst` of `src0`'s type and
//! shape, both contiguous as ggml asserts. `src0`'s values are not read.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_contiguous, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "FILL";

/// The value FILL writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillParams {
    pub value: f32,
}

impl FillParams {
    pub fn from_op_params(params: &OpParams) -> FillParams {
        FillParams { value: param_f32(params, 0) }
    }
}

/// Checks src0 f32/f16 contiguous and dst of its type and shape, contiguous.
pub fn check_fill(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &[ElementType::F32, ElementType::F16], "f32, f16")?;
    require_contiguous(OP, "src0", src0)?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_contiguous(OP, "dst", dst)
}

/// `dst[..] = value` (`src0` is checked, not read).
pub fn fill(src0: View<'_>, dst: &mut ViewMut<'_>, params: FillParams) -> Result<(), OpError> {
    check_fill(src0.layout(), dst.layout())?;
    let row = vec![params.value; dst.layout().ne()[0]];
    for_each_row(dst.layout().ne(), |i1, i2, i3| dst.write_row_f32(i1, i2, i3, &row))
}
