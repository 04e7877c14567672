//! Any bytes from a tracker: the message reader, the reply decoders and a server's
//! registration return values or errors, never panic; what the reader decodes re-encodes to
//! the same JSON.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tensor_rpc::tracker::message::{
    Incoming, MessageReader, encode_json, parse_assignment, parse_pending_keys, parse_success,
    parse_summary,
};
use tensor_rpc::tracker::{Registration, RegistrationConfig};

fuzz_target!(|data: &[u8]| {
    // The bytes as a tracker's stream to a client: every reply decoder on every message.
    let mut reader = MessageReader::new();
    reader.push(data);
    while let Ok(Some(unit)) = reader.next_unit() {
        if let Incoming::Message(json) = unit {
            let _ = parse_success("PUT", &json);
            let _ = parse_pending_keys(&json);
            let _ = parse_assignment(&json);
            let _ = parse_summary(&json);
            let mut framed = Vec::new();
            encode_json(&json, &mut framed);
            let mut again = MessageReader::new();
            again.push(&0x2F271i32.to_le_bytes());
            again.push(&framed);
            assert_eq!(again.next_unit(), Ok(Some(Incoming::Magic)));
            assert_eq!(again.next_unit(), Ok(Some(Incoming::Message(json))));
        }
    }

    // The same bytes, in two pieces, as a tracker's replies to a registering server.
    let now = Instant::now();
    let mut reg = Registration::new(RegistrationConfig::new("fuzz", 9090, None), true, now);
    let split = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let (a, b) = data.split_at(split);
    if reg.receive(a, now).is_ok() {
        reg.key_used(true, now);
        let later = now + Duration::from_secs(3);
        if reg.on_timer(later).is_ok() {
            let _ = reg.receive(b, later);
        }
    }
    let _ = reg.next_deadline();
});
