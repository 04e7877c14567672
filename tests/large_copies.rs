//! Copies larger than a packet: split by the client to the server's maximum packet size.

mod support;

use support::proxy::FrameProxy;
use support::servers::start_ours;
use tensor_rpc::client::{Client, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::DataType;

const MIB: u64 = 1 << 20;

/// 1 GiB of bytes that differ from one MiB to the next.
fn gibibyte() -> Vec<u8> {
    let block: Vec<u8> = (0..MIB).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut data = Vec::with_capacity(1 << 30);
    for i in 0u64..1024 {
        data.extend_from_slice(&block);
        let at = data.len() - block.len();
        data[at..at + 8].copy_from_slice(&i.to_le_bytes());
    }
    data
}

#[test]
fn one_gib_round_trip_through_4_mib_packets_is_byte_exact() {
    let max_packet = 4 * MIB;
    let server = start_ours(&["--max-packet", &max_packet.to_string()]);
    let proxy = FrameProxy::start(server.port);
    let client = Client::connect(proxy.addr(), "").unwrap();
    assert_eq!(client.max_packet().unwrap(), max_packet);

    let data = gibibyte();
    let dev = client.cpu(0);
    let tensor =
        RemoteTensor::from_bytes(&dev, &[1 << 30], DataType::new(DataType::UINT, 8, 1), &data)
            .unwrap();
    let back = tensor.to_bytes().unwrap();
    assert!(back == data, "downloaded bytes differ from uploaded ones");

    assert!(proxy.largest_request() <= max_packet, "request of {} bytes", proxy.largest_request());
    assert!(proxy.largest_reply() <= max_packet, "reply of {} bytes", proxy.largest_reply());
}

#[test]
fn copies_fill_a_server_maximum_smaller_than_the_clients_chunk() {
    let max_packet = 256 << 10;
    let server = start_ours(&["--max-packet", &max_packet.to_string()]);
    let proxy = FrameProxy::start(server.port);
    let client = Client::connect(proxy.addr(), "").unwrap();
    let data: Vec<u8> = (0..4 * MIB).map(|i| (i % 249) as u8).collect();
    let dev = client.cpu(0);
    let u8_type = DataType::new(DataType::UINT, 8, 1);
    let tensor = RemoteTensor::from_bytes(&dev, &[4 << 20], u8_type, &data).unwrap();
    assert!(tensor.to_bytes().unwrap() == data);
    assert!(proxy.largest_request() <= max_packet, "request of {} bytes", proxy.largest_request());
    assert!(proxy.largest_reply() <= max_packet, "reply of {} bytes", proxy.largest_reply());
    assert!(proxy.largest_request() > max_packet - 1024, "copies use the whole packet");
}

#[test]
fn copy_with_a_byte_offset_lands_at_that_offset_across_chunks() {
    let server = start_ours(&["--max-packet", "4096"]);
    let client = Client::connect(server.addr(), "").unwrap();
    let dev = client.cpu(0);
    let whole = RemoteTensor::empty(&dev, &[20000], DataType::new(DataType::UINT, 8, 1)).unwrap();
    let mut view = whole.record().clone();
    view.byte_offset = 1000;
    view.shape = vec![10000];
    let data: Vec<u8> = (0..10000u32).map(|i| (i % 251) as u8).collect();
    client.with_session(|s| s.write(&view, &data)).unwrap();
    let all = whole.to_bytes().unwrap();
    assert!(all[..1000].iter().all(|&b| b == 0));
    assert_eq!(&all[1000..11000], &data[..]);
    assert!(all[11000..].iter().all(|&b| b == 0));
}
