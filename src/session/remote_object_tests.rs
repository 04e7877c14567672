//! Remote objects through a whole [`LocalSession`]: returned by a call, passed back, freed,
//! and refused when forged, freed or of the wrong kind.

use std::sync::Arc;

use super::{FunctionRegistry, LocalSession, Session, SessionConfig, SessionError};
use crate::endpoint::tvm::codec::{DataType, Device, Syscall, TensorRecord, TypeIndex, Value};

fn session() -> LocalSession {
    LocalSession::new(Arc::new(FunctionRegistry::with_builtins()), SessionConfig::default())
}

/// The syscalls these tests make, as a client sends them.
trait Syscalls {
    fn lookup(&mut self, name: &str) -> Option<u64>;
    fn free(&mut self, handle: u64) -> Result<(), SessionError>;
    fn alloc(&mut self, nbytes: i64) -> u64;
    fn free_data(&mut self, data: u64) -> Result<(), SessionError>;
}

impl Syscalls for LocalSession {
    fn lookup(&mut self, name: &str) -> Option<u64> {
        match self.syscall(&Syscall::GetGlobalFunc { name: name.into() }) {
            Ok(Value::Handle(0)) => None,
            Ok(Value::Handle(h)) => Some(h),
            other => panic!("lookup of {name}: {other:?}"),
        }
    }

    fn free(&mut self, handle: u64) -> Result<(), SessionError> {
        self.syscall(&Syscall::FreeHandle { handle }).map(drop)
    }

    fn alloc(&mut self, nbytes: i64) -> u64 {
        let device = Device::cpu(0);
        let alloc =
            Syscall::DevAllocData { device, nbytes, alignment: 64, dtype: DataType::FLOAT32 };
        match self.syscall(&alloc) {
            Ok(Value::Handle(h)) => h,
            other => panic!("allocation: {other:?}"),
        }
    }

    fn free_data(&mut self, data: u64) -> Result<(), SessionError> {
        self.syscall(&Syscall::DevFreeData { device: Device::cpu(0), data }).map(drop)
    }
}

/// Looks `name` up, calls it with `args` and frees its handle, as TVM's client does.
fn call(s: &mut LocalSession, name: &str, args: &[Value]) -> Result<Value, SessionError> {
    let f = s.lookup(name).unwrap_or_else(|| panic!("{name} is missing"));
    let result = s.call_func(f, args);
    s.free(f).unwrap();
    result
}

/// `ffi.Shape(dims)`, returning the object's handle.
fn make_shape(s: &mut LocalSession, dims: &[i64]) -> u64 {
    let args: Vec<Value> = dims.iter().map(|d| Value::Int(*d)).collect();
    match call(s, "ffi.Shape", &args).unwrap() {
        Value::Object { type_index: TypeIndex::SHAPE, handle } => handle,
        other => panic!("ffi.Shape returned {other:?}"),
    }
}

fn shape_size(s: &mut LocalSession, handle: u64) -> Result<Value, SessionError> {
    call(s, "rpc.testing.GetShapeSize", &[Value::ObjectRef(handle)])
}

#[test]
fn a_shape_comes_back_as_an_object_handle_that_calls_can_read() {
    let mut s = session();
    let shape = make_shape(&mut s, &[2, 3]);
    let elem = |s: &mut LocalSession, i| {
        call(s, "rpc.testing.GetShapeElem", &[Value::ObjectRef(shape), Value::Int(i)])
    };
    assert_eq!(elem(&mut s, 0), Ok(Value::Int(2)));
    assert_eq!(elem(&mut s, 1), Ok(Value::Int(3)));
    assert_eq!(shape_size(&mut s, shape), Ok(Value::Int(2)));
    let err = elem(&mut s, 2).unwrap_err().to_string();
    assert!(err.contains("Check failed: idx < shape.size() (2 vs. 2)"), "{err}");
}

#[test]
fn a_freed_object_handle_is_refused_and_cannot_be_freed_twice() {
    let mut s = session();
    let shape = make_shape(&mut s, &[4]);
    s.free(shape).unwrap();
    let err = shape_size(&mut s, shape).unwrap_err().to_string();
    assert!(err.contains("is not valid in this session"), "{err}");
    assert_eq!(s.free(shape), Err(SessionError::UnknownHandle { handle: shape }));
}

