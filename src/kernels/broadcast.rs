//! Numpy broadcasting: the shape two operands broadcast to, and an
//! iteration plan that walks the output in contiguous runs.

use crate::kernels::error::KernelError;

/// The shape `a_shape` and `b_shape` broadcast to under numpy rules: shapes
/// are right-aligned, and each pair of dimensions must be equal or contain
/// a 1. The arguments' names are only used in the error message.
pub fn broadcast_shapes(
    op: &'static str,
    (a_arg, a_shape): (&'static str, &[i64]),
    (b_arg, b_shape): (&'static str, &[i64]),
) -> Result<Vec<i64>, KernelError> {
    let rank = a_shape.len().max(b_shape.len());
    let mut shape = Vec::with_capacity(rank);
    for axis in 0..rank {
        let a_dim = dim_from_right(a_shape, rank - axis);
        let b_dim = dim_from_right(b_shape, rank - axis);
        let dim = if a_dim == b_dim || b_dim == 1 {
            a_dim
        } else if a_dim == 1 {
            b_dim
        } else {
            return Err(KernelError::BroadcastMismatch {
                op,
                a_arg,
                a_shape: a_shape.to_vec(),
                b_arg,
                b_shape: b_shape.to_vec(),
                a_dim,
                b_dim,
            });
        };
        shape.push(dim);
    }
    Ok(shape)
}

/// Dimension `position_from_right` (1 = last) of `shape`, or 1 when the shape
/// has fewer dimensions (numpy's implicit leading ones).
fn dim_from_right(shape: &[i64], position_from_right: usize) -> i64 {
    shape.len().checked_sub(position_from_right).map_or(1, |index| shape[index])
}

/// One output dimension with the element stride of each operand along it
/// (0 where the operand is broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlanDim {
    size: usize,
    a_stride: usize,
    b_stride: usize,
}

/// A contiguous stretch of the output: `len` elements starting at
/// `out_offset`, reading `a` from `a_offset` in steps of `a_step` (0 or 1
/// for elementwise ops) and `b` likewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub a_offset: usize,
    pub a_step: usize,
    pub b_offset: usize,
    pub b_step: usize,
    pub out_offset: usize,
    pub len: usize,
}

/// How to walk a broadcast output of `out_shape` made from operands of
/// shapes `a_shape` and `b_shape`. Dimensions of size 1 are dropped and
/// adjacent dimensions that are contiguous in both operands are merged, so
/// the common cases (same shapes, scalar operand, row vector) become a few
/// long runs.
#[derive(Debug, Clone)]
pub(crate) struct BroadcastPlan {
    dims: Vec<PlanDim>,
    is_empty: bool,
}

impl BroadcastPlan {
    /// `out_shape` must be `broadcast_shapes(a_shape, b_shape)`, and all
    /// shapes must come from validated `TensorDesc`s (so strides cannot
    /// overflow).
    pub(crate) fn new(a_shape: &[usize], b_shape: &[usize], out_shape: &[usize]) -> Self {
        let rank = out_shape.len();
        let a_strides = broadcast_strides(a_shape, rank);
        let b_strides = broadcast_strides(b_shape, rank);
        let mut dims: Vec<PlanDim> = Vec::with_capacity(rank);
        for axis in 0..rank {
            let dim = PlanDim {
                size: out_shape[axis],
                a_stride: a_strides[axis],
                b_stride: b_strides[axis],
            };
            if dim.size == 1 {
                continue;
            }
            match dims.last_mut() {
                // The outer dimension steps over exactly one inner block in
                // both operands: the two are one dimension.
                Some(outer)
                    if outer.a_stride == dim.a_stride * dim.size
                        && outer.b_stride == dim.b_stride * dim.size =>
                {
                    outer.size *= dim.size;
                    outer.a_stride = dim.a_stride;
                    outer.b_stride = dim.b_stride;
                }
                _ => dims.push(dim),
            }
        }
        let is_empty = out_shape.contains(&0);
        if dims.is_empty() {
            dims.push(PlanDim { size: 1, a_stride: 0, b_stride: 0 });
        }
        BroadcastPlan { dims, is_empty }
    }

