//! What a ggml-RPC client must not get away with. ggml-RPC has no error reply: each refusal
//! closes that one connection, with a log line naming what was wrong, and frees everything it
//! held, while another ggml client and a TVM client on the same server go on being served.

mod support;

use std::time::{Duration, Instant};

use support::ggml::{
    Buffer, F16, F32, GgmlClient, I32, OP_ADD, OP_GET_ROWS, OP_MUL_MAT, OP_VIEW, f32_bytes, node,
    tensor,
};
use support::servers::{ServerProcess, start_ours};
use tensor_rpc::client::Client;
use tensor_rpc::endpoint::ggml::codec::{Command, GraphPayload, Request, RequestHeader, RpcTensor};
use tensor_rpc::endpoint::tvm::codec::Value;
use tensor_rpc::session::UsageSnapshot;

/// A server with a healthy ggml client holding a tensor and a TVM client watching.
struct Fixture {
    server: ServerProcess,
    tvm: Client,
    healthy: GgmlClient,
    healthy_tensor: RpcTensor,
}

impl Fixture {
    fn new() -> Self {
        let server = start_ours(&[]);
        let tvm = Client::connect(server.addr(), "").unwrap();
        let mut healthy = GgmlClient::hello(server.addr().parse().unwrap());
        let buffer = healthy.alloc(1024);
        let healthy_tensor = tensor(1, F32, [4, 1, 1, 1], &buffer, 0);
        healthy.set_tensor(&healthy_tensor, 0, &f32_bytes(&[1., 2., 3., 4.]));
        Fixture { server, tvm, healthy, healthy_tensor }
    }

    fn usage(&self) -> UsageSnapshot {
        let stats = self.tvm.function("tensor_rpc.stats").unwrap();
        match stats.call(&[]).unwrap() {
            Value::Str(json) => UsageSnapshot::from_json(&json).unwrap(),
            other => panic!("stats returned {other:?}"),
        }
    }

    /// Opens a session that holds a 64 KiB buffer, lets `bad` misbehave in it, and checks
    /// that the server closed it with a log line containing `reason`, freed what it held,
    /// and still serves the others.
    fn refuses(mut self, reason: &str, bad: impl FnOnce(&mut GgmlClient, &Buffer)) {
        let before = self.usage();
        let mut client = GgmlClient::hello(self.server.addr().parse().unwrap());
        let buffer = client.alloc(64 << 10);
        bad(&mut client, &buffer);
        assert!(client.is_closed(), "the connection stayed open");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.usage();
            if (now.sessions, now.allocations, now.bytes_held)
                == (before.sessions, before.allocations, before.bytes_held)
            {
                break;
            }
            assert!(Instant::now() < deadline, "still held: {now:?}, before {before:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.server.log_text();
        assert!(log.contains(reason), "the log does not say {reason:?}:\n{log}");
        let data = self.healthy.get_tensor(&self.healthy_tensor, 0, 16).unwrap();
        assert_eq!(data, f32_bytes(&[1., 2., 3., 4.]), "the other ggml session goes on");
        let echo = self.tvm.function("testing.echo").unwrap();
        assert_eq!(echo.call(&[3i64.into()]).unwrap(), Value::Int(3), "TVM goes on");
    }
}

/// A graph of one node computing `dst` from `sources`, carrying `extra` tensors too.
fn graph(dst: &RpcTensor, tensors: &[&RpcTensor]) -> GraphPayload {
    GraphPayload {
        device: 0,
        node_ids: vec![dst.id],
        tensors: tensors.iter().map(|t| (*t).clone()).collect(),
    }
}

/// A ggml connection begins with HELLO's byte; any other command's byte first is no protocol.
#[test]
fn a_command_before_hello_is_refused() {
    let f = Fixture::new();
    let before = f.usage();
    let mut client = GgmlClient::connect(f.server.addr().parse().unwrap());
    client.send(&Request::DeviceCount);
    assert!(client.is_closed());
    assert_eq!(f.usage().sessions, before.sessions);
    let log = f.server.log_text();
    assert!(log.contains("first byte 0x0f begins no protocol"), "{log}");
}

#[test]
fn a_second_hello_is_refused() {
    Fixture::new().refuses("a second HELLO", |c, _| c.send(&Request::Hello { conn_caps: [0; 24] }));
}

#[test]
fn an_unknown_command_is_refused() {
    Fixture::new().refuses("unknown command 99", |c, _| {
        let mut bytes = vec![99u8];
        bytes.extend_from_slice(&0u64.to_le_bytes());
        c.send_bytes(&bytes);
    });
}

#[test]
fn a_command_of_the_wrong_size_is_refused() {
    Fixture::new().refuses("payload of FREE_BUFFER is 9 bytes, expected 8", |c, _| {
        c.send_bytes(&RequestHeader { command: Command::FreeBuffer, size: 9 }.to_bytes());
        c.send_bytes(&[0; 9]);
    });
}

#[test]
fn a_forged_buffer_is_refused() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        c.send(&Request::BufferClear { remote_ptr: b.remote_ptr ^ (1 << 40), value: 7 });
    });
}

