//! ClientSession: the [`Session`] of a remote server, reached through a [`Channel`].
//!
//! Every method becomes one request (copies become several: they are split so no packet
//! exceeds the peer's `tvm.rpc.server.GetCRTMaxPacketSize`, asked once and cached). Handles
//! pass through untouched: they are the remote's, opaque to us.

use super::ClientError;
use super::channel::{Channel, Reply};
use crate::endpoint::tvm::codec::packet::copy_packet_overhead;
use crate::endpoint::tvm::codec::{Packet, Syscall, TensorRecord, Value};
use crate::session::{Placement, Prepared, Session, SessionError, Work};

/// Name of the global function that reports a server's largest packet.
pub const MAX_PACKET_FUNCTION: &str = "tvm.rpc.server.GetCRTMaxPacketSize";

/// The handle a relay answers `GetCRTMaxPacketSize` lookups with: never one a server issues
/// (TVM's are pointers, ours carry a small slab key in the low word).
const RELAY_MAX_PACKET_HANDLE: u64 = u64::MAX - 1;

/// Largest payload of one copy packet we send or ask for, whatever the peer allows. Small
/// packets keep the peer's buffers in cache: on loopback (256 MiB copies, 2 cores) 1 MiB
/// packets moved ~2.5-2.8 GiB/s each way where 16 MiB ones moved ~1.1-1.8.
const COPY_CHUNK: u64 = 1 << 20;

/// Copy packets in flight at once on one connection (16 MiB of 1 MiB packets).
const COPY_WINDOW: usize = 16;

pub struct ClientSession {
    channel: Channel,
    /// The peer's largest packet body, once asked (`u64::MAX`: no limit).
    max_packet: Option<u64>,
    /// As a relay: our own server's largest packet. The client in front of us must learn
    /// the smaller of ours and the next hop's, or its copies would not fit through us.
    relay_max_packet: Option<u64>,
}

impl ClientSession {
    pub fn new(channel: Channel) -> Self {
        ClientSession { channel, max_packet: None, relay_max_packet: None }
    }

    /// A session that relays for a server whose own packets are at most `max_packet`.
    pub fn relay(channel: Channel, max_packet: u64) -> Self {
        ClientSession { channel, max_packet: None, relay_max_packet: Some(max_packet) }
    }

    pub fn channel(&mut self) -> &mut Channel {
        &mut self.channel
    }

    /// Runs a syscall and returns its one value.
    pub fn syscall(&mut self, call: Syscall) -> Result<Value, ClientError> {
        match self.channel.request(&Packet::Syscall(call))? {
            Reply::Return(values) => {
                let mut values = values.into_iter();
                match (values.next(), values.next()) {
                    (Some(v), None) => Ok(v),
                    _ => {
                        Err(ClientError::Protocol("a syscall returned other than one value".into()))
                    }
                }
            }
            Reply::Exception(message) => Err(ClientError::Remote(message)),
        }
    }

    fn syscall_handle(&mut self, call: Syscall) -> Result<u64, ClientError> {
        match self.syscall(call)? {
            Value::Handle(h) => Ok(h),
            Value::None => Ok(0),
            other => {
                Err(ClientError::Protocol(format!("expected a handle, got {}", other.describe())))
            }
        }
    }

    fn syscall_void(&mut self, call: Syscall) -> Result<(), ClientError> {
        self.syscall(call).map(drop)
    }

    /// The handle of a global function, `None` if the server has none of that name.
    pub fn lookup(&mut self, name: &str) -> Result<Option<u64>, ClientError> {
        let h = self.syscall_handle(Syscall::GetGlobalFunc { name: name.into() })?;
        Ok((h != 0).then_some(h))
    }

    pub fn call(&mut self, function: u64, args: Vec<Value>) -> Result<Value, ClientError> {
        match self.channel.request(&Packet::CallFunc { function, args })? {
            Reply::Return(values) => {
                Packet::call_result(values).map_err(|e| ClientError::Protocol(e.to_string()))
            }
            Reply::Exception(message) => Err(ClientError::Remote(message)),
        }
    }

    /// Calls `function` once per argument list, all calls in flight at once.
    pub fn call_pipelined(
        &mut self,
        function: u64,
        arg_lists: Vec<Vec<Value>>,
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let packets: Vec<Packet<'_>> =
            arg_lists.into_iter().map(|args| Packet::CallFunc { function, args }).collect();
        let replies = self.channel.pipeline(&packets)?;
        Ok(replies
            .into_iter()
            .map(|reply| match reply {
                Reply::Return(values) => {
                    Packet::call_result(values).map_err(|e| ClientError::Protocol(e.to_string()))
                }
                Reply::Exception(message) => Err(ClientError::Remote(message)),
            })
            .collect())
    }

    pub fn free(&mut self, handle: u64) -> Result<(), ClientError> {
        self.syscall_void(Syscall::FreeHandle { handle })
    }

    /// The peer's largest packet body, asked once per session.
    pub fn max_packet(&mut self) -> Result<u64, ClientError> {
        if let Some(max) = self.max_packet {
            return Ok(max);
        }
        let max = match self.lookup(MAX_PACKET_FUNCTION)? {
            None => u64::MAX,
            Some(f) => {
                let value = self.call(f, Vec::new());
                self.free(f)?;
                match value? {
                    Value::Int(n) if n > 0 => n as u64,
                    other => {
                        return Err(ClientError::Protocol(format!(
                            "{MAX_PACKET_FUNCTION} returned {}",
                            other.describe()
                        )));
                    }
                }
            }
        };
        self.max_packet = Some(max);
        Ok(max)
    }

