//! ADD, SUB, MUL, DIV: `dst = src0 op src1` with `src1` repeated over
//! `src0` (`ggml_add` & co.).
//!
//! `src1` must repeat a whole number of times into `src0` in every dimension
//! (`ggml_can_repeat`): `dst[i] = src0[i] op src1[i0 % ne10, i1 % ne11, ...]`.
//! Values are computed in f32 and rounded once to `dst`'s type. The type
//! combinations are ggml's CPU ones: all f32, all f16, all bf16, or an
//! f16/bf16 `src0` with an f32 `src1` and a `dst` of `src0`'s type or f32.
//! `src0` and `dst` need contiguous rows; `src1` may have any strides.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_repeatable, require_row_stride, require_shape,
};
use crate::kernels::strided::view::{View, ViewMut};

/// Which elementwise binary op to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    /// ggml's name of the op (`ggml_op_name`).
    pub const fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "ADD",
            BinaryOp::Sub => "SUB",
            BinaryOp::Mul => "MUL",
            BinaryOp::Div => "DIV",
        }
    }

    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
}

/// The (src0, src1, dst) types ggml's CPU backend computes binary ops for.
const TYPE_COMBINATIONS: [(ElementType, ElementType, ElementType); 7] = {
    use ElementType::{BF16, F16, F32};
    [
        (F32, F32, F32),
        (F16, F16, F16),
        (BF16, BF16, BF16),
        (BF16, F32, BF16),
        (BF16, F32, F32),
        (F16, F32, F16),
        (F16, F32, F32),
    ]
};

const SUPPORTED: &str = "(src0, src1, dst) of (f32, f32, f32), (f16, f16, f16), \
    (bf16, bf16, bf16), (bf16, f32, bf16), (bf16, f32, f32), (f16, f32, f16), (f16, f32, f32)";

/// Checks the type combination, that `src1` repeats into `src0`, that `dst`
/// has `src0`'s shape, and `nb[0] == element size` for `src0` and `dst`.
pub fn check_binary(
    op: BinaryOp,
    src0: &Layout,
    src1: &Layout,
    dst: &Layout,
) -> Result<(), OpError> {
    let name = op.name();
    let types = (src0.elem(), src1.elem(), dst.elem());
    if !TYPE_COMBINATIONS.contains(&types) {
        let operand = if TYPE_COMBINATIONS.iter().any(|&(s0, s1, _)| (s0, s1) == (types.0, types.1))
        {
            "dst"
        } else {
            "src1"
        };
        let actual = if operand == "dst" { types.2 } else { types.1 };
        return Err(OpError::UnsupportedType { op: name, operand, actual, supported: SUPPORTED });
    }
    require_repeatable(name, "src1", src1, "src0", src0)?;
    require_shape(name, "dst", dst, src0.ne())?;
    require_row_stride(name, "src0", src0)?;
    require_row_stride(name, "dst", dst)
}

/// `dst = src0 op src1` (src1 repeated).
pub fn binary(
    op: BinaryOp,
    src0: View<'_>,
    src1: View<'_>,
    dst: &mut ViewMut<'_>,
) -> Result<(), OpError> {
    check_binary(op, src0.layout(), src1.layout(), dst.layout())?;
    let [ne0, ..] = src0.layout().ne();
    let [ne10, ne11, ne12, ne13] = src1.layout().ne();
    let mut a = vec![0.0f32; ne0];
    let mut b = vec![0.0f32; ne10];
    // The src1 row in `b`: rows repeat (a norm's weight for every token), so
    // each is converted once per run of rows that use it.
    let mut loaded = None;
    for_each_row(dst.layout().ne(), |i1, i2, i3| {
        // ne1x > 0: src1 repeats into a non-empty dst, so it is not empty.
        let source_row = (i1 % ne11, i2 % ne12, i3 % ne13);
        if loaded != Some(source_row) {
            let (j1, j2, j3) = source_row;
            src1.read_row_f32(j1, j2, j3, &mut b)?;
            loaded = Some(source_row);
        }
        src0.read_row_f32(i1, i2, i3, &mut a)?;
        for chunk in a.chunks_exact_mut(ne10) {
            for (x, &y) in chunk.iter_mut().zip(&b) {
                *x = op.apply(*x, y);
            }
        }
        dst.write_row_f32(i1, i2, i3, &a)
    })
}

/// `dst = src0 + src1`.
pub fn add(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    binary(BinaryOp::Add, src0, src1, dst)
}

/// `dst = src0 - src1`.
pub fn sub(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    binary(BinaryOp::Sub, src0, src1, dst)
}

/// `dst = src0 * src1`.
pub fn mul(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    binary(BinaryOp::Mul, src0, src1, dst)
}

/// `dst = src0 / src1`.
pub fn div(src0: View<'_>, src1: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    binary(BinaryOp::Div, src0, src1, dst)
}
