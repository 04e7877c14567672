//! The test functions TVM's server offers and TVM's tests, tutorials and users call: the
//! `rpc.test.*` functions of `tvm.rpc.testing` (Python, imported by TVM's server), libtvm's
//! `rpc.testing.*` and tvm-ffi's `testing.test_raise_error`, with the same names and
//! behaviour. Where TVM's Python raises, ours answers with an Exception naming Python's
//! error type.

use std::sync::Arc;

use super::ffi_functions::{expect_count, expect_int, expect_shape, mismatch};
use super::objects::RemoteObject;
use super::python_values::{add, to_str};
use super::{CallContext, FunctionRegistry, GlobalFunction, Operand, SessionError};
use crate::endpoint::tvm::codec::{DataType, TensorRecord, Value, checked_nbytes};
use crate::kernels::DType;

pub(crate) fn register(registry: &mut FunctionRegistry) {
    registry.register("rpc.test.addone", |_, args| {
        expect_count(args, 1, "rpc.test.addone(x)")?;
        add(&args[0], &Value::Int(1))
    });
    registry.register("rpc.test.strcat", |_, args| {
        expect_count(args, 2, "rpc.test.strcat(name, x)")?;
        Ok(Value::Str(format!("{}:{}", to_str(&args[0])?, to_str(&args[1])?)))
    });
    registry.register("rpc.test.except", |_, args| {
        expect_count(args, 1, "rpc.test.except(name)")?;
        Err(SessionError::InvalidArgument(format!("ValueError: {}", to_str(&args[0])?)))
    });
    registry.register("rpc.test.runtime_str_concat", |_, args| {
        expect_count(args, 2, "rpc.test.runtime_str_concat(x, y)")?;
        add(&args[0], &args[1])
    });
    registry.register("rpc.test.remote_tensor_func", remote_tensor_func);
    registry.register("rpc.test.add_to_lhs", add_to_lhs);
    registry.register("rpc.test.remote_return_nd", remote_return_nd);
    registry.register("testing.test_raise_error", |_, args| match args {
        [Value::Str(kind), Value::Str(message)] => Err(SessionError::FunctionFailed {
            function: "testing.test_raise_error".into(),
            message: format!("{kind}: {message}"),
        }),
        _ => Err(SessionError::InvalidArgument(format!(
            "`testing.test_raise_error(kind: str, message: str)` got {}",
            describe_all(args)
        ))),
    });
    registry.register("rpc.testing.GetShapeSize", |ctx, args| {
        expect_count(args, 1, "rpc.testing.GetShapeSize(ffi.Shape) -> int")?;
        let shape = expect_shape(ctx, args, 0)?;
        Ok(Value::Int(dims(&shape).len() as i64))
    });
    registry.register("rpc.testing.GetShapeElem", |ctx, args| {
        expect_count(args, 2, "rpc.testing.GetShapeElem(ffi.Shape, int) -> int")?;
        let shape = expect_shape(ctx, args, 0)?;
        let dims = dims(&shape);
        let index = expect_int(args, 1)?;
        usize::try_from(index).ok().and_then(|i| dims.get(i)).map(|d| Value::Int(*d)).ok_or_else(
            || {
                SessionError::InvalidArgument(format!(
                    "Check failed: idx < shape.size() ({index} vs. {})",
                    dims.len()
                ))
            },
        )
    });
}

