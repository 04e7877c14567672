//! ARGSORT and TOP_K along each row of an f32 tensor, as ggml's CPU
//! computes them (`ggml_argsort`, `ggml_top_k`): the i32 indices of the
//! row's elements.
//!
//! ARGSORT: all indices, ascending (`op_params[0]` 0) or descending (1) by
//! value; `dst` `src0`'s shape. TOP_K: the indices of the `k = dst.ne[0]`
//! largest values, largest first except that the first two are swapped
//! (ggml's way of saying their order does not matter). ggml sorts with
//! `std::sort`, which leaves ties and NaN in an unspecified order; here ties
//! keep their index order and NaN sort as larger than every number
//! (`f32::total_cmp`), so that no input can make the sort inconsistent.

use std::cmp::Ordering;

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, require_dim_at_least, require_row_stride, require_same_type,
    require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

/// ARGSORT's order (`enum ggml_sort_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// The parameter of ARGSORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgsortParams {
    pub order: SortOrder,
}

impl ArgsortParams {
    /// Fails for an order other than 0 (ascending) and 1 (descending).
    pub fn from_op_params(params: &OpParams) -> Result<ArgsortParams, OpError> {
        let order = match params[0] {
            0 => SortOrder::Ascending,
            1 => SortOrder::Descending,
            other => {
                return Err(OpError::InvalidParam {
                    op: "ARGSORT",
                    param: "order",
                    value: other.to_string(),
                    reason: "must be 0 (ascending) or 1 (descending)",
                });
            }
        };
        Ok(ArgsortParams { order })
    }
}

fn check_common(op: &'static str, src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_same_type(op, "src0", src0, ElementType::F32)?;
    require_row_stride(op, "src0", src0)?;
    require_same_type(op, "dst", dst, ElementType::I32)?;
    require_row_stride(op, "dst", dst)?;
    // Indices are stored as i32.
    if i32::try_from(src0.ne()[0]).is_err() {
        return Err(OpError::InvalidParam {
            op,
            param: "src0 ne[0]",
            value: src0.ne()[0].to_string(),
            reason: "exceeds i32::MAX",
        });
    }
    Ok(())
}

/// Checks src0 f32 with rows of at most `i32::MAX` elements, `nb[0] == 4`,
/// and dst i32 of its shape with `nb[0] == 4`.
pub fn check_argsort(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    check_common("ARGSORT", src0, dst)?;
    require_shape("ARGSORT", "dst", dst, src0.ne())
}

/// Checks as ARGSORT, with dst `[k, ne1, ne2, ne3]` for `k <= ne0`.
pub fn check_top_k(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "TOP_K";
    check_common(OP, src0, dst)?;
    let [_, ne01, ne02, ne03] = src0.ne();
    let k = dst.ne()[0];
    require_dim_at_least(OP, "src0", src0, 0, "dst ne[0] = k = ", k)?;
    require_shape(OP, "dst", dst, [k, ne01, ne02, ne03])
}

/// The indices of `row` sorted by value in `order`, ties by index (the
/// sort is stable).
fn sorted_indices(row: &[f32], order: SortOrder) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..row.len()).collect();
    let by_value = |a: &usize, b: &usize| -> Ordering { row[*a].total_cmp(&row[*b]) };
    match order {
        SortOrder::Ascending => indices.sort_by(by_value),
        SortOrder::Descending => indices.sort_by(|a, b| by_value(b, a)),
    }
    indices
}

/// Row `(i1, i2, i3)` of `dst` set to `indices` as i32.
fn write_indices(
    dst: &mut ViewMut<'_>,
    i1: usize,
    i2: usize,
    i3: usize,
    indices: &[usize],
) -> Result<(), OpError> {
    let row = dst.row_mut(i1, i2, i3)?;
    for (chunk, &index) in row.chunks_exact_mut(4).zip(indices) {
        // Below i32::MAX: checked against ne0.
        chunk.copy_from_slice(&(index as i32).to_le_bytes());
    }
    Ok(())
}

/// `dst[:, i1, i2, i3]` = the indices that sort row `(i1, i2, i3)`.
pub fn argsort(
    src0: View<'_>,
    dst: &mut ViewMut<'_>,
    params: ArgsortParams,
) -> Result<(), OpError> {
    check_argsort(src0.layout(), dst.layout())?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        write_indices(dst, i1, i2, i3, &sorted_indices(&row, params.order))
    })
}

/// `dst[:, i1, i2, i3]` = the indices of the `k` largest values of the row,
/// largest first, the first two swapped.
pub fn top_k(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_top_k(src0.layout(), dst.layout())?;
    let k = dst.layout().ne()[0];
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        let mut indices = sorted_indices(&row, SortOrder::Descending);
        indices.truncate(k);
        if k > 1 {
            indices.swap(0, 1);
        }
        write_indices(dst, i1, i2, i3, &indices)
    })
}
