//! CPY, DUP and CONT (`ggml_cpy`, `ggml_dup`, `ggml_cont`): copy the
//! elements of `src0` into `dst` in row-major order (dimension 0 fastest),
//! converting between types.
//!
//! The two tensors need the same number of elements, not the same shape:
//! element `k` of `src0`'s row-major order becomes element `k` of `dst`'s,
//! whatever the strides of either (a permuted source, a strided
//! destination view). Same-type copies move bytes (whole blocks for block
//! formats); f32, f16 and bf16 convert into each other, f32 into i32
//! (truncating) and i32 into f32, as ggml's CPU backend does.
//!
//! Block formats, as ggml's `dup_to_q` / `dup_from_q`:
//! * f32, f16 or bf16 into any block format (the K/V cache in q8_0, q4_0,
//!   ...): `src0` rows of whole blocks with `nb[0]` the element size, and a
//!   contiguous `dst`; each row is quantized as ggml's CPU does
//!   (`cpu_quantize`);
//! * a block format ggml dequantizes (not Q8_1 or Q8_K) into f32: `dst`
//!   with `nb[0] == 4` and rows of whole blocks, or contiguous.
//!
//! DUP's `dst` has `src0`'s type and shape; CONT's has its type and element
//! count and is contiguous. CPY's `dst` is the destination tensor itself
//! (`ggml_cpy(src, dst)` returns a view of it).

use crate::kernels::strided::convert::{
    element_from_f32, element_to_f32, row_from_f32, row_to_f32,
};
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::{Layout, MAX_DIMS};
use crate::kernels::strided::rules::{
    for_each_row, require_contiguous, require_dim_multiple, require_row_stride, require_same_type,
    require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

/// Whether ggml's CPU backend copies `from` into `to`.
fn converts(from: ElementType, to: ElementType) -> bool {
    use ElementType::{BF16, F16, F32, I32, Quant};
    from == to
        || matches!(
            (from, to),
            (F32 | F16 | BF16, F32 | F16 | BF16 | Quant(_)) | (F32, I32) | (I32, F32)
        )
        || (from.is_block_format() && from.dequantizes() && to == F32)
}

const CONVERSIONS: &str = "the same type, or between f32, f16 and bf16, or f32 to i32, \
    or i32 to f32, or f32/f16/bf16 to a block format, or a block format (not q8_1, q8_K) to f32";

/// ggml's rules on the strides of a quantizing or dequantizing copy.
fn check_block_conversion(op: &'static str, src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    if dst.elem().is_block_format() {
        require_row_stride(op, "src0", src0)?;
        require_dim_multiple(op, "src0", src0, 0, "the dst block of ", dst.elem().block_elems())?;
        require_contiguous(op, "dst", dst)?;
    } else {
        require_row_stride(op, "dst", dst)?;
        if !dst.is_contiguous() {
            let block = src0.elem().block_elems();
            require_dim_multiple(op, "dst", dst, 0, "the src0 block of ", block)?;
        }
    }
    Ok(())
}

fn check_copy(op: &'static str, src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    if !converts(src0.elem(), dst.elem()) {
        return Err(OpError::UnsupportedType {
            op,
            operand: "dst",
            actual: dst.elem(),
            supported: CONVERSIONS,
        });
    }
    if src0.elements() != dst.elements() {
        return Err(OpError::InvalidParam {
            op,
            param: "dst element count",
            value: dst.elements().to_string(),
            reason: "differs from src0's",
        });
    }
    if src0.elem() != dst.elem() && (src0.elem().is_block_format() || dst.elem().is_block_format())
    {
        check_block_conversion(op, src0, dst)?;
    }
    Ok(())
}

/// Checks CPY: equal element counts and a type pair ggml's CPU copies.
pub fn check_cpy(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    check_copy("CPY", src0, dst)
}

/// Checks DUP: dst of src0's type and shape.
pub fn check_dup(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "DUP";
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, src0.ne())?;
    check_copy(OP, src0, dst)
}

/// Checks CONT: dst of src0's type and element count, contiguous.
pub fn check_cont(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "CONT";
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_contiguous(OP, "dst", dst)?;
    check_copy(OP, src0, dst)
}

/// CPY: element `k` of `src0` (row-major) into element `k` of `dst`.
pub fn cpy(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_cpy(src0.layout(), dst.layout())?;
    copy_elements(src0, dst)
}

/// DUP: `dst = src0`, same shape.
pub fn dup(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_dup(src0.layout(), dst.layout())?;
    copy_elements(src0, dst)
}

/// CONT: `src0` made contiguous (possibly reshaped).
pub fn cont(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_cont(src0.layout(), dst.layout())?;
    copy_elements(src0, dst)
}

