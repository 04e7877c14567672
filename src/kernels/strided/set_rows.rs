//! SET_ROWS: scatter the rows of `src0` into `dst` at the row ids in `src1`
//! (`ggml_set_rows`; the K/V cache write).
//!
//! `src0` is `[ne00, ne01, ne02, ne03]` (f32 or f16), `src1` the ids
//! `[ne01, ne11, ne12]` (i64 or i32) broadcast over `src0`'s dimensions 2
//! and 3 (`ne02 % ne11 == 0`, `ne03 % ne12 == 0`), and `dst`
//! `[ne00, ne1, ne02, ne03]` of f32, f16, bf16, i32 or any block format
//! (ggml's CPU writes every type that has a `from_float`; a quantized K/V
//! cache row is quantized as ggml's CPU quantizes it, `cpu_quantize`):
//! `dst[:, src1[i, i02 % ne11, i03 % ne12], i02, i03] = src0[:, i, i02, i03]`,
//! converted. Rows of `dst` no id names are left as they are.
//!
//! `dst` must have exactly `src0`'s dimensions 2 and 3: ggml's rpc-server
//! accepted a destination with fewer planes than the source (its size check
//! ignores the stride of a size-1 dimension) and wrote past it. Every id is
//! checked against `dst.ne[1]` before anything is written.

use crate::kernels::strided::convert::{row_from_f32, row_to_f32};
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_contiguous_rows, require_dim_eq, require_dim_multiple, require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "SET_ROWS";

/// Checks types (src0 f32/f16, src1 i64/i32, dst f32/f16/bf16/i32 or a
/// block format), shapes
/// (`dst.ne[0] == src0.ne[0]`, `dst.ne[2..4] == src0.ne[2..4]`,
/// `src1.ne[0] == src0.ne[1]`, `src0.ne[2] % src1.ne[1] == 0`,
/// `src0.ne[3] % src1.ne[2] == 0`, `src1.ne[3] == 1`) and contiguous rows
/// in `src0` and `dst`.
pub fn check_set_rows(src0: &Layout, src1: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &[ElementType::F32, ElementType::F16], "f32, f16")?;
    require_type(OP, "src1", src1, &[ElementType::I64, ElementType::I32], "i64, i32")?;
    if !dst.elem().is_block_format() {
        require_type(
            OP,
            "dst",
            dst,
            &[ElementType::F32, ElementType::F16, ElementType::BF16, ElementType::I32],
            "f32, f16, bf16, i32, or a block format",
        )?;
    }
    let [ne00, ne01, ne02, ne03] = src0.ne();
    let [_, ne11, ne12, _] = src1.ne();
    require_dim_eq(OP, "dst", dst, 0, "src0 ne[0] ", ne00)?;
    require_dim_eq(OP, "dst", dst, 2, "src0 ne[2] ", ne02)?;
    require_dim_eq(OP, "dst", dst, 3, "src0 ne[3] ", ne03)?;
    require_dim_eq(OP, "src1", src1, 0, "src0 ne[1] ", ne01)?;
    require_dim_multiple(OP, "src0", src0, 2, "src1 ne[1] ", ne11)?;
    require_dim_multiple(OP, "src0", src0, 3, "src1 ne[2] ", ne12)?;
    require_dim_eq(OP, "src1", src1, 3, "", 1)?;
    require_contiguous_rows(OP, "src0", src0)?;
    require_contiguous_rows(OP, "dst", dst)
}

/// `dst[src1] = src0`; fails without writing if an id is outside
/// `0..dst.ne[1]`.
pub fn set_rows(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_set_rows(src0.layout(), src1.layout(), dst.layout())?;
    let [ne00, ne01, ne02, ne03] = src0.layout().ne();
    let [_, ne11, ne12, _] = src1.layout().ne();
    let rows = dst.layout().ne()[1];
    // ggml reads every id once src0 has rows in every plane, whatever ne00.
    if ne01 > 0 && ne02 > 0 && ne03 > 0 {
        for_each_row(src1.layout().ne(), |i11, i12, _| {
            for i in 0..ne01 {
                row_id(&src1, [i, i11, i12], rows)?;
            }
            Ok(())
        })?;
    }
    let (src_elem, dst_elem) = (src0.layout().elem(), dst.layout().elem());
    let copy_bytes = src_elem == dst_elem;
    let row_bytes = src0.layout().row_bytes();
    let mut buffer = vec![0.0f32; if copy_bytes { 0 } else { ne00 }];
    let plane = |i, count| match usize::checked_rem(i, count) {
        Some(index) => Ok(index),
        None => Err(OpError::Internal { op: OP, detail: "broadcast over an empty id plane" }),
    };
    for_each_row(src0.layout().ne(), |i, i02, i03| {
        let id = row_id(&src1, [i, plane(i02, ne11)?, plane(i03, ne12)?], rows)?;
        let source = src0.row(i, i02, i03)?;
        let target = dst.row_mut(id, i02, i03)?;
        if copy_bytes {
            let (Some(target), Some(source)) =
                (target.get_mut(..row_bytes), source.get(..row_bytes))
            else {
                return Err(OpError::Internal { op: OP, detail: "row shorter than its size" });
            };
            target.copy_from_slice(source);
        } else {
            row_to_f32(src_elem, source, &mut buffer)?;
            row_from_f32(dst_elem, &buffer, target)?;
        }
        Ok(())
    })
}

/// The id at `src1[position]`, checked to be a row of `dst`.
fn row_id(src1: &View<'_>, position: [usize; 3], rows: usize) -> Result<usize, OpError> {
    let [i10, i11, i12] = position;
    let id = src1.read_index([i10, i11, i12, 0])?;
    usize::try_from(id).ok().filter(|&row| row < rows).ok_or(OpError::RowIdOutOfRange {
        op: OP,
        operand: "src1",
        position,
        id,
        rows,
        target: "dst",
    })
}
