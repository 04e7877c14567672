//! Any bytes as what a client sends: the server side (endpoint, handshake, sessions, builtins)
//! answers or closes, never panics, and never buffers more than its limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::{EndpointConfig};
use tensor_rpc::server::{ConnectionConfig, ServerConnection};
use tensor_rpc::session::SessionConfig;

fuzz_target!(|data: &[u8]| {
    let config = ConnectionConfig {
        endpoint: EndpointConfig { max_packet: 1 << 20, ..EndpointConfig::default() },
        session: SessionConfig { memory_limit: Some(16 << 20), ..SessionConfig::default() },
        ..ConnectionConfig::default()
    };
    let mut conn = ServerConnection::new(config);
    // Feed in uneven pieces so every state sees partial input.
    for chunk in data.chunks(7) {
        conn.endpoint().receive(chunk);
        if conn.process_inline().is_err() {
            return;
        }
        conn.endpoint().take_output();
    }
});
