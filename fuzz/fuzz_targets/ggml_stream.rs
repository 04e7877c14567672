//! Any bytes as what a ggml-RPC client sends after a valid HELLO: the whole server side
//! (endpoint, session, graph validation, kernels) answers or closes, never panics, and holds
//! no more than the bytes received and its limits allow. Seeds are llama.cpp sessions
//! (`cargo test --test ggml_traces -- --ignored` writes them).
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::ggml::codec::Request;
use tensor_rpc::server::{Connection, ConnectionClock, ConnectionConfig, GgmlConnection};
use tensor_rpc::session::SessionConfig;

fuzz_target!(|data: &[u8]| {
    static CONFIG: OnceLock<ConnectionConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| ConnectionConfig {
        session: SessionConfig { memory_limit: Some(16 << 20), ..SessionConfig::default() },
        ..ConnectionConfig::default()
    });
    let now = Instant::now();
    let mut conn =
        GgmlConnection::with_core(Default::default(), config, ConnectionClock::new(config.timeouts, now));
    let mut opening = Vec::new();
    Request::Hello { conn_caps: [0; 24] }.encode(&mut opening);
    conn.core_mut().receive(&opening);
    conn.process_inline(now);
    conn.core_mut().take_output();
    // Feed in uneven pieces so every state sees partial input.
    for chunk in data.chunks(61) {
        conn.core_mut().receive(chunk);
        conn.process_inline(now);
        conn.core_mut().take_output();
        // What is buffered stays within the read-ahead bound and the largest graph.
        assert!(conn.core().buffer_capacity() <= 24 << 20);
        if conn.is_finished() {
            return;
        }
    }
});
