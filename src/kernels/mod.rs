//! CPU tensor kernels.
//!
//! A leaf module: kernels see typed views over compact row-major bytes
//! (`TensorView`, `TensorViewMut`), shapes and dtypes — nothing about
//! packets, handles or sessions.
//!
//! Every op comes in two halves:
//! 1. `infer_<op>(descs.., attributes) -> Result<OutputSpec, KernelError>`:
//!    pure validation and shape inference on dtypes and shapes only, so a
//!    planner can check a whole graph before running anything. The
//!    `OutputSpec` also carries a rough `estimated_flops`, so the server can
//!    move large work to a worker thread.
//! 2. `<op>(inputs.., out)`: validates again (cheaply) and writes into `out`,
//!    which the caller allocated with the inferred dtype and shape (as in
//!    TVM). When validation fails nothing is written to `out`.
//!
//! No input can make a kernel panic: every rule is checked in release
//! builds and reported as a `KernelError` naming the op, the argument and
//! the shapes. Input bytes may be misaligned (they come from the wire);
//! kernels then work on an aligned copy.

mod axis;
mod broadcast;
mod cast;
mod dtype;
mod element;
mod elementwise;
mod error;
mod fill;
mod gemm;
mod matmul;
pub mod quant;
mod reduce;
mod scalar;
mod softmax;
pub mod strided;
mod tensor;
mod transpose;
mod unary;

#[cfg(test)]
mod tests;

pub use broadcast::broadcast_shapes;
pub use cast::{cast, infer_cast};
pub use dtype::DType;
pub use elementwise::{BinaryOp, add, binary, div, infer_binary, maximum, mul, sub};
pub use error::KernelError;
pub use fill::{fill, infer_fill};
pub use gemm::GemmBackend;
pub use gemm::pool::set_thread_count as set_compute_threads;
pub use matmul::{MatmulOptions, infer_matmul, matmul, matmul_with_backend};
pub use reduce::{ReduceOp, ReduceOptions, infer_reduce, max, mean, reduce, sum};
pub use softmax::{infer_softmax, softmax};
pub use tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut};
pub use transpose::{infer_transpose, transpose};
pub use unary::{UnaryOp, exp, gelu, infer_unary, neg, relu, unary};
