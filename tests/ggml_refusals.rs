//! What a ggml-RPC client must not get away with. ggml-RPC has no error reply: each refusal
//! closes that one connection, with a log line naming what was wrong, and frees everything it
//! held, while a healthy ggml client (computing a graph and reading its result, as
//! llama.cpp's does) and a TVM client on the same server go on being served and checking
//! their answers.
//!
//! The public advisories against ggml's rpc-server (2024-2026) are regression cases named
//! `advisory_*`; the rest cover forged, foreign and freed handles, ranges that wrap 2^64,
//! sizes of 2^63, broken graphs, ops whose shapes, types or parameters do not fit, framing,
//! stalls and clients that go away, and the server's limits. Allocations that cannot be
//! made are answered (ggml's null buffer), not refused.

mod support;

use std::time::{Duration, Instant};

use support::ggml::*;
use support::servers::{ServerProcess, start_ours};
use tensor_rpc::client::Client;
use tensor_rpc::endpoint::ggml::codec::{
    Command, GraphPayload, Reply, Request, RequestHeader, RpcTensor, SetTensorHeader,
};
use tensor_rpc::endpoint::tvm::codec::Value;
use tensor_rpc::session::UsageSnapshot;

/// A server with a healthy ggml client computing a graph, as llama.cpp's does, and a TVM
/// client watching.
struct Fixture {
    server: ServerProcess,
    tvm: Client,
    healthy: GgmlClient,
    /// The healthy client's buffer, which no other session may touch.
    healthy_buffer: Buffer,
    /// Computed by the healthy client's graph: its input plus itself.
    healthy_sum: RpcTensor,
}

impl Fixture {
    fn new() -> Self {
        Self::with_args(&[])
    }

    fn with_args(args: &[&str]) -> Self {
        let server = start_ours(args);
        let tvm = Client::connect(server.addr(), "").unwrap();
        let mut healthy = GgmlClient::hello(server.addr().parse().unwrap());
        let buffer = healthy.alloc(1024);
        let input = tensor(1, F32, [4, 1, 1, 1], &buffer, 0);
        healthy.set_tensor(&input, 0, &f32_bytes(&[1., 2., 3., 4.]));
        let sum = node(tensor(2, F32, [4, 1, 1, 1], &buffer, 64), OP_ADD, &[&input, &input]);
        healthy.compute(graph(&sum, &[&input, &sum]));
        let mut fixture =
            Fixture { server, tvm, healthy, healthy_buffer: buffer, healthy_sum: sum };
        fixture.check_the_others_are_served();
        fixture
    }

    fn usage(&self) -> UsageSnapshot {
        let stats = self.tvm.function("tensor_rpc.stats").unwrap();
        match stats.call(&[]).unwrap() {
            Value::Str(json) => UsageSnapshot::from_json(&json).unwrap(),
            other => panic!("stats returned {other:?}"),
        }
    }

    fn client(&self) -> GgmlClient {
        GgmlClient::hello(self.server.addr().parse().unwrap())
    }

    /// The healthy ggml client computes its graph again and reads the right sum; the TVM
    /// client's echo comes back.
    fn check_the_others_are_served(&mut self) {
        self.healthy.send(&Request::GraphRecompute { device: 0 });
        let data = self.healthy.get_tensor(&self.healthy_sum, 0, 16).unwrap();
        assert_eq!(data, f32_bytes(&[2., 4., 6., 8.]), "the other ggml session goes on");
        let echo = self.tvm.function("testing.echo").unwrap();
        assert_eq!(echo.call(&[3i64.into()]).unwrap(), Value::Int(3), "TVM goes on");
    }

    /// Waits until the server holds what it held at `before` again.
    fn wait_until_freed(&self, before: &UsageSnapshot) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.usage();
            if (now.sessions, now.allocations, now.bytes_held)
                == (before.sessions, before.allocations, before.bytes_held)
            {
                return;
            }
            assert!(Instant::now() < deadline, "still held: {now:?}, before {before:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_logged(&self, reason: &str) {
        let log = self.server.log_text();
        assert!(log.contains(reason), "the log does not say {reason:?}:\n{log}");
    }

    /// Opens a session that holds a 64 KiB buffer, lets `bad` misbehave in it, and checks
    /// that the server closed it with a log line containing `reason`, freed what it held,
    /// and still serves the others.
    fn refuses(self, reason: &str, bad: impl FnOnce(&mut GgmlClient, &Buffer)) {
        self.refuses_session(reason, |client| {
            let buffer = client.alloc(64 << 10);
            bad(client, &buffer);
        });
    }

