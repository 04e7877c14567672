//! Reading a function's positional arguments, with errors that name them.

use crate::endpoint::tvm::codec::{TensorRecord, Value};
use crate::session::SessionError;

/// The positional arguments of one call (the function's name is added to errors by
/// [`crate::session::GlobalFunction::call`]).
pub struct Args<'a> {
    pub values: &'a [Value],
}

impl<'a> Args<'a> {
    pub fn new(values: &'a [Value]) -> Self {
        Args { values }
    }

    fn error(&self, message: String) -> SessionError {
        SessionError::InvalidArgument(message)
    }

    /// Fails unless there are between `min` and `max` arguments; `usage` shows them.
    pub fn expect_count(&self, min: usize, max: usize, usage: &str) -> Result<(), SessionError> {
        let n = self.values.len();
        if n < min || n > max {
            return Err(self.error(format!("expects ({usage}), got {n} arguments")));
        }
        Ok(())
    }

    pub fn tensor(&self, i: usize, name: &str) -> Result<&'a TensorRecord, SessionError> {
        match self.values.get(i) {
            Some(Value::Tensor(t)) => Ok(t),
            other => Err(self.wrong(i, name, "a tensor", other)),
        }
    }

    pub fn int(&self, i: usize, name: &str) -> Result<i64, SessionError> {
        match self.values.get(i) {
            Some(Value::Int(v)) => Ok(*v),
            other => Err(self.wrong(i, name, "an integer", other)),
        }
    }

    pub fn float(&self, i: usize, name: &str) -> Result<f64, SessionError> {
        match self.values.get(i) {
            Some(Value::Float(v)) => Ok(*v),
            Some(Value::Int(v)) => Ok(*v as f64),
            other => Err(self.wrong(i, name, "a number", other)),
        }
    }

    /// A flag that may be left out (then `default`); TVM sends Python bools as Bool, some
    /// callers as 0/1.
    pub fn flag(&self, i: usize, name: &str, default: bool) -> Result<bool, SessionError> {
        match self.values.get(i) {
            None => Ok(default),
            Some(Value::Bool(v)) => Ok(*v),
            Some(Value::Int(v @ (0 | 1))) => Ok(*v == 1),
            other => Err(self.wrong(i, name, "a bool", other)),
        }
    }

    pub fn text(&self, i: usize, name: &str) -> Result<&'a str, SessionError> {
        match self.values.get(i) {
            Some(Value::Str(s)) => Ok(s),
            Some(Value::Bytes(b)) => std::str::from_utf8(b)
                .map_err(|_| self.error(format!("argument {i} ({name}) is not UTF-8"))),
            other => Err(self.wrong(i, name, "a string", other)),
        }
    }

    fn wrong(&self, i: usize, name: &str, expected: &str, got: Option<&Value>) -> SessionError {
        let got = got.map_or("nothing".to_owned(), Value::describe);
        self.error(format!("argument {i} ({name}) must be {expected}, got {got}"))
    }
}