/// Bytes a value kept by a function holds.
fn value_bytes(value: &Value) -> u64 {
    let heap = match value {
        Value::Str(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Tensor(t) | Value::TensorObject { tensor: t, .. } => t.shape.len() * 8,
        _ => 0,
    };
    (std::mem::size_of::<Value>() + heap) as u64
}

fn describe_all(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(Value::describe).collect();
    format!("[{}]", parts.join(", "))
}

fn dims(object: &RemoteObject) -> &[i64] {
    match object {
        RemoteObject::Shape(shape) => shape.dims(),
        _ => &[],
    }
}

/// `rpc.test.add_to_lhs(x)`: a function of `y` returning `x + y`.
fn add_to_lhs(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    expect_count(args, 1, "rpc.test.add_to_lhs(x)")?;
    let lhs = args[0].clone();
    // The function keeps `x` (a string may be large) for as long as the client holds it.
    let held = ctx.object_budget().reserve(value_bytes(&lhs))?;
    ctx.return_function(GlobalFunction::closure(
        "rpc.test.add_to_lhs's lambda".into(),
        move |_, args| {
            let _ = &held;
            expect_count(args, 1, "lambda y: x + y")?;
            add(&lhs, &args[0])
        },
    ))
}

/// `rpc.test.remote_tensor_func(y)`: checks that `y` equals `numpy.ones((3, 4))`, as
/// `numpy.testing.assert_equal` does (values compared, whatever the dtype).
fn remote_tensor_func(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    expect_count(args, 1, "rpc.test.remote_tensor_func(y)")?;
    let y = match &args[0] {
        Value::Tensor(record) => record,
        other => return Err(mismatch(0, "a tensor", other)),
    };
    if y.shape != [3, 4] {
        return Err(SessionError::InvalidArgument(format!(
            "AssertionError: Arrays are not equal (shapes {}, (3, 4) mismatch)",
            python_tuple(&y.shape)
        )));
    }
    let bytes = ctx.tensor(y)?;
    let mut differ = 0;
    for i in 0..12 {
        if element_as_f64(y.dtype, bytes, i)? != 1.0 {
            differ += 1;
        }
    }
    if differ > 0 {
        return Err(SessionError::InvalidArgument(format!(
            "AssertionError: Arrays are not equal: {differ} of 12 elements differ from 1.0"
        )));
    }
    Ok(Value::None)
}

/// `rpc.test.remote_return_nd(name)`: makes a float32 tensor of ten zeros and returns a
/// function over it, which TVM's tests use to check that tensors returned, passed back and
/// freed keep their references right: `get_arr()` returns the tensor, `ref_count()` the
/// references the server holds to it, `get_elem(i)` its element `i`, and
/// `get_arr_elem(arr, i)` element (or row) `i` of a tensor passed in.
fn remote_return_nd(ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
    expect_count(args, 1, "rpc.test.remote_return_nd(name)")?;
    let name = match &args[0] {
        Value::Str(name) => name.as_str(),
        _ => "",
    };
    let closure_name = format!("rpc.test.remote_return_nd({name:?})'s lambda");
    let closure = match name {
        "get_arr" => {
            let nd = ctx.new_tensor_object(DataType::FLOAT32, &[10])?;
            GlobalFunction::closure(closure_name, move |ctx, args| {
                expect_count(args, 0, "lambda: nd")?;
                ctx.return_object(Arc::clone(&nd))
            })
        }
        "ref_count" => {
            let nd = ctx.new_tensor_object(DataType::FLOAT32, &[10])?;
            GlobalFunction::closure(closure_name, move |_, args| {
                expect_count(args, 0, "lambda: object_use_count(nd)")?;
                Ok(Value::Int(Arc::strong_count(&nd) as i64))
            })
        }
        "get_elem" => {
            let nd = ctx.new_tensor_object(DataType::FLOAT32, &[10])?;
            GlobalFunction::closure(closure_name, move |ctx, args| {
                expect_count(args, 1, "lambda idx: nd.numpy()[idx]")?;
                let RemoteObject::Tensor(tensor) = &*nd else {
                    return Err(SessionError::InvalidArgument("nd is not a tensor".into()));
                };
                index_axis_0(ctx, tensor.record(), &args[0])
            })
        }
        "get_arr_elem" => GlobalFunction::closure(closure_name, |ctx, args| {
            expect_count(args, 2, "lambda arr, idx: arr.numpy()[idx]")?;
            match &args[0] {
                Value::Tensor(record) => index_axis_0(ctx, record, &args[1]),
                other => Err(mismatch(0, "a tensor", other)),
            }
        }),
        _ => return Err(SessionError::InvalidArgument("RuntimeError: unknown name".into())),
    };
    ctx.return_function(closure)
}

/// `tensor.numpy()[index]`: an element of a 1-d tensor as a scalar, or a row of a deeper
/// one as a new tensor object; negative indices count from the end, as in numpy.
fn index_axis_0(
    ctx: &mut CallContext<'_>,
    tensor: &TensorRecord,
    index: &Value,
) -> Result<Value, SessionError> {
    let Value::Int(index) = *index else {
        return Err(SessionError::InvalidArgument(format!(
            "IndexError: only integers are valid indices, got {}",
            index.describe()
        )));
    };
    let Some((&len, row_shape)) = tensor.shape.split_first() else {
        return Err(SessionError::InvalidArgument(
            "IndexError: too many indices for array: array is 0-dimensional, but 1 were indexed"
                .into(),
        ));
    };
    let position = if index < 0 { index.checked_add(len) } else { Some(index) };
    let Some(row) = position.filter(|p| (0..len).contains(p)) else {
        return Err(SessionError::InvalidArgument(format!(
            "IndexError: index {index} is out of bounds for axis 0 with size {len}"
        )));
    };
    let row = row as usize;
    let bytes = ctx.tensor(tensor)?;
    if row_shape.is_empty() {
        return element(tensor.dtype, bytes, row);
    }
    // The tensor lies inside its allocation, so its rows' offsets fit in memory.
    let row_bytes = checked_nbytes(row_shape, tensor.dtype).ok_or_else(|| {
        SessionError::InvalidArgument(format!("row shape {row_shape:?} is too large"))
    })? as usize;
    let start = row.checked_mul(row_bytes).filter(|s| s + row_bytes <= bytes.len());
    let start = start.ok_or_else(|| {
        SessionError::InvalidArgument(format!("row {row} lies outside the tensor's bytes"))
    })?;
    let result = ctx.new_tensor_object(tensor.dtype, row_shape)?;
    let RemoteObject::Tensor(owned) = &*result else {
        return Err(SessionError::InvalidArgument("the new tensor is not a tensor".into()));
    };
    let mut operands =
        ctx.operands(&[Operand::input("arr", tensor), Operand::output("row", owned.record())])?;
    operands.outputs[0].copy_from_slice(&operands.inputs[0][start..start + row_bytes]);
    ctx.return_object(result)
}

/// Python's spelling of a shape: `(3, 4)`, `(12,)`, `()`.
fn python_tuple(shape: &[i64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(i64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// The bytes of element `index` of a compact tensor of `dtype`, and its dtype.
fn element_bytes(
    dtype: DataType,
    bytes: &[u8],
    index: usize,
) -> Result<(DType, &[u8]), SessionError> {
    let kind = DType::from_dlpack(dtype.code, dtype.bits, dtype.lanes)?;
    let size = kind.size_bytes();
    let start = index.checked_mul(size);
    let slot = start.and_then(|s| bytes.get(s..s.checked_add(size)?));
    let slot = slot.ok_or_else(|| {
        SessionError::InvalidArgument(format!(
            "element {index} lies outside the tensor's {} bytes",
            bytes.len()
        ))
    })?;
    Ok((kind, slot))
}

/// Element `index` as numpy hands it to Python and tvm-ffi to the client: an int, a float
/// or a bool.
fn element(dtype: DataType, bytes: &[u8], index: usize) -> Result<Value, SessionError> {
    let (kind, b) = element_bytes(dtype, bytes, index)?;
    let array = |b: &[u8]| -> [u8; 8] {
        let mut out = [0; 8];
        out[..b.len()].copy_from_slice(b);
        out
    };
    let signed = |b: &[u8]| {
        // Sign-extend the little-endian integer of `b.len()` bytes.
        let shift = 64 - 8 * b.len() as u32;
        (i64::from_le_bytes(array(b)) << shift) >> shift
    };
    Ok(match kind {
        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 => Value::Int(signed(b)),
        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 => {
            let v = u64::from_le_bytes(array(b));
            Value::Int(i64::try_from(v).map_err(|_| {
                SessionError::InvalidArgument(format!("uint64 element {v} does not fit an int"))
            })?)
        }
        DType::Bool => Value::Bool(b[0] != 0),
        DType::Float16 => Value::Float(half::f16::from_le_bytes([b[0], b[1]]).to_f64()),
        DType::Float32 => Value::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        DType::Float64 => Value::Float(f64::from_le_bytes(array(b))),
    })
}

fn element_as_f64(dtype: DataType, bytes: &[u8], index: usize) -> Result<f64, SessionError> {
    Ok(match element(dtype, bytes, index)? {
        Value::Int(v) => v as f64,
        Value::Bool(v) => f64::from(u8::from(v)),
        Value::Float(v) => v,
        other => {
            return Err(SessionError::InvalidArgument(format!(
                "element {index} is {}",
                other.describe()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_of_every_width_read_back_with_their_sign() {
        let int8 = DataType::new(0, 8, 1);
        assert_eq!(element(int8, &[0xfe], 0), Ok(Value::Int(-2)));
        let int32 = DataType::new(0, 32, 1);
        assert_eq!(element(int32, &(-7i32).to_le_bytes(), 0), Ok(Value::Int(-7)));
        let uint16 = DataType::new(1, 16, 1);
        assert_eq!(element(uint16, &[0xff, 0xff], 0), Ok(Value::Int(65535)));
        let float16 = DataType::new(2, 16, 1);
        assert_eq!(
            element(float16, &half::f16::from_f32(1.5).to_le_bytes(), 0),
            Ok(Value::Float(1.5))
        );
        let bytes = [0.5f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat();
        assert_eq!(element(DataType::FLOAT32, &bytes, 1), Ok(Value::Float(2.0)));
    }

    #[test]
    fn an_element_past_the_bytes_is_refused() {
        assert!(element(DataType::FLOAT32, &[0; 8], 2).is_err());
        assert!(element(DataType::FLOAT32, &[0; 8], usize::MAX).is_err());
    }

    #[test]
    fn a_uint64_past_int64_is_refused_rather_than_wrapped() {
        let uint64 = DataType::new(1, 64, 1);
        assert!(element(uint64, &u64::MAX.to_le_bytes(), 0).is_err());
    }

    #[test]
    fn shapes_print_as_python_tuples() {
        assert_eq!(python_tuple(&[12]), "(12,)");
        assert_eq!(python_tuple(&[3, 4]), "(3, 4)");
        assert_eq!(python_tuple(&[]), "()");
    }
}