    /// Bytes of payload that fit in one copy packet for `record` (TVM's
    /// `RemoteCopyCalculatePacketOverheadSize`: everything but the payload and the u64
    /// length prefix).
    fn block_size(&mut self, record: &TensorRecord) -> Result<u64, ClientError> {
        let overhead = copy_packet_overhead(record);
        let max = self.max_packet()?;
        if max <= overhead {
            return Err(ClientError::Protocol(format!(
                "the server's maximum packet of {max} bytes cannot hold a copy's header"
            )));
        }
        Ok(max - overhead)
    }

    /// Payload bytes of one copy packet: the peer's maximum allows more, but smaller
    /// packets let the peer copy one into place while the next is on the wire, and keep
    /// its buffers in cache.
    fn chunk_size(&mut self, record: &TensorRecord) -> Result<usize, ClientError> {
        let block = self.block_size(record)?.min(COPY_CHUNK);
        Ok(usize::try_from(block).unwrap_or(usize::MAX).max(1))
    }

    /// Writes `data` into the remote tensor at `target.byte_offset`, in packets that fit,
    /// with up to [`COPY_WINDOW`] of them in flight.
    pub fn write(&mut self, target: &TensorRecord, data: &[u8]) -> Result<(), ClientError> {
        let chunk = self.chunk_size(target)?;
        let mut chunk_target = target.clone();
        let mut in_flight = 0;
        let mut first_error = None;
        for (i, bytes) in data.chunks(chunk).enumerate() {
            if in_flight == COPY_WINDOW {
                self.collect_write_reply(&mut first_error)?;
                in_flight -= 1;
            }
            if first_error.is_some() {
                break;
            }
            chunk_target.byte_offset = target.byte_offset + (i * chunk) as u64;
            self.channel.send_copy_to_remote(&chunk_target, bytes)?;
            in_flight += 1;
        }
        for _ in 0..in_flight {
            self.collect_write_reply(&mut first_error)?;
        }
        first_error.map_or(Ok(()), |message| Err(ClientError::Remote(message)))
    }

    fn collect_write_reply(&mut self, first_error: &mut Option<String>) -> Result<(), ClientError> {
        if let Reply::Exception(message) = self.channel.reply()? {
            first_error.get_or_insert(message);
        }
        Ok(())
    }

    /// Reads the remote tensor from `source.byte_offset` into `out`, in packets that fit,
    /// with up to [`COPY_WINDOW`] requests in flight.
    pub fn read(&mut self, source: &TensorRecord, out: &mut [u8]) -> Result<(), ClientError> {
        let chunk = self.chunk_size(source)?;
        let total = out.len();
        let chunks = total.div_ceil(chunk);
        let request_len = |r: usize| chunk.min(total - r * chunk);
        let mut chunk_source = source.clone();
        let mut requested = 0;
        for (i, piece) in out.chunks_mut(chunk).enumerate() {
            while requested < chunks.min(i + COPY_WINDOW) {
                chunk_source.byte_offset = source.byte_offset + (requested * chunk) as u64;
                self.channel.send_copy_from_remote(&chunk_source, request_len(requested) as u64);
                requested += 1;
            }
            if let Err(e) = self.channel.receive_copy_ack(piece) {
                if matches!(e, ClientError::Remote(_)) {
                    // Take the replies still in flight, so the connection stays usable.
                    let mut scratch = vec![0; chunk];
                    for r in i + 1..requested {
                        let _ = self.channel.receive_copy_ack(&mut scratch[..request_len(r)]);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Ends the session politely.
    pub fn shutdown(&mut self) {
        self.channel.shutdown();
    }
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Session for ClientSession {
    fn call_func(&mut self, function: u64, args: &[Value]) -> Result<Value, SessionError> {
        if let Some(ours) = self.relay_max_packet
            && function == RELAY_MAX_PACKET_HANDLE
        {
            let max = ours.min(self.max_packet()?);
            return Ok(Value::Int(i64::try_from(max).unwrap_or(i64::MAX)));
        }
        Ok(self.call(function, args.to_vec())?)
    }

    /// Forwards the decoded syscall, but for the lookup and free of the packet-size function
    /// a relay answers itself.
    fn syscall(&mut self, call: &Syscall) -> Result<Value, SessionError> {
        if self.relay_max_packet.is_some() {
            match call {
                Syscall::GetGlobalFunc { name } if name == MAX_PACKET_FUNCTION => {
                    return Ok(Value::Handle(RELAY_MAX_PACKET_HANDLE));
                }
                Syscall::FreeHandle { handle: RELAY_MAX_PACKET_HANDLE } => return Ok(Value::None),
                _ => {}
            }
        }
        Ok(self.syscall(call.clone())?)
    }

    fn copy_to_remote(&mut self, target: &TensorRecord, data: &[u8]) -> Result<(), SessionError> {
        Ok(self.write(target, data)?)
    }

    fn copy_from_remote(
        &mut self,
        source: &TensorRecord,
        out: &mut [u8],
    ) -> Result<(), SessionError> {
        Ok(self.read(source, out)?)
    }

    /// Every request waits on the network: a server runs them off its event loop.
    fn prepare<'a>(&mut self, request: Packet<'a>) -> Prepared<'a> {
        Prepared { placement: Placement::Network, work: Work::Request(request) }
    }
}
