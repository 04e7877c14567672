//! Malformed input: each case sends a crafted byte stream to a running server and checks what
//! it must do: answer with an Exception naming the problem (and go on serving that
//! connection), or close the connection. `healthy_client_...` runs every case while a
//! well-behaved client on the same server checks its answers.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::raw::{InProcessServer, RawConn, Reply};
use support::streams::{frame, hello, raw_frame};
use tensor_rpc::client::{Arg, Client, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::value::encode_packed_seq;
use tensor_rpc::endpoint::tvm::codec::{
    DataType, Device, PROTOCOL_VERSION, Packet, Syscall, TensorRecord, Value,
};

const MEMORY_LIMIT: u64 = 64 << 20;
const F32: DataType = DataType::FLOAT32;

fn server() -> &'static InProcessServer {
    static SERVER: OnceLock<InProcessServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        InProcessServer::start(|config| {
            config.connection.session.memory_limit = Some(MEMORY_LIMIT);
        })
    })
}

// ---- crafting bytes ----

/// A packet body: the code, then whatever the case appends.
fn body(code: i32) -> Vec<u8> {
    code.to_le_bytes().to_vec()
}

fn seq(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_packed_seq(values, &mut out);
    out
}

/// A CallFunc of `function` whose packed arguments are the raw `args` bytes.
fn call_frame(function: u64, args: &[u8]) -> Vec<u8> {
    let mut b = body(3);
    b.extend_from_slice(&function.to_le_bytes());
    b.extend_from_slice(args);
    raw_frame(&b)
}

/// A tensor record with any ndim and shape: `u64 data, device, i32 ndim, dtype, shape,
/// u64 byte_offset`.
fn record_bytes(data: u64, ndim: i32, dtype: DataType, shape: &[i64], offset: u64) -> Vec<u8> {
    let mut out = data.to_le_bytes().to_vec();
    out.extend_from_slice(&1i32.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&ndim.to_le_bytes());
    out.extend_from_slice(&[dtype.code, dtype.bits]);
    out.extend_from_slice(&dtype.lanes.to_le_bytes());
    for d in shape {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&offset.to_le_bytes());
    out
}

/// DevAllocDataWithScope of a raw tensor record (the common way a record reaches the server).
fn alloc_with_record(record: &[u8]) -> Vec<u8> {
    let mut b = body(17);
    b.extend_from_slice(&2i32.to_le_bytes());
    b.extend_from_slice(&7i32.to_le_bytes());
    b.extend_from_slice(record);
    b.extend_from_slice(&0i32.to_le_bytes()); // None scope
    raw_frame(&b)
}

fn copy_to(target: &TensorRecord, data: &[u8]) -> Vec<u8> {
    frame(&Packet::CopyToRemote { target: target.clone(), data: data.into() })
}

fn copy_from(source: &TensorRecord, nbytes: u64) -> Vec<u8> {
    frame(&Packet::CopyFromRemote { source: source.clone(), nbytes })
}

fn syscall(call: Syscall) -> Vec<u8> {
    frame(&Packet::Syscall(call))
}

fn with_offset(record: &TensorRecord, byte_offset: u64) -> TensorRecord {
    TensorRecord { byte_offset, ..record.clone() }
}

fn with_data(record: &TensorRecord, data: u64) -> TensorRecord {
    TensorRecord { data, ..record.clone() }
}

// ---- expected outcomes ----

/// The reply to `bytes` is an Exception containing `text`, and the connection still serves.
fn expect_exception(conn: &mut RawConn, bytes: &[u8], text: &str) {
    conn.send(bytes);
    match conn.reply() {
        Reply::Packet(Packet::Exception(message)) => {
            assert!(message.contains(text), "Exception {message:?} does not say {text:?}")
        }
        other => panic!("expected an Exception saying {text:?}, got {other:?}"),
    }
    still_serves(conn);
}

fn still_serves(conn: &mut RawConn) {
    assert_eq!(
        conn.call("testing.echo", vec![Value::Int(7)]),
        Reply::Packet(Packet::call_return(Value::Int(7))),
        "the connection no longer serves"
    );
}

/// After `bytes`, the server closes the connection without answering anything.
fn expect_closed(conn: &mut RawConn, bytes: &[u8]) {
    conn.send(bytes);
    conn.set_read_timeout(Duration::from_secs(10));
    assert_eq!(conn.read_until_closed(), Some(0), "expected the connection closed, unanswered");
}

