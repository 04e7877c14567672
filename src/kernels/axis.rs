//! Axis attributes: numpy-style negative axes, checked against the rank.

use crate::kernels::error::KernelError;

/// Resolves `axis` (which may count from the end, as in numpy: -1 is the
/// last axis) to an index into `shape`, or explains why it is out of range.
/// A 0-d tensor has no axes, so every axis is out of range for it.
pub(crate) fn normalize_axis(
    op: &'static str,
    name: &'static str,
    arg: &'static str,
    axis: i64,
    shape: &[i64],
) -> Result<usize, KernelError> {
    let rank = i64::try_from(shape.len()).unwrap_or(i64::MAX);
    let resolved = if axis < 0 { axis.checked_add(rank) } else { Some(axis) };
    match resolved {
        Some(index) if (0..rank).contains(&index) => Ok(index as usize),
        _ => Err(KernelError::AxisOutOfRange { op, name, arg, axis, shape: shape.to_vec() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_axis_counts_from_the_end() {
        assert_eq!(normalize_axis("sum", "axis", "x", -1, &[2, 3, 4]), Ok(2));
        assert_eq!(normalize_axis("sum", "axis", "x", -3, &[2, 3, 4]), Ok(0));
    }

    #[test]
    fn axis_equal_to_rank_is_rejected() {
        let err = normalize_axis("sum", "axis", "x", 2, &[2, 3]).unwrap_err();
        assert_eq!(err.to_string(), "sum: axis 2 is out of range for x with shape [2, 3] (rank 2)");
    }

    #[test]
    fn scalar_has_no_axes() {
        assert!(normalize_axis("sum", "axis", "x", 0, &[]).is_err());
        assert!(normalize_axis("sum", "axis", "x", -1, &[]).is_err());
    }

    #[test]
    fn extreme_negative_axis_is_rejected_without_overflow() {
        assert!(normalize_axis("sum", "axis", "x", i64::MIN, &[2]).is_err());
    }
}
