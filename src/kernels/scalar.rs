//! Per-element arithmetic with the semantics this module promises:
//!
//! * integers wrap on overflow (like numpy and TVM), integer division
//!   truncates toward zero (C / TVM `divide`, not numpy's flooring `//`),
//!   and dividing by zero gives 0 (numpy's result, without the warning);
//! * float `maximum` propagates NaN (like `numpy.maximum`);
//! * float16 is computed in float32 and rounded back once per operation.

use std::ops::{Add, Div, Mul, Neg, Sub};

use half::f16;

use crate::kernels::dtype::DType;
use crate::kernels::element::Element;

/// Dtypes the arithmetic ops (binary ops, `neg`, `relu`, `sum`, `max`)
/// support, as listed in error messages.
pub(crate) const ARITHMETIC_DTYPES: &str = "float16, float32, float64, int32, int64";

/// Dtypes the float-only ops support, as listed in error messages.
pub(crate) const FLOAT_DTYPES: &str = "float16, float32, float64";

/// Whether `dtype` is one of `ARITHMETIC_DTYPES`.
pub(crate) const fn is_arithmetic(dtype: DType) -> bool {
    matches!(dtype, DType::Float16 | DType::Float32 | DType::Float64 | DType::Int32 | DType::Int64)
}

/// Element-wise arithmetic on one element type.
pub(crate) trait Arithmetic: Element {
    const ZERO: Self;
    /// The identity of `maximum`: `-inf` for floats, `MIN` for integers.
    const LOWEST: Self;
    fn add(self, rhs: Self) -> Self;
    fn sub(self, rhs: Self) -> Self;
    fn mul(self, rhs: Self) -> Self;
    fn div(self, rhs: Self) -> Self;
    /// The larger of the two; NaN if either is NaN.
    fn max_or_nan(self, rhs: Self) -> Self;
    fn neg(self) -> Self;
}

macro_rules! impl_integer_arithmetic {
    ($($ty:ty),*) => {$(
        impl Arithmetic for $ty {
            const ZERO: Self = 0;
            const LOWEST: Self = <$ty>::MIN;
            fn add(self, rhs: Self) -> Self { self.wrapping_add(rhs) }
            fn sub(self, rhs: Self) -> Self { self.wrapping_sub(rhs) }
            fn mul(self, rhs: Self) -> Self { self.wrapping_mul(rhs) }
            fn div(self, rhs: Self) -> Self {
                // Division by zero is defined as 0; MIN / -1 wraps to MIN.
                if rhs == 0 { 0 } else { self.wrapping_div(rhs) }
            }
            fn max_or_nan(self, rhs: Self) -> Self { Ord::max(self, rhs) }
            fn neg(self) -> Self { self.wrapping_neg() }
        }
    )*};
}

impl_integer_arithmetic!(i32, i64);

macro_rules! impl_float_arithmetic {
    ($($ty:ty),*) => {$(
        impl Arithmetic for $ty {
            const ZERO: Self = 0.0;
            const LOWEST: Self = <$ty>::NEG_INFINITY;
            fn add(self, rhs: Self) -> Self { self + rhs }
            fn sub(self, rhs: Self) -> Self { self - rhs }
            fn mul(self, rhs: Self) -> Self { self * rhs }
            fn div(self, rhs: Self) -> Self { self / rhs }
            fn max_or_nan(self, rhs: Self) -> Self { nan_propagating_max(self, rhs) }
            fn neg(self) -> Self { -self }
        }
    )*};
}

impl_float_arithmetic!(f32, f64);

