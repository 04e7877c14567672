//! Scale-out through TVM 0.27's own tracker: tensor-rpc servers register with
//! `python -m tvm.exec.rpc_tracker` as TVM's servers do, and TVM's client finds them there.

mod support;

use std::time::{Duration, Instant};

use support::servers::{
    ServerProcess, run_python, signal, start_ours, start_tvm_server, start_tvm_tracker,
    start_tvm_tracker_on, wait_for,
};
use tensor_rpc::client::{Client, TrackerClient};

fn tracker_addr(tracker: &ServerProcess) -> String {
    format!("127.0.0.1:{}", tracker.port)
}

/// A tensor-rpc server registered with `tracker` under `key`.
fn ours_with_tracker(tracker: &ServerProcess, key: &str) -> ServerProcess {
    start_ours(&["--tracker", &tracker_addr(tracker), "--key", key])
}

/// Servers the tracker lists under `key`, or `None` if it cannot be asked.
fn registered(tracker: &ServerProcess, key: &str) -> Option<usize> {
    let mut client = TrackerClient::connect(tracker_addr(tracker)).ok()?;
    Some(client.summary().ok()?.servers_with_key(key))
}

fn wait_registered(tracker: &ServerProcess, key: &str, count: usize, limit: Duration) -> bool {
    wait_for(limit, || registered(tracker, key) == Some(count))
}

/// Sessions our server logged as ended.
fn sessions_served(server: &ServerProcess) -> usize {
    server.log_text().lines().filter(|l| l.contains("session of ")).count()
}

#[test]
fn tvm_client_gets_a_session_30_times_in_a_row_from_all_three_servers() {
    let tracker = start_tvm_tracker();
    let servers: Vec<_> = (0..3).map(|_| ours_with_tracker(&tracker, "pool3")).collect();
    assert!(wait_registered(&tracker, "pool3", 3, Duration::from_secs(20)));
    let out = run_python(
        "tracker_scenarios.py",
        &["requests".into(), tracker.port.to_string(), "pool3".into(), "30".into()],
    );
    assert_eq!(out.trim(), "ok 30");
    assert!(wait_for(Duration::from_secs(5), || {
        servers.iter().map(sessions_served).sum::<usize>() == 30
    }));
    for server in &servers {
        assert!(sessions_served(server) > 0, "a server got no session:\n{}", server.log_text());
    }
}

#[test]
fn servers_are_back_in_the_summary_within_10s_of_a_tracker_restart() {
    let tracker = start_tvm_tracker();
    let port = tracker.port;
    let _servers: Vec<_> = (0..3).map(|_| ours_with_tracker(&tracker, "again")).collect();
    assert!(wait_registered(&tracker, "again", 3, Duration::from_secs(20)));
    drop(tracker); // kills it
    std::thread::sleep(Duration::from_secs(1));
    let tracker = start_tvm_tracker_on(port);
    let restarted = Instant::now();
    assert!(
        wait_registered(&tracker, "again", 3, Duration::from_secs(10)),
        "servers listed after 10 s: {:?}",
        registered(&tracker, "again")
    );
    eprintln!("re-registered {:?} after the tracker restarted", restarted.elapsed());
    let client = Client::via_tracker(tracker_addr(&tracker), "again", 1).unwrap();
    let echo = client.function("testing.echo").unwrap();
    assert_eq!(echo.call(&[5i64.into()]).unwrap(), tensor_rpc::endpoint::tvm::codec::Value::Int(5));
}

#[test]
fn mixed_pool_of_a_tvm_server_and_ours_under_one_key_both_serve() {
    let tracker = start_tvm_tracker();
    let addr = tracker_addr(&tracker);
    let tvm = start_tvm_server(&["--tracker", &addr, "--key", "mixed"]);
    let ours = ours_with_tracker(&tracker, "mixed");
    assert!(wait_registered(&tracker, "mixed", 2, Duration::from_secs(30)));
    let out = run_python(
        "tracker_scenarios.py",
        &["requests".into(), tracker.port.to_string(), "mixed".into(), "6".into()],
    );
    assert_eq!(out.trim(), "ok 6");
    let tvm_sessions = tvm.log_text().matches("connected from").count();
    assert!(tvm_sessions > 0, "TVM's server got no session:\n{}", tvm.log_text());
    assert!(wait_for(Duration::from_secs(5), || sessions_served(&ours) > 0), "ours got none");
}

#[test]
fn sigterm_exits_0_and_the_tracker_no_longer_lists_the_server() {
    let tracker = start_tvm_tracker();
    let mut server = ours_with_tracker(&tracker, "term");
    assert!(wait_registered(&tracker, "term", 1, Duration::from_secs(20)));
    // A session is open when the signal comes; it is ended, not left hanging.
    let client = Client::via_tracker(tracker_addr(&tracker), "term", 1).unwrap();
    signal(&server, "TERM");
    let mut status = None;
    assert!(wait_for(Duration::from_secs(10), || {
        status = server.child().try_wait().unwrap();
        status.is_some()
    }));
    assert_eq!(status.unwrap().code(), Some(0), "{}", server.log_text());
    assert!(wait_registered(&tracker, "term", 0, Duration::from_secs(5)));
    assert!(client.function("testing.echo").is_err(), "the session was ended");
    let log = server.log_text();
    assert!(log.contains("unregistered from"), "{log}");
    assert!(log.contains("session of") && log.contains("server shutting down"), "{log}");
}

