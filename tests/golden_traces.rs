//! Golden traces: the client half of real TVM 0.27 sessions (recorded against TVM's own
//! server) is fed to our server, and its replies must equal the recorded server half except
//! for handle values.
//!
//! Handles differ by design (TVM hands out pointers, we hand out opaque ids), so the client
//! stream is replayed packet by packet, replacing each TVM handle with the one we issued in
//! the corresponding reply. The rewritten stream is then replayed twice more, in one piece
//! and byte by byte, and must produce exactly the same bytes: our handles are deterministic.

mod support;

use std::collections::HashMap;
use std::time::Instant;

use support::streams::rewrite_handles;
use support::trace::{Trace, split_client, split_frames, split_server};
use tensor_rpc::endpoint::tvm::codec::{DecodeLimits, Packet, Value};
use tensor_rpc::server::{ConnectionConfig, TvmConnection};

fn decode_frame(frame: &[u8]) -> Packet<'_> {
    Packet::decode(&frame[8..], &DecodeLimits::default()).expect("a valid reply")
}

/// Handle values of a reply, in order, and the reply with them zeroed.
fn mask_handles(packet: Packet<'_>) -> (Vec<u64>, Packet<'static>) {
    let mut handles = Vec::new();
    let packet = match packet {
        Packet::Return(values) => Packet::Return(
            values
                .into_iter()
                .map(|v| match v {
                    Value::Handle(h) => {
                        handles.push(h);
                        Value::Handle(0)
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other.into_owned(),
    };
    (handles, packet)
}

/// Re-encodes a reply with its handle values replaced, in order, by `handles`.
fn with_handles(packet: Packet<'_>, handles: &[u64]) -> Vec<u8> {
    let mut handles = handles.iter();
    let packet = match packet {
        Packet::Return(values) => Packet::Return(
            values
                .into_iter()
                .map(|v| match v {
                    Value::Handle(_) => Value::Handle(*handles.next().expect("as many handles")),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    };
    let mut frame = Vec::new();
    packet.encode_frame(&mut frame);
    frame
}

fn connection() -> TvmConnection {
    TvmConnection::new(ConnectionConfig::default(), Instant::now())
}

fn feed(conn: &mut TvmConnection, bytes: &[u8]) -> Vec<u8> {
    conn.endpoint().receive(bytes);
    conn.process_inline(Instant::now()).expect("framing holds");
    conn.endpoint().take_output()
}

struct Replay {
    /// The client stream with TVM's handles replaced by ours.
    rewritten: Vec<u8>,
    /// Everything our server sent in the packet-by-packet replay.
    output: Vec<u8>,
    /// Our replies beyond those recorded (TVM's server died before sending them).
    extra_replies: Vec<Packet<'static>>,
}

/// Replays `name` packet by packet, checking each reply against the recording.
fn replay(name: &str) -> Replay {
    replay_rewritten(name, |frame| frame.to_vec())
}

/// [`replay`], with each client frame first passed through `adapt`.
fn replay_rewritten(name: &str, adapt: impl Fn(&[u8]) -> Vec<u8>) -> Replay {
    let trace = Trace::load(name);
    let (client_hello, client_frames) = split_client(&trace.client);
    let (server_hello, recorded) = split_server(&trace.server);
    let mut conn = connection();
    let mut rewritten = client_hello.clone();
    let mut output = feed(&mut conn, &client_hello);
    assert_eq!(output, server_hello, "{name}: handshake reply");

    let mut handles: HashMap<u64, u64> = HashMap::new();
    let mut recorded = recorded.into_iter();
    let mut extra_replies = Vec::new();
    for (i, frame) in client_frames.iter().enumerate() {
        let frame = rewrite_handles(&adapt(frame), &handles);
        rewritten.extend_from_slice(&frame);
        let out = feed(&mut conn, &frame);
        output.extend_from_slice(&out);
        for ours in split_frames(&out) {
            let (our_handles, our_reply) = mask_handles(decode_frame(&ours));
            let Some(theirs) = recorded.next() else {
                extra_replies.push(our_reply);
                continue;
            };
            let (their_handles, _) = mask_handles(decode_frame(&theirs));
            assert_eq!(our_handles.len(), their_handles.len(), "{name}: reply to packet {i}");
            // Byte-exact, once our handle values are put back to TVM's.
            assert_eq!(
                with_handles(decode_frame(&ours), &their_handles),
                theirs,
                "{name}: reply to client packet {i}"
            );
            for (theirs, ours) in their_handles.into_iter().zip(our_handles) {
                if theirs != 0 && ours != 0 {
                    handles.insert(theirs, ours);
                }
            }
        }
    }
    assert_eq!(recorded.count(), 0, "{name}: recorded replies we did not send");
    Replay { rewritten, output, extra_replies }
}

/// The rewritten stream, fed in one piece and byte by byte, yields the same bytes.
fn check_replays_are_deterministic(name: &str, replay: &Replay) {
    let mut whole = connection();
    assert_eq!(feed(&mut whole, &replay.rewritten), replay.output, "{name}: in one piece");

    let mut bytewise = connection();
    let mut out = Vec::new();
    for b in &replay.rewritten {
        out.extend(feed(&mut bytewise, std::slice::from_ref(b)));
    }
    assert_eq!(out, replay.output, "{name}: byte by byte");
}

fn check_trace(name: &str) -> Replay {
    let replay = replay(name);
    check_replays_are_deterministic(name, &replay);
    replay
}

#[test]
fn echo_trace_replies_match_tvm_server() {
    assert!(check_trace("tvm0.27-echo.trace").extra_replies.is_empty());
}

#[test]
fn tensor_trace_replies_match_tvm_server() {
    assert!(check_trace("tvm0.27-tensor.trace").extra_replies.is_empty());
}

#[test]
fn missing_function_trace_replies_match_tvm_server() {
    assert!(check_trace("tvm0.27-missing-function.trace").extra_replies.is_empty());
}

#[test]
fn upload_trace_replies_match_tvm_server() {
    assert!(check_trace("tvm0.27-upload.trace").extra_replies.is_empty());
}

/// TVM's server drops the connection when `testing.echo` gets no argument (PROTOCOL.md
/// section 7); we answer with an Exception and go on to answer the two DevGetAttr requests
/// the client sent after it.
#[test]
fn bad_call_trace_gets_an_exception_where_tvm_server_dropped_the_connection() {
    let replay = check_trace("tvm0.27-bad-call-then-attrs.trace");
    match replay.extra_replies.as_slice() {
        [Packet::Exception(message), Packet::Return(a), Packet::Return(b)] => {
            assert!(message.contains("testing.echo"), "{message}");
            assert_eq!(a, &vec![Value::None], "max threads per block of a cpu");
            assert_eq!(b, &vec![Value::None], "warp size of a cpu");
        }
        other => panic!("unexpected extra replies {other:?}"),
    }
}

/// The recorded multi-hop session relayed through TVM's server to another one on port 9120;
/// here it relays through ours to a server of ours started for the test.
#[test]
fn multihop_trace_relayed_to_a_next_hop_matches_tvm() {
    use tensor_rpc::server::{Server, ServerConfig};
    let mut next_hop = Server::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let port = next_hop.local_addr().unwrap().port();
    let stop = next_hop.shutdown_handle();
    let thread = std::thread::spawn(move || next_hop.run());

    // The recorded InitServer names port 9120 as Int(9120); point it at our next hop.
    let recorded_port = [&1i32.to_le_bytes()[..], &9120i64.to_le_bytes()].concat();
    let our_port = [&1i32.to_le_bytes()[..], &i64::from(port).to_le_bytes()].concat();
    let adapt = |frame: &[u8]| {
        let mut frame = frame.to_vec();
        if let Some(at) = frame.windows(12).position(|w| w == recorded_port.as_slice()) {
            frame[at..at + 12].copy_from_slice(&our_port);
        }
        frame
    };
    let replay = replay_rewritten("tvm0.27-multihop.trace", adapt);
    assert!(replay.extra_replies.is_empty());
    check_replays_are_deterministic("tvm0.27-multihop.trace", &replay);

    stop.shutdown();
    thread.join().unwrap().unwrap();
}
