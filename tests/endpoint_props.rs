//! Property tests on stable Rust (the cargo-fuzz targets of fuzz/ need nightly): random and
//! mutated byte streams thrown at the server side, and random packed sequences, so every
//! `cargo test` exercises what the fuzzers do.

mod support;

use proptest::prelude::*;
use std::time::Instant;
use support::streams::{LOCAL_TRACES, compute_session_stream, hello, our_client_stream};
use support::trace::{Trace, split_client};
use tensor_rpc::endpoint::tvm::codec::value::{decode_packed_seq, encode_packed_seq};
use tensor_rpc::endpoint::tvm::codec::{DecodeLimits, WireReader};
use tensor_rpc::endpoint::tvm::{ClientEndpoint, EndpointConfig};
use tensor_rpc::server::{Connection, ConnectionConfig, RelayLimits, TvmConnection};
use tensor_rpc::session::SessionConfig;

const MAX_PACKET: u64 = 1 << 20;

fn connection() -> TvmConnection {
    TvmConnection::new(
        ConnectionConfig {
            endpoint: EndpointConfig { max_packet: MAX_PACKET, ..EndpointConfig::default() },
            session: SessionConfig { memory_limit: Some(16 << 20), ..SessionConfig::default() },
            relay: RelayLimits::new(0),
            ..ConnectionConfig::default()
        },
        Instant::now(),
    )
}

/// Feeds `stream` in pieces of `chunk` bytes, checking after each that the server answered
/// or closed without panicking and holds bounded buffers. Returns everything it sent.
fn feed_checked(stream: &[u8], chunk: usize) -> Vec<u8> {
    let mut conn = connection();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        conn.endpoint().receive(piece);
        let framing = conn.process_inline(Instant::now());
        out.extend(conn.endpoint().take_output());
        if framing.is_err() {
            assert!(conn.is_finished(), "framing lost but the connection stays open");
            break;
        }
        assert!(conn.core().buffer_capacity() as u64 <= 4 * MAX_PACKET + (4 << 20));
        if conn.is_finished() {
            break;
        }
    }
    out
}

/// How a trace is damaged: each mutation at a position taken modulo the stream's length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Overwrites 8 bytes with an extreme value (lengths, counts, handles).
    Extreme(usize, u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(1 << 63),
        Just(i32::MAX as u64),
        Just(0xFFFF_FFFF),
        any::<u64>()
    ];
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(p, x)| Mutation::Flip(p, x)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1..32usize).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), extreme).prop_map(|(p, v)| Mutation::Extreme(p, v)),
    ]
}