    /// As [`Fixture::refuses`], in a session that allocates only what `bad` does.
    fn refuses_session(mut self, reason: &str, bad: impl FnOnce(&mut GgmlClient)) {
        let before = self.usage();
        let mut client = self.client();
        bad(&mut client);
        assert!(client.is_closed(), "the connection stayed open");
        self.wait_until_freed(&before);
        self.assert_logged(reason);
        self.check_the_others_are_served();
    }

    /// Checks the others are served, again and again, until the server closes `client`.
    fn serve_others_until_closed(&mut self, client: &mut GgmlClient) {
        client.set_read_timeout(Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client.is_closed() {
            self.check_the_others_are_served();
            assert!(Instant::now() < deadline, "the connection stayed open");
        }
    }
}

/// A graph of one node computing `dst`, carrying `tensors`.
fn graph(dst: &RpcTensor, tensors: &[&RpcTensor]) -> GraphPayload {
    GraphPayload {
        device: 0,
        node_ids: vec![dst.id],
        tensors: tensors.iter().map(|t| (*t).clone()).collect(),
    }
}

/// A graph of one node: `dst` computed by `op` (with `params`) from `sources`.
fn one_node(op: u32, params: &[i32], dst: RpcTensor, sources: &[&RpcTensor]) -> GraphPayload {
    let mut dst = node(dst, op, sources);
    dst.op_params[..params.len()].copy_from_slice(params);
    let mut tensors: Vec<&RpcTensor> = Vec::new();
    for source in sources {
        if tensors.iter().all(|t| t.id != source.id) {
            tensors.push(source);
        }
    }
    tensors.push(&dst);
    graph(&dst, &tensors)
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
    Fixture::new().refuses(
        "GET_ROWS: row id 7 at src1 [0, 0, 0] is outside the 2 rows of src0",
        |c, b| {
            let rows = tensor(2, F32, [4, 2, 1, 1], b, 0);
            let ids = tensor(3, I32, [1, 1, 1, 1], b, 64);
            c.set_tensor(&ids, 0, &7i32.to_le_bytes());
            let out = node(tensor(4, F32, [4, 1, 1, 1], b, 128), OP_GET_ROWS, &[&rows, &ids]);
            c.compute(graph(&out, &[&rows, &ids, &out]));
        },
    );
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

// -- The public advisories against ggml's rpc-server, as regression cases ----------------

/// GHSA: a graph tensor with no buffer but a data address made rpc-server compute into
/// any address of its choosing.
#[test]
fn advisory_a_graph_tensor_with_no_buffer_but_a_data_address_is_refused() {
    Fixture::new().refuses("has no buffer but a data address", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let mut out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        out.buffer = 0;
        out.data = 0x7fff_dead_0000;
        c.compute(one_node(OP_ADD, &[], out, &[&a, &a]));
    });
}

/// GHSA: custom ops carry function pointers in their op_params, which rpc-server called.
#[test]
fn advisory_a_map_custom1_op_and_its_function_pointer_are_refused() {
    Fixture::new().refuses("unsupported: MAP_CUSTOM1 on f32", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        let pointer = [0x4141_4141, 0x4141, 1, 0];
        c.compute(one_node(OP_MAP_CUSTOM1, &pointer, out, &[&a]));
    });
}

#[test]
fn advisory_a_map_custom3_op_and_its_function_pointer_are_refused() {
    Fixture::new().refuses("unsupported: MAP_CUSTOM3 on f32", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_MAP_CUSTOM3, &[0x4141_4141, 0x4141], out, &[&a, &a, &a]));
    });
}

/// GHSA: GET_ROWS read rows outside its source for ids below zero.
#[test]
fn advisory_a_negative_row_id_is_refused_as_it_is_read() {
    Fixture::new().refuses(
        "GET_ROWS: row id -1 at src1 [0, 0, 0] is outside the 2 rows of src0",
        |c, b| {
            let rows = tensor(2, F32, [4, 2, 1, 1], b, 0);
            let ids = tensor(3, I32, [1, 1, 1, 1], b, 64);
            c.set_tensor(&ids, 0, &(-1i32).to_le_bytes());
            let out = tensor(4, F32, [4, 1, 1, 1], b, 128);
            c.compute(one_node(OP_GET_ROWS, &[], out, &[&rows, &ids]));
        },
    );
}

/// GHSA: SET_ROWS wrote rows outside its destination for ids past it.
#[test]
fn advisory_a_set_rows_index_past_its_destination_is_refused_as_it_is_read() {
    Fixture::new().refuses(
        "SET_ROWS: row id 2 at src1 [0, 0, 0] is outside the 2 rows of dst",
        |c, b| {
            let rows = tensor(2, F32, [4, 1, 1, 1], b, 0);
            let ids = tensor(3, I64, [1, 1, 1, 1], b, 64);
            c.set_tensor(&ids, 0, &2i64.to_le_bytes());
            let out = tensor(4, F32, [4, 2, 1, 1], b, 128);
            c.compute(one_node(OP_SET_ROWS, &[], out, &[&rows, &ids]));
        },
    );
}

