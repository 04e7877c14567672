//! Any bytes as the opening of a connection, on either side. The first byte picks the side
//! and how the bytes are split into reads.
//! - Server (a `TvmConnection` whose key is "k"): the client's magic and key are accepted
//!   only when they are exactly right; anything else is refused with a status or closes the
//!   connection, and nothing is answered before the whole key has arrived.
//! - Client (a `ClientEndpoint`): the server's status and key either connect it or end it.
#![no_main]

use std::time::Instant;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::tvm::codec::handshake::{MAX_KEY_LEN, RPC_MAGIC};
use tensor_rpc::endpoint::tvm::{ClientEndpoint, ClientEvent, EndpointConfig};
use tensor_rpc::server::{Connection, ConnectionConfig, TvmConnection};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let chunk = usize::from(selector >> 1).max(1);
    if selector & 1 == 0 {
        server_side(bytes, chunk);
    } else {
        client_side(bytes, chunk);
    }
});

fn server_side(bytes: &[u8], chunk: usize) {
    static CONFIG: OnceLock<ConnectionConfig> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| ConnectionConfig { match_key: "k".into(), ..ConnectionConfig::default() });
    let mut conn = TvmConnection::new(config.clone(), Instant::now());
    let mut fed = 0;
    let mut output = Vec::new();
    for piece in bytes.chunks(chunk) {
        conn.endpoint().receive(piece);
        fed += piece.len();
        let framing = conn.process_inline(Instant::now());
        output.extend(conn.endpoint().take_output());
        let complete_hello = hello_len(&bytes[..fed]);
        if output.is_empty() {
            // A complete hello is answered, unless it was refused as garbage.
            assert!(complete_hello.is_none() || framing.is_err());
        } else {
            // Nothing is said before the whole key has arrived.
            assert!(complete_hello.is_some());
        }
        if framing.is_err() {
            assert!(conn.is_finished(), "a framing error ends the connection");
            return;
        }
        if conn.is_finished() {
            return;
        }
    }
    if output.len() >= 4 && i32::from_le_bytes(output[..4].try_into().unwrap()) == RPC_MAGIC {
        // Accepted: the key was complete, UTF-8, and its first word asks for this server.
        let len = hello_len(bytes).expect("accepted only a complete hello");
        assert_eq!(i32::from_le_bytes(bytes[..4].try_into().unwrap()), RPC_MAGIC);
        let key = std::str::from_utf8(&bytes[8..len]).expect("accepted only a UTF-8 key");
        assert_eq!(key.split_whitespace().next(), Some("client:k"));
    }
}

/// The length of the client hello at the start of `bytes`, once all of it is there.
fn hello_len(bytes: &[u8]) -> Option<usize> {
    let len = i32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let len = usize::try_from(len).ok().filter(|&l| l <= MAX_KEY_LEN)?;
    (bytes.len() >= 8 + len).then_some(8 + len)
}

fn client_side(bytes: &[u8], chunk: usize) {
    let mut endpoint = ClientEndpoint::client("client:k", EndpointConfig::default());
    endpoint.take_output();
    for piece in bytes.chunks(chunk) {
        endpoint.receive(piece);
        loop {
            match endpoint.poll_event() {
                Ok(Some(ClientEvent::Connected { server_key })) => {
                    assert_eq!(i32::from_le_bytes(bytes[..4].try_into().unwrap()), RPC_MAGIC);
                    assert!(server_key.len() <= MAX_KEY_LEN);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    assert!(endpoint.is_finished());
                    return;
                }
            }
        }
    }
}