fn apply(stream: &mut Vec<u8>, m: &Mutation) {
    if stream.is_empty() {
        return;
    }
    let at = |p: usize| p % stream.len();
    match m {
        Mutation::Flip(p, x) => {
            let i = at(*p);
            stream[i] ^= x;
        }
        Mutation::Insert(p, bytes) => {
            let i = at(*p);
            stream.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete(p, n) => {
            let i = at(*p);
            let end = (i + n).min(stream.len());
            stream.drain(i..end);
        }
        Mutation::Truncate(p) => stream.truncate(at(*p)),
        Mutation::Extreme(p, v) => {
            let i = at(*p).min(stream.len().saturating_sub(8));
            let end = (i + 8).min(stream.len());
            stream[i..end].copy_from_slice(&v.to_le_bytes()[..end - i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn server_survives_random_bytes_after_a_valid_handshake(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        chunk in 1..64usize,
    ) {
        let mut stream = hello("client:");
        stream.extend_from_slice(&body);
        feed_checked(&stream, chunk);
    }

    #[test]
    fn server_survives_random_bytes_from_the_first_byte(
        stream in prop::collection::vec(any::<u8>(), 0..512),
        chunk in 1..16usize,
    ) {
        feed_checked(&stream, chunk);
    }

    #[test]
    fn client_endpoint_survives_random_bytes_after_a_valid_server_hello(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        chunk in 1..64usize,
    ) {
        let mut stream = 0xFF271i32.to_le_bytes().to_vec();
        stream.extend_from_slice(&7i32.to_le_bytes());
        stream.extend_from_slice(b"server:");
        stream.extend_from_slice(&body);
        let mut endpoint = ClientEndpoint::client("client:", EndpointConfig::default());
        'feed: for piece in stream.chunks(chunk) {
            endpoint.receive(piece);
            loop {
                match endpoint.poll_event() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        prop_assert!(endpoint.is_finished() || endpoint.core().wants_write());
                        break 'feed;
                    }
                }
            }
        }
    }

    #[test]
    fn server_survives_mutated_trace_streams(
        trace in 0..LOCAL_TRACES.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
        chunk in 1..256usize,
    ) {
        let mut stream = our_client_stream(LOCAL_TRACES[trace]);
        for m in &mutations {
            apply(&mut stream, m);
        }
        feed_checked(&stream, chunk);
    }

    #[test]
    fn server_survives_mutated_compute_sessions(
        mutations in prop::collection::vec(mutation(), 1..6),
        chunk in 1..256usize,
    ) {
        let mut stream = compute_session_stream();
        for m in &mutations {
            apply(&mut stream, m);
        }
        feed_checked(&stream, chunk);
    }

    #[test]
    fn unmutated_trace_streams_give_the_same_replies_however_they_are_split(
        trace in 0..LOCAL_TRACES.len(),
        chunk in 1..512usize,
    ) {
        let stream = our_client_stream(LOCAL_TRACES[trace]);
        prop_assert_eq!(feed_checked(&stream, chunk), feed_checked(&stream, stream.len()));
    }

    #[test]
    fn decoded_packed_sequences_reencode_to_what_decodes_the_same(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let limits = DecodeLimits::default();
        if let Ok(values) = decode_packed_seq(&mut WireReader::new(&bytes), &limits) {
            let mut again = Vec::new();
            encode_packed_seq(&values, &mut again);
            let reparsed = decode_packed_seq(&mut WireReader::new(&again), &limits).unwrap();
            prop_assert_eq!(format!("{reparsed:?}"), format!("{values:?}"));
        }
    }
}

/// Writes the seed corpora of fuzz/seeds/ from the recorded traces; run by hand after the
/// traces or the targets change: `cargo test --test endpoint_props -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds; a tool, not a check"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let all_traces = LOCAL_TRACES.iter().chain(&["tvm0.27-multihop.trace"]);
    for name in all_traces {
        let stem = name.trim_end_matches(".trace");
        let trace = Trace::load(name);
        let ours = if LOCAL_TRACES.contains(name) { our_client_stream(name) } else { vec![] };
        if !ours.is_empty() {
            write("server_stream", &format!("{stem}.ours"), &ours);
        }
        write("server_stream", &format!("{stem}.recorded"), &trace.client);

        let (client_hello, client_frames) = split_client(&trace.client);
        let (server_hello, server_frames) = split_client(&trace.server);
        write("handshake", &format!("{stem}.server-side"), &[&[14u8][..], &client_hello].concat());
        write("handshake", &format!("{stem}.client-side"), &[&[15u8][..], &server_hello].concat());

        let ours_frames = if ours.is_empty() { vec![] } else { split_client(&ours).1 };
        let frames = client_frames.iter().chain(&server_frames).chain(&ours_frames);
        for (i, frame) in frames.enumerate() {
            let body = &frame[8..];
            write("packet_decode", &format!("{stem}.{i}"), body);
            if body.len() < 4 {
                continue;
            }
            let code = i32::from_le_bytes(body[..4].try_into().unwrap());
            let seq = match code {
                3 if body.len() >= 12 => &body[12..],
                4 | 9.. => &body[4..],
                _ => continue,
            };
            write("packed_seq", &format!("{stem}.{i}"), seq);
        }
    }
    write("server_stream", "compute-session", &compute_session_stream());
    write("handshake", "bytewise-key", &[&[0u8][..], &hello("client:k -timeout=5")].concat());
    write("handshake", "wrong-key", &[&[14u8][..], &hello("client:other")].concat());
    write("handshake", "matching-key", &[&[14u8][..], &hello("client:k")].concat());
}
