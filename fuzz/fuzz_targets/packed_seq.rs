//! Any bytes as a packed sequence (the arguments of every call and syscall): decoding
//! returns values or an error, never panics, never reads past its input, and what decodes
//! re-encodes to bytes that decode to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::tvm::codec::value::{decode_packed_seq, encode_packed_seq};
use tensor_rpc::endpoint::tvm::codec::{DecodeLimits, WireReader};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_args: 256, max_ndim: 32, max_string_len: 1 << 16 };
    let mut reader = WireReader::new(data);
    let Ok(values) = decode_packed_seq(&mut reader, &limits) else { return };
    assert!(reader.remaining() <= data.len());
    let mut again = Vec::new();
    encode_packed_seq(&values, &mut again);
    let mut reader = WireReader::new(&again);
    let reparsed = decode_packed_seq(&mut reader, &limits).expect("our own encoding decodes");
    assert_eq!(reader.remaining(), 0, "our own encoding has no trailing bytes");
    assert_eq!(format!("{reparsed:?}"), format!("{values:?}"));
});