fn session(addr: SocketAddr) -> RawConn {
    RawConn::session(addr)
}

/// Each case: a test of its own, and an entry of `CASES` for the concurrent run.
macro_rules! cases {
    ($($name:ident: $case:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let case: fn(SocketAddr) = $case;
                case(server().addr);
            }
        )*
        const CASES: &[(&str, fn(SocketAddr))] = &[$((stringify!($name), $case)),*];
    };
}

cases! {
    // ---- handshake ----
    handshake_with_wrong_magic_closes_the_connection: |addr| {
        let mut c = RawConn::connect(addr);
        expect_closed(&mut c, &[&0x1234i32.to_le_bytes()[..], &7i32.to_le_bytes(), b"client:"].concat());
    };
    handshake_with_negative_key_length_closes_the_connection: |addr| {
        let mut c = RawConn::connect(addr);
        expect_closed(&mut c, &[0xFF271i32.to_le_bytes(), (-1i32).to_le_bytes()].concat());
    };
    handshake_with_key_length_above_4096_closes_the_connection: |addr| {
        let mut c = RawConn::connect(addr);
        expect_closed(&mut c, &[0xFF271i32.to_le_bytes(), 4097i32.to_le_bytes()].concat());
    };
    handshake_key_that_is_not_utf8_closes_the_connection: |addr| {
        let mut c = RawConn::connect(addr);
        let hello = [&0xFF271i32.to_le_bytes()[..], &2i32.to_le_bytes(), &[0xFF, 0xFE]].concat();
        expect_closed(&mut c, &hello);
    };
    handshake_with_a_wrong_key_gets_the_mismatch_status_then_closes: |addr| {
        let mut c = RawConn::connect(addr);
        c.send(&hello("client:someone-else"));
        assert_eq!(c.read_i32(), Some(0xFF273));
        assert_eq!(c.read_until_closed(), Some(0));
    };
    handshake_cut_short_by_eof_closes_without_a_reply: |addr| {
        let mut c = RawConn::connect(addr);
        c.send(&0xFF271i32.to_le_bytes()[..3]);
        c.finish_sending();
        assert_eq!(c.read_until_closed(), Some(0));
    };

    // ---- framing ----
    packet_length_of_2_pow_63_closes_the_connection: |addr| {
        expect_closed(&mut session(addr), &(1u64 << 63).to_le_bytes());
    };
    packet_length_of_u64_max_closes_the_connection: |addr| {
        expect_closed(&mut session(addr), &u64::MAX.to_le_bytes());
    };
    packet_length_one_past_the_maximum_packet_closes_the_connection: |addr| {
        expect_closed(&mut session(addr), &((64u64 << 20) + 1).to_le_bytes());
    };
    zero_length_packets_are_ignored: |addr| {
        let mut c = session(addr);
        c.send(&[0u8; 24]);
        still_serves(&mut c);
    };
    truncated_packet_then_eof_closes_without_a_reply: |addr| {
        let mut c = session(addr);
        c.send(&[&100u64.to_le_bytes()[..], &[3, 0, 0, 0, 1, 2]].concat());
        c.finish_sending();
        assert_eq!(c.read_until_closed(), Some(0));
    };
    packet_shorter_than_its_code_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &raw_frame(&[9, 0]), "packet truncated: RPC code needs 4 bytes");
    };
    shutdown_packet_ends_the_session_without_a_reply: |addr| {
        expect_closed(&mut session(addr), &frame(&Packet::Shutdown));
    };

    // ---- codes ----
    unknown_rpc_code_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &raw_frame(&body(99)), "unknown RPC code 99");
    };
    negative_rpc_code_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &raw_frame(&body(-7)), "unknown RPC code -7");
    };
    rpc_code_none_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &raw_frame(&body(0)), "unknown RPC code 0");
    };
    return_packet_from_a_client_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &frame(&Packet::return_void()), "unexpected Return packet");
    };
    copy_ack_packet_from_a_client_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &frame(&Packet::CopyAck(vec![1, 2].into())), "unexpected CopyAck packet");
    };
    exception_packet_from_a_client_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &frame(&Packet::Exception("x".into())), "unexpected Exception packet");
    };

    // ---- packed sequences ----
    unknown_type_index_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [1i32.to_le_bytes(), 200i32.to_le_bytes()].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "argument 0 has unknown type index 200");
    };
    negative_type_index_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [1i32.to_le_bytes(), (-3i32).to_le_bytes()].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "argument 0 has unknown type index -3");
    };
    tensor_object_argument_type_70_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [&1i32.to_le_bytes()[..], &70i32.to_le_bytes(), &[0; 8]].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "type index 70 (ffi.Tensor object; pass a DLTensor)");
    };
    array_object_argument_type_71_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [&1i32.to_le_bytes()[..], &71i32.to_le_bytes(), &[0; 8]].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "type index 71 (ffi.Array)");
    };
    negative_argument_count_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        expect_exception(&mut c, &call_frame(echo, &(-1i32).to_le_bytes()), "negative argument count -1");
    };
    argument_count_above_the_limit_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        expect_exception(&mut c, &call_frame(echo, &i32::MAX.to_le_bytes()), "2147483647 arguments exceed the limit of 4096");
    };
    argument_count_beyond_the_packet_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [&100i32.to_le_bytes()[..], &[0; 8]].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "packet truncated: packed sequence");
    };
    string_that_is_not_utf8_gets_an_exception: |addr| {
        let mut b = body(9);
        b.extend([&1i32.to_le_bytes()[..], &8i32.to_le_bytes(), &2u64.to_le_bytes(), &[0xFF, 0xFE]].concat());
        expect_exception(&mut session(addr), &raw_frame(&b), "string argument is not valid UTF-8");
    };
    string_length_of_2_pow_63_gets_an_exception: |addr| {
        let mut b = body(9);
        b.extend([&1i32.to_le_bytes()[..], &8i32.to_le_bytes(), &(1u64 << 63).to_le_bytes()].concat());
        expect_exception(&mut session(addr), &raw_frame(&b), "string of 9223372036854775808 bytes exceeds the limit");
    };
    bytes_length_past_the_packet_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [&1i32.to_le_bytes()[..], &9i32.to_le_bytes(), &1000u64.to_le_bytes(), b"abc"].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "packet truncated: bytes needs 1000 bytes but only 3 remain");
    };
    str_object_with_a_bytes_inner_index_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        let args = [&1i32.to_le_bytes()[..], &65i32.to_le_bytes(), &66u32.to_le_bytes(), &0u64.to_le_bytes()].concat();
        expect_exception(&mut c, &call_frame(echo, &args), "object type index 65 carries inner type index 66");
    };
    trailing_bytes_after_the_arguments_get_an_exception: |addr| {
        let mut b = body(9);
        b.extend(seq(&[Value::Str("testing.echo".into())]));
        b.extend([1, 2, 3, 4, 5]);
        expect_exception(&mut session(addr), &raw_frame(&b), "packet has 5 unread bytes after its contents");
    };
    syscall_with_arguments_of_the_wrong_types_gets_an_exception: |addr| {
        let mut b = body(13);
        b.extend(seq(&[Value::Str("x".into())]));
        expect_exception(&mut session(addr), &raw_frame(&b), "DevAllocData expects [Device, Int nbytes, Int alignment, DataType], got [Str of 1 bytes]");
    };

    // ---- tensor records ----
    negative_ndim_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &alloc_with_record(&record_bytes(0, -1, F32, &[], 0)), "ndim -1 is outside the allowed range 0..=32");
    };
    huge_ndim_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &alloc_with_record(&record_bytes(0, i32::MAX, F32, &[], 0)), "ndim 2147483647 is outside the allowed range 0..=32");
    };
    ndim_beyond_the_shape_bytes_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &alloc_with_record(&record_bytes(0, 32, F32, &[1, 2], 0)), "packet truncated: tensor shape");
    };
    negative_dimension_gets_an_exception: |addr| {
        expect_exception(&mut session(addr), &alloc_with_record(&record_bytes(0, 2, F32, &[2, -3], 0)), "negative dimension -3 at axis 1");
    };
    shape_whose_byte_size_overflows_gets_an_exception: |addr| {
        let record = record_bytes(0, 2, F32, &[1 << 32, 1 << 32], 0);
        expect_exception(&mut session(addr), &alloc_with_record(&record), "holds more bytes than fit in 64 bits");
    };
    dtype_with_zero_lanes_gets_an_exception: |addr| {
        let record = record_bytes(0, 1, DataType::new(DataType::FLOAT, 32, 0), &[4], 0);
        expect_exception(&mut session(addr), &alloc_with_record(&record), "has zero lanes");
    };

    // ---- allocations ----
    allocation_above_the_memory_limit_gets_an_exception: |addr| {
        let call = Syscall::DevAllocData { device: Device::cpu(0), nbytes: 1 << 40, alignment: 64, dtype: F32 };
        expect_exception(&mut session(addr), &syscall(call), "above the session's memory limit of 67108864");
    };
    negative_allocation_size_gets_an_exception: |addr| {
        let call = Syscall::DevAllocData { device: Device::cpu(0), nbytes: -1, alignment: 64, dtype: F32 };
        expect_exception(&mut session(addr), &syscall(call), "cannot allocate a negative size -1");
    };
    alignment_that_is_not_a_power_of_two_gets_an_exception: |addr| {
        let call = Syscall::DevAllocData { device: Device::cpu(0), nbytes: 64, alignment: 48, dtype: F32 };
        expect_exception(&mut session(addr), &syscall(call), "alignment 48 is not a power of two up to 4096");
    };
    allocation_on_a_device_we_do_not_serve_gets_an_exception: |addr| {
        let device = Device { device_type: 2, device_id: 0 };
        let call = Syscall::DevAllocData { device, nbytes: 64, alignment: 64, dtype: F32 };
        expect_exception(&mut session(addr), &syscall(call), "is not available on this server (it serves cpu)");
    };

    // ---- copies ----
    copy_to_remote_past_the_allocation_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_to(&with_offset(&t, 8), &[0; 16]), "bytes [8, 8 + 16) lie outside the allocation of 16 bytes");
    };
    copy_from_remote_past_the_allocation_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_from(&with_offset(&t, 4), 16), "bytes [4, 4 + 16) lie outside the allocation of 16 bytes");
    };
    tensor_claiming_more_than_its_allocation_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        let forged = TensorRecord { shape: vec![1024], ..t.clone() };
        expect_exception(&mut c, &copy_to(&forged, &[0; 4096]), "bytes [0, 0 + 4096) lie outside the allocation of 16 bytes");
    };
    byte_offset_of_u64_max_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_from(&with_offset(&t, u64::MAX), 4), "lie outside the allocation of 16 bytes");
    };
    copy_to_remote_of_more_bytes_than_the_tensor_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_to(&t, &[0; 32]), "copy of 32 bytes exceeds the 16 bytes of a float32 tensor of shape [4]");
    };
    copy_from_remote_of_more_bytes_than_the_tensor_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_from(&t, 32), "copy of 32 bytes exceeds the 16 bytes of a float32 tensor of shape [4]");
    };
    copy_to_remote_whose_declared_length_differs_from_its_payload_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        let mut b = body(7);
        b.extend(record_bytes(t.data, 1, F32, &[4], 0));
        b.extend(100u64.to_le_bytes());
        b.extend([0; 16]);
        expect_exception(&mut c, &raw_frame(&b), "CopyToRemote declares 100 bytes but carries 16");
    };
    copy_among_remote_of_different_sizes_gets_an_exception: |addr| {
        let mut c = session(addr);
        let (a, b) = (c.tensor(F32, &[4]), c.tensor(F32, &[8]));
        let call = Syscall::CopyAmongRemote { from: a, to: b, stream: 0 };
        expect_exception(&mut c, &syscall(call), "cannot copy 16 bytes (float32 [4]) into 32 bytes (float32 [8])");
    };

    // ---- handles ----
    forged_data_handle_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_to(&with_data(&t, 0xdead_beef_0000_0001), &[0; 16]), "handle 0xdeadbeef00000001 is not valid in this session");
    };
    freed_data_handle_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        c.free(&t);
        expect_exception(&mut c, &copy_to(&t, &[0; 16]), "is not valid in this session (never issued here, or already freed)");
    };
    handle_whose_slot_was_reused_gets_an_exception: |addr| {
        let mut c = session(addr);
        let old = c.tensor(F32, &[4]);
        c.free(&old);
        let new = c.tensor(F32, &[4]);
        assert_eq!(old.data & 0xFFFF_FFFF, new.data & 0xFFFF_FFFF, "the slot is reused");
        expect_exception(&mut c, &copy_to(&old, &[0; 16]), &format!("handle {:#x} is not valid", old.data));
    };
    double_free_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        c.free(&t);
        let call = Syscall::DevFreeData { device: Device::cpu(0), data: t.data };
        expect_exception(&mut c, &syscall(call), "is not valid in this session");
    };
    null_data_handle_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &copy_to(&with_data(&t, 0), &[0; 16]), "tensor has a null data handle");
    };
    handle_of_another_session_gets_an_exception: |addr| {
        let mut other = session(addr);
        let theirs = other.tensor(F32, &[4]);
        expect_exception(&mut session(addr), &copy_to(&theirs, &[0; 16]), "is not valid in this session");
    };
    function_handle_used_as_data_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        let echo = c.function("testing.echo");
        expect_exception(&mut c, &copy_to(&with_data(&t, echo), &[0; 16]), "is a function, not a data allocation");
    };
    data_handle_called_as_a_function_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: t.data, args: vec![] }), "is a data allocation, not a function");
    };
    forged_function_handle_gets_an_exception: |addr| {
        let frame = frame(&Packet::CallFunc { function: 0x7f00_dead_beef, args: vec![] });
        expect_exception(&mut session(addr), &frame, "handle 0x7f00deadbeef is not valid in this session");
    };
    forged_stream_handle_gets_an_exception: |addr| {
        let call = Syscall::DevSetStream { device: Device::cpu(0), stream: 0x1234_0000_0007 };
        expect_exception(&mut session(addr), &syscall(call), "handle 0x123400000007 is not valid in this session");
    };
    free_handle_of_a_data_allocation_gets_an_exception: |addr| {
        let mut c = session(addr);
        let t = c.tensor(F32, &[4]);
        expect_exception(&mut c, &syscall(Syscall::FreeHandle { handle: t.data }), "is a data allocation, not a function");
    };

    // ---- session setup ----
    init_server_twice_gets_an_exception: |addr| {
        let init = Packet::InitServer { version: PROTOCOL_VERSION.into(), args: vec![] };
        expect_exception(&mut session(addr), &frame(&init), "InitServer: the server has already been initialized");
    };
    wrong_protocol_version_gets_an_exception: |addr| {
        let mut c = RawConn::handshaken(addr);
        let init = Packet::InitServer { version: "0.7.0".into(), args: vec![] };
        c.send(&frame(&init));
        assert_eq!(c.reply(), Reply::Packet(Packet::Exception(
            "InitServer: client protocol version \"0.7.0\" does not match the server's \"0.8.0\"".into()
        )));
    };
    init_server_version_that_is_not_utf8_gets_an_exception: |addr| {
        let mut c = RawConn::handshaken(addr);
        let mut b = body(2);
        b.extend([&3u64.to_le_bytes()[..], &[0xC3, 0x28, 0x30], &0i32.to_le_bytes()].concat());
        c.send(&raw_frame(&b));
        assert_eq!(c.reply(), Reply::Packet(Packet::Exception("protocol version is not valid UTF-8".into())));
    };
    call_before_init_server_gets_an_exception: |addr| {
        let mut c = RawConn::handshaken(addr);
        c.send(&syscall(Syscall::GetGlobalFunc { name: "testing.echo".into() }));
        assert_eq!(c.reply(), Reply::Packet(Packet::Exception(
            "GetGlobalFunc before InitServer: the session is not initialized".into()
        )));
    };
    unknown_session_constructor_gets_an_exception: |addr| {
        let mut c = RawConn::handshaken(addr);
        let init = Packet::InitServer { version: PROTOCOL_VERSION.into(), args: vec![Value::Str("rpc.Nope".into())] };
        c.send(&frame(&init));
        assert_eq!(c.reply(), Reply::Packet(Packet::Exception(
            "InitServer: unknown session constructor 'rpc.Nope'".into()
        )));
    };
    relay_to_this_server_itself_gets_an_exception: |addr| {
        let mut c = RawConn::handshaken(addr);
        let args = vec![
            Value::Str("rpc.Connect".into()),
            Value::Str("127.0.0.1".into()),
            Value::Int(i64::from(addr.port())),
            Value::Str(String::new()),
            Value::Bool(false),
        ];
        c.send(&frame(&Packet::InitServer { version: PROTOCOL_VERSION.into(), args }));
        assert_eq!(c.reply(), Reply::Packet(Packet::Exception(format!(
            "rpc.Connect to 127.0.0.1:{} refused: that is this server itself", addr.port()
        ))));
    };

    // ---- files ----
    upload_with_parent_directory_traversal_gets_an_exception: |addr| {
        let mut c = session(addr);
        let upload = c.function("tvm.rpc.server.upload");
        let args = vec![Value::Str("../escaped".into()), Value::Bytes(b"x".to_vec())];
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: upload, args }), "refused file name '../escaped': '..' leaves the session directory");
    };
    upload_to_an_absolute_path_gets_an_exception: |addr| {
        let mut c = session(addr);
        let upload = c.function("tvm.rpc.server.upload");
        let args = vec![Value::Str("/tmp/tensor-rpc-escaped".into()), Value::Bytes(b"x".to_vec())];
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: upload, args }), "absolute paths are not allowed");
    };
    download_with_parent_directory_traversal_gets_an_exception: |addr| {
        let mut c = session(addr);
        let download = c.function("tvm.rpc.server.download");
        let args = vec![Value::Str("a/../../../etc/passwd".into())];
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: download, args }), "'..' leaves the session directory");
    };
    remove_with_parent_directory_traversal_gets_an_exception: |addr| {
        let mut c = session(addr);
        let remove = c.function("tvm.rpc.server.remove");
        let args = vec![Value::Str("..".into())];
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: remove, args }), "'..' leaves the session directory");
    };

    // ---- functions ----
    echo_without_arguments_gets_an_exception: |addr| {
        let mut c = session(addr);
        let echo = c.function("testing.echo");
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: echo, args: vec![] }), "expects at least one argument, got none");
    };
    timing_with_too_many_calls_gets_an_exception: |addr| {
        let mut c = session(addr);
        let time = c.function("tensor_rpc.time");
        let args = vec![Value::Str("tensor_rpc.relu".into()), Value::Int(1000), Value::Int(1000)];
        expect_exception(&mut c, &frame(&Packet::CallFunc { function: time, args }), "with at most 10000 calls in all");
    };
}