impl Arithmetic for f16 {
    const ZERO: Self = f16::ZERO;
    const LOWEST: Self = f16::NEG_INFINITY;
    fn add(self, rhs: Self) -> Self {
        f16::from_f32(self.to_f32() + rhs.to_f32())
    }
    fn sub(self, rhs: Self) -> Self {
        f16::from_f32(self.to_f32() - rhs.to_f32())
    }
    fn mul(self, rhs: Self) -> Self {
        f16::from_f32(self.to_f32() * rhs.to_f32())
    }
    fn div(self, rhs: Self) -> Self {
        f16::from_f32(self.to_f32() / rhs.to_f32())
    }
    fn max_or_nan(self, rhs: Self) -> Self {
        if self.is_nan() || rhs.is_nan() {
            f16::NAN
        } else if self >= rhs {
            self
        } else {
            rhs
        }
    }
    fn neg(self) -> Self {
        -self
    }
}

/// `max` that returns NaN when either input is NaN (`f32::max` would
/// silently drop it).
pub(crate) fn nan_propagating_max<T: Real>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::NAN
    } else if a >= b {
        a
    } else {
        b
    }
}

/// The float type a kernel computes in: f32 or f64.
pub(crate) trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    const NEG_INFINITY: Self;
    fn from_f64(value: f64) -> Self;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! impl_real {
    ($($ty:ident),*) => {$(
        impl Real for $ty {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = $ty::NAN;
            const NEG_INFINITY: Self = $ty::NEG_INFINITY;
            fn from_f64(value: f64) -> Self { value as $ty }
            fn exp(self) -> Self { $ty::exp(self) }
            fn tanh(self) -> Self { $ty::tanh(self) }
            fn is_nan(self) -> bool { $ty::is_nan(self) }
        }
    )*};
}

impl_real!(f32, f64);

/// A float element type, and the (wider or equal) type it is computed in.
pub(crate) trait FloatElement: Arithmetic {
    type Compute: Real;
    fn widen(self) -> Self::Compute;
    fn narrow(value: Self::Compute) -> Self;
    fn to_f64(self) -> f64;
    /// Rounds `value` to this type once (no double rounding via f32).
    fn from_f64(value: f64) -> Self;
}

impl FloatElement for f16 {
    type Compute = f32;
    fn widen(self) -> f32 {
        self.to_f32()
    }
    fn narrow(value: f32) -> Self {
        f16::from_f32(value)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(value: f64) -> Self {
        f16::from_f64(value)
    }
}

impl FloatElement for f32 {
    type Compute = f32;
    fn widen(self) -> f32 {
        self
    }
    fn narrow(value: f32) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl FloatElement for f64 {
    type Compute = f64;
    fn widen(self) -> f64 {
        self
    }
    fn narrow(value: f64) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_division_truncates_toward_zero() {
        assert_eq!(Arithmetic::div(7i32, 2), 3);
        assert_eq!(Arithmetic::div(-7i32, 2), -3);
        assert_eq!(Arithmetic::div(7i64, -2), -3);
    }

    #[test]
    fn integer_division_by_zero_is_zero() {
        assert_eq!(Arithmetic::div(5i32, 0), 0);
        assert_eq!(Arithmetic::div(i64::MIN, 0), 0);
    }

    #[test]
    fn integer_min_divided_by_minus_one_wraps() {
        assert_eq!(Arithmetic::div(i32::MIN, -1), i32::MIN);
    }

    #[test]
    fn integer_add_wraps_on_overflow() {
        assert_eq!(Arithmetic::add(i32::MAX, 1), i32::MIN);
        assert_eq!(Arithmetic::neg(i64::MIN), i64::MIN);
    }

    #[test]
    fn float_maximum_propagates_nan() {
        assert!(Arithmetic::max_or_nan(f32::NAN, 1.0).is_nan());
        assert!(Arithmetic::max_or_nan(1.0f64, f64::NAN).is_nan());
        assert!(Arithmetic::max_or_nan(f16::NAN, f16::ONE).is_nan());
        assert_eq!(Arithmetic::max_or_nan(-1.0f32, 2.0), 2.0);
    }

    #[test]
    fn float16_arithmetic_rounds_once_from_float32() {
        let a = f16::from_f32(1.0);
        let b = f16::from_f32(3.0);
        assert_eq!(Arithmetic::div(a, b), f16::from_f32(1.0 / 3.0));
    }
}
