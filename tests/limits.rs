//! The server's limits, each seen from a client: session time limits (`-timeout=N`), the
//! session cap, handshake timeouts and cap, idle timeout, per-session memory limit and the
//! largest packet.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::servers::{run_python, start_ours, wait_for};
use tensor_rpc::client::{ChannelOptions, Client, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::Value;
use tensor_rpc::session::UsageSnapshot;

fn stats(client: &Client) -> UsageSnapshot {
    match client.function("tensor_rpc.stats").unwrap().call(&[]).unwrap() {
        Value::Str(json) => UsageSnapshot::from_json(&json).unwrap(),
        other => panic!("stats returned {other:?}"),
    }
}

/// Connects presenting `key` (TVM options such as ` -timeout=2` included).
fn connect_with_key(addr: &str, key: &str) -> Client {
    Client::connect_with(addr, ChannelOptions { key: key.into(), ..ChannelOptions::default() })
        .unwrap()
}

/// Whether the server closes `stream` within `limit` (a read returns 0 or fails).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn hello(key: &str) -> Vec<u8> {
    let mut out = 0xFF271i32.to_le_bytes().to_vec();
    out.extend((key.len() as i32).to_le_bytes());
    out.extend(key.as_bytes());
    out
}

#[test]
fn timeout_option_ends_the_session_after_about_2s_and_releases_its_memory() {
    let server = start_ours(&[]);
    let observer = Client::connect(server.addr(), "").unwrap();
    let timed = connect_with_key(&server.addr(), " -timeout=2");
    let started = Instant::now();
    let dev = timed.cpu(0);
    let tensor =
        RemoteTensor::empty(&dev, &[1 << 20], tensor_rpc::endpoint::tvm::codec::DataType::FLOAT32)
            .unwrap();
    let held = stats(&observer);
    assert_eq!(held.sessions, 2);
    assert_eq!(held.bytes_held, 4 << 20);
    assert!(wait_for(Duration::from_secs(5), || stats(&observer).sessions == 1));
    let ended = started.elapsed();
    assert!(ended >= Duration::from_millis(1900) && ended < Duration::from_secs(4), "{ended:?}");
    let after = stats(&observer);
    assert_eq!((after.allocations, after.bytes_held), (0, 0), "{after:?}");
    assert!(tensor.to_bytes().is_err(), "the timed-out session no longer answers");
    assert!(server.log_text().contains("session timeout"), "{}", server.log_text());
}

#[test]
fn client_beyond_max_sessions_is_refused_with_a_message_tvms_client_shows() {
    let server = start_ours(&["--max-sessions", "1"]);
    let out = run_python("tracker_scenarios.py", &["busy".into(), server.port.to_string()]);
    let mut lines = out.lines();
    let refused = lines.next().unwrap();
    assert!(refused.contains("busy") && refused.contains("--max-sessions"), "{out}");
    assert_eq!(lines.next(), Some("after close: back"), "{out}");
}

#[test]
fn silent_client_is_dropped_at_the_handshake_timeout() {
    let server = start_ours(&["--handshake-timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let opened = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(4)));
    assert!(opened.elapsed() >= Duration::from_millis(900), "{:?}", opened.elapsed());
}

#[test]
fn client_dribbling_its_handshake_is_dropped_at_the_handshake_timeout() {
    let server = start_ours(&["--handshake-timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let opened = Instant::now();
    let bytes = hello("client:");
    let mut closed = false;
    for b in &bytes[..bytes.len() - 1] {
        if stream.write_all(&[*b]).is_err()
            || closed_within(&mut stream, Duration::from_millis(300))
        {
            closed = true;
            break;
        }
    }
    closed = closed || closed_within(&mut stream, Duration::from_secs(2));
    assert!(closed, "still open after {:?}", opened.elapsed());
    assert!(opened.elapsed() < Duration::from_secs(3), "{:?}", opened.elapsed());
}

#[test]
fn connections_beyond_the_handshake_cap_are_closed_at_once() {
    let server = start_ours(&["--max-handshaking", "2"]);
    let mut waiting: Vec<TcpStream> =
        (0..2).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(server.addr()).unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(2)), "third connection kept");
    for stream in &mut waiting {
        assert!(!closed_within(stream, Duration::from_millis(200)), "a waiting one was closed");
    }
    // Once they complete their handshake, there is room again.
    drop(waiting);
    assert!(wait_for(Duration::from_secs(3), || Client::connect(server.addr(), "").is_ok()));
}

#[test]
fn idle_session_is_closed_after_the_idle_timeout() {
    let server = start_ours(&["--idle-timeout", "1"]);
    let client = Client::connect(server.addr(), "").unwrap();
    let echo = client.function("testing.echo").unwrap();
    assert_eq!(echo.call(&[1i64.into()]).unwrap(), Value::Int(1));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(echo.call(&[2i64.into()]).is_err());
    assert!(server.log_text().contains("idle timeout"), "{}", server.log_text());
}

#[test]
fn allocation_beyond_the_memory_limit_flag_is_refused() {
    let server = start_ours(&["--memory-limit", "1M"]);
    let client = Client::connect(server.addr(), "").unwrap();
    let dev = client.cpu(0);
    let f32_ = tensor_rpc::endpoint::tvm::codec::DataType::FLOAT32;
    let _small = RemoteTensor::empty(&dev, &[1 << 17], f32_).unwrap();
    let err = RemoteTensor::empty(&dev, &[3 << 16], f32_).err().expect("over the limit");
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn declared_packet_above_max_packet_closes_the_connection_before_allocating() {
    let server = start_ours(&["--max-packet", "1048576"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(&hello("client:")).unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(i32::from_le_bytes(reply), 0xFF271);
    let mut key_len = [0u8; 4];
    stream.read_exact(&mut key_len).unwrap();
    let mut key = vec![0u8; i32::from_le_bytes(key_len) as usize];
    stream.read_exact(&mut key).unwrap();
    // 1 TiB declared: allocating it would abort the process, so the server is still here
    // to serve the next client only if it refused before allocating.
    stream.write_all(&(1u64 << 40).to_le_bytes()).unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(3)));
    let client = Client::connect(server.addr(), "").unwrap();
    assert_eq!(
        client.function("testing.echo").unwrap().call(&[3i64.into()]).unwrap(),
        Value::Int(3)
    );
    assert!(
        server.log_text().contains("exceeds") || server.log_text().contains("too large"),
        "{}",
        server.log_text()
    );
}
