//! Strided views: a `Layout` over bytes that cover its whole extent.
//!
//! The constructors check `bytes.len() >= layout.byte_extent()`. With the
//! layout's own proof that every offset of an index inside `ne` stays below
//! the extent, every row and element an op asks for is in bounds; the
//! accessors still return `Result` (`IndexOutsideView`) instead of
//! panicking, so a bug in an op's index arithmetic is an error, not a crash.
//!
//! Bytes may start at any address (they are wherever the tensor sits in its
//! buffer); the conversions in `convert` read them unaligned.

use std::fmt;

use crate::kernels::strided::convert::{
    element_from_f32, element_to_f32, row_from_f32, row_to_f32,
};
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::{Layout, MAX_DIMS};

/// A read-only tensor: its layout and the bytes from its first element on.
#[derive(Clone, Copy)]
pub struct View<'a> {
    layout: Layout,
    bytes: &'a [u8],
}

impl<'a> View<'a> {
    /// Fails with `ShortBuffer` if `bytes` do not reach the layout's extent.
    pub fn new(layout: Layout, bytes: &'a [u8]) -> Result<View<'a>, OpError> {
        check_covers(&layout, bytes.len())?;
        Ok(View { layout, bytes })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes row `(i1, i2, i3)` reaches: `row_bytes` of them when the
    /// row is contiguous.
    pub fn row(&self, i1: usize, i2: usize, i3: usize) -> Result<&'a [u8], OpError> {
        let range = row_range(&self.layout, i1, i2, i3)?;
        self.bytes.get(range).ok_or_else(|| outside(&self.layout, [0, i1, i2, i3]))
    }

    /// The bytes of unit `index[0]` (element, or block) of row `index[1..]`.
    pub fn unit(&self, index: [usize; MAX_DIMS]) -> Result<&'a [u8], OpError> {
        let range = unit_range(&self.layout, index)?;
        self.bytes.get(range).ok_or_else(|| outside(&self.layout, index))
    }

    /// The value of element `index` as f32 (plain types).
    pub fn read_f32(&self, index: [usize; MAX_DIMS]) -> Result<f32, OpError> {
        Ok(element_to_f32(self.layout.elem(), self.unit(index)?))
    }

    /// Row `(i1, i2, i3)` as f32 into `out` (`ne[0]` values), whatever its
    /// stride.
    pub fn read_row_f32(
        &self,
        i1: usize,
        i2: usize,
        i3: usize,
        out: &mut [f32],
    ) -> Result<(), OpError> {
        let elem = self.layout.elem();
        if self.layout.has_contiguous_rows() {
            row_to_f32(elem, self.row(i1, i2, i3)?, out)?;
        } else {
            for (i0, value) in out.iter_mut().enumerate() {
                *value = element_to_f32(elem, self.unit([i0, i1, i2, i3])?);
            }
        }
        Ok(())
    }

    /// Element `index` of an index tensor as i64: I32 and I64 are read as
    /// stored, any other type (which the ops' checks refuse) as 0.
    pub fn read_index(&self, index: [usize; MAX_DIMS]) -> Result<i64, OpError> {
        let bytes = self.unit(index)?;
        let value = match self.layout.elem() {
            ElementType::I64 => bytes.first_chunk::<8>().map(|b| i64::from_le_bytes(*b)),
            ElementType::I32 => bytes.first_chunk::<4>().map(|b| i64::from(i32::from_le_bytes(*b))),
            _ => None,
        };
        Ok(value.unwrap_or(0))
    }
}

/// A writable tensor: where an op puts its result.
pub struct ViewMut<'a> {
    layout: Layout,
    bytes: &'a mut [u8],
}

