//! ACC: `dst = src0`, then `src1` added into a strided window of it
//! (`ggml_acc`): element `(i0, i1, i2, i3)` of `src1` is added at byte
//! `offset + 4·i0 + i1·nb1 + i2·nb2 + i3·nb3` of the (contiguous) tensor,
//! reading `src0`'s value there. `op_params`: `[0..3]` nb1, nb2, nb3,
//! `[3]` offset, `[4]` in place (the caller's business: an in-place
//! source has been copied already).
//!
//! ggml checks only that the *first byte* of the window's last element lies
//! inside `dst` (an element may then straddle the end), and converts
//! negative `int32` strides to huge sizes; here every parameter must be
//! `>= 0` and the whole window inside the tensor, or nothing is written.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, require_contiguous, require_row_stride, require_same_type,
    require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "ACC";

/// The window ACC adds into: strides and offset in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccParams {
    pub nb1: usize,
    pub nb2: usize,
    pub nb3: usize,
    pub offset: usize,
}

impl AccParams {
    /// Fails for a negative stride or offset.
    pub fn from_op_params(params: &OpParams) -> Result<AccParams, OpError> {
        let field = |index: usize, param: &'static str| {
            usize::try_from(params[index]).map_err(|_| OpError::InvalidParam {
                op: OP,
                param,
                value: params[index].to_string(),
                reason: "must be >= 0",
            })
        };
        Ok(AccParams {
            nb1: field(0, "nb1")?,
            nb2: field(1, "nb2")?,
            nb3: field(2, "nb3")?,
            offset: field(3, "offset")?,
        })
    }

    /// One past the last byte the window over `src1`'s shape reaches, if it
    /// is computable.
    fn window_end(&self, src1: &Layout) -> Option<usize> {
        if src1.is_empty() {
            return Some(0);
        }
        let [ne10, ne11, ne12, ne13] = src1.ne();
        let mut end = self.offset.checked_add(4)?;
        for (count, stride) in [(ne10, 4), (ne11, self.nb1), (ne12, self.nb2), (ne13, self.nb3)] {
            end = end.checked_add((count - 1).checked_mul(stride)?)?;
        }
        Some(end)
    }
}

/// Checks f32 src0, src1 and dst; dst of src0's shape, both contiguous;
/// src1 with `nb[0] == 4` and at most src0's elements; and the window
/// wholly inside the tensor.
pub fn check_acc(
    src0: &Layout,
    src1: &Layout,
    dst: &Layout,
    params: &AccParams,
) -> Result<(), OpError> {
    require_same_type(OP, "src0", src0, ElementType::F32)?;
    require_same_type(OP, "src1", src1, ElementType::F32)?;
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_contiguous(OP, "src0", src0)?;
    require_contiguous(OP, "dst", dst)?;
    require_row_stride(OP, "src1", src1)?;
    if src1.elements() > src0.elements() {
        return Err(OpError::InvalidParam {
            op: OP,
            param: "src1 element count",
            value: src1.elements().to_string(),
            reason: "exceeds src0's",
        });
    }
    match params.window_end(src1) {
        Some(end) if end <= dst.byte_extent() => Ok(()),
        _ => Err(OpError::InvalidParam {
            op: OP,
            param: "window (offset, nb1, nb2, nb3)",
            value: format!("({}, {}, {}, {})", params.offset, params.nb1, params.nb2, params.nb3),
            reason: "reaches past the end of src0",
        }),
    }
}

/// `dst = src0` with `src1` added into the window.
pub fn acc(
    src0: View<'_>,
    src1: View<'_>,
    dst: &mut ViewMut<'_>,
    params: &AccParams,
) -> Result<(), OpError> {
    check_acc(src0.layout(), src1.layout(), dst.layout(), params)?;
    let extent = dst.layout().byte_extent();
    let source = src0
        .bytes()
        .get(..extent)
        .ok_or(OpError::Internal { op: OP, detail: "src0 shorter than dst" })?;
    let target = dst.extent_mut();
    target.copy_from_slice(source);
    let mut row = vec![0.0f32; src1.layout().ne()[0]];
    for_each_row(src1.layout().ne(), |i1, i2, i3| {
        src1.read_row_f32(i1, i2, i3, &mut row)?;
        // Inside the extent: checked for the window's last element.
        let start = params.offset + i1 * params.nb1 + i2 * params.nb2 + i3 * params.nb3;
        for (i0, &value) in row.iter().enumerate() {
            let at = start + 4 * i0;
            let (Some(base), Some(out)) = (source.get(at..at + 4), target.get_mut(at..at + 4))
            else {
                return Err(OpError::Internal { op: OP, detail: "window outside the tensor" });
            };
            let sum = f32::from_le_bytes([base[0], base[1], base[2], base[3]]) + value;
            out.copy_from_slice(&sum.to_le_bytes());
        }
        Ok(())
    })
}
