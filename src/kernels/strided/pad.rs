//! PAD: `src0` surrounded by zeros, or wrapped around (`ggml_pad_ext`):
//! `lp[d]` elements before and `rp[d]` after in each dimension `d`, so
//! `dst.ne[d] = src0.ne[d] + lp[d] + rp[d]`. Circular padding
//! (`op_params[8]`) fills them from the opposite side instead of with 0.
//! f32, `dst` contiguous (ggml's CPU writes it as one array); `src0` may
//! have any strides.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::{Layout, MAX_DIMS};
use crate::kernels::strided::rules::{
    OpParams, for_each_row, require_contiguous, require_same_type, require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "PAD";

/// The padding of each dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadParams {
    /// Elements before, per dimension (`op_params[0, 2, 4, 6]`).
    pub left: [usize; MAX_DIMS],
    /// Elements after, per dimension (`op_params[1, 3, 5, 7]`).
    pub right: [usize; MAX_DIMS],
    /// Wrap around instead of zeros (`op_params[8]`).
    pub circular: bool,
}

impl PadParams {
    /// Fails for a negative padding (ggml would index before the source).
    pub fn from_op_params(params: &OpParams) -> Result<PadParams, OpError> {
        let amount = |index: usize| {
            usize::try_from(params[index]).map_err(|_| OpError::InvalidParam {
                op: OP,
                param: "padding",
                value: params[index].to_string(),
                reason: "must be >= 0",
            })
        };
        let mut left = [0; MAX_DIMS];
        let mut right = [0; MAX_DIMS];
        for dim in 0..MAX_DIMS {
            left[dim] = amount(2 * dim)?;
            right[dim] = amount(2 * dim + 1)?;
        }
        Ok(PadParams { left, right, circular: params[8] != 0 })
    }
}

/// Checks f32 src0 and dst, `dst.ne = src0.ne + left + right`, dst
/// contiguous, and a non-empty src0 for circular padding of a non-empty dst.
pub fn check_pad(src0: &Layout, dst: &Layout, params: &PadParams) -> Result<(), OpError> {
    require_same_type(OP, "src0", src0, ElementType::F32)?;
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    let mut expected = src0.ne();
    for (dim, size) in expected.iter_mut().enumerate() {
        *size = size
            .checked_add(params.left[dim])
            .and_then(|n| n.checked_add(params.right[dim]))
            .ok_or(OpError::InvalidParam {
            op: OP,
            param: "padding",
            value: format!("{} + {}", params.left[dim], params.right[dim]),
            reason: "overflows the dimension",
        })?;
    }
    require_shape(OP, "dst", dst, expected)?;
    require_contiguous(OP, "dst", dst)?;
    if params.circular && src0.is_empty() && !dst.is_empty() {
        return Err(OpError::InvalidParam {
            op: OP,
            param: "circular",
            value: "1".to_string(),
            reason: "needs a non-empty src0 to wrap around",
        });
    }
    Ok(())
}

/// `dst = pad(src0)`.
pub fn pad(src0: View<'_>, dst: &mut ViewMut<'_>, params: &PadParams) -> Result<(), OpError> {
    check_pad(src0.layout(), dst.layout(), params)?;
    let ne = src0.layout().ne();
    // The source index along `dim` of destination index `i`, if any.
    let source = |dim: usize, i: usize| -> Option<usize> {
        if params.circular {
            // ne[dim] > 0: checked for a non-empty dst.
            let n = ne[dim];
            Some((i + n - params.left[dim] % n) % n)
        } else {
            i.checked_sub(params.left[dim]).filter(|&j| j < ne[dim])
        }
    };
    let mut row = vec![0.0f32; dst.layout().ne()[0]];
    let mut source_row = vec![0.0f32; ne[0]];
    for_each_row(dst.layout().ne(), |i1, i2, i3| {
        match (source(1, i1), source(2, i2), source(3, i3)) {
            (Some(j1), Some(j2), Some(j3)) => {
                src0.read_row_f32(j1, j2, j3, &mut source_row)?;
                for (i0, value) in row.iter_mut().enumerate() {
                    *value = source(0, i0).map_or(0.0, |j0| source_row[j0]);
                }
            }
            _ => row.fill(0.0),
        }
        dst.write_row_f32(i1, i2, i3, &row)
    })
}
