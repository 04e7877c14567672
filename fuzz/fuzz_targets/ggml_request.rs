//! Any bytes as a ggml-RPC request: the first byte is the command, the rest its payload (the
//! header's size is the payload's length). Headers, payloads and replies decode to a value or
//! an error, never a panic, and:
//! - the header decoder accepts exactly the sizes the command's rule allows;
//! - whatever request decodes re-encodes to the same header and payload bytes;
//! - a fixed-size command decodes whenever the size is right (its layout has no choices);
//! - GRAPH_COMPUTE's peek, fed the prefixes it asks for, agrees with the full decode;
//! - a reply that decodes re-encodes to one that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensor_rpc::endpoint::ggml::codec::{
    Command, GraphLimits, GraphPayload, GraphPeek, PayloadRule, REQUEST_HEADER_LEN, Reply, Request,
    RequestHeader, SetTensorHeader,
};

fuzz_target!(|data: &[u8]| {
    if let Some(raw) = data.first_chunk::<REQUEST_HEADER_LEN>()
        && let Ok(header) = RequestHeader::decode(raw)
    {
        assert_eq!(&header.to_bytes(), raw);
    }
    let Some((&byte, payload)) = data.split_first() else { return };
    let size = payload.len() as u64;
    let mut header_bytes = [0; REQUEST_HEADER_LEN];
    header_bytes[0] = byte;
    header_bytes[1..].copy_from_slice(&size.to_le_bytes());
    let header = RequestHeader::decode(&header_bytes);
    let Some(command) = Command::from_u8(byte) else {
        assert!(header.is_err(), "unknown command {byte} accepted");
        return;
    };
    assert_eq!(header.is_ok(), command.check_payload_size(size).is_ok());
    let limits = GraphLimits::default();

    if command.streams_payload() {
        assert!(Request::decode(command, payload, &limits).is_err());
        match SetTensorHeader::split(payload) {
            Ok((set_tensor, rest)) => {
                assert!(header.is_ok());
                assert_eq!(SetTensorHeader::data_len(size), Ok(rest.len() as u64));
                let mut again = Vec::new();
                set_tensor.encode_request(rest, &mut again);
                assert_eq!(again[..REQUEST_HEADER_LEN], header_bytes);
                assert_eq!(&again[REQUEST_HEADER_LEN..], payload);
            }
            Err(_) => assert!(payload.len() < SetTensorHeader::LEN),
        }
        return;
    }

    let decoded = Request::decode(command, payload, &limits);
    match &decoded {
        Ok(request) => {
            assert!(header.is_ok());
            assert_eq!(request.command(), command);
            let mut again = Vec::new();
            request.encode(&mut again);
            assert_eq!(again[..REQUEST_HEADER_LEN], header_bytes);
            assert_eq!(&again[REQUEST_HEADER_LEN..], payload);
        }
        Err(_) => {
            if let PayloadRule::Exact(expected) = command.payload_rule() {
                assert_ne!(size, expected, "{command}: a payload of the right size was refused");
            }
        }
    }

    if command == Command::GraphCompute {
        let mut have = 0;
        let peeked = loop {
            match GraphPayload::peek(size, &payload[..have], &limits) {
                Ok(GraphPeek::NeedPrefix(needed)) => {
                    assert!(needed > have && needed as u64 <= size, "peek asked for {needed}");
                    have = needed;
                }
                other => break other,
            }
        };
        match (&peeked, &decoded) {
            (Ok(GraphPeek::Counts(counts)), Ok(Request::GraphCompute(graph))) => {
                assert_eq!(*counts, graph.counts());
            }
            (Err(peek_error), Err(decode_error)) => assert_eq!(peek_error, decode_error),
            _ => panic!("peek {peeked:?} disagrees with decode {decoded:?}"),
        }
    }

    if let Ok(reply) = Reply::decode(command, payload) {
        assert_eq!(reply.command(), command);
        let mut again = Vec::new();
        reply.encode_payload(&mut again);
        assert_eq!(again.len(), payload.len());
        assert_eq!(Reply::decode(command, &again), Ok(reply));
    }
});
