//! A raw TCP client that sends whatever bytes a test crafts and reads the server's replies,
//! plus an in-process server to aim it at.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use tensor_rpc::endpoint::tvm::codec::{
    DataType, DecodeLimits, PROTOCOL_VERSION, Packet, Syscall, TensorRecord, Value,
};
use tensor_rpc::server::{Server, ServerConfig, ShutdownHandle};

use super::streams::{frame, hello};

/// A server of ours running on a thread of this process.
pub struct InProcessServer {
    pub addr: SocketAddr,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl InProcessServer {
    pub fn start(config: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut server_config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        config(&mut server_config);
        let mut server = Server::bind(server_config).expect("bind");
        let addr = server.local_addr().unwrap();
        let stop = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        InProcessServer { addr, stop, thread: Some(thread) }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the server did with the bytes sent last.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Packet(Packet<'static>),
    /// The connection closed (EOF or reset) before a whole reply arrived.
    Closed,
}

pub struct RawConn {
    stream: TcpStream,
}

impl RawConn {
    /// Connects without saying anything.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn { stream }
    }

    /// Connects, completes the handshake with key `client:` and nothing more.
    pub fn handshaken(addr: SocketAddr) -> Self {
        let mut conn = Self::connect(addr);
        conn.send(&hello("client:"));
        let status = conn.read_i32().expect("handshake status");
        assert_eq!(status, 0xFF271, "handshake refused");
        let len = conn.read_i32().unwrap() as usize;
        conn.read_exact(len).unwrap();
        conn
    }

    /// Connects, handshakes and initializes a local session.
    pub fn session(addr: SocketAddr) -> Self {
        let mut conn = Self::handshaken(addr);
        let init = Packet::InitServer { version: PROTOCOL_VERSION.into(), args: vec![] };
        assert_eq!(conn.request(&init), Reply::Packet(Packet::return_void()));
        conn
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // A server that already closed may reset the connection; reading tells the test.
        let _ = self.stream.write_all(bytes);
    }

    /// Ends our sending half: the server sees EOF.
    pub fn finish_sending(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        match self.stream.read_exact(&mut buf) {
            Ok(()) => Some(buf),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("no reply within the read timeout")
            }
            Err(_) => None,
        }
    }

    pub fn read_i32(&mut self) -> Option<i32> {
        self.read_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()))
    }

    /// The next reply packet, or `Closed`.
    pub fn reply(&mut self) -> Reply {
        let Some(len) = self.read_exact(8) else { return Reply::Closed };
        let len = u64::from_le_bytes(len.try_into().unwrap()) as usize;
        let Some(body) = self.read_exact(len) else { return Reply::Closed };
        let packet = Packet::decode(&body, &DecodeLimits::default()).expect("a valid reply");
        Reply::Packet(packet.into_owned())
    }

    pub fn request(&mut self, packet: &Packet<'_>) -> Reply {
        self.send(&frame(packet));
        self.reply()
    }

    /// Reads until the server closes the connection: `Some(bytes read before the end)`, or
    /// `None` if it neither closed nor sent anything more within the read timeout.
    pub fn read_until_closed(&mut self) -> Option<usize> {
        let mut buf = [0; 4096];
        let mut total = 0;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(total),
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Some(total), // reset
            }
        }
    }

    /// Whether the server has sent bytes not yet read (without waiting for any).
    pub fn has_bytes_waiting(&mut self) -> bool {
        self.stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let waiting = matches!(self.stream.peek(&mut byte), Ok(n) if n > 0);
        self.stream.set_nonblocking(false).unwrap();
        waiting
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// A syscall's single return value; panics on an Exception.
    pub fn syscall(&mut self, call: Syscall) -> Value {
        match self.request(&Packet::Syscall(call)) {
            Reply::Packet(Packet::Return(mut values)) if values.len() == 1 => values.remove(0),
            other => panic!("syscall failed: {other:?}"),
        }
    }

    pub fn function(&mut self, name: &str) -> u64 {
        match self.syscall(Syscall::GetGlobalFunc { name: name.into() }) {
            Value::Handle(h) if h != 0 => h,
            other => panic!("no function {name}: {other:?}"),
        }
    }

    /// Allocates a compact tensor and returns its record.
    pub fn tensor(&mut self, dtype: DataType, shape: &[i64]) -> TensorRecord {
        let mut record = TensorRecord::unallocated_cpu(dtype, shape);
        match self.syscall(Syscall::DevAllocDataWithScope { tensor: record.clone(), scope: None }) {
            Value::Handle(h) => record.data = h,
            other => panic!("allocation returned {other:?}"),
        }
        record
    }

    pub fn free(&mut self, record: &TensorRecord) {
        self.syscall(Syscall::DevFreeData { device: record.device, data: record.data });
    }

    /// Calls `name` with `args` and returns the reply.
    pub fn call(&mut self, name: &str, args: Vec<Value>) -> Reply {
        let function = self.function(name);
        self.request(&Packet::CallFunc { function, args })
    }
}