    /// Calls `visit` for each run, in output order. Visits nothing when the
    /// output has no elements.
    pub(crate) fn for_each_run(&self, mut visit: impl FnMut(Run)) {
        if self.is_empty {
            return;
        }
        let Some((inner, outer)) = self.dims.split_last() else {
            return;
        };
        // Odometer over the outer dimensions, tracking operand offsets
        // incrementally instead of recomputing them from indices.
        let mut index = vec![0usize; outer.len()];
        let mut a_offset = 0;
        let mut b_offset = 0;
        let mut out_offset = 0;
        loop {
            visit(Run {
                a_offset,
                a_step: inner.a_stride,
                b_offset,
                b_step: inner.b_stride,
                out_offset,
                len: inner.size,
            });
            out_offset += inner.size;
            let mut axis = outer.len();
            loop {
                if axis == 0 {
                    return;
                }
                axis -= 1;
                let dim = outer[axis];
                index[axis] += 1;
                a_offset += dim.a_stride;
                b_offset += dim.b_stride;
                if index[axis] < dim.size {
                    break;
                }
                index[axis] = 0;
                a_offset -= dim.a_stride * dim.size;
                b_offset -= dim.b_stride * dim.size;
            }
        }
    }
}

/// Row-major element strides of `shape` right-aligned into `rank`
/// dimensions, with 0 for the dimensions where it is broadcast (size 1 or
/// missing).
fn broadcast_strides(shape: &[usize], rank: usize) -> Vec<usize> {
    let mut strides = vec![0usize; rank];
    let mut stride = 1usize;
    for (position, &size) in shape.iter().rev().enumerate() {
        let axis = rank - 1 - position;
        strides[axis] = if size == 1 { 0 } else { stride };
        stride *= size.max(1);
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(a: &[usize], b: &[usize], out: &[usize]) -> Vec<Run> {
        let mut runs = Vec::new();
        BroadcastPlan::new(a, b, out).for_each_run(|run| runs.push(run));
        runs
    }

    #[test]
    fn broadcast_shapes_aligns_from_the_right() {
        let shape = broadcast_shapes("add", ("a", &[2, 1, 4]), ("b", &[3, 1])).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
    }

    #[test]
    fn broadcast_shapes_of_scalar_and_tensor_is_the_tensor() {
        let shape = broadcast_shapes("add", ("a", &[]), ("b", &[5, 2])).unwrap();
        assert_eq!(shape, vec![5, 2]);
    }

    #[test]
    fn broadcast_shapes_keeps_zero_against_one() {
        let shape = broadcast_shapes("add", ("a", &[0, 3]), ("b", &[1, 3])).unwrap();
        assert_eq!(shape, vec![0, 3]);
    }

    #[test]
    fn broadcast_shapes_rejects_unequal_dims() {
        let err = broadcast_shapes("add", ("a", &[2, 3]), ("b", &[4])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: a has shape [2, 3] and b has shape [4]: dimensions 3 and 4 cannot be broadcast together"
        );
    }

    #[test]
    fn same_shapes_merge_into_one_run() {
        let runs = runs(&[2, 3, 4], &[2, 3, 4], &[2, 3, 4]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].len, 24);
        assert_eq!((runs[0].a_step, runs[0].b_step), (1, 1));
    }

    #[test]
    fn row_vector_repeats_over_rows() {
        let runs = runs(&[2, 3], &[3], &[2, 3]);
        let offsets: Vec<_> = runs.iter().map(|r| (r.a_offset, r.b_offset)).collect();
        assert_eq!(offsets, vec![(0, 0), (3, 0)]);
        assert!(runs.iter().all(|r| r.len == 3 && r.b_step == 1));
    }

    #[test]
    fn column_vector_is_a_scalar_per_row() {
        let runs = runs(&[2, 3], &[2, 1], &[2, 3]);
        let offsets: Vec<_> = runs.iter().map(|r| (r.b_offset, r.b_step)).collect();
        assert_eq!(offsets, vec![(0, 0), (1, 0)]);
    }

    #[test]
    fn scalars_make_one_run_of_one() {
        let runs = runs(&[], &[], &[]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].len, 1);
    }

    #[test]
    fn empty_output_has_no_runs() {
        assert!(runs(&[0, 3], &[3], &[0, 3]).is_empty());
    }
}
