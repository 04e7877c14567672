//! TVM's own RPC tests (tests/python/runtime/test_runtime_rpc.py of apache/tvm, adapted only
//! in how the server is started: tests/interop/tvm_rpc_tests.py) against TVM 0.27's server
//! and against ours, one after the other in the same run. A binary of its own, so that no
//! other test loads the machine while the tracker tests time their checks.

mod support;

use std::collections::BTreeMap;

use support::servers::run_python;

/// A test's outcome: passed, or failed in the named function of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pass,
    FailIn(String),
}

/// Reads the script's "PASS name" / "FAIL name in function: error" lines.
fn outcomes(output: &str) -> BTreeMap<String, Outcome> {
    output
        .lines()
        .filter_map(|line| {
            if let Some(name) = line.strip_prefix("PASS ") {
                return Some((name.to_owned(), Outcome::Pass));
            }
            let (head, _error) = line.strip_prefix("FAIL ")?.split_once(": ")?;
            let (name, function) = head.rsplit_once(" in ")?;
            Some((name.to_owned(), Outcome::FailIn(function.to_owned())))
        })
        .collect()
}

#[test]
fn every_tvm_rpc_test_that_passes_on_tvm_server_passes_on_ours() {
    let theirs = run_python("tvm_rpc_tests.py", &["tvm".into()]);
    let ours =
        run_python("tvm_rpc_tests.py", &["ours".into(), env!("CARGO_BIN_EXE_tensor-rpc").into()]);
    eprintln!("on TVM's server:\n{theirs}\non ours:\n{ours}");
    let (theirs, ours) = (outcomes(&theirs), outcomes(&ours));
    assert!(theirs.len() >= 14, "every test reported: {theirs:?}");
    assert_eq!(theirs.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>());
    for (name, outcome) in &theirs {
        match outcome {
            Outcome::Pass => assert_eq!(ours[name], Outcome::Pass, "{name}"),
            // A test TVM's server fails too may fail on ours, but no earlier: in the same
            // function (e.g. the minrpc part TVM's wheel cannot build).
            Outcome::FailIn(_) => {
                assert!(ours[name] == Outcome::Pass || ours[name] == *outcome, "{name}")
            }
        }
    }
}

#[test]
fn outcome_lines_are_read_with_the_function_a_test_failed_in() {
    let read = outcomes(
        "PASS test_rpc_echo\n\
         FAIL test_rpc_tracker_register[127.0.0.1:5555] in exist_address: AssertionError: x: y\n\
         other output\n",
    );
    assert_eq!(read["test_rpc_echo"], Outcome::Pass);
    let fail = &read["test_rpc_tracker_register[127.0.0.1:5555]"];
    assert_eq!(*fail, Outcome::FailIn("exist_address".into()));
    assert_eq!(read.len(), 2);
}
