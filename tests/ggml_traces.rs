//! Golden ggml-RPC byte streams: llama.cpp's own client recorded (through a recording proxy)
//! against ggml's rpc-server (tests/ggml/record_traces.py). Replayed two ways:
//! - into our endpoint alone, byte by byte and whole, answered with the recorded replies:
//!   it reports exactly the recorded commands, and what it writes is byte for byte what
//!   ggml's server wrote;
//! - into a whole connection of ours (endpoint, session, kernels), with the buffer handles and
//!   addresses ggml's server gave translated to the ones ours gives: every reply is the one
//!   ggml's server gave (the logits read back within rounding), but for the device's memory.

mod support;

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use support::trace::Trace;
use tensor_rpc::endpoint::ggml::codec::{
    Command, GraphPayload, REQUEST_HEADER_LEN, Reply, Request, RequestHeader, RpcTensor,
    SetTensorHeader,
};
use tensor_rpc::endpoint::ggml::{GgmlEndpointConfig, GgmlEvent, GgmlServerEndpoint};
use tensor_rpc::server::{Connection, ConnectionClock, ConnectionConfig, GgmlConnection};

const TRACES: [&str; 3] = ["ggml7-f32-fa-off", "ggml7-f16-fa-on", "ggml7-f16-partial-fa-off"];

/// One recorded command: what the client sent, and what ggml's server answered.
// A few hundred commands per trace: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Sent {
    Request(Box<Request>),
    SetTensor(SetTensorHeader, Vec<u8>),
}

struct Recorded {
    client: Vec<u8>,
    server: Vec<u8>,
    commands: Vec<(Sent, Option<Reply>)>,
}

/// The connections of a trace, split where its sidecar says, each parsed into its commands.
fn connections(name: &str) -> Vec<Recorded> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces");
    let sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let file = std::fs::read(root.join(format!("{name}.trace"))).unwrap();
    let offsets: Vec<usize> = sidecar["connections"]["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap() as usize)
        .collect();
    let mut ends = offsets[1..].to_vec();
    ends.push(file.len());
    offsets
        .iter()
        .zip(ends)
        .map(|(&start, end)| {
            let trace = Trace::parse(&file[start..end]);
            let commands = parse_commands(&trace.client, &trace.server);
            Recorded { client: trace.client, server: trace.server, commands }
        })
        .collect()
}

fn parse_commands(client: &[u8], server: &[u8]) -> Vec<(Sent, Option<Reply>)> {
    let (mut c, mut s) = (client, server);
    let mut commands = Vec::new();
    while !c.is_empty() {
        let header = RequestHeader::decode(c[..REQUEST_HEADER_LEN].try_into().unwrap()).unwrap();
        let size = header.size as usize;
        let payload = &c[REQUEST_HEADER_LEN..REQUEST_HEADER_LEN + size];
        c = &c[REQUEST_HEADER_LEN + size..];
        let sent = match header.command {
            Command::SetTensor => {
                let (header, data) = SetTensorHeader::split(payload).unwrap();
                Sent::SetTensor(header, data.to_vec())
            }
            command => {
                let request = Request::decode(command, payload, &Default::default()).unwrap();
                Sent::Request(Box::new(request))
            }
        };
        let reply = header.command.has_reply().then(|| {
            let len = u64::from_le_bytes(s[..8].try_into().unwrap()) as usize;
            let reply = Reply::decode(header.command, &s[8..8 + len]).unwrap();
            s = &s[8 + len..];
            reply
        });
        commands.push((sent, reply));
    }
    assert!(s.is_empty(), "every reply belongs to a command");
    commands
}

fn command_of(sent: &Sent) -> Command {
    match sent {
        Sent::Request(r) => r.command(),
        Sent::SetTensor(..) => Command::SetTensor,
    }
}

