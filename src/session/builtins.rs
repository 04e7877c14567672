//! The global functions every TVM client expects of a server.

use super::{CallContext, FunctionRegistry, SessionError, ffi_functions, testing_functions};
use crate::endpoint::tvm::codec::Value;

pub(crate) fn register(registry: &mut FunctionRegistry) {
    ffi_functions::register(registry);
    testing_functions::register(registry);
    registry.register("testing.echo", echo);
    registry.register("tvm.rpc.server.upload", upload);
    registry.register("tvm.rpc.server.download", download);
    registry.register("tvm.rpc.server.remove", remove);
    registry.register("tvm.rpc.server.GetCRTMaxPacketSize", |ctx, _| {
        Ok(Value::Int(i64::try_from(ctx.config().max_packet).unwrap_or(i64::MAX)))
    });
    registry.register("tensor_rpc.stats", |ctx, _| {
        Ok(Value::Str(ctx.config().usage.snapshot().to_json()))
    });
}

/// Returns its first argument, as TVM's `testing.echo`; an object passed back comes back as
/// a new reference to it.
fn echo(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    match args.first() {
        None => {
            Err(SessionError::InvalidArgument("expects at least one argument, got none".into()))
        }
        Some(Value::Tensor(_)) => Err(SessionError::InvalidArgument(
            "cannot return a DLTensor: a remote tensor's memory stays on the server".into(),
        )),
        Some(arg @ (Value::Module(_) | Value::ObjectRef(_))) => {
            let object = ctx.object(arg)?;
            ctx.return_object(object)
        }
        Some(v @ Value::Function(_)) => Err(SessionError::InvalidArgument(format!(
            "cannot return {}: a function passed in is not handed back out",
            v.describe()
        ))),
        Some(v) => Ok(v.clone()),
    }
}

fn expect_str<'a>(args: &'a [Value], i: usize, what: &str) -> Result<&'a str, SessionError> {
    match args.get(i) {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(SessionError::InvalidArgument(format!(
            "argument {i} ({what}) must be a string, got {}",
            other.describe()
        ))),
        None => Err(SessionError::InvalidArgument(format!("argument {i} ({what}) is missing"))),
    }
}

/// `upload(name, bytes)`: stores a file in the session directory.
fn upload(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    let name = expect_str(args, 0, "file name")?;
    let data = match args.get(1) {
        Some(Value::Bytes(b)) => b.as_slice(),
        Some(Value::Str(s)) => s.as_bytes(),
        other => {
            return Err(SessionError::InvalidArgument(format!(
                "argument 1 (data) must be bytes, got {}",
                other.map_or("nothing".into(), Value::describe)
            )));
        }
    };
    ctx.workspace().write(name, data)?;
    Ok(Value::None)
}

/// `download(name)`: the bytes of a file in the session directory.
fn download(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    let name = expect_str(args, 0, "file name")?;
    Ok(Value::Bytes(ctx.workspace().read(name)?))
}

/// `remove(name)`: deletes a file (or directory) of the session directory.
fn remove(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    let name = expect_str(args, 0, "file name")?;
    ctx.workspace().remove(name)?;
    Ok(Value::None)
}
