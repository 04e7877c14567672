//! The compute functions as a client calls them, against a LocalSession.

use std::sync::Arc;

use crate::endpoint::tvm::codec::{DataType, Packet, Syscall, TensorRecord, Value};
use crate::session::{
    FunctionRegistry, LocalSession, Placement, Session, SessionConfig, SessionError, Work,
};

fn session() -> LocalSession {
    session_with(SessionConfig::default())
}

fn session_with(config: SessionConfig) -> LocalSession {
    LocalSession::new(Arc::new(FunctionRegistry::with_builtins()), config)
}

const F32: DataType = DataType::FLOAT32;
const F64: DataType = DataType::new(DataType::FLOAT, 64, 1);
const I32: DataType = DataType::new(DataType::INT, 32, 1);

fn tensor(s: &mut LocalSession, dtype: DataType, shape: &[i64]) -> TensorRecord {
    let mut record = TensorRecord::unallocated_cpu(dtype, shape);
    let alloc = Syscall::DevAllocDataWithScope { tensor: record.clone(), scope: None };
    let Ok(Value::Handle(data)) = s.syscall(&alloc) else { panic!("allocation failed") };
    record.data = data;
    record
}

fn f32_tensor(s: &mut LocalSession, shape: &[i64], values: &[f32]) -> TensorRecord {
    let record = tensor(s, F32, shape);
    s.copy_to_remote(&record, bytemuck::cast_slice(values)).unwrap();
    record
}

fn read_f32(s: &mut LocalSession, record: &TensorRecord) -> Vec<f32> {
    let mut out = vec![0f32; record.num_elements() as usize];
    s.copy_from_remote(record, bytemuck::cast_slice_mut(&mut out)).unwrap();
    out
}

fn call(s: &mut LocalSession, name: &str, args: Vec<Value>) -> Result<Value, SessionError> {
    let f = lookup(s, name);
    s.call_func(f, &args)
}

fn lookup(s: &mut LocalSession, name: &str) -> u64 {
    match s.syscall(&Syscall::GetGlobalFunc { name: name.into() }) {
        Ok(Value::Handle(f)) if f != 0 => f,
        other => panic!("{name} is not registered: {other:?}"),
    }
}

fn t(record: &TensorRecord) -> Value {
    Value::Tensor(record.clone())
}

fn message(result: Result<Value, SessionError>) -> String {
    result.expect_err("the call must fail").to_string()
}

#[test]
fn matmul_writes_the_product_of_two_remote_tensors() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = f32_tensor(&mut s, &[3, 2], &[7., 8., 9., 10., 11., 12.]);
    let c = tensor(&mut s, F32, &[2, 2]);
    assert_eq!(call(&mut s, "tensor_rpc.matmul", vec![t(&a), t(&b), t(&c)]), Ok(Value::None));
    assert_eq!(read_f32(&mut s, &c), [58., 64., 139., 154.]);
}

#[test]
fn matmul_transpose_flags_may_be_bools_or_zero_and_one() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[2, 2], &[1., 2., 3., 4.]);
    let c = tensor(&mut s, F32, &[2, 2]);
    call(&mut s, "tensor_rpc.matmul", vec![t(&a), t(&a), t(&c), Value::Bool(true), Value::Int(0)])
        .unwrap();
    // aᵀ·a
    assert_eq!(read_f32(&mut s, &c), [10., 14., 14., 20.]);
}

#[test]
fn add_broadcasts_a_row_over_a_matrix() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let row = f32_tensor(&mut s, &[3], &[10., 20., 30.]);
    let out = tensor(&mut s, F32, &[2, 3]);
    call(&mut s, "tensor_rpc.add", vec![t(&a), t(&row), t(&out)]).unwrap();
    assert_eq!(read_f32(&mut s, &out), [11., 22., 33., 14., 25., 36.]);
}

#[test]
fn output_of_the_wrong_shape_is_refused_and_left_untouched() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[2, 3], &[1.; 6]);
    let b = f32_tensor(&mut s, &[3, 4], &[1.; 12]);
    let c = f32_tensor(&mut s, &[2, 3], &[7.; 6]);
    assert_eq!(
        message(call(&mut s, "tensor_rpc.matmul", vec![t(&a), t(&b), t(&c)])),
        "tensor_rpc.matmul: out is float32 [2, 3] but the result is float32 [2, 4]"
    );
    assert_eq!(read_f32(&mut s, &c), [7.; 6]);
}

