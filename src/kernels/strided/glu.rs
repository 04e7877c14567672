//! GLU: gated linear units (`ggml_glu`, `ggml_glu_split`): `dst = f(x) · g`
//! per element, with `f` ReLU (REGLU), GELU (GEGLU), SiLU (SWIGLU), the
//! exact erf GELU (GEGLU_ERF) or the sigmoid GELU (GEGLU_QUICK); and gpt-oss's
//! SWIGLU_OAI (`x·σ(αx)·(g + 1)` with `x` capped at `limit` and `g` clamped
//! to `±limit`, f32 only) and SWIGLU_CLAMP (`silu(min(x, limit)) ·
//! clamp(g, ±limit)`, f32 and f16), `α` and `limit` in `op_params[2]` and
//! `[3]`.
//!
//! Split form: `x` is `src0` and `g` is `src1` (same shape and type). Fused
//! form (no `src1`): each row of `src0` holds `x` in its first half and `g`
//! in its second (`nc = ne0 / 2` each), swapped when `op_params[1]` is set;
//! `dst` then has `ne0 / 2` columns. As in ggml, f32 GEGLU looks GELU up in
//! the f16 table (0 below -10, `x` above 10), and f16 GEGLU uses the table
//! too (GEGLU_QUICK likewise with the quick-GELU table, but without the
//! ±10 shortcuts); GEGLU_ERF is computed with `erff` for every type. Values
//! are computed in f32 and rounded once.

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_contiguous_1, require_same_type, require_shape,
    require_type,
};
use crate::kernels::strided::unary::{
    f16_table_lookup, gelu, gelu_erf, gelu_quick, gelu_quick_table, gelu_table, silu,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "GLU";

/// Which gate function a GLU applies (`enum ggml_glu_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GluOp {
    Reglu,
    Geglu,
    Swiglu,
    GegluErf,
    GegluQuick,
    SwigluOai,
    SwigluClamp,
}

/// The parameters of GLU: the op (`op_params[0]`), whether the halves of a
/// fused row are swapped (`op_params[1]`, only without `src1`), and
/// SWIGLU_OAI's and SWIGLU_CLAMP's f32 `alpha` and `limit` (`[2]`, `[3]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GluParams {
    pub op: GluOp,
    pub swapped: bool,
    pub alpha: f32,
    pub limit: f32,
}

impl GluParams {
    /// Fails for unknown op codes.
    pub fn from_op_params(params: &OpParams) -> Result<GluParams, OpError> {
        let op = match params[0] {
            0 => GluOp::Reglu,
            1 => GluOp::Geglu,
            2 => GluOp::Swiglu,
            3 => GluOp::SwigluOai,
            4 => GluOp::GegluErf,
            5 => GluOp::GegluQuick,
            6 => GluOp::SwigluClamp,
            code => {
                return Err(OpError::InvalidParam {
                    op: OP,
                    param: "op",
                    value: code.to_string(),
                    reason: "is no GLU op (REGLU 0 ... SWIGLU_CLAMP 6)",
                });
            }
        };
        Ok(GluParams {
            op,
            swapped: params[1] != 0,
            alpha: param_f32(params, 2),
            limit: param_f32(params, 3),
        })
    }
}

const TYPES: [ElementType; 3] = [ElementType::F32, ElementType::F16, ElementType::BF16];

/// Checks src0 f32/f16/bf16 (SWIGLU_OAI: f32; SWIGLU_CLAMP: f32/f16);
/// `src1`, if given, of src0's type and shape; dst of src0's type with `ne`
/// of `src0` (split) or `[ne0 / 2, ne1, ne2, ne3]` (fused); all contiguous
/// apart from padded rows.
pub fn check_glu(
    src0: &Layout,
    src1: Option<&Layout>,
    dst: &Layout,
    params: GluParams,
) -> Result<(), OpError> {
    match params.op {
        GluOp::SwigluOai => require_same_type(OP, "src0", src0, ElementType::F32)?,
        GluOp::SwigluClamp => require_type(OP, "src0", src0, &TYPES[..2], "f32, f16")?,
        _ => require_type(OP, "src0", src0, &TYPES, "f32, f16, bf16")?,
    }
    require_contiguous_1(OP, "src0", src0)?;
    let mut expected = src0.ne();
    match src1 {
        Some(src1) => {
            require_same_type(OP, "src1", src1, src0.elem())?;
            require_shape(OP, "src1", src1, src0.ne())?;
            require_contiguous_1(OP, "src1", src1)?;
        }
        None => expected[0] /= 2,
    }
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, expected)?;
    require_contiguous_1(OP, "dst", dst)
}

/// `dst = f(x) · g`.
pub fn glu(
    src0: View<'_>,
    src1: Option<View<'_>>,
    dst: &mut ViewMut<'_>,
    params: GluParams,
) -> Result<(), OpError> {
    check_glu(src0.layout(), src1.as_ref().map(View::layout), dst.layout(), params)?;
    let elem = src0.layout().elem();
    let nc = dst.layout().ne()[0];
    let mut first = vec![0.0f32; src0.layout().ne()[0]];
    let mut second = vec![0.0f32; if src1.is_some() { nc } else { 0 }];
    let mut out = vec![0.0f32; nc];
    for_each_row(dst.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut first)?;
        let (x, g) = match &src1 {
            Some(src1) => {
                src1.read_row_f32(i1, i2, i3, &mut second)?;
                (&first[..nc], &second[..])
            }
            None => {
                let (lower, upper) = (&first[..nc], &first[nc..2 * nc]);
                if params.swapped { (upper, lower) } else { (lower, upper) }
            }
        };
        for ((y, &x), &g) in out.iter_mut().zip(x).zip(g) {
            *y = gated(params, elem, x, g);
        }
        dst.write_row_f32(i1, i2, i3, &out)
    })
}

/// C++'s `std::min(a, b)`: `b < a ? b : a`.
fn cpp_min(a: f32, b: f32) -> f32 {
    if b < a { b } else { a }
}

/// C++'s `std::clamp(v, lo, hi)`: `v < lo ? lo : hi < v ? hi : v`.
fn cpp_clamp(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if hi < v {
        hi
    } else {
        v
    }
}

/// `f(x) · g` as ggml's kernel for `elem` computes it (REGLU and f32 GEGLU
/// below -10 give 0 without multiplying).
fn gated(params: GluParams, elem: ElementType, x: f32, g: f32) -> f32 {
    let GluParams { alpha, limit, .. } = params;
    match params.op {
        GluOp::Reglu => {
            if x > 0.0 {
                x * g
            } else {
                0.0
            }
        }
        GluOp::Geglu => match elem {
            ElementType::F32 if x <= -10.0 => 0.0,
            ElementType::F32 if x >= 10.0 => x * g,
            ElementType::F32 | ElementType::F16 => f16_table_lookup(gelu_table(), x) * g,
            _ => gelu(x) * g,
        },
        GluOp::Swiglu => silu(x) * g,
        GluOp::GegluErf => gelu_erf(x) * g,
        GluOp::SwigluOai => {
            let x = cpp_min(x, limit);
            let y = cpp_clamp(g, -limit, limit);
            x / (1.0 + (alpha * -x).exp()) * (y + 1.0)
        }
        GluOp::SwigluClamp => {
            let gate = cpp_min(x, limit);
            gate / (1.0 + (-gate).exp()) * cpp_clamp(g, -limit, limit)
        }
        GluOp::GegluQuick => match elem {
            ElementType::F32 | ElementType::F16 => f16_table_lookup(gelu_quick_table(), x) * g,
            _ => gelu_quick(x) * g,
        },
    }
}
