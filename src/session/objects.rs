//! Remote objects: the tvm-ffi objects a call can return (a Shape, an Array, a Module, a
//! Tensor), held by the session while the client holds handles to them.
//!
//! TVM's server hands out an object's pointer with one reference taken, and FreeHandle drops
//! that reference. Here each handle of the session's table holds one `Arc` of the object
//! instead: objects are immutable once made, shared by every handle, array and returned
//! function that refers to them, and gone with the last. What objects may cost a session is
//! bounded ([`ObjectBudget`]), and so is how deep arrays nest, so that neither building nor
//! dropping an object can exhaust memory or the stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;

use super::SessionError;
use crate::endpoint::tvm::codec::{TensorRecord, TypeIndex, Value};

/// Most bytes the objects of one session may hold at once (their elements and strings;
/// a tensor object's data counts against the session's memory limit instead).
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// What one object costs the budget beyond its elements.
const OBJECT_OVERHEAD: u64 = 64;

/// Deepest nesting of arrays in arrays.
pub const MAX_ARRAY_DEPTH: u32 = 64;

/// A tvm-ffi object that lives in a session.
#[derive(Debug)]
pub enum RemoteObject {
    Shape(Shape),
    Array(Array),
    Module(Module),
    Tensor(OwnedTensor),
}

impl RemoteObject {
    /// The tvm-ffi type index a Return announces for it.
    pub fn type_index(&self) -> i32 {
        match self {
            RemoteObject::Shape(_) => TypeIndex::SHAPE,
            RemoteObject::Array(_) => TypeIndex::ARRAY,
            RemoteObject::Module(_) => TypeIndex::MODULE,
            RemoteObject::Tensor(_) => TypeIndex::TENSOR,
        }
    }

    /// tvm-ffi's name of its type, for error messages.
    pub fn type_key(&self) -> &'static str {
        match self {
            RemoteObject::Shape(_) => "ffi.Shape",
            RemoteObject::Array(_) => "ffi.Array",
            RemoteObject::Module(_) => "ffi.Module",
            RemoteObject::Tensor(_) => "ffi.Tensor",
        }
    }

    /// How many arrays deep the object is (0 for anything but an array).
    fn depth(&self) -> u32 {
        match self {
            RemoteObject::Array(array) => array.depth,
            _ => 0,
        }
    }
}

/// Bytes the objects of a session hold, against [`MAX_OBJECT_BYTES`]; shared by the objects,
/// which give their bytes back when dropped.
#[derive(Debug, Clone)]
pub struct ObjectBudget {
    used: Arc<AtomicU64>,
    limit: u64,
}

impl Default for ObjectBudget {
    fn default() -> Self {
        ObjectBudget::new(MAX_OBJECT_BYTES)
    }
}

impl ObjectBudget {
    pub fn new(limit: u64) -> Self {
        ObjectBudget { used: Arc::new(AtomicU64::new(0)), limit }
    }

    /// Bytes held by live objects.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget until the returned reservation is dropped.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, SessionError> {
        // Every object costs its own bookkeeping too, so that even empty ones are bounded.
        let bytes = bytes.saturating_add(OBJECT_OVERHEAD);
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let would_hold = used.checked_add(bytes).filter(|&total| total <= self.limit);
            let Some(total) = would_hold else {
                return Err(SessionError::InvalidArgument(format!(
                    "an object of {bytes} bytes would take the session's objects past their \
                     limit of {} bytes ({used} held); free some first",
                    self.limit
                )));
            };
            match self.used.compare_exchange_weak(used, total, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(Reservation { used: Arc::clone(&self.used), bytes }),
                Err(now) => used = now,
            }
        }
    }
}

/// Bytes taken from an [`ObjectBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    used: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// `ffi.Shape`: a sequence of dimensions.
#[derive(Debug)]
pub struct Shape {
    dims: Vec<i64>,
    _reservation: Reservation,
}

impl Shape {
    pub fn new(dims: Vec<i64>, budget: &ObjectBudget) -> Result<Self, SessionError> {
        let bytes = (dims.len() as u64).saturating_mul(8);
        Ok(Shape { _reservation: budget.reserve(bytes)?, dims })
    }

    pub fn dims(&self) -> &[i64] {
        &self.dims
    }
}

/// One element of an [`Array`]: a plain value or another object.
#[derive(Debug, Clone)]
pub enum Element {
    Value(Value),
    Object(Arc<RemoteObject>),
}

/// `ffi.Array`: an immutable sequence of values and objects.
#[derive(Debug)]
pub struct Array {
    items: Vec<Element>,
    depth: u32,
    _reservation: Reservation,
}

