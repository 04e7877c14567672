//! GET_ROWS: gather rows of `src0` by the row ids in `src1`
//! (`ggml_get_rows`; the embedding lookup).
//!
//! `src0` is `[ne00, ne01, ne02, ne03]`, `src1` i32 ids `[n, ne11, ne12]`
//! with `ne11 == ne02` and `ne12 == ne03`; `dst` is `[ne00, n, ne11, ne12]`
//! with `dst[:, i10, i11, i12] = src0[:, src1[i10, i11, i12], i11, i12]`.
//! The rows are converted to f32 (an i32 `src0` is copied as i32); rows of
//! a block format (every one ggml dequantizes: not Q8_1 or Q8_K) are
//! dequantized exactly as ggml's `dequantize_row_*`.
//!
//! Every id is checked against `ne01` before anything is written: one out of
//! range is an error naming it, never a read outside `src0`.

use crate::kernels::strided::convert::{row_from_f32, row_to_f32};
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_contiguous_rows, require_dim_eq, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "GET_ROWS";

const SRC0_TYPES: [ElementType; 4] =
    [ElementType::F32, ElementType::F16, ElementType::BF16, ElementType::I32];

const SRC0_SUPPORTED: &str = "f32, f16, bf16, i32, or a block format other than q8_1 and q8_K";

/// The type `dst` has for a `src0` of `elem` (ggml: f32, except i32 stays).
fn dst_type(elem: ElementType) -> ElementType {
    if elem == ElementType::I32 { ElementType::I32 } else { ElementType::F32 }
}

/// Checks types (src0 f32/f16/bf16/i32 or a block format ggml dequantizes,
/// src1 i32, dst f32 or i32 for an i32 src0), shapes (`src0.ne[2] == src1.ne[1]`, `src0.ne[3] == src1.ne[2]`,
/// `src1.ne[3] == 1`, `dst.ne == [src0.ne[0], src1.ne[0], src1.ne[1],
/// src1.ne[2]]`) and contiguous rows in `src0` and `dst`.
pub fn check_get_rows(src0: &Layout, src1: &Layout, dst: &Layout) -> Result<(), OpError> {
    if !(src0.elem().is_block_format() && src0.elem().dequantizes()) {
        require_type(OP, "src0", src0, &SRC0_TYPES, SRC0_SUPPORTED)?;
    }
    require_same_type(OP, "src1", src1, ElementType::I32)?;
    require_same_type(OP, "dst", dst, dst_type(src0.elem()))?;
    let [ne00, _, ne02, ne03] = src0.ne();
    let [ne10, ne11, ne12, _] = src1.ne();
    require_dim_eq(OP, "src1", src1, 1, "src0 ne[2] ", ne02)?;
    require_dim_eq(OP, "src1", src1, 2, "src0 ne[3] ", ne03)?;
    require_dim_eq(OP, "src1", src1, 3, "", 1)?;
    require_shape(OP, "dst", dst, [ne00, ne10, ne11, ne12])?;
    require_contiguous_rows(OP, "src0", src0)?;
    require_contiguous_rows(OP, "dst", dst)
}

/// `dst = src0[src1]`; fails without writing if an id is outside
/// `0..src0.ne[1]`.
pub fn get_rows(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_get_rows(src0.layout(), src1.layout(), dst.layout())?;
    let rows = src0.layout().ne()[1];
    // Every id first, so that a bad one leaves dst untouched.
    for_each_row(src1.layout().ne(), |i11, i12, _| {
        for i10 in 0..src1.layout().ne()[0] {
            row_id(&src1, [i10, i11, i12], rows)?;
        }
        Ok(())
    })?;
    let copy_bytes = src0.layout().elem() == dst.layout().elem();
    let row_bytes = src0.layout().row_bytes();
    let mut buffer = vec![0.0f32; if copy_bytes { 0 } else { src0.layout().ne()[0] }];
    for_each_row(dst.layout().ne(), |i10, i11, i12| {
        let id = row_id(&src1, [i10, i11, i12], rows)?;
        let source = src0.row(id, i11, i12)?;
        let target = dst.row_mut(i10, i11, i12)?;
        if copy_bytes {
            let (Some(target), Some(source)) =
                (target.get_mut(..row_bytes), source.get(..row_bytes))
            else {
                return Err(OpError::Internal { op: OP, detail: "row shorter than its size" });
            };
            target.copy_from_slice(source);
        } else {
            row_to_f32(src0.layout().elem(), source, &mut buffer)?;
            row_from_f32(ElementType::F32, &buffer, target)?;
        }
        Ok(())
    })
}

/// The id at `src1[position]`, checked to be a row of `src0`.
fn row_id(src1: &View<'_>, position: [usize; 3], rows: usize) -> Result<usize, OpError> {
    let [i10, i11, i12] = position;
    let id = src1.read_index([i10, i11, i12, 0])?;
    usize::try_from(id).ok().filter(|&row| row < rows).ok_or(OpError::RowIdOutOfRange {
        op: OP,
        operand: "src1",
        position,
        id,
        rows,
        target: "src0",
    })
}
