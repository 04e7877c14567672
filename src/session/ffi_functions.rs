//! tvm-ffi's core global functions that build and read objects remotely (`ffi.Shape`,
//! `ffi.Array`, ...), and the module functions TVM's client calls on a remote module
//! (`ffi.SystemLib`, `tvm.rpc.server.ModuleGetFunction`). Objects they make come back to
//! the client as handles of the session ([`super::objects`]).

use std::sync::Arc;

use super::objects::{Array, Element, Module, RemoteObject, Shape};
use super::{CallContext, FunctionRegistry, SessionError};
use crate::endpoint::tvm::codec::Value;

pub(crate) fn register(registry: &mut FunctionRegistry) {
    registry.register("ffi.Shape", make_shape);
    registry.register("ffi.Array", make_array);
    registry.register("ffi.ArrayGetItem", array_get_item);
    registry.register("ffi.ArraySize", array_size);
    registry.register("ffi.String", |_, args| {
        expect_count(args, 1, "ffi.String(str) -> str")?;
        match &args[0] {
            value @ Value::Str(_) => Ok(value.clone()),
            other => Err(mismatch(0, "str", other)),
        }
    });
    registry.register("ffi.Bytes", |_, args| {
        expect_count(args, 1, "ffi.Bytes(bytes) -> bytes")?;
        match &args[0] {
            value @ Value::Bytes(_) => Ok(value.clone()),
            other => Err(mismatch(0, "bytes", other)),
        }
    });
    registry.register("ffi.SystemLib", system_lib);
    registry.register("tvm.rpc.server.ModuleGetFunction", module_get_function);
}

/// Refuses a call with other than `count` arguments, naming the signature.
pub(super) fn expect_count(
    args: &[Value],
    count: usize,
    signature: &str,
) -> Result<(), SessionError> {
    if args.len() == count {
        return Ok(());
    }
    Err(SessionError::InvalidArgument(format!(
        "`{signature}` takes {count} argument{}, got {}",
        if count == 1 { "" } else { "s" },
        args.len()
    )))
}

pub(super) fn mismatch(position: usize, expected: &str, got: &Value) -> SessionError {
    SessionError::InvalidArgument(format!(
        "argument {position} must be {expected}, got {}",
        got.describe()
    ))
}

/// The integer argument at `position`.
pub(super) fn expect_int(args: &[Value], position: usize) -> Result<i64, SessionError> {
    match args.get(position) {
        Some(Value::Int(v)) => Ok(*v),
        Some(Value::Bool(v)) => Ok(i64::from(*v)),
        Some(other) => Err(mismatch(position, "an int", other)),
        None => Err(SessionError::InvalidArgument(format!("argument {position} is missing"))),
    }
}

/// The Shape object an argument refers to.
pub(super) fn expect_shape(
    ctx: &CallContext<'_>,
    args: &[Value],
    position: usize,
) -> Result<Arc<RemoteObject>, SessionError> {
    expect_object(ctx, args, position, "ffi.Shape", |o| matches!(o, RemoteObject::Shape(_)))
}

fn expect_object(
    ctx: &CallContext<'_>,
    args: &[Value],
    position: usize,
    type_key: &str,
    is: impl Fn(&RemoteObject) -> bool,
) -> Result<Arc<RemoteObject>, SessionError> {
    let arg = args
        .get(position)
        .ok_or_else(|| SessionError::InvalidArgument(format!("argument {position} is missing")))?;
    if !matches!(arg, Value::ObjectRef(_) | Value::Module(_)) {
        return Err(mismatch(position, &format!("an {type_key}"), arg));
    }
    let object = ctx.object(arg)?;
    if !is(&object) {
        return Err(SessionError::InvalidArgument(format!(
            "argument {position} must be an {type_key}, got an {}",
            object.type_key()
        )));
    }
    Ok(object)
}

/// `ffi.Shape(*dims)`: a Shape of the given integers.
fn make_shape(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    let dims = (0..args.len())
        .map(|i| {
            expect_int(args, i).map_err(|_| {
                SessionError::InvalidArgument(format!(
                    "Expect shape to take list of int arguments: argument {i} is {}",
                    args[i].describe()
                ))
            })
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let shape = Shape::new(dims, ctx.object_budget())?;
    ctx.return_object(Arc::new(RemoteObject::Shape(shape)))
}

/// `ffi.Array(*items)`: an Array of the arguments; objects passed back are held by it.
fn make_array(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    let items = args
        .iter()
        .map(|arg| match arg {
            Value::ObjectRef(_) | Value::Module(_) => ctx.object(arg).map(Element::Object),
            other => Ok(Element::Value(other.clone())),
        })
        .collect::<Result<Vec<Element>, _>>()?;
    let array = Array::new(items, ctx.object_budget())?;
    ctx.return_object(Arc::new(RemoteObject::Array(array)))
}

fn expect_array(ctx: &CallContext<'_>, args: &[Value]) -> Result<Arc<RemoteObject>, SessionError> {
    expect_object(ctx, args, 0, "ffi.Array", |o| matches!(o, RemoteObject::Array(_)))
}

fn items(object: &RemoteObject) -> &[Element] {
    match object {
        RemoteObject::Array(array) => array.items(),
        _ => &[],
    }
}

/// `ffi.ArrayGetItem(array, i)`: element `i`; an object element comes back as a new
/// reference to it.
fn array_get_item(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    expect_count(args, 2, "ffi.ArrayGetItem(ffi.Array, int) -> Any")?;
    let array = expect_array(ctx, args)?;
    let index = expect_int(args, 1)?;
    let items = items(&array);
    let item = usize::try_from(index).ok().and_then(|i| items.get(i)).ok_or_else(|| {
        SessionError::InvalidArgument(format!("Index {index} out of bounds {}", items.len()))
    })?;
    match item {
        Element::Value(value) => Ok(value.clone()),
        Element::Object(object) => ctx.return_object(Arc::clone(object)),
    }
}

/// `ffi.ArraySize(array)`.
fn array_size(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    expect_count(args, 1, "ffi.ArraySize(ffi.Array) -> int")?;
    let array = expect_array(ctx, args)?;
    Ok(Value::Int(items(&array).len() as i64))
}

/// `ffi.SystemLib(prefix="")`: the module of code linked into the server. Ours has none,
/// so it is an empty module whatever the prefix.
fn system_lib(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    match args {
        [] | [Value::Str(_)] => {
            ctx.return_object(Arc::new(RemoteObject::Module(Module::SystemLib)))
        }
        [other] => Err(mismatch(0, "a prefix string", other)),
        _ => Err(SessionError::InvalidArgument(format!(
            "`ffi.SystemLib(prefix: str = \"\")` takes at most 1 argument, got {}",
            args.len()
        ))),
    }
}

/// `tvm.rpc.server.ModuleGetFunction(module, name, query_imports)`: what TVM's client calls
/// for `module[name]`; None (the client raises AttributeError) when it has no such function.
fn module_get_function(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    expect_count(
        args,
        3,
        "tvm.rpc.server.ModuleGetFunction(ffi.Module, str, bool) -> Optional[Function]",
    )?;
    let Module::SystemLib = ctx.module(&args[0])?;
    match &args[1] {
        Value::Str(_) => Ok(Value::None),
        other => Err(mismatch(1, "a function name", other)),
    }
}
