//! Views over compact row-major tensor bytes, and the dtype + shape
//! description the planner validates against.
//!
//! Every constructor checks that the shape is non-negative, that its byte
//! size fits in `usize` (checked arithmetic), and — for views — that the data
//! holds exactly that many bytes. Kernels rely on these invariants.

use std::fmt;

use crate::kernels::dtype::DType;
use crate::kernels::error::KernelError;

/// A tensor's dtype and shape, without data: what a graph planner has before
/// anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorDesc<'a> {
    dtype: DType,
    shape: &'a [i64],
    num_elements: usize,
}

impl<'a> TensorDesc<'a> {
    /// Checks that no dimension is negative and that the tensor's byte size
    /// is addressable.
    pub fn new(dtype: DType, shape: &'a [i64]) -> Result<Self, KernelError> {
        if let Some((index, &dim)) = shape.iter().enumerate().find(|(_, d)| **d < 0) {
            return Err(KernelError::NegativeDimension { shape: shape.to_vec(), index, dim });
        }
        let too_large = || KernelError::ShapeTooLarge { shape: shape.to_vec(), dtype };
        // Zero dimensions count as 1 here: a 0 later in the shape must not
        // hide an overflow of the others, because strides computed from
        // them would overflow (numpy rejects such shapes too).
        let nonzero_product = checked_dims_product(shape).ok_or_else(too_large)?;
        nonzero_product.checked_mul(dtype.size_bytes()).ok_or_else(too_large)?;
        let num_elements = if shape.contains(&0) { 0 } else { nonzero_product };
        Ok(TensorDesc { dtype, shape, num_elements })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &'a [i64] {
        self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Product of the shape (1 for a 0-d scalar).
    pub fn num_elements(&self) -> usize {
        self.num_elements
    }

    /// Bytes of compact row-major data this tensor occupies.
    pub fn size_bytes(&self) -> usize {
        // Cannot overflow: checked in `new`.
        self.num_elements * self.dtype.size_bytes()
    }

    /// The shape as `usize` dimensions (valid because `new` rejected
    /// negative dimensions).
    pub(crate) fn dims(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }
}

/// Product of the dimensions with zeros counted as 1, `None` on overflow
/// (or on a negative dimension).
fn checked_dims_product(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).ok()?;
        acc.checked_mul(d.max(1))
    })
}

/// Read-only view of a compact row-major tensor.
///
/// `data` may start at any byte address: it comes straight from the wire.
/// Kernels read it in place when it happens to be aligned for the element
/// type and copy it into an aligned buffer otherwise.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    desc: TensorDesc<'a>,
    data: &'a [u8],
}

/// The accessors both views share: what their descriptor says.
macro_rules! desc_accessors {
    () => {
        pub fn desc(&self) -> TensorDesc<'a> {
            self.desc
        }

        pub fn dtype(&self) -> DType {
            self.desc.dtype
        }

        pub fn shape(&self) -> &'a [i64] {
            self.desc.shape
        }

        pub fn num_elements(&self) -> usize {
            self.desc.num_elements
        }
    };
}

impl<'a> TensorView<'a> {
    pub fn new(dtype: DType, shape: &'a [i64], data: &'a [u8]) -> Result<Self, KernelError> {
        let desc = TensorDesc::new(dtype, shape)?;
        check_data_length(&desc, data.len())?;
        Ok(TensorView { desc, data })
    }

    desc_accessors!();

    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// Writable view of a compact row-major tensor: where a kernel puts its
/// result.
pub struct TensorViewMut<'a> {
    desc: TensorDesc<'a>,
    data: &'a mut [u8],
}

impl<'a> TensorViewMut<'a> {
    pub fn new(dtype: DType, shape: &'a [i64], data: &'a mut [u8]) -> Result<Self, KernelError> {
        let desc = TensorDesc::new(dtype, shape)?;
        check_data_length(&desc, data.len())?;
        Ok(TensorViewMut { desc, data })
    }

    desc_accessors!();

    pub fn data(&self) -> &[u8] {
        self.data
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.data
    }

    /// Reborrows as a read-only view.
    pub fn as_view(&self) -> TensorView<'_> {
        TensorView { desc: self.desc, data: self.data }
    }
}

// Debug shows dtype, shape and byte count, not the (possibly huge) data.
fn debug_view(
    name: &str,
    desc: &TensorDesc<'_>,
    len: usize,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    f.debug_struct(name)
        .field("dtype", &desc.dtype)
        .field("shape", &desc.shape)
        .field("data_len", &len)
        .finish()
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_view("TensorView", &self.desc, self.data.len(), f)
    }
}

impl fmt::Debug for TensorViewMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_view("TensorViewMut", &self.desc, self.data.len(), f)
    }
}

