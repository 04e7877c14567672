//! Asking TVM's tracker for a server (`rpc.connect_tracker(..).request(key)`) and for its
//! summary, over a blocking socket.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Client, ClientError};
use crate::tracker::message::{
    Incoming, MessageReader, Request, TRACKER_MAGIC, TrackerError, parse_assignment, parse_summary,
};
use crate::tracker::{Assignment, Summary};

/// A connection to a tracker.
pub struct TrackerClient {
    stream: TcpStream,
    reader: MessageReader,
    addr: SocketAddr,
}

impl TrackerClient {
    /// Connects and exchanges the tracker's magic.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Self, ClientError> {
        let addr = addr
            .to_socket_addrs()
            .map_err(|e| ClientError::Connect { addr: "?".into(), source: e })?
            .next()
            .ok_or_else(|| {
                ClientError::InvalidArgument("tracker address resolves to nothing".into())
            })?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| ClientError::Connect { addr: addr.to_string(), source: e })?;
        stream.set_nodelay(true).map_err(|e| ClientError::io(addr, e))?;
        let mut client = TrackerClient { stream, reader: MessageReader::new(), addr };
        client.write(&TRACKER_MAGIC.to_le_bytes())?;
        match client.next(Some(Duration::from_secs(10)))? {
            Incoming::Magic => Ok(client),
            Incoming::Message(_) => Err(ClientError::Protocol("tracker sent no magic".into())),
        }
    }

    /// Asks for a server of `key` and waits (up to `wait`, `None` forever) until the tracker
    /// has one free.
    pub fn request(
        &mut self,
        key: &str,
        priority: i64,
        wait: Option<Duration>,
    ) -> Result<Assignment, ClientError> {
        let request = Request::Request { key: key.into(), user: String::new(), priority };
        let reply = self.exchange(&request, wait)?;
        parse_assignment(&reply).map_err(tracker_error)
    }

    /// What the tracker knows: servers and per-key queues.
    pub fn summary(&mut self) -> Result<Summary, ClientError> {
        let reply = self.exchange(&Request::Summary, Some(Duration::from_secs(10)))?;
        parse_summary(&reply).map_err(tracker_error)
    }

    fn exchange(
        &mut self,
        request: &Request,
        wait: Option<Duration>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut out = Vec::new();
        request.encode(&mut out);
        self.write(&out)?;
        match self.next(wait)? {
            Incoming::Message(reply) => Ok(reply),
            Incoming::Magic => Err(ClientError::Protocol("tracker sent its magic twice".into())),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(|e| ClientError::io(self.addr, e))
    }

    fn next(&mut self, wait: Option<Duration>) -> Result<Incoming, ClientError> {
        self.stream.set_read_timeout(wait).map_err(|e| ClientError::io(self.addr, e))?;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(unit) = self.reader.next_unit().map_err(tracker_error)? {
                return Ok(unit);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.reader.push(&buf[..n]),
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Err(ClientError::Timeout { peer: self.addr.to_string() });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::io(self.addr, e)),
            }
        }
    }
}

fn tracker_error(e: TrackerError) -> ClientError {
    ClientError::Protocol(format!("tracker: {e}"))
}

impl Client {
    /// Asks TVM's tracker at `tracker_addr` for a server of `key` (waiting until one is free)
    /// and connects to it, as `rpc.connect_tracker(host, port).request(key, priority)`.
    /// Like TVM's client it tries up to five times: a server may have replaced the match
    /// key the tracker handed out, or gone away, in between.
    pub fn via_tracker(
        tracker_addr: impl ToSocketAddrs,
        key: &str,
        priority: i64,
    ) -> Result<Client, ClientError> {
        const ATTEMPTS: usize = 5;
        let mut tracker = TrackerClient::connect(&tracker_addr)?;
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let Assignment { host, port, match_key } = match tracker.request(key, priority, None) {
                Ok(assignment) => assignment,
                Err(e @ (ClientError::Io { .. } | ClientError::Closed)) => {
                    last_error = Some(e);
                    tracker = TrackerClient::connect(&tracker_addr)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match Client::connect((host.as_str(), port), &match_key) {
                Ok(client) => return Ok(client),
                Err(e) => {
                    log::debug!("server {host}:{port} from the tracker refused: {e}; retrying");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }
}
