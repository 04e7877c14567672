//! Global functions by name: what `GetGlobalFunc` looks up and `CallFunc` runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{CallContext, SessionError, builtins, compute};
use crate::endpoint::codec::Value;

type Body = dyn Fn(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError> + Send + Sync;
type Cost = dyn Fn(&[Value]) -> u64 + Send + Sync;

/// A named function a client can call.
pub struct GlobalFunction {
    name: String,
    body: Box<Body>,
    cost: Option<Box<Cost>>,
}

impl GlobalFunction {
    /// A function a call makes and returns (a closure over its arguments), reached by its
    /// handle only; `name` appears in its errors.
    pub fn closure(
        name: String,
        body: impl Fn(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        GlobalFunction { name, body: Box::new(body), cost: None }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Estimated work of a call with `args` (roughly: arithmetic operations plus bytes
    /// touched); 0 for functions registered without an estimate.
    pub fn estimated_cost(&self, args: &[Value]) -> u64 {
        self.cost.as_ref().map_or(0, |cost| cost(args))
    }

    /// Runs the function; its errors come back prefixed with its name.
    pub fn call(&self, ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
        (self.body)(ctx, args).map_err(|e| match e {
            // Already named: by the function, or by the kernel op it ran.
            SessionError::FunctionFailed { .. } | SessionError::Kernel(_) => e,
            other => SessionError::FunctionFailed {
                function: self.name.clone(),
                message: other.to_string(),
            },
        })
    }
}

impl fmt::Debug for GlobalFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GlobalFunction({})", self.name)
    }
}

/// The functions sessions can look up, shared by all sessions of a server.
#[derive(Debug, Default)]
pub struct FunctionRegistry {
    functions: HashMap<String, Arc<GlobalFunction>>,
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with everything a server offers: the built-ins every TVM client expects
    /// (`testing.echo`, the `tvm.rpc.server.*` file functions and packet size) and the
    /// compute functions (`tensor_rpc.*`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        builtins::register(&mut registry);
        compute::register(&mut registry);
        registry
    }

    /// Adds (or replaces) a function.
    pub fn register(
        &mut self,
        name: &str,
        body: impl Fn(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError>
        + Send
        + Sync
        + 'static,
    ) {
        let function = GlobalFunction { name: name.to_owned(), body: Box::new(body), cost: None };
        self.functions.insert(name.to_owned(), Arc::new(function));
    }

    /// Adds (or replaces) a function whose calls may be long: `cost` estimates a call's work
    /// from its arguments, and a server runs calls above its threshold off the event loop.
    pub fn register_with_cost(
        &mut self,
        name: &str,
        cost: impl Fn(&[Value]) -> u64 + Send + Sync + 'static,
        body: impl Fn(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError>
        + Send
        + Sync
        + 'static,
    ) {
        let function = GlobalFunction {
            name: name.to_owned(),
            body: Box::new(body),
            cost: Some(Box::new(cost)),
        };
        self.functions.insert(name.to_owned(), Arc::new(function));
    }

    pub fn get(&self, name: &str) -> Option<Arc<GlobalFunction>> {
        self.functions.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}
