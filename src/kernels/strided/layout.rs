//! A ggml tensor's geometry: element type, `ne` (elements per dimension,
//! dimension 0 fastest) and `nb` (byte strides), checked once.
//!
//! For block formats `nb[0]` is the stride between blocks and `ne[0]` still
//! counts elements (as in ggml); here dimension 0 is indexed in *units*:
//! blocks for block formats, elements for the plain types (one unit each).
//! A block format's rows are whole blocks stored one after the other
//! (`nb[0] == block_bytes` whenever a row has more than one block): ggml's
//! `ggml_nbytes` assumes so, and every kernel of ggml reads them so.
//!
//! `Layout::new` proves that the byte extent — from the first byte the strides
//! reach to one past the last — is computable without overflow, so every
//! offset `sum(i[k] * nb[k])` with `i[k] < ne[k]` is too. Views (`view`) then
//! check that their bytes cover that extent, which is what lets every op
//! index rows without further checks.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;

/// Dimensions of every ggml tensor.
pub const MAX_DIMS: usize = 4;

/// A tensor's element type, shape and byte strides, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    elem: ElementType,
    ne: [usize; MAX_DIMS],
    nb: [usize; MAX_DIMS],
    elements: usize,
    extent: usize,
}

impl Layout {
    /// Checks that `ne[0]` is a whole number of blocks stored contiguously
    /// (block formats), that the element count fits in `usize` (zero
    /// dimensions counted as 1, so a zero cannot hide an overflow of the
    /// others) and that the byte extent does.
    pub fn new(
        elem: ElementType,
        ne: [usize; MAX_DIMS],
        nb: [usize; MAX_DIMS],
    ) -> Result<Layout, OpError> {
        let block = elem.block_elems();
        if !ne[0].is_multiple_of(block) {
            return Err(OpError::PartialBlock { elem, ne, block });
        }
        let block_bytes = elem.block_bytes();
        if elem.is_block_format() && ne[0] > block && nb[0] != block_bytes {
            return Err(OpError::BlockStride { elem, ne, nb, block_bytes });
        }
        let too_large = OpError::TooLarge { elem, ne, nb };
        let nonzero_product = ne
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n.max(1)))
            .ok_or(too_large.clone())?;
        let is_empty = ne.contains(&0);
        let elements = if is_empty { 0 } else { nonzero_product };
        let extent = if is_empty { 0 } else { extent_of(elem, ne, nb).ok_or(too_large)? };
        Ok(Layout { elem, ne, nb, elements, extent })
    }

    /// The compact layout of `ne` (ggml's `ggml_new_tensor`): each stride
    /// the size of the dimensions before it.
    pub fn contiguous(elem: ElementType, ne: [usize; MAX_DIMS]) -> Result<Layout, OpError> {
        let block = elem.block_elems();
        if !ne[0].is_multiple_of(block) {
            return Err(OpError::PartialBlock { elem, ne, block });
        }
        let too_large = || OpError::TooLarge { elem, ne, nb: [0; MAX_DIMS] };
        let mut nb = [elem.block_bytes(); MAX_DIMS];
        nb[1] = nb[0].checked_mul(ne[0] / block).ok_or_else(too_large)?;
        for dim in 2..MAX_DIMS {
            nb[dim] = nb[dim - 1].checked_mul(ne[dim - 1]).ok_or_else(too_large)?;
        }
        Layout::new(elem, ne, nb)
    }

    pub fn elem(&self) -> ElementType {
        self.elem
    }

    pub fn ne(&self) -> [usize; MAX_DIMS] {
        self.ne
    }

    pub fn nb(&self) -> [usize; MAX_DIMS] {
        self.nb
    }

    /// Number of elements (`ggml_nelements`).
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Number of rows (`ggml_nrows`: `ne[1] * ne[2] * ne[3]`), 0 when empty.
    pub fn rows(&self) -> usize {
        if self.is_empty() { 0 } else { self.ne[1] * self.ne[2] * self.ne[3] }
    }

    /// Bytes from the first byte the strides reach to one past the last
    /// (`ggml_nbytes`); 0 for an empty tensor.
    pub fn byte_extent(&self) -> usize {
        self.extent
    }

    /// Whether some dimension is 0 (`ggml_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.ne.contains(&0)
    }

    /// Units along dimension 0: blocks for block formats, else elements.
    pub fn row_units(&self) -> usize {
        self.ne[0] / self.elem.block_elems()
    }

    /// Bytes of one row stored contiguously (`ggml_row_size`).
    pub fn row_bytes(&self) -> usize {
        // At most the extent when the tensor is not empty; an empty tensor's
        // row may be nominally huge, so saturate rather than wrap.
        self.row_units().saturating_mul(self.elem.block_bytes())
    }

    /// Bytes a row's strides reach: `row_bytes` when the row is contiguous.
    pub(crate) fn row_span(&self) -> usize {
        match self.row_units() {
            0 => 0,
            units => (units - 1) * self.nb[0] + self.elem.block_bytes(),
        }
    }

    /// Same `ne` in every dimension (`ggml_are_same_shape`).
    pub fn same_shape(&self, other: &Layout) -> bool {
        self.ne == other.ne
    }

    /// Whether `target` is this tensor repeated a whole number of times in
    /// every dimension (`ggml_can_repeat(self, target)`); an empty tensor
    /// repeats only into an empty one.
    pub fn can_repeat_to(&self, target: &Layout) -> bool {
        if self.is_empty() {
            return target.is_empty();
        }
        self.ne.iter().zip(&target.ne).all(|(&n, &t)| t % n == 0)
    }

    /// Whether dimension 0 is contiguous: `nb[0]` is the block size, or the
    /// row is a single block (`ggml_is_contiguous_rows`).
    pub fn has_contiguous_rows(&self) -> bool {
        self.ne[0] == self.elem.block_elems() || self.nb[0] == self.elem.block_bytes()
    }

    /// Compact row-major storage (`ggml_is_contiguous`).
    pub fn is_contiguous(&self) -> bool {
        self.is_contiguous_beyond(0)
    }

    /// Compact except that rows may be padded (`ggml_is_contiguous_1`).
    pub fn is_contiguous_1(&self) -> bool {
        self.is_contiguous_beyond(1)
    }

    /// Compact except that rows and matrices may be padded
    /// (`ggml_is_contiguous_2`).
    pub fn is_contiguous_2(&self) -> bool {
        self.is_contiguous_beyond(2)
    }

    /// Contiguous rows, and dimensions 2 and 3 compact over padded rows
    /// (ggml's `ggml_is_padded_1d`).
    pub fn is_padded_1d(&self) -> bool {
        self.nb[0] == self.elem.block_bytes()
            && Some(self.nb[2]) == self.nb[1].checked_mul(self.ne[1])
            && Some(self.nb[3]) == self.nb[2].checked_mul(self.ne[2])
    }

    /// ggml's `ggml_is_contiguous_m_n(t, m, 4)`: dimensions up to `m` may
    /// have any stride, those after it must follow on compactly (size-1
    /// dimensions excepted).
    fn is_contiguous_beyond(&self, m: usize) -> bool {
        let block_bytes = self.elem.block_bytes();
        if self.ne[0] != self.elem.block_elems() && self.nb[0] != block_bytes {
            return false;
        }
        let mut next = block_bytes.saturating_mul(self.row_units());
        for dim in 1..MAX_DIMS {
            if dim > m {
                if self.ne[dim] != 1 && self.nb[dim] != next {
                    return false;
                }
                next = next.saturating_mul(self.ne[dim]);
            } else {
                next = self.ne[dim].saturating_mul(self.nb[dim]);
            }
        }
        true
    }

    /// Byte offset of unit `index[0]` of row `index[1..]`. In bounds (below
    /// the extent) whenever `index` is inside `ne` (`contains`).
    pub(crate) fn offset(&self, index: [usize; MAX_DIMS]) -> usize {
        index.iter().zip(&self.nb).map(|(&i, &nb)| i * nb).sum()
    }

    /// Whether `index` (dimension 0 in units) lies inside the tensor.
    pub(crate) fn contains(&self, index: [usize; MAX_DIMS]) -> bool {
        index[0] < self.row_units() && (1..MAX_DIMS).all(|dim| index[dim] < self.ne[dim])
    }
}