/// Feeds `client` into an endpoint in pieces of `chunk` bytes, answering each command with
/// its recorded reply; returns the commands it reported and everything it wrote.
fn replay_endpoint(connection: &Recorded, chunk: usize) -> (Vec<Command>, Vec<u8>) {
    let mut endpoint = GgmlServerEndpoint::new(GgmlEndpointConfig::default());
    let mut replies = connection.commands.iter().map(|(_, reply)| reply.clone());
    let mut reported = Vec::new();
    let mut output = Vec::new();
    for piece in connection.client.chunks(chunk) {
        endpoint.receive(piece);
        while let Some(event) = endpoint.poll_event().expect("the stream is valid ggml-RPC") {
            match event {
                GgmlEvent::Hello { .. } => {
                    reported.push(Command::Hello);
                    assert_eq!(replies.next(), Some(Some(Reply::hello_tcp())));
                    endpoint.accept_hello().unwrap();
                }
                GgmlEvent::Request(request) => {
                    reported.push(request.command());
                    match replies.next().expect("a recorded command") {
                        Some(reply) => endpoint.reply(&reply).unwrap(),
                        None => endpoint.finish().unwrap(),
                    }
                }
                GgmlEvent::SetTensor { .. } => {
                    reported.push(Command::SetTensor);
                    assert_eq!(replies.next(), Some(None));
                    endpoint.accept_set_tensor().unwrap();
                }
                GgmlEvent::SetTensorData(_) | GgmlEvent::SetTensorDone => {}
            }
            output.extend(endpoint.take_output());
        }
    }
    (reported, output)
}

#[test]
fn recorded_client_streams_decode_as_recorded_byte_by_byte_and_whole() {
    for name in TRACES {
        for (i, connection) in connections(name).iter().enumerate() {
            let recorded: Vec<Command> =
                connection.commands.iter().map(|(s, _)| command_of(s)).collect();
            for chunk in [1, 7, 4096, usize::MAX] {
                let (reported, output) = replay_endpoint(connection, chunk);
                assert_eq!(reported, recorded, "{name} connection {i}, pieces of {chunk}");
                assert!(
                    output == connection.server,
                    "{name} connection {i}, pieces of {chunk}: our replies are not ggml's bytes"
                );
            }
        }
    }
}

/// ggml's server's buffer handles and bases, and ours for the same buffers.
#[derive(Default)]
struct Translation {
    buffers: HashMap<u64, u64>,
    /// Their base -> (our base, size).
    bases: Vec<(u64, u64, u64)>,
}

impl Translation {
    fn tensor(&self, t: &RpcTensor) -> RpcTensor {
        let mut t = t.clone();
        if let Some(ours) = self.buffers.get(&t.buffer) {
            t.buffer = *ours;
        }
        if let Some((theirs, ours, _)) = self
            .bases
            .iter()
            .find(|(theirs, _, size)| t.data >= *theirs && t.data < theirs + size.max(&1))
        {
            t.data = ours + (t.data - theirs);
        }
        t
    }

    fn request(&self, request: &Request) -> Request {
        let buffer = |b: &u64| *self.buffers.get(b).unwrap_or(b);
        match request {
            Request::BufferGetBase { remote_ptr } => {
                Request::BufferGetBase { remote_ptr: buffer(remote_ptr) }
            }
            Request::FreeBuffer { remote_ptr } => {
                Request::FreeBuffer { remote_ptr: buffer(remote_ptr) }
            }
            Request::BufferClear { remote_ptr, value } => {
                Request::BufferClear { remote_ptr: buffer(remote_ptr), value: *value }
            }
            Request::GetTensor { tensor, offset, size } => {
                Request::GetTensor { tensor: self.tensor(tensor), offset: *offset, size: *size }
            }
            Request::InitTensor { tensor } => Request::InitTensor { tensor: self.tensor(tensor) },
            Request::SetTensorHash { tensor, offset, hash } => {
                Request::SetTensorHash { tensor: self.tensor(tensor), offset: *offset, hash: *hash }
            }
            Request::MemsetTensor { tensor, offset, size, value } => Request::MemsetTensor {
                tensor: self.tensor(tensor),
                offset: *offset,
                size: *size,
                value: *value,
            },
            Request::CopyTensor { source, destination } => Request::CopyTensor {
                source: self.tensor(source),
                destination: self.tensor(destination),
            },
            Request::GraphCompute(graph) => Request::GraphCompute(GraphPayload {
                device: graph.device,
                node_ids: graph.node_ids.clone(),
                tensors: graph.tensors.iter().map(|t| self.tensor(t)).collect(),
            }),
            other => other.clone(),
        }
    }
}

