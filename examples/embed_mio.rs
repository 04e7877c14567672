//! Embedding tensor-rpc in your own mio event loop.
//!
//! The loop below is the user's: it serves TVM RPC connections through
//! [`TvmConnection`] (no I/O inside: the loop moves the bytes and passes the time in)
//! alongside a socket of its own, a "status" port that answers one line and closes. Requests that run long come back
//! as [`Progress::Offload`]; this loop runs them on a thread and is woken by a `Waker`.
//!
//! ```sh
//! cargo run --example embed_mio -- 127.0.0.1:9091 127.0.0.1:9092
//! python -c "from tvm import rpc; print(rpc.connect('127.0.0.1', 9091).get_function('testing.echo')(1))"
//! nc 127.0.0.1 9092
//! ```

use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use tensor_rpc::server::{Connection, ConnectionConfig, JobDone, Progress, TvmConnection};

const RPC_LISTENER: Token = Token(0);
const STATUS_LISTENER: Token = Token(1);
const WAKER: Token = Token(2);
const FIRST_CONNECTION: usize = 3;

struct Rpc {
    socket: TcpStream,
    conn: TvmConnection,
}

/// Serves RPC on `rpc` and status lines on `status` until `stop` is set.
pub fn serve(
    mut rpc: TcpListener,
    mut status: TcpListener,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry().register(&mut rpc, RPC_LISTENER, Interest::READABLE)?;
    poll.registry().register(&mut status, STATUS_LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (done_tx, done_rx) = mpsc::channel::<(usize, JobDone)>();

    let mut connections: HashMap<usize, Rpc> = HashMap::new();
    let mut next_token = FIRST_CONNECTION;
    let mut events = Events::with_capacity(64);
    while !stop.load(Ordering::SeqCst) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        let mut ready: Vec<usize> = Vec::new();
        for event in events.iter() {
            match event.token() {
                RPC_LISTENER => loop {
                    match rpc.accept() {
                        Ok((mut socket, _)) => {
                            socket.set_nodelay(true)?;
                            let token = next_token;
                            next_token += 1;
                            poll.registry().register(
                                &mut socket,
                                Token(token),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            let conn =
                                TvmConnection::new(ConnectionConfig::default(), Instant::now());
                            connections.insert(token, Rpc { socket, conn });
                            ready.push(token);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                },
                // The loop's own business: one line of status per connection.
                STATUS_LISTENER => loop {
                    match status.accept() {
                        Ok((mut socket, _)) => {
                            let line = format!("rpc connections: {}\n", connections.len());
                            let _ = socket.write_all(line.as_bytes());
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                },
                WAKER => {
                    while let Ok((token, done)) = done_rx.try_recv() {
                        if let Some(c) = connections.get_mut(&token) {
                            c.conn.complete(done, Instant::now());
                            ready.push(token);
                        }
                    }
                }
                Token(token) => ready.push(token),
            }
        }
        for token in ready {
            let Some(c) = connections.get_mut(&token) else { continue };
            if let Some(job) = drive(c)? {
                let (waker, done_tx) = (Arc::clone(&waker), done_tx.clone());
                std::thread::spawn(move || {
                    if done_tx.send((token, job.run())).is_ok() {
                        let _ = waker.wake();
                    }
                });
            }
            if connections[&token].conn.is_finished() {
                let mut c = connections.remove(&token).expect("present");
                poll.registry().deregister(&mut c.socket)?;
            }
        }
    }
    Ok(())
}

/// Reads, processes and writes until the socket would block; returns a job to run, if any.
fn drive(c: &mut Rpc) -> io::Result<Option<tensor_rpc::server::Job>> {
    loop {
        let mut progressed = false;
        while c.conn.wants_read() {
            match c.conn.core_mut().receive_from(&mut c.socket) {
                Ok(0) => {
                    c.conn.endpoint().close();
                    break;
                }
                Ok(_) => progressed = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    c.conn.endpoint().close();
                    break;
                }
            }
        }
        // Framing lost shows as a finished connection once its output is flushed.
        let job = match c.conn.process(Instant::now()) {
            Progress::Offload(job) => Some(job),
            Progress::Idle => None,
        };
        while c.conn.core().wants_write() {
            match c.conn.core_mut().send_to(&mut c.socket) {
                Ok(_) => progressed = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    c.conn.endpoint().close();
                    c.conn.core_mut().take_output();
                    break;
                }
            }
        }
        if job.is_some() || !progressed {
            return Ok(job);
        }
    }
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let rpc_addr = args.next().unwrap_or_else(|| "127.0.0.1:9091".into());
    let status_addr = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let rpc = TcpListener::bind(rpc_addr.parse().expect("an address like 127.0.0.1:9091"))?;
    let status = TcpListener::bind(status_addr.parse().expect("an address like 127.0.0.1:9092"))?;
    println!("rpc on {}, status on {}", rpc.local_addr()?, status.local_addr()?);
    serve(rpc, status, Arc::new(AtomicBool::new(false)))
}