fn check_data_length(desc: &TensorDesc<'_>, actual: usize) -> Result<(), KernelError> {
    let expected = desc.size_bytes();
    if actual != expected {
        return Err(KernelError::DataLengthMismatch {
            dtype: desc.dtype,
            shape: desc.shape.to_vec(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// What an op will produce, as computed by its validation function: the
/// output's dtype and shape, and a rough cost so the server can decide
/// whether to run the op on a worker thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub dtype: DType,
    pub shape: Vec<i64>,
    /// Rough count of floating-point (or integer) operations. Memory-bound
    /// ops count about one per element touched; transcendental functions
    /// count about ten. Saturates instead of overflowing.
    pub estimated_flops: u64,
}

impl OutputSpec {
    /// Checks that `out` is exactly what this op produces; the error names
    /// `out` and the expected dtype or shape.
    pub(crate) fn check_output(
        &self,
        op: &'static str,
        out: &TensorDesc<'_>,
    ) -> Result<(), KernelError> {
        if out.dtype() != self.dtype {
            return Err(KernelError::DTypeMismatch {
                op,
                arg: "out",
                actual: out.dtype(),
                expected: self.dtype,
            });
        }
        if out.shape() != self.shape.as_slice() {
            return Err(KernelError::ShapeMismatch {
                op,
                arg: "out",
                actual: out.shape().to_vec(),
                expected: self.shape.clone(),
            });
        }
        Ok(())
    }
}

/// `count * per_element` as a saturating `u64` cost.
pub(crate) fn flops(count: usize, per_element: u64) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX).saturating_mul(per_element)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_accepts_data_of_exact_length() {
        let data = [0u8; 24];
        let view = TensorView::new(DType::Float32, &[2, 3], &data).unwrap();
        assert_eq!(view.num_elements(), 6);
        assert_eq!(view.desc().size_bytes(), 24);
    }

    #[test]
    fn view_rejects_mismatched_data_length() {
        let data = [0u8; 20];
        let err = TensorView::new(DType::Float32, &[2, 3], &data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor of dtype float32 and shape [2, 3] needs 24 bytes of data, but 20 were given"
        );
    }

    #[test]
    fn view_mut_rejects_mismatched_data_length() {
        let mut data = [0u8; 7];
        let err = TensorViewMut::new(DType::Int64, &[1], &mut data).unwrap_err();
        assert!(matches!(err, KernelError::DataLengthMismatch { expected: 8, actual: 7, .. }));
    }

    #[test]
    fn desc_rejects_negative_dimension() {
        let err = TensorDesc::new(DType::Int8, &[2, -1]).unwrap_err();
        assert_eq!(err.to_string(), "shape [2, -1] has negative dimension -1 at index 1");
    }

    #[test]
    fn desc_rejects_element_count_overflow() {
        let err = TensorDesc::new(DType::Int8, &[i64::MAX, i64::MAX]).unwrap_err();
        assert!(matches!(err, KernelError::ShapeTooLarge { .. }));
    }

    #[test]
    fn desc_rejects_byte_size_overflow() {
        let huge = i64::try_from(usize::MAX / 4).unwrap();
        let err = TensorDesc::new(DType::Float64, &[huge]).unwrap_err();
        assert!(matches!(err, KernelError::ShapeTooLarge { .. }));
    }

    #[test]
    fn desc_rejects_overflowing_dims_hidden_behind_a_zero() {
        let err = TensorDesc::new(DType::Int8, &[i64::MAX, i64::MAX, 0]).unwrap_err();
        assert!(matches!(err, KernelError::ShapeTooLarge { .. }));
    }

    #[test]
    fn scalar_has_one_element() {
        let data = 1.5f64.to_ne_bytes();
        let view = TensorView::new(DType::Float64, &[], &data).unwrap();
        assert_eq!(view.num_elements(), 1);
        assert_eq!(view.desc().rank(), 0);
    }

    #[test]
    fn zero_size_tensor_has_no_bytes() {
        let view = TensorView::new(DType::Float32, &[3, 0, 2], &[]).unwrap();
        assert_eq!(view.num_elements(), 0);
    }

    #[test]
    fn debug_shows_shape_and_length_not_data() {
        let data = [7u8; 16];
        let view = TensorView::new(DType::Float32, &[2, 2], &data).unwrap();
        assert_eq!(
            format!("{view:?}"),
            "TensorView { dtype: Float32, shape: [2, 2], data_len: 16 }"
        );
    }

    #[test]
    fn view_mut_reborrows_as_view() {
        let mut data = [1u8, 2, 3];
        let view = TensorViewMut::new(DType::UInt8, &[3], &mut data).unwrap();
        assert_eq!(view.as_view().data(), &[1, 2, 3]);
    }
}