/// GHSA: rpc-server's size check of SET_ROWS' destination ignored the strides of its
/// size-1 dimensions, through which the rows of a larger source were then written.
#[test]
fn advisory_set_rows_through_the_stride_of_a_size_one_dimension_is_refused() {
    Fixture::new().refuses("SET_ROWS: dst ne[2] 1 != src0 ne[2] 2", |c, b| {
        let rows = tensor(2, F32, [4, 1, 2, 1], b, 0);
        let ids = tensor(3, I64, [1, 2, 1, 1], b, 64);
        c.set_tensor(&ids, 0, &[0; 16]);
        let mut out = tensor(4, F32, [4, 2, 1, 1], b, 128);
        out.byte_strides[2] = 1 << 30;
        c.compute(one_node(OP_SET_ROWS, &[], out, &[&rows, &ids]));
    });
}

/// GHSA: SSM_SCAN read outside its sources; we do not run it.
#[test]
fn advisory_ssm_scan_is_refused_by_name() {
    Fixture::new().refuses("unsupported: SSM_SCAN on f32", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_SSM_SCAN, &[], out, &[&a, &a, &a, &a, &a, &a]));
    });
}

/// GHSA: ACC with negative strides in its op_params wrote before its destination.
#[test]
fn advisory_acc_with_a_negative_stride_is_refused() {
    Fixture::new().refuses("ACC: nb1 -16 must be >= 0", |c, b| {
        let a = tensor(2, F32, [4, 4, 1, 1], b, 0);
        let part = tensor(3, F32, [2, 2, 1, 1], b, 128);
        let out = tensor(4, F32, [4, 4, 1, 1], b, 256);
        // nb1, nb2, nb3, offset, inplace
        c.compute(one_node(OP_ACC, &[-16, 64, 64, 0, 0], out, &[&a, &part]));
    });
}

#[test]
fn advisory_acc_at_an_offset_past_its_destination_is_refused() {
    Fixture::new().refuses("reaches past the end of src0", |c, b| {
        let a = tensor(2, F32, [4, 4, 1, 1], b, 0);
        let part = tensor(3, F32, [2, 2, 1, 1], b, 128);
        let out = tensor(4, F32, [4, 4, 1, 1], b, 256);
        c.compute(one_node(OP_ACC, &[16, 64, 64, 1 << 20, 0], out, &[&a, &part]));
    });
}

/// GHSA: rows of a block format that are not a whole number of blocks aborted rpc-server.
#[test]
fn advisory_a_q4_0_row_that_is_not_a_whole_number_of_blocks_is_refused() {
    Fixture::new().refuses(
        "ne[0] 33 is not a multiple of the 32-element blocks of q4_0",
        |c, b| {
            let mut t = tensor(2, F32, [33, 1, 1, 1], b, 0);
            t.ggml_type = Q4_0;
            t.byte_strides = [18, 36, 36, 36];
            c.set_tensor(&t, 0, &[0; 18]);
        },
    );
}

#[test]
fn advisory_a_type_out_of_range_in_a_graph_is_refused() {
    Fixture::new().refuses("tensor 't2' has type 1000, which is no ggml type", |c, b| {
        let mut a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        a.ggml_type = 1000;
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_ADD, &[], out, &[&a, &a]));
    });
}

// -- Handles: forged, foreign, freed -----------------------------------------------------

#[test]
fn a_buffer_handle_of_zero_is_refused() {
    Fixture::new().refuses("is not a buffer of this session", |c, _| {
        c.send(&Request::BufferGetBase { remote_ptr: 0 });
    });
}

/// Buffer handles are per session: another client's handle means nothing in this one
/// (and the healthy client's data, checked after, is untouched).
#[test]
fn a_buffer_of_another_session_is_refused() {
    let f = Fixture::new();
    let theirs = f.healthy_buffer;
    f.refuses_session("is not a buffer of this session", |c| {
        c.send(&Request::BufferClear { remote_ptr: theirs.remote_ptr, value: 0xff });
    });
}

#[test]
fn a_tensor_in_a_buffer_of_another_session_is_refused() {
    let f = Fixture::new();
    let theirs = f.healthy_buffer;
    f.refuses_session("is not a buffer of this session", |c| {
        let t = tensor(9, F32, [4, 1, 1, 1], &theirs, 64);
        c.set_tensor(&t, 0, &[0xff; 16]);
    });
}

#[test]
fn a_forged_buffer_has_no_base() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        c.send(&Request::BufferGetBase { remote_ptr: b.remote_ptr + 1 });
    });
}

#[test]
fn a_freed_buffer_cannot_be_read() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
        c.send(&Request::GetTensor { tensor: t, offset: 0, size: 16 });
    });
}

