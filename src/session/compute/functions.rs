//! The `tensor_rpc.<op>` functions: one kernel call on remote tensors, the output passed in
//! as the last tensor argument (as TVM does).
//!
//! | function | arguments |
//! |---|---|
//! | `matmul` | `a, b, out[, transpose_a[, transpose_b]]` |
//! | `add`, `sub`, `mul`, `div`, `maximum` | `a, b, out` (numpy broadcasting) |
//! | `relu`, `gelu`, `exp`, `neg`, `softmax` | `x, out` |
//! | `sum`, `mean`, `max` | `x, out, axis[, keepdims]` |
//! | `fill` | `out, value` |
//! | `cast` | `x, out` (to `out`'s dtype) |
//! | `transpose` | `x, out, axis0, axis1` |

use super::args::Args;
use super::op::{Op, check_output, describe, kernel_dtype};
use crate::endpoint::tvm::codec::{TensorRecord, Value};
use crate::kernels::{OutputSpec, TensorView, TensorViewMut};
use crate::session::{CallContext, Operand, Operands, PreparedBody, SessionError};

/// A parsed call: the op, its named inputs and its output. It owns its tensor records (a
/// few integers each), so a call checked on the event loop can run on a worker as it is.
pub struct OpCall {
    pub op: Op,
    pub inputs: Vec<(&'static str, TensorRecord)>,
    pub out: TensorRecord,
}

impl OpCall {
    /// Reads the arguments of `tensor_rpc.<name>`.
    pub fn parse(name: &str, values: &[Value]) -> Result<OpCall, SessionError> {
        let args = Args::new(values);
        let unknown = || SessionError::InvalidArgument(format!("no op named {name}"));
        let mut op = Op::named(name).ok_or_else(unknown)?;
        let (inputs, out) = match &mut op {
            Op::Matmul(options) => {
                args.expect_count(3, 5, "a, b, out[, transpose_a[, transpose_b]]")?;
                options.transpose_a = args.flag(3, "transpose_a", false)?;
                options.transpose_b = args.flag(4, "transpose_b", false)?;
                (
                    vec![("a", args.tensor(0, "a")?), ("b", args.tensor(1, "b")?)],
                    args.tensor(2, "out")?,
                )
            }
            Op::Binary(_) => {
                args.expect_count(3, 3, "a, b, out")?;
                (
                    vec![("a", args.tensor(0, "a")?), ("b", args.tensor(1, "b")?)],
                    args.tensor(2, "out")?,
                )
            }
            Op::Unary(_) | Op::Softmax => {
                args.expect_count(2, 2, "x, out")?;
                (vec![("x", args.tensor(0, "x")?)], args.tensor(1, "out")?)
            }
            Op::Reduce(_, options) => {
                args.expect_count(3, 4, "x, out, axis[, keepdims]")?;
                options.axis = args.int(2, "axis")?;
                options.keepdims = args.flag(3, "keepdims", false)?;
                (vec![("x", args.tensor(0, "x")?)], args.tensor(1, "out")?)
            }
            Op::Fill(value) => {
                args.expect_count(2, 2, "out, value")?;
                *value = args.float(1, "value")?;
                (vec![], args.tensor(0, "out")?)
            }
            Op::Cast(to) => {
                args.expect_count(2, 2, "x, out")?;
                let out = args.tensor(1, "out")?;
                *to = kernel_dtype("out", out.dtype)?;
                (vec![("x", args.tensor(0, "x")?)], out)
            }
            Op::Transpose { axis0, axis1 } => {
                args.expect_count(4, 4, "x, out, axis0, axis1")?;
                *axis0 = args.int(2, "axis0")?;
                *axis1 = args.int(3, "axis1")?;
                (vec![("x", args.tensor(0, "x")?)], args.tensor(1, "out")?)
            }
        };
        let inputs = inputs.into_iter().map(|(name, record)| (name, record.clone())).collect();
        Ok(OpCall { op, inputs, out: out.clone() })
    }

    /// Checks every dtype and shape, the output's included, without touching memory.
    pub fn validate(&self) -> Result<OutputSpec, SessionError> {
        let inputs = self
            .inputs
            .iter()
            .map(|(name, record)| describe(name, record))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = self.op.infer(&inputs, Some(describe("out", &self.out)?))?;
        check_output(&self.out, &spec)?;
        Ok(spec)
    }

    /// Runs the kernel on the session's memory (after [`OpCall::validate`]).
    pub fn run(&self, ctx: &mut CallContext<'_>) -> Result<(), SessionError> {
        let inputs: Vec<(&'static str, &TensorRecord)> =
            self.inputs.iter().map(|(name, record)| (*name, record)).collect();
        run_on_records(ctx, &self.op, &inputs, ("out", &self.out))
    }
}

/// Runs `op` on tensors of the session: bounds and aliasing are checked by
/// [`CallContext::operands`] before the kernel sees any byte.
pub fn run_on_records(
    ctx: &mut CallContext<'_>,
    op: &Op,
    inputs: &[(&'static str, &TensorRecord)],
    out: (&'static str, &TensorRecord),
) -> Result<(), SessionError> {
    let gemm = ctx.config().gemm_backend;
    let mut operands: Vec<Operand<'_>> =
        inputs.iter().map(|(name, record)| Operand::input(name, record)).collect();
    operands.push(Operand::output(out.0, out.1));
    let Operands { inputs: input_bytes, mut outputs } = ctx.operands(&operands)?;
    let views = input_bytes
        .into_iter()
        .zip(inputs)
        .map(|(bytes, (name, record))| {
            Ok(TensorView::new(kernel_dtype(name, record.dtype)?, &record.shape, bytes)?)
        })
        .collect::<Result<Vec<_>, SessionError>>()?;
    let out_bytes = outputs.pop().ok_or(SessionError::InvalidArgument("no output".into()))?;
    let mut out_view =
        TensorViewMut::new(kernel_dtype(out.0, out.1.dtype)?, &out.1.shape, out_bytes)?;
    op.run(&views, &mut out_view, gemm)?;
    Ok(())
}

/// Checks a call of `tensor_rpc.<name>` once (shapes and dtypes only: cheap), and returns it
/// ready to run with its estimated work.
pub fn prepare(name: &str, values: &[Value]) -> Result<PreparedBody, SessionError> {
    let call = OpCall::parse(name, values)?;
    let spec = call.validate()?;
    Ok(PreparedBody::new(spec.estimated_flops, move |ctx, _| {
        call.run(ctx)?;
        Ok(Value::None)
    }))
}
