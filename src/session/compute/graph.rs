//! `tensor_rpc.graph_compute(plan, tensors...)`: a whole graph of kernels in one round trip
//! (ggml-rpc's `graph_compute`).
//!
//! The plan is JSON naming the tensor arguments and listing nodes in execution order:
//!
//! ```json
//! {"inputs": ["x", "w1", "b1", "w2", "y"],
//!  "nodes": [{"op": "matmul", "inputs": ["x", "w1"], "output": "h"},
//!            {"op": "add", "inputs": ["h", "b1"], "output": "h1"},
//!            {"op": "gelu", "inputs": ["h1"], "output": "a"},
//!            {"op": "matmul", "inputs": ["a", "w2"], "output": "z"},
//!            {"op": "softmax", "inputs": ["z"], "output": "y"}]}
//! ```
//!
//! A node's output is either a tensor argument (written in place) or an intermediate the
//! server allocates (its dtype and shape inferred; `fill` and `cast` into an intermediate
//! take them from `attrs`). Attributes: `transpose_a`/`transpose_b` (matmul), `axis` and
//! `keepdims` (sum/mean/max), `value`, `shape`, `dtype` (fill), `dtype` (cast), `axis0`,
//! `axis1` (transpose).
//!
//! Everything is checked before any kernel runs, in release builds: the JSON's shape, op
//! names, attribute names and types, that every name read was written by an earlier node or
//! is an argument (so no cycles), that no name is written twice, every dtype and shape, that
//! arguments lie inside their allocations and that no node writes memory it also reads.
//! Nothing callable or pointer-like is taken from a plan: ops come from a fixed list and
//! tensors are named, never addressed.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use super::args::Args;
use super::functions::run_on_records;
use super::op::{Op, check_output, describe};
use crate::endpoint::tvm::codec::{DataType, TensorRecord, Value};
use crate::kernels::{DType, OutputSpec, TensorDesc};
use crate::session::{CallContext, FunctionRegistry, PreparedBody, SessionError};

pub const GRAPH_COMPUTE: &str = "tensor_rpc.graph_compute";

/// Bounds on a plan, whatever its size in bytes: counted while the JSON is read, so a plan
/// of more nodes or inputs is refused before they are all held.
const MAX_NODES: usize = 4096;
const MAX_INPUTS: usize = 4096;
const MAX_NAME_LEN: usize = 256;

/// Plans up to this many bytes are parsed and checked on the event loop (tens of
/// microseconds), and run there too when their work is small; longer ones are parsed and
/// checked once, on a compute worker, where they run.
pub const INLINE_PLAN_BYTES: usize = 16 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanJson {
    #[serde(deserialize_with = "at_most::<MAX_INPUTS, _, _>")]
    inputs: Vec<String>,
    #[serde(deserialize_with = "at_most::<MAX_NODES, _, _>")]
    nodes: Vec<NodeJson>,
}

/// Reads a JSON list, failing as soon as it holds more than `LIMIT` items.
fn at_most<'de, const LIMIT: usize, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    struct Bounded<const LIMIT: usize, T>(std::marker::PhantomData<T>);
    impl<'de, const LIMIT: usize, T: Deserialize<'de>> Visitor<'de> for Bounded<LIMIT, T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {LIMIT} items")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == LIMIT {
                    return Err(A::Error::custom(format!("more than {LIMIT} items")));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded::<LIMIT, T>(std::marker::PhantomData))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeJson {
    op: String,
    #[serde(default, deserialize_with = "at_most::<MAX_OP_INPUTS, _, _>")]
    inputs: Vec<String>,
    output: String,
    #[serde(default)]
    attrs: NodeAttrs,
}

/// Most inputs any op takes, and most attributes any node has (read bounded, so a plan's
/// bytes cannot expand into more memory than they are).
const MAX_OP_INPUTS: usize = 8;
const MAX_ATTRS: usize = 8;
/// Most entries of a list attribute (a shape).
const MAX_ATTR_LIST: usize = 32;

