//! One kernel invocation with its attributes: what a `tensor_rpc.*` function or a graph node
//! runs. Validation (`infer`) needs only dtypes and shapes, so a whole graph is checked
//! before anything runs.

use crate::endpoint::tvm::codec::{DataType, TensorRecord};
use crate::kernels::{
    self, BinaryOp, DType, GemmBackend, KernelError, MatmulOptions, OutputSpec, ReduceOp,
    ReduceOptions, TensorDesc, TensorView, TensorViewMut, UnaryOp,
};
use crate::session::SessionError;

const LAST_AXIS: ReduceOptions = ReduceOptions { axis: -1, keepdims: false };

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Matmul(MatmulOptions),
    Binary(BinaryOp),
    Unary(UnaryOp),
    Softmax,
    Reduce(ReduceOp, ReduceOptions),
    /// Fills the output with a value; takes no input.
    Fill(f64),
    /// Casts to the output's dtype.
    Cast(DType),
    Transpose {
        axis0: i64,
        axis1: i64,
    },
}

/// The ops by name, as `tensor_rpc.<name>` functions and graph nodes call them.
pub const OP_NAMES: [&str; 17] = [
    "matmul",
    "add",
    "sub",
    "mul",
    "div",
    "maximum",
    "relu",
    "gelu",
    "exp",
    "neg",
    "softmax",
    "sum",
    "mean",
    "max",
    "fill",
    "cast",
    "transpose",
];

impl Op {
    /// The op named `name` with default attributes (set them with the op's own fields).
    pub fn named(name: &str) -> Option<Op> {
        Some(match name {
            "matmul" => Op::Matmul(MatmulOptions::default()),
            "add" => Op::Binary(BinaryOp::Add),
            "sub" => Op::Binary(BinaryOp::Sub),
            "mul" => Op::Binary(BinaryOp::Mul),
            "div" => Op::Binary(BinaryOp::Div),
            "maximum" => Op::Binary(BinaryOp::Maximum),
            "relu" => Op::Unary(UnaryOp::Relu),
            "gelu" => Op::Unary(UnaryOp::Gelu),
            "exp" => Op::Unary(UnaryOp::Exp),
            "neg" => Op::Unary(UnaryOp::Neg),
            "softmax" => Op::Softmax,
            "sum" => Op::Reduce(ReduceOp::Sum, LAST_AXIS),
            "mean" => Op::Reduce(ReduceOp::Mean, LAST_AXIS),
            "max" => Op::Reduce(ReduceOp::Max, LAST_AXIS),
            "fill" => Op::Fill(0.0),
            "cast" => Op::Cast(DType::Float32),
            "transpose" => Op::Transpose { axis0: 0, axis1: 1 },
            _ => return None,
        })
    }

    /// How many input tensors the op reads.
    pub fn input_count(&self) -> usize {
        match self {
            Op::Matmul(_) | Op::Binary(_) => 2,
            Op::Fill(_) => 0,
            _ => 1,
        }
    }

    fn check_input_count(&self, given: usize) -> Result<(), KernelError> {
        if given != self.input_count() {
            return Err(KernelError::Internal { op: "op", detail: "wrong number of inputs" });
        }
        Ok(())
    }

    /// Checks dtypes and shapes; returns the output's. `out` is the output's own descriptor
    /// where it already exists (it gives `fill` its shape and dtype).
    pub fn infer(
        &self,
        inputs: &[TensorDesc<'_>],
        out: Option<TensorDesc<'_>>,
    ) -> Result<OutputSpec, KernelError> {
        self.check_input_count(inputs.len())?;
        let input = |i: usize| inputs[i];
        match *self {
            Op::Matmul(options) => kernels::infer_matmul(input(0), input(1), options),
            Op::Binary(op) => kernels::infer_binary(op, input(0), input(1)),
            Op::Unary(op) => kernels::infer_unary(op, input(0)),
            Op::Softmax => kernels::infer_softmax(input(0)),
            Op::Reduce(op, options) => kernels::infer_reduce(op, input(0), options),
            Op::Fill(_) => match out {
                Some(out) => kernels::infer_fill(out),
                None => Err(KernelError::Internal { op: "fill", detail: "no output shape" }),
            },
            Op::Cast(to) => kernels::infer_cast(input(0), to),
            Op::Transpose { axis0, axis1 } => kernels::infer_transpose(input(0), axis0, axis1),
        }
    }

    pub fn run(
        &self,
        inputs: &[TensorView<'_>],
        out: &mut TensorViewMut<'_>,
        gemm: GemmBackend,
    ) -> Result<(), KernelError> {
        self.check_input_count(inputs.len())?;
        let input = |i: usize| inputs[i];
        match *self {
            Op::Matmul(options) => {
                kernels::matmul_with_backend(input(0), input(1), out, options, gemm)
            }
            Op::Binary(op) => kernels::binary(op, input(0), input(1), out),
            Op::Unary(op) => kernels::unary(op, input(0), out),
            Op::Softmax => kernels::softmax(input(0), out),
            Op::Reduce(op, options) => kernels::reduce(op, input(0), options, out),
            Op::Fill(value) => kernels::fill(out, value),
            Op::Cast(_) => kernels::cast(input(0), out),
            Op::Transpose { axis0, axis1 } => kernels::transpose(input(0), axis0, axis1, out),
        }
    }
}

/// The kernel dtype of a wire dtype, naming the argument if it has none.
pub fn kernel_dtype(name: &str, dtype: DataType) -> Result<DType, SessionError> {
    DType::from_dlpack(dtype.code, dtype.bits, dtype.lanes)
        .map_err(|e| SessionError::InvalidArgument(format!("{name}: {e}")))
}

/// The descriptor of a tensor argument.
pub fn describe<'r>(name: &str, record: &'r TensorRecord) -> Result<TensorDesc<'r>, SessionError> {
    TensorDesc::new(kernel_dtype(name, record.dtype)?, &record.shape).map_err(SessionError::from)
}

/// Fails unless `out` has the dtype and shape the op produces.
pub fn check_output(out: &TensorRecord, spec: &OutputSpec) -> Result<(), SessionError> {
    let dtype = kernel_dtype("out", out.dtype)?;
    if dtype != spec.dtype || out.shape != spec.shape {
        return Err(SessionError::InvalidArgument(format!(
            "out is {} {:?} but the result is {} {:?}",
            dtype.name(),
            out.shape,
            spec.dtype.name(),
            spec.shape
        )));
    }
    Ok(())
}
