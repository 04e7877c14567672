//! A TCP proxy that forwards one connection and measures the RPC frames in both
//! directions, to check what actually crossed the wire.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Follows a byte stream: skips the handshake, then reads `u64` frame lengths.
struct FrameMeter {
    /// Bytes of handshake still to skip, or of the current frame still to pass.
    skip: u64,
    /// Collects a 4-byte key length (handshake) or an 8-byte frame length.
    header: Vec<u8>,
    phase: Phase,
    largest: Arc<AtomicU64>,
}

#[derive(PartialEq)]
enum Phase {
    /// Client: magic; server: status. Then the key length, then the key.
    HandshakeWord,
    KeyLength,
    FrameLength,
}

impl FrameMeter {
    fn new(largest: Arc<AtomicU64>) -> Self {
        FrameMeter { skip: 4, header: Vec::new(), phase: Phase::HandshakeWord, largest }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let want = if self.phase == Phase::FrameLength { 8 } else { 4 };
            if self.phase == Phase::HandshakeWord {
                self.phase = Phase::KeyLength;
                continue;
            }
            let n = (want - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < want {
                continue;
            }
            let len = if want == 4 {
                u64::from(u32::from_le_bytes(self.header[..4].try_into().unwrap()))
            } else {
                u64::from_le_bytes(self.header[..8].try_into().unwrap())
            };
            self.header.clear();
            if self.phase == Phase::FrameLength {
                self.largest.fetch_max(len, Ordering::SeqCst);
            }
            self.phase = Phase::FrameLength;
            self.skip = len;
        }
    }
}

/// Forwards one client connection to `127.0.0.1:target`.
pub struct FrameProxy {
    pub port: u16,
    client_to_server: Arc<AtomicU64>,
    server_to_client: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl FrameProxy {
    pub fn start(target: u16) -> FrameProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client_to_server = Arc::new(AtomicU64::new(0));
        let server_to_client = Arc::new(AtomicU64::new(0));
        let (up, down) = (Arc::clone(&client_to_server), Arc::clone(&server_to_client));
        let thread = std::thread::spawn(move || {
            let (client, _) = listener.accept().unwrap();
            let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
            let pumps = [
                pump(client.try_clone().unwrap(), server.try_clone().unwrap(), up),
                pump(server, client, down),
            ];
            for p in pumps {
                let _ = p.join();
            }
        });
        FrameProxy { port, client_to_server, server_to_client, thread: Some(thread) }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Largest frame body length seen from client to server so far.
    pub fn largest_request(&self) -> u64 {
        self.client_to_server.load(Ordering::SeqCst)
    }

    /// Largest frame body length seen from server to client so far.
    pub fn largest_reply(&self) -> u64 {
        self.server_to_client.load(Ordering::SeqCst)
    }

    /// Waits for both directions to close.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, largest: Arc<AtomicU64>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut meter = FrameMeter::new(largest);
        let mut buf = vec![0; 1 << 20];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    meter.feed(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    })
}
