use std::borrow::Cow;

use super::codec::handshake::{RPC_MAGIC, encode_client_hello};
use super::codec::{
    DataType, DecodeError, Device, HandshakeStatus, Packet, Syscall, TensorRecord, Value,
};
use super::*;

fn frame(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode_frame(&mut out);
    out
}

fn hello(key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_hello(key, &mut out);
    out
}

/// A server endpoint that has accepted a client keyed `client:`.
fn connected_server(config: EndpointConfig) -> ServerEndpoint {
    let mut server = ServerEndpoint::server(config);
    server.receive(&hello("client:"));
    let Some(ServerEvent::ClientHello(key)) = server.poll_event().unwrap() else {
        panic!("expected a hello")
    };
    assert!(key.matches(""));
    server.accept("").unwrap();
    server.take_output();
    server
}

fn get_global_func(name: &str) -> Packet<'static> {
    Packet::Syscall(Syscall::GetGlobalFunc { name: name.into() })
}

#[test]
fn server_reports_the_client_key_and_answers_accept_with_its_own() {
    let mut server = ServerEndpoint::server(EndpointConfig::default());
    server.receive(&hello("client:mycpu -timeout=3"));
    match server.poll_event().unwrap() {
        Some(ServerEvent::ClientHello(key)) => {
            assert_eq!(key.match_key.as_deref(), Some("mycpu"));
            assert_eq!(key.timeout, Some(std::time::Duration::from_secs(3)));
        }
        other => panic!("unexpected {other:?}"),
    }
    server.accept("mycpu").unwrap();
    let mut expected = RPC_MAGIC.to_le_bytes().to_vec();
    expected.extend_from_slice(&12i32.to_le_bytes());
    expected.extend_from_slice(b"server:mycpu");
    assert_eq!(server.take_output(), expected);
}

#[test]
fn server_rejecting_a_key_sends_mismatch_and_finishes() {
    let mut server = ServerEndpoint::server(EndpointConfig::default());
    server.receive(&hello("client:other"));
    server.poll_event().unwrap();
    server.reject(HandshakeStatus::Mismatch);
    assert_eq!(server.take_output(), (RPC_MAGIC + 2).to_le_bytes());
    assert!(server.is_finished());
    assert!(!server.wants_read());
}

#[test]
fn server_closes_on_wrong_magic() {
    let mut server = ServerEndpoint::server(EndpointConfig::default());
    server.receive(b"GET / HTTP/1.1\r\n");
    assert_eq!(server.poll_event(), Err(FramingError::BadMagic(0x2054_4547)));
    assert!(server.is_finished());
}

#[test]
fn server_closes_on_negative_key_length() {
    let mut server = ServerEndpoint::server(EndpointConfig::default());
    let mut bytes = RPC_MAGIC.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(-1i32).to_le_bytes());
    server.receive(&bytes);
    assert_eq!(server.poll_event(), Err(FramingError::BadKeyLength(-1)));
}

#[test]
fn server_closes_on_key_that_is_not_utf8() {
    let mut server = ServerEndpoint::server(EndpointConfig::default());
    let mut bytes = RPC_MAGIC.to_le_bytes().to_vec();
    bytes.extend_from_slice(&2i32.to_le_bytes());
    bytes.extend_from_slice(&[0xff, 0xfe]);
    server.receive(&bytes);
    assert_eq!(server.poll_event(), Err(FramingError::KeyNotUtf8));
}

#[test]
fn handshake_waits_for_every_byte_of_the_key() {
    let mut server = ServerEndpoint::server(EndpointConfig::default());
    let bytes = hello("client:abc");
    for &b in &bytes[..bytes.len() - 1] {
        server.receive(&[b]);
        assert_eq!(server.poll_event(), Ok(None));
    }
    server.receive(&bytes[bytes.len() - 1..]);
    assert!(matches!(server.poll_event(), Ok(Some(ServerEvent::ClientHello(_)))));
}

#[test]
fn packet_length_above_the_maximum_closes_before_allocating() {
    let config = EndpointConfig { max_packet: 1024, ..EndpointConfig::default() };
    let mut server = connected_server(config);
    server.receive(&(1u64 << 63).to_le_bytes());
    assert_eq!(server.poll_event(), Err(FramingError::PacketTooLarge { len: 1 << 63, max: 1024 }));
    assert!(server.is_finished());
}

#[test]
fn zero_length_packets_are_ignored() {
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&[0; 24]);
    server.receive(&frame(&get_global_func("f")));
    assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Request(get_global_func("f"))));
}

#[test]
fn request_is_reported_once_and_the_next_waits_for_the_reply() {
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&frame(&get_global_func("a")));
    server.receive(&frame(&get_global_func("b")));
    assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Request(get_global_func("a"))));
    assert!(server.awaiting_reply());
    assert_eq!(server.poll_event().unwrap(), None);
    server.reply(&Packet::Return(vec![Value::Handle(1)])).unwrap();
    assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Request(get_global_func("b"))));
    assert_eq!(server.take_output(), frame(&Packet::Return(vec![Value::Handle(1)])));
}