#[test]
fn a_freed_buffer_cannot_be_cleared() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
        c.send(&Request::BufferClear { remote_ptr: b.remote_ptr, value: 0 });
    });
}

#[test]
fn a_graph_on_a_freed_buffer_is_refused() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.send(&Request::FreeBuffer { remote_ptr: b.remote_ptr });
        c.compute(one_node(OP_ADD, &[], out, &[&a, &a]));
    });
}

#[test]
fn init_tensor_in_a_forged_buffer_is_refused() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.buffer ^= 1 << 41;
        c.send(&Request::InitTensor { tensor: t });
    });
}

#[test]
fn a_copy_from_a_forged_buffer_is_refused() {
    Fixture::new().refuses("is not a buffer of this session", |c, b| {
        let mut source = tensor(2, F32, [4, 1, 1, 1], b, 0);
        source.buffer = 0x1234_5678;
        let destination = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.send(&Request::CopyTensor { source, destination });
    });
}

// -- Allocation: failures are answered, not fatal ---------------------------------------

/// ggml's answer to an allocation that cannot be made is a null buffer, which llama.cpp's
/// client reports; the session goes on.
#[test]
fn an_allocation_of_two_to_the_63_bytes_is_answered_with_a_null_buffer() {
    let mut f = Fixture::new();
    let before = f.usage();
    let mut c = f.client();
    let reply = c.request(&Request::AllocBuffer { device: 0, size: 1 << 63 });
    assert_eq!(reply, Some(Reply::AllocBuffer { remote_ptr: 0, remote_size: 0 }));
    let b = c.alloc(4096);
    assert_eq!(b.size, 4096, "the session goes on");
    assert_eq!(f.usage().allocations, before.allocations + 1);
    f.assert_logged("ALLOC_BUFFER of 9223372036854775808 bytes refused");
    f.check_the_others_are_served();
}

#[test]
fn an_allocation_past_the_memory_limit_is_answered_with_a_null_buffer() {
    let mut f = Fixture::with_args(&["--memory-limit", "1048576"]);
    let mut c = f.client();
    let first = c.alloc(768 << 10);
    let reply = c.request(&Request::AllocBuffer { device: 0, size: 512 << 10 });
    assert_eq!(reply, Some(Reply::AllocBuffer { remote_ptr: 0, remote_size: 0 }));
    c.send(&Request::FreeBuffer { remote_ptr: first.remote_ptr });
    assert_eq!(c.alloc(512 << 10).size, 512 << 10, "freed memory counts against the limit no more");
    f.check_the_others_are_served();
}

// -- Ranges ------------------------------------------------------------------------------

#[test]
fn a_write_whose_range_wraps_two_to_the_64_is_refused() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.set_tensor(&t, u64::MAX - 7, &[0; 16]);
    });
}

#[test]
fn a_data_address_at_the_end_of_its_buffer_is_refused() {
    Fixture::new().refuses("SET_TENSOR: tensor 't2' at 0x", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.data = b.base + b.size;
        c.set_tensor(&t, 0, &[0; 16]);
    });
}

#[test]
fn a_data_address_whose_extent_wraps_two_to_the_64_is_refused() {
    Fixture::new().refuses("lies outside its buffer", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.data = u64::MAX - 7;
        c.get_tensor(&t, 0, 4);
    });
}

#[test]
fn a_tensor_of_two_to_the_128_elements_is_refused() {
    Fixture::new().refuses("tensor 't2': its strides reach past 2^64 bytes", |c, b| {
        let mut t = tensor(2, F32, [1, 1, 1, 1], b, 0);
        t.shape = [u32::MAX; 4];
        t.byte_strides = [4, u32::MAX, u32::MAX, u32::MAX];
        c.get_tensor(&t, 0, 4);
    });
}

#[test]
fn a_copy_into_a_smaller_tensor_is_refused() {
    Fixture::new().refuses(
        "COPY_TENSOR: source 't2' has 64 bytes, more than destination",
        |c, b| {
            let source = tensor(2, F32, [16, 1, 1, 1], b, 0);
            let destination = tensor(3, F32, [4, 1, 1, 1], b, 64);
            c.send(&Request::CopyTensor { source, destination });
        },
    );
}

#[test]
fn a_copy_whose_destination_lies_outside_its_buffer_is_refused() {
    Fixture::new().refuses("tensor 't3' at 0x", |c, b| {
        let source = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let destination = tensor(3, F32, [4, 1, 1, 1], b, b.size - 8);
        c.send(&Request::CopyTensor { source, destination });
    });
}

#[test]
fn a_memset_past_its_tensor_is_refused() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::MemsetTensor { tensor: t, offset: 8, size: 16, value: 1 });
    });
}

