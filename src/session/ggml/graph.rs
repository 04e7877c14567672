//! GRAPH_COMPUTE's graph as a plan of kernel calls, validated whole before any kernel runs.
//!
//! From the payload's tensor list and node ids: every id is resolved within the list (ids
//! are names, never pointers), the graph of sources and view sources must be acyclic, every
//! tensor a computed node touches is placed in the session's buffers for its whole extent,
//! every view lies within its source, and every node's op, types, shapes and strides are
//! checked as ggml's CPU backend requires them (in release builds). Then the plan runs the
//! nodes in order, as ggml's CPU backend does: nodes that compute nothing (views, reshapes,
//! permutes, transposes) and nodes without the COMPUTE flag are skipped.
//!
//! Kernels see only slices: a node's destination is borrowed mutably and its sources shared;
//! a source that shares bytes with the destination (an in-place op) is copied first.

use std::collections::HashMap;

use super::GgmlSessionError;
use super::address::AddressSpace;
use super::op::{code, is_empty_op, op_name, type_label, type_traits};
use super::tensor::{Placement, name, place};
use crate::endpoint::ggml::codec::{GraphPayload, RpcTensor};
use crate::kernels::GemmBackend;
use crate::kernels::strided::{
    self, BinaryOp, ElementType, FlashAttnExtraViews, FlashAttnExtras, FlashAttnParams, GluParams,
    Layout, NormParams, OpError, OpParams, RopeParams, ScaleParams, SoftMaxParams, UnaryOp, View,
    ViewMut,
};
use crate::session::{DeviceBuffers, SessionError};

/// ggml's `GGML_TENSOR_FLAG_COMPUTE`: the client wants this node computed.
const FLAG_COMPUTE: i32 = 16;

/// What a node runs.
#[derive(Debug, Clone)]
enum Kernel {
    GetRows,
    SetRows,
    Binary(BinaryOp),
    RmsNorm(NormParams),
    Norm(NormParams),
    MulMat,
    Rope(Box<RopeParams>),
    SoftMax(SoftMaxParams),
    Cpy,
    Cont,
    Dup,
    Glu(GluParams),
    FlashAttnExt(Box<FlashAttnParams>),
    Scale(ScaleParams),
    Unary(UnaryOp),
    AddId,
    Acc(strided::AccParams),
    Sum,
    SumRows,
    Cumsum,
    Mean,
    Argmax,
    CountEqual,
    Repeat,
    Concat(strided::ConcatParams),
    L2Norm(NormParams),
    MulMatId,
    Clamp(strided::ClampParams),
    Pad(strided::PadParams),
    Argsort(strided::ArgsortParams),
    TopK,
    LeakyRelu(strided::LeakyReluParams),
    Fill(strided::FillParams),
}

/// A tensor a kernel reads or writes: where its bytes are, and how they are laid out.
#[derive(Debug, Clone, Copy)]
struct Operand {
    placement: Placement,
    layout: Layout,
}

impl Operand {
    fn range(&self) -> std::ops::Range<usize> {
        // Fits in usize: the placement lies inside a buffer of this process.
        let start = self.placement.offset as usize;
        start..start + self.placement.extent as usize
    }
}

#[derive(Debug, Clone)]
struct Step {
    node: usize,
    name: String,
    op: &'static str,
    kernel: Kernel,
    dst: Operand,
    srcs: Vec<Option<Operand>>,
}

/// A validated graph, ready to run (and to run again for GRAPH_RECOMPUTE).
#[derive(Debug, Clone)]
pub struct GraphPlan {
    steps: Vec<Step>,
    gemm: GemmBackend,
}

fn graph_error(message: String) -> GgmlSessionError {
    GgmlSessionError::Graph(message)
}

/// The tensors of a payload by id.
struct Tensors<'p> {
    list: &'p [RpcTensor],
    index: HashMap<u64, usize>,
}

impl<'p> Tensors<'p> {
    fn new(list: &'p [RpcTensor]) -> Result<Self, GgmlSessionError> {
        let mut index = HashMap::with_capacity(list.len());
        for (i, tensor) in list.iter().enumerate() {
            if tensor.id == 0 {
                return Err(graph_error(format!("tensor {i} of the list has id 0")));
            }
            if index.insert(tensor.id, i).is_some() {
                return Err(graph_error(format!("tensor id {:#x} appears twice", tensor.id)));
            }
        }
        Ok(Tensors { list, index })
    }

