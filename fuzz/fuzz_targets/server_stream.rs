//! Any bytes as what a client sends: the server side (endpoint, handshake, sessions, builtins)
//! answers or closes, never panics, and never buffers more than its limits allow.
#![no_main]

use std::time::Instant;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::EndpointConfig;
use tensor_rpc::server::{Connection, ConnectionConfig, RelayLimits, TvmConnection};
use tensor_rpc::session::SessionConfig;

const MAX_PACKET: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    static CONFIG: OnceLock<ConnectionConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| ConnectionConfig {
        endpoint: EndpointConfig { max_packet: MAX_PACKET, ..EndpointConfig::default() },
        session: SessionConfig { memory_limit: Some(16 << 20), ..SessionConfig::default() },
        // No relays: rpc.Connect would reach out to whatever host the input names.
        relay: RelayLimits::new(0),
        ..ConnectionConfig::default()
    });
    let mut conn = TvmConnection::new(config.clone(), Instant::now());
    // Feed in uneven pieces so every state sees partial input.
    for chunk in data.chunks(7) {
        conn.endpoint().receive(chunk);
        if conn.process_inline(Instant::now()).is_err() {
            assert!(conn.is_finished() || conn.core().wants_write());
            return;
        }
        // Input buffered beyond the packet in progress stays within the read-ahead bound.
        assert!(conn.core().buffer_capacity() as u64 <= 4 * MAX_PACKET + (4 << 20));
        conn.endpoint().take_output();
    }
});
