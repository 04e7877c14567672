//! CONCAT: `src0` and `src1` joined along dimension `op_params[0]`
//! (`ggml_concat`): `dst` has `src0`'s shape except that dimension, which is
//! the sum of both; every other dimension must agree.
//!
//! Any type whose elements (or blocks) can be copied: both sources and
//! `dst` of one type, copied unit by unit through their strides (ggml's CPU
//! copies elements for the 1-, 2- and 4-byte types and rows of blocks for the
//! others, which then need contiguous rows and, along dimension 0, whole
//! blocks: the layouts guarantee both).

use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::{Layout, MAX_DIMS};
use crate::kernels::strided::rules::{
    OpParams, for_each_row, require_contiguous_rows, require_same_type, require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "CONCAT";

/// The dimension CONCAT joins along: `op_params[0]`, 0 to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcatParams {
    pub dim: usize,
}

impl ConcatParams {
    /// Fails for a dimension outside 0..4.
    pub fn from_op_params(params: &OpParams) -> Result<ConcatParams, OpError> {
        usize::try_from(params[0])
            .ok()
            .filter(|&dim| dim < MAX_DIMS)
            .map(|dim| ConcatParams { dim })
            .ok_or(OpError::InvalidParam {
                op: OP,
                param: "dim",
                value: params[0].to_string(),
                reason: "must be 0, 1, 2 or 3",
            })
    }
}

/// Checks one type for all three, equal dimensions but `dim`, `dst` of the
/// joined shape, and contiguous rows of the block formats.
pub fn check_concat(
    src0: &Layout,
    src1: &Layout,
    dst: &Layout,
    params: ConcatParams,
) -> Result<(), OpError> {
    require_same_type(OP, "src1", src1, src0.elem())?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    let mut expected = src0.ne();
    for (d, size) in expected.iter_mut().enumerate() {
        if d == params.dim {
            *size = size.checked_add(src1.ne()[d]).ok_or(OpError::InvalidParam {
                op: OP,
                param: "dim",
                value: d.to_string(),
                reason: "joins dimensions whose sum overflows",
            })?;
        } else if src1.ne()[d] != *size {
            return Err(OpError::DimRule {
                op: OP,
                operand: "src1",
                dim: d,
                actual: src1.ne()[d],
                violation: "!=",
                reference: "src0 ",
                expected: *size,
            });
        }
    }
    require_shape(OP, "dst", dst, expected)?;
    if src0.elem().is_block_format() {
        for (operand, layout) in [("src0", src0), ("src1", src1), ("dst", dst)] {
            require_contiguous_rows(OP, operand, layout)?;
        }
    }
    Ok(())
}

/// `dst = src0 ⧺ src1` along `params.dim`.
pub fn concat(
    src0: View<'_>,
    src1: View<'_>,
    dst: &mut ViewMut<'_>,
    params: ConcatParams,
) -> Result<(), OpError> {
    check_concat(src0.layout(), src1.layout(), dst.layout(), params)?;
    // Units along dimension 0 (blocks for block formats), then rows.
    let mut offset = [0usize; MAX_DIMS];
    offset[params.dim] =
        if params.dim == 0 { src0.layout().row_units() } else { src0.layout().ne()[params.dim] };
    copy_into(src0, dst, [0; MAX_DIMS])?;
    copy_into(src1, dst, offset)
}

/// Copies every unit of `src` to `dst` at the index shifted by `offset`
/// (whole rows at once when both store them contiguously).
fn copy_into(
    src: View<'_>,
    dst: &mut ViewMut<'_>,
    offset: [usize; MAX_DIMS],
) -> Result<(), OpError> {
    let units = src.layout().row_units();
    let whole_rows = src.layout().has_contiguous_rows() && dst.layout().has_contiguous_rows();
    let (row_bytes, start) =
        (src.layout().row_bytes(), offset[0] * src.layout().elem().block_bytes());
    for_each_row(src.layout().ne(), |i1, i2, i3| {
        if whole_rows {
            let source = src.row(i1, i2, i3)?.get(..row_bytes);
            let target = dst.row_mut(i1 + offset[1], i2 + offset[2], i3 + offset[3])?;
            let (Some(source), Some(target)) = (source, target.get_mut(start..start + row_bytes))
            else {
                return Err(OpError::Internal { op: OP, detail: "row shorter than its size" });
            };
            target.copy_from_slice(source);
            return Ok(());
        }
        for i0 in 0..units {
            let source = src.unit([i0, i1, i2, i3])?;
            let target = [i0 + offset[0], i1 + offset[1], i2 + offset[2], i3 + offset[3]];
            dst.unit_mut(target)?.copy_from_slice(source);
        }
        Ok(())
    })
}
