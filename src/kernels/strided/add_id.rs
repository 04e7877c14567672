//! ADD_ID: `dst[:, i1, i2] = src0[:, i1, i2] + src1[:, ids[i1, i2]]`
//! (`ggml_add_id`; the per-expert biases of a MoE layer): each row of
//! `src0` gets the `src1` row its expert id names.
//!
//! f32 throughout; `src0` `[ne0, n_used, n_tokens, ne3]`, `src1`
//! `[ne0, n_expert]` (a matrix: ggml reads only its dimension 1), `ids` i32
//! `[n_used, n_tokens]`. Every id is checked against `src1.ne[1]` before
//! anything is written (ggml asserts only as it goes).

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_dim_eq, require_row_stride, require_same_type, require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "ADD_ID";

/// Checks f32 src0, src1 and dst, i32 ids; `src1.ne[0] == src0.ne[0]`,
/// `src1` two-dimensional, `ids.ne[0..2] == src0.ne[1..3]`; dst of src0's
/// shape; `nb[0] == 4` for src0, src1 and dst.
pub fn check_add_id(
    src0: &Layout,
    src1: &Layout,
    ids: &Layout,
    dst: &Layout,
) -> Result<(), OpError> {
    require_same_type(OP, "src0", src0, ElementType::F32)?;
    require_same_type(OP, "src1", src1, ElementType::F32)?;
    require_same_type(OP, "ids", ids, ElementType::I32)?;
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    let [ne00, ne01, ne02, ne03] = src0.ne();
    require_dim_eq(OP, "src1", src1, 0, "src0 ne[0] ", ne00)?;
    require_dim_eq(OP, "src1", src1, 2, "", 1)?;
    require_dim_eq(OP, "src1", src1, 3, "", 1)?;
    require_dim_eq(OP, "ids", ids, 0, "src0 ne[1] ", ne01)?;
    require_dim_eq(OP, "ids", ids, 1, "src0 ne[2] ", ne02)?;
    // ggml reads ids[i1, i2] for every i3: one plane of ids.
    require_dim_eq(OP, "ids", ids, 2, "", 1)?;
    require_dim_eq(OP, "ids", ids, 3, "", 1)?;
    require_shape(OP, "dst", dst, [ne00, ne01, ne02, ne03])?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "src1", src1)?;
    require_row_stride(OP, "dst", dst)
}

/// `dst = src0 + src1[ids]` row by row; fails without writing if an id is
/// outside `0..src1.ne[1]`.
pub fn add_id(
    src0: View<'_>,
    src1: View<'_>,
    ids: View<'_>,
    dst: &mut ViewMut<'_>,
) -> Result<(), OpError> {
    check_add_id(src0.layout(), src1.layout(), ids.layout(), dst.layout())?;
    let rows = src1.layout().ne()[1];
    // Every id first, so that a bad one leaves dst untouched.
    let [_, ne01, ne02, ne03] = src0.layout().ne();
    if ne03 > 0 && !src0.layout().is_empty() {
        for_each_row([1, ne01, ne02, 1], |i1, i2, _| expert(&ids, i1, i2, rows).map(|_| ()))?;
    }
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    let mut bias = vec![0.0f32; row.len()];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        let id = expert(&ids, i1, i2, rows)?;
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        src1.read_row_f32(id, 0, 0, &mut bias)?;
        row.iter_mut().zip(&bias).for_each(|(x, b)| *x += b);
        dst.write_row_f32(i1, i2, i3, &row)
    })
}

/// The expert id at `ids[i1, i2]`, checked to be a row of `src1`.
fn expert(ids: &View<'_>, i1: usize, i2: usize, rows: usize) -> Result<usize, OpError> {
    let id = ids.read_index([i1, i2, 0, 0])?;
    usize::try_from(id).ok().filter(|&row| row < rows).ok_or(OpError::RowIdOutOfRange {
        op: OP,
        operand: "ids",
        position: [i1, i2, 0],
        id,
        rows,
        target: "src1",
    })
}
