use super::codec::{
    Command, GgmlDecodeError, GraphLimits, GraphPayload, Reply, Request, RequestHeader, RpcTensor,
    SetTensorHeader,
};
use super::*;

fn hello() -> Vec<u8> {
    let mut out = Vec::new();
    Request::Hello { conn_caps: [0; 24] }.encode(&mut out);
    out
}

fn request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    out
}

/// An endpoint past HELLO.
fn greeted() -> GgmlServerEndpoint {
    let mut endpoint = GgmlServerEndpoint::new(GgmlEndpointConfig::default());
    endpoint.receive(&hello());
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::Hello { conn_caps: [0; 24] })));
    endpoint.accept_hello().unwrap();
    endpoint.take_output();
    endpoint
}

#[test]
fn hello_is_answered_with_version_7_0_0_and_no_transport_upgrade() {
    let mut endpoint = GgmlServerEndpoint::new(GgmlEndpointConfig::default());
    endpoint.receive(&hello());
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::Hello { .. }))));
    endpoint.accept_hello().unwrap();
    let mut expected = 28u64.to_le_bytes().to_vec();
    expected.extend_from_slice(&[7, 0, 0, 0]);
    expected.extend_from_slice(&[0; 24]);
    assert_eq!(endpoint.take_output(), expected);
    assert!(endpoint.greeted());
}

#[test]
fn a_command_before_hello_ends_the_connection() {
    let mut endpoint = GgmlServerEndpoint::new(GgmlEndpointConfig::default());
    endpoint.receive(&request(&Request::DeviceCount));
    assert_eq!(endpoint.poll_event(), Err(GgmlProtocolError::NoHello(Command::DeviceCount)));
    assert!(endpoint.is_finished());
}

#[test]
fn a_second_hello_ends_the_connection() {
    let mut endpoint = greeted();
    endpoint.receive(&hello());
    assert_eq!(endpoint.poll_event(), Err(GgmlProtocolError::SecondHello));
    assert!(!endpoint.wants_read());
}

#[test]
fn a_hello_of_another_size_ends_the_connection() {
    let mut endpoint = GgmlServerEndpoint::new(GgmlEndpointConfig::default());
    endpoint.receive(&RequestHeader { command: Command::Hello, size: 16 }.to_bytes());
    assert!(matches!(
        endpoint.poll_event(),
        Err(GgmlProtocolError::Decode(GgmlDecodeError::PayloadSize { .. }))
    ));
}

#[test]
fn commands_are_reported_one_at_a_time_in_order() {
    let mut endpoint = greeted();
    endpoint.receive(&request(&Request::DeviceCount));
    endpoint.receive(&request(&Request::GetAlignment { device: 0 }));
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::Request(Request::DeviceCount))));
    assert_eq!(endpoint.poll_event(), Ok(None), "the next waits for the reply");
    endpoint.reply(&Reply::DeviceCount { count: 1 }).unwrap();
    assert_eq!(
        endpoint.poll_event(),
        Ok(Some(GgmlEvent::Request(Request::GetAlignment { device: 0 })))
    );
    let mut expected = Vec::new();
    Reply::DeviceCount { count: 1 }.encode(&mut expected);
    assert_eq!(endpoint.take_output(), expected);
}

#[test]
fn a_reply_to_another_command_is_refused() {
    let mut endpoint = greeted();
    endpoint.receive(&request(&Request::DeviceCount));
    endpoint.poll_event().unwrap();
    assert!(endpoint.reply(&Reply::GetAlignment { alignment: 32 }).is_err());
    assert!(endpoint.finish().is_err(), "DEVICE_COUNT has a reply");
    assert!(endpoint.take_output().is_empty());
}

#[test]
fn a_command_without_a_reply_is_finished_silently() {
    let mut endpoint = greeted();
    endpoint.receive(&request(&Request::FreeBuffer { remote_ptr: 9 }));
    endpoint.receive(&request(&Request::DeviceCount));
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::Request(_)))));
    endpoint.finish().unwrap();
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::Request(Request::DeviceCount))));
    assert!(endpoint.take_output().is_empty());
}

#[test]
fn commands_fed_byte_by_byte_decode_as_whole_ones() {
    let mut endpoint = greeted();
    let bytes = request(&Request::GetTensor { tensor: RpcTensor::ABSENT, offset: 3, size: 4 });
    for &b in &bytes[..bytes.len() - 1] {
        endpoint.receive(&[b]);
        assert_eq!(endpoint.poll_event(), Ok(None));
    }
    endpoint.receive(&bytes[bytes.len() - 1..]);
    assert!(matches!(
        endpoint.poll_event(),
        Ok(Some(GgmlEvent::Request(Request::GetTensor { offset: 3, size: 4, .. })))
    ));
}

fn set_tensor(data: &[u8]) -> Vec<u8> {
    let header = SetTensorHeader { tensor: RpcTensor::ABSENT, cache_flag: 0, offset: 16 };
    let mut out = Vec::new();
    header.encode_request(data, &mut out);
    out
}

