//! llama.cpp's own client (the reference build of llama.cpp 0c1e570, installed by
//! scripts/llama-ref.sh) against our server and against ggml's own rpc-server, in the same
//! test: every layer of a random-weight llama model on the RPC server, greedy decoding, the
//! same token ids from both.

mod support;

use std::time::{Duration, Instant};

use support::llama::{Generation, greedy_ids, start_rpc_server};
use support::servers::start_ours;
use tensor_rpc::client::Client;
use tensor_rpc::endpoint::tvm::codec::Value;

/// The token ids through ggml's rpc-server and through ours, from the same client.
fn same_tokens_as_ggmls_server(generation: Generation) {
    let reference = start_rpc_server(1);
    let ours = start_ours(&["-t", "1"]);
    let theirs = greedy_ids(&generation, &[reference.addr()]);
    let mine = greedy_ids(&generation, &[ours.addr()]);
    assert_eq!(mine, theirs, "{generation:?}");
    assert!(
        theirs.windows(2).any(|w| w[0] != w[1]),
        "the model generates varied tokens, so the comparison means something: {theirs:?}"
    );
}

#[test]
fn f32_llama_without_flash_attention_generates_the_same_tokens_as_on_ggmls_rpc_server() {
    same_tokens_as_ggmls_server(Generation::new("tiny-f32"));
}

#[test]
fn f32_llama_with_flash_attention_generates_the_same_tokens_as_on_ggmls_rpc_server() {
    same_tokens_as_ggmls_server(Generation::new("tiny-f32").flash_attn(true));
}

#[test]
fn f16_llama_without_flash_attention_generates_the_same_tokens_as_on_ggmls_rpc_server() {
    same_tokens_as_ggmls_server(Generation::new("tiny-f16"));
}

#[test]
fn f16_llama_with_flash_attention_generates_the_same_tokens_as_on_ggmls_rpc_server() {
    same_tokens_as_ggmls_server(Generation::new("tiny-f16").flash_attn(true));
}

#[test]
fn one_server_serves_a_tvm_client_and_a_llama_cpp_client_at_the_same_time() {
    let server = start_ours(&[]);
    let generation = Generation { tokens: 48, ..Generation::new("tiny-f16") };
    let expected = greedy_ids(&generation, &[server.addr()]);
    let tvm = Client::connect(server.addr(), "").unwrap();
    let echo = tvm.function("testing.echo").unwrap();
    let (ids, echoes_during) = std::thread::scope(|scope| {
        let llama = scope.spawn(|| greedy_ids(&generation, &[server.addr()]));
        let mut echoes = 0u64;
        // Echo until the llama.cpp client is done; count only calls answered while it ran.
        let started = Instant::now();
        while !llama.is_finished() {
            let n = echoes as i64;
            assert_eq!(echo.call(&[n.into()]).unwrap(), Value::Int(n));
            echoes += 1;
            assert!(started.elapsed() < Duration::from_secs(300));
        }
        (llama.join().unwrap(), echoes)
    });
    assert_eq!(ids, expected, "the llama.cpp client's tokens are unchanged by the TVM client");
    assert!(echoes_during > 10, "TVM's calls were answered meanwhile: {echoes_during}");
    let log = server.log_text();
    assert!(log.contains("ggml-RPC session") && log.contains("connection from"), "{log}");
}
