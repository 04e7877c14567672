//! Recorded byte streams (the format of `rpc_record.py`): records of a direction byte
//! (`C` client->server, `S` server->client), a `u32` length and the bytes.

use std::path::Path;

pub struct Trace {
    pub client: Vec<u8>,
    pub server: Vec<u8>,
}

impl Trace {
    pub fn load(name: &str) -> Trace {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces").join(name);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Trace::parse(&data)
    }

    /// The two streams of `data`, a sequence of records.
    pub fn parse(data: &[u8]) -> Trace {
        let mut trace = Trace { client: Vec::new(), server: Vec::new() };
        let mut i = 0;
        while i < data.len() {
            let len = u32::from_le_bytes(data[i + 1..i + 5].try_into().unwrap()) as usize;
            let payload = &data[i + 5..i + 5 + len];
            match data[i] {
                b'C' => trace.client.extend_from_slice(payload),
                b'S' => trace.server.extend_from_slice(payload),
                other => panic!("bad direction byte {other}"),
            }
            i += 5 + len;
        }
        trace
    }
}

/// Splits a client stream into its handshake (magic, key length, key) and packet frames.
pub fn split_client(stream: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let key_len = i32::from_le_bytes(stream[4..8].try_into().unwrap()) as usize;
    let (handshake, rest) = stream.split_at(8 + key_len);
    (handshake.to_vec(), split_frames(rest))
}

/// Splits a server stream into its handshake reply (status, key length, key) and frames.
pub fn split_server(stream: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    split_client(stream)
}

/// Splits `u64 length` + body frames; a trailing partial frame is kept as is.
pub fn split_frames(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while stream.len() >= 8 {
        let len = u64::from_le_bytes(stream[..8].try_into().unwrap()) as usize;
        let end = (8 + len).min(stream.len());
        frames.push(stream[..end].to_vec());
        stream = &stream[end..];
    }
    assert!(stream.is_empty(), "stream ends inside a length prefix");
    frames
}
