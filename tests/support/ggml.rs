//! A raw ggml-RPC client for tests: sends whatever commands a test builds (through the
//! project's codec) and reads the replies, or sees the connection closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tensor_rpc::endpoint::ggml::codec::{
    Command, GraphPayload, Reply, Request, RpcTensor, SetTensorHeader,
};

/// ggml's type numbers the tests use.
pub const F32: u32 = 0;
pub const F16: u32 = 1;
pub const Q4_0: u32 = 2;
pub const I32: u32 = 26;
pub const I64: u32 = 27;

/// ggml's op numbers the tests use.
pub const OP_NONE: u32 = 0;
pub const OP_ADD: u32 = 2;
pub const OP_ACC: u32 = 5;
pub const OP_CONCAT: u32 = 22;
pub const OP_RMS_NORM: u32 = 25;
pub const OP_MUL_MAT: u32 = 29;
pub const OP_MUL_MAT_ID: u32 = 30;
pub const OP_CPY: u32 = 34;
pub const OP_VIEW: u32 = 37;
pub const OP_GET_ROWS: u32 = 40;
pub const OP_SET_ROWS: u32 = 42;
pub const OP_SOFT_MAX: u32 = 46;
pub const OP_ROPE: u32 = 48;
pub const OP_ARGSORT: u32 = 69;
pub const OP_FLASH_ATTN_EXT: u32 = 74;
pub const OP_SSM_SCAN: u32 = 77;
pub const OP_UNARY: u32 = 91;
pub const OP_MAP_CUSTOM1: u32 = 92;
pub const OP_MAP_CUSTOM3: u32 = 94;
pub const OP_GLU: u32 = 100;
pub const FLAG_COMPUTE: i32 = 16;

pub struct GgmlClient {
    stream: TcpStream,
}

/// A buffer the server allocated: its handle and base address.
#[derive(Debug, Clone, Copy)]
pub struct Buffer {
    pub remote_ptr: u64,
    pub base: u64,
    pub size: u64,
}

impl GgmlClient {
    /// Connects without saying anything.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        GgmlClient { stream }
    }

    /// Connects and says HELLO.
    pub fn hello(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr);
        let reply = client.request(&Request::Hello { conn_caps: [0; 24] });
        assert_eq!(reply, Some(Reply::hello_tcp()), "HELLO answered 7.0.0");
        client
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        // A server that already closed may reset the connection; reading tells the test.
        let _ = self.stream.write_all(bytes);
    }

    pub fn send(&mut self, request: &Request) {
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        self.send_bytes(&bytes);
    }

    /// Sends `request` and reads its reply (`None` for a command without one); `None` too
    /// if the connection closed instead.
    pub fn request(&mut self, request: &Request) -> Option<Reply> {
        self.send(request);
        if !request.command().has_reply() {
            return None;
        }
        self.reply(request.command(), reply_len(request))
    }

    /// Reads the reply to `command` (of `len` bytes when known), `None` if the connection
    /// closed.
    pub fn reply(&mut self, command: Command, len: Option<u64>) -> Option<Reply> {
        let mut size = [0u8; 8];
        self.read_exact(&mut size)?;
        let size = u64::from_le_bytes(size);
        if let Some(len) = len {
            assert_eq!(size, len, "reply size of {command}");
        }
        let mut payload = vec![0; usize::try_from(size).unwrap()];
        self.read_exact(&mut payload)?;
        Some(Reply::decode(command, &payload).expect("a valid reply"))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Option<()> {
        match self.stream.read_exact(buf) {
            Ok(()) => Some(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("no reply within the read timeout")
            }
            Err(_) => None,
        }
    }

    /// Whether the server closes the connection (reads to its end; panics if it stays open
    /// and silent past the read timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return false;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    pub fn alloc(&mut self, size: u64) -> Buffer {
        let Some(Reply::AllocBuffer { remote_ptr, remote_size }) =
            self.request(&Request::AllocBuffer { device: 0, size })
        else {
            panic!("ALLOC_BUFFER was not answered")
        };
        assert_ne!(remote_ptr, 0, "the allocation of {size} bytes failed");
        let Some(Reply::BufferGetBase { base_ptr }) =
            self.request(&Request::BufferGetBase { remote_ptr })
        else {
            panic!("BUFFER_GET_BASE was not answered")
        };
        Buffer { remote_ptr, base: base_ptr, size: remote_size }
    }

    pub fn set_tensor(&mut self, tensor: &RpcTensor, offset: u64, data: &[u8]) {
        let header = SetTensorHeader { tensor: tensor.clone(), cache_flag: 0, offset };
        let mut bytes = Vec::new();
        header.encode_request(data, &mut bytes);
        self.send_bytes(&bytes);
    }

    pub fn get_tensor(&mut self, tensor: &RpcTensor, offset: u64, size: u64) -> Option<Vec<u8>> {
        match self.request(&Request::GetTensor { tensor: tensor.clone(), offset, size })? {
            Reply::GetTensor { data } => Some(data),
            other => panic!("GET_TENSOR answered {other:?}"),
        }
    }

    pub fn compute(&mut self, graph: GraphPayload) {
        self.send(&Request::GraphCompute(graph));
    }
}

/// The reply size a command's reply must have, if fixed.
fn reply_len(request: &Request) -> Option<u64> {
    match request {
        Request::GetTensor { size, .. } => Some(*size),
        other => match other.command().reply_rule() {
            tensor_rpc::endpoint::ggml::codec::ReplyRule::Exact(n) => Some(n),
            _ => None,
        },
    }
}

/// A contiguous tensor of `type_id` and shape `ne` at `offset` of `buffer`.
pub fn tensor(id: u64, type_id: u32, ne: [u32; 4], buffer: &Buffer, offset: u64) -> RpcTensor {
    let size = match type_id {
        F16 => 2,
        I64 => 8,
        _ => 4,
    };
    let nb = [size, size * ne[0], size * ne[0] * ne[1], size * ne[0] * ne[1] * ne[2]];
    let mut t = RpcTensor {
        id,
        ggml_type: type_id,
        buffer: buffer.remote_ptr,
        shape: ne,
        byte_strides: nb,
        data: buffer.base + offset,
        ..RpcTensor::ABSENT
    };
    t.set_name(&format!("t{id}"));
    t
}

/// `tensor` as a node computed by `op` from `sources`.
pub fn node(mut tensor: RpcTensor, op: u32, sources: &[&RpcTensor]) -> RpcTensor {
    tensor.op = op;
    tensor.flags = FLAG_COMPUTE;
    for (slot, source) in sources.iter().enumerate() {
        tensor.sources[slot] = source.id;
    }
    tensor
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}