#[test]
fn a_freed_buffer_cannot_be_freed_again() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
    });
}

#[test]
fn a_freed_buffer_cannot_be_written() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
        c.set_tensor(&t, 0, &[0; 16]);
    });
}

#[test]
fn a_tensor_with_no_buffer_but_a_data_address_is_refused() {
    Fixture::new().refuses("has no buffer but a data address", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.buffer = 0;
        c.set_tensor(&t, 0, &[0; 16]);
    });
}

#[test]
fn a_data_address_before_its_buffer_is_refused() {
    Fixture::new().refuses("lies outside its buffer", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.data = b.base - 16;
        c.get_tensor(&t, 0, 16);
    });
}

#[test]
fn a_tensor_whose_strides_reach_past_its_buffer_is_refused() {
    Fixture::new().refuses("lies outside its buffer", |c, b| {
        // 4 elements, but rows of 64 KiB: the second row lies past the buffer's end.
        let mut t = tensor(2, F32, [4, 2, 1, 1], b, 0);
        t.byte_strides[1] = 64 << 10;
        c.set_tensor(&t, 0, &[0; 16]);
    });
}

#[test]
fn a_write_past_its_tensor_is_refused_even_inside_the_buffer() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.set_tensor(&t, 8, &[0; 16]);
    });
}

#[test]
fn a_read_whose_range_wraps_two_to_the_64_is_refused() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::GetTensor { tensor: t, offset: u64::MAX - 3, size: 8 });
    });
}

#[test]
fn a_memset_of_two_to_the_63_bytes_is_refused() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::MemsetTensor { tensor: t, offset: 0, size: 1 << 63, value: 1 });
    });
}

#[test]
fn a_type_that_is_no_ggml_type_is_refused() {
    Fixture::new().refuses("has type 31, which is no ggml type", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.ggml_type = 31;
        c.set_tensor(&t, 0, &[0; 16]);
    });
}

#[test]
fn a_device_that_does_not_exist_is_refused() {
    Fixture::new().refuses("device 1 does not exist", |c, _| {
        c.send(&Request::GetAlignment { device: 1 });
    });
}

#[test]
fn a_graph_naming_a_tensor_it_does_not_carry_is_refused() {
    Fixture::new().refuses("which the graph does not carry", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), OP_ADD, &[&a, &a]);
        c.compute(graph(&out, &[&out]));
    });
}

#[test]
fn a_graph_whose_sources_form_a_cycle_is_refused() {
    Fixture::new().refuses("depends on itself through its sources", |c, b| {
        let mut a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), OP_ADD, &[&a, &a]);
        a.sources[0] = out.id;
        c.compute(graph(&out, &[&a, &out]));
    });
}

#[test]
fn a_view_outside_its_source_is_refused() {
    Fixture::new().refuses("lies outside", |c, b| {
        let source = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let mut view = tensor(3, F32, [8, 1, 1, 1], b, 0);
        view.op = OP_VIEW;
        view.view_source = source.id;
        let out = node(tensor(4, F32, [8, 1, 1, 1], b, 256), OP_ADD, &[&view, &view]);
        c.compute(graph(&out, &[&source, &view, &out]));
    });
}

#[test]
fn an_op_code_that_is_no_ggml_op_is_refused() {
    Fixture::new().refuses("has op 4000, no ggml op", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), 4000, &[&a]);
        c.compute(graph(&out, &[&a, &out]));
    });
}

