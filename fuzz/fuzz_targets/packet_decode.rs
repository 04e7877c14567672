//! Any bytes as a packet body: decoding returns a value or an error, never panics, and what
//! decodes re-encodes to a body that decodes to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::tvm::codec::{DecodeLimits, Packet};

fuzz_target!(|body: &[u8]| {
    let limits = DecodeLimits::default();
    if let Ok(packet) = Packet::decode(body, &limits) {
        let mut again = Vec::new();
        packet.encode(&mut again);
        assert_eq!(again.len() as u64, packet.encoded_len());
        let reparsed = Packet::decode(&again, &limits).expect("our own encoding decodes");
        assert_eq!(format!("{reparsed:?}"), format!("{packet:?}"));
    }
});