fn copy_elements(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    let (from, to) = (*src0.layout(), *dst.layout());
    if from.is_empty() || to.is_empty() {
        return Ok(());
    }
    let rows_line_up = from.ne()[0] == to.ne()[0];
    if rows_line_up && from.has_contiguous_rows() && to.has_contiguous_rows() {
        copy_rows(src0, dst)
    } else if from.elem() != to.elem()
        && (from.elem().is_block_format() || to.elem().is_block_format())
    {
        copy_through_rows(src0, dst)
    } else {
        copy_units(src0, dst)
    }
}

/// Rows of different lengths, one side in blocks: `src0`'s rows are
/// converted to f32 and streamed into `dst`'s rows, each written when full
/// (whole blocks on both sides, which the checks guarantee).
fn copy_through_rows(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    let (from, to) = (*src0.layout(), *dst.layout());
    let mut source = vec![0.0f32; from.ne()[0]];
    let mut pending = Vec::with_capacity(to.ne()[0]);
    let mut target = RowCounter::new(to.ne());
    for_each_row(from.ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut source)?;
        let mut rest = &source[..];
        while !rest.is_empty() {
            let take = (to.ne()[0] - pending.len()).min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if pending.len() == to.ne()[0] {
                let [j1, j2, j3] = target.next();
                dst.write_row_f32(j1, j2, j3, &pending)?;
                pending.clear();
            }
        }
        Ok(())
    })
}

/// Both tensors have rows of the same length stored contiguously: row `k`
/// of `src0` becomes row `k` of `dst`.
fn copy_rows(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    let (from, to) = (*src0.layout(), *dst.layout());
    let same_type = from.elem() == to.elem();
    let row_bytes = from.row_bytes();
    let mut buffer = vec![0.0f32; if same_type { 0 } else { from.ne()[0] }];
    let mut target = RowCounter::new(to.ne());
    for_each_row(from.ne(), |i1, i2, i3| {
        let source = src0.row(i1, i2, i3)?;
        let [j1, j2, j3] = target.next();
        let destination = dst.row_mut(j1, j2, j3)?;
        if same_type {
            let (Some(destination), Some(source)) =
                (destination.get_mut(..row_bytes), source.get(..row_bytes))
            else {
                return Err(OpError::Internal { op: "CPY", detail: "row shorter than its size" });
            };
            destination.copy_from_slice(source);
        } else {
            row_to_f32(from.elem(), source, &mut buffer)?;
            row_from_f32(to.elem(), &buffer, destination)?;
        }
        Ok(())
    })
}

/// Any strides: unit by unit (elements, or blocks of a same-type copy).
fn copy_units(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    let (from, to) = (*src0.layout(), *dst.layout());
    let same_type = from.elem() == to.elem();
    let mut target = UnitCounter::new(to);
    for_each_row(from.ne(), |i1, i2, i3| {
        for i0 in 0..from.row_units() {
            let source = src0.unit([i0, i1, i2, i3])?;
            let destination = dst.unit_mut(target.next())?;
            if same_type {
                destination.copy_from_slice(source);
            } else {
                element_from_f32(to.elem(), element_to_f32(from.elem(), source), destination);
            }
        }
        Ok(())
    })
}

/// Walks the rows `(i1, i2, i3)` of a shape in row-major order.
struct RowCounter {
    ne: [usize; MAX_DIMS],
    next: [usize; 3],
}

impl RowCounter {
    fn new(ne: [usize; MAX_DIMS]) -> RowCounter {
        RowCounter { ne, next: [0; 3] }
    }

    /// The current row, then steps to the following one (wrapping after the
    /// last: the caller visits exactly as many rows as there are).
    fn next(&mut self) -> [usize; 3] {
        let current = self.next;
        for (dim, index) in self.next.iter_mut().enumerate() {
            *index += 1;
            if *index < self.ne[dim + 1] {
                break;
            }
            *index = 0;
        }
        current
    }
}

/// Walks the units of a layout in row-major order.
struct UnitCounter {
    units: [usize; MAX_DIMS],
    next: [usize; MAX_DIMS],
}

impl UnitCounter {
    fn new(layout: Layout) -> UnitCounter {
        let mut units = layout.ne();
        units[0] = layout.row_units();
        UnitCounter { units, next: [0; MAX_DIMS] }
    }

    fn next(&mut self) -> [usize; MAX_DIMS] {
        let current = self.next;
        for (dim, index) in self.next.iter_mut().enumerate() {
            *index += 1;
            if *index < self.units[dim] {
                break;
            }
            *index = 0;
        }
        current
    }
}
