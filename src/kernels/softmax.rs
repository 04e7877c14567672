//! Softmax over the last axis, for float16, float32 and float64.
//!
//! Numerically stable: each row is shifted by its maximum before `exp`, so
//! large inputs do not overflow. Rows are computed in float32 (float16,
//! float32) or float64 and rounded to the output once. A row containing NaN
//! gives NaN; so does a row of all `-inf` (0/0), as in scipy. A 0-d input is
//! a single element and gives 1 (like PyTorch); an empty last axis gives an
//! empty output.

use std::borrow::Cow;

use crate::kernels::element::{dispatch_dtype, read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::scalar::{FLOAT_DTYPES, FloatElement, Real, nan_propagating_max};
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut, flops};

const OP: &str = "softmax";

/// Rough flops per element: max, subtract, exp (~10), sum, divide.
const FLOPS_PER_ELEMENT: u64 = 14;

/// Validates `x` and returns the output's dtype and shape (those of `x`)
/// and cost.
pub fn infer_softmax(x: TensorDesc<'_>) -> Result<OutputSpec, KernelError> {
    if !x.dtype().is_float() {
        return Err(KernelError::UnsupportedDType {
            op: OP,
            arg: "x",
            dtype: x.dtype(),
            supported: FLOAT_DTYPES,
        });
    }
    Ok(OutputSpec {
        dtype: x.dtype(),
        shape: x.shape().to_vec(),
        estimated_flops: flops(x.num_elements(), FLOPS_PER_ELEMENT),
    })
}

/// `out = softmax(x)` along the last axis.
pub fn softmax(x: TensorView<'_>, out: &mut TensorViewMut<'_>) -> Result<(), KernelError> {
    let spec = infer_softmax(x.desc())?;
    spec.check_output(OP, &out.desc())?;
    let row_len = x.shape().last().map_or(1, |&d| d as usize);
    dispatch_dtype!(
        x.dtype(), T => {
            run_softmax::<T>(x, out, row_len);
            Ok(())
        },
        [Float16, Float32, Float64],
        Err(KernelError::UnsupportedDType {
            op: OP,
            arg: "x",
            dtype: x.dtype(),
            supported: FLOAT_DTYPES,
        })
    )
}

fn run_softmax<T: FloatElement>(x: TensorView<'_>, out: &mut TensorViewMut<'_>, row_len: usize) {
    // An empty tensor may still have a huge last axis (e.g. [0, 2^40]):
    // return before sizing the row buffer from it.
    if x.num_elements() == 0 {
        return;
    }
    let x: Cow<'_, [T]> = read_elements(x.data());
    // One row of exponentials in the compute type, reused for every row.
    let mut exps: Vec<T::Compute> = Vec::with_capacity(row_len);
    write_elements::<T, _>(out.data_mut(), |out| {
        for (row, out_row) in x.chunks_exact(row_len).zip(out.chunks_exact_mut(row_len)) {
            softmax_row(row, out_row, &mut exps);
        }
    });
}

fn softmax_row<T: FloatElement>(row: &[T], out: &mut [T], exps: &mut Vec<T::Compute>) {
    let max = row
        .iter()
        .fold(<T::Compute as Real>::NEG_INFINITY, |m, &v| nan_propagating_max(m, v.widen()));
    exps.clear();
    exps.extend(row.iter().map(|&v| (v.widen() - max).exp()));
    let sum = exps.iter().fold(<T::Compute as Real>::ZERO, |acc, &e| acc + e);
    for (o, &e) in out.iter_mut().zip(exps.iter()) {
        *o = T::narrow(e / sum);
    }
}
