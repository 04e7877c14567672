//! A blocking request/reply channel over TCP: a [`ClientEndpoint`] driven by a small
//! mio loop of its own (TVM's `HandleUntilReturnEvent`). Writes and reads interleave, so a
//! large request going out never stops replies from coming in.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::ClientError;
use crate::endpoint::tvm::codec::{PROTOCOL_VERSION, Packet, TensorRecord, Value};
use crate::endpoint::tvm::{ClientEndpoint, ClientEvent, EndpointConfig};
use crate::readiness::{ReadReadiness, WriteReadiness};

const STREAM: Token = Token(0);

/// Copies at least this large skip the endpoint's buffers: their payload moves between the
/// socket and the caller's memory directly.
const DIRECT_COPY_THRESHOLD: usize = 256 << 10;

/// The waiting state of one exchange: its deadline, and how long to spin before blocking.
struct Waiter {
    spin: Duration,
    spin_until: Instant,
    deadline: Option<Instant>,
}

impl Waiter {
    fn new(spin: Duration, deadline: Option<Instant>) -> Self {
        Waiter { spin, spin_until: Instant::now() + spin, deadline }
    }
}

/// How a channel connects and waits.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// The key presented to the server (`client:<key>` is sent); TVM options such as
    /// `-timeout=10` may follow the key after a space.
    pub key: String,
    /// The session constructor sent in InitServer (empty: the server's local session).
    pub constructor: Vec<Value>,
    pub connect_timeout: Option<Duration>,
    /// Longest wait for any one reply; `None` waits forever.
    pub call_timeout: Option<Duration>,
    /// After each exchange, poll without sleeping for this long before blocking: trades a
    /// little CPU for not paying a thread wake-up per reply.
    pub busy_poll: Duration,
    pub endpoint: EndpointConfig,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            key: String::new(),
            constructor: Vec::new(),
            connect_timeout: Some(Duration::from_secs(10)),
            call_timeout: Some(Duration::from_secs(300)),
            busy_poll: Duration::ZERO,
            endpoint: EndpointConfig::default(),
        }
    }
}

/// What answered a request.
#[derive(Debug)]
pub enum Reply {
    Return(Vec<Value>),
    Exception(String),
}

/// One connection to an RPC server, after handshake and InitServer.
pub struct Channel {
    poll: Poll,
    events: Events,
    stream: TcpStream,
    endpoint: ClientEndpoint,
    peer: SocketAddr,
    server_key: String,
    options: ChannelOptions,
    /// Whether a read may find data. A blocking call costs one write, one wait and one read,
    /// without the reads that would only say WouldBlock.
    reading: ReadReadiness,
    writing: WriteReadiness,
}

