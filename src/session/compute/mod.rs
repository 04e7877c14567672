//! The compute functions a server registers: `tensor_rpc.<op>` (one kernel on remote
//! tensors), `tensor_rpc.graph_compute` (a whole graph in one round trip) and
//! `tensor_rpc.time` (server-side timing). Kernels see slices; this layer turns records into
//! slices, after checking every dtype, shape, bound and alias.

mod args;
mod functions;
mod graph;
mod op;
mod timing;

pub use functions::OpCall;
pub use graph::{GRAPH_COMPUTE, GraphPlan};
pub use op::{OP_NAMES, Op};
pub use timing::TIME;

use super::FunctionRegistry;

/// Prefix of every compute function's name.
pub const PREFIX: &str = "tensor_rpc.";

/// Registers every compute function in `registry`.
pub fn register(registry: &mut FunctionRegistry) {
    for op in OP_NAMES {
        let name = format!("{PREFIX}{op}");
        registry.register_prepared(&name, move |args| functions::prepare(op, args));
    }
    graph::register(registry);
    timing::register(registry);
}
#[cfg(test)]
mod tests;