#[test]
fn inner_dimension_mismatch_names_both_shapes() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[3, 4], &[1.; 12]);
    let b = f32_tensor(&mut s, &[5, 2], &[1.; 10]);
    let c = tensor(&mut s, F32, &[3, 2]);
    assert_eq!(
        message(call(&mut s, "tensor_rpc.matmul", vec![t(&a), t(&b), t(&c)])),
        "matmul: a has shape [3, 4] but b has shape [5, 2]: inner dimensions 4 and 5 differ"
    );
}

#[test]
fn output_aliasing_an_input_is_refused() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[4], &[1., 2., 3., 4.]);
    let msg = message(call(&mut s, "tensor_rpc.relu", vec![t(&a), t(&a)]));
    assert!(msg.contains("out (shape [4]) aliases x (shape [4])"), "{msg}");
    assert_eq!(read_f32(&mut s, &a), [1., 2., 3., 4.]);
}

#[test]
fn tensor_whose_range_exceeds_its_allocation_is_refused() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[4], &[1.; 4]);
    let mut shifted = a.clone();
    shifted.byte_offset = 8;
    let out = tensor(&mut s, F32, &[4]);
    let msg = message(call(&mut s, "tensor_rpc.neg", vec![t(&shifted), t(&out)]));
    assert!(msg.contains("x: bytes [8, 8 + 16) lie outside the allocation of 16 bytes"), "{msg}");
}

#[test]
fn forged_data_handle_is_refused() {
    let mut s = session();
    let out = tensor(&mut s, F32, &[4]);
    let mut forged = out.clone();
    forged.data = 0x7f00_dead_beef;
    let msg = message(call(&mut s, "tensor_rpc.neg", vec![t(&forged), t(&out)]));
    assert!(msg.contains("is not valid in this session"), "{msg}");
}

#[test]
fn wrong_dtype_is_refused_naming_the_argument() {
    let mut s = session();
    let x = tensor(&mut s, I32, &[4]);
    let out = tensor(&mut s, I32, &[4]);
    let msg = message(call(&mut s, "tensor_rpc.exp", vec![t(&x), t(&out)]));
    assert!(msg.contains("int32"), "{msg}");
}

#[test]
fn missing_and_mistyped_arguments_are_refused() {
    let mut s = session();
    let x = tensor(&mut s, F32, &[4]);
    assert_eq!(
        message(call(&mut s, "tensor_rpc.softmax", vec![t(&x)])),
        "tensor_rpc.softmax: expects (x, out), got 1 arguments"
    );
    assert_eq!(
        message(call(&mut s, "tensor_rpc.sum", vec![t(&x), t(&x), Value::Str("0".into())])),
        "tensor_rpc.sum: argument 2 (axis) must be an integer, got Str of 1 bytes"
    );
}

