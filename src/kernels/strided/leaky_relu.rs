//! LEAKY_RELU: `dst = max(x, 0) + slope · min(x, 0)` elementwise
//! (`ggml_leaky_relu`), f32 and f16 computed in f32 and rounded once;
//! `op_params[0]` is the f32 slope. Both tensors contiguous apart from
//! padded rows, as ggml's CPU walks rows by `nb[1]` alone.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_contiguous_1, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "LEAKY_RELU";

/// The slope of the negative half.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyReluParams {
    pub negative_slope: f32,
}

impl LeakyReluParams {
    pub fn from_op_params(params: &OpParams) -> LeakyReluParams {
        LeakyReluParams { negative_slope: param_f32(params, 0) }
    }
}

/// Checks src0 f32/f16 and dst of its type and shape, both contiguous apart
/// from padded rows.
pub fn check_leaky_relu(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &[ElementType::F32, ElementType::F16], "f32, f16")?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_contiguous_1(OP, "src0", src0)?;
    require_contiguous_1(OP, "dst", dst)
}

/// `dst = leaky_relu(src0)`.
pub fn leaky_relu(
    src0: View<'_>,
    dst: &mut ViewMut<'_>,
    params: LeakyReluParams,
) -> Result<(), OpError> {
    check_leaky_relu(src0.layout(), dst.layout())?;
    let slope = params.negative_slope;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        for x in row.iter_mut() {
            let (positive, negative) =
                (if *x > 0.0 { *x } else { 0.0 }, if *x < 0.0 { *x } else { 0.0 });
            *x = positive + slope * negative;
        }
        dst.write_row_f32(i1, i2, i3, &row)
    })
}