impl<'a> ViewMut<'a> {
    /// Fails with `ShortBuffer` if `bytes` do not reach the layout's extent.
    pub fn new(layout: Layout, bytes: &'a mut [u8]) -> Result<ViewMut<'a>, OpError> {
        check_covers(&layout, bytes.len())?;
        Ok(ViewMut { layout, bytes })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// The bytes of the whole extent, writable (for ops that address a
    /// contiguous tensor by byte offset, like ACC).
    pub(crate) fn extent_mut(&mut self) -> &mut [u8] {
        let extent = self.layout.byte_extent();
        // The constructor checked that the bytes cover the extent.
        &mut self.bytes[..extent]
    }

    /// Reborrows as a read-only view.
    pub fn as_view(&self) -> View<'_> {
        View { layout: self.layout, bytes: self.bytes }
    }

    /// The bytes row `(i1, i2, i3)` reaches, writable.
    pub fn row_mut(&mut self, i1: usize, i2: usize, i3: usize) -> Result<&mut [u8], OpError> {
        let range = row_range(&self.layout, i1, i2, i3)?;
        let layout = self.layout;
        self.bytes.get_mut(range).ok_or_else(|| outside(&layout, [0, i1, i2, i3]))
    }

    /// The bytes of unit `index`, writable.
    pub fn unit_mut(&mut self, index: [usize; MAX_DIMS]) -> Result<&mut [u8], OpError> {
        let range = unit_range(&self.layout, index)?;
        let layout = self.layout;
        self.bytes.get_mut(range).ok_or_else(|| outside(&layout, index))
    }

    /// Stores `values` (`ne[0]` of them) as row `(i1, i2, i3)`, whatever its
    /// stride.
    pub fn write_row_f32(
        &mut self,
        i1: usize,
        i2: usize,
        i3: usize,
        values: &[f32],
    ) -> Result<(), OpError> {
        let elem = self.layout.elem();
        if self.layout.has_contiguous_rows() {
            row_from_f32(elem, values, self.row_mut(i1, i2, i3)?)?;
        } else {
            for (i0, &value) in values.iter().enumerate() {
                element_from_f32(elem, value, self.unit_mut([i0, i1, i2, i3])?);
            }
        }
        Ok(())
    }
}

fn check_covers(layout: &Layout, actual: usize) -> Result<(), OpError> {
    let needed = layout.byte_extent();
    if actual < needed {
        return Err(OpError::ShortBuffer {
            elem: layout.elem(),
            ne: layout.ne(),
            nb: layout.nb(),
            needed,
            actual,
        });
    }
    Ok(())
}

fn outside(layout: &Layout, index: [usize; MAX_DIMS]) -> OpError {
    OpError::IndexOutsideView { index, ne: layout.ne() }
}

fn row_range(
    layout: &Layout,
    i1: usize,
    i2: usize,
    i3: usize,
) -> Result<std::ops::Range<usize>, OpError> {
    let index = [0, i1, i2, i3];
    let [_, ne1, ne2, ne3] = layout.ne();
    if layout.is_empty() || i1 >= ne1 || i2 >= ne2 || i3 >= ne3 {
        return Err(outside(layout, index));
    }
    // In bounds of the extent (proved by `Layout::new`), hence no overflow.
    let start = layout.offset(index);
    Ok(start..start + layout.row_span())
}

fn unit_range(
    layout: &Layout,
    index: [usize; MAX_DIMS],
) -> Result<std::ops::Range<usize>, OpError> {
    if !layout.contains(index) {
        return Err(outside(layout, index));
    }
    let start = layout.offset(index);
    Ok(start..start + layout.elem().block_bytes())
}

// Debug shows the layout and the byte count, not the (possibly huge) bytes.
impl fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("layout", &self.layout)
            .field("bytes_len", &self.bytes.len())
            .finish()
    }
}

impl fmt::Debug for ViewMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewMut")
            .field("layout", &self.layout)
            .field("bytes_len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn view_accepts_bytes_beyond_the_extent() {
        let layout = Layout::contiguous(ElementType::F32, [2, 2, 1, 1]).unwrap();
        let bytes = vec![0u8; 17];
        assert!(View::new(layout, &bytes).is_ok());
    }

    #[test]
    fn view_rejects_bytes_short_of_the_extent() {
        let layout = Layout::new(ElementType::F32, [2, 3, 1, 1], [4, 40, 120, 120]).unwrap();
        let bytes = vec![0u8; 87];
        let err = View::new(layout, &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f32 tensor with ne [2, 3, 1, 1] and nb [4, 40, 120, 120] reaches 88 bytes, but only 87 were given"
        );
    }

    #[test]
    fn view_mut_rejects_bytes_short_of_the_extent() {
        let layout = Layout::contiguous(ElementType::F16, [3, 1, 1, 1]).unwrap();
        let mut bytes = vec![0u8; 5];
        assert!(matches!(
            ViewMut::new(layout, &mut bytes),
            Err(OpError::ShortBuffer { needed: 6, actual: 5, .. })
        ));
    }

    #[test]
    fn strided_rows_read_and_write_through_their_strides() {
        // A transposed 3 × 2: element (i0, i1) at i0·8 + i1·4.
        let layout = Layout::new(ElementType::F32, [3, 2, 1, 1], [8, 4, 24, 24]).unwrap();
        let bytes = f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let view = View::new(layout, &bytes).unwrap();
        let mut row = [0.0; 3];
        view.read_row_f32(1, 0, 0, &mut row).unwrap();
        assert_eq!(row, [1.0, 3.0, 5.0]);

        let mut out = vec![0u8; 24];
        let mut target = ViewMut::new(layout, &mut out).unwrap();
        target.write_row_f32(0, 0, 0, &[7.0, 8.0, 9.0]).unwrap();
        assert_eq!(target.as_view().read_f32([2, 0, 0, 0]).unwrap(), 9.0);
        assert_eq!(target.as_view().read_f32([0, 1, 0, 0]).unwrap(), 0.0);
    }

    #[test]
    fn an_index_outside_the_shape_is_an_error_not_a_panic() {
        let layout = Layout::contiguous(ElementType::F32, [2, 2, 1, 1]).unwrap();
        let bytes = vec![0u8; 16];
        let view = View::new(layout, &bytes).unwrap();
        assert!(matches!(view.row(2, 0, 0), Err(OpError::IndexOutsideView { .. })));
        assert!(matches!(view.unit([2, 0, 0, 0]), Err(OpError::IndexOutsideView { .. })));
    }

    #[test]
    fn index_tensors_read_as_i64_from_either_width() {
        let narrow = Layout::contiguous(ElementType::I32, [2, 1, 1, 1]).unwrap();
        let bytes: Vec<u8> = [-3i32, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(View::new(narrow, &bytes).unwrap().read_index([0, 0, 0, 0]).unwrap(), -3);
        let wide = Layout::contiguous(ElementType::I64, [1, 1, 1, 1]).unwrap();
        let bytes = (1i64 << 40).to_le_bytes();
        assert_eq!(View::new(wide, &bytes).unwrap().read_index([0, 0, 0, 0]).unwrap(), 1 << 40);
    }
}