#[test]
fn reductions_take_an_axis_and_keepdims() {
    let mut s = session();
    let x = f32_tensor(&mut s, &[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let out = tensor(&mut s, F32, &[2, 1]);
    call(&mut s, "tensor_rpc.max", vec![t(&x), t(&out), Value::Int(-1), Value::Bool(true)])
        .unwrap();
    assert_eq!(read_f32(&mut s, &out), [3., 6.]);
}

#[test]
fn fill_cast_and_transpose_compose() {
    let mut s = session();
    let x = tensor(&mut s, I32, &[2, 3]);
    call(&mut s, "tensor_rpc.fill", vec![t(&x), Value::Float(7.9)]).unwrap();
    let y = tensor(&mut s, F32, &[2, 3]);
    call(&mut s, "tensor_rpc.cast", vec![t(&x), t(&y)]).unwrap();
    let z = tensor(&mut s, F32, &[3, 2]);
    call(&mut s, "tensor_rpc.transpose", vec![t(&y), t(&z), Value::Int(0), Value::Int(1)]).unwrap();
    assert_eq!(read_f32(&mut s, &z), [7.; 6]);
}

#[test]
fn large_matmul_runs_off_the_event_loop_and_small_ones_inline() {
    let mut s = session();
    let f = lookup(&mut s, "tensor_rpc.matmul");
    let call_with = |s: &mut LocalSession, n: i64| {
        let a = tensor(s, F32, &[n, n]);
        Packet::CallFunc { function: f, args: vec![t(&a), t(&a), t(&a)] }
    };
    let small = call_with(&mut s, 8);
    let large = call_with(&mut s, 512);
    assert_eq!(s.prepare(small).placement, Placement::Inline);
    assert_eq!(s.prepare(large).placement, Placement::Compute);
}

/// A two-layer MLP forward pass: y = softmax(gelu(x·w1 + b1)·w2).
const MLP_PLAN: &str = r#"{
  "inputs": ["x", "w1", "b1", "w2", "y"],
  "nodes": [
    {"op": "matmul", "inputs": ["x", "w1"], "output": "h"},
    {"op": "add", "inputs": ["h", "b1"], "output": "hb"},
    {"op": "gelu", "inputs": ["hb"], "output": "a"},
    {"op": "matmul", "inputs": ["a", "w2"], "output": "z"},
    {"op": "softmax", "inputs": ["z"], "output": "y"}
  ]
}"#;

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// Sizes of the test MLP: batch, input, hidden, classes.
struct MlpShape {
    n: usize,
    d: usize,
    h: usize,
    k: usize,
}

/// The MLP in plain Rust, in f64.
fn mlp_reference(x: &[f32], w1: &[f32], b1: &[f32], w2: &[f32], shape: &MlpShape) -> Vec<f64> {
    let MlpShape { n, d, h, k } = *shape;
    let mut out = vec![0.0; n * k];
    for i in 0..n {
        let hidden: Vec<f64> = (0..h)
            .map(|j| {
                let dot: f64 =
                    (0..d).map(|q| f64::from(x[i * d + q]) * f64::from(w1[q * h + j])).sum();
                gelu(dot + f64::from(b1[j]))
            })
            .collect();
        let z: Vec<f64> =
            (0..k).map(|j| (0..h).map(|q| hidden[q] * f64::from(w2[q * k + j])).sum()).collect();
        let max = z.iter().copied().fold(f64::MIN, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        for j in 0..k {
            out[i * k + j] = (z[j] - max).exp() / sum;
        }
    }
    out
}

fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

#[test]
fn mlp_graph_runs_in_one_call_and_matches_a_plain_reference() {
    let (n, d, h, k) = (8, 16, 32, 10);
    let mut s = session();
    let (xv, w1v, b1v, w2v) = (
        pseudo_random(n * d, 1),
        pseudo_random(d * h, 2),
        pseudo_random(h, 3),
        pseudo_random(h * k, 4),
    );
    let x = f32_tensor(&mut s, &[n as i64, d as i64], &xv);
    let w1 = f32_tensor(&mut s, &[d as i64, h as i64], &w1v);
    let b1 = f32_tensor(&mut s, &[h as i64], &b1v);
    let w2 = f32_tensor(&mut s, &[h as i64, k as i64], &w2v);
    let y = tensor(&mut s, F32, &[n as i64, k as i64]);
    let held = s.stats().bytes_held;
    let args = vec![Value::Str(MLP_PLAN.into()), t(&x), t(&w1), t(&b1), t(&w2), t(&y)];
    assert_eq!(call(&mut s, "tensor_rpc.graph_compute", args), Ok(Value::None));
    let expected = mlp_reference(&xv, &w1v, &b1v, &w2v, &MlpShape { n, d, h, k });
    for (got, want) in read_f32(&mut s, &y).iter().zip(&expected) {
        assert!((f64::from(*got) - want).abs() <= 1e-5 * want.abs().max(1e-3), "{got} vs {want}");
    }
    assert_eq!(s.stats().bytes_held, held, "intermediates are freed");
    assert!(s.stats().peak_bytes > held, "intermediates were allocated");
}

fn graph_error(plan: &str, tensors: &[&TensorRecord], s: &mut LocalSession) -> String {
    let mut args = vec![Value::Str(plan.into())];
    args.extend(tensors.iter().map(|r| t(r)));
    message(call(s, "tensor_rpc.graph_compute", args))
}

#[test]
fn graph_plan_errors_are_found_before_anything_runs() {
    let mut s = session();
    let x = f32_tensor(&mut s, &[2, 2], &[1., -2., 3., -4.]);
    let y = f32_tensor(&mut s, &[2, 2], &[9.; 4]);
    let cases = [
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "launch_missiles", "inputs": [], "output": "z"}]}"#,
            "node 1 (launch_missiles): unknown op",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "neg", "inputs": ["later"], "output": "z"}, {"op": "neg", "inputs": ["z"], "output": "later"}]}"#,
            "reads 'later', which no argument names and no earlier node writes",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "neg", "inputs": ["x"], "output": "y"}]}"#,
            "writes 'y', which an earlier node already wrote",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "neg", "inputs": ["x"], "output": "x"}]}"#,
            "writes 'x', which it also reads",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "sum", "inputs": ["x"], "output": "s", "attrs": {"axis": 0, "fast": true}}]}"#,
            "unknown attribute 'fast'",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "sum", "inputs": ["x"], "output": "s"}]}"#,
            "attribute 'axis' is required",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "transpose", "inputs": ["x"], "output": "t", "attrs": {"axis0": 0, "axis1": 7}}]}"#,
            "node 1 (transpose)",
        ),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}, {"op": "sum", "inputs": ["x"], "output": "y2", "attrs": {"axis": 0}}, {"op": "add", "inputs": ["y2", "x"], "output": "y"}]}"#,
            "writes 'y', which an earlier node already wrote",
        ),
        (r#"{"inputs": ["x"], "nodes": []}"#, "names 1 inputs but the call passes 2 tensors"),
        (r#"{"inputs": ["x", "y"], "nodes": [], "extra": 1}"#, "not valid JSON"),
        ("not json", "not valid JSON"),
    ];
    for (plan, expected) in cases {
        let msg = graph_error(plan, &[&x, &y], &mut s);
        assert!(msg.contains(expected), "{plan}\n=> {msg}");
        assert_eq!(read_f32(&mut s, &y), [9.; 4], "nothing ran for {plan}");
    }
}