#[test]
fn reply_without_a_request_is_refused() {
    let mut server = connected_server(EndpointConfig::default());
    assert_eq!(server.reply(&Packet::return_void()), Err(NotAwaitingReply));
    assert!(server.take_output().is_empty(), "nothing was written");
}

#[test]
fn accept_outside_the_handshake_decision_is_refused() {
    let mut server = connected_server(EndpointConfig::default());
    assert_eq!(server.accept("again"), Err(NotAwaitingReply));
    assert!(server.take_output().is_empty());
}

#[test]
fn requests_fed_byte_by_byte_decode_like_whole_ones() {
    let mut server = connected_server(EndpointConfig::default());
    let bytes = frame(&Packet::CallFunc {
        function: 9,
        args: vec![Value::Str("hello".into()), Value::Float(2.5)],
    });
    for &b in &bytes[..bytes.len() - 1] {
        server.receive(&[b]);
        assert_eq!(server.poll_event().unwrap(), None);
    }
    server.receive(&bytes[bytes.len() - 1..]);
    assert!(matches!(
        server.poll_event().unwrap(),
        Some(ServerEvent::Request(Packet::CallFunc { function: 9, .. }))
    ));
}

#[test]
fn malformed_packet_gets_an_exception_and_the_connection_goes_on() {
    let mut bad = Vec::new();
    bad.extend_from_slice(&8u64.to_le_bytes());
    bad.extend_from_slice(&99i32.to_le_bytes());
    bad.extend_from_slice(&[0; 4]);
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&bad);
    server.receive(&frame(&get_global_func("ok")));
    assert_eq!(
        server.poll_event().unwrap(),
        Some(ServerEvent::Rejected(DecodeError::UnknownCode(99)))
    );
    assert_eq!(server.take_output(), frame(&Packet::Exception("unknown RPC code 99".into())));
    assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Request(get_global_func("ok"))));
}

#[test]
fn server_refuses_a_return_packet_with_an_exception() {
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&frame(&Packet::return_void()));
    assert!(matches!(
        server.poll_event().unwrap(),
        Some(ServerEvent::Rejected(DecodeError::UnexpectedPacket { code: "Return", .. }))
    ));
    let out = server.take_output();
    assert_eq!(&out[8..12], &5i32.to_le_bytes(), "an Exception packet");
}

#[test]
fn shutdown_stops_reading_and_finishes_after_flush() {
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&frame(&Packet::Shutdown));
    server.receive(&frame(&get_global_func("never")));
    assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Shutdown));
    assert_eq!(server.poll_event().unwrap(), None);
    assert!(!server.wants_read());
    assert!(server.is_finished());
}

fn record(data: u64, shape: &[i64]) -> TensorRecord {
    TensorRecord {
        data,
        device: Device::cpu(0),
        dtype: DataType::FLOAT32,
        shape: shape.to_vec(),
        byte_offset: 0,
    }
}

#[test]
fn copy_ack_is_written_in_place() {
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&frame(&Packet::CopyFromRemote { source: record(1, &[2]), nbytes: 8 }));
    assert!(matches!(server.poll_event().unwrap(), Some(ServerEvent::Request(_))));
    server
        .reply_copy_ack(8, |out| {
            out.copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        server.take_output(),
        frame(&Packet::CopyAck(Cow::Borrowed(&[1, 2, 3, 4, 5, 6, 7, 8])))
    );
}

#[test]
fn copy_ack_whose_fill_fails_becomes_an_exception() {
    let mut server = connected_server(EndpointConfig::default());
    server.receive(&frame(&Packet::CopyFromRemote { source: record(1, &[2]), nbytes: 8 }));
    server.poll_event().unwrap();
    server.reply_copy_ack(8, |_| Err("no such tensor".into())).unwrap();
    assert_eq!(server.take_output(), frame(&Packet::Exception("no such tensor".into())));
}

#[test]
fn copy_ack_larger_than_the_maximum_packet_becomes_an_exception() {
    let config = EndpointConfig { max_packet: 64, ..EndpointConfig::default() };
    let mut server = connected_server(config);
    server.receive(&frame(&Packet::CopyFromRemote {
        source: record(1, &[1 << 20]),
        nbytes: 4 << 20,
    }));
    server.poll_event().unwrap();
    server.reply_copy_ack(4 << 20, |_| panic!("must not be asked to fill")).unwrap();
    let out = server.take_output();
    assert_eq!(&out[8..12], &5i32.to_le_bytes(), "an Exception packet");
}