#[test]
fn forged_object_handles_are_refused() {
    let mut s = session();
    let shape = make_shape(&mut s, &[4]);
    for forged in [0, shape + 1, shape ^ (1 << 40), 0x7f08_1c00_81f0, u64::MAX] {
        let err = shape_size(&mut s, forged).unwrap_err().to_string();
        assert!(err.contains("is not valid in this session"), "{forged:#x}: {err}");
        assert!(s.free(forged).is_err(), "{forged:#x}");
    }
    assert_eq!(shape_size(&mut s, shape), Ok(Value::Int(1)), "the real one still works");
}

#[test]
fn handles_of_other_kinds_are_not_taken_for_objects() {
    let mut s = session();
    let data = s.alloc(16);
    let function = s.lookup("testing.echo").unwrap();
    for handle in [data, function] {
        let err = shape_size(&mut s, handle).unwrap_err().to_string();
        assert!(err.contains("not a remote object"), "{err}");
    }
    let array = match call(&mut s, "ffi.Array", &[Value::Int(1)]).unwrap() {
        Value::Object { type_index: TypeIndex::ARRAY, handle } => handle,
        other => panic!("ffi.Array returned {other:?}"),
    };
    let err = shape_size(&mut s, array).unwrap_err().to_string();
    assert!(err.contains("must be an ffi.Shape, got an ffi.Array"), "{err}");
}

#[test]
fn an_object_handle_is_neither_a_function_nor_data() {
    let mut s = session();
    let shape = make_shape(&mut s, &[4]);
    let err = s.call_func(shape, &[]).unwrap_err();
    assert!(err.to_string().contains("is a shape object, not a function"), "{err}");
    let err = s.free_data(shape).unwrap_err();
    assert!(err.to_string().contains("is a shape object, not a data allocation"), "{err}");
}

#[test]
fn an_object_lives_on_while_another_reference_holds_it() {
    let mut s = session();
    let shape = make_shape(&mut s, &[5, 6, 7]);
    let again = match call(&mut s, "testing.echo", &[Value::ObjectRef(shape)]).unwrap() {
        Value::Object { handle, .. } => handle,
        other => panic!("echo returned {other:?}"),
    };
    assert_ne!(again, shape, "each reference has its own handle");
    s.free(shape).unwrap();
    assert_eq!(shape_size(&mut s, again), Ok(Value::Int(3)));
}

#[test]
fn an_array_holds_its_objects_after_their_handles_are_freed() {
    let mut s = session();
    let shape = make_shape(&mut s, &[8, 9]);
    let args = [Value::Int(1), Value::Str("x".into()), Value::ObjectRef(shape)];
    let Value::Object { handle: array, .. } = call(&mut s, "ffi.Array", &args).unwrap() else {
        panic!("not an object")
    };
    s.free(shape).unwrap();
    assert_eq!(call(&mut s, "ffi.ArraySize", &[Value::ObjectRef(array)]), Ok(Value::Int(3)));
    let item = |s: &mut LocalSession, i| {
        call(s, "ffi.ArrayGetItem", &[Value::ObjectRef(array), Value::Int(i)])
    };
    assert_eq!(item(&mut s, 1), Ok(Value::Str("x".into())));
    let Ok(Value::Object { handle: inner, .. }) = item(&mut s, 2) else { panic!("not an object") };
    assert_eq!(shape_size(&mut s, inner), Ok(Value::Int(2)));
    let err = item(&mut s, 3).unwrap_err().to_string();
    assert!(err.contains("Index 3 out of bounds 3"), "{err}");
}

/// `rpc.test.remote_return_nd("get_arr")`'s function and the tensor object it returns.
fn returned_tensor(s: &mut LocalSession) -> (u64, TensorRecord, u64) {
    let Value::Function(get_arr) =
        call(s, "rpc.test.remote_return_nd", &[Value::Str("get_arr".into())]).unwrap()
    else {
        panic!("not a function")
    };
    match s.call_func(get_arr, &[]).unwrap() {
        Value::TensorObject { tensor, handle } => (get_arr, tensor, handle),
        other => panic!("get_arr returned {other:?}"),
    }
}