#[test]
fn graph_plans_are_bounded_while_they_are_read() {
    let mut s = session();
    let x = f32_tensor(&mut s, &[2, 2], &[1.; 4]);
    let y = tensor(&mut s, F32, &[2, 2]);
    let node = r#"{"op": "relu", "inputs": ["x"], "output": "y"}"#;
    let many = vec![node; 4097].join(",");
    let cases = [
        (format!(r#"{{"inputs": ["x", "y"], "nodes": [{many}]}}"#), "more than 4096 items"),
        (
            r#"{"inputs": ["x", "y"], "nodes": [{"op": "fill", "output": "y", "attrs": {"value": {"a": 1}}}]}"#.into(),
            "a bool, a number, a string or a list of at most 32 integers",
        ),
        (
            format!(
                r#"{{"inputs": ["x", "y"], "nodes": [{{"op": "fill", "output": "t", "attrs": {{"shape": [{}]}}}}]}}"#,
                vec!["1"; 33].join(",")
            ),
            "a list of more than 32 items",
        ),
    ];
    for (plan, expected) in cases {
        let msg = graph_error(&plan, &[&x, &y], &mut s);
        assert!(msg.contains(expected), "{}...\n=> {msg}", &plan[..80]);
    }
}

#[test]
fn a_long_plan_goes_to_a_worker_unread_and_is_checked_there_once() {
    let mut s = session();
    let x = f32_tensor(&mut s, &[2, 2], &[1.; 4]);
    let f = lookup(&mut s, "tensor_rpc.graph_compute");
    // Valid JSON only until its very end: an error that reading the plan finds only there.
    let plan = format!("{{\"inputs\": [\"x\"], \"nodes\": []{}", " ".repeat(20 << 10));
    let request = Packet::CallFunc { function: f, args: vec![Value::Str(plan), t(&x)] };
    let prepared = s.prepare(request);
    assert_eq!(prepared.placement, Placement::Compute, "not parsed on the event loop");
    let Work::Call(call) = prepared.work else { panic!("a prepared call") };
    let message = s.run_prepared(call).unwrap_err().to_string();
    assert!(message.contains("not valid JSON"), "{message}");
}

#[test]
fn graph_output_of_the_wrong_shape_is_refused() {
    let mut s = session();
    let x = f32_tensor(&mut s, &[2, 2], &[1.; 4]);
    let y = tensor(&mut s, F32, &[4]);
    let plan =
        r#"{"inputs": ["x", "y"], "nodes": [{"op": "relu", "inputs": ["x"], "output": "y"}]}"#;
    let msg = graph_error(plan, &[&x, &y], &mut s);
    assert!(msg.contains("out is float32 [4] but the result is float32 [2, 2]"), "{msg}");
}

#[test]
fn graph_node_writing_an_allocation_it_reads_is_refused() {
    let mut s = session();
    let x = f32_tensor(&mut s, &[4], &[1.; 4]);
    let (mut front, mut back) = (x.clone(), x.clone());
    front.shape = vec![2];
    back.shape = vec![2];
    back.byte_offset = 8;
    let plan =
        r#"{"inputs": ["a", "v"], "nodes": [{"op": "neg", "inputs": ["a"], "output": "v"}]}"#;
    let msg = graph_error(plan, &[&front, &back], &mut s);
    assert!(msg.contains("writes 'v', which shares its allocation with input 'a'"), "{msg}");
}

#[test]
fn graph_intermediates_count_against_the_memory_limit_and_are_freed_on_failure() {
    let mut s =
        session_with(SessionConfig { memory_limit: Some(4096), ..SessionConfig::default() });
    let x = f32_tensor(&mut s, &[16, 16], &[1.; 256]);
    let y = tensor(&mut s, F32, &[16, 16]);
    let held = s.stats().bytes_held;
    let plan = r#"{"inputs": ["x", "y"], "nodes": [
        {"op": "fill", "inputs": [], "output": "big", "attrs": {"value": 1, "dtype": "float32", "shape": [64, 64]}},
        {"op": "relu", "inputs": ["x"], "output": "y"}]}"#;
    let msg = graph_error(plan, &[&x, &y], &mut s);
    assert!(msg.contains("memory limit"), "{msg}");
    assert_eq!(s.stats().bytes_held, held);
}

