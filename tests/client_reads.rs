//! How the Rust client reads its socket: it skips the reads that would only say WouldBlock
//! (after a short read it waits for the poller), so these check that no reply is left
//! waiting in the socket when it does.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::servers::start_ours;
use tensor_rpc::client::{ChannelOptions, Client, ClientError, RemoteTensor};
use tensor_rpc::endpoint::codec::Value;

/// A client that gives up on a reply after a few seconds: a reply left unread in the socket
/// fails the test with a Timeout instead of hanging it.
fn connect(addr: String) -> Client {
    let options =
        ChannelOptions { call_timeout: Some(Duration::from_secs(5)), ..Default::default() };
    Client::connect_with(addr, options).unwrap()
}

/// Forwards one connection to `server`, passing the server's bytes on `chunk` at a time
/// with a pause between chunks, so that the client sees every reply arrive in many short
/// pieces. Returns the address to connect to.
fn trickling_proxy(server: String, chunk: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let upstream = TcpStream::connect(server).unwrap();
        client.set_nodelay(true).unwrap();
        upstream.set_nodelay(true).unwrap();
        let (mut client_in, mut upstream_out) =
            (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_in, &mut upstream_out);
            let _ = upstream_out.shutdown(Shutdown::Write);
        });
        let (mut upstream_in, mut client_out) = (upstream, client);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match upstream_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for piece in buf[..n].chunks(chunk) {
                if client_out.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        let _ = client_out.shutdown(Shutdown::Write);
    });
    addr
}

#[test]
fn replies_arriving_a_few_bytes_at_a_time_are_read_whole() {
    let server = start_ours(&[]);
    let client = connect(trickling_proxy(server.addr(), 7));
    let echo = client.function("testing.echo").unwrap();
    let text = "x".repeat(5000);
    for i in 0..20 {
        assert_eq!(echo.call(&[i64::from(i).into()]).unwrap(), Value::Int(i64::from(i)));
    }
    assert_eq!(echo.call(&[Value::Str(text.clone()).into()]).unwrap(), Value::Str(text));
}

#[test]
fn a_large_download_arriving_in_small_pieces_is_read_whole() {
    let server = start_ours(&[]);
    let client = connect(trickling_proxy(server.addr(), 4093));
    // Above the size at which the client reads a copy's payload straight into the caller's
    // memory, bypassing its input buffer.
    let data: Vec<u32> = (0..(300 << 10) / 4).collect();
    let tensor = RemoteTensor::from_slice(&client.cpu(0), &[data.len() as i64], &data).unwrap();
    assert_eq!(tensor.to_vec::<u32>().unwrap(), data);
}

#[test]
fn a_call_on_a_connection_the_server_closed_fails_at_once() {
    let server = start_ours(&["--idle-timeout", "1"]);
    let client = connect(server.addr());
    let echo = client.function("testing.echo").unwrap();
    assert_eq!(echo.call(&[1i64.into()]).unwrap(), Value::Int(1));
    std::thread::sleep(Duration::from_millis(2500));
    let start = Instant::now();
    let err = echo.call(&[2i64.into()]).expect_err("the server closed the session");
    assert!(!matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}
