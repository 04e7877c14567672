//! `fill(out, value)`: sets every element of `out` to `value`, for every
//! dtype.
//!
//! `value` is converted like `cast`: to integers by truncating toward zero
//! and saturating (NaN → 0); to float16/float32 by rounding to nearest; to
//! bool as `value != 0` (so NaN is true, as in numpy).

use half::f16;

use crate::kernels::dtype::DType;
use crate::kernels::element::{Element, dispatch_dtype, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorViewMut, flops};

/// Validates `out` for `fill` (every dtype is accepted) and returns its
/// dtype, shape and cost.
pub fn infer_fill(out: TensorDesc<'_>) -> Result<OutputSpec, KernelError> {
    Ok(OutputSpec {
        dtype: out.dtype(),
        shape: out.shape().to_vec(),
        estimated_flops: flops(out.num_elements(), 1),
    })
}

/// Sets every element of `out` to `value` converted to `out`'s dtype.
pub fn fill(out: &mut TensorViewMut<'_>, value: f64) -> Result<(), KernelError> {
    infer_fill(out.desc())?;
    if out.dtype() == DType::Bool {
        out.data_mut().fill(u8::from(value != 0.0));
        return Ok(());
    }
    dispatch_dtype!(
        out.dtype(), T => fill_with::<T>(out, T::from_fill_value(value)),
        [Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float16, Float32, Float64],
        return Err(KernelError::Internal {
            op: "fill",
            detail: "dtype without an element type",
        })
    );
    Ok(())
}

fn fill_with<T: Element>(out: &mut TensorViewMut<'_>, value: T) {
    // Filling is byte-pattern repetition, so misaligned output needs no
    // special care beyond what `write_elements` already does.
    write_elements::<T, _>(out.data_mut(), |out| out.fill(value));
}

/// Conversion of the `f64` fill value to an element type.
trait FromFillValue {
    fn from_fill_value(value: f64) -> Self;
}

macro_rules! fill_value_with_as {
    ($($ty:ty),*) => {$(
        impl FromFillValue for $ty {
            #[allow(clippy::unnecessary_cast)]
            fn from_fill_value(value: f64) -> Self { value as $ty }
        }
    )*};
}

fill_value_with_as!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl FromFillValue for f16 {
    fn from_fill_value(value: f64) -> Self {
        f16::from_f64(value)
    }
}
