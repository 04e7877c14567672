//! The event loop serves every connection: a connection speaking no protocol of ours is
//! closed without disturbing others, and a long plan is read and checked off the loop.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::raw::{RawConn, Reply};
use support::servers::start_ours;
use tensor_rpc::client::Client;
use tensor_rpc::endpoint::tvm::codec::{Packet, Value};
use tensor_rpc::session::UsageSnapshot;

#[test]
fn a_connection_whose_first_byte_is_no_protocol_is_closed_and_tvm_clients_are_still_served() {
    let server = start_ours(&[]);
    let tvm = Client::connect(server.addr(), "").unwrap();
    let echo = tvm.function("testing.echo").unwrap();

    let mut stranger = TcpStream::connect(server.addr()).unwrap();
    stranger.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stranger.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let closed = stranger.read_to_end(&mut rest).is_ok() || rest.is_empty();
    assert!(closed && rest.is_empty(), "the connection was answered: {rest:?}");

    assert_eq!(echo.call(&["still here".into()]).unwrap(), Value::Str("still here".into()));
    let fresh = Client::connect(server.addr(), "").unwrap();
    assert_eq!(
        fresh.function("testing.echo").unwrap().call(&[7i64.into()]).unwrap(),
        Value::Int(7)
    );
    let log = server.log_text();
    assert!(log.contains("first byte 0x47"), "the log names the byte:\n{log}");
}

/// The server's count of function calls.
fn calls(conn: &mut RawConn) -> u64 {
    match conn.call("tensor_rpc.stats", vec![]) {
        Reply::Packet(Packet::Return(values)) => match Packet::call_result(values) {
            Ok(Value::Str(json)) => UsageSnapshot::from_json(&json).unwrap().calls,
            other => panic!("stats returned {other:?}"),
        },
        other => panic!("stats failed: {other:?}"),
    }
}

#[test]
fn an_echo_is_answered_while_another_connections_16_mib_plan_is_read_on_a_worker() {
    let server = start_ours(&[]);
    let mut planner = RawConn::session(server.addr().parse().unwrap());
    let mut other = RawConn::session(server.addr().parse().unwrap());
    let graph = planner.function("tensor_rpc.graph_compute");
    // 16 MiB (the longest string a packet may carry) of valid JSON but for its end: reading
    // it takes every byte, then fails.
    let padding = (16 << 20) - r#"{"inputs": [], "nodes": []"#.len();
    let plan = format!("{{\"inputs\": [], \"nodes\": []{}", " ".repeat(padding));
    let before = calls(&mut other);
    let request = Packet::CallFunc { function: graph, args: vec![Value::Str(plan)] };
    let mut frame = Vec::new();
    request.encode_frame(&mut frame);
    planner.send(&frame);

    // Once the plan's call has started on a worker (the server counts it then), the loop
    // is free: the other connection's echo comes back while the plan is still being read.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut own = 1;
    while calls(&mut other) < before + own + 1 {
        own += 1;
        assert!(
            !planner.has_bytes_waiting(),
            "the plan was answered at once: {:?}",
            planner.reply()
        );
        assert!(Instant::now() < deadline, "the plan's call never started");
    }
    let started = Instant::now();
    assert_eq!(
        other.call("testing.echo", vec![Value::Int(5)]),
        Reply::Packet(Packet::call_return(Value::Int(5)))
    );
    let echoed = started.elapsed();
    assert!(!planner.has_bytes_waiting(), "the plan was answered before the echo");
    match planner.reply() {
        Reply::Packet(Packet::Exception(message)) => {
            assert!(message.contains("not valid JSON"), "{message}")
        }
        other => panic!("the plan was not refused: {other:?}"),
    }
    eprintln!(
        "echo answered in {echoed:?}; the plan in {:?} after its call started",
        started.elapsed()
    );
}
