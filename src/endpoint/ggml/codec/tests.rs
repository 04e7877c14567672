use proptest::prelude::*;

use super::*;

fn limits() -> GraphLimits {
    GraphLimits::default()
}

/// Limits that never bind, so the byte checks are the ones tested.
fn no_limits() -> GraphLimits {
    GraphLimits { max_nodes: u32::MAX, max_tensors: u32::MAX }
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn decode(command: Command, payload: &[u8]) -> Result<Request, GgmlDecodeError> {
    Request::decode(command, payload, &limits())
}

fn payload_of(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode_payload(&mut out);
    out
}

fn encoded(tensor: &RpcTensor) -> Vec<u8> {
    let mut out = Vec::new();
    tensor.encode(&mut out);
    out
}

/// A tensor whose every field holds a different, recognisable value.
fn tensor(id: u64) -> RpcTensor {
    let mut t = RpcTensor {
        id,
        ggml_type: 8,
        buffer: 0x5555_0000_1000,
        shape: [4096, 32, 1, 1],
        byte_strides: [34, 4352, 139264, 139264],
        op: 29,
        op_params: [0; RpcTensor::OP_PARAMS],
        flags: 16,
        sources: [0; RpcTensor::MAX_SOURCES],
        view_source: id + 7,
        view_offset: 64,
        data: 0x5555_0000_1040,
        name: [0; RpcTensor::NAME_LEN],
        use_count: 2,
    };
    t.op_params[0] = 1e-5f32.to_bits() as i32;
    t.op_params[15] = -3;
    t.sources[0] = id + 1;
    t.sources[9] = id + 2;
    t.set_name("blk.0.attn_norm.weight");
    t
}

fn graph(n_nodes: usize, n_tensors: usize) -> GraphPayload {
    GraphPayload {
        device: 1,
        node_ids: (0..n_nodes as u64).map(|i| 0x1000 + i).collect(),
        tensors: (0..n_tensors as u64).map(|i| tensor(0x1000 + i)).collect(),
    }
}

/// One request of every command but SET_TENSOR, whose data is streamed.
fn sample(command: Command) -> Option<Request> {
    Some(match command {
        Command::AllocBuffer => Request::AllocBuffer { device: 1, size: 1 << 33 },
        Command::GetAlignment => Request::GetAlignment { device: 2 },
        Command::GetMaxSize => Request::GetMaxSize { device: 3 },
        Command::BufferGetBase => Request::BufferGetBase { remote_ptr: 0x5555_0000_0010 },
        Command::FreeBuffer => Request::FreeBuffer { remote_ptr: 0x5555_0000_0020 },
        Command::BufferClear => Request::BufferClear { remote_ptr: 0x5555_0000_0030, value: 0xab },
        Command::SetTensor => return None,
        Command::SetTensorHash => {
            Request::SetTensorHash { tensor: tensor(0x10), offset: 8, hash: 0xcbf2_9ce4_8422_2325 }
        }
        Command::GetTensor => Request::GetTensor { tensor: tensor(0x20), offset: 16, size: 4096 },
        Command::CopyTensor => {
            Request::CopyTensor { source: tensor(0x30), destination: tensor(0x40) }
        }
        Command::GraphCompute => Request::GraphCompute(graph(3, 5)),
        Command::GetDeviceMemory => Request::GetDeviceMemory { device: 4 },
        Command::InitTensor => Request::InitTensor { tensor: tensor(0x50) },
        Command::GetAllocSize => {
            let mut sources = Box::new([RpcTensor::ABSENT; RpcTensor::MAX_SOURCES]);
            sources[0] = tensor(0x61);
            sources[1] = tensor(0x62);
            Request::GetAllocSize { device: 5, tensor: tensor(0x60), sources }
        }
        Command::Hello => Request::Hello { conn_caps: [0; CONN_CAPS_LEN] },
        Command::DeviceCount => Request::DeviceCount,
        Command::GraphRecompute => Request::GraphRecompute { device: 6 },
        Command::MemsetTensor => {
            Request::MemsetTensor { tensor: tensor(0x70), offset: 1, size: 2, value: 3 }
        }
    })
}

fn samples() -> impl Iterator<Item = Request> {
    Command::ALL.into_iter().filter_map(sample)
}

/// One reply of every command that has one.
fn sample_reply(command: Command) -> Option<Reply> {
    Some(match command {
        Command::Hello => Reply::hello_tcp(),
        Command::DeviceCount => Reply::DeviceCount { count: 2 },
        Command::AllocBuffer => {
            Reply::AllocBuffer { remote_ptr: 0x5555_0000_0010, remote_size: 4096 }
        }
        Command::GetAlignment => Reply::GetAlignment { alignment: 32 },
        Command::GetMaxSize => Reply::GetMaxSize { max_size: u64::MAX },
        Command::BufferGetBase => Reply::BufferGetBase { base_ptr: 0x7f00_0000_0000 },
        Command::SetTensorHash => Reply::SetTensorHash { found: true },
        Command::GetTensor => Reply::GetTensor { data: vec![1, 2, 3, 4, 5] },
        Command::CopyTensor => Reply::CopyTensor { copied: false },
        Command::GetDeviceMemory => Reply::GetDeviceMemory { free: 1 << 30, total: 1 << 31 },
        Command::GetAllocSize => Reply::GetAllocSize { size: 4608 },
        Command::FreeBuffer
        | Command::BufferClear
        | Command::SetTensor
        | Command::GraphCompute
        | Command::InitTensor
        | Command::GraphRecompute
        | Command::MemsetTensor => return None,
    })
}

// ---- commands and headers ----

#[test]
fn command_bytes_follow_ggmls_enum_order() {
    for (byte, command) in Command::ALL.into_iter().enumerate() {
        assert_eq!(usize::from(command.as_u8()), byte);
        assert_eq!(Command::from_u8(command.as_u8()), Some(command));
    }
    assert_eq!(Command::AllocBuffer.as_u8(), 0);
    assert_eq!(Command::Hello.as_u8(), 14);
    assert_eq!(Command::MemsetTensor.as_u8(), 17);
    assert_eq!(Command::GraphCompute.name(), "GRAPH_COMPUTE");
    assert_eq!(Command::SetTensorHash.to_string(), "SET_TENSOR_HASH");
}

#[test]
fn command_none_and_above_are_unknown() {
    for byte in 18..=u8::MAX {
        assert_eq!(Command::from_u8(byte), None);
        let mut header = [0; REQUEST_HEADER_LEN];
        header[0] = byte;
        assert_eq!(RequestHeader::decode(&header), Err(GgmlDecodeError::UnknownCommand(byte)));
    }
    assert_eq!(GgmlDecodeError::UnknownCommand(200).to_string(), "unknown command 200");
}

#[test]
fn commands_with_replies_are_those_ggmls_client_waits_for() {
    let answered: Vec<Command> = Command::ALL.into_iter().filter(|c| c.has_reply()).collect();
    assert_eq!(
        answered,
        [
            Command::AllocBuffer,
            Command::GetAlignment,
            Command::GetMaxSize,
            Command::BufferGetBase,
            Command::SetTensorHash,
            Command::GetTensor,
            Command::CopyTensor,
            Command::GetDeviceMemory,
            Command::GetAllocSize,
            Command::Hello,
            Command::DeviceCount,
        ]
    );
}

#[test]
fn only_set_tensor_and_graph_compute_have_variable_payloads() {
    for command in Command::ALL {
        let variable = matches!(command.payload_rule(), PayloadRule::AtLeast(_));
        assert_eq!(variable, matches!(command, Command::SetTensor | Command::GraphCompute));
    }
    assert_eq!(Command::SetTensor.payload_rule(), PayloadRule::AtLeast(305));
    assert_eq!(Command::GraphCompute.payload_rule(), PayloadRule::AtLeast(12));
    assert!(Command::SetTensor.streams_payload());
}

#[test]
fn payload_and_reply_sizes_are_those_of_ggmls_packed_structs() {
    // sizeof(rpc_msg_*_req) and sizeof(rpc_msg_*_rsp), as g++ lays them out.
    let expected: [(Command, u64, Option<u64>); 18] = [
        (Command::AllocBuffer, 12, Some(16)),
        (Command::GetAlignment, 4, Some(8)),
        (Command::GetMaxSize, 4, Some(8)),
        (Command::BufferGetBase, 8, Some(8)),
        (Command::FreeBuffer, 8, None),
        (Command::BufferClear, 9, None),
        (Command::SetTensor, 305, None),
        (Command::SetTensorHash, 312, Some(1)),
        (Command::GetTensor, 312, None),
        (Command::CopyTensor, 592, Some(1)),
        (Command::GraphCompute, 12, None),
        (Command::GetDeviceMemory, 4, Some(16)),
        (Command::InitTensor, 296, None),
        (Command::GetAllocSize, 3260, Some(8)),
        (Command::Hello, 24, Some(28)),
        (Command::DeviceCount, 0, Some(4)),
        (Command::GraphRecompute, 4, None),
        (Command::MemsetTensor, 313, None),
    ];
    for (command, payload, reply) in expected {
        let rule = command.payload_rule();
        assert!(matches!(rule, PayloadRule::Exact(n) | PayloadRule::AtLeast(n) if n == payload));
        if let Some(reply) = reply {
            assert_eq!(command.reply_rule(), ReplyRule::Exact(reply), "{command}");
        }
    }
    assert_eq!(Command::GetTensor.reply_rule(), ReplyRule::Requested);
}

#[test]
fn decodes_a_hello_header_from_its_nine_bytes() {
    let bytes: [u8; 9] = hex("0e 18 00 00 00 00 00 00 00").try_into().unwrap();
    let header = RequestHeader::decode(&bytes).unwrap();
    assert_eq!(header, RequestHeader { command: Command::Hello, size: 24 });
    assert_eq!(header.to_bytes(), bytes);
    let mut encoded = Vec::new();
    header.encode(&mut encoded);
    assert_eq!(encoded, bytes);
}

#[test]
fn header_refuses_a_fixed_command_declaring_another_size() {
    let header = RequestHeader { command: Command::AllocBuffer, size: 13 }.to_bytes();
    let error = RequestHeader::decode(&header).unwrap_err();
    assert_eq!(
        error,
        GgmlDecodeError::PayloadSize { command: Command::AllocBuffer, size: 13, expected: 12 }
    );
    assert_eq!(error.to_string(), "payload of ALLOC_BUFFER is 13 bytes, expected 12");
}

#[test]
fn header_refuses_a_size_of_two_to_the_63_for_fixed_commands() {
    for command in Command::ALL {
        if let PayloadRule::Exact(_) = command.payload_rule() {
            let header = RequestHeader { command, size: 1 << 63 }.to_bytes();
            assert!(RequestHeader::decode(&header).is_err(), "{command}");
        }
    }
}

#[test]
fn header_refuses_device_count_with_a_payload() {
    let header = RequestHeader { command: Command::DeviceCount, size: 1 }.to_bytes();
    assert!(RequestHeader::decode(&header).is_err());
    let header = RequestHeader { command: Command::DeviceCount, size: 0 }.to_bytes();
    assert!(RequestHeader::decode(&header).is_ok());
}

#[test]
fn header_bounds_variable_commands_only_by_their_minimum() {
    let decode = |command, size| RequestHeader::decode(&RequestHeader { command, size }.to_bytes());
    assert!(decode(Command::SetTensor, 305).is_ok());
    assert!(decode(Command::SetTensor, u64::MAX).is_ok());
    assert_eq!(
        decode(Command::SetTensor, 304).unwrap_err().to_string(),
        "payload of SET_TENSOR is 304 bytes, shorter than the 305 its layout needs"
    );
    assert!(decode(Command::GraphCompute, 12).is_ok());
    assert!(decode(Command::GraphCompute, 11).is_err());
}

// ---- rpc_tensor ----

#[test]
fn rpc_tensor_is_296_bytes_and_set_tensor_header_305() {
    assert_eq!(RpcTensor::LEN, 296);
    assert_eq!(encoded(&tensor(1)).len(), 296);
    assert_eq!(encoded(&RpcTensor::ABSENT), [0; 296]);
    assert_eq!(SetTensorHeader::LEN, 305);
}

#[test]
fn rpc_tensor_layout_matches_ggmls_struct_field_by_field() {
    // Offsets of the packed C struct, each field given bytes of its own.
    let mut bytes = [0u8; 296];
    let mut put = |offset: usize, field: &[u8]| {
        bytes[offset..offset + field.len()].copy_from_slice(field);
    };
    put(0, &[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]); // id
    put(8, &[0x0c, 0, 0, 0]); // type = 12 (q4_K)
    put(12, &[0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0, 0]); // buffer
    put(20, &[0x00, 0x01, 0, 0, 0x02, 0, 0, 0, 0x03, 0, 0, 0, 0x04, 0, 0, 0]); // ne
    put(36, &[0x90, 0, 0, 0, 0x00, 0x09, 0, 0, 0x00, 0x12, 0, 0, 0x00, 0x36, 0, 0]); // nb
    put(52, &[0x1a, 0, 0, 0]); // op = 26
    put(56, &[0x00, 0x00, 0x80, 0x3f]); // op_params[0] = 1.0f32
    put(116, &[0xff, 0xff, 0xff, 0xff]); // op_params[15] = -1
    put(120, &[0x10, 0, 0, 0]); // flags = COMPUTE
    put(124, &[0xa1, 0, 0, 0, 0, 0, 0, 0]); // src[0]
    put(196, &[0xa9, 0, 0, 0, 0, 0, 0, 0]); // src[9]
    put(204, &[0xb0, 0, 0, 0, 0, 0, 0, 0]); // view_src
    put(212, &[0x40, 0x01, 0, 0, 0, 0, 0, 0]); // view_offs = 320
    put(220, &[0x40, 0x20, 0x30, 0x40, 0x50, 0x60, 0, 0]); // data
    put(228, b"output"); // name
    put(292, &[0x03, 0, 0, 0]); // use_count
    let Request::InitTensor { tensor } = decode(Command::InitTensor, &bytes).unwrap() else {
        panic!("INIT_TENSOR decodes to InitTensor");
    };
    assert_eq!(tensor.id, 0x0102_0304_0506_0708);
    assert_eq!(tensor.ggml_type, 12);
    assert_eq!(tensor.buffer, 0x6050_4030_2010);
    assert_eq!(tensor.shape, [256, 2, 3, 4]);
    assert_eq!(tensor.byte_strides, [144, 2304, 4608, 13824]);
    assert_eq!(tensor.op, 26);
    assert_eq!(tensor.op_param_f32(0), Some(1.0));
    assert_eq!(tensor.op_params[1..15], [0; 14]);
    assert_eq!(tensor.op_param_i32(15), Some(-1));
    assert_eq!(tensor.flags, 16);
    assert_eq!(tensor.sources, [0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0xa9]);
    assert_eq!(tensor.view_source, 0xb0);
    assert_eq!(tensor.view_offset, 320);
    assert_eq!(tensor.data, 0x6050_4030_2040);
    assert_eq!(tensor.name_str(), "output");
    assert_eq!(tensor.use_count, 3);
    assert_eq!(encoded(&tensor), bytes);
}

#[test]
fn tensor_name_ends_at_the_first_nul() {
    let mut t = RpcTensor::ABSENT;
    t.name[..7].copy_from_slice(b"a\0bcdef");
    assert_eq!(t.name_str(), "a");
}

#[test]
fn tensor_name_without_nul_is_all_64_bytes() {
    let mut t = RpcTensor::ABSENT;
    t.name = [b'x'; 64];
    assert_eq!(t.name_str().len(), 64);
}

#[test]
fn tensor_name_that_is_not_utf8_is_read_lossily() {
    let mut t = RpcTensor::ABSENT;
    t.name[..3].copy_from_slice(&[b'k', 0xff, b'v']);
    assert_eq!(t.name_str(), "k\u{fffd}v");
}

#[test]
fn set_name_truncates_to_63_bytes_like_ggml() {
    let mut t = RpcTensor::ABSENT;
    t.set_name(&"n".repeat(100));
    assert_eq!(t.name_str(), "n".repeat(63));
    assert_eq!(t.name[63], 0);
    t.set_name("short");
    assert_eq!(t.name_str(), "short");
    assert_eq!(t.name[5..], [0; 59]);
}

#[test]
fn op_params_read_as_bit_cast_floats_and_little_endian_bytes() {
    let mut t = RpcTensor::ABSENT;
    t.op_params[2] = (-0.125f32).to_bits() as i32;
    t.op_params[3] = 0x0403_0201;
    assert_eq!(t.op_param_f32(2), Some(-0.125));
    assert_eq!(t.op_param_i32(3), Some(0x0403_0201));
    assert_eq!(t.op_param_f32(16), None);
    assert_eq!(t.op_param_i32(16), None);
    let bytes = t.op_params_bytes();
    assert_eq!(bytes[8..12], (-0.125f32).to_le_bytes());
    assert_eq!(bytes[12..16], [1, 2, 3, 4]);
}

#[test]
fn present_sources_skip_empty_slots() {
    let t = tensor(0x100);
    assert_eq!(t.present_sources().collect::<Vec<_>>(), [(0, 0x101), (9, 0x102)]);
    assert!(RpcTensor::ABSENT.is_absent());
    assert!(!t.is_absent());
}

// ---- requests ----

#[test]
fn every_request_round_trips_through_its_payload() {
    for request in samples() {
        let payload = payload_of(&request);
        assert_eq!(payload.len() as u64, request.payload_len());
        assert_eq!(decode(request.command(), &payload).unwrap(), request);
    }
}

#[test]
fn every_request_encodes_as_its_header_then_its_payload() {
    for request in samples() {
        let mut framed = Vec::new();
        request.encode(&mut framed);
        let header: [u8; REQUEST_HEADER_LEN] = framed[..REQUEST_HEADER_LEN].try_into().unwrap();
        let header = RequestHeader::decode(&header).unwrap();
        assert_eq!(header, request.header());
        assert_eq!(header.size, framed.len() as u64 - REQUEST_HEADER_LEN as u64);
        assert_eq!(framed[REQUEST_HEADER_LEN..], payload_of(&request));
    }
}

#[test]
fn every_fixed_request_encodes_to_the_size_its_command_declares() {
    for request in samples() {
        if let PayloadRule::Exact(size) = request.command().payload_rule() {
            assert_eq!(request.payload_len(), size, "{}", request.command());
        }
    }
}

#[test]
fn fixed_payloads_one_byte_off_are_refused_with_their_size() {
    for request in samples() {
        let command = request.command();
        let PayloadRule::Exact(expected) = command.payload_rule() else { continue };
        let mut longer = payload_of(&request);
        longer.push(0);
        assert_eq!(
            decode(command, &longer),
            Err(GgmlDecodeError::PayloadSize { command, size: expected + 1, expected })
        );
        if expected > 0 {
            let shorter = &payload_of(&request)[..expected as usize - 1];
            assert_eq!(
                decode(command, shorter),
                Err(GgmlDecodeError::PayloadSize { command, size: expected - 1, expected })
            );
        }
    }
}

#[test]
fn every_truncated_payload_is_an_error() {
    for request in samples() {
        let payload = payload_of(&request);
        for len in 0..payload.len() {
            assert!(
                decode(request.command(), &payload[..len]).is_err(),
                "{} {len}",
                request.command()
            );
        }
    }
    let header = SetTensorHeader { tensor: tensor(1), cache_flag: 1, offset: 2 };
    let mut bytes = Vec::new();
    header.encode(&mut bytes);
    for len in 0..bytes.len() {
        assert!(SetTensorHeader::decode(&bytes[..len]).is_err(), "{len}");
        assert!(SetTensorHeader::split(&bytes[..len]).is_err(), "{len}");
    }
}

#[test]
fn any_bytes_of_a_fixed_size_decode() {
    for command in Command::ALL {
        let PayloadRule::Exact(size) = command.payload_rule() else { continue };
        let payload: Vec<u8> = (0..size).map(|i| (i * 37 % 251) as u8).collect();
        let request = decode(command, &payload).unwrap();
        assert_eq!(payload_of(&request), payload);
    }
}

#[test]
fn decodes_alloc_buffer_from_its_bytes() {
    let payload = hex("01 00 00 00 00 00 10 00 00 00 00 00");
    assert_eq!(
        decode(Command::AllocBuffer, &payload).unwrap(),
        Request::AllocBuffer { device: 1, size: 0x10_0000 }
    );
}

#[test]
fn decodes_memset_tensor_fields_after_the_tensor() {
    let mut payload = encoded(&tensor(9));
    payload.extend(hex("10 00 00 00 00 00 00 00  20 00 00 00 00 00 00 00  7f"));
    assert_eq!(
        decode(Command::MemsetTensor, &payload).unwrap(),
        Request::MemsetTensor { tensor: tensor(9), offset: 16, size: 32, value: 0x7f }
    );
}

#[test]
fn get_alloc_size_keeps_absent_sources_as_zero_tensors() {
    let Some(Request::GetAllocSize { sources, .. }) =
        decode(Command::GetAllocSize, &payload_of(&sample(Command::GetAllocSize).unwrap())).ok()
    else {
        panic!("GET_ALLOC_SIZE decodes");
    };
    assert_eq!(sources.iter().filter(|s| s.is_absent()).count(), 8);
    assert_eq!(sources[2], RpcTensor::ABSENT);
}

#[test]
fn request_decode_refuses_set_tensor_whose_data_is_streamed() {
    let payload = vec![0; SetTensorHeader::LEN + 4];
    let error = decode(Command::SetTensor, &payload).unwrap_err();
    assert_eq!(error, GgmlDecodeError::StreamedCommand(Command::SetTensor));
}

// ---- SET_TENSOR ----

#[test]
fn set_tensor_encodes_header_then_data_and_splits_back() {
    let header = SetTensorHeader { tensor: tensor(0x80), cache_flag: 1, offset: 512 };
    let data = [9u8; 100];
    let mut framed = Vec::new();
    header.encode_request(&data, &mut framed);
    let request_header: [u8; REQUEST_HEADER_LEN] = framed[..9].try_into().unwrap();
    let request_header = RequestHeader::decode(&request_header).unwrap();
    assert_eq!(request_header, RequestHeader { command: Command::SetTensor, size: 405 });
    let payload = &framed[9..];
    assert_eq!(SetTensorHeader::data_len(request_header.size), Ok(100));
    assert_eq!(SetTensorHeader::decode(&payload[..SetTensorHeader::LEN]).unwrap(), header);
    let (split, rest) = SetTensorHeader::split(payload).unwrap();
    assert_eq!((split, rest), (header, &data[..]));
}

#[test]
fn set_tensor_with_no_data_is_just_its_header() {
    let header = SetTensorHeader { tensor: tensor(1), cache_flag: 0, offset: 0 };
    let mut framed = Vec::new();
    header.encode_request(&[], &mut framed);
    assert_eq!(framed.len(), 9 + 305);
    assert_eq!(SetTensorHeader::split(&framed[9..]).unwrap().1, &[] as &[u8]);
}

#[test]
fn set_tensor_data_length_is_checked_arithmetic() {
    assert_eq!(SetTensorHeader::data_len(305), Ok(0));
    assert_eq!(SetTensorHeader::data_len(u64::MAX), Ok(u64::MAX - 305));
    for size in [0, 1, 304] {
        assert_eq!(
            SetTensorHeader::data_len(size),
            Err(GgmlDecodeError::PayloadTooShort {
                command: Command::SetTensor,
                size,
                minimum: 305
            })
        );
    }
}

#[test]
fn set_tensor_header_refuses_bytes_after_it() {
    let mut bytes = vec![0; SetTensorHeader::LEN + 1];
    assert_eq!(
        SetTensorHeader::decode(&bytes),
        Err(GgmlDecodeError::TrailingBytes { command: Command::SetTensor, count: 1 })
    );
    bytes.pop();
    assert!(SetTensorHeader::decode(&bytes).is_ok());
}

#[test]
fn set_tensor_cache_flag_is_kept_raw() {
    let mut bytes = vec![0; SetTensorHeader::LEN];
    bytes[296] = 2;
    let header = SetTensorHeader::decode(&bytes).unwrap();
    assert_eq!(header.cache_flag, 2);
    assert!(header.asks_to_cache());
}

// ---- GRAPH_COMPUTE ----

fn graph_bytes(device: u32, node_ids: &[u64], n_tensors: u32, tensor_bytes: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(device.to_le_bytes());
    bytes.extend((node_ids.len() as u32).to_le_bytes());
    node_ids.iter().for_each(|id| bytes.extend(id.to_le_bytes()));
    bytes.extend(n_tensors.to_le_bytes());
    bytes.extend(std::iter::repeat_n(0, tensor_bytes));
    bytes
}

#[test]
fn graph_payload_layout_is_device_nodes_then_tensors() {
    let g = graph(2, 1);
    let mut bytes = Vec::new();
    g.encode(&mut bytes);
    assert_eq!(bytes[..4], 1u32.to_le_bytes());
    assert_eq!(bytes[4..8], 2u32.to_le_bytes());
    assert_eq!(bytes[8..16], 0x1000u64.to_le_bytes());
    assert_eq!(bytes[16..24], 0x1001u64.to_le_bytes());
    assert_eq!(bytes[24..28], 1u32.to_le_bytes());
    assert_eq!(bytes[28..], encoded(&g.tensors[0]));
    assert_eq!(g.encoded_len(), bytes.len() as u64);
    assert_eq!(GraphPayload::decode(&bytes, &limits()).unwrap(), g);
}

#[test]
fn empty_graph_is_twelve_bytes() {
    let bytes = graph_bytes(0, &[], 0, 0);
    assert_eq!(bytes.len(), 12);
    let g = GraphPayload::decode(&bytes, &limits()).unwrap();
    assert_eq!(g, GraphPayload { device: 0, node_ids: vec![], tensors: vec![] });
}

#[test]
fn refuses_u32_max_nodes_before_reserving_them() {
    let mut bytes = graph_bytes(0, &[], 0, 0);
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let error = GraphPayload::decode(&bytes, &no_limits()).unwrap_err();
    assert_eq!(
        error,
        GgmlDecodeError::GraphCountExceedsPayload { what: "nodes", count: u32::MAX, payload: 12 }
    );
    assert_eq!(error.to_string(), "GRAPH_COMPUTE declares 4294967295 nodes but carries 12 bytes");
}

#[test]
fn refuses_u32_max_tensors_before_reserving_them() {
    let bytes = graph_bytes(0, &[7], u32::MAX, 296);
    assert_eq!(
        GraphPayload::decode(&bytes, &no_limits()),
        Err(GgmlDecodeError::GraphCountExceedsPayload {
            what: "tensors",
            count: u32::MAX,
            payload: 316
        })
    );
}

#[test]
fn refuses_more_nodes_than_the_limit_even_when_present() {
    let limits = GraphLimits { max_nodes: 2, max_tensors: 10 };
    let bytes = graph_bytes(0, &[1, 2, 3], 0, 0);
    let error = GraphPayload::decode(&bytes, &limits).unwrap_err();
    assert_eq!(error, GgmlDecodeError::GraphCountOverLimit { what: "nodes", count: 3, limit: 2 });
    assert_eq!(error.to_string(), "GRAPH_COMPUTE declares 3 nodes, over the limit of 2");
    assert!(GraphPayload::decode(&graph_bytes(0, &[1, 2], 0, 0), &limits).is_ok());
}

#[test]
fn refuses_more_tensors_than_the_limit_even_when_present() {
    let limits = GraphLimits { max_nodes: 10, max_tensors: 1 };
    let bytes = graph_bytes(0, &[1], 2, 2 * 296);
    assert_eq!(
        GraphPayload::decode(&bytes, &limits),
        Err(GgmlDecodeError::GraphCountOverLimit { what: "tensors", count: 2, limit: 1 })
    );
}

#[test]
fn refuses_bytes_after_the_last_tensor() {
    let mut bytes = Vec::new();
    graph(1, 1).encode(&mut bytes);
    bytes.push(0);
    let error = GraphPayload::decode(&bytes, &limits()).unwrap_err();
    assert_eq!(error, GgmlDecodeError::TrailingBytes { command: Command::GraphCompute, count: 1 });
    assert_eq!(error.to_string(), "GRAPH_COMPUTE payload has 1 bytes after its contents");
    assert_eq!(decode(Command::GraphCompute, &bytes), Err(error));
}

#[test]
fn refuses_a_graph_whose_last_tensor_is_cut_short() {
    let bytes = graph_bytes(0, &[1], 2, 296 + 295);
    assert!(matches!(
        GraphPayload::decode(&bytes, &limits()),
        Err(GgmlDecodeError::GraphCountExceedsPayload { what: "tensors", count: 2, .. })
    ));
}

#[test]
fn default_limits_fit_a_large_llama_graph() {
    // A 70B llama: llama.cpp budgets max(1024, 8 * 723) nodes.
    let limits = GraphLimits::default();
    assert!(limits.max_nodes >= 8 * 723);
    assert!(limits.max_tensors >= limits.max_nodes);
}

// ---- GRAPH_COMPUTE peek ----

#[test]
fn peek_asks_for_the_node_count_first() {
    for have in 0..8 {
        let bytes = vec![0; have];
        assert_eq!(GraphPayload::peek(1000, &bytes, &limits()), Ok(GraphPeek::NeedPrefix(8)));
    }
}

#[test]
fn peek_asks_for_the_tensor_count_after_the_node_ids() {
    let mut bytes = Vec::new();
    graph(3, 2).encode(&mut bytes);
    let size = bytes.len() as u64;
    for have in 8..(8 + 3 * 8 + 4) {
        assert_eq!(
            GraphPayload::peek(size, &bytes[..have], &limits()),
            Ok(GraphPeek::NeedPrefix(36))
        );
    }
    assert_eq!(
        GraphPayload::peek(size, &bytes[..36], &limits()),
        Ok(GraphPeek::Counts(GraphCounts { n_nodes: 3, n_tensors: 2 }))
    );
}

#[test]
fn peek_refuses_a_huge_node_count_from_eight_bytes() {
    let mut prefix = [0u8; 8];
    prefix[4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        GraphPayload::peek(1 << 20, &prefix, &no_limits()),
        Err(GgmlDecodeError::GraphCountExceedsPayload {
            what: "nodes",
            count: u32::MAX,
            payload: 1 << 20
        })
    );
    assert_eq!(
        GraphPayload::peek(u64::MAX, &prefix, &limits()),
        Err(GgmlDecodeError::GraphCountOverLimit {
            what: "nodes",
            count: u32::MAX,
            limit: limits().max_nodes
        })
    );
}

#[test]
fn peek_refuses_a_declared_size_other_than_the_counts_say() {
    let bytes = graph_bytes(0, &[1], 1, 0);
    let exact = 12 + 8 + 296;
    assert!(matches!(GraphPayload::peek(exact, &bytes, &limits()), Ok(GraphPeek::Counts(_))));
    assert_eq!(
        GraphPayload::peek(exact + 5, &bytes, &limits()),
        Err(GgmlDecodeError::TrailingBytes { command: Command::GraphCompute, count: 5 })
    );
    assert!(matches!(
        GraphPayload::peek(exact - 1, &bytes, &limits()),
        Err(GgmlDecodeError::GraphCountExceedsPayload { what: "tensors", .. })
    ));
    assert!(GraphPayload::peek(11, &bytes, &limits()).is_err());
}

#[test]
fn peek_of_a_whole_payload_agrees_with_decode() {
    for (n_nodes, n_tensors) in [(0, 0), (1, 1), (5, 9)] {
        let g = graph(n_nodes, n_tensors);
        let mut bytes = Vec::new();
        g.encode(&mut bytes);
        let peeked = GraphPayload::peek(bytes.len() as u64, &bytes, &limits()).unwrap();
        assert_eq!(peeked, GraphPeek::Counts(g.counts()));
        assert_eq!(GraphPayload::decode(&bytes, &limits()).unwrap(), g);
    }
}

// ---- replies ----

#[test]
fn every_reply_round_trips() {
    for command in Command::ALL {
        let Some(reply) = sample_reply(command) else {
            assert_eq!(command.reply_rule(), ReplyRule::None);
            assert_eq!(Reply::decode(command, &[]), Err(GgmlDecodeError::NoReply(command)));
            continue;
        };
        assert_eq!(reply.command(), command);
        let mut framed = Vec::new();
        reply.encode(&mut framed);
        let header: [u8; REPLY_HEADER_LEN] = framed[..8].try_into().unwrap();
        let header = ReplyHeader::decode(command, reply.payload_len(), &header).unwrap();
        assert_eq!(header.size, framed.len() as u64 - 8);
        assert_eq!(Reply::decode(command, &framed[8..]).unwrap(), reply);
    }
}

#[test]
fn every_fixed_reply_encodes_to_the_size_the_client_expects() {
    for command in Command::ALL {
        if let (Some(reply), ReplyRule::Exact(size)) = (sample_reply(command), command.reply_rule())
        {
            assert_eq!(reply.payload_len(), size, "{command}");
        }
    }
}

#[test]
fn hello_reply_is_version_seven_with_no_transport_upgrade() {
    let mut framed = Vec::new();
    Reply::hello_tcp().encode(&mut framed);
    let mut expected = hex("1c 00 00 00 00 00 00 00  07 00 00 00");
    expected.extend([0; 24]);
    assert_eq!(framed, expected);
}

#[test]
fn get_tensor_reply_prefix_is_the_length_of_the_bytes_that_follow() {
    let mut framed = Vec::new();
    encode_get_tensor_reply_prefix(3, &mut framed);
    framed.extend([7, 8, 9]);
    let mut whole = Vec::new();
    Reply::GetTensor { data: vec![7, 8, 9] }.encode(&mut whole);
    assert_eq!(framed, whole);
}

#[test]
fn reply_header_refuses_a_size_the_client_does_not_expect() {
    let header = 9u64.to_le_bytes();
    assert_eq!(
        ReplyHeader::decode(Command::AllocBuffer, 0, &header),
        Err(GgmlDecodeError::ReplySize { command: Command::AllocBuffer, size: 9, expected: 16 })
    );
    assert_eq!(
        ReplyHeader::decode(Command::GetTensor, 10, &header),
        Err(GgmlDecodeError::ReplySize { command: Command::GetTensor, size: 9, expected: 10 })
    );
    assert_eq!(ReplyHeader::decode(Command::GetTensor, 9, &header), Ok(ReplyHeader { size: 9 }));
    assert_eq!(
        ReplyHeader::decode(Command::FreeBuffer, 0, &header),
        Err(GgmlDecodeError::NoReply(Command::FreeBuffer))
    );
}

#[test]
fn reply_decode_refuses_a_payload_of_the_wrong_size() {
    assert_eq!(
        Reply::decode(Command::DeviceCount, &[1, 0, 0]),
        Err(GgmlDecodeError::ReplySize { command: Command::DeviceCount, size: 3, expected: 4 })
    );
}

#[test]
fn reply_result_bytes_read_non_zero_as_true() {
    assert_eq!(
        Reply::decode(Command::SetTensorHash, &[2]),
        Ok(Reply::SetTensorHash { found: true })
    );
    assert_eq!(Reply::decode(Command::CopyTensor, &[0]), Ok(Reply::CopyTensor { copied: false }));
}

#[test]
fn a_7_0_client_accepts_servers_of_major_seven_and_minor_zero() {
    let v = |major, minor, patch| ProtocolVersion { major, minor, patch };
    assert!(PROTOCOL_VERSION.accepted_by_client());
    assert!(v(7, 0, 9).accepted_by_client());
    assert!(!v(7, 1, 0).accepted_by_client());
    assert!(!v(6, 0, 0).accepted_by_client());
    assert!(!v(8, 0, 0).accepted_by_client());
}

// ---- fuzz seeds ----

/// The seeds of fuzz/seeds/ggml_request were written by an encoder of their own (from
/// ggml-rpc.cpp's structs, not from this codec): each must be a request this codec takes.
#[test]
fn fuzz_seeds_are_requests_that_decode_and_re_encode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/ggml_request");
    let mut seen = std::collections::HashSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (&byte, payload) = bytes.split_first().unwrap();
        let command = Command::from_u8(byte).unwrap();
        seen.insert(command);
        let mut again = Vec::new();
        if command.streams_payload() {
            let (header, data) = SetTensorHeader::split(payload).unwrap();
            header.encode_request(data, &mut again);
        } else {
            let request = decode(command, payload).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            request.encode(&mut again);
        }
        assert_eq!(again[0], byte);
        assert_eq!(again[REQUEST_HEADER_LEN..], *payload, "{path:?}");
    }
    assert_eq!(seen.len(), Command::ALL.len(), "a seed for every command");
}