#[test]
fn a_read_past_its_tensor_is_refused() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::GetTensor { tensor: t, offset: 4, size: 16 });
    });
}

#[test]
fn a_cached_write_past_its_tensor_is_refused_whether_or_not_the_data_is_cached() {
    Fixture::new().refuses("bytes [16, 16 + 1) lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        c.send(&Request::SetTensorHash { tensor: t, offset: 16, hash: 0x1234 });
    });
}

#[test]
fn the_alloc_size_of_a_type_that_is_no_ggml_type_is_refused() {
    Fixture::new().refuses("which is no ggml type", |c, b| {
        let mut t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        t.ggml_type = 77;
        let sources = Box::new([RpcTensor::ABSENT; RpcTensor::MAX_SOURCES]);
        c.send(&Request::GetAllocSize { device: 0, tensor: t, sources });
    });
}

#[test]
fn the_memory_of_a_device_that_does_not_exist_is_refused() {
    Fixture::new().refuses("device 7 does not exist", |c, _| {
        c.send(&Request::GetDeviceMemory { device: 7 });
    });
}

#[test]
fn an_allocation_on_a_device_that_does_not_exist_is_refused() {
    Fixture::new().refuses("device 2 does not exist", |c, _| {
        c.send(&Request::AllocBuffer { device: 2, size: 64 });
    });
}

// -- Framing -----------------------------------------------------------------------------

#[test]
fn a_hello_of_the_wrong_size_is_refused() {
    let mut f = Fixture::new();
    let before = f.usage();
    let mut c = GgmlClient::connect(f.server.addr().parse().unwrap());
    c.send_bytes(&RequestHeader { command: Command::Hello, size: 5 }.to_bytes());
    c.send_bytes(&[0; 5]);
    assert!(c.is_closed());
    f.wait_until_freed(&before);
    f.assert_logged("payload of HELLO is 5 bytes");
    f.check_the_others_are_served();
}

#[test]
fn a_set_tensor_shorter_than_its_header_is_refused() {
    Fixture::new().refuses(
        "payload of SET_TENSOR is 20 bytes, shorter than the 305 its layout needs",
        |c, _| {
            c.send_bytes(&RequestHeader { command: Command::SetTensor, size: 20 }.to_bytes());
            c.send_bytes(&[0; 20]);
        },
    );
}

/// A fixed-size command declaring a huge payload is refused from its header: nothing is
/// buffered for it.
#[test]
fn a_command_declaring_two_to_the_63_bytes_is_refused_from_its_header() {
    Fixture::new().refuses("payload of GET_TENSOR is 9223372036854775808 bytes", |c, _| {
        c.send_bytes(&RequestHeader { command: Command::GetTensor, size: 1 << 63 }.to_bytes());
    });
}

#[test]
fn a_set_tensor_declaring_more_than_its_tensor_is_refused_before_the_data_arrives() {
    Fixture::new().refuses("lie outside its 16 bytes", |c, b| {
        let t = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let header = SetTensorHeader { tensor: t, cache_flag: 0, offset: 0 };
        let mut bytes = Vec::new();
        header.encode_request(&[0; 16], &mut bytes);
        // The same header declaring a gibibyte of data, of which none is sent.
        let declared = bytes.len() as u64 - 16 + (1 << 30);
        bytes[1..9].copy_from_slice(&declared.to_le_bytes());
        bytes.truncate(bytes.len() - 16);
        c.send_bytes(&bytes);
    });
}

#[test]
fn a_graph_shorter_than_its_counts_is_refused() {
    Fixture::new().refuses("GRAPH_COMPUTE declares 2 tensors but carries", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let mut bytes = Vec::new();
        Request::GraphCompute(graph(&a, &[&a])).encode(&mut bytes);
        // Claim a second tensor the payload does not have.
        let n_tensors_at = 9 + 4 + 4 + 8;
        let n = u32::from_le_bytes(bytes[n_tensors_at..n_tensors_at + 4].try_into().unwrap());
        bytes[n_tensors_at..n_tensors_at + 4].copy_from_slice(&(n + 1).to_le_bytes());
        c.send_bytes(&bytes);
    });
}

#[test]
fn a_graph_over_the_tensor_limit_is_refused_before_it_is_received() {
    Fixture::new().refuses("GRAPH_COMPUTE declares 4000000000 tensors", |c, _| {
        c.send_bytes(&RequestHeader { command: Command::GraphCompute, size: 1 << 40 }.to_bytes());
        c.send_bytes(&0u32.to_le_bytes());
        c.send_bytes(&1u32.to_le_bytes());
        c.send_bytes(&2u64.to_le_bytes());
        c.send_bytes(&4_000_000_000u32.to_le_bytes());
    });
}

// -- Graphs ------------------------------------------------------------------------------