/// Our connection's reply to one command (fed whole, run inline).
fn answer(connection: &mut GgmlConnection, bytes: &[u8], command: Command) -> Option<Reply> {
    connection.core_mut().receive(bytes);
    connection.process_inline(Instant::now());
    assert!(
        !connection.is_finished(),
        "our server closed the connection at {command}: {:?}",
        connection.take_close_reason()
    );
    let out = connection.core_mut().take_output();
    if !command.has_reply() {
        assert!(out.is_empty(), "{command} got a reply");
        return None;
    }
    let len = u64::from_le_bytes(out[..8].try_into().unwrap()) as usize;
    assert_eq!(out.len(), 8 + len, "one reply to {command}");
    Some(Reply::decode(command, &out[8..]).unwrap())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Replays one recorded connection against a connection of ours; returns how many logits
/// replies were compared. `sent` collects the bytes sent to ours (the handles and addresses
/// ours gives in place of ggml's).
fn replay_session(
    name: &str,
    index: usize,
    recorded: &Recorded,
    sent_bytes: &mut Vec<u8>,
) -> usize {
    let config = ConnectionConfig::default();
    let clock = ConnectionClock::new(config.timeouts, Instant::now());
    let mut ours = GgmlConnection::with_core(Default::default(), &config, clock);
    let mut map = Translation::default();
    let mut compared = 0;
    for (step, (sent, theirs)) in recorded.commands.iter().enumerate() {
        let at = format!("{name} connection {index} command {step}");
        let mut bytes = Vec::new();
        let command = command_of(sent);
        match sent {
            Sent::Request(request) => map.request(request).encode(&mut bytes),
            Sent::SetTensor(header, data) => {
                let header =
                    SetTensorHeader { tensor: map.tensor(&header.tensor), ..header.clone() };
                header.encode_request(data, &mut bytes);
            }
        }
        sent_bytes.extend_from_slice(&bytes);
        let mine = answer(&mut ours, &bytes, command);
        match (theirs, mine) {
            (None, None) => {}
            (
                Some(Reply::AllocBuffer { remote_ptr: t, remote_size: ts }),
                Some(Reply::AllocBuffer { remote_ptr: o, remote_size: os }),
            ) => {
                assert_eq!(ts, &os, "{at}");
                map.buffers.insert(*t, o);
            }
            (
                Some(Reply::BufferGetBase { base_ptr: t }),
                Some(Reply::BufferGetBase { base_ptr: o }),
            ) => {
                let Sent::Request(request) = sent else { unreachable!() };
                let Request::BufferGetBase { remote_ptr } = **request else { unreachable!() };
                let size = recorded.commands[..step]
                    .iter()
                    .rev()
                    .find_map(|(_, r)| match r {
                        Some(Reply::AllocBuffer { remote_ptr: p, remote_size })
                            if *p == remote_ptr =>
                        {
                            Some(*remote_size)
                        }
                        _ => None,
                    })
                    .expect("the buffer was allocated before");
                map.bases.push((*t, o, size));
            }
            (Some(Reply::GetDeviceMemory { .. }), Some(Reply::GetDeviceMemory { .. }))
            | (Some(Reply::GetMaxSize { .. }), Some(Reply::GetMaxSize { .. })) => {}
            (Some(Reply::GetTensor { data: t }), Some(Reply::GetTensor { data: o })) => {
                // The error measure and bound test-backend-ops uses for FLASH_ATTN_EXT (ggml's
                // CPU rounds attention to f16 for short batches; ours stays in f32).
                let (t, o) = (f32s(t), f32s(&o));
                assert_eq!(t.len(), o.len(), "{at}");
                let err: f64 = t.iter().zip(&o).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                let norm: f64 = t.iter().map(|a| f64::from(*a).powi(2)).sum();
                let nmse = err / norm.max(f64::MIN_POSITIVE);
                assert!(nmse <= 5e-4, "{at}: normalized squared error {nmse:e}");
                compared += 1;
            }
            (t, o) => assert_eq!(t.as_ref(), o.as_ref(), "{at}"),
        }
    }
    compared
}

#[test]
fn recorded_sessions_get_the_replies_ggmls_server_gave() {
    for name in TRACES {
        let mut compared = 0;
        for (i, connection) in connections(name).iter().enumerate() {
            compared += replay_session(name, i, connection, &mut Vec::new());
        }
        assert!(compared >= 8, "{name}: every token's logits compared, {compared} were");
    }
}

/// Writes the seeds of the `ggml_stream` fuzz target: each recorded session's longest
/// connection as our server sees it, after its HELLO.
#[test]
#[ignore = "writes fuzz seeds; run by hand"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/ggml_stream");
    std::fs::create_dir_all(&dir).unwrap();
    for name in TRACES {
        let all = connections(name);
        let (i, longest) = all.iter().enumerate().max_by_key(|(_, c)| c.client.len()).unwrap();
        let mut sent = Vec::new();
        replay_session(name, i, longest, &mut sent);
        // The first command is HELLO, which the fuzz target sends itself.
        let hello = tensor_rpc::endpoint::ggml::codec::REQUEST_HEADER_LEN + 24;
        std::fs::write(dir.join(name), &sent[hello..]).unwrap();
    }
}