/// `block_bytes + sum((n[k] - 1) * nb[k])` with `n[0]` in units, checked;
/// `ne` has no zero.
fn extent_of(elem: ElementType, ne: [usize; MAX_DIMS], nb: [usize; MAX_DIMS]) -> Option<usize> {
    let mut units = ne;
    units[0] = ne[0] / elem.block_elems();
    units.iter().zip(&nb).try_fold(elem.block_bytes(), |acc, (&n, &stride)| {
        acc.checked_add(n.checked_sub(1)?.checked_mul(stride)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const F32: ElementType = ElementType::F32;

    #[test]
    fn contiguous_layout_has_ggml_strides_and_extent() {
        let layout = Layout::contiguous(F32, [3, 4, 5, 2]).unwrap();
        assert_eq!(layout.nb(), [4, 12, 48, 240]);
        assert_eq!(layout.byte_extent(), 480);
        assert_eq!(layout.elements(), 120);
        assert_eq!(layout.rows(), 40);
        assert!(layout.is_contiguous());
    }

    #[test]
    fn extent_counts_only_the_bytes_the_strides_reach() {
        // A 2 × 3 view of rows of 10 floats: the last row ends after 2 floats.
        let layout = Layout::new(F32, [2, 3, 1, 1], [4, 40, 120, 120]).unwrap();
        assert_eq!(layout.byte_extent(), 2 * 40 + 2 * 4);
        assert!(!layout.is_contiguous());
        assert!(layout.is_contiguous_1());
    }

    #[test]
    fn the_stride_of_a_size_one_dimension_adds_no_bytes() {
        let layout = Layout::new(F32, [4, 1, 1, 1], [4, 1 << 40, 7, 3]).unwrap();
        assert_eq!(layout.byte_extent(), 16);
    }

    #[test]
    fn empty_tensor_has_no_extent() {
        let layout = Layout::new(F32, [4, 0, 3, 1], [4, 16, 0, 0]).unwrap();
        assert_eq!(layout.byte_extent(), 0);
        assert_eq!(layout.elements(), 0);
        assert_eq!(layout.rows(), 0);
        assert!(layout.is_empty());
    }

    #[test]
    fn rejects_an_extent_that_overflows() {
        let err = Layout::new(F32, [2, 3, 1, 1], [4, usize::MAX / 2 + 1, 0, 0]).unwrap_err();
        assert!(matches!(err, OpError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn rejects_an_element_count_that_overflows_even_behind_a_zero() {
        let big = 1usize << 40;
        let err = Layout::new(F32, [big, big, 0, 1], [4, 4, 4, 4]).unwrap_err();
        assert!(matches!(err, OpError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn rejects_contiguous_strides_that_overflow() {
        let err = Layout::contiguous(F32, [usize::MAX / 2, 3, 1, 1]).unwrap_err();
        assert!(matches!(err, OpError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn permuted_layout_is_not_contiguous_but_may_have_contiguous_rows() {
        // [3, 4] transposed: rows of 4 elements 12 bytes apart.
        let transposed = Layout::new(F32, [4, 3, 1, 1], [12, 4, 48, 48]).unwrap();
        assert!(!transposed.has_contiguous_rows());
        assert!(!transposed.is_contiguous());
        let swapped_planes = Layout::new(F32, [4, 3, 2, 1], [4, 32, 16, 96]).unwrap();
        assert!(swapped_planes.has_contiguous_rows());
        assert!(!swapped_planes.is_contiguous());
    }

    #[test]
    fn size_one_dimensions_do_not_break_contiguity() {
        let layout = Layout::new(F32, [5, 1, 1, 2], [4, 999, 3, 20]).unwrap();
        assert!(layout.is_contiguous());
    }

    #[test]
    fn padded_rows_are_padded_1d_but_not_contiguous() {
        let layout = Layout::new(F32, [3, 2, 2, 1], [4, 16, 32, 64]).unwrap();
        assert!(layout.is_padded_1d());
        assert!(!layout.is_contiguous());
        assert!(layout.is_contiguous_1());
    }

    #[test]
    fn can_repeat_follows_ggml() {
        let small = Layout::contiguous(F32, [2, 1, 3, 1]).unwrap();
        let big = Layout::contiguous(F32, [4, 5, 3, 2]).unwrap();
        let odd = Layout::contiguous(F32, [3, 5, 3, 2]).unwrap();
        let empty = Layout::contiguous(F32, [0, 5, 3, 2]).unwrap();
        assert!(small.can_repeat_to(&big));
        assert!(!small.can_repeat_to(&odd));
        assert!(small.can_repeat_to(&empty));
        assert!(!empty.can_repeat_to(&big));
        assert!(empty.can_repeat_to(&empty));
    }

    #[test]
    fn block_layouts_count_whole_blocks() {
        let q4_0 = ElementType::Quant(crate::kernels::quant::BlockFormat::Q4_0);
        let layout = Layout::contiguous(q4_0, [64, 3, 1, 1]).unwrap();
        assert_eq!(layout.nb(), [18, 36, 108, 108]);
        assert_eq!((layout.row_units(), layout.row_bytes()), (2, 36));
        assert_eq!(layout.byte_extent(), 108);
        assert_eq!(layout.elements(), 192);
        assert!(layout.is_contiguous());
    }

    #[test]
    fn rejects_a_partial_block() {
        let q8_0 = ElementType::Quant(crate::kernels::quant::BlockFormat::Q8_0);
        let err = Layout::contiguous(q8_0, [48, 1, 1, 1]).unwrap_err();
        assert!(matches!(err, OpError::PartialBlock { block: 32, .. }), "{err}");
    }

    #[test]
    fn rejects_blocks_not_stored_one_after_the_other() {
        let q8_0 = ElementType::Quant(crate::kernels::quant::BlockFormat::Q8_0);
        let err = Layout::new(q8_0, [64, 2, 1, 1], [68, 34, 136, 136]).unwrap_err();
        assert!(matches!(err, OpError::BlockStride { block_bytes: 34, .. }), "{err}");
        // A row of one block never uses nb[0].
        assert!(Layout::new(q8_0, [32, 2, 1, 1], [0, 34, 68, 68]).is_ok());
    }

    #[test]
    fn offsets_of_indices_inside_the_shape_stay_inside_the_extent() {
        let layout = Layout::new(F32, [3, 2, 2, 2], [8, 30, 70, 150]).unwrap();
        let last = [2, 1, 1, 1];
        assert!(layout.contains(last));
        assert!(!layout.contains([3, 0, 0, 0]));
        assert_eq!(layout.offset(last) + 4, layout.byte_extent());
    }
}
