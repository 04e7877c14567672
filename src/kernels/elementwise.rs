//! Elementwise binary ops with full numpy broadcasting: `add`, `sub`, `mul`,
//! `div`, `maximum`, for float16, float32, float64, int32 and int64.
//!
//! Both operands must have the same dtype, which is also the output's.
//! Integer semantics (see `scalar`): wrapping on overflow, `div` truncates
//! toward zero (C / TVM `divide`; numpy's `//` floors instead), and division
//! by zero gives 0. Float `maximum` propagates NaN.

use std::borrow::Cow;

use crate::kernels::broadcast::{BroadcastPlan, Run, broadcast_shapes};
use crate::kernels::element::{dispatch_dtype, read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::scalar::{ARITHMETIC_DTYPES, Arithmetic, is_arithmetic};
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut, flops};

/// Which elementwise binary op to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
}

impl BinaryOp {
    pub const fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
        }
    }
}

/// Validates `a` and `b` for `op` and returns the output's dtype (that of
/// the operands), broadcast shape and cost (one per output element).
pub fn infer_binary(
    op: BinaryOp,
    a: TensorDesc<'_>,
    b: TensorDesc<'_>,
) -> Result<OutputSpec, KernelError> {
    let name = op.name();
    if !is_arithmetic(a.dtype()) {
        return Err(KernelError::UnsupportedDType {
            op: name,
            arg: "a",
            dtype: a.dtype(),
            supported: ARITHMETIC_DTYPES,
        });
    }
    if b.dtype() != a.dtype() {
        return Err(KernelError::DTypeMismatch {
            op: name,
            arg: "b",
            actual: b.dtype(),
            expected: a.dtype(),
        });
    }
    let shape = broadcast_shapes(name, ("a", a.shape()), ("b", b.shape()))?;
    let out = TensorDesc::new(a.dtype(), &shape)?;
    let estimated_flops = flops(out.num_elements(), 1);
    Ok(OutputSpec { dtype: a.dtype(), shape, estimated_flops })
}

/// `out = op(a, b)` elementwise, broadcasting `a` and `b` to `out`'s shape.
pub fn binary(
    op: BinaryOp,
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    let spec = infer_binary(op, a.desc(), b.desc())?;
    spec.check_output(op.name(), &out.desc())?;
    let plan = BroadcastPlan::new(&a.desc().dims(), &b.desc().dims(), &out.desc().dims());
    dispatch_dtype!(
        a.dtype(), T => {
            run_binary::<T>(op, a, b, out, &plan);
            Ok(())
        },
        [Float16, Float32, Float64, Int32, Int64],
        Err(KernelError::UnsupportedDType {
            op: op.name(),
            arg: "a",
            dtype: a.dtype(),
            supported: ARITHMETIC_DTYPES,
        })
    )
}

/// `out = a + b` with broadcasting.
pub fn add(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    binary(BinaryOp::Add, a, b, out)
}

/// `out = a - b` with broadcasting.
pub fn sub(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    binary(BinaryOp::Sub, a, b, out)
}

/// `out = a * b` with broadcasting.
pub fn mul(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    binary(BinaryOp::Mul, a, b, out)
}

/// `out = a / b` with broadcasting (integers: truncating, `x / 0 == 0`).
pub fn div(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    binary(BinaryOp::Div, a, b, out)
}

/// `out = maximum(a, b)` with broadcasting (NaN-propagating for floats).
pub fn maximum(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    binary(BinaryOp::Maximum, a, b, out)
}

fn run_binary<T: Arithmetic>(
    op: BinaryOp,
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
    plan: &BroadcastPlan,
) {
    let a: Cow<'_, [T]> = read_elements(a.data());
    let b: Cow<'_, [T]> = read_elements(b.data());
    write_elements::<T, _>(out.data_mut(), |out| {
        // Matching on `op` once, outside the loops, gives each op its own
        // monomorphised (and vectorisable) inner loop.
        match op {
            BinaryOp::Add => apply(plan, &a, &b, out, T::add),
            BinaryOp::Sub => apply(plan, &a, &b, out, T::sub),
            BinaryOp::Mul => apply(plan, &a, &b, out, T::mul),
            BinaryOp::Div => apply(plan, &a, &b, out, T::div),
            BinaryOp::Maximum => apply(plan, &a, &b, out, T::max_or_nan),
        }
    });
}

fn apply<T: Copy>(plan: &BroadcastPlan, a: &[T], b: &[T], out: &mut [T], f: impl Fn(T, T) -> T) {
    plan.for_each_run(|run| apply_run(run, a, b, out, &f));
}

/// One contiguous output run. Each operand steps by 1 or is a repeated
/// scalar (step 0); the four combinations get their own simple loops so the
/// compiler can vectorise them. Out-of-range slices (impossible after
/// validation) are skipped rather than panicking.
fn apply_run<T: Copy>(run: Run, a: &[T], b: &[T], out: &mut [T], f: &impl Fn(T, T) -> T) {
    let Some(out) = out.get_mut(run.out_offset..run.out_offset + run.len) else {
        return;
    };
    let a_len = if run.a_step == 0 { 1 } else { run.len };
    let b_len = if run.b_step == 0 { 1 } else { run.len };
    let (Some(a), Some(b)) =
        (a.get(run.a_offset..run.a_offset + a_len), b.get(run.b_offset..run.b_offset + b_len))
    else {
        return;
    };
    match (run.a_step, run.b_step) {
        (0, 0) => out.fill(f(a[0], b[0])),
        (0, _) => {
            let x = a[0];
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(x, y);
            }
        }
        (_, 0) => {
            let y = b[0];
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, y);
            }
        }
        _ => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
    }
}
