//! Client byte streams for a server of ours: the recorded TVM sessions with TVM's handles
//! replaced by the ones our server issues, and helpers to build frames by hand.

use std::collections::HashMap;
use std::time::Instant;

use tensor_rpc::endpoint::tvm::codec::handshake::encode_client_hello;
use tensor_rpc::endpoint::tvm::codec::{DecodeLimits, Packet, Value};
use tensor_rpc::server::{ConnectionConfig, TvmConnection};

use super::trace::{Trace, split_client, split_frames};

/// Recorded sessions served by a local session (the multi-hop one needs a next hop).
pub const LOCAL_TRACES: [&str; 5] = [
    "tvm0.27-echo.trace",
    "tvm0.27-tensor.trace",
    "tvm0.27-missing-function.trace",
    "tvm0.27-upload.trace",
    "tvm0.27-bad-call-then-attrs.trace",
];

/// `u64 length` + the encoded packet.
pub fn frame(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode_frame(&mut out);
    out
}

/// `u64 length` + raw body bytes.
pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The client's magic and key.
pub fn hello(key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_hello(key, &mut out);
    out
}

/// Replaces every 8-byte little-endian occurrence of a handle in `map` with its value.
pub fn rewrite_handles(frame: &[u8], map: &HashMap<u64, u64>) -> Vec<u8> {
    let mut out = frame.to_vec();
    for (&from, &to) in map {
        let (from, to) = (from.to_le_bytes(), to.to_le_bytes());
        let mut i = 0;
        while i + 8 <= out.len() {
            if out[i..i + 8] == from {
                out[i..i + 8].copy_from_slice(&to);
                i += 8;
            } else {
                i += 1;
            }
        }
    }
    out
}

fn reply_handles(frame: &[u8]) -> Vec<u64> {
    match Packet::decode(&frame[8..], &DecodeLimits::default()) {
        Ok(Packet::Return(values)) => values
            .into_iter()
            .filter_map(|v| if let Value::Handle(h) = v { Some(h) } else { None })
            .collect(),
        _ => Vec::new(),
    }
}

/// The client half of a recorded session, with TVM's handles replaced by those a fresh
/// connection of ours issues, so that replaying it reaches everything the recording did.
pub fn our_client_stream(trace: &str) -> Vec<u8> {
    let trace = Trace::load(trace);
    let (client_hello, client_frames) = split_client(&trace.client);
    let (_, recorded) = split_client(&trace.server);
    let mut conn = TvmConnection::new(ConnectionConfig::default(), Instant::now());
    let mut stream = client_hello.clone();
    conn.endpoint().receive(&client_hello);
    conn.process_inline(Instant::now()).expect("handshake");
    conn.endpoint().take_output();
    let mut recorded = recorded.iter();
    let mut map = HashMap::new();
    for frame in &client_frames {
        let frame = rewrite_handles(frame, &map);
        stream.extend_from_slice(&frame);
        conn.endpoint().receive(&frame);
        conn.process_inline(Instant::now()).expect("framing holds");
        for ours in split_frames(&conn.endpoint().take_output()) {
            let Some(theirs) = recorded.next() else { continue };
            for (t, o) in reply_handles(theirs).into_iter().zip(reply_handles(&ours)) {
                if t != 0 && o != 0 {
                    map.insert(t, o);
                }
            }
        }
    }
    stream
}

/// A session that reaches the compute functions: small tensors uploaded, added, multiplied,
/// reduced, run through a graph and timed, downloaded and freed. Built against a connection
/// of ours, so the handles in it are the ones a fresh connection issues.
pub fn compute_session_stream() -> Vec<u8> {
    use tensor_rpc::endpoint::tvm::codec::{DataType, PROTOCOL_VERSION, Syscall, TensorRecord};
    let mut dry = TvmConnection::new(ConnectionConfig::default(), Instant::now());
    let mut stream = Vec::new();
    let mut send = |stream: &mut Vec<u8>, bytes: Vec<u8>| -> Vec<Value> {
        stream.extend_from_slice(&bytes);
        dry.endpoint().receive(&bytes);
        dry.process_inline(Instant::now()).expect("framing holds");
        let out = dry.endpoint().take_output();
        match out.get(8..).map(|b| Packet::decode(b, &DecodeLimits::default())) {
            Some(Ok(Packet::Return(values))) => values,
            _ => vec![],
        }
    };
    send(&mut stream, hello("client:"));
    let init = Packet::InitServer { version: PROTOCOL_VERSION.into(), args: vec![] };
    send(&mut stream, frame(&init));
    let mut tensors = Vec::new();
    for _ in 0..3 {
        let mut record = TensorRecord::unallocated_cpu(DataType::FLOAT32, &[2, 2]);
        let alloc = Syscall::DevAllocDataWithScope { tensor: record.clone(), scope: None };
        if let [Value::Handle(h)] = send(&mut stream, frame(&Packet::Syscall(alloc)))[..] {
            record.data = h;
        }
        tensors.push(record);
    }
    let data: Vec<u8> = [1f32, -2., 3., -4.].iter().flat_map(|v| v.to_le_bytes()).collect();
    for t in &tensors[..2] {
        let copy = Packet::CopyToRemote { target: t.clone(), data: data.as_slice().into() };
        send(&mut stream, frame(&copy));
    }
    let t = |i: usize| Value::Tensor(tensors[i].clone());
    let plan = r#"{"inputs": ["x", "w", "y"], "nodes": [{"op": "matmul", "inputs": ["x", "w"], "output": "h"}, {"op": "relu", "inputs": ["h"], "output": "y"}]}"#;
    let calls: Vec<(&str, Vec<Value>)> = vec![
        ("tensor_rpc.add", vec![t(0), t(1), t(2)]),
        ("tensor_rpc.matmul", vec![t(0), t(1), t(2)]),
        ("tensor_rpc.relu", vec![t(0), t(2)]),
        ("tensor_rpc.softmax", vec![t(0), t(2)]),
        ("tensor_rpc.graph_compute", vec![Value::Str(plan.into()), t(0), t(1), t(2)]),
        (
            "tensor_rpc.time",
            vec![
                Value::Str("tensor_rpc.add".into()),
                Value::Int(2),
                Value::Int(2),
                t(0),
                t(1),
                t(2),
            ],
        ),
        ("tensor_rpc.stats", vec![]),
    ];
    for (name, args) in calls {
        let lookup = Packet::Syscall(Syscall::GetGlobalFunc { name: name.into() });
        let [Value::Handle(function)] = send(&mut stream, frame(&lookup))[..] else {
            panic!("no function {name}")
        };
        let reply = send(&mut stream, frame(&Packet::CallFunc { function, args }));
        assert!(!reply.is_empty(), "{name} raised an Exception");
    }
    send(&mut stream, frame(&Packet::CopyFromRemote { source: tensors[2].clone(), nbytes: 16 }));
    for t in &tensors {
        let free = Syscall::DevFreeData { device: t.device, data: t.data };
        send(&mut stream, frame(&Packet::Syscall(free)));
    }
    stream.extend_from_slice(&frame(&Packet::Shutdown));
    stream
}
