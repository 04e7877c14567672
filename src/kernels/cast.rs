//! `cast(x, out)`: converts between int32, int64, float16, float32 and
//! float64 (every pair, including a dtype to itself). The target dtype is
//! `out`'s.
//!
//! Conversion rules (the same as Rust's `as`, and numpy's where numpy
//! defines a result):
//! * float → int truncates toward zero and **saturates** at the integer's
//!   range; NaN becomes 0 (numpy leaves these undefined);
//! * int64 → int32 wraps (keeps the low 32 bits), like numpy and C;
//! * int → float and wider → narrower float round to nearest, overflowing
//!   to ±inf; ints convert to float16 with a single rounding.

use std::borrow::Cow;

use half::f16;

use crate::kernels::dtype::DType;
use crate::kernels::element::{Element, dispatch_dtype, read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut, flops};

const OP: &str = "cast";
const SUPPORTED: &str = "int32, int64, float16, float32, float64";

fn is_castable(dtype: DType) -> bool {
    matches!(dtype, DType::Int32 | DType::Int64 | DType::Float16 | DType::Float32 | DType::Float64)
}

/// Validates casting `x` to dtype `to` and returns the output's dtype
/// (`to`), shape (that of `x`) and cost.
pub fn infer_cast(x: TensorDesc<'_>, to: DType) -> Result<OutputSpec, KernelError> {
    for (arg, dtype) in [("x", x.dtype()), ("out", to)] {
        if !is_castable(dtype) {
            return Err(KernelError::UnsupportedDType { op: OP, arg, dtype, supported: SUPPORTED });
        }
    }
    Ok(OutputSpec {
        dtype: to,
        shape: x.shape().to_vec(),
        estimated_flops: flops(x.num_elements(), 1),
    })
}

/// `out = x` converted to `out`'s dtype.
pub fn cast(x: TensorView<'_>, out: &mut TensorViewMut<'_>) -> Result<(), KernelError> {
    let spec = infer_cast(x.desc(), out.dtype())?;
    spec.check_output(OP, &out.desc())?;
    let unsupported =
        |arg, dtype| KernelError::UnsupportedDType { op: OP, arg, dtype, supported: SUPPORTED };
    dispatch_dtype!(
        x.dtype(), S => dispatch_dtype!(
            out.dtype(), D => run_cast::<S, D>(x, out),
            [Int32, Int64, Float16, Float32, Float64],
            return Err(unsupported("out", out.dtype()))
        ),
        [Int32, Int64, Float16, Float32, Float64],
        return Err(unsupported("x", x.dtype()))
    );
    Ok(())
}

fn run_cast<S: Element, D: Element + CastFrom<S>>(x: TensorView<'_>, out: &mut TensorViewMut<'_>) {
    let x: Cow<'_, [S]> = read_elements(x.data());
    write_elements::<D, _>(out.data_mut(), |out| {
        for (o, &v) in out.iter_mut().zip(x.iter()) {
            *o = D::cast_from(v);
        }
    });
}

/// Conversion of one element from `S`, with the rules in the module doc.
pub(crate) trait CastFrom<S> {
    fn cast_from(value: S) -> Self;
}

/// Between primitive types Rust's `as` already has the documented rules
/// (saturating, truncating float → int; wrapping int → int; rounding
/// to float).
macro_rules! cast_with_as {
    ($($from:ty => [$($to:ty),*]),* $(,)?) => {$($(
        impl CastFrom<$from> for $to {
            #[allow(clippy::unnecessary_cast)]
            fn cast_from(value: $from) -> Self { value as $to }
        }
    )*)*};
}

cast_with_as!(
    i32 => [i32, i64, f32, f64],
    i64 => [i32, i64, f32, f64],
    f32 => [i32, i64, f32, f64],
    f64 => [i32, i64, f32, f64],
);

/// float16 → anything goes through f32, which holds every f16 exactly.
macro_rules! cast_from_f16 {
    ($($to:ty),*) => {$(
        impl CastFrom<f16> for $to {
            #[allow(clippy::unnecessary_cast)]
            fn cast_from(value: f16) -> Self { value.to_f32() as $to }
        }
    )*};
}

cast_from_f16!(i32, i64, f32, f64);

impl CastFrom<f16> for f16 {
    fn cast_from(value: f16) -> Self {
        value
    }
}

/// Anything → float16 goes through f64 (exact for int32, and int64 values
/// beyond f64's exact range are far beyond f16's and become ±inf anyway),
/// then rounds once.
macro_rules! cast_to_f16 {
    ($($from:ty),*) => {$(
        impl CastFrom<$from> for f16 {
            fn cast_from(value: $from) -> Self { f16::from_f64(value as f64) }
        }
    )*};
}

cast_to_f16!(i32, i64, f64);

impl CastFrom<f32> for f16 {
    fn cast_from(value: f32) -> Self {
        f16::from_f32(value)
    }
}
