//! What a global function sees of its session: tensors by record, the upload directory and
//! the session's settings. Never handles' internals, never the endpoint.

use std::sync::Arc;

use super::local::{LocalState, Resource, check_device};
use super::objects::{Module, ObjectBudget, OwnedTensor, RemoteObject};
use super::{
    FunctionRegistry, GlobalFunction, SessionConfig, SessionError, SessionStats, Workspace,
};
use crate::endpoint::tvm::codec::{DataType, Device, TensorRecord, Value, checked_nbytes};

/// A tensor argument of a function, named for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'r> {
    pub name: &'static str,
    pub record: &'r TensorRecord,
    pub writable: bool,
}

impl<'r> Operand<'r> {
    pub fn input(name: &'static str, record: &'r TensorRecord) -> Self {
        Operand { name, record, writable: false }
    }

    pub fn output(name: &'static str, record: &'r TensorRecord) -> Self {
        Operand { name, record, writable: true }
    }
}

/// The bytes of a function's tensors: inputs shared, outputs exclusive, in argument order.
#[derive(Debug)]
pub struct Operands<'a> {
    pub inputs: Vec<&'a [u8]>,
    pub outputs: Vec<&'a mut [u8]>,
}

/// A function's view of the session that called it.
pub struct CallContext<'s> {
    state: &'s mut LocalState,
    registry: &'s Arc<FunctionRegistry>,
}

impl<'s> CallContext<'s> {
    pub(crate) fn new(state: &'s mut LocalState, registry: &'s Arc<FunctionRegistry>) -> Self {
        CallContext { state, registry }
    }

    /// The functions of the session, for functions that run others.
    pub fn registry(&self) -> &Arc<FunctionRegistry> {
        self.registry
    }

    /// Allocates a zeroed tensor in the session's memory, counted against its memory limit
    /// like any allocation. Free it with [`CallContext::free_tensor`].
    pub fn alloc_tensor(
        &mut self,
        dtype: DataType,
        shape: &[i64],
    ) -> Result<TensorRecord, SessionError> {
        let nbytes = checked_nbytes(shape, dtype).ok_or_else(|| {
            SessionError::InvalidArgument(format!("shape {shape:?} of {dtype} is too large"))
        })?;
        let data = self.state.allocate(nbytes, 64)?;
        Ok(TensorRecord {
            data,
            device: Device::cpu(0),
            dtype,
            shape: shape.to_vec(),
            byte_offset: 0,
        })
    }

    pub fn free_tensor(&mut self, tensor: &TensorRecord) -> Result<(), SessionError> {
        self.state.free(tensor.data)
    }

    /// A zeroed tensor object: a result the client can read, pass back and free (TVM's
    /// `Tensor` returned by a function). Its memory counts against the session's memory
    /// limit, and is freed once the last reference to the object goes.
    pub fn new_tensor_object(
        &mut self,
        dtype: DataType,
        shape: &[i64],
    ) -> Result<Arc<RemoteObject>, SessionError> {
        let record = self.alloc_tensor(dtype, shape)?;
        let tensor = OwnedTensor::new(record, self.state.release.clone());
        Ok(Arc::new(RemoteObject::Tensor(tensor)))
    }

    /// What the session's objects may still hold; new objects reserve their bytes here.
    pub fn object_budget(&self) -> &ObjectBudget {
        &self.state.objects
    }

    /// Hands `object` to the client as a function's result: one new reference, which the
    /// client frees with FreeHandle.
    pub fn return_object(&mut self, object: Arc<RemoteObject>) -> Result<Value, SessionError> {
        let type_index = object.type_index();
        let record = match &*object {
            RemoteObject::Tensor(tensor) => Some(tensor.record().clone()),
            _ => None,
        };
        let is_module = matches!(*object, RemoteObject::Module(_));
        let handle = self.state.handles.insert(Resource::Object(object))?;
        Ok(match record {
            Some(tensor) => Value::TensorObject { tensor, handle },
            None if is_module => Value::Module(handle),
            None => Value::Object { type_index, handle },
        })
    }

    /// Hands a function made by this call (a closure) to the client, which calls and frees
    /// it like a global function's handle.
    pub fn return_function(&mut self, function: GlobalFunction) -> Result<Value, SessionError> {
        let handle = self.state.handles.insert(Resource::Function(Arc::new(function)))?;
        Ok(Value::Function(handle))
    }