#[test]
fn fill_and_cast_into_intermediates_take_dtype_and_shape_from_attrs() {
    let mut s = session();
    let y = tensor(&mut s, F64, &[3]);
    let plan = r#"{"inputs": ["y"], "nodes": [
        {"op": "fill", "inputs": [], "output": "f", "attrs": {"value": 2.5, "dtype": "float32", "shape": [3]}},
        {"op": "cast", "inputs": ["f"], "output": "y"}]}"#;
    call(&mut s, "tensor_rpc.graph_compute", vec![Value::Str(plan.into()), t(&y)]).unwrap();
    let mut out = [0f64; 3];
    s.copy_from_remote(&y, bytemuck::cast_slice_mut(&mut out)).unwrap();
    assert_eq!(out, [2.5; 3]);
}

#[test]
fn time_returns_one_duration_per_repeat() {
    let mut s = session();
    let a = f32_tensor(&mut s, &[4, 4], &[1.; 16]);
    let c = tensor(&mut s, F32, &[4, 4]);
    let result = call(
        &mut s,
        "tensor_rpc.time",
        vec![
            Value::Str("tensor_rpc.matmul".into()),
            Value::Int(5),
            Value::Int(3),
            t(&a),
            t(&a),
            t(&c),
        ],
    )
    .unwrap();
    let Value::Bytes(bytes) = result else { panic!("{result:?}") };
    let seconds: Vec<f64> =
        bytes.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(seconds.len(), 3);
    assert!(seconds.iter().all(|&t| t > 0.0 && t < 1.0), "{seconds:?}");
    assert_eq!(read_f32(&mut s, &c), [4.; 16]);
}

#[test]
fn time_refuses_functions_that_are_not_compute_and_absurd_counts() {
    let mut s = session();
    let name = |n: &str| Value::Str(n.into());
    assert!(
        message(call(
            &mut s,
            "tensor_rpc.time",
            vec![name("testing.echo"), Value::Int(1), Value::Int(1)]
        ))
        .contains("can time compute functions")
    );
    assert!(
        message(call(
            &mut s,
            "tensor_rpc.time",
            vec![name("tensor_rpc.relu"), Value::Int(1_000_000), Value::Int(100)]
        ))
        .contains("at most")
    );
    assert_eq!(
        message(call(
            &mut s,
            "tensor_rpc.time",
            vec![name("tensor_rpc.relu"), Value::Int(101), Value::Int(100)]
        )),
        "tensor_rpc.time: number (101) and repeat (100) must be positive, with at most 10000 calls in all"
    );
    assert!(
        message(call(
            &mut s,
            "tensor_rpc.time",
            vec![name("tensor_rpc.time"), Value::Int(1), Value::Int(1)]
        ))
        .contains("can time compute functions")
    );
}

#[test]
fn time_stops_with_an_exception_once_its_wall_clock_budget_is_spent() {
    let budget = std::time::Duration::from_millis(20);
    let mut s = session_with(SessionConfig { time_budget: budget, ..SessionConfig::default() });
    let a = f32_tensor(&mut s, &[256, 256], &[1.; 256 * 256]);
    let c = tensor(&mut s, F32, &[256, 256]);
    let started = std::time::Instant::now();
    let result = call(
        &mut s,
        "tensor_rpc.time",
        vec![
            Value::Str("tensor_rpc.matmul".into()),
            Value::Int(100),
            Value::Int(100),
            t(&a),
            t(&a),
            t(&c),
        ],
    );
    let message = message(result);
    assert!(message.contains("over the budget of 0.020 s"), "{message}");
    assert!(message.contains("ask for fewer calls (number 100, repeat 100)"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "it stopped early");
}