#[test]
fn unread_output_above_the_high_water_mark_pauses_processing() {
    let config = EndpointConfig { output_high_water: 16, ..EndpointConfig::default() };
    let mut server = connected_server(config);
    server.receive(&frame(&get_global_func("a")));
    server.receive(&frame(&get_global_func("b")));
    server.poll_event().unwrap();
    server.reply(&Packet::Exception("a long message that fills the output".into())).unwrap();
    assert!(!server.wants_read());
    assert_eq!(server.poll_event().unwrap(), None);
    server.take_output();
    assert!(server.wants_read());
    assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Request(get_global_func("b"))));
}

#[test]
fn client_sends_its_key_and_reports_the_servers() {
    let mut client = ClientEndpoint::client("client:k", EndpointConfig::default());
    assert_eq!(client.take_output(), hello("client:k"));
    let mut reply = Vec::new();
    super::codec::handshake::encode_server_reply(HandshakeStatus::Success, "server:k", &mut reply);
    client.receive(&reply);
    assert_eq!(
        client.poll_event().unwrap(),
        Some(ClientEvent::Connected { server_key: "server:k".into() })
    );
}

#[test]
fn client_fails_when_the_server_refuses_its_key() {
    let mut client = ClientEndpoint::client("client:k", EndpointConfig::default());
    client.receive(&(RPC_MAGIC + 2).to_le_bytes());
    assert_eq!(client.poll_event(), Err(FramingError::HandshakeRefused(RPC_MAGIC + 2)));
}

fn connected_client() -> ClientEndpoint {
    let mut client = ClientEndpoint::client("client:", EndpointConfig::default());
    let mut reply = Vec::new();
    super::codec::handshake::encode_server_reply(HandshakeStatus::Success, "server:", &mut reply);
    client.receive(&reply);
    client.poll_event().unwrap();
    client.take_output();
    client
}

#[test]
fn client_reports_returns_exceptions_and_copy_acks_in_order() {
    let mut client = connected_client();
    client.receive(&frame(&Packet::return_void()));
    client.receive(&frame(&Packet::Exception("boom".into())));
    client.receive(&frame(&Packet::CopyAck(Cow::Borrowed(&[7, 7]))));
    assert_eq!(client.poll_event().unwrap(), Some(ClientEvent::Return(vec![Value::None])));
    assert_eq!(client.poll_event().unwrap(), Some(ClientEvent::Exception("boom".into())));
    assert_eq!(client.poll_event().unwrap(), Some(ClientEvent::CopyAck(Cow::Borrowed(&[7, 7]))));
    assert_eq!(client.poll_event().unwrap(), None);
}

#[test]
fn client_rejects_a_request_from_the_server_without_answering() {
    let mut client = connected_client();
    client.receive(&frame(&get_global_func("x")));
    assert!(matches!(
        client.poll_event().unwrap(),
        Some(ClientEvent::Rejected(DecodeError::UnexpectedPacket { code: "GetGlobalFunc", .. }))
    ));
    assert!(client.take_output().is_empty());
}

#[test]
fn take_copy_ack_hands_over_a_matching_copy_ack_with_its_buffered_payload() {
    let mut client = connected_client();
    let whole = frame(&Packet::CopyAck(Cow::Borrowed(&[1, 2, 3, 4, 5, 6])));
    client.receive(&whole[..15]); // prefix and 3 payload bytes
    let mut out = [0u8; 6];
    assert_eq!(client.take_copy_ack(&mut out), Some(3));
    assert_eq!(out[..3], [1, 2, 3]);
    // The rest comes straight from the socket; the endpoint is ready for the next packet.
    client.receive(&frame(&Packet::return_void()));
    assert_eq!(client.poll_event().unwrap(), Some(ClientEvent::Return(vec![Value::None])));
}

#[test]
fn take_copy_ack_leaves_other_replies_to_poll_event() {
    let mut client = connected_client();
    client.receive(&frame(&Packet::Exception("no such tensor".into())));
    let mut out = [0u8; 6];
    assert_eq!(client.take_copy_ack(&mut out), None);
    assert_eq!(client.poll_event().unwrap(), Some(ClientEvent::Exception("no such tensor".into())));
}

#[test]
fn take_copy_ack_refuses_a_copy_ack_of_another_length() {
    let mut client = connected_client();
    client.receive(&frame(&Packet::CopyAck(Cow::Borrowed(&[1, 2]))));
    let mut out = [0u8; 6];
    assert_eq!(client.take_copy_ack(&mut out), None);
    assert!(matches!(client.poll_event().unwrap(), Some(ClientEvent::CopyAck(_))));
}

#[test]
fn copy_to_remote_prefix_and_payload_make_the_whole_frame() {
    let mut client = connected_client();
    let target = record(3, &[2]);
    let payload = [9u8; 8];
    client.send_copy_to_remote_prefix(&target, payload.len() as u64);
    let mut sent = client.take_output();
    sent.extend_from_slice(&payload);
    let whole = frame(&Packet::CopyToRemote { target, data: Cow::Borrowed(&payload) });
    assert_eq!(sent, whole);
}