// ---- properties ----

fn any_tensor() -> impl Strategy<Value = RpcTensor> {
    (
        any::<[u64; 4]>(),
        any::<[u32; 10]>(),
        any::<[i32; 16]>(),
        any::<[u64; 10]>(),
        prop::collection::vec(any::<u8>(), 64),
        any::<[i32; 2]>(),
    )
        .prop_map(|(words, halves, op_params, sources, name, ints)| RpcTensor {
            id: words[0],
            ggml_type: halves[0],
            buffer: words[1],
            shape: [halves[1], halves[2], halves[3], halves[4]],
            byte_strides: [halves[5], halves[6], halves[7], halves[8]],
            op: halves[9],
            op_params,
            flags: ints[0],
            sources,
            view_source: words[2],
            view_offset: words[3],
            data: words[0] ^ words[1],
            name: name.try_into().unwrap(),
            use_count: ints[1],
        })
}

proptest! {
    #[test]
    fn any_graph_round_trips(
        device: u32,
        node_ids in prop::collection::vec(any::<u64>(), 0..20),
        tensors in prop::collection::vec(any_tensor(), 0..6),
    ) {
        let g = GraphPayload { device, node_ids, tensors };
        let request = Request::GraphCompute(g);
        let payload = payload_of(&request);
        prop_assert_eq!(decode(Command::GraphCompute, &payload).unwrap(), request);
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panicking(byte in 0u8..18, payload in prop::collection::vec(any::<u8>(), 0..700)) {
        let command = Command::from_u8(byte).unwrap();
        if let Ok(request) = decode(command, &payload) {
            prop_assert_eq!(&payload_of(&request), &payload);
        }
        let _ = Reply::decode(command, &payload);
        let _ = GraphPayload::peek(payload.len() as u64, &payload, &limits());
    }
}