#[test]
fn suite_has_at_least_forty_cases() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
}

/// Uploads two vectors, adds them on the server, downloads the sum and compares it with the
/// sum computed here, until told to stop; counts rounds and wrong answers.
fn healthy_client(addr: SocketAddr, stop: &AtomicBool, rounds: &AtomicU64, wrong: &AtomicU64) {
    let client = Client::connect(addr, "").expect("healthy client connects");
    let dev = client.cpu(0);
    let add = client.function("tensor_rpc.add").expect("tensor_rpc.add");
    let mut round = 0u32;
    // At least ten rounds, and on until every case has run.
    while !stop.load(Ordering::SeqCst) || round < 10 {
        let a: Vec<f32> = (0..256).map(|i| (i as f32) * 0.5 + round as f32).collect();
        let b: Vec<f32> = (0..256).map(|i| (i as f32) - round as f32).collect();
        let ta = RemoteTensor::from_slice(&dev, &[256], &a).unwrap();
        let tb = RemoteTensor::from_slice(&dev, &[256], &b).unwrap();
        let out = RemoteTensor::empty(&dev, &[256], F32).unwrap();
        add.call(&[Arg::Tensor(&ta), Arg::Tensor(&tb), Arg::Tensor(&out)]).unwrap();
        let expected: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        if out.to_vec::<f32>().unwrap() != expected {
            wrong.fetch_add(1, Ordering::SeqCst);
        }
        rounds.fetch_add(1, Ordering::SeqCst);
        round += 1;
    }
}

#[test]
fn healthy_client_gets_correct_answers_while_every_malformed_case_runs() {
    let addr = server().addr;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let healthy = {
        let (stop, rounds, wrong) = (Arc::clone(&stop), Arc::clone(&rounds), Arc::clone(&wrong));
        std::thread::spawn(move || healthy_client(addr, &stop, &rounds, &wrong))
    };
    for (name, case) in CASES {
        if let Err(panic) = std::panic::catch_unwind(|| case(addr)) {
            stop.store(true, Ordering::SeqCst);
            eprintln!("case {name} failed");
            std::panic::resume_unwind(panic);
        }
    }
    stop.store(true, Ordering::SeqCst);
    healthy.join().expect("the healthy client failed a call");
    assert_eq!(wrong.load(Ordering::SeqCst), 0, "wrong answers to the healthy client");
    assert!(
        rounds.load(Ordering::SeqCst) >= 10,
        "healthy rounds: {}",
        rounds.load(Ordering::SeqCst)
    );
}
