//! The `tensor-rpc` command line: help a TVM user reads at a glance, and the client
//! commands `call`, `info` and `tracker-status`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::servers::{signal, start_ours, start_tvm_tracker, wait_for};

fn tensor_rpc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensor-rpc")).args(args).output().expect("run tensor-rpc")
}

fn stdout_of(args: &[&str]) -> String {
    let out = tensor_rpc(args);
    assert!(
        out.status.success(),
        "tensor-rpc {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_names_the_tvm_commands_each_subcommand_replaces() {
    let help = stdout_of(&["--help"]);
    for needle in ["tvm.exec.rpc_server", "server", "call", "info", "tracker-status", "--log-level"]
    {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let server = stdout_of(&["server", "--help"]);
    for flag in [
        "--tracker",
        "--key",
        "--custom-addr",
        "--max-packet",
        "--max-sessions",
        "--memory-limit",
        "--handshake-timeout",
        "--idle-timeout",
        "--workers",
        "--busy-poll-us",
        "--gemm-backend",
    ] {
        assert!(server.contains(flag), "server --help lacks {flag}:\n{server}");
    }
}

#[test]
fn call_prints_what_the_function_returns() {
    let server = start_ours(&[]);
    let addr = server.addr();
    assert_eq!(stdout_of(&["call", "--addr", &addr, "testing.echo", "hello"]), "hello\n");
    assert_eq!(stdout_of(&["call", "--addr", &addr, "testing.echo", "42"]), "42\n");
    let stats = stdout_of(&["call", "--addr", &addr, "tensor_rpc.stats"]);
    assert!(stats.starts_with("{\"sessions\":1"), "{stats}");
}

#[test]
fn call_of_a_missing_function_fails_with_its_name() {
    let server = start_ours(&[]);
    let out = tensor_rpc(&["call", "--addr", &server.addr(), "no.such.function"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no.such.function"));
}

#[test]
fn info_prints_device_attributes_and_the_max_packet() {
    let server = start_ours(&["--max-packet", "1048576"]);
    let info = stdout_of(&["info", "--addr", &server.addr()]);
    assert!(info.contains("exist             1"), "{info}");
    assert!(info.contains("max packet        1048576"), "{info}");
    assert!(info.contains("processors"), "{info}");
}

#[test]
fn tracker_status_lists_registered_servers_and_call_goes_through_the_tracker() {
    let tracker = start_tvm_tracker();
    let addr = format!("127.0.0.1:{}", tracker.port);
    let server = start_ours(&["--tracker", &addr, "--key", "cli"]);
    let listed = wait_for(Duration::from_secs(20), || {
        stdout_of(&["tracker-status", "--tracker", &addr]).contains("server:cli")
    });
    assert!(listed, "{}", server.log_text());
    let status = stdout_of(&["tracker-status", "--tracker", &addr]);
    assert!(status.contains(&format!("127.0.0.1:{}", server.port)), "{status}");
    assert!(
        status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cli", "1", "1", "0"]),
        "{status}"
    );
    let echoed = stdout_of(&["call", "--tracker", &addr, "--key", "cli", "testing.echo", "via"]);
    assert_eq!(echoed, "via\n");
}

#[test]
fn unknown_gemm_backend_is_refused_with_the_choices() {
    let out = tensor_rpc(&["server", "--port", "0", "--gemm-backend", "blas"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for choice in ["blis", "gemm-crate", "matrixmultiply"] {
        assert!(err.contains(choice), "{choice} missing from: {err}");
    }
}

#[test]
#[cfg(feature = "gemm-crate")]
fn gemm_backend_flag_selects_gemm_crate_which_computes_a_matmul() {
    use tensor_rpc::client::{Client, RemoteTensor};
    let server = start_ours(&["--gemm-backend", "gemm-crate"]);
    assert!(server.log_text().contains("gemm backend gemm-crate"), "{}", server.log_text());
    let client = Client::connect(server.addr(), "").unwrap();
    let dev = client.cpu(0);
    let a = RemoteTensor::from_slice(&dev, &[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let c = RemoteTensor::empty(&dev, &[2, 2], a.dtype()).unwrap();
    client
        .function("tensor_rpc.matmul")
        .unwrap()
        .call(&[(&a).into(), (&a).into(), (&c).into()])
        .unwrap();
    assert_eq!(c.to_vec::<f32>().unwrap(), [7.0, 10.0, 15.0, 22.0]);
}

#[test]
fn server_without_busy_poll_serves_calls() {
    let server = start_ours(&["--busy-poll-us", "0"]);
    assert!(server.log_text().contains("busy-poll 0 us"), "{}", server.log_text());
    assert_eq!(stdout_of(&["call", "--addr", &server.addr(), "testing.echo", "7"]), "7\n");
}

#[test]
fn sigint_stops_the_server_with_exit_code_0() {
    let mut server = start_ours(&[]);
    let client = tensor_rpc::client::Client::connect(server.addr(), "").unwrap();
    signal(&server, "INT");
    let mut status = None;
    assert!(wait_for(Duration::from_secs(10), || {
        status = server.child().try_wait().unwrap();
        status.is_some()
    }));
    assert_eq!(status.unwrap().code(), Some(0), "{}", server.log_text());
    assert!(client.function("testing.echo").is_err(), "its session was ended");
}

#[test]
fn server_keeps_serving_and_stops_on_sigterm_after_its_log_reader_has_gone() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensor-rpc"))
        .args(["server", "--host", "127.0.0.1", "--port", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on ") {
        line.clear();
        assert_ne!(log.read_line(&mut line).unwrap(), 0, "the server ended before listening");
    }
    let addr = line.rsplit("listening on ").next().unwrap().trim().to_owned();
    drop(log); // nobody reads its stderr any more: its log writes now fail
    // Connections and their ends are logged: the writes fail, the serving goes on.
    for _ in 0..3 {
        assert_eq!(stdout_of(&["call", "--addr", &addr, "testing.echo", "7"]), "7\n");
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(status.unwrap().success());
    let mut exit = None;
    let stopped = wait_for(Duration::from_secs(10), || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    if !stopped {
        child.kill().unwrap();
    }
    assert!(stopped, "the server ignored SIGTERM once its log could not be written");
    assert_eq!(exit.unwrap().code(), Some(0));
}