    /// The object an argument refers to: a remote object or a module passed back, by a
    /// handle of this session.
    pub fn object(&self, arg: &Value) -> Result<Arc<RemoteObject>, SessionError> {
        let handle = match arg {
            Value::ObjectRef(h) | Value::Module(h) => *h,
            other => {
                return Err(SessionError::InvalidArgument(format!(
                    "expected an object, got {}",
                    other.describe()
                )));
            }
        };
        match self.state.handles.get(handle)? {
            Resource::Object(object) => Ok(Arc::clone(object)),
            other => Err(SessionError::WrongHandleKind {
                handle,
                expected: "remote object",
                actual: other.kind(),
            }),
        }
    }

    /// The module an argument refers to.
    pub fn module(&self, arg: &Value) -> Result<Module, SessionError> {
        match &*self.object(arg)? {
            RemoteObject::Module(module) => Ok(*module),
            other => Err(SessionError::InvalidArgument(format!(
                "expected a module, got {}",
                other.type_key()
            ))),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.state.config
    }

    pub fn stats(&self) -> SessionStats {
        self.state.stats()
    }

    pub fn workspace(&mut self) -> &mut Workspace {
        &mut self.state.workspace
    }

    /// The bytes of one tensor.
    pub fn tensor(&self, record: &TensorRecord) -> Result<&[u8], SessionError> {
        check_device(record.device)?;
        let memory = self.state.memory(record.data)?;
        let range = memory.checked_range(record.byte_offset, record.nbytes())?;
        Ok(&memory.bytes()[range])
    }

    /// The bytes of several tensors at once. An output may not share its allocation with any
    /// other operand: kernels never see aliased memory, and the message names both.
    pub fn operands(&mut self, operands: &[Operand<'_>]) -> Result<Operands<'_>, SessionError> {
        for op in operands {
            check_device(op.record.device).map_err(|e| named(op.name, e))?;
            let memory = self.state.memory(op.record.data).map_err(|e| named(op.name, e))?;
            memory
                .checked_range(op.record.byte_offset, op.record.nbytes())
                .map_err(|e| named(op.name, e))?;
        }
        for (i, out) in operands.iter().enumerate().filter(|(_, op)| op.writable) {
            if let Some(other) = operands
                .iter()
                .enumerate()
                .find(|(j, other)| *j != i && other.record.data == out.record.data)
                .map(|(_, other)| other)
            {
                return Err(SessionError::InvalidArgument(format!(
                    "{} (shape {:?}) aliases {} (shape {:?}): both live in allocation {:#x}",
                    out.name, out.record.shape, other.name, other.record.shape, out.record.data
                )));
            }
        }
        let mut distinct: Vec<u64> = Vec::with_capacity(operands.len());
        for op in operands {
            if !distinct.contains(&op.record.data) {
                distinct.push(op.record.data);
            }
        }
        let buffers =
            distinct.iter().map(|h| self.state.buffer_of(*h)).collect::<Result<Vec<_>, _>>()?;
        let memories = self.state.device.get_disjoint_mut(&buffers)?;
        let mut shared: Vec<(u64, &[u8])> = Vec::new();
        let mut exclusive: Vec<(u64, &mut [u8])> = Vec::new();
        for (handle, memory) in distinct.iter().zip(memories) {
            let written = operands.iter().any(|op| op.writable && op.record.data == *handle);
            if written {
                exclusive.push((*handle, memory.bytes_mut()));
            } else {
                shared.push((*handle, memory.bytes()));
            }
        }
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for op in operands {
            let start = op.record.byte_offset as usize;
            let end = start + op.record.nbytes() as usize;
            if op.writable {
                let pos = exclusive.iter().position(|(h, _)| *h == op.record.data);
                let (_, bytes) = exclusive.swap_remove(pos.ok_or_else(internal)?);
                outputs.push(&mut bytes[start..end]);
            } else {
                let (_, bytes) =
                    shared.iter().find(|(h, _)| *h == op.record.data).ok_or_else(internal)?;
                inputs.push(&bytes[start..end]);
            }
        }
        Ok(Operands { inputs, outputs })
    }
}

fn named(name: &str, e: SessionError) -> SessionError {
    SessionError::InvalidArgument(format!("{name}: {e}"))
}

fn internal() -> SessionError {
    SessionError::Internal("resolving tensor operands")
}
