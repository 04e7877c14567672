//! Elementwise unary ops: `relu`, `gelu`, `exp`, `neg`.
//!
//! `relu` and `neg` accept float16/32/64, int32 and int64 (`neg` wraps
//! `MIN` to itself); `gelu` and `exp` are float-only. The output has the
//! input's dtype and shape. float16 is computed in float32.
//!
//! `gelu` is the **tanh approximation** (as in GPT-2, PyTorch's
//! `approximate="tanh"` and TVM's `fast_gelu`):
//! `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.

use std::borrow::Cow;

use crate::kernels::element::{Element, dispatch_dtype, read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::scalar::{
    ARITHMETIC_DTYPES, Arithmetic, FLOAT_DTYPES, FloatElement, Real, is_arithmetic,
};
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut, flops};

/// Which elementwise unary op to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Relu,
    /// Tanh approximation of GELU.
    Gelu,
    Exp,
    Neg,
}

impl UnaryOp {
    pub const fn name(self) -> &'static str {
        match self {
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Exp => "exp",
            UnaryOp::Neg => "neg",
        }
    }

    const fn is_float_only(self) -> bool {
        matches!(self, UnaryOp::Gelu | UnaryOp::Exp)
    }

    /// Rough flops per element: transcendental functions cost more.
    const fn flops_per_element(self) -> u64 {
        match self {
            UnaryOp::Relu | UnaryOp::Neg => 1,
            UnaryOp::Exp => 10,
            UnaryOp::Gelu => 20,
        }
    }
}

/// Validates `x` for `op` and returns the output's dtype and shape (both
/// those of `x`) and cost.
pub fn infer_unary(op: UnaryOp, x: TensorDesc<'_>) -> Result<OutputSpec, KernelError> {
    let (supported, supported_list) = if op.is_float_only() {
        (x.dtype().is_float(), FLOAT_DTYPES)
    } else {
        (is_arithmetic(x.dtype()), ARITHMETIC_DTYPES)
    };
    if !supported {
        return Err(KernelError::UnsupportedDType {
            op: op.name(),
            arg: "x",
            dtype: x.dtype(),
            supported: supported_list,
        });
    }
    Ok(OutputSpec {
        dtype: x.dtype(),
        shape: x.shape().to_vec(),
        estimated_flops: flops(x.num_elements(), op.flops_per_element()),
    })
}

/// `out = op(x)` elementwise.
pub fn unary(
    op: UnaryOp,
    x: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    let spec = infer_unary(op, x.desc())?;
    spec.check_output(op.name(), &out.desc())?;
    let unsupported = || KernelError::UnsupportedDType {
        op: op.name(),
        arg: "x",
        dtype: x.dtype(),
        supported: if op.is_float_only() { FLOAT_DTYPES } else { ARITHMETIC_DTYPES },
    };
    match op {
        UnaryOp::Relu => dispatch_dtype!(
            x.dtype(), T => map::<T>(x, out, |v| v.max_or_nan(<T as Arithmetic>::ZERO)),
            [Float16, Float32, Float64, Int32, Int64],
            return Err(unsupported())
        ),
        UnaryOp::Neg => dispatch_dtype!(
            x.dtype(), T => map::<T>(x, out, T::neg),
            [Float16, Float32, Float64, Int32, Int64],
            return Err(unsupported())
        ),
        UnaryOp::Exp => dispatch_dtype!(
            x.dtype(), T => map::<T>(x, out, |v| T::narrow(v.widen().exp())),
            [Float16, Float32, Float64],
            return Err(unsupported())
        ),
        UnaryOp::Gelu => dispatch_dtype!(
            x.dtype(), T => map::<T>(x, out, |v| T::narrow(gelu_tanh(v.widen()))),
            [Float16, Float32, Float64],
            return Err(unsupported())
        ),
    }
    Ok(())
}

/// `out = max(x, 0)` (NaN stays NaN).
pub fn relu(x: TensorView<'_>, out: &mut TensorViewMut<'_>) -> Result<(), KernelError> {
    unary(UnaryOp::Relu, x, out)
}

/// `out = gelu(x)`, tanh approximation.
pub fn gelu(x: TensorView<'_>, out: &mut TensorViewMut<'_>) -> Result<(), KernelError> {
    unary(UnaryOp::Gelu, x, out)
}

/// `out = e^x`.
pub fn exp(x: TensorView<'_>, out: &mut TensorViewMut<'_>) -> Result<(), KernelError> {
    unary(UnaryOp::Exp, x, out)
}

/// `out = -x` (integers wrap: `-MIN == MIN`).
pub fn neg(x: TensorView<'_>, out: &mut TensorViewMut<'_>) -> Result<(), KernelError> {
    unary(UnaryOp::Neg, x, out)
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub(crate) fn gelu_tanh<R: Real>(x: R) -> R {
    let sqrt_2_over_pi = R::from_f64((2.0 / std::f64::consts::PI).sqrt());
    let coefficient = R::from_f64(0.044715);
    let half = R::from_f64(0.5);
    let inner = sqrt_2_over_pi * (x + coefficient * x * x * x);
    half * x * (R::ONE + inner.tanh())
}

fn map<T: Element>(x: TensorView<'_>, out: &mut TensorViewMut<'_>, f: impl Fn(T) -> T) {
    let x: Cow<'_, [T]> = read_elements(x.data());
    write_elements::<T, _>(out.data_mut(), |out| {
        for (o, &v) in out.iter_mut().zip(x.iter()) {
            *o = f(v);
        }
    });
}
