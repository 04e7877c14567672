//! llama.cpp's test-backend-ops (`test -b RPC0`: every case computed on the RPC server and on
//! the client's own CPU backend, and compared) against ggml's rpc-server and against ours in
//! the same test: every case ggml's server passes, ours passes too. The ops and types are
//! those a llama model in f32 and f16 sends (GET_ROWS, RMS_NORM, MUL, ADD, MUL_MAT, ROPE
//! normal and neox, SOFT_MAX, CONT, CPY and SET_ROWS between f32 and f16, SWIGLU,
//! FLASH_ATTN_EXT with f16 K/V). Each test prints both servers' counts.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::llama::{start_rpc_server, test_backend_ops};
use support::servers::start_ours;

/// Runs `ops` (test-backend-ops filters, OP@PARAMS_REGEX) against both servers and checks
/// that ours passes every case ggml's does and fails none.
fn passes_what_ggmls_server_passes(ops: &[&str], timeout: Duration) {
    let reference = start_rpc_server(1);
    let ours = start_ours(&[]);
    let theirs = test_backend_ops(&reference.addr(), ops, timeout);
    let mine = test_backend_ops(&ours.addr(), ops, timeout);
    for (name, summary) in [("ggml rpc-server", &theirs), ("tensor-rpc", &mine)] {
        for run in summary["runs"].as_array().unwrap() {
            eprintln!(
                "{name:16} {:40} passed {:5} failed {:3} not supported {:4} in {} s",
                run["filter"].as_str().unwrap_or("all"),
                run["counts"]["passed"],
                run["counts"]["failed"],
                run["counts"]["not_supported"],
                run["seconds"],
            );
        }
    }
    let runs = |s: &Value| s["runs"].as_array().unwrap().clone();
    for (their, my) in runs(&theirs).iter().zip(runs(&mine).iter()) {
        let filter = their["filter"].as_str().unwrap_or("all");
        assert_eq!(their["exit_code"], 0, "ggml's rpc-server failed {filter}: {their}");
        assert!(their["counts"]["passed"].as_u64().unwrap() > 0, "{filter} ran no case");
        assert_eq!(my["exit_code"], 0, "{filter} on our server: {my}");
        assert_eq!(my["counts"]["failed"], 0, "{filter} on our server: {my}");
        assert_eq!(
            my["counts"]["passed"], their["counts"]["passed"],
            "{filter}: ours passed other than ggml's server did"
        );
    }
}

#[test]
fn rows_norms_and_elementwise_ops_pass_as_on_ggmls_rpc_server() {
    passes_what_ggmls_server_passes(
        &["GET_ROWS@type=f(32|16),", "RMS_NORM", "MUL", "ADD", "SWIGLU"],
        Duration::from_secs(900),
    );
}

#[test]
fn matrix_products_and_copies_pass_as_on_ggmls_rpc_server() {
    passes_what_ggmls_server_passes(
        &[
            "MUL_MAT@type_a=f(32|16),type_b=f32",
            "CONT",
            "CPY@type_src=f(32|16),type_dst=f(32|16)",
            "SET_ROWS@type_dst=f(32|16),",
        ],
        Duration::from_secs(900),
    );
}

#[test]
fn rope_and_softmax_pass_as_on_ggmls_rpc_server() {
    passes_what_ggmls_server_passes(&["ROPE@mode=(0|2),", "SOFT_MAX"], Duration::from_secs(900));
}

#[test]
fn flash_attention_with_f16_kv_passes_as_on_ggmls_rpc_server() {
    passes_what_ggmls_server_passes(
        &["FLASH_ATTN_EXT@type_K=f16,type_V=f16"],
        Duration::from_secs(1800),
    );
}