#[test]
fn a_graph_carrying_one_tensor_id_twice_is_refused() {
    Fixture::new().refuses("graph: tensor id 0x2 appears twice", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), OP_ADD, &[&a, &a]);
        c.compute(graph(&out, &[&a, &a, &out]));
    });
}

#[test]
fn a_graph_whose_source_it_does_not_carry_is_refused() {
    Fixture::new().refuses("which the graph does not carry", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let missing = tensor(9, F32, [4, 1, 1, 1], b, 128);
        let out = node(tensor(3, F32, [4, 1, 1, 1], b, 64), OP_ADD, &[&a, &missing]);
        c.compute(graph(&out, &[&a, &out]));
    });
}

#[test]
fn a_view_of_a_tensor_the_graph_does_not_carry_is_refused() {
    Fixture::new().refuses("which the graph does not carry", |c, b| {
        let mut view = tensor(3, F32, [4, 1, 1, 1], b, 0);
        view.op = OP_VIEW;
        view.view_source = 99;
        let out = node(tensor(4, F32, [4, 1, 1, 1], b, 256), OP_ADD, &[&view, &view]);
        c.compute(graph(&out, &[&view, &out]));
    });
}

#[test]
fn a_view_that_is_its_own_source_is_refused() {
    Fixture::new().refuses("graph: 't3' depends on itself through its sources", |c, b| {
        let mut view = tensor(3, F32, [4, 1, 1, 1], b, 0);
        view.op = OP_VIEW;
        view.view_source = view.id;
        let out = node(tensor(4, F32, [4, 1, 1, 1], b, 256), OP_ADD, &[&view, &view]);
        c.compute(graph(&out, &[&view, &out]));
    });
}

#[test]
fn a_node_that_is_its_own_source_is_refused() {
    Fixture::new().refuses("graph: 't3' depends on itself through its sources", |c, b| {
        let mut out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        out = node(out.clone(), OP_ADD, &[&out, &out]);
        c.compute(graph(&out, &[&out]));
    });
}

#[test]
fn a_graph_for_a_device_that_does_not_exist_is_refused() {
    Fixture::new().refuses("device 1 does not exist", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        let mut g = one_node(OP_ADD, &[], out, &[&a, &a]);
        g.device = 1;
        c.compute(g);
    });
}

#[test]
fn a_node_whose_output_lies_outside_its_buffer_is_refused() {
    Fixture::new().refuses("tensor 't3' at 0x", |c, b| {
        let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, b.size - 4);
        c.compute(one_node(OP_ADD, &[], out, &[&a, &a]));
    });
}

// -- Ops whose shapes, types or parameters do not fit -----------------------------------

#[test]
fn an_add_of_shapes_that_do_not_broadcast_is_refused() {
    Fixture::new().refuses("ADD: src1 with ne [3, 1, 1, 1] does not repeat into src0", |c, b| {
        let a = tensor(2, F32, [4, 2, 1, 1], b, 0);
        let x = tensor(3, F32, [3, 1, 1, 1], b, 64);
        let out = tensor(4, F32, [4, 2, 1, 1], b, 128);
        c.compute(one_node(OP_ADD, &[], out, &[&a, &x]));
    });
}

#[test]
fn an_rms_norm_of_integers_is_refused() {
    Fixture::new().refuses("RMS_NORM: src0 has type i32, expected f32", |c, b| {
        let a = tensor(2, I32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, I32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_RMS_NORM, &[], out, &[&a]));
    });
}

#[test]
fn a_copy_between_different_element_counts_is_refused() {
    Fixture::new().refuses(
        "graph node 0 ('t4'): CPY: dst element count 8 differs from src0's",
        |c, b| {
            let a = tensor(2, F32, [4, 1, 1, 1], b, 0);
            let dst = tensor(3, F16, [8, 1, 1, 1], b, 64);
            // The node is a view of CPY's destination, its second source, as ggml_cpy makes it.
            let out = tensor(4, F16, [8, 1, 1, 1], b, 64);
            c.compute(one_node(OP_CPY, &[], out, &[&a, &dst]));
        },
    );
}

#[test]
fn a_rope_of_an_unknown_mode_is_refused() {
    Fixture::new().refuses("ROPE: mode 77", |c, b| {
        let x = tensor(2, F32, [8, 2, 1, 1], b, 0);
        let positions = tensor(3, I32, [1, 1, 1, 1], b, 256);
        let out = tensor(4, F32, [8, 2, 1, 1], b, 512);
        // n_past, n_dims, mode
        c.compute(one_node(OP_ROPE, &[0, 8, 77], out, &[&x, &positions]));
    });
}

