//! Elementwise ops of one operand: ggml's UNARY ops (`op_params[0]` picks
//! which) and the separate SQR, SQRT, LOG, SIN and COS ops.
//!
//! Each value is computed in f32 and rounded once to the destination type
//! (f32, f16 or bf16, the source's type), as ggml's CPU backend does, with
//! one difference of method that ggml's CPU has and we reproduce: its f32
//! GELU and GELU_QUICK look the result up in a table of f16 values (the
//! input rounded to f16, the output stored as f16), and GELU returns 0 below
//! -10 and `x` above 10. test-backend-ops compares against exactly that, so
//! we build the same tables.

use std::sync::OnceLock;

use crate::kernels::strided::convert::{f16_bits_to_f32, f32_to_f16_bits};
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    for_each_row, require_contiguous_rows, require_same_type, require_shape, require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

/// An elementwise op of one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Abs,
    Sgn,
    Neg,
    Step,
    Tanh,
    Elu,
    Relu,
    Sigmoid,
    /// The tanh approximation, through ggml's f16 table for f32.
    Gelu,
    /// `x·sigmoid(1.702·x)`, through ggml's f16 table for f32.
    GeluQuick,
    /// The exact GELU `x·Φ(x)` with `erff`, computed (no table).
    GeluErf,
    Silu,
    Hardswish,
    Hardsigmoid,
    Exp,
    /// `exp(x) - 1` (ggml computes it so, not with `expm1`).
    Expm1,
    Softplus,
    Floor,
    Ceil,
    /// Halves away from zero.
    Round,
    Trunc,
    /// GGML_OP_SQR.
    Sqr,
    /// GGML_OP_SQRT.
    Sqrt,
    /// GGML_OP_LOG.
    Log,
    /// GGML_OP_SIN.
    Sin,
    /// GGML_OP_COS.
    Cos,
}

impl UnaryOp {
    /// The op `op_params[0]` names for GGML_OP_UNARY (`enum ggml_unary_op`);
    /// `None` for ops not implemented here (XIELU) or unknown.
    pub fn from_ggml_unary(code: i32) -> Option<UnaryOp> {
        Some(match code {
            0 => UnaryOp::Abs,
            1 => UnaryOp::Sgn,
            2 => UnaryOp::Neg,
            3 => UnaryOp::Step,
            4 => UnaryOp::Tanh,
            5 => UnaryOp::Elu,
            6 => UnaryOp::Relu,
            7 => UnaryOp::Sigmoid,
            8 => UnaryOp::Gelu,
            9 => UnaryOp::GeluQuick,
            10 => UnaryOp::Silu,
            11 => UnaryOp::Hardswish,
            12 => UnaryOp::Hardsigmoid,
            13 => UnaryOp::Exp,
            14 => UnaryOp::Expm1,
            15 => UnaryOp::Softplus,
            16 => UnaryOp::GeluErf,
            18 => UnaryOp::Floor,
            19 => UnaryOp::Ceil,
            20 => UnaryOp::Round,
            21 => UnaryOp::Trunc,
            _ => return None,
        })
    }

    /// ggml's name of the op (the unary op's name for GGML_OP_UNARY).
    pub const fn name(self) -> &'static str {
        match self {
            UnaryOp::Abs => "ABS",
            UnaryOp::Sgn => "SGN",
            UnaryOp::Neg => "NEG",
            UnaryOp::Step => "STEP",
            UnaryOp::Tanh => "TANH",
            UnaryOp::Elu => "ELU",
            UnaryOp::Relu => "RELU",
            UnaryOp::Sigmoid => "SIGMOID",
            UnaryOp::Gelu => "GELU",
            UnaryOp::GeluQuick => "GELU_QUICK",
            UnaryOp::GeluErf => "GELU_ERF",
            UnaryOp::Silu => "SILU",
            UnaryOp::Hardswish => "HARDSWISH",
            UnaryOp::Hardsigmoid => "HARDSIGMOID",
            UnaryOp::Exp => "EXP",
            UnaryOp::Expm1 => "EXPM1",
            UnaryOp::Softplus => "SOFTPLUS",
            UnaryOp::Floor => "FLOOR",
            UnaryOp::Ceil => "CEIL",
            UnaryOp::Round => "ROUND",
            UnaryOp::Trunc => "TRUNC",
            UnaryOp::Sqr => "SQR",
            UnaryOp::Sqrt => "SQRT",
            UnaryOp::Log => "LOG",
            UnaryOp::Sin => "SIN",
            UnaryOp::Cos => "COS",
        }
    }

    /// The op on one value, exactly (no table).
    fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sgn => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Neg => -x,
            UnaryOp::Step => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            UnaryOp::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Gelu => gelu(x),
            UnaryOp::GeluQuick => gelu_quick(x),
            UnaryOp::GeluErf => gelu_erf(x),
            UnaryOp::Silu => silu(x),
            UnaryOp::Hardswish => x * 1.0f32.min(0.0f32.max((x + 3.0) / 6.0)),
            UnaryOp::Hardsigmoid => 1.0f32.min(0.0f32.max((x + 3.0) / 6.0)),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Expm1 => x.exp() - 1.0,
            UnaryOp::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    (1.0 + x.exp()).ln()
                }
            }
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            UnaryOp::Round => x.round(),
            UnaryOp::Trunc => x.trunc(),
            UnaryOp::Sqr => x * x,
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
        }
    }

    /// The op on one f32 value as ggml's f32 kernel computes it.
    fn apply_f32(self, x: f32) -> f32 {
        match self {
            UnaryOp::Gelu if x <= -10.0 => 0.0,
            UnaryOp::Gelu if x >= 10.0 => x,
            UnaryOp::Gelu => f16_table_lookup(gelu_table(), x),
            UnaryOp::GeluQuick => f16_table_lookup(gelu_quick_table(), x),
            _ => self.apply(x),
        }
    }
}

