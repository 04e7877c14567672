//! `tensor_rpc.time(name, number, repeat, args...)`: runs a compute function on the server
//! `number` times per repeat and returns each repeat's mean seconds per call, as TVM's
//! `time_evaluator` does: bytes of little-endian float64 (`np.frombuffer(b, "float64")`).
//!
//! A timing request occupies a compute worker for all its calls, so it is bounded twice: at
//! most [`MAX_CALLS`] calls, and at most [`SessionConfig::time_budget`] of wall-clock time,
//! after which it stops with an Exception instead of running on.
//!
//! [`SessionConfig::time_budget`]: crate::session::SessionConfig::time_budget

use std::time::Instant;

use super::PREFIX;
use super::args::Args;
use crate::endpoint::tvm::codec::Value;
use crate::session::{CallContext, FunctionRegistry, PreparedBody, SessionError};

pub const TIME: &str = "tensor_rpc.time";

/// Most calls one timing request may make (`number * repeat`).
pub const MAX_CALLS: i64 = 10_000;

struct Timing<'a> {
    function: &'a str,
    number: u64,
    repeat: u64,
    args: &'a [Value],
}

fn parse(values: &[Value]) -> Result<Timing<'_>, SessionError> {
    let args = Args::new(values);
    if values.len() < 3 {
        return Err(SessionError::InvalidArgument(
            "expects (function name, number, repeat, args...)".into(),
        ));
    }
    let function = args.text(0, "function name")?;
    if !function.starts_with(PREFIX) || function == TIME || function == "tensor_rpc.stats" {
        return Err(SessionError::InvalidArgument(format!(
            "can time compute functions ({PREFIX}*), not '{function}'"
        )));
    }
    let number = args.int(1, "number")?;
    let repeat = args.int(2, "repeat")?;
    if number < 1 || repeat < 1 || number.saturating_mul(repeat) > MAX_CALLS {
        return Err(SessionError::InvalidArgument(format!(
            "number ({number}) and repeat ({repeat}) must be positive, with at most {MAX_CALLS} calls in all"
        )));
    }
    Ok(Timing { function, number: number as u64, repeat: repeat as u64, args: &values[3..] })
}

fn run(ctx: &mut CallContext<'_>, values: &[Value]) -> Result<Value, SessionError> {
    let timing = parse(values)?;
    let function = ctx.registry().get(timing.function).ok_or_else(|| {
        SessionError::InvalidArgument(format!("no function named '{}'", timing.function))
    })?;
    let budget = ctx.config().time_budget;
    let began = Instant::now();
    let mut seconds = Vec::with_capacity(timing.repeat as usize * 8);
    for _ in 0..timing.repeat {
        let start = Instant::now();
        for _ in 0..timing.number {
            function.call(ctx, timing.args)?;
            let spent = began.elapsed();
            if spent > budget {
                return Err(SessionError::TimeBudgetExceeded {
                    spent,
                    budget,
                    number: timing.number,
                    repeat: timing.repeat,
                });
            }
        }
        let mean = start.elapsed().as_secs_f64() / timing.number as f64;
        seconds.extend_from_slice(&mean.to_le_bytes());
    }
    Ok(Value::Bytes(seconds))
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    // The cost of the timed calls needs the registry, which a preparer does not see; any
    // timing is worth running off the event loop.
    registry.register_prepared(TIME, |values| {
        parse(values)?;
        Ok(PreparedBody::new(u64::MAX, run))
    });
}
