//! How the Rust client reads its socket: it skips the reads that would only say WouldBlock
//! (after a short read it waits for the poller), so these check that no reply is left
//! waiting in the socket when it does.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::servers::start_ours;
use tensor_rpc::client::{ChannelOptions, Client, ClientError, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::Value;

/// A client that gives up on a reply after a few seconds: a reply left unread in the socket
/// fails the test with a Timeout instead of hanging it.
fn connect(addr: String) -> Client {
    let options =
        ChannelOptions { call_timeout: Some(Duration::from_secs(5)), ..Default::default() };
    Client::connect_with(addr, options).unwrap()
}

/// How a proxy passes the server's bytes on to the client.
struct Forwarding {
    /// Largest piece written at once.
    chunk: usize,
    /// Pause after each piece.
    pause: Duration,
    /// Once this many bytes have gone to the client, end its stream right behind them.
    close_after: Option<usize>,
}

/// Forwards one connection to `server` as `how` says. Returns the address to connect to and
/// the count of the server's bytes passed on so far.
fn proxy(server: String, how: Forwarding) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&forwarded);
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
        let limit = how.close_after.unwrap_or(usize::MAX);
        while count.load(Ordering::SeqCst) < limit {
            let n = match upstream_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n.min(limit - count.load(Ordering::SeqCst)),
            };
            for piece in buf[..n].chunks(how.chunk) {
                // Counted before it goes out: once the client holds a reply, the count
                // covers it.
                let total = count.fetch_add(piece.len(), Ordering::SeqCst) + piece.len();
                if total >= limit {
                    // Corked, the last piece waits in the socket until the shutdown below,
                    // which sends it with the FIN in one segment: the client's poller sees
                    // the data and the end of the stream in a single event.
                    socket2::SockRef::from(&client_out).set_tcp_cork(true).unwrap();
                }
                if client_out.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(how.pause);
            }
        }
        let _ = client_out.shutdown(Shutdown::Write);
    });
    (addr, forwarded)
}

/// Passes the server's bytes on a few at a time, so that the client sees every reply
/// arrive in many short pieces.
fn trickling_proxy(server: String, chunk: usize) -> String {
    let how = Forwarding { chunk, pause: Duration::from_micros(20), close_after: None };
    proxy(server, how).0
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

#[test]
fn a_call_after_a_reply_that_came_with_the_end_of_the_stream_fails_at_once() {
    let server = start_ours(&[]);
    // How many bytes the server sends up to and including the first echo's reply.
    let whole = Forwarding { chunk: usize::MAX, pause: Duration::ZERO, close_after: None };
    let (addr, forwarded) = proxy(server.addr(), whole);
    let client = connect(addr);
    client.function("testing.echo").unwrap().call(&[1i64.into()]).unwrap();
    let upto_first_reply = forwarded.load(Ordering::SeqCst);
    drop(client);

    // The same again, with the stream ended right behind that reply: the reply and the end
    // of the stream reach the client together.
    let cut = Forwarding {
        chunk: usize::MAX,
        pause: Duration::ZERO,
        close_after: Some(upto_first_reply),
    };
    let (addr, _) = proxy(server.addr(), cut);
    let client = connect(addr);
    let echo = client.function("testing.echo").unwrap();
    assert_eq!(echo.call(&[1i64.into()]).unwrap(), Value::Int(1));
    let start = Instant::now();
    let err = echo.call(&[2i64.into()]).expect_err("the stream has ended");
    assert!(!matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}