const GELU_COEF_A: f32 = 0.044715;
const GELU_QUICK_COEF: f32 = -1.702;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU, tanh approximation (`ggml_gelu_f32`).
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

const SQRT_2_INV: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// The exact GELU, `0.5·x·(1 + erf(x/√2))` in f32 (`ggml_vec_gelu_erf_f32`).
/// `erff` is the `libm` crate's port of musl's, accurate to under an ulp,
/// as the C library's that ggml calls is.
pub(crate) fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * SQRT_2_INV))
}

/// `x·sigmoid(1.702·x)` (`ggml_gelu_quick_f32`).
pub(crate) fn gelu_quick(x: f32) -> f32 {
    x * (1.0 / (1.0 + (GELU_QUICK_COEF * x).exp()))
}

/// `x·sigmoid(x)` (`ggml_silu_f32`).
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `f` of every f16 value, stored as f16 bits: ggml's `ggml_table_gelu_f16`
/// and `ggml_table_gelu_quick_f16`.
fn f16_table(f: fn(f32) -> f32) -> Box<[u16]> {
    (0..=u16::MAX).map(|bits| f32_to_f16_bits(f(f16_bits_to_f32(bits)))).collect()
}

pub(crate) fn gelu_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(|| f16_table(gelu))
}

pub(crate) fn gelu_quick_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(|| f16_table(gelu_quick))
}

/// `table[f16(x)]` as f32.
pub(crate) fn f16_table_lookup(table: &[u16], x: f32) -> f32 {
    let index = usize::from(f32_to_f16_bits(x));
    table.get(index).map_or(f32::NAN, |&bits| f16_bits_to_f32(bits))
}

const TYPES: [ElementType; 3] = [ElementType::F32, ElementType::F16, ElementType::BF16];

/// Checks src0 f32/f16/bf16, dst of its type and shape, contiguous rows in
/// both.
pub fn check_unary(op: UnaryOp, src0: &Layout, dst: &Layout) -> Result<(), OpError> {
    let name = op.name();
    require_type(name, "src0", src0, &TYPES, "f32, f16, bf16")?;
    require_same_type(name, "dst", dst, src0.elem())?;
    require_shape(name, "dst", dst, src0.ne())?;
    require_contiguous_rows(name, "src0", src0)?;
    require_contiguous_rows(name, "dst", dst)
}

/// `dst = op(src0)` elementwise.
pub fn unary(op: UnaryOp, src0: View<'_>, dst: &mut ViewMut<'_>) -> Result<(), OpError> {
    check_unary(op, src0.layout(), dst.layout())?;
    let is_f32 = src0.layout().elem() == ElementType::F32;
    let mut row = vec![0.0f32; src0.layout().ne()[0]];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        if is_f32 {
            row.iter_mut().for_each(|x| *x = op.apply_f32(*x));
        } else {
            row.iter_mut().for_each(|x| *x = op.apply(*x));
        }
        dst.write_row_f32(i1, i2, i3, &row)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_table_holds_the_f16_rounded_gelu_of_every_f16() {
        let table = gelu_table();
        assert_eq!(table.len(), 1 << 16);
        let x = half::f16::from_f32(1.5);
        let expected = half::f16::from_f32(gelu(1.5)).to_bits();
        assert_eq!(table[usize::from(x.to_bits())], expected);
    }

    #[test]
    fn f32_gelu_saturates_outside_ten_like_ggml() {
        assert_eq!(UnaryOp::Gelu.apply_f32(-10.0), 0.0);
        assert_eq!(UnaryOp::Gelu.apply_f32(12.5), 12.5);
        assert_eq!(UnaryOp::Gelu.apply_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn f32_gelu_inside_ten_is_the_f16_rounded_value() {
        let x = 0.123_456_7f32;
        let via_f16 = half::f16::from_f32(gelu(half::f16::from_f32(x).to_f32())).to_f32();
        assert_eq!(UnaryOp::Gelu.apply_f32(x), via_f16);
        assert!((via_f16 - gelu(x)).abs() < 1e-3);
    }

    #[test]
    fn unary_codes_follow_ggml_h() {
        assert_eq!(UnaryOp::from_ggml_unary(2), Some(UnaryOp::Neg));
        assert_eq!(UnaryOp::from_ggml_unary(8), Some(UnaryOp::Gelu));
        assert_eq!(UnaryOp::from_ggml_unary(10), Some(UnaryOp::Silu));
        assert_eq!(UnaryOp::from_ggml_unary(13), Some(UnaryOp::Exp));
        assert_eq!(UnaryOp::from_ggml_unary(16), Some(UnaryOp::GeluErf));
        assert_eq!(UnaryOp::from_ggml_unary(17), None, "XIELU is not implemented");
        assert_eq!(UnaryOp::from_ggml_unary(-1), None);
    }

    #[test]
    fn comparisons_with_nan_follow_c() {
        assert_eq!(UnaryOp::Relu.apply(f32::NAN), 0.0);
        assert_eq!(UnaryOp::Sgn.apply(f32::NAN), 0.0);
        assert!(UnaryOp::Tanh.apply(f32::NAN).is_nan());
    }
}
