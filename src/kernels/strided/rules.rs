//! The checks every op's `check_<op>` is made of, each producing the error
//! that names the op, the operand and the values; plus the row loop the ops
//! share.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::{Layout, MAX_DIMS};

/// ggml's op parameters: 16 `int32_t`s, floats stored by their bits.
pub type OpParams = [i32; 16];

/// The f32 stored (by its bits) in `params[index]`.
pub(crate) fn param_f32(params: &OpParams, index: usize) -> f32 {
    params.get(index).map_or(0.0, |&bits| f32::from_bits(bits as u32))
}

pub(crate) fn require_type(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    allowed: &[ElementType],
    supported: &'static str,
) -> Result<(), OpError> {
    if allowed.contains(&layout.elem()) {
        return Ok(());
    }
    Err(OpError::UnsupportedType { op, operand, actual: layout.elem(), supported })
}

pub(crate) fn require_same_type(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    expected: ElementType,
) -> Result<(), OpError> {
    if layout.elem() == expected {
        return Ok(());
    }
    Err(OpError::TypeMismatch { op, operand, actual: layout.elem(), expected })
}

pub(crate) fn require_shape(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    expected: [usize; MAX_DIMS],
) -> Result<(), OpError> {
    if layout.ne() == expected {
        return Ok(());
    }
    Err(OpError::ShapeMismatch { op, operand, actual: layout.ne(), expected })
}

/// `operand.ne[dim] == expected`; `reference` names `expected` (with a
/// trailing space), or is empty for a constant.
pub(crate) fn require_dim_eq(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    dim: usize,
    reference: &'static str,
    expected: usize,
) -> Result<(), OpError> {
    let actual = layout.ne()[dim];
    if actual == expected {
        return Ok(());
    }
    Err(OpError::DimRule { op, operand, dim, actual, violation: "!=", reference, expected })
}

/// `operand.ne[dim] >= expected`.
pub(crate) fn require_dim_at_least(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    dim: usize,
    reference: &'static str,
    expected: usize,
) -> Result<(), OpError> {
    let actual = layout.ne()[dim];
    if actual >= expected {
        return Ok(());
    }
    Err(OpError::DimRule { op, operand, dim, actual, violation: "<", reference, expected })
}

/// `operand.ne[dim]` is a whole multiple of `divisor` (`is_multiple`).
pub(crate) fn require_dim_multiple(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    dim: usize,
    reference: &'static str,
    divisor: usize,
) -> Result<(), OpError> {
    let actual = layout.ne()[dim];
    if is_multiple(actual, divisor) {
        return Ok(());
    }
    Err(OpError::DimRule {
        op,
        operand,
        dim,
        actual,
        violation: "is not a multiple of",
        reference,
        expected: divisor,
    })
}

/// `value % divisor == 0`, where only 0 is a multiple of 0 (ggml divides by
/// zero there; an empty broadcast source can only broadcast to nothing).
pub(crate) fn is_multiple(value: usize, divisor: usize) -> bool {
    match value.checked_rem(divisor) {
        Some(rest) => rest == 0,
        None => value == 0,
    }
}

/// `operand` can be repeated into `target` (`ggml_can_repeat`).
pub(crate) fn require_repeatable(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    target: &'static str,
    target_layout: &Layout,
) -> Result<(), OpError> {
    if layout.can_repeat_to(target_layout) {
        return Ok(());
    }
    Err(OpError::NotRepeatable {
        op,
        operand,
        operand_ne: layout.ne(),
        target,
        target_ne: target_layout.ne(),
    })
}

fn stride_rule(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
    holds: bool,
    rule: &'static str,
) -> Result<(), OpError> {
    if holds {
        return Ok(());
    }
    Err(OpError::StrideRule { op, operand, ne: layout.ne(), nb: layout.nb(), rule })
}

/// `nb[0]` is the element (block) size, as ggml asserts before reading rows
/// as arrays.
pub(crate) fn require_row_stride(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
) -> Result<(), OpError> {
    let holds = layout.nb()[0] == layout.elem().block_bytes();
    stride_rule(op, operand, layout, holds, "must have nb[0] == the element size")
}

/// `ggml_is_contiguous_rows`.
pub(crate) fn require_contiguous_rows(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
) -> Result<(), OpError> {
    let holds = layout.has_contiguous_rows();
    stride_rule(op, operand, layout, holds, "must have contiguous rows (nb[0] == the element size)")
}

/// `ggml_is_contiguous`.
pub(crate) fn require_contiguous(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
) -> Result<(), OpError> {
    stride_rule(op, operand, layout, layout.is_contiguous(), "must be contiguous")
}

/// `ggml_is_contiguous_1`.
pub(crate) fn require_contiguous_1(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
) -> Result<(), OpError> {
    let holds = layout.is_contiguous_1();
    stride_rule(op, operand, layout, holds, "must be contiguous apart from padded rows")
}

/// `nb[0] <= nb[1] <= nb[2] <= nb[3]`: ggml's "dst cannot be transposed or
/// permuted".
pub(crate) fn require_ordered_strides(
    op: &'static str,
    operand: &'static str,
    layout: &Layout,
) -> Result<(), OpError> {
    let nb = layout.nb();
    let holds = nb.windows(2).all(|pair| pair[0] <= pair[1]);
    stride_rule(op, operand, layout, holds, "must not be transposed or permuted (nb ascending)")
}

/// Calls `f(i1, i2, i3)` for every row of a tensor of `ne`, in ggml's order
/// (`i1` fastest); nothing when the tensor is empty, so a huge dimension
/// next to a zero one costs no time.
pub(crate) fn for_each_row(
    ne: [usize; MAX_DIMS],
    mut f: impl FnMut(usize, usize, usize) -> Result<(), OpError>,
) -> Result<(), OpError> {
    if ne.contains(&0) {
        return Ok(());
    }
    for i3 in 0..ne[3] {
        for i2 in 0..ne[2] {
            for i1 in 0..ne[1] {
                f(i1, i2, i3)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zero_is_a_multiple_of_zero() {
        assert!(is_multiple(0, 0));
        assert!(!is_multiple(3, 0));
        assert!(is_multiple(6, 3));
        assert!(!is_multiple(7, 3));
    }

    #[test]
    fn rows_are_visited_in_ggml_order() {
        let mut seen = Vec::new();
        for_each_row([9, 2, 2, 1], |i1, i2, i3| {
            seen.push((i1, i2, i3));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)]);
    }

    #[test]
    fn an_empty_tensor_has_no_rows_to_visit_however_large_its_other_dimensions() {
        let mut count = 0;
        for_each_row([0, usize::MAX, usize::MAX, 1], |_, _, _| {
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn dim_rule_message_names_operands_and_values() {
        let src0 = Layout::contiguous(ElementType::F32, [512, 2, 1, 1]).unwrap();
        let src1 = Layout::contiguous(ElementType::F32, [256, 2, 1, 1]).unwrap();
        let err =
            require_dim_eq("MUL_MAT", "src1", &src1, 0, "src0 ne[0] ", src0.ne()[0]).unwrap_err();
        assert_eq!(err.to_string(), "MUL_MAT: src1 ne[0] 256 != src0 ne[0] 512");
    }

    #[test]
    fn floats_are_read_from_the_bits_of_op_params() {
        let mut params = [0; 16];
        params[2] = 1e-5f32.to_bits() as i32;
        assert_eq!(param_f32(&params, 2), 1e-5);
        assert_eq!(param_f32(&params, 99), 0.0);
    }
}
