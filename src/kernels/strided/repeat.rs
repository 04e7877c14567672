//! REPEAT: `dst` is `src0` tiled a whole number of times in every dimension
//! (`ggml_repeat`): `dst[i] = src0[i0 % ne00, i1 % ne01, i2 % ne02, i3 %
//! ne03]`. Elements are copied as bytes, so every type ggml's CPU repeats
//! (f32, i32, f16, bf16, i16) is exact; both need `nb[0]` the element size.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_repeatable, require_row_stride, require_same_type, require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "REPEAT";

const TYPES: [ElementType; 5] =
    [ElementType::F32, ElementType::I32, ElementType::F16, ElementType::BF16, ElementType::I16];

/// Checks src0 f32/i32/f16/bf16/i16, dst of its type that src0 repeats into,
/// `nb[0]` the element size in both.
pub fn check_repeat(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &TYPES, "f32, i32, f16, bf16, i16")?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_repeatable(OP, "src0", src0, "dst", dst)?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "dst", dst)
}

/// `dst = src0` repeated.
pub fn repeat(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_repeat(src0.layout(), dst.layout())?;
    let [_, ne01, ne02, ne03] = src0.layout().ne();
    let row_bytes = src0.layout().row_bytes();
    // dst is non-empty only if src0 is (can_repeat), so the moduli are > 0.
    for_each_row(dst.layout().ne(), |i1, i2, i3| {
        let source = src0.row(i1 % ne01, i2 % ne02, i3 % ne03)?;
        let source = source
            .get(..row_bytes)
            .ok_or(OpError::Internal { op: OP, detail: "row shorter than its size" })?;
        let target = dst.row_mut(i1, i2, i3)?;
        for tile in target.chunks_mut(row_bytes.max(1)) {
            let len = tile.len();
            tile.copy_from_slice(&source[..len]);
        }
        Ok(())
    })
}