#[test]
fn an_op_we_do_not_run_is_refused_by_name() {
    // GGML_OP_CUSTOM (95): ops that carry function pointers in their op_params.
    Fixture::new().refuses("unsupported: CUSTOM on f32", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), 95, &[&a]);
        c.compute(graph(&out, &[&a, &out]));
    });
}

#[test]
fn a_type_we_do_not_run_is_refused_by_name() {
    Fixture::new().refuses("unsupported: GET_ROWS on iq2_xxs", |c, b| {
        // 256 iq2_xxs elements are one block of 66 bytes.
        let mut weights = tensor(2, F32, [256, 1, 1, 1], b, 0);
        weights.ggml_type = 16;
        weights.byte_strides = [66, 66, 66, 66];
        let ids = tensor(3, I32, [1, 1, 1, 1], b, 128);
        let out = node(tensor(4, F32, [256, 1, 1, 1], b, 1024), OP_GET_ROWS, &[&weights, &ids]);
        c.compute(graph(&out, &[&weights, &ids, &out]));
    });
}

#[test]
fn a_matrix_product_of_mismatched_shapes_is_refused() {
    Fixture::new().refuses("MUL_MAT: src1 ne[0] 8 != src0 ne[0] 4", |c, b| {
        let w = tensor(2, F16, [4, 2, 1, 1], b, 0);
        let x = tensor(3, F32, [8, 1, 1, 1], b, 64);
        let out = node(tensor(4, F32, [2, 1, 1, 1], b, 128), OP_MUL_MAT, &[&w, &x]);
        c.compute(graph(&out, &[&w, &x, &out]));
    });
}

#[test]
fn a_row_id_past_the_source_is_refused_as_it_is_read() {
    Fixture::new().refuses("GET_ROWS", |c, b| {
        let rows = tensor(2, F32, [4, 2, 1, 1], b, 0);
        let ids = tensor(3, I32, [1, 1, 1, 1], b, 64);
        c.set_tensor(&ids, 0, &7i32.to_le_bytes());
        let out = node(tensor(4, F32, [4, 1, 1, 1], b, 128), OP_GET_ROWS, &[&rows, &ids]);
        c.compute(graph(&out, &[&rows, &ids, &out]));
    });
}

#[test]
fn recompute_without_a_graph_is_refused() {
    Fixture::new().refuses("GRAPH_RECOMPUTE without a graph", |c, _| {
        c.send(&Request::GraphRecompute { device: 0 });
    });
}

#[test]
fn recompute_after_its_buffer_was_freed_is_refused() {
    Fixture::new().refuses("GRAPH_RECOMPUTE without a graph", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), OP_ADD, &[&a, &a]);
        c.compute(graph(&out, &[&a, &out]));
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
        c.send(&Request::GraphRecompute { device: 0 });
    });
}

#[test]
fn a_graph_over_the_node_limit_is_refused_before_it_is_received() {
    Fixture::new().refuses("GRAPH_COMPUTE declares 100000 nodes", |c, _| {
        c.send_bytes(&RequestHeader { command: Command::GraphCompute, size: 1 << 40 }.to_bytes());
        c.send_bytes(&0u32.to_le_bytes());
        c.send_bytes(&100_000u32.to_le_bytes());
    });
}

#[test]
fn a_good_graph_computes() {
    let f = Fixture::new();
    let mut c = GgmlClient::hello(f.server.addr().parse().unwrap());
    let b = c.alloc(4096);
    let a = tensor(2, F32, [4, 1, 1, 1], &b, 0);
    c.set_tensor(&a, 0, &f32_bytes(&[1., 2., 3., 4.]));
    let out = node(tensor(3, F32, [4, 1, 1, 1], &b, 64), OP_ADD, &[&a, &a]);
    c.compute(graph(&out, &[&a, &out]));
    assert_eq!(c.get_tensor(&out, 0, 16).unwrap(), f32_bytes(&[2., 4., 6., 8.]));
    c.send(&Request::GraphRecompute { device: 0 });
    assert_eq!(c.get_tensor(&out, 0, 16).unwrap(), f32_bytes(&[2., 4., 6., 8.]));
}
