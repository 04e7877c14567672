//! ARGMAX (`ggml_argmax`: the index of each row's largest value, i32) and
//! COUNT_EQUAL (`ggml_count_equal`: how many elements of two i32 tensors
//! agree, one i64), as ggml's CPU computes them.
//!
//! ARGMAX follows ggml's loop exactly, C's `MAX` macro included: the
//! running maximum is `max > x ? max : x` and the index moves whenever the
//! maximum equals the element, so ties give the last index and a NaN resets
//! the search at the element after it.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_dim_eq, require_row_stride, require_same_type, require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

/// Checks src0 an f32 matrix with `nb[0] == 4` and rows of at most
/// `i32::MAX`, and dst an i32 vector of one index per row with `nb[0] == 4`.
pub fn check_argmax(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "ARGMAX";
    require_same_type(OP, "src0", src0, ElementType::F32)?;
    require_dim_eq(OP, "src0", src0, 2, "", 1)?;
    require_dim_eq(OP, "src0", src0, 3, "", 1)?;
    require_row_stride(OP, "src0", src0)?;
    if i32::try_from(src0.ne()[0]).is_err() {
        return Err(OpError::InvalidParam {
            op: OP,
            param: "src0 ne[0]",
            value: src0.ne()[0].to_string(),
            reason: "exceeds i32::MAX",
        });
    }
    require_same_type(OP, "dst", dst, ElementType::I32)?;
    require_shape(OP, "dst", dst, [src0.ne()[1], 1, 1, 1])?;
    require_row_stride(OP, "dst", dst)
}

/// `dst[i1] = argmax_i0 src0[i0, i1]`.
pub fn argmax(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_argmax(src0.layout(), dst.layout())?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, _, _| {
        src0.read_row_f32(i1, 0, 0, &mut row)?;
        let (mut max, mut index) = (f32::NEG_INFINITY, 0usize);
        for (i, &x) in row.iter().enumerate() {
            max = if max > x { max } else { x };
            if max == x {
                index = i;
            }
        }
        // Below i32::MAX: checked.
        dst.unit_mut([i1, 0, 0, 0])?.copy_from_slice(&(index as i32).to_le_bytes());
        Ok(())
    })
}

/// Checks i32 src0 and src1 of one shape and dst one i64.
pub fn check_count_equal(src0: &Layout, src1: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "COUNT_EQUAL";
    require_same_type(OP, "src0", src0, ElementType::I32)?;
    require_same_type(OP, "src1", src1, ElementType::I32)?;
    require_shape(OP, "src1", src1, src0.ne())?;
    require_same_type(OP, "dst", dst, ElementType::I64)?;
    require_shape(OP, "dst", dst, [1, 1, 1, 1])
}

/// `dst = #{i : src0[i] == src1[i]}`, any strides.
pub fn count_equal(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_count_equal(src0.layout(), src1.layout(), dst.layout())?;
    let mut count = 0i64;
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        for i0 in 0..src0.layout().ne()[0] {
            let index = [i0, i1, i2, i3];
            count += i64::from(src0.read_index(index)? == src1.read_index(index)?);
        }
        Ok(())
    })?;
    dst.unit_mut([0, 0, 0, 0])?.copy_from_slice(&count.to_le_bytes());
    Ok(())
}