impl Array {
    /// An array of `items`. Plain values must be scalars, strings or bytes: a DLTensor or an
    /// opaque handle names memory of the caller's call and cannot outlive it.
    pub fn new(items: Vec<Element>, budget: &ObjectBudget) -> Result<Self, SessionError> {
        let mut bytes = (items.len() as u64).saturating_mul(std::mem::size_of::<Element>() as u64);
        let mut depth = 1;
        for (i, item) in items.iter().enumerate() {
            match item {
                Element::Object(object) => depth = depth.max(object.depth() + 1),
                Element::Value(Value::Str(s)) => bytes = bytes.saturating_add(s.len() as u64),
                Element::Value(Value::Bytes(b)) => bytes = bytes.saturating_add(b.len() as u64),
                Element::Value(
                    Value::None
                    | Value::Int(_)
                    | Value::Bool(_)
                    | Value::Float(_)
                    | Value::DataType(_)
                    | Value::Device(_),
                ) => {}
                Element::Value(other) => {
                    return Err(SessionError::InvalidArgument(format!(
                        "element {i} ({}) cannot be stored in an Array",
                        other.describe()
                    )));
                }
            }
        }
        if depth > MAX_ARRAY_DEPTH {
            return Err(SessionError::InvalidArgument(format!(
                "arrays nest {depth} deep, more than the limit of {MAX_ARRAY_DEPTH}"
            )));
        }
        Ok(Array { _reservation: budget.reserve(bytes)?, items, depth })
    }

    pub fn items(&self) -> &[Element] {
        &self.items
    }
}

/// A module of the server. This server runs no compiled code, so its one module, the
/// system library, has no functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    SystemLib,
}

/// A tensor the session made for a function's result: its memory is an allocation of the
/// session (the `data` of its record), freed once the last reference to the object goes.
#[derive(Debug)]
pub struct OwnedTensor {
    record: TensorRecord,
    /// Where the data handle goes when the object is dropped; the session frees it there.
    release: Sender<u64>,
}

impl OwnedTensor {
    pub(crate) fn new(record: TensorRecord, release: Sender<u64>) -> Self {
        OwnedTensor { record, release }
    }

    pub fn record(&self) -> &TensorRecord {
        &self.record
    }
}

impl Drop for OwnedTensor {
    fn drop(&mut self) {
        // The session may be gone already (it is being dropped): then so is the memory.
        let _ = self.release.send(self.record.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_object(budget: &ObjectBudget) -> Arc<RemoteObject> {
        Arc::new(RemoteObject::Shape(Shape::new(vec![2, 3], budget).unwrap()))
    }

    #[test]
    fn objects_give_their_bytes_back_to_the_budget_when_dropped() {
        let budget = ObjectBudget::new(1 << 10);
        let shape = Shape::new(vec![1; 16], &budget).unwrap();
        assert_eq!(budget.used(), 128 + OBJECT_OVERHEAD);
        drop(shape);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn an_object_past_the_budget_is_refused() {
        let budget = ObjectBudget::new(200);
        let _held = Shape::new(vec![0; 10], &budget).unwrap();
        let err = Shape::new(vec![0; 10], &budget).unwrap_err();
        assert!(err.to_string().contains("limit of 200 bytes (144 held)"), "{err}");
    }

    #[test]
    fn array_strings_count_against_the_budget() {
        let budget = ObjectBudget::new(1 << 20);
        let items = vec![Element::Value(Value::Str("x".repeat(1000)))];
        let _array = Array::new(items, &budget).unwrap();
        assert!(budget.used() >= 1000);
    }

    #[test]
    fn array_refuses_tensors_and_opaque_handles() {
        let budget = ObjectBudget::default();
        for value in [Value::Handle(7), Value::Function(7), Value::ObjectRef(7)] {
            let err = Array::new(vec![Element::Value(value)], &budget).unwrap_err();
            assert!(err.to_string().contains("cannot be stored in an Array"), "{err}");
        }
    }

    #[test]
    fn arrays_nested_past_the_depth_limit_are_refused() {
        let budget = ObjectBudget::default();
        let mut inner = shape_object(&budget);
        for _ in 0..MAX_ARRAY_DEPTH {
            let array = Array::new(vec![Element::Object(inner)], &budget).unwrap();
            inner = Arc::new(RemoteObject::Array(array));
        }
        let err = Array::new(vec![Element::Object(inner)], &budget).unwrap_err();
        assert!(err.to_string().contains("more than the limit of 64"), "{err}");
    }

    #[test]
    fn an_owned_tensor_sends_its_data_handle_when_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let record = TensorRecord {
            data: 42,
            device: crate::endpoint::tvm::codec::Device::cpu(0),
            dtype: crate::endpoint::tvm::codec::DataType::FLOAT32,
            shape: vec![1],
            byte_offset: 0,
        };
        let tensor = Arc::new(RemoteObject::Tensor(OwnedTensor::new(record, tx)));
        let another = Arc::clone(&tensor);
        drop(tensor);
        assert!(rx.try_recv().is_err(), "still referenced");
        drop(another);
        assert_eq!(rx.try_recv(), Ok(42));
    }
}
