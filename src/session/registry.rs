//! Global functions by name: what `GetGlobalFunc` looks up and `CallFunc` runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{CallContext, SessionError, builtins, compute};
use crate::endpoint::tvm::codec::Value;

type Body = dyn Fn(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError> + Send + Sync;
type Prepare = dyn Fn(&[Value]) -> Result<PreparedBody, SessionError> + Send + Sync;

/// What a call runs once its arguments have been checked: it gets them again, whole, so a
/// preparer need not copy them (a graph plan may be megabytes).
pub type PreparedRun =
    Box<dyn FnOnce(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError> + Send>;

/// A call whose arguments were parsed and checked once, on the event loop, with what is
/// left to do and an estimate of its work.
pub struct PreparedBody {
    /// Estimated work (roughly: arithmetic operations plus bytes touched); calls whose
    /// estimate reaches the session's threshold run off the event loop.
    pub cost: u64,
    pub run: PreparedRun,
}

impl PreparedBody {
    pub fn new(
        cost: u64,
        run: impl FnOnce(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError> + Send + 'static,
    ) -> Self {
        PreparedBody { cost, run: Box::new(run) }
    }
}

/// A named function a client can call.
pub struct GlobalFunction {
    name: String,
    kind: FunctionKind,
}

enum FunctionKind {
    /// Runs as called, on the event loop: quick by design.
    Plain(Box<Body>),
    /// Looked at first (cheaply, on the loop), then run where its cost says.
    Prepared(Box<Prepare>),
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
        GlobalFunction { name, kind: FunctionKind::Plain(Box::new(body)) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks a call's arguments and says what is left to run, for functions registered
    /// with [`FunctionRegistry::register_prepared`]; `None` for the others.
    pub fn prepare(&self, args: &[Value]) -> Option<Result<PreparedBody, SessionError>> {
        match &self.kind {
            FunctionKind::Plain(_) => None,
            FunctionKind::Prepared(prepare) => Some(prepare(args).map_err(|e| self.named(e))),
        }
    }

    /// Runs the function; its errors come back prefixed with its name.
    pub fn call(&self, ctx: &mut CallContext<'_>, args: &[Value]) -> Result<Value, SessionError> {
        let result = match &self.kind {
            FunctionKind::Plain(body) => body(ctx, args),
            FunctionKind::Prepared(prepare) => {
                prepare(args).and_then(|prepared| (prepared.run)(ctx, args))
            }
        };
        result.map_err(|e| self.named(e))
    }

    /// Runs a call [`GlobalFunction::prepare`] checked; errors are named as by `call`.
    pub fn run_prepared(
        &self,
        prepared: PreparedRun,
        ctx: &mut CallContext<'_>,
        args: &[Value],
    ) -> Result<Value, SessionError> {
        prepared(ctx, args).map_err(|e| self.named(e))
    }

    fn named(&self, e: SessionError) -> SessionError {
        match e {
            // Already named: by the function, or by the kernel op it ran; not the caller's
            // doing.
            SessionError::FunctionFailed { .. }
            | SessionError::Kernel(_)
            | SessionError::Internal(_) => e,
            other => SessionError::FunctionFailed {
                function: self.name.clone(),
                message: other.to_string(),
            },
        }
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

    /// Adds (or replaces) a function that runs as called.
    pub fn register(
        &mut self,
        name: &str,
        body: impl Fn(&mut CallContext<'_>, &[Value]) -> Result<Value, SessionError>
        + Send
        + Sync
        + 'static,
    ) {
        self.insert(name, FunctionKind::Plain(Box::new(body)));
    }

    /// Adds (or replaces) a function whose calls may be long: `prepare` checks a call's
    /// arguments once, cheaply (it runs on the event loop), and returns what is left to run
    /// and its estimated work; a server runs calls above its threshold off the event loop.
    pub fn register_prepared(
        &mut self,
        name: &str,
        prepare: impl Fn(&[Value]) -> Result<PreparedBody, SessionError> + Send + Sync + 'static,
    ) {
        self.insert(name, FunctionKind::Prepared(Box::new(prepare)));
    }

    fn insert(&mut self, name: &str, kind: FunctionKind) {
        let function = GlobalFunction { name: name.to_owned(), kind };
        self.functions.insert(name.to_owned(), Arc::new(function));
    }

    pub fn get(&self, name: &str) -> Option<Arc<GlobalFunction>> {
        self.functions.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}