#[test]
fn set_tensor_data_streams_through_without_being_held_whole() {
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let bytes = set_tensor(&data);
    let mut endpoint = greeted();
    let mut received = Vec::with_capacity(data.len());
    let mut done = false;
    let mut largest_buffer = 0;
    for piece in bytes.chunks(64 << 10) {
        assert!(endpoint.wants_read(), "the endpoint keeps reading the data");
        endpoint.receive(piece);
        largest_buffer = largest_buffer.max(endpoint.core().buffer_capacity());
        while let Some(event) = endpoint.poll_event().unwrap() {
            match event {
                GgmlEvent::SetTensor { header, data_len } => {
                    assert_eq!((header.offset, data_len), (16, data.len() as u64));
                    endpoint.accept_set_tensor().unwrap();
                }
                GgmlEvent::SetTensorData(piece) => received.extend_from_slice(piece),
                GgmlEvent::SetTensorDone => done = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(done);
    assert!(received == data, "the data arrives whole and in order");
    assert!(largest_buffer < 1 << 20, "buffers stayed small: {largest_buffer} bytes");
}

#[test]
fn set_tensor_without_data_is_done_at_once() {
    let mut endpoint = greeted();
    endpoint.receive(&set_tensor(&[]));
    endpoint.receive(&request(&Request::DeviceCount));
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::SetTensor { data_len: 0, .. }))));
    endpoint.accept_set_tensor().unwrap();
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::SetTensorDone)));
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::Request(Request::DeviceCount))));
}

#[test]
fn set_tensor_data_waits_for_the_drivers_decision() {
    let mut endpoint = greeted();
    endpoint.receive(&set_tensor(&[1, 2, 3]));
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::SetTensor { .. }))));
    assert_eq!(endpoint.poll_event(), Ok(None), "no data before the decision");
    endpoint.accept_set_tensor().unwrap();
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::SetTensorData(&[1, 2, 3]))));
}

#[test]
fn a_graph_over_the_limits_is_refused_from_its_first_bytes() {
    let config = GgmlEndpointConfig {
        graph: GraphLimits { max_nodes: 4, max_tensors: 4 },
        ..GgmlEndpointConfig::default()
    };
    let mut endpoint = GgmlServerEndpoint::new(config);
    endpoint.receive(&hello());
    endpoint.poll_event().unwrap();
    endpoint.accept_hello().unwrap();
    // Declares 1000 nodes in a 1 GiB payload: only the header and 8 bytes are sent.
    endpoint.receive(&RequestHeader { command: Command::GraphCompute, size: 1 << 30 }.to_bytes());
    endpoint.receive(&0u32.to_le_bytes());
    endpoint.receive(&1000u32.to_le_bytes());
    assert!(matches!(
        endpoint.poll_event(),
        Err(GgmlProtocolError::Decode(GgmlDecodeError::GraphCountOverLimit { .. }))
    ));
    assert!(endpoint.core().buffer_capacity() < 1 << 20, "nothing was reserved for it");
}

#[test]
fn a_graph_is_decoded_once_it_has_all_arrived() {
    let graph = GraphPayload { device: 0, node_ids: vec![1], tensors: vec![RpcTensor::ABSENT] };
    let mut endpoint = greeted();
    let bytes = request(&Request::GraphCompute(graph.clone()));
    endpoint.receive(&bytes[..bytes.len() - 1]);
    assert_eq!(endpoint.poll_event(), Ok(None));
    endpoint.receive(&bytes[bytes.len() - 1..]);
    assert_eq!(endpoint.poll_event(), Ok(Some(GgmlEvent::Request(Request::GraphCompute(graph)))));
    endpoint.finish().unwrap();
}

#[test]
fn get_tensor_is_answered_with_bytes_written_in_place() {
    let mut endpoint = greeted();
    endpoint.receive(&request(&Request::GetTensor {
        tensor: RpcTensor::ABSENT,
        offset: 0,
        size: 4,
    }));
    endpoint.poll_event().unwrap();
    let filled = endpoint.reply_get_tensor(4, |out| {
        out.copy_from_slice(&[9, 8, 7, 6]);
        Ok::<(), ()>(())
    });
    assert_eq!(filled, Ok(Ok(())));
    let mut expected = 4u64.to_le_bytes().to_vec();
    expected.extend_from_slice(&[9, 8, 7, 6]);
    assert_eq!(endpoint.take_output(), expected);
}

#[test]
fn unknown_commands_end_the_connection() {
    let mut endpoint = greeted();
    let mut bytes = vec![200u8];
    bytes.extend_from_slice(&0u64.to_le_bytes());
    endpoint.receive(&bytes);
    assert!(matches!(
        endpoint.poll_event(),
        Err(GgmlProtocolError::Decode(GgmlDecodeError::UnknownCommand(200)))
    ));
}

#[test]
fn an_endpoint_is_mid_request_from_a_commands_first_byte_until_it_is_whole() {
    let mut endpoint = greeted();
    assert!(!endpoint.mid_request(), "between commands");
    let bytes = request(&Request::FreeBuffer { remote_ptr: 1 });
    endpoint.receive(&bytes[..3]);
    assert_eq!(endpoint.poll_event(), Ok(None));
    assert!(endpoint.mid_request(), "half a header");
    endpoint.receive(&bytes[3..12]);
    assert_eq!(endpoint.poll_event(), Ok(None));
    assert!(endpoint.mid_request(), "half a payload");
    endpoint.receive(&bytes[12..]);
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::Request(_)))));
    assert!(!endpoint.mid_request(), "whole, with the driver");
}

#[test]
fn an_endpoint_is_mid_request_while_set_tensor_data_is_still_to_come() {
    let mut endpoint = greeted();
    let tensor = RpcTensor { id: 1, buffer: 1, data: 1, ..RpcTensor::ABSENT };
    let mut bytes = Vec::new();
    SetTensorHeader { tensor, cache_flag: 0, offset: 0 }.encode_request(&[0; 64], &mut bytes);
    endpoint.receive(&bytes[..bytes.len() - 32]);
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::SetTensor { .. }))));
    endpoint.accept_set_tensor().unwrap();
    assert!(matches!(endpoint.poll_event(), Ok(Some(GgmlEvent::SetTensorData(_)))));
    assert_eq!(endpoint.poll_event(), Ok(None));
    assert!(endpoint.mid_request());
}