#[test]
fn a_rope_position_count_that_does_not_match_its_rows_is_refused() {
    Fixture::new().refuses("ROPE: src1 ne[0] 1 != src0 ne[2] 3", |c, b| {
        let x = tensor(2, F32, [8, 2, 3, 1], b, 0);
        let positions = tensor(3, I32, [1, 1, 1, 1], b, 256);
        let out = tensor(4, F32, [8, 2, 3, 1], b, 512);
        c.compute(one_node(OP_ROPE, &[0, 8, 0], out, &[&x, &positions]));
    });
}

#[test]
fn a_soft_max_mask_of_the_wrong_shape_is_refused() {
    Fixture::new().refuses("SOFT_MAX: mask ne[0] 4 != src0 ne[0] 8", |c, b| {
        let x = tensor(2, F32, [8, 2, 1, 1], b, 0);
        let mask = tensor(3, F32, [4, 1, 1, 1], b, 128);
        let out = tensor(4, F32, [8, 2, 1, 1], b, 256);
        c.compute(one_node(OP_SOFT_MAX, &[], out, &[&x, &mask]));
    });
}

#[test]
fn get_rows_with_float_ids_is_refused() {
    Fixture::new().refuses("GET_ROWS: src1 has type f32, expected i32", |c, b| {
        let rows = tensor(2, F32, [4, 2, 1, 1], b, 0);
        let ids = tensor(3, F32, [1, 1, 1, 1], b, 64);
        let out = tensor(4, F32, [4, 1, 1, 1], b, 128);
        c.compute(one_node(OP_GET_ROWS, &[], out, &[&rows, &ids]));
    });
}

#[test]
fn an_expert_id_past_the_experts_is_refused_as_it_is_read() {
    Fixture::new().refuses(
        "MUL_MAT_ID: row id 5 at ids [0, 0, 0] is outside the 2 rows",
        |c, b| {
            // 2 experts of 4x4, one token choosing one expert: expert 5.
            let experts = tensor(2, F32, [4, 4, 2, 1], b, 0);
            let x = tensor(3, F32, [4, 1, 1, 1], b, 256);
            let ids = tensor(4, I32, [1, 1, 1, 1], b, 320);
            c.set_tensor(&ids, 0, &5i32.to_le_bytes());
            let out = tensor(5, F32, [4, 1, 1, 1], b, 384);
            c.compute(one_node(OP_MUL_MAT_ID, &[], out, &[&experts, &x, &ids]));
        },
    );
}

#[test]
fn a_flash_attention_whose_key_and_query_heads_differ_in_size_is_refused() {
    Fixture::new().refuses("FLASH_ATTN_EXT: k ne[0] 4 != q ne[0] 8", |c, b| {
        let q = tensor(2, F32, [8, 1, 2, 1], b, 0);
        let k = tensor(3, F16, [4, 4, 2, 1], b, 256);
        let v = tensor(4, F16, [8, 4, 2, 1], b, 512);
        let out = tensor(5, F32, [8, 2, 1, 1], b, 1024);
        c.compute(one_node(OP_FLASH_ATTN_EXT, &[0x3f80_0000], out, &[&q, &k, &v]));
    });
}

#[test]
fn a_glu_whose_halves_differ_in_shape_is_refused() {
    Fixture::new().refuses("GLU: src1 has ne [8, 1, 1, 1], expected [4, 1, 1, 1]", |c, b| {
        let gate = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let up = tensor(3, F32, [8, 1, 1, 1], b, 64);
        let out = tensor(4, F32, [4, 1, 1, 1], b, 128);
        // op, swapped: SWIGLU
        c.compute(one_node(OP_GLU, &[2, 0], out, &[&gate, &up]));
    });
}

#[test]
fn a_glu_op_that_is_no_ggml_glu_op_is_refused() {
    Fixture::new().refuses("GLU: op 99 is no GLU op", |c, b| {
        let x = tensor(2, F32, [8, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_GLU, &[99, 0], out, &[&x]));
    });
}

#[test]
fn a_unary_op_that_is_no_ggml_unary_op_is_refused() {
    Fixture::new().refuses("graph node 0 ('t3'): UNARY: op 99 is no ggml unary op", |c, b| {
        let x = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_UNARY, &[99], out, &[&x]));
    });
}

#[test]
fn a_concat_along_a_fifth_dimension_is_refused() {
    Fixture::new().refuses("graph node 0 ('t3'): CONCAT: dim 4 must be 0, 1, 2 or 3", |c, b| {
        let x = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, F32, [8, 1, 1, 1], b, 64);
        c.compute(one_node(OP_CONCAT, &[4], out, &[&x, &x]));
    });
}

#[test]
fn an_argsort_of_an_unknown_order_is_refused() {
    Fixture::new().refuses("ARGSORT: order 7 must be 0 (ascending) or 1 (descending)", |c, b| {
        let x = tensor(2, F32, [4, 1, 1, 1], b, 0);
        let out = tensor(3, I32, [4, 1, 1, 1], b, 64);
        c.compute(one_node(OP_ARGSORT, &[7], out, &[&x]));
    });
}

