//! Interop: TVM 0.27's own Python client runs the same scenarios against TVM's server and
//! against ours, and must print the same thing. The TVM venv is created by
//! scripts/tvm-venv.sh on first use.

mod support;

use support::servers::{ServerProcess, run_python, start_ours, start_tvm_server};

/// Runs `script scenario` against both servers and returns what both printed.
fn same_output_from_both_servers(script: &str, scenario: &str) -> String {
    let tvm = start_tvm_server(&[]);
    let ours = start_ours(&[]);
    let theirs = run_python(script, &[tvm.port.to_string(), scenario.into()]);
    let mine = run_python(script, &[ours.port.to_string(), scenario.into()]);
    assert_eq!(mine, theirs, "{script} {scenario}: our server vs TVM's");
    assert!(!mine.trim().is_empty(), "{script} {scenario} printed nothing");
    mine
}

#[test]
fn tvm_echo_scenario_prints_the_same_as_against_tvm_server() {
    let out = same_output_from_both_servers("tvm_scenarios.py", "echo");
    assert!(out.contains("'hello' -> 'hello'"), "{out}");
}

#[test]
fn tvm_tensor_scenario_prints_the_same_as_against_tvm_server() {
    let out = same_output_from_both_servers("tvm_scenarios.py", "tensor");
    assert!(out.contains("[ 1 -2  3 -4  5]"), "{out}");
}

#[test]
fn tvm_error_scenario_prints_the_same_as_against_tvm_server() {
    let out = same_output_from_both_servers("tvm_scenarios.py", "error");
    assert!(out.contains("missing: AttributeError"), "{out}");
}

#[test]
fn tvm_files_scenario_prints_the_same_as_against_tvm_server() {
    let out = same_output_from_both_servers("tvm_scenarios.py", "files");
    assert!(out.contains("b'hello world'"), "{out}");
}

#[test]
fn tvm_objects_scenario_prints_the_same_as_against_tvm_server() {
    let out = same_output_from_both_servers("tvm_scenarios.py", "objects");
    assert!(out.contains("shape 3 2\nechoed 2\n"), "{out}");
    assert!(out.contains("closure 22"), "{out}");
}

#[test]
fn every_dtype_from_int8_to_float64_and_float16_round_trips() {
    let out = same_output_from_both_servers("scenarios.py", "dtypes");
    assert_eq!(out.lines().filter(|l| l.contains(" True ")).count(), 11, "{out}");
}

#[test]
fn zero_d_empty_and_five_d_tensors_round_trip() {
    let out = same_output_from_both_servers("scenarios.py", "shapes");
    assert_eq!(out.lines().filter(|l| l.contains(" True ")).count(), 6, "{out}");
}

#[test]
fn a_64_mib_tensor_round_trips_through_copies_split_to_our_packet_limit() {
    let out = same_output_from_both_servers("scenarios.py", "large");
    assert_eq!(out.trim(), "67108864 True True");
}

#[test]
fn copyto_between_remote_tensors_and_back_to_local() {
    let out = same_output_from_both_servers("scenarios.py", "copyto");
    assert_eq!(out.trim(), "276.0 True\nTrue");
}

#[test]
fn device_attributes_match_tvm_server() {
    same_output_from_both_servers("scenarios.py", "attributes");
}

/// TVM's server crashes on this call (PROTOCOL.md section 7), so only ours is checked.
#[test]
fn echo_without_argument_raises_and_the_connection_survives() {
    let ours = start_ours(&[]);
    let out = run_python("scenarios.py", &[ours.port.to_string(), "echo_without_argument".into()]);
    assert_eq!(
        out,
        "error: RPCError testing.echo: expects at least one argument, got none\n\
         then: 42 still here\n"
    );
}

const TVM_SCENARIOS: [&str; 5] = ["echo", "tensor", "error", "files", "objects"];

/// TVM's scenarios through `relay` to `last`, each printing what it prints directly against
/// `direct`.
fn scenarios_through_relay(relay: &ServerProcess, last: &ServerProcess, direct: &ServerProcess) {
    for scenario in TVM_SCENARIOS {
        let expected = run_python("tvm_scenarios.py", &[direct.port.to_string(), scenario.into()]);
        let relayed = run_python(
            "via_relay.py",
            &[
                last.port.to_string(),
                "tvm_scenarios.py".into(),
                relay.port.to_string(),
                scenario.into(),
            ],
        );
        assert_eq!(relayed, expected, "{scenario} through {} to {}", relay.name, last.name);
    }
}

#[test]
fn tvm_scenarios_pass_through_our_relay_to_tvm_server() {
    let tvm = start_tvm_server(&[]);
    let relay = start_ours(&[]);
    scenarios_through_relay(&relay, &tvm, &tvm);
}

#[test]
fn tvm_scenarios_pass_through_our_relay_to_our_server() {
    let last = start_ours(&[]);
    let relay = start_ours(&[]);
    let tvm = start_tvm_server(&[]);
    scenarios_through_relay(&relay, &last, &tvm);
}

#[test]
fn tvm_scenarios_pass_through_tvm_relay_to_our_server() {
    let last = start_ours(&[]);
    let relay = start_tvm_server(&[]);
    let tvm = start_tvm_server(&[]);
    scenarios_through_relay(&relay, &last, &tvm);
}

#[test]
fn a_64_mib_tensor_passes_through_our_relay_to_tvm_server() {
    let tvm = start_tvm_server(&[]);
    let relay = start_ours(&[]);
    let out = run_python(
        "via_relay.py",
        &[tvm.port.to_string(), "scenarios.py".into(), relay.port.to_string(), "large".into()],
    );
    assert_eq!(out.trim(), "67108864 True True");
}

#[test]
fn relay_to_an_unreachable_next_hop_fails_the_connect_with_a_clear_error() {
    let relay = start_ours(&[]);
    let dead_port = support::servers::free_port();
    let out = run_python("relay_errors.py", &[relay.port.to_string(), dead_port.to_string()]);
    assert!(out.contains(&format!("rpc.Connect to 127.0.0.1:{dead_port} failed")), "{out}");
}

/// Every tensor_rpc kernel through TVM's own client, against numpy on the same inputs.
#[test]
fn compute_functions_match_numpy_through_tvm_client() {
    let ours = start_ours(&[]);
    let out = run_python("compute.py", &[ours.port.to_string()]);
    let mut checked = 0;
    for line in out.lines() {
        if let Some((name, message)) = line.split_once(" error: ") {
            let expected = match name {
                "matmul inner mismatch" => "inner dimensions 4 and 3 differ",
                "add wrong out dtype" => "out is int32 [3, 4] but the result is float32 [3, 4]",
                "relu out aliases x" => "out (shape [3, 4]) aliases x (shape [3, 4])",
                "exp of int32" => "x has dtype int32, which exp does not support",
                "sum axis out of range" => "axis 5 is out of range",
                other => panic!("unexpected refusal {other}: {message}"),
            };
            assert!(message.contains(expected), "{line}");
        } else if line.starts_with("time repeats") {
            assert_eq!(line, "time repeats 3 True");
        } else {
            let (name, error) = line.rsplit_once(' ').unwrap();
            let error: f64 = error.parse().unwrap_or_else(|_| panic!("{line}"));
            let tolerance = if name.contains("float16") { 1e-3 } else { 1e-5 };
            assert!(error <= tolerance, "{name}: relative error {error} above {tolerance}");
        }
        checked += 1;
    }
    assert_eq!(checked, 63, "every check ran:\n{out}");
}
