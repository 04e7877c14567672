//! Reductions along rows: SUM (everything to one value), SUM_ROWS and MEAN
//! (each row to one value, `dst` `[1, ne1, ne2, ne3]`) and CUMSUM (running
//! sums along each row), as ggml's CPU computes them.
//!
//! Rounding follows ggml: f32 rows are summed in f64 (`ggml_float`) and
//! rounded once (SUM adds the rows' f64 sums in f64 too); f16 and bf16 SUM
//! sums in f32; MEAN divides the f32 sum by `ne0` in f32; CUMSUM adds in
//! f32. SUM_ROWS, MEAN and CUMSUM need `nb[0]` the element size, as ggml
//! asserts before reading rows as arrays. SUM's assert is debug-only: ggml
//! reads each row as `ne[0]` consecutive elements from the row's start
//! whatever `nb[0]` is (test-backend-ops sums a transposed tensor so), and
//! so do we, when those elements lie within the tensor's bytes.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_row_stride, require_same_type, require_shape, require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

/// `[1, ne1, ne2, ne3]`: one value per row of `layout`.
fn per_row_shape(layout: &Layout) -> [usize; 4] {
    let [_, ne1, ne2, ne3] = layout.ne();
    [1, ne1, ne2, ne3]
}

/// `layout` as ggml's SUM reads it: rows of consecutive elements, the
/// strides of dimensions 1 to 3 kept; `None` when those rows reach past the
/// tensor's bytes.
fn as_summed(layout: &Layout) -> Option<Layout> {
    let mut nb = layout.nb();
    nb[0] = layout.elem().block_bytes();
    let summed = Layout::new(layout.elem(), layout.ne(), nb).ok()?;
    (summed.byte_extent() <= layout.byte_extent()).then_some(summed)
}

/// Checks src0 f32/f16/bf16 whose rows, read as consecutive elements, lie
/// within its bytes, and dst one value of its type.
pub fn check_sum(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "SUM";
    let types = [ElementType::F32, ElementType::F16, ElementType::BF16];
    require_type(OP, "src0", src0, &types, "f32, f16, bf16")?;
    if as_summed(src0).is_none() {
        return Err(OpError::StrideRule {
            op: OP,
            operand: "src0",
            ne: src0.ne(),
            nb: src0.nb(),
            rule: "must have rows whose consecutive elements lie within its bytes",
        });
    }
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, [1, 1, 1, 1])
}

/// `dst = Σ src0` (rows read as ggml reads them, see the module doc).
pub fn sum(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_sum(src0.layout(), dst.layout())?;
    let summed = as_summed(src0.layout())
        .ok_or(OpError::Internal { op: "SUM", detail: "checked rows no longer fit" })?;
    let src0 = View::new(summed, src0.bytes())?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    let total = if src0.layout().elem() == ElementType::F32 {
        let mut total = 0.0f64;
        for_each_row(src0.layout().ne(), |i1, i2, i3| {
            src0.read_row_f32(i1, i2, i3, &mut row)?;
            total += row.iter().map(|&x| f64::from(x)).sum::<f64>();
            Ok(())
        })?;
        total as f32
    } else {
        let mut total = 0.0f32;
        for_each_row(src0.layout().ne(), |i1, i2, i3| {
            src0.read_row_f32(i1, i2, i3, &mut row)?;
            total += row.iter().sum::<f32>();
            Ok(())
        })?;
        total
    };
    dst.write_row_f32(0, 0, 0, &[total])
}

fn check_per_row(op: &'static str, src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    require_same_type(op, "src0", src0, ElementType::F32)?;
    require_row_stride(op, "src0", src0)?;
    require_same_type(op, "dst", dst, ElementType::F32)?;
    require_shape(op, "dst", dst, per_row_shape(src0))?;
    require_row_stride(op, "dst", dst)
}

/// Checks src0 f32 with `nb[0] == 4` and dst f32 `[1, ne1, ne2, ne3]`.
pub fn check_sum_rows(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    check_per_row("SUM_ROWS", src0, dst)
}

/// Checks src0 f32 with `nb[0] == 4` and dst f32 `[1, ne1, ne2, ne3]`.
pub fn check_mean(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    check_per_row("MEAN", src0, dst)
}

/// `dst[0, i1, i2, i3] = Σ_i0 src0[i0, i1, i2, i3]`.
pub fn sum_rows(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_sum_rows(src0.layout(), dst.layout())?;
    per_row(src0, dst, |sum, _| sum)
}

/// `dst[0, i1, i2, i3] = mean_i0 src0[i0, i1, i2, i3]`.
pub fn mean(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_mean(src0.layout(), dst.layout())?;
    per_row(src0, dst, |sum, n| sum / n as f32)
}

/// Each row's f64 sum, rounded to f32 and finished by `finish(sum, ne0)`.
fn per_row(
    src0: View<'_>,
    dst: &mut ViewMut<'_>,
    finish: impl Fn(f32, usize) -> f32,
) -> Result<(), OpError> {
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        let sum = row.iter().map(|&x| f64::from(x)).sum::<f64>() as f32;
        dst.write_row_f32(i1, i2, i3, &[finish(sum, row.len())])
    })
}

/// Checks src0 f32 with `nb[0] == 4` and dst f32 of its shape with
/// `nb[0] == 4`.
pub fn check_cumsum(src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    const OP: &str = "CUMSUM";
    require_same_type(OP, "src0", src0, ElementType::F32)?;
    require_row_stride(OP, "src0", src0)?;
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_row_stride(OP, "dst", dst)
}

/// `dst[i0] = Σ_{j <= i0} src0[j]` along each row, in f32.
pub fn cumsum(src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_cumsum(src0.layout(), dst.layout())?;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        let mut running = 0.0f32;
        for (index, x) in row.iter_mut().enumerate() {
            // ggml starts from the first value rather than from 0 + it,
            // which keeps a -0.0 first element.
            running = if index == 0 { *x } else { running + *x };
            *x = running;
        }
        dst.write_row_f32(i1, i2, i3, &row)
    })
}