#[test]
fn a_matrix_product_into_a_too_small_output_is_refused() {
    Fixture::new().refuses("MUL_MAT: dst has ne [8, 1, 1, 1], expected [8, 2, 1, 1]", |c, b| {
        let w = tensor(2, F32, [4, 8, 1, 1], b, 0);
        let x = tensor(3, F32, [4, 2, 1, 1], b, 256);
        let out = tensor(4, F32, [8, 1, 1, 1], b, 512);
        c.compute(one_node(OP_MUL_MAT, &[], out, &[&w, &x]));
    });
}

// -- Stalls and half commands ------------------------------------------------------------

/// A client that stops halfway through a header holds up nobody; once quiet past the idle
/// timeout it is closed and what it held is freed.
#[test]
fn half_a_header_then_silence_holds_up_nobody_and_ends_at_the_idle_timeout() {
    let mut f = Fixture::with_args(&["--idle-timeout", "1"]);
    let before = f.usage();
    let mut c = f.client();
    c.alloc(4096);
    c.send_bytes(&RequestHeader { command: Command::GetTensor, size: 48 }.to_bytes()[..5]);
    f.serve_others_until_closed(&mut c);
    f.wait_until_freed(&before);
    f.assert_logged("ended (idle timeout (1 s))");
}

#[test]
fn a_client_stalled_halfway_through_a_weight_upload_holds_up_nobody() {
    let mut f = Fixture::with_args(&["--idle-timeout", "1"]);
    let before = f.usage();
    let mut c = f.client();
    let b = c.alloc(1 << 20);
    let t = tensor(2, F32, [1 << 18, 1, 1, 1], &b, 0);
    let header = SetTensorHeader { tensor: t, cache_flag: 0, offset: 0 };
    let mut bytes = Vec::new();
    header.encode_request(&vec![7; 1 << 20], &mut bytes);
    c.send_bytes(&bytes[..bytes.len() / 2]);
    f.serve_others_until_closed(&mut c);
    f.wait_until_freed(&before);
    f.assert_logged("ended (idle timeout (1 s))");
}

#[test]
fn a_client_gone_halfway_through_a_command_is_freed() {
    let mut f = Fixture::new();
    let before = f.usage();
    let mut c = f.client();
    let b = c.alloc(64 << 10);
    let a = tensor(2, F32, [4, 1, 1, 1], &b, 0);
    let out = tensor(3, F32, [4, 1, 1, 1], &b, 64);
    let mut bytes = Vec::new();
    Request::GraphCompute(one_node(OP_ADD, &[], out, &[&a, &a])).encode(&mut bytes);
    c.send_bytes(&bytes[..bytes.len() / 2]);
    drop(c);
    f.wait_until_freed(&before);
    f.assert_logged("ended (peer closed in the middle of a request)");
    f.check_the_others_are_served();
}

/// rpc-server died of SIGPIPE when a client went away before its reply was written.
#[test]
fn a_client_gone_before_reading_a_large_reply_is_freed() {
    let mut f = Fixture::new();
    let before = f.usage();
    let mut c = f.client();
    let b = c.alloc(8 << 20);
    let t = tensor(2, F32, [2 << 20, 1, 1, 1], &b, 0);
    c.send(&Request::GetTensor { tensor: t, offset: 0, size: 8 << 20 });
    drop(c);
    f.wait_until_freed(&before);
    f.assert_logged("write error: Broken pipe");
    f.check_the_others_are_served();
}

// -- Limits of the server apply to ggml connections -------------------------------------

#[test]
fn max_sessions_counts_ggml_sessions() {
    // The fixture's TVM client and healthy ggml client are the two sessions allowed.
    let mut f = Fixture::with_args(&["--max-sessions", "2"]);
    let mut third = GgmlClient::connect(f.server.addr().parse().unwrap());
    third.send(&Request::Hello { conn_caps: [0; 24] });
    assert!(third.is_closed(), "a third session was admitted");
    f.assert_logged("refused a ggml-RPC session: tensor-rpc server is busy: 2 sessions open");
    f.check_the_others_are_served();
}

#[test]
fn the_handshake_timeout_applies_to_ggml_connections() {
    let mut f = Fixture::with_args(&["--handshake-timeout", "0.5"]);
    let mut c = GgmlClient::connect(f.server.addr().parse().unwrap());
    // HELLO's command byte, and nothing more.
    c.send_bytes(&[Command::Hello as u8]);
    f.serve_others_until_closed(&mut c);
    f.assert_logged("closed (handshake timeout)");
    f.check_the_others_are_served();
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