/// A node's attributes: scalars and short integer lists only.
#[derive(Default)]
struct NodeAttrs(Vec<(String, AttrValue)>);

#[derive(Debug, Clone, PartialEq)]
enum AttrValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Ints(Vec<i64>),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x}"),
            AttrValue::Text(t) => write!(f, "{t:?}"),
            AttrValue::Ints(v) => write!(f, "{v:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for NodeAttrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Attrs;
        impl<'de> Visitor<'de> for Attrs {
            type Value = NodeAttrs;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an object of at most {MAX_ATTRS} attributes")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeAttrs, A::Error> {
                let mut attrs = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, AttrValue>()? {
                    if attrs.len() == MAX_ATTRS {
                        return Err(A::Error::custom(format!("more than {MAX_ATTRS} attributes")));
                    }
                    attrs.push((name, value));
                }
                Ok(NodeAttrs(attrs))
            }
        }
        deserializer.deserialize_map(Attrs)
    }
}

impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = AttrValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a bool, a number, a string or a list of at most {MAX_ATTR_LIST} integers"
                )
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<AttrValue, E> {
                Ok(AttrValue::Bool(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AttrValue, E> {
                Ok(AttrValue::Int(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AttrValue, E> {
                i64::try_from(v).map(AttrValue::Int).or(Ok(AttrValue::Float(v as f64)))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<AttrValue, E> {
                Ok(AttrValue::Float(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AttrValue, E> {
                Ok(AttrValue::Text(v.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AttrValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<i64>()? {
                    if items.len() == MAX_ATTR_LIST {
                        return Err(A::Error::custom(format!(
                            "a list of more than {MAX_ATTR_LIST} items"
                        )));
                    }
                    items.push(item);
                }
                Ok(AttrValue::Ints(items))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

/// Where a node's tensor lives: a tensor argument, or an intermediate of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Arg(usize),
    Temp(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    op: Op,
    name: String,
    inputs: Vec<Slot>,
    output: Slot,
}

/// A validated plan over a particular set of tensor arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphPlan {
    nodes: Vec<Node>,
    /// Dtype and shape of each intermediate.
    temps: Vec<(DataType, Vec<i64>)>,
    estimated_flops: u64,
}

fn invalid(message: String) -> SessionError {
    SessionError::InvalidArgument(format!("graph plan: {message}"))
}

impl GraphPlan {
    /// Parses and validates `plan` against the tensor arguments `args`.
    pub fn parse(plan: &str, args: &[&TensorRecord]) -> Result<GraphPlan, SessionError> {
        let plan: PlanJson = serde_json::from_str(plan)
            .map_err(|e| invalid(format!("not valid JSON or over its limits: {e}")))?;
        if plan.inputs.len() != args.len() {
            return Err(invalid(format!(
                "names {} inputs but the call passes {} tensors",
                plan.inputs.len(),
                args.len()
            )));
        }
        let mut names: HashMap<String, Slot> = HashMap::new();
        for (i, name) in plan.inputs.iter().enumerate() {
            check_name(name)?;
            if names.insert(name.clone(), Slot::Arg(i)).is_some() {
                return Err(invalid(format!("input name '{name}' is used twice")));
            }
        }
        let mut written: Vec<Slot> = Vec::new();
        let mut temps: Vec<(DataType, Vec<i64>)> = Vec::new();
        let mut nodes = Vec::with_capacity(plan.nodes.len());
        let mut estimated_flops: u64 = 0;
        for (index, node) in plan.nodes.iter().enumerate() {
            let at = |message: String| invalid(format!("node {index} ({}): {message}", node.op));
            let mut op = Op::named(&node.op).ok_or_else(|| at("unknown op".into()))?;
            if node.inputs.len() != op.input_count() {
                return Err(at(format!(
                    "takes {} inputs, {} given",
                    op.input_count(),
                    node.inputs.len()
                )));
            }
            let mut inputs = Vec::with_capacity(node.inputs.len());
            for name in &node.inputs {
                let slot = names.get(name).copied().ok_or_else(|| {
                    at(format!(
                        "reads '{name}', which no argument names and no earlier node writes"
                    ))
                })?;
                inputs.push(slot);
            }
            check_name(&node.output)?;
            let existing = names.get(&node.output).copied();
            if let Some(slot) = existing
                && written.contains(&slot)
            {
                return Err(at(format!(
                    "writes '{}', which an earlier node already wrote",
                    node.output
                )));
            }
            if existing.is_some_and(|s| inputs.contains(&s)) {
                return Err(at(format!("writes '{}', which it also reads", node.output)));
            }
            let attrs = Attrs { node: &node.attrs, at: &at };
            let declared_out =
                apply_attrs(&mut op, &attrs, existing.and_then(|s| slot_record(s, args)))?;

            let descs = inputs
                .iter()
                .zip(&node.inputs)
                .map(|(slot, name)| match *slot {
                    Slot::Arg(i) => describe(name, args[i]),
                    Slot::Temp(t) => temp_desc(&temps[t]),
                })
                .collect::<Result<Vec<TensorDesc<'_>>, _>>()
                .map_err(|e| at(e.to_string()))?;
            let out_desc = match (&existing, &declared_out) {
                (Some(Slot::Arg(i)), _) => {
                    Some(describe(&node.output, args[*i]).map_err(|e| at(e.to_string()))?)
                }
                (_, Some(declared)) => Some(temp_desc(declared).map_err(|e| at(e.to_string()))?),
                _ => None,
            };
            let spec: OutputSpec = op.infer(&descs, out_desc).map_err(|e| at(e.to_string()))?;
            estimated_flops = estimated_flops.saturating_add(spec.estimated_flops);
            let output = match existing {
                Some(Slot::Arg(i)) => {
                    check_output(args[i], &spec).map_err(|e| at(e.to_string()))?;
                    // The output's memory must not be read by the same node under another name.
                    for (slot, name) in inputs.iter().zip(&node.inputs) {
                        if let Slot::Arg(j) = *slot
                            && args[j].data == args[i].data
                        {
                            return Err(at(format!(
                                "writes '{}', which shares its allocation with input '{name}'",
                                node.output
                            )));
                        }
                    }
                    Slot::Arg(i)
                }
                // Intermediates are written once (checked above): this one is new.
                Some(Slot::Temp(_)) | None => {
                    let (code, bits, lanes) = spec.dtype.to_dlpack();
                    temps.push((DataType::new(code, bits, lanes), spec.shape.clone()));
                    let slot = Slot::Temp(temps.len() - 1);
                    names.insert(node.output.clone(), slot);
                    slot
                }
            };
            written.push(output);
            nodes.push(Node { op, name: node.op.clone(), inputs, output });
        }
        Ok(GraphPlan { nodes, temps, estimated_flops })
    }

    pub fn estimated_flops(&self) -> u64 {
        self.estimated_flops
    }

    /// Bytes of the intermediates the plan allocates.
    pub fn intermediate_bytes(&self) -> u64 {
        self.temps
            .iter()
            .map(|(dtype, shape)| {
                crate::endpoint::tvm::codec::checked_nbytes(shape, *dtype).unwrap_or(u64::MAX)
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Runs the plan: arguments are checked against their allocations and every
    /// intermediate is allocated before the first kernel runs; intermediates are freed
    /// however the run ends.
    pub fn run(
        &self,
        ctx: &mut CallContext<'_>,
        args: &[&TensorRecord],
    ) -> Result<(), SessionError> {
        for (i, record) in args.iter().enumerate() {
            ctx.tensor(record).map_err(|e| invalid(format!("input {i}: {e}")))?;
        }
        let mut temps: Vec<TensorRecord> = Vec::with_capacity(self.temps.len());
        let result = self.allocate_and_run(ctx, args, &mut temps);
        for temp in &temps {
            if let Err(e) = ctx.free_tensor(temp) {
                log::error!("freeing a graph intermediate failed: {e}");
            }
        }
        result
    }

    fn allocate_and_run(
        &self,
        ctx: &mut CallContext<'_>,
        args: &[&TensorRecord],
        temps: &mut Vec<TensorRecord>,
    ) -> Result<(), SessionError> {
        for (dtype, shape) in &self.temps {
            temps.push(ctx.alloc_tensor(*dtype, shape)?);
        }
        let record = |slot: Slot| match slot {
            Slot::Arg(i) => args[i],
            Slot::Temp(t) => &temps[t],
        };
        const INPUT_NAMES: [&str; 2] = ["a", "b"];
        for (index, node) in self.nodes.iter().enumerate() {
            let inputs: Vec<(&'static str, &TensorRecord)> = node
                .inputs
                .iter()
                .enumerate()
                .map(|(k, s)| (INPUT_NAMES[k.min(1)], record(*s)))
                .collect();
            run_on_records(ctx, &node.op, &inputs, ("out", record(node.output)))
                .map_err(|e| invalid(format!("node {index} ({}) failed: {e}", node.name)))?;
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), SessionError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "tensor name of {} bytes (1..={MAX_NAME_LEN} allowed)",
            name.len()
        )));
    }
    Ok(())
}

fn slot_record<'r>(slot: Slot, args: &[&'r TensorRecord]) -> Option<&'r TensorRecord> {
    match slot {
        Slot::Arg(i) => Some(args[i]),
        Slot::Temp(_) => None,
    }
}

fn temp_desc((dtype, shape): &(DataType, Vec<i64>)) -> Result<TensorDesc<'_>, SessionError> {
    let dtype = DType::from_dlpack(dtype.code, dtype.bits, dtype.lanes)?;
    Ok(TensorDesc::new(dtype, shape)?)
}

/// A node's attributes, read with errors that name the node.
struct Attrs<'a> {
    node: &'a NodeAttrs,
    at: &'a dyn Fn(String) -> SessionError,
}

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttrValue> {
        self.node.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn check_known(&self, known: &[&str]) -> Result<(), SessionError> {
        match self.node.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err((self.at)(format!("unknown attribute '{k}' (known: {known:?})"))),
            None => Ok(()),
        }
    }

    fn flag(&self, name: &str) -> Result<bool, SessionError> {
        match self.get(name) {
            None => Ok(false),
            Some(AttrValue::Bool(b)) => Ok(*b),
            Some(other) => {
                Err((self.at)(format!("attribute '{name}' must be a bool, got {other}")))
            }
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, SessionError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Int(v)) => Ok(Some(*v)),
            Some(other) => {
                Err((self.at)(format!("attribute '{name}' must be an integer, got {other}")))
            }
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>, SessionError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Int(v)) => Ok(Some(*v as f64)),
            Some(AttrValue::Float(v)) => Ok(Some(*v)),
            Some(other) => {
                Err((self.at)(format!("attribute '{name}' must be a number, got {other}")))
            }
        }
    }

    fn required_int(&self, name: &str) -> Result<i64, SessionError> {
        self.int(name)?.ok_or_else(|| (self.at)(format!("attribute '{name}' is required")))
    }

    fn dtype(&self) -> Result<Option<DType>, SessionError> {
        match self.get("dtype") {
            None => Ok(None),
            Some(AttrValue::Text(s)) => DType::ALL
                .into_iter()
                .find(|d| d.name() == s)
                .map(Some)
                .ok_or_else(|| (self.at)(format!("unknown dtype '{s}'"))),
            Some(other) => {
                Err((self.at)(format!("attribute 'dtype' must be a string, got {other}")))
            }
        }
    }

    fn shape(&self) -> Result<Option<Vec<i64>>, SessionError> {
        match self.get("shape") {
            None => Ok(None),
            Some(AttrValue::Ints(dims)) if dims.iter().all(|d| *d >= 0) => Ok(Some(dims.clone())),
            Some(other) => Err((self.at)(format!(
                "attribute 'shape' must be a list of at most {MAX_ATTR_LIST} non-negative \
                 integers, got {other}"
            ))),
        }
    }
}

/// Sets `op`'s attributes from the node; returns the declared dtype and shape of an
/// intermediate output where the op cannot infer them (`fill`, and `cast`'s dtype).
fn apply_attrs(
    op: &mut Op,
    attrs: &Attrs<'_>,
    existing_out: Option<&TensorRecord>,
) -> Result<Option<(DataType, Vec<i64>)>, SessionError> {
    let to_wire = |d: DType| {
        let (code, bits, lanes) = d.to_dlpack();
        DataType::new(code, bits, lanes)
    };
    match op {
        Op::Matmul(options) => {
            attrs.check_known(&["transpose_a", "transpose_b"])?;
            options.transpose_a = attrs.flag("transpose_a")?;
            options.transpose_b = attrs.flag("transpose_b")?;
        }
        Op::Reduce(_, options) => {
            attrs.check_known(&["axis", "keepdims"])?;
            options.axis = attrs.required_int("axis")?;
            options.keepdims = attrs.flag("keepdims")?;
        }
        Op::Transpose { axis0, axis1 } => {
            attrs.check_known(&["axis0", "axis1"])?;
            *axis0 = attrs.required_int("axis0")?;
            *axis1 = attrs.required_int("axis1")?;
        }
        Op::Cast(to) => {
            attrs.check_known(&["dtype"])?;
            *to = match (attrs.dtype()?, existing_out) {
                (Some(d), _) => d,
                (None, Some(out)) => {
                    DType::from_dlpack(out.dtype.code, out.dtype.bits, out.dtype.lanes)?
                }
                (None, None) => {
                    return Err((attrs.at)(
                        "attribute 'dtype' is required when casting into an intermediate".into(),
                    ));
                }
            };
        }
        Op::Fill(value) => {
            attrs.check_known(&["value", "shape", "dtype"])?;
            *value = attrs.number("value")?.unwrap_or(0.0);
            if existing_out.is_none() {
                let dtype = attrs.dtype()?.ok_or_else(|| {
                    (attrs.at)("attribute 'dtype' is required when filling an intermediate".into())
                })?;
                let shape = attrs.shape()?.ok_or_else(|| {
                    (attrs.at)("attribute 'shape' is required when filling an intermediate".into())
                })?;
                return Ok(Some((to_wire(dtype), shape)));
            }
        }
        Op::Binary(_) | Op::Unary(_) | Op::Softmax => attrs.check_known(&[])?,
    }
    Ok(None)
}

/// The plan text and tensor arguments of a `graph_compute` call.
fn call_args(values: &[Value]) -> Result<(&str, Vec<&TensorRecord>), SessionError> {
    let args = Args::new(values);
    if values.is_empty() {
        return Err(SessionError::InvalidArgument("expects (plan, tensors...)".into()));
    }
    let plan = args.text(0, "plan")?;
    let tensors =
        (1..values.len()).map(|i| args.tensor(i, "tensor")).collect::<Result<Vec<_>, _>>()?;
    Ok((plan, tensors))
}

/// Checks a call on the event loop: a short plan is parsed and validated there, once, and
/// runs inline or on a worker by its work; a long one goes to a worker untouched, to be
/// parsed and validated there, once, before it runs.
fn prepare(values: &[Value]) -> Result<PreparedBody, SessionError> {
    let (text, tensors) = call_args(values)?;
    if text.len() > INLINE_PLAN_BYTES {
        return Ok(PreparedBody::new(u64::MAX, |ctx, values| {
            let (text, tensors) = call_args(values)?;
            GraphPlan::parse(text, &tensors)?.run(ctx, &tensors)?;
            Ok(Value::None)
        }));
    }
    let plan = GraphPlan::parse(text, &tensors)?;
    Ok(PreparedBody::new(plan.estimated_flops(), move |ctx, values| {
        let (_, tensors) = call_args(values)?;
        plan.run(ctx, &tensors)?;
        Ok(Value::None)
    }))
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    registry.register_prepared(GRAPH_COMPUTE, prepare);
}