    fn get(&self, id: u64, by: &RpcTensor, role: &str) -> Result<usize, GgmlSessionError> {
        self.index.get(&id).copied().ok_or_else(|| {
            graph_error(format!(
                "'{}' names {role} {id:#x}, which the graph does not carry",
                name(by)
            ))
        })
    }

    /// The list positions a tensor depends on: its sources and its view source.
    fn edges(&self, i: usize) -> Result<Vec<usize>, GgmlSessionError> {
        let tensor = &self.list[i];
        let mut edges = Vec::new();
        for (slot, id) in tensor.present_sources() {
            edges.push(self.get(id, tensor, &format!("source {slot}"))?);
        }
        if tensor.view_source != 0 {
            edges.push(self.get(tensor.view_source, tensor, "view source")?);
        }
        Ok(edges)
    }

    /// Refuses a cycle through sources and view sources (iteratively: a chain may be as
    /// long as the list, and a recursive walk of one 150,000 deep once crashed ggml's
    /// server).
    fn check_acyclic(&self) -> Result<(), GgmlSessionError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks = vec![Mark::New; self.list.len()];
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        for root in 0..self.list.len() {
            if marks[root] != Mark::New {
                continue;
            }
            marks[root] = Mark::Open;
            stack.push((root, self.edges(root)?));
            while let Some((at, pending)) = stack.last_mut() {
                let at = *at;
                match pending.pop() {
                    Some(next) => match marks[next] {
                        Mark::New => {
                            marks[next] = Mark::Open;
                            let edges = self.edges(next)?;
                            stack.push((next, edges));
                        }
                        Mark::Open => {
                            return Err(graph_error(format!(
                                "'{}' depends on itself through its sources",
                                name(&self.list[next])
                            )));
                        }
                        Mark::Done => {}
                    },
                    None => {
                        marks[at] = Mark::Done;
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

/// A tensor's layout for the kernels: `None` if its type is none the kernels run.
/// The layout of `tensor` for the kernels; `None` for a ggml type they do not take, an error
/// for a number that is no ggml type at all.
fn layout(tensor: &RpcTensor) -> Result<Option<Layout>, GgmlSessionError> {
    if type_traits(tensor.ggml_type).is_none() {
        return Err(GgmlSessionError::UnknownType {
            tensor: name(tensor),
            type_id: tensor.ggml_type,
        });
    }
    let Some(elem) = ElementType::from_ggml(tensor.ggml_type) else { return Ok(None) };
    let ne = tensor.shape.map(|n| n as usize);
    let nb = tensor.byte_strides.map(|n| n as usize);
    Layout::new(elem, ne, nb).map(Some).map_err(|source| GgmlSessionError::Layout {
        tensor: name(tensor),
        source: Box::new(source),
    })
}

impl GraphPlan {
    /// Validates `payload` against the session's buffers and plans its nodes.
    pub fn build(
        payload: &GraphPayload,
        space: &AddressSpace,
        gemm: GemmBackend,
    ) -> Result<GraphPlan, GgmlSessionError> {
        let tensors = Tensors::new(&payload.tensors)?;
        tensors.check_acyclic()?;
        let mut placements: HashMap<usize, Placement> = HashMap::new();
        let mut place_at = |i: usize| -> Result<Placement, GgmlSessionError> {
            if let Some(p) = placements.get(&i) {
                return Ok(*p);
            }
            let p = place(&tensors.list[i], space)?;
            placements.insert(i, p);
            Ok(p)
        };
        // Views lie within their sources.
        for (i, tensor) in payload.tensors.iter().enumerate() {
            if tensor.view_source == 0 || (tensor.buffer == 0 && tensor.data == 0) {
                continue;
            }
            let source = tensors.get(tensor.view_source, tensor, "view source")?;
            let (view, of) = (place_at(i)?, place_at(source)?);
            let expected = tensors.list[source].data.checked_add(tensor.view_offset);
            let inside = view.buffer == of.buffer
                && view.offset >= of.offset
                && view.offset + view.extent <= of.offset + of.extent;
            if expected != Some(tensor.data) || !inside {
                return Err(graph_error(format!(
                    "view '{}' ({} bytes at offset {} of its view source) lies outside '{}' \
                     ({} bytes)",
                    name(tensor),
                    view.extent,
                    tensor.view_offset,
                    name(&tensors.list[source]),
                    of.extent
                )));
            }
        }
        let mut steps = Vec::new();
        for (node, &id) in payload.node_ids.iter().enumerate() {
            if id == 0 {
                continue;
            }
            let i = tensors.index.get(&id).copied().ok_or_else(|| {
                graph_error(format!(
                    "node {node} names tensor {id:#x}, which the graph does not carry"
                ))
            })?;
            let tensor = &tensors.list[i];
            let op = op_name(tensor.op).ok_or_else(|| {
                graph_error(format!("node {node} has op {}, no ggml op", tensor.op))
            })?;
            if is_empty_op(tensor.op) || tensor.flags & FLAG_COMPUTE == 0 {
                continue;
            }
            let unsupported = |type_id: u32| GgmlSessionError::Unsupported {
                op: op.to_owned(),
                type_name: type_label(type_id),
            };
            let mut srcs = Vec::with_capacity(RpcTensor::MAX_SOURCES);
            for slot in 0..RpcTensor::MAX_SOURCES {
                let source_id = tensor.sources[slot];
                if source_id == 0 {
                    srcs.push(None);
                    continue;
                }
                let s = tensors.get(source_id, tensor, "a source")?;
                let source = &tensors.list[s];
                let layout = layout(source)?.ok_or_else(|| unsupported(source.ggml_type))?;
                srcs.push(Some(Operand { placement: place_at(s)?, layout }));
            }
            while srcs.last().is_some_and(Option::is_none) {
                srcs.pop();
            }
            let dst_layout = layout(tensor)?.ok_or_else(|| unsupported(tensor.ggml_type))?;
            if dst_layout.is_empty() {
                continue;
            }
            let dst = Operand { placement: place_at(i)?, layout: dst_layout };
            let params: OpParams = tensor.op_params;
            let main_type =
                srcs.first().copied().flatten().map_or(dst_layout.elem(), |s| s.layout.elem());
            let kernel = plan_kernel(tensor.op, &params, &srcs, &dst).map_err(|e| match e {
                PlanError::Unsupported => GgmlSessionError::Unsupported {
                    op: op.to_owned(),
                    type_name: main_type.name().to_owned(),
                },
                PlanError::Op(source) => GgmlSessionError::Node {
                    node,
                    name: name(tensor),
                    op,
                    source: Box::new(source),
                },
            })?;
            steps.push(Step { node, name: name(tensor), op, kernel, dst, srcs });
        }
        Ok(GraphPlan { steps, gemm })
    }

    /// Nodes that will compute something.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs every step in order on the session's buffers.
    pub fn run(&self, buffers: &mut DeviceBuffers) -> Result<(), GgmlSessionError> {
        for step in &self.steps {
            run_step(step, buffers, self.gemm).map_err(|e| match e {
                StepError::Op(source) => GgmlSessionError::Node {
                    node: step.node,
                    name: step.name.clone(),
                    op: step.op,
                    source: Box::new(source),
                },
                StepError::Session(e) => GgmlSessionError::Memory(e),
            })?;
        }
        Ok(())
    }
}

enum PlanError {
    Unsupported,
    Op(OpError),
}

impl From<OpError> for PlanError {
    fn from(e: OpError) -> Self {
        PlanError::Op(e)
    }
}

/// Checks a node's op against its operands and returns the kernel to run.
fn plan_kernel(
    op: u32,
    params: &OpParams,
    srcs: &[Option<Operand>],
    dst: &Operand,
) -> Result<Kernel, PlanError> {
    let src = |i: usize| -> Result<&Layout, PlanError> {
        srcs.get(i).and_then(Option::as_ref).map(|s| &s.layout).ok_or(PlanError::Op(
            OpError::MissingOperand {
                op: op_name(op).unwrap_or("?"),
                operand: SOURCE_NAMES[i.min(SOURCE_NAMES.len() - 1)],
                reason: "the op needs it",
            },
        ))
    };
    let optional = |i: usize| srcs.get(i).copied().flatten().map(|s| s.layout);
    let dst = &dst.layout;
    let kernel = match op {
        code::GET_ROWS => {
            strided::check_get_rows(src(0)?, src(1)?, dst)?;
            Kernel::GetRows
        }
        code::SET_ROWS => {
            strided::check_set_rows(src(0)?, src(1)?, dst)?;
            Kernel::SetRows
        }
        code::ADD | code::SUB | code::MUL | code::DIV => {
            let binary = match op {
                code::ADD => BinaryOp::Add,
                code::SUB => BinaryOp::Sub,
                code::MUL => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            strided::check_binary(binary, src(0)?, src(1)?, dst)?;
            Kernel::Binary(binary)
        }
        code::RMS_NORM => {
            let p = NormParams::from_op_params(params);
            strided::check_rms_norm(src(0)?, dst, p)?;
            Kernel::RmsNorm(p)
        }
        code::NORM => {
            let p = NormParams::from_op_params(params);
            strided::check_norm(src(0)?, dst, p)?;
            Kernel::Norm(p)
        }
        code::MUL_MAT => {
            strided::check_mul_mat(src(0)?, src(1)?, dst)?;
            Kernel::MulMat
        }
        code::ROPE => {
            let p = RopeParams::from_op_params(params)?;
            strided::check_rope(src(0)?, src(1)?, optional(2).as_ref(), dst, &p)?;
            Kernel::Rope(Box::new(p))
        }
        code::SOFT_MAX => {
            let p = SoftMaxParams::from_op_params(params);
            strided::check_soft_max(src(0)?, optional(1).as_ref(), optional(2).as_ref(), dst, p)?;
            Kernel::SoftMax(p)
        }
        code::CPY => {
            strided::check_cpy(src(0)?, dst)?;
            Kernel::Cpy
        }
        code::CONT => {
            strided::check_cont(src(0)?, dst)?;
            Kernel::Cont
        }
        code::DUP => {
            strided::check_dup(src(0)?, dst)?;
            Kernel::Dup
        }
        code::GLU => {
            let p = GluParams::from_op_params(params)?;
            strided::check_glu(src(0)?, optional(1).as_ref(), dst, p)?;
            Kernel::Glu(p)
        }
        code::FLASH_ATTN_EXT => {
            let p = FlashAttnParams::from_op_params(params)?;
            let (mask, sinks) = (optional(3), optional(4));
            let extras = FlashAttnExtras { mask: mask.as_ref(), sinks: sinks.as_ref() };
            strided::check_flash_attn_ext(src(0)?, src(1)?, src(2)?, extras, dst, &p)?;
            Kernel::FlashAttnExt(Box::new(p))
        }
        code::SCALE => {
            let p = ScaleParams::from_op_params(params);
            strided::check_scale(src(0)?, dst)?;
            Kernel::Scale(p)
        }
        code::UNARY => {
            let unary = UnaryOp::from_ggml_unary(params[0]).ok_or(match params[0] {
                // XIELU: a ggml unary op the kernels do not run.
                17 => PlanError::Unsupported,
                other => PlanError::Op(OpError::InvalidParam {
                    op: "UNARY",
                    param: "op",
                    value: other.to_string(),
                    reason: "is no ggml unary op (ABS 0 ... TRUNC 21)",
                }),
            })?;
            strided::check_unary(unary, src(0)?, dst)?;
            Kernel::Unary(unary)
        }
        code::SQR | code::SQRT | code::LOG | code::SIN | code::COS => {
            let unary = match op {
                code::SQR => UnaryOp::Sqr,
                code::SQRT => UnaryOp::Sqrt,
                code::LOG => UnaryOp::Log,
                code::SIN => UnaryOp::Sin,
                _ => UnaryOp::Cos,
            };
            strided::check_unary(unary, src(0)?, dst)?;
            Kernel::Unary(unary)
        }
        code::ADD_ID => {
            strided::check_add_id(src(0)?, src(1)?, src(2)?, dst)?;
            Kernel::AddId
        }
        code::ACC => {
            let p = strided::AccParams::from_op_params(params)?;
            strided::check_acc(src(0)?, src(1)?, dst, &p)?;
            Kernel::Acc(p)
        }
        code::SUM => {
            strided::check_sum(src(0)?, dst)?;
            Kernel::Sum
        }
        code::SUM_ROWS => {
            strided::check_sum_rows(src(0)?, dst)?;
            Kernel::SumRows
        }
        code::CUMSUM => {
            strided::check_cumsum(src(0)?, dst)?;
            Kernel::Cumsum
        }
        code::MEAN => {
            strided::check_mean(src(0)?, dst)?;
            Kernel::Mean
        }
        code::ARGMAX => {
            strided::check_argmax(src(0)?, dst)?;
            Kernel::Argmax
        }
        code::COUNT_EQUAL => {
            strided::check_count_equal(src(0)?, src(1)?, dst)?;
            Kernel::CountEqual
        }
        code::REPEAT => {
            strided::check_repeat(src(0)?, dst)?;
            Kernel::Repeat
        }
        code::CONCAT => {
            let p = strided::ConcatParams::from_op_params(params)?;
            strided::check_concat(src(0)?, src(1)?, dst, p)?;
            Kernel::Concat(p)
        }
        code::L2_NORM => {
            let p = NormParams::from_op_params(params);
            strided::check_l2_norm(src(0)?, dst, p)?;
            Kernel::L2Norm(p)
        }
        code::MUL_MAT_ID => {
            strided::check_mul_mat_id(src(0)?, src(1)?, src(2)?, dst)?;
            Kernel::MulMatId
        }
        code::CLAMP => {
            let p = strided::ClampParams::from_op_params(params);
            strided::check_clamp(src(0)?, dst)?;
            Kernel::Clamp(p)
        }
        code::PAD => {
            let p = strided::PadParams::from_op_params(params)?;
            strided::check_pad(src(0)?, dst, &p)?;
            Kernel::Pad(p)
        }
        code::ARGSORT => {
            let p = strided::ArgsortParams::from_op_params(params)?;
            strided::check_argsort(src(0)?, dst)?;
            Kernel::Argsort(p)
        }
        code::TOP_K => {
            strided::check_top_k(src(0)?, dst)?;
            Kernel::TopK
        }
        code::LEAKY_RELU => {
            let p = strided::LeakyReluParams::from_op_params(params);
            strided::check_leaky_relu(src(0)?, dst)?;
            Kernel::LeakyRelu(p)
        }
        code::FILL => {
            let p = strided::FillParams::from_op_params(params);
            strided::check_fill(src(0)?, dst)?;
            Kernel::Fill(p)
        }
        _ => return Err(PlanError::Unsupported),
    };
    Ok(kernel)
}

const SOURCE_NAMES: [&str; 5] = ["src0", "src1", "src2", "src3", "src4"];

enum StepError {
    Op(OpError),
    Session(SessionError),
}

impl From<OpError> for StepError {
    fn from(e: OpError) -> Self {
        StepError::Op(e)
    }
}

impl From<SessionError> for StepError {
    fn from(e: SessionError) -> Self {
        StepError::Session(e)
    }
}

/// Runs one step: borrows its destination's bytes mutably and its sources' shared, copying
/// a source that overlaps the destination first.
fn run_step(step: &Step, buffers: &mut DeviceBuffers, gemm: GemmBackend) -> Result<(), StepError> {
    let dst_buffer = step.dst.placement.buffer;
    let dst_range = step.dst.range();
    let mut ids = vec![dst_buffer];
    for src in step.srcs.iter().flatten() {
        if !ids.contains(&src.placement.buffer) {
            ids.push(src.placement.buffer);
        }
    }
    let mut memories = buffers.get_disjoint_mut(&ids)?;
    let (dst_memory, others) =
        memories.split_first_mut().ok_or(SessionError::Internal("no destination buffer"))?;
    let dst_len = dst_memory.len();
    if dst_range.end > dst_len {
        return Err(SessionError::Internal("a planned destination outside its buffer").into());
    }
    // Sources sharing bytes with the destination are read from copies.
    let overlaps = |r: &std::ops::Range<usize>| r.start < dst_range.end && dst_range.start < r.end;
    let copies: Vec<Option<Vec<u8>>> = step
        .srcs
        .iter()
        .map(|src| match src {
            Some(s) if s.placement.buffer == dst_buffer && overlaps(&s.range()) => {
                Some(dst_memory.bytes().get(s.range()).map(<[u8]>::to_vec))
            }
            _ => None,
        })
        .map(|copy| {
            copy.map(|c| c.ok_or(SessionError::Internal("a planned source outside its buffer")))
        })
        .map(Option::transpose)
        .collect::<Result<_, _>>()?;
    let bytes = dst_memory.bytes_mut();
    let (left, rest) = bytes.split_at_mut(dst_range.start);
    let (dst_bytes, right) = rest.split_at_mut(dst_range.len());
    let (left, right): (&[u8], &[u8]) = (left, right);
    let shared: Vec<(u64, &[u8])> =
        ids[1..].iter().copied().zip(others.iter().map(|m| m.bytes())).collect();
    let outside = || SessionError::Internal("a planned source outside its buffer");
    let mut views: Vec<Option<View<'_>>> = Vec::with_capacity(step.srcs.len());
    for (src, copy) in step.srcs.iter().zip(&copies) {
        let Some(src) = src else {
            views.push(None);
            continue;
        };
        let range = src.range();
        let bytes: &[u8] = if let Some(copy) = copy {
            copy
        } else if src.placement.buffer == dst_buffer {
            if range.end <= dst_range.start {
                left.get(range).ok_or_else(outside)?
            } else {
                let start = range.start - dst_range.end;
                right.get(start..start + range.len()).ok_or_else(outside)?
            }
        } else {
            let (_, memory) =
                shared.iter().find(|(id, _)| *id == src.placement.buffer).ok_or_else(outside)?;
            memory.get(range).ok_or_else(outside)?
        };
        views.push(Some(View::new(src.layout, bytes)?));
    }
    let mut dst = ViewMut::new(step.dst.layout, dst_bytes)?;
    let src = |i: usize| -> Result<View<'_>, StepError> {
        views
            .get(i)
            .copied()
            .flatten()
            .ok_or(StepError::Session(SessionError::Internal("a planned source is missing")))
    };
    let optional = |i: usize| views.get(i).copied().flatten();
    match &step.kernel {
        Kernel::GetRows => strided::get_rows(src(0)?, src(1)?, &mut dst)?,
        Kernel::SetRows => strided::set_rows(src(0)?, src(1)?, &mut dst)?,
        Kernel::Binary(op) => strided::binary(*op, src(0)?, src(1)?, &mut dst)?,
        Kernel::RmsNorm(p) => strided::rms_norm(src(0)?, &mut dst, *p)?,
        Kernel::Norm(p) => strided::norm(src(0)?, &mut dst, *p)?,
        Kernel::MulMat => strided::mul_mat(src(0)?, src(1)?, &mut dst, gemm)?,
        Kernel::Rope(p) => strided::rope(src(0)?, src(1)?, optional(2), &mut dst, p)?,
        Kernel::SoftMax(p) => strided::soft_max(src(0)?, optional(1), optional(2), &mut dst, *p)?,
        Kernel::Cpy => strided::cpy(src(0)?, &mut dst)?,
        Kernel::Cont => strided::cont(src(0)?, &mut dst)?,
        Kernel::Dup => strided::dup(src(0)?, &mut dst)?,
        Kernel::Glu(p) => strided::glu(src(0)?, optional(1), &mut dst, *p)?,
        Kernel::FlashAttnExt(p) => {
            let extras = FlashAttnExtraViews { mask: optional(3), sinks: optional(4) };
            strided::flash_attn_ext(src(0)?, src(1)?, src(2)?, extras, &mut dst, p)?
        }
        Kernel::Scale(p) => strided::scale(src(0)?, &mut dst, *p)?,
        Kernel::Unary(op) => strided::unary(*op, src(0)?, &mut dst)?,
        Kernel::AddId => strided::add_id(src(0)?, src(1)?, src(2)?, &mut dst)?,
        Kernel::Acc(p) => strided::acc(src(0)?, src(1)?, &mut dst, p)?,
        Kernel::Sum => strided::sum(src(0)?, &mut dst)?,
        Kernel::SumRows => strided::sum_rows(src(0)?, &mut dst)?,
        Kernel::Cumsum => strided::cumsum(src(0)?, &mut dst)?,
        Kernel::Mean => strided::mean(src(0)?, &mut dst)?,
        Kernel::Argmax => strided::argmax(src(0)?, &mut dst)?,
        Kernel::CountEqual => strided::count_equal(src(0)?, src(1)?, &mut dst)?,
        Kernel::Repeat => strided::repeat(src(0)?, &mut dst)?,
        Kernel::Concat(p) => strided::concat(src(0)?, src(1)?, &mut dst, *p)?,
        Kernel::L2Norm(p) => strided::l2_norm(src(0)?, &mut dst, *p)?,
        Kernel::MulMatId => strided::mul_mat_id(src(0)?, src(1)?, src(2)?, &mut dst, gemm)?,
        Kernel::Clamp(p) => strided::clamp(src(0)?, &mut dst, *p)?,
        Kernel::Pad(p) => strided::pad(src(0)?, &mut dst, p)?,
        Kernel::Argsort(p) => strided::argsort(src(0)?, &mut dst, *p)?,
        Kernel::TopK => strided::top_k(src(0)?, &mut dst)?,
        Kernel::LeakyRelu(p) => strided::leaky_relu(src(0)?, &mut dst, *p)?,
        Kernel::Fill(p) => strided::fill(src(0)?, &mut dst, *p)?,
    }
    Ok(())
}