#[test]
fn a_match_key_taken_but_never_used_is_replaced_by_a_fresh_one() {
    let tracker = start_tvm_tracker();
    let _server = ours_with_tracker(&tracker, "unused");
    assert!(wait_registered(&tracker, "unused", 1, Duration::from_secs(20)));
    let free = || {
        let mut client = TrackerClient::connect(tracker_addr(&tracker)).ok()?;
        Some(client.summary().ok()?.queues.get("unused").map_or(0, |q| q.free))
    };
    assert!(wait_for(Duration::from_secs(5), || free() == Some(1)));
    let mut client = TrackerClient::connect(tracker_addr(&tracker)).unwrap();
    let taken = client.request("unused", 1, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(free(), Some(0));
    // TVM's server gives up on a taken key after about 8 s of polls; so does ours.
    assert!(wait_for(Duration::from_secs(15), || free() == Some(1)), "no fresh key offered");
    let stale = Client::connect(("127.0.0.1", taken.port), &taken.match_key);
    assert!(stale.is_err(), "the replaced key is refused");
    let fresh = Client::via_tracker(tracker_addr(&tracker), "unused", 1).unwrap();
    assert!(fresh.function("testing.echo").is_ok());
}

#[test]
fn custom_addr_is_the_address_the_tracker_lists_and_hands_out() {
    let tracker = start_tvm_tracker();
    let server = start_ours(&[
        "--tracker",
        &tracker_addr(&tracker),
        "--key",
        "custom",
        "--custom-addr",
        "node7.example",
    ]);
    assert!(wait_registered(&tracker, "custom", 1, Duration::from_secs(20)));
    let summary = TrackerClient::connect(tracker_addr(&tracker)).unwrap().summary().unwrap();
    let listed = summary.servers.iter().find(|s| s.key == "server:custom").unwrap();
    assert_eq!(listed.host.as_deref(), Some("node7.example"));
    assert_eq!(listed.port, Some(server.port));
    let mut client = TrackerClient::connect(tracker_addr(&tracker)).unwrap();
    let assignment = client.request("custom", 1, Some(Duration::from_secs(5))).unwrap();
    assert_eq!((assignment.host.as_str(), assignment.port), ("node7.example", server.port));
    assert!(assignment.match_key.starts_with("custom:"), "{}", assignment.match_key);
}

/// Free servers of `key` the tracker lists, or `None` if it cannot be asked.
fn free_servers(tracker: &ServerProcess, key: &str) -> Option<u64> {
    let mut client = TrackerClient::connect(tracker_addr(tracker)).ok()?;
    Some(client.summary().ok()?.queues.get(key).map_or(0, |q| q.free))
}

#[test]
fn while_a_client_holds_a_tracker_session_the_tracker_lists_the_server_as_busy() {
    let tracker = start_tvm_tracker();
    let _server = ours_with_tracker(&tracker, "busy");
    assert!(wait_for(Duration::from_secs(20), || free_servers(&tracker, "busy") == Some(1)));
    let client = Client::via_tracker(tracker_addr(&tracker), "busy", 1).unwrap();
    assert!(client.function("testing.echo").is_ok());
    assert_eq!(free_servers(&tracker, "busy"), Some(0));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(free_servers(&tracker, "busy"), Some(0), "no key offered during the session");
    drop(client);
    assert!(
        wait_for(Duration::from_secs(5), || free_servers(&tracker, "busy") == Some(1)),
        "a fresh key once the session has ended"
    );
}

#[test]
fn with_tracker_sessions_2_a_second_client_is_sent_while_the_first_holds_its_session() {
    let tracker = start_tvm_tracker();
    let _server = start_ours(&[
        "--tracker",
        &tracker_addr(&tracker),
        "--key",
        "two",
        "--tracker-sessions",
        "2",
    ]);
    assert!(wait_for(Duration::from_secs(20), || free_servers(&tracker, "two") == Some(1)));
    let first = Client::via_tracker(tracker_addr(&tracker), "two", 1).unwrap();
    assert!(wait_for(Duration::from_secs(5), || free_servers(&tracker, "two") == Some(1)));
    let second = Client::via_tracker(tracker_addr(&tracker), "two", 1).unwrap();
    assert!(second.function("testing.echo").is_ok());
    assert_eq!(free_servers(&tracker, "two"), Some(0), "two sessions: the limit");
    assert!(first.function("testing.echo").is_ok());
}