impl Channel {
    /// Connects, presents the key and initializes the session.
    pub fn connect(addr: impl ToSocketAddrs, options: ChannelOptions) -> Result<Self, ClientError> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| ClientError::Connect { addr: "?".into(), source: e })?
            .collect();
        let mut last = None;
        for peer in addrs {
            match connect_stream(peer, options.connect_timeout) {
                Ok(stream) => return Self::start(stream, peer, options),
                Err(e) => last = Some((peer, e)),
            }
        }
        let (peer, e) = last.unwrap_or_else(|| {
            ("0.0.0.0:0".parse().expect("valid"), io::Error::other("no address to connect to"))
        });
        Err(ClientError::Connect { addr: peer.to_string(), source: e })
    }

    fn start(
        mut stream: TcpStream,
        peer: SocketAddr,
        options: ChannelOptions,
    ) -> Result<Self, ClientError> {
        stream.set_nodelay(true).map_err(|e| ClientError::io(peer, e))?;
        let poll = Poll::new().map_err(|e| ClientError::io(peer, e))?;
        poll.registry()
            .register(&mut stream, STREAM, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| ClientError::io(peer, e))?;
        let endpoint =
            ClientEndpoint::client(&format!("client:{}", options.key), options.endpoint.clone());
        let mut channel = Channel {
            poll,
            events: Events::with_capacity(8),
            stream,
            endpoint,
            peer,
            server_key: String::new(),
            options,
            reading: ReadReadiness::new(),
            writing: WriteReadiness::new(),
        };
        let deadline = channel.options.connect_timeout.map(|t| Instant::now() + t);
        channel.server_key = channel.wait(deadline, |event| match event {
            ClientEvent::Connected { server_key } => Some(Ok(server_key)),
            _ => None,
        })??;
        let init = Packet::InitServer {
            version: PROTOCOL_VERSION.into(),
            args: channel.options.constructor.clone(),
        };
        match channel.request(&init)? {
            Reply::Return(_) => Ok(channel),
            Reply::Exception(message) => Err(ClientError::Remote(message)),
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The key the server answered the handshake with (`server:<key>`).
    pub fn server_key(&self) -> &str {
        &self.server_key
    }

    pub fn options(&self) -> &ChannelOptions {
        &self.options
    }

    /// Sends a request and waits for its Return or Exception.
    pub fn request(&mut self, packet: &Packet<'_>) -> Result<Reply, ClientError> {
        self.endpoint.send(packet);
        self.wait_reply()
    }

    /// Sends all `packets` back to back, then collects their replies in order: many requests
    /// in flight on one connection, one network round trip for the lot.
    pub fn pipeline(&mut self, packets: &[Packet<'_>]) -> Result<Vec<Reply>, ClientError> {
        for packet in packets {
            self.endpoint.send(packet);
        }
        let mut replies = Vec::with_capacity(packets.len());
        for _ in packets {
            replies.push(self.wait_reply()?);
        }
        Ok(replies)
    }

    /// Sends a CopyToRemote of `data` and waits for its Return.
    pub fn copy_to_remote(
        &mut self,
        target: &TensorRecord,
        data: &[u8],
    ) -> Result<Reply, ClientError> {
        self.send_copy_to_remote(target, data)?;
        self.wait_reply()
    }

    /// Sends a CopyToRemote of `data` without waiting for its reply (collect it with
    /// [`Channel::reply`]). A large payload goes to the socket straight from `data`, not
    /// through the output buffer.
    pub fn send_copy_to_remote(
        &mut self,
        target: &TensorRecord,
        data: &[u8],
    ) -> Result<(), ClientError> {
        if data.len() < DIRECT_COPY_THRESHOLD {
            self.endpoint.send_copy_to_remote(target, data);
            return Ok(());
        }
        self.endpoint.send_copy_to_remote_prefix(target, data.len() as u64);
        let deadline = self.call_deadline();
        let mut sent = 0;
        let mut waiter = Waiter::new(self.options.busy_poll, deadline);
        while sent < data.len() {
            let mut progressed = self.flush()?;
            if !self.endpoint.core().wants_write() {
                loop {
                    match self.stream.write(&data[sent..]) {
                        Ok(0) => return Err(ClientError::Closed),
                        Ok(n) => {
                            sent += n;
                            self.endpoint.core_mut().count_direct_output(n);
                            progressed = true;
                            if sent == data.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(ClientError::io(self.peer, e)),
                    }
                }
            }
            if sent < data.len() {
                self.idle(&mut waiter, progressed)?;
            }
        }
        Ok(())
    }

    /// Waits for the reply (Return or Exception) to the oldest request in flight.
    pub fn reply(&mut self) -> Result<Reply, ClientError> {
        self.wait_reply()
    }

    /// Sends a CopyFromRemote and fills `out` from its CopyAck.
    pub fn copy_from_remote(
        &mut self,
        source: &TensorRecord,
        out: &mut [u8],
    ) -> Result<(), ClientError> {
        self.send_copy_from_remote(source, out.len() as u64);
        self.receive_copy_ack(out)
    }

    /// Queues a CopyFromRemote of `nbytes`; its CopyAck is taken by
    /// [`Channel::receive_copy_ack`], in the order the requests went out.
    pub fn send_copy_from_remote(&mut self, source: &TensorRecord, nbytes: u64) {
        self.endpoint.send(&Packet::CopyFromRemote { source: source.clone(), nbytes });
    }

    /// Fills `out` from the CopyAck answering the oldest request in flight. A large payload
    /// is read from the socket straight into `out`, not through the input buffer.
    pub fn receive_copy_ack(&mut self, out: &mut [u8]) -> Result<(), ClientError> {
        let deadline = self.call_deadline();
        let mut waiter = Waiter::new(self.options.busy_poll, deadline);
        let mut filled = None;
        loop {
            let mut progressed = self.flush()?;
            if filled.is_none() {
                filled = self.take_copy_ack(out)?;
                if filled.is_none() {
                    progressed |= self.fill_once()?;
                    filled = self.take_copy_ack(out)?;
                }
            }
            if let Some(at) = filled.as_mut() {
                if self.reading.at_end() {
                    return Err(ClientError::Closed);
                }
                while *at < out.len() && self.reading.may_read() {
                    let rest = &mut out[*at..];
                    match self.reading.read(&mut self.stream, |socket| socket.read(rest)) {
                        Ok(0) => return Err(ClientError::Closed),
                        Ok(n) => {
                            *at += n;
                            self.endpoint.core_mut().count_direct_input(n);
                            progressed = true;
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock | ErrorKind::Interrupted
                            ) => {}
                        Err(e) => return Err(ClientError::io(self.peer, e)),
                    }
                }
                if *at == out.len() {
                    return Ok(());
                }
            }
            self.idle(&mut waiter, progressed)?;
        }
    }

    /// Takes the CopyAck answering a read of `out.len()` bytes, if its start has arrived:
    /// returns how much of `out` it filled from the input buffer (the rest is still in the
    /// socket). Fails if another complete reply came instead.
    fn take_copy_ack(&mut self, out: &mut [u8]) -> Result<Option<usize>, ClientError> {
        if let Some(filled) = self.endpoint.take_copy_ack(out) {
            return Ok(Some(filled));
        }
        // The endpoint takes over a frame once its length prefix is in; such a CopyAck
        // arrives whole through the input buffer.
        match self.endpoint.poll_event().map_err(ClientError::Framing)? {
            None => Ok(None),
            Some(ClientEvent::CopyAck(data)) if data.len() == out.len() => {
                out.copy_from_slice(&data);
                Ok(Some(out.len()))
            }
            Some(ClientEvent::Exception(message)) => Err(ClientError::Remote(message)),
            Some(ClientEvent::CopyAck(data)) => Err(ClientError::Protocol(format!(
                "CopyAck carries {} bytes, {} were asked for",
                data.len(),
                out.len()
            ))),
            Some(ClientEvent::Shutdown) => Err(ClientError::Closed),
            Some(other) => Err(ClientError::Protocol(format!("{other:?} answered CopyFromRemote"))),
        }
    }

    fn call_deadline(&self) -> Option<Instant> {
        self.options.call_timeout.map(|t| Instant::now() + t)
    }

    fn wait_reply(&mut self) -> Result<Reply, ClientError> {
        let deadline = self.call_deadline();
        self.wait(deadline, |event| match event {
            ClientEvent::Return(values) => Some(Ok(Reply::Return(values))),
            ClientEvent::Exception(message) => Some(Ok(Reply::Exception(message))),
            ClientEvent::CopyAck(_) => Some(Err(ClientError::Protocol(
                "a CopyAck answered a request that is not a copy".into(),
            ))),
            _ => None,
        })?
    }

    /// Moves bytes until `take` accepts an event, the deadline passes or the connection
    /// fails.
    fn wait<T>(
        &mut self,
        deadline: Option<Instant>,
        mut take: impl FnMut(ClientEvent<'_>) -> Option<T>,
    ) -> Result<T, ClientError> {
        let mut waiter = Waiter::new(self.options.busy_poll, deadline);
        loop {
            let mut progressed = self.flush()?;
            progressed |= self.fill()?;
            while let Some(event) = self.endpoint.poll_event().map_err(ClientError::Framing)? {
                match event {
                    ClientEvent::Rejected(error) => {
                        return Err(ClientError::Protocol(format!("undecodable reply: {error}")));
                    }
                    ClientEvent::Shutdown => return Err(ClientError::Closed),
                    other => {
                        if let Some(value) = take(other) {
                            return Ok(value);
                        }
                    }
                }
            }
            self.idle(&mut waiter, progressed)?;
        }
    }

    /// Between two attempts to move bytes: spin for a while after progress, then block in
    /// the poller until the socket is ready or the deadline passes.
    fn idle(&mut self, waiter: &mut Waiter, progressed: bool) -> Result<(), ClientError> {
        let now = Instant::now();
        if progressed {
            waiter.spin_until = now + waiter.spin;
            return Ok(());
        }
        if let Some(deadline) = waiter.deadline
            && now >= deadline
        {
            return Err(ClientError::Timeout { peer: self.peer.to_string() });
        }
        if now < waiter.spin_until {
            // Spinning asks the socket itself, not the poller.
            self.reading.assume_readable();
            self.writing.assume_writable();
            std::hint::spin_loop();
            return Ok(());
        }
        let timeout = waiter.deadline.map(|d| d.saturating_duration_since(now));
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {
                for event in self.events.iter() {
                    self.reading.on_event(event);
                    self.writing.on_event(event);
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(ClientError::io(self.peer, e)),
        }
    }

    /// Writes pending output until the socket would block. Returns whether any went out.
    fn flush(&mut self) -> Result<bool, ClientError> {
        match self.writing.flush(&mut self.stream, self.endpoint.core_mut()) {
            Ok(wrote) => Ok(wrote),
            Err(e) if e.kind() == ErrorKind::WriteZero => Err(ClientError::Closed),
            Err(e) => Err(ClientError::io(self.peer, e)),
        }
    }

    /// One read into the input buffer, if the socket may have data. Returns whether anything
    /// arrived.
    fn fill_once(&mut self) -> Result<bool, ClientError> {
        if self.reading.at_end() {
            return Err(ClientError::Closed);
        }
        if !self.reading.may_read() {
            return Ok(false);
        }
        let endpoint = &mut self.endpoint;
        match self.reading.read(&mut self.stream, |socket| endpoint.core_mut().receive_from(socket))
        {
            Ok(0) => Err(ClientError::Closed),
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                Ok(false)
            }
            Err(e) => Err(ClientError::io(self.peer, e)),
        }
    }

    /// Reads what the socket has. Returns whether anything arrived.
    fn fill(&mut self) -> Result<bool, ClientError> {
        if self.reading.at_end() {
            return Err(ClientError::Closed);
        }
        let mut read = false;
        while self.reading.may_read() {
            let endpoint = &mut self.endpoint;
            match self
                .reading
                .read(&mut self.stream, |socket| endpoint.core_mut().receive_from(socket))
            {
                Ok(0) => {
                    // Replies already buffered still count; the next wait reports the close.
                    return if read { Ok(true) } else { Err(ClientError::Closed) };
                }
                Ok(_) => read = true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Err(ClientError::io(self.peer, e)),
            }
        }
        Ok(read)
    }

    /// Ends the session politely: a Shutdown packet, flushed as far as the socket allows.
    pub fn shutdown(&mut self) {
        self.endpoint.send(&Packet::Shutdown);
        let deadline = Instant::now() + Duration::from_millis(200);
        while self.endpoint.core().wants_write() && Instant::now() < deadline {
            match self.flush() {
                Ok(true) => {}
                Ok(false) => {
                    let _ = self.poll.poll(&mut self.events, Some(Duration::from_millis(10)));
                    self.writing.assume_writable();
                }
                Err(_) => break,
            }
        }
    }
}

/// A non-blocking stream, connected within `timeout`.
fn connect_stream(peer: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let std_stream = match timeout {
        Some(t) => std::net::TcpStream::connect_timeout(&peer, t)?,
        None => std::net::TcpStream::connect(peer)?,
    };
    std_stream.set_nonblocking(true)?;
    Ok(TcpStream::from_std(std_stream))
}
