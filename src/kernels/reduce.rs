//! Reductions over one axis: `sum`, `mean`, `max`, with a `keepdims` flag.
//!
//! * `sum` and `max` accept float16/32/64, int32 and int64; `mean` is
//!   float-only (an integer mean would need a float output dtype).
//! * The output dtype is the input's (TVM convention; numpy would widen an
//!   int32 sum to int64). Integer sums wrap on overflow.
//! * Float sums and means accumulate in float64 and round once, so float16
//!   and float32 results are at least as accurate as numpy's.
//! * Like numpy: the sum of an empty axis is 0, the mean of an empty axis
//!   is NaN, and `max` of an empty axis is an error (it has no identity).
//!   `max` propagates NaN. A 0-d input has no axis to reduce and is rejected.
//! * `axis` may be negative (counted from the end).

use std::borrow::Cow;

use crate::kernels::axis::normalize_axis;
use crate::kernels::dtype::DType;
use crate::kernels::element::{Element, dispatch_dtype, read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::scalar::{
    ARITHMETIC_DTYPES, Arithmetic, FLOAT_DTYPES, FloatElement, is_arithmetic,
};
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut, flops};

/// Which reduction to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
}

impl ReduceOp {
    pub const fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
        }
    }

    fn supports(self, dtype: DType) -> bool {
        match self {
            ReduceOp::Sum | ReduceOp::Max => is_arithmetic(dtype),
            ReduceOp::Mean => dtype.is_float(),
        }
    }

    fn supported_dtypes(self) -> &'static str {
        match self {
            ReduceOp::Sum | ReduceOp::Max => ARITHMETIC_DTYPES,
            ReduceOp::Mean => FLOAT_DTYPES,
        }
    }
}

/// Attributes of a reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReduceOptions {
    /// The axis to reduce; negative counts from the end.
    pub axis: i64,
    /// Keep the reduced axis as a dimension of size 1.
    pub keepdims: bool,
}

/// The input seen as `[outer, axis_len, inner]`.
#[derive(Debug, Clone, Copy)]
struct ReduceGeometry {
    axis_len: usize,
    inner: usize,
}

/// Validates `x` and `options` for `op` and returns the output's dtype
/// (that of `x`), shape (the axis removed, or 1 with `keepdims`) and cost.
pub fn infer_reduce(
    op: ReduceOp,
    x: TensorDesc<'_>,
    options: ReduceOptions,
) -> Result<OutputSpec, KernelError> {
    plan_reduce(op, x, options).map(|(spec, _)| spec)
}

fn plan_reduce(
    op: ReduceOp,
    x: TensorDesc<'_>,
    options: ReduceOptions,
) -> Result<(OutputSpec, ReduceGeometry), KernelError> {
    if !op.supports(x.dtype()) {
        return Err(KernelError::UnsupportedDType {
            op: op.name(),
            arg: "x",
            dtype: x.dtype(),
            supported: op.supported_dtypes(),
        });
    }
    let axis = normalize_axis(op.name(), "axis", "x", options.axis, x.shape())?;
    let dims = x.dims();
    let axis_len = dims[axis];
    if op == ReduceOp::Max && axis_len == 0 {
        return Err(KernelError::EmptyReduction {
            op: op.name(),
            arg: "x",
            axis: options.axis,
            shape: x.shape().to_vec(),
        });
    }
    let mut shape = x.shape().to_vec();
    if options.keepdims {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    let geometry = ReduceGeometry { axis_len, inner: dims[axis + 1..].iter().product() };
    let spec = OutputSpec { dtype: x.dtype(), shape, estimated_flops: flops(x.num_elements(), 1) };
    Ok((spec, geometry))
}

/// `out = op(x)` along `options.axis`.
pub fn reduce(
    op: ReduceOp,
    x: TensorView<'_>,
    options: ReduceOptions,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    let (spec, geometry) = plan_reduce(op, x.desc(), options)?;
    spec.check_output(op.name(), &out.desc())?;
    let unsupported = || KernelError::UnsupportedDType {
        op: op.name(),
        arg: "x",
        dtype: x.dtype(),
        supported: op.supported_dtypes(),
    };
    match op {
        ReduceOp::Sum => dispatch_dtype!(
            x.dtype(), T => run_sum_float::<T>(x, out, geometry, false),
            [Float16, Float32, Float64],
            dispatch_dtype!(
                x.dtype(), T => run_reduction::<T, T>(
                    x, out, geometry, T::ZERO, T::add, |acc| acc,
                ),
                [Int32, Int64],
                return Err(unsupported())
            )
        ),
        ReduceOp::Mean => dispatch_dtype!(
            x.dtype(), T => run_sum_float::<T>(x, out, geometry, true),
            [Float16, Float32, Float64],
            return Err(unsupported())
        ),
        ReduceOp::Max => dispatch_dtype!(
            x.dtype(), T => run_reduction::<T, T>(
                x, out, geometry, T::LOWEST, T::max_or_nan, |acc| acc,
            ),
            [Float16, Float32, Float64, Int32, Int64],
            return Err(unsupported())
        ),
    }
    Ok(())
}

/// `out = sum(x, axis)`.
pub fn sum(
    x: TensorView<'_>,
    options: ReduceOptions,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    reduce(ReduceOp::Sum, x, options, out)
}

/// `out = mean(x, axis)`.
pub fn mean(
    x: TensorView<'_>,
    options: ReduceOptions,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    reduce(ReduceOp::Mean, x, options, out)
}

/// `out = max(x, axis)`.
pub fn max(
    x: TensorView<'_>,
    options: ReduceOptions,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    reduce(ReduceOp::Max, x, options, out)
}

/// Float sum (or mean) accumulated in f64 and rounded once.
fn run_sum_float<T: FloatElement>(
    x: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
    geometry: ReduceGeometry,
    divide_by_count: bool,
) {
    let count = geometry.axis_len as f64;
    run_reduction::<T, f64>(
        x,
        out,
        geometry,
        0.0,
        |acc, v| acc + v.to_f64(),
        |acc| T::from_f64(if divide_by_count { acc / count } else { acc }),
    );
}

/// Folds the axis of `x` into `out` with accumulator type `A`. Iterates the
/// input in memory order, keeping one accumulator per inner position, so the
/// inner loop is contiguous whatever the axis.
fn run_reduction<T: Element, A: Copy>(
    x: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
    geometry: ReduceGeometry,
    init: A,
    step: impl Fn(A, T) -> A,
    finish: impl Fn(A) -> T,
) {
    let ReduceGeometry { axis_len, inner } = geometry;
    let x: Cow<'_, [T]> = read_elements(x.data());
    write_elements::<T, _>(out.data_mut(), |out| {
        // An empty output (some dimension is 0) has nothing to compute, and
        // `inner == 0` implies it.
        if out.is_empty() {
            return;
        }
        let block_len = axis_len * inner;
        let mut accumulators = vec![init; inner];
        for (block_index, out_block) in out.chunks_exact_mut(inner).enumerate() {
            accumulators.fill(init);
            let start = block_index * block_len;
            let block = x.get(start..start + block_len).unwrap_or(&[]);
            for row in block.chunks_exact(inner) {
                for (acc, &v) in accumulators.iter_mut().zip(row) {
                    *acc = step(*acc, v);
                }
            }
            for (o, &acc) in out_block.iter_mut().zip(&accumulators) {
                *o = finish(acc);
            }
        }
    });
}