#[test]
fn a_returned_tensor_reads_and_passes_back_as_a_dltensor() {
    let mut s = session();
    let (_, tensor, _) = returned_tensor(&mut s);
    assert_eq!((tensor.dtype, tensor.shape.as_slice()), (DataType::FLOAT32, &[10][..]));
    let mut out = vec![1; 40];
    s.copy_from_remote(&tensor, &mut out).unwrap();
    assert_eq!(out, [0; 40], "zeros, as numpy.zeros");
    let values: Vec<u8> = (1..=10).flat_map(|v| (v as f32).to_le_bytes()).collect();
    s.copy_to_remote(&tensor, &values).unwrap();
    let Value::Function(get_arr_elem) =
        call(&mut s, "rpc.test.remote_return_nd", &[Value::Str("get_arr_elem".into())]).unwrap()
    else {
        panic!("not a function")
    };
    let elem = |s: &mut LocalSession, i| {
        s.call_func(get_arr_elem, &[Value::Tensor(tensor.clone()), Value::Int(i)])
    };
    assert_eq!(elem(&mut s, 0), Ok(Value::Float(1.0)));
    assert_eq!(elem(&mut s, -1), Ok(Value::Float(10.0)));
    let err = elem(&mut s, 10).unwrap_err().to_string();
    assert!(err.contains("index 10 is out of bounds for axis 0 with size 10"), "{err}");
}

#[test]
fn a_returned_tensor_is_freed_with_its_last_reference() {
    let mut s = session();
    let (get_arr, tensor, object) = returned_tensor(&mut s);
    assert_eq!(s.stats().bytes_held, 40);
    s.free(object).unwrap();
    assert_eq!(s.stats().bytes_held, 40, "the function still holds the tensor");
    let mut out = vec![0; 40];
    s.copy_from_remote(&tensor, &mut out).unwrap();
    s.free(get_arr).unwrap();
    assert_eq!(s.stats().bytes_held, 0);
    let err = s.copy_from_remote(&tensor, &mut out).unwrap_err();
    assert_eq!(err, SessionError::UnknownHandle { handle: tensor.data });
}

#[test]
fn a_tensor_freed_by_its_data_handle_first_is_not_freed_twice() {
    let mut s = session();
    let (get_arr, tensor, object) = returned_tensor(&mut s);
    s.free_data(tensor.data).unwrap();
    s.free(object).unwrap();
    s.free(get_arr).unwrap();
    assert_eq!(s.stats().bytes_held, 0);
}

#[test]
fn a_session_ends_with_its_objects_and_their_memory_released() {
    let usage = super::ServerUsage::new();
    let config = SessionConfig { usage: Arc::clone(&usage), ..SessionConfig::default() };
    let mut s = LocalSession::new(Arc::new(FunctionRegistry::with_builtins()), config);
    returned_tensor(&mut s);
    make_shape(&mut s, &[1, 2]);
    assert_eq!(usage.snapshot().bytes_held, 40);
    drop(s);
    assert_eq!(usage.snapshot().bytes_held, 0);
}

#[test]
fn a_returned_function_closes_over_its_argument() {
    let mut s = session();
    let Value::Function(add) = call(&mut s, "rpc.test.add_to_lhs", &[Value::Int(10)]).unwrap()
    else {
        panic!("not a function")
    };
    assert_eq!(s.call_func(add, &[Value::Int(12)]), Ok(Value::Int(22)));
    s.free(add).unwrap();
    assert!(s.call_func(add, &[Value::Int(12)]).is_err(), "freed");
}

#[test]
fn the_system_library_is_a_module_without_functions() {
    let mut s = session();
    let Value::Module(module) = call(&mut s, "ffi.SystemLib", &[]).unwrap() else {
        panic!("not a module")
    };
    let lookup = |s: &mut LocalSession, m| {
        let args = [Value::Module(m), Value::Str("notexist".into()), Value::Bool(true)];
        call(s, "tvm.rpc.server.ModuleGetFunction", &args)
    };
    assert_eq!(lookup(&mut s, module), Ok(Value::None));
    let shape = make_shape(&mut s, &[1]);
    let err = lookup(&mut s, shape).unwrap_err().to_string();
    assert!(err.contains("expected a module, got ffi.Shape"), "{err}");
    s.free(module).unwrap();
    assert!(lookup(&mut s, module).is_err(), "freed");
}

#[test]
fn returned_functions_count_what_they_keep_against_the_objects_budget() {
    let mut s = session();
    let large = Value::Str("x".repeat(20 << 20));
    let mut kept = Vec::new();
    for _ in 0..3 {
        match call(&mut s, "rpc.test.add_to_lhs", std::slice::from_ref(&large)) {
            Ok(Value::Function(f)) => kept.push(f),
            other => panic!("add_to_lhs returned {other:?}"),
        }
    }
    let err = call(&mut s, "rpc.test.add_to_lhs", std::slice::from_ref(&large)).unwrap_err();
    assert!(err.to_string().contains("past their limit"), "{err}");
    s.free(kept.pop().unwrap()).unwrap();
    assert!(call(&mut s, "rpc.test.add_to_lhs", &[large]).is_ok(), "room again once freed");
}
