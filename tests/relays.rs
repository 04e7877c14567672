//! Bounds on `rpc.Connect` relays: a client cannot make servers relay to each other without
//! end, relay slots come back when relayed sessions end, and the threads that carried relayed
//! requests do not outlive their idle time.

mod support;

use std::time::{Duration, Instant};

use support::raw::InProcessServer;
use tensor_rpc::client::{ChannelOptions, Client, ClientError};
use tensor_rpc::endpoint::tvm::codec::Value;
use tensor_rpc::server::RelayLimits;

fn relay_to(port: u16) -> Vec<Value> {
    vec![
        Value::Str("rpc.Connect".into()),
        Value::Str("127.0.0.1".into()),
        Value::Int(i64::from(port)),
        Value::Str(String::new()),
        Value::Bool(false),
    ]
}

fn connect_through(port: u16, constructor: Vec<Value>) -> Result<Client, ClientError> {
    let options = ChannelOptions { constructor, ..ChannelOptions::default() };
    Client::connect_with(("127.0.0.1", port), options)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Threads of this process named as our network threads.
fn network_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tensor-rpc-netw"))
        .count()
}

#[test]
fn relay_loop_between_two_servers_ends_at_the_relay_limit() {
    let (limits_a, limits_b) = (RelayLimits::new(2), RelayLimits::new(2));
    let (la, lb) = (limits_a.clone(), limits_b.clone());
    let a = InProcessServer::start(move |c| c.connection.relay = la);
    let b = InProcessServer::start(move |c| c.connection.relay = lb);
    // A -> B -> A -> B -> A -> B: each server is asked for three relays, one more than it has.
    let mut chain = Vec::new();
    for hop in 0..6 {
        chain.extend(relay_to(if hop % 2 == 0 { b.addr.port() } else { a.addr.port() }));
    }
    let Err(ClientError::Remote(message)) = connect_through(a.addr.port(), chain) else {
        panic!("the endless relay was set up")
    };
    assert!(message.contains("2 relay sessions are open, the limit of this server"), "{message}");
    wait_until("every relay slot is released", || {
        limits_a.open_sessions() == 0 && limits_b.open_sessions() == 0
    });
}

#[test]
fn relay_slots_are_released_when_relayed_sessions_end() {
    let limits = RelayLimits::new(1);
    let relay_limits = limits.clone();
    let relay = InProcessServer::start(move |c| c.connection.relay = relay_limits);
    let next = InProcessServer::start(|_| {});
    let first = connect_through(relay.addr.port(), relay_to(next.addr.port())).unwrap();
    let echo = first.function("testing.echo").unwrap();
    assert_eq!(echo.call(&[tensor_rpc::client::Arg::Value(Value::Int(5))]).unwrap(), Value::Int(5));
    let Err(ClientError::Remote(message)) =
        connect_through(relay.addr.port(), relay_to(next.addr.port()))
    else {
        panic!("a second relay beyond the limit of one was set up")
    };
    assert!(message.contains("1 relay sessions are open"), "{message}");
    drop(echo);
    drop(first);
    wait_until("the relay slot is released", || limits.open_sessions() == 0);
    assert!(connect_through(relay.addr.port(), relay_to(next.addr.port())).is_ok());
}

#[test]
fn idle_network_threads_exit_after_relayed_sessions_end() {
    let relay = InProcessServer::start(|c| c.network_thread_idle = Duration::from_millis(200));
    let next = InProcessServer::start(|_| {});
    let clients: Vec<Client> = (0..4)
        .map(|_| connect_through(relay.addr.port(), relay_to(next.addr.port())).unwrap())
        .collect();
    for client in &clients {
        let echo = client.function("testing.echo").unwrap();
        echo.call(&[tensor_rpc::client::Arg::Value(Value::Int(1))]).unwrap();
    }
    assert!(network_threads() >= 1, "relayed requests ran on network threads");
    drop(clients);
    wait_until("no network thread is left", || network_threads() == 0);
}
