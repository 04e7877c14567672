use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

fn decode(body: &[u8]) -> Result<Packet<'_>, DecodeError> {
    Packet::decode(body, &DecodeLimits::default())
}

fn body(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(&mut out);
    out
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn float32_record(shape: &[i64]) -> TensorRecord {
    TensorRecord {
        data: 0x7f0d_0800_f140,
        device: Device::cpu(0),
        dtype: DataType::FLOAT32,
        shape: shape.to_vec(),
        byte_offset: 0,
    }
}

// Bodies below are copied from traces/tvm0.27-*.trace (the length prefix stripped).

#[test]
fn decodes_init_server_from_tvm_client() {
    let b = hex("02 00 00 00 05 00 00 00 00 00 00 00 30 2e 38 2e 30 00 00 00 00");
    assert_eq!(decode(&b).unwrap(), Packet::InitServer { version: "0.8.0".into(), args: vec![] });
}

#[test]
fn decodes_call_with_int_argument_from_tvm_client() {
    let b =
        hex("03 00 00 00 50 94 31 f6 ea 55 00 00 01 00 00 00 01 00 00 00 07 00 00 00 00 00 00 00");
    assert_eq!(
        decode(&b).unwrap(),
        Packet::CallFunc { function: 0x55ea_f631_9450, args: vec![Value::Int(7)] }
    );
}

#[test]
fn decodes_small_bytes_object_argument() {
    let b = hex(
        "03 00 00 00 50 94 31 f6 ea 55 00 00 01 00 00 00 0c 00 00 00 42 00 00 00 03 00 00 00 00 00 00 00 00 01 02",
    );
    assert_eq!(
        decode(&b).unwrap(),
        Packet::CallFunc { function: 0x55ea_f631_9450, args: vec![Value::Bytes(vec![0, 1, 2])] }
    );
}

#[test]
fn encodes_small_string_result_as_tvm_server_does() {
    let expected = hex(
        "04 00 00 00 02 00 00 00 01 00 00 00 0b 00 00 00 00 00 00 00 08 00 00 00 05 00 00 00 00 00 00 00 68 65 6c 6c 6f",
    );
    assert_eq!(body(&Packet::call_return(Value::Str("hello".into()))), expected);
}

#[test]
fn encodes_eight_byte_string_result_as_a_str_object() {
    let packet = Packet::call_return(Value::Str("12345678".into()));
    assert_eq!(body(&packet)[12..16], 65i32.to_le_bytes());
}

#[test]
fn encodes_bytes_result_as_a_bytes_object_carried_as_byte_array() {
    let expected = hex(
        "04 00 00 00 02 00 00 00 01 00 00 00 42 00 00 00 00 00 00 00 09 00 00 00 03 00 00 00 00 00 00 00 00 01 02",
    );
    assert_eq!(body(&Packet::call_return(Value::Bytes(vec![0, 1, 2]))), expected);
}

#[test]
fn encodes_void_call_result_as_type_none_then_none() {
    let expected = hex("04 00 00 00 02 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    assert_eq!(body(&Packet::call_return(Value::None)), expected);
}

#[test]
fn encodes_data_type_with_four_bytes_of_padding() {
    let expected = hex(
        "04 00 00 00 02 00 00 00 01 00 00 00 05 00 00 00 00 00 00 00 05 00 00 00 02 20 01 00 00 00 00 00",
    );
    assert_eq!(body(&Packet::call_return(Value::DataType(DataType::FLOAT32))), expected);
}

#[test]
fn decodes_alloc_with_scope_of_a_float32_matrix() {
    let b = hex(
        "11 00 00 00 02 00 00 00 07 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 02 00 00 00 02 20 01 00 03 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    );
    let mut tensor = float32_record(&[3, 4]);
    tensor.data = 0;
    assert_eq!(
        decode(&b).unwrap(),
        Packet::Syscall(Syscall::DevAllocDataWithScope { tensor, scope: None })
    );
}

#[test]
fn decodes_stream_sync_with_null_stream() {
    let b = hex(
        "0f 00 00 00 02 00 00 00 06 00 00 00 01 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00",
    );
    assert_eq!(
        decode(&b).unwrap(),
        Packet::Syscall(Syscall::DevStreamSync { device: Device::cpu(0), stream: 0 })
    );
}

#[test]
fn decodes_copy_to_remote_borrowing_its_payload() {
    let packet = Packet::CopyToRemote {
        target: float32_record(&[2]),
        data: Cow::Owned(vec![0, 0, 128, 63, 0, 0, 0, 64]),
    };
    let b = body(&packet);
    let decoded = decode(&b).unwrap();
    assert!(matches!(&decoded, Packet::CopyToRemote { data: Cow::Borrowed(_), .. }));
    assert_eq!(decoded, packet);
}

#[test]
fn decodes_copy_ack_payload() {
    let b = hex("08 00 00 00 01 fe 03 fc 05");
    assert_eq!(decode(&b).unwrap(), Packet::CopyAck(Cow::Borrowed(&[1, 0xfe, 3, 0xfc, 5][..])));
}

#[test]
fn decodes_exception_message() {
    let packet = Packet::Exception("Check failed: boom".into());
    assert_eq!(decode(&body(&packet)).unwrap(), packet);
}

#[test]
fn call_result_reads_back_a_function_handle() {
    let Packet::Return(values) = Packet::call_return(Value::Function(42)) else { unreachable!() };
    assert_eq!(values[1], Value::Handle(42));
    assert_eq!(Packet::call_result(values).unwrap(), Value::Function(42));
}

// From a recording of TVM 0.27's server answering `ffi.Shape(2, 3)`.
#[test]
fn encodes_a_returned_shape_object_as_tvm_server_does() {
    let expected = hex(
        "04 00 00 00 02 00 00 00 01 00 00 00 45 00 00 00 00 00 00 00 04 00 00 00 f0 81 00 1c 08 7f 00 00",
    );
    let shape = Value::Object { type_index: TypeIndex::SHAPE, handle: 0x7f08_1c00_81f0 };
    assert_eq!(body(&Packet::call_return(shape.clone())), expected);
    let Packet::Return(values) = decode(&expected).unwrap() else { unreachable!() };
    assert_eq!(Packet::call_result(values).unwrap(), shape);
}

// From the same recording: `rpc.test.remote_return_nd("get_arr")()` returning a float32[10].
#[test]
fn encodes_a_returned_tensor_object_as_dltensor_then_handle() {
    let expected = hex(
        "04 00 00 00 03 00 00 00 01 00 00 00 46 00 00 00 00 00 00 00 07 00 00 00 40 01 01 1c 08 7f 00 00 \
         01 00 00 00 00 00 00 00 01 00 00 00 02 20 01 00 0a 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
         04 00 00 00 70 f0 00 1c 08 7f 00 00",
    );
    let tensor = TensorRecord { data: 0x7f08_1c01_0140, ..float32_record(&[10]) };
    let returned = Value::TensorObject { tensor, handle: 0x7f08_1c00_f070 };
    assert_eq!(body(&Packet::call_return(returned.clone())), expected);
    let Packet::Return(values) = decode(&expected).unwrap() else { unreachable!() };
    assert_eq!(Packet::call_result(values).unwrap(), returned);
}

// From the same recording: the shape passed back to `rpc.testing.GetShapeElem(shape, 1)`.
#[test]
fn a_returned_object_passed_back_travels_as_an_rpc_object_ref() {
    let expected = hex(
        "03 00 00 00 f0 47 14 9c d1 55 00 00 02 00 00 00 73 00 00 00 73 00 00 00 f0 81 00 1c 08 7f 00 00 01 00 00 00 01 00 00 00 00 00 00 00",
    );
    let shape = Value::Object { type_index: TypeIndex::SHAPE, handle: 0x7f08_1c00_81f0 };
    let call = Packet::CallFunc { function: 0x55d1_9c14_47f0, args: vec![shape, Value::Int(1)] };
    assert_eq!(body(&call), expected);
    let Packet::CallFunc { args, .. } = decode(&expected).unwrap() else { unreachable!() };
    assert_eq!(args[0], Value::ObjectRef(0x7f08_1c00_81f0));
}

#[test]
fn a_return_of_three_values_that_is_not_a_tensor_object_is_refused() {
    let values = vec![Value::Int(1), Value::Int(2), Value::Int(3)];
    assert!(Packet::call_result(values).is_err());
}

#[test]
fn rejects_unknown_rpc_code() {
    assert_eq!(decode(&99i32.to_le_bytes()), Err(DecodeError::UnknownCode(99)));
}

#[test]
fn rejects_code_none() {
    assert_eq!(decode(&0i32.to_le_bytes()), Err(DecodeError::UnknownCode(0)));
}

#[test]
fn rejects_tensor_object_argument() {
    let b = hex("03 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 46 00 00 00");
    assert!(matches!(
        decode(&b),
        Err(DecodeError::UnsupportedTypeIndex { position: 0, index: 70, .. })
    ));
}

#[test]
fn rejects_unknown_type_index() {
    let b = hex("03 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 e7 03 00 00");
    assert_eq!(decode(&b), Err(DecodeError::UnknownTypeIndex { position: 0, index: 999 }));
}

#[test]
fn rejects_negative_argument_count() {
    let b = hex("03 00 00 00 01 00 00 00 00 00 00 00 ff ff ff ff");
    assert_eq!(decode(&b), Err(DecodeError::NegativeArgCount(-1)));
}

#[test]
fn rejects_argument_count_the_packet_cannot_hold_before_reserving() {
    // Claims a million arguments in a 16-byte packet.
    let b = hex("03 00 00 00 01 00 00 00 00 00 00 00 40 42 0f 00");
    assert!(matches!(decode(&b), Err(DecodeError::TooManyArgs { .. })));
    let b = hex("03 00 00 00 01 00 00 00 00 00 00 00 00 10 00 00");
    assert!(matches!(decode(&b), Err(DecodeError::Truncated { what: "packed sequence", .. })));
}

#[test]
fn rejects_ndim_above_the_limit() {
    let mut record = float32_record(&[1; 33]);
    record.data = 1;
    let b = body(&Packet::CopyFromRemote { source: record, nbytes: 4 });
    assert_eq!(decode(&b), Err(DecodeError::NdimOutOfRange { ndim: 33, limit: 32 }));
}

#[test]
fn rejects_negative_ndim() {
    let mut b = body(&Packet::CopyFromRemote { source: float32_record(&[]), nbytes: 0 });
    b[20..24].copy_from_slice(&(-5i32).to_le_bytes());
    assert_eq!(decode(&b), Err(DecodeError::NdimOutOfRange { ndim: -5, limit: 32 }));
}

#[test]
fn rejects_negative_dimension() {
    let b = body(&Packet::CopyFromRemote { source: float32_record(&[2, -3]), nbytes: 0 });
    assert!(matches!(decode(&b), Err(DecodeError::NegativeDimension { axis: 1, value: -3, .. })));
}

#[test]
fn rejects_shape_whose_byte_size_overflows() {
    let b =
        body(&Packet::CopyFromRemote { source: float32_record(&[1 << 31, 1 << 31, 4]), nbytes: 0 });
    assert!(matches!(decode(&b), Err(DecodeError::ShapeOverflow { .. })));
}

#[test]
fn rejects_string_that_is_not_utf8() {
    let b = hex("09 00 00 00 01 00 00 00 08 00 00 00 02 00 00 00 00 00 00 00 ff fe");
    assert_eq!(decode(&b), Err(DecodeError::InvalidUtf8 { what: "string argument" }));
}

#[test]
fn rejects_string_longer_than_the_limit() {
    let limits = DecodeLimits { max_string_len: 4, ..DecodeLimits::default() };
    let b = body(&Packet::Syscall(Syscall::GetGlobalFunc { name: "testing.echo".into() }));
    assert_eq!(Packet::decode(&b, &limits), Err(DecodeError::StringTooLong { len: 12, limit: 4 }));
}

#[test]
fn rejects_string_length_of_two_to_the_63() {
    let mut b = hex("09 00 00 00 01 00 00 00 08 00 00 00");
    b.extend_from_slice(&(1u64 << 63).to_le_bytes());
    assert!(matches!(decode(&b), Err(DecodeError::StringTooLong { .. })));
}

#[test]
fn rejects_bytes_length_past_the_packet_end() {
    let mut b = hex("03 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 09 00 00 00");
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(decode(&b), Err(DecodeError::Truncated { what: "bytes", .. })));
}

#[test]
fn rejects_str_object_with_bytes_inner_index() {
    let b = hex(
        "03 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 41 00 00 00 42 00 00 00 00 00 00 00 00 00 00 00",
    );
    assert_eq!(
        decode(&b),
        Err(DecodeError::ObjectTypeMismatch { position: 0, outer: 65, inner: 66 })
    );
}

#[test]
fn rejects_trailing_bytes_after_a_syscall() {
    let mut b = body(&Packet::Syscall(Syscall::FreeHandle { handle: 7 }));
    b.push(0);
    assert_eq!(decode(&b), Err(DecodeError::TrailingBytes { count: 1 }));
}

#[test]
fn rejects_copy_whose_payload_is_shorter_than_declared() {
    let mut b =
        body(&Packet::CopyToRemote { target: float32_record(&[2]), data: Cow::Owned(vec![0; 8]) });
    b.truncate(b.len() - 3);
    assert_eq!(decode(&b), Err(DecodeError::CopyPayloadLength { declared: 8, carried: 5 }));
}

#[test]
fn rejects_syscall_with_wrong_argument_types() {
    let b = body(&Packet::CallFunc { function: 0, args: vec![Value::Int(1)] });
    let mut b2 = b.clone();
    b2[0..4].copy_from_slice(&(RpcCode::DevAllocData as i32).to_le_bytes());
    // The function handle now reads as part of the packed sequence: not a valid shape.
    assert!(decode(&b2).is_err());
    let args = vec![Value::Device(Device::cpu(0)), Value::Str("x".into())];
    let mut b3 = Vec::new();
    b3.put_i32(RpcCode::DevGetAttr as i32);
    value::encode_packed_seq(&args, &mut b3);
    assert_eq!(
        decode(&b3),
        Err(DecodeError::BadArguments {
            call: "DevGetAttr",
            expected: "[Device, Int kind]",
            got: "[Device(cpu:0), Str of 1 bytes]".into(),
        })
    );
}

#[test]
fn accepts_none_as_a_null_stream_handle() {
    let args = vec![Value::Device(Device::cpu(0)), Value::None];
    let mut b = Vec::new();
    b.put_i32(RpcCode::DevStreamSync as i32);
    value::encode_packed_seq(&args, &mut b);
    assert_eq!(
        decode(&b).unwrap(),
        Packet::Syscall(Syscall::DevStreamSync { device: Device::cpu(0), stream: 0 })
    );
}

#[test]
fn client_key_splits_match_key_and_timeout() {
    let key = ClientKey::parse("client:mycpu -timeout=2.5");
    assert_eq!(key.match_key.as_deref(), Some("mycpu"));
    assert_eq!(key.timeout, Some(std::time::Duration::from_millis(2500)));
    assert!(key.matches("mycpu"));
    assert!(!key.matches(""));
}

#[test]
fn client_key_without_client_prefix_matches_nothing() {
    let key = ClientKey::parse("server:mycpu");
    assert_eq!(key.match_key, None);
    assert!(!key.matches("mycpu"));
}

fn arb_record() -> impl Strategy<Value = TensorRecord> {
    (
        any::<u64>(),
        any::<i32>(),
        any::<i32>(),
        any::<(u8, u8)>(),
        1u16..4,
        proptest::collection::vec(0i64..1000, 0..5),
        any::<u32>(),
    )
        .prop_map(|(data, device_type, device_id, (code, bits), lanes, shape, off)| {
            TensorRecord {
                data,
                device: Device { device_type, device_id },
                dtype: DataType { code, bits, lanes },
                shape,
                byte_offset: u64::from(off),
            }
        })
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::Float),
        any::<u64>().prop_map(Value::Handle),
        any::<(u8, u8, u16)>().prop_map(|(c, b, l)| Value::DataType(DataType::new(c, b, l))),
        any::<(i32, i32)>()
            .prop_map(|(t, i)| Value::Device(Device { device_type: t, device_id: i })),
        arb_record().prop_map(Value::Tensor),
        ".{0,40}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
        any::<u64>().prop_map(Value::Function),
        any::<u64>().prop_map(Value::Module),
        any::<u64>().prop_map(Value::ObjectRef),
    ]
}

proptest! {
    #[test]
    fn call_packets_round_trip(function in any::<u64>(), args in proptest::collection::vec(arb_value(), 0..8)) {
        let packet = Packet::CallFunc { function, args };
        let b = body(&packet);
        prop_assert_eq!(b.len() as u64, packet.encoded_len());
        prop_assert_eq!(decode(&b).unwrap(), packet);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&b);
    }

    #[test]
    fn decoding_any_prefix_of_a_valid_packet_fails_cleanly(args in proptest::collection::vec(arb_value(), 1..6), cut in any::<prop::sample::Index>()) {
        let b = body(&Packet::CallFunc { function: 1, args });
        let cut = cut.index(b.len());
        prop_assert!(decode(&b[..cut]).is_err());
    }
}
