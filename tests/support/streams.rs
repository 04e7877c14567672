//! Client byte streams for a server of ours: the recorded TVM sessions with TVM's handles
//! replaced by the ones our server issues, and helpers to build frames by hand.

use std::collections::HashMap;

use tensor_rpc::endpoint::codec::handshake::encode_client_hello;
use tensor_rpc::endpoint::codec::{DecodeLimits, Packet, Value};
use tensor_rpc::server::{ConnectionConfig, ServerConnection};

use super::trace::{Trace, split_client, split_frames};

/// Recorded sessions served by a local session (the multi-hop one needs a next hop).
pub const LOCAL_TRACES: [&str; 5] = [
    "tvm0.27-echo.trace",
    "tvm0.27-tensor.trace",
    "tvm0.27-missing-function.trace",
    "tvm0.27-upload.trace",
    "tvm0.27-bad-call-then-attrs.trace",
];

/// `u64 length` + the encoded packet.
pub fn frame(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode_frame(&mut out);
    out
}

/// `u64 length` + raw body bytes.
pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The client's magic and key.
pub fn hello(key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_hello(key, &mut out);
    out
}

/// Replaces every 8-byte little-endian occurrence of a handle in `map` with its value.
pub fn rewrite_handles(frame: &[u8], map: &HashMap<u64, u64>) -> Vec<u8> {
    let mut out = frame.to_vec();
    for (&from, &to) in map {
        let (from, to) = (from.to_le_bytes(), to.to_le_bytes());
        let mut i = 0;
        while i + 8 <= out.len() {
            if out[i..i + 8] == from {
                out[i..i + 8].copy_from_slice(&to);
                i += 8;
            } else {
                i += 1;
            }
        }
    }
    out
}

fn reply_handles(frame: &[u8]) -> Vec<u64> {
    match Packet::decode(&frame[8..], &DecodeLimits::default()) {
        Ok(Packet::Return(values)) => values
            .into_iter()
            .filter_map(|v| if let Value::Handle(h) = v { Some(h) } else { None })
            .collect(),
        _ => Vec::new(),
    }
}

/// The client half of a recorded session, with TVM's handles replaced by those a fresh
/// connection of ours issues, so that replaying it reaches everything the recording did.
pub fn our_client_stream(trace: &str) -> Vec<u8> {
    let trace = Trace::load(trace);
    let (client_hello, client_frames) = split_client(&trace.client);
    let (_, recorded) = split_client(&trace.server);
    let mut conn = ServerConnection::new(ConnectionConfig::default());
    let mut stream = client_hello.clone();
    conn.endpoint().receive(&client_hello);
    conn.process_inline().expect("handshake");
    conn.endpoint().take_output();
    let mut recorded = recorded.iter();
    let mut map = HashMap::new();
    for frame in &client_frames {
        let frame = rewrite_handles(frame, &map);
        stream.extend_from_slice(&frame);
        conn.endpoint().receive(&frame);
        conn.process_inline().expect("framing holds");
        for ours in split_frames(&conn.endpoint().take_output()) {
            let Some(theirs) = recorded.next() else { continue };
            for (t, o) in reply_handles(theirs).into_iter().zip(reply_handles(&ours)) {
                if t != 0 && o != 0 {
                    map.insert(t, o);
                }
            }
        }
    }
    stream
}
