//! The server's connection to TVM's tracker: a non-blocking socket in the server's `Poll`
//! driving a [`Registration`], reconnecting with backoff whenever the tracker goes away.
//! Sessions are served all along; only new clients sent by the tracker wait for it.
//!
//! The tracker's name is resolved once, when the server starts: a lookup blocks, and the
//! event loop must not.

use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::TrackerLinkError;
use crate::readiness::{PendingOutput, WriteReadiness};
use crate::tracker::{Registration, RegistrationConfig, TrackerSessions};

/// First wait before reconnecting to a lost tracker; doubled per failure up to the maximum.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(2);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how a server registers with a tracker.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// `host:port` of TVM's tracker (`python -m tvm.exec.rpc_tracker`).
    pub addr: String,
    /// The device key clients ask the tracker for.
    pub key: String,
    /// The address the tracker gives clients (`None`: the one it sees us connect from).
    pub custom_addr: Option<String>,
    /// Most sessions served through the tracker at once. TVM's server serves one: while it
    /// is open the tracker lists the server as busy and hands it to no one else.
    pub sessions: usize,
}

enum LinkState {
    Waiting { retry_at: Instant },
    Active { socket: TcpStream, registration: Box<Registration>, connected: bool, since: Instant },
}

pub(super) struct TrackerLink {
    config: TrackerConfig,
    /// The tracker's address, resolved at start-up.
    tracker: SocketAddr,
    port: u16,
    token: Token,
    state: LinkState,
    backoff: Duration,
    writing: WriteReadiness,
    /// The key last offered, still accepted while the tracker is away.
    last_offered: Option<String>,
    /// Whether the loss of the tracker has been reported since it was last registered.
    loss_reported: bool,
    /// Sessions open that the tracker sent, against the configured limit.
    sessions: TrackerSessions,
}

impl TrackerLink {
    /// A link to the tracker of `config`, whose address is resolved here (at start-up, before
    /// the loop runs).
    pub(super) fn new(
        config: TrackerConfig,
        port: u16,
        token: Token,
        now: Instant,
    ) -> io::Result<Self> {
        let tracker = config.addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                ErrorKind::NotFound,
                format!("tracker address {} resolves to nothing", config.addr),
            )
        })?;
        Ok(TrackerLink {
            sessions: TrackerSessions::new(config.sessions),
            config,
            tracker,
            port,
            token,
            state: LinkState::Waiting { retry_at: now },
            backoff: FIRST_RETRY,
            writing: WriteReadiness::new(),
            last_offered: None,
            loss_reported: false,
        })
    }

    /// The match key a client sent by the tracker presents now.
    pub(super) fn match_key(&self) -> Option<&str> {
        match &self.state {
            LinkState::Active { registration, .. } if registration.offered_key().is_some() => {
                registration.offered_key()
            }
            _ => self.last_offered.as_deref(),
        }
    }

    pub(super) fn next_deadline(&self) -> Instant {
        match &self.state {
            LinkState::Waiting { retry_at } => *retry_at,
            LinkState::Active { connected: false, since, .. } => *since + CONNECT_TIMEOUT,
            LinkState::Active { registration, .. } => registration.next_deadline(),
        }
    }

    /// Reconnects when due, polls the tracker when due, gives it up when it stops answering.
    pub(super) fn on_timer(&mut self, registry: &Registry, room: bool, now: Instant) {
        let room = self.sessions.room(room);
        match &mut self.state {
            LinkState::Waiting { retry_at } if now >= *retry_at => {
                if let Err(e) = self.connect(registry, room, now) {
                    self.fail(registry, TrackerLinkError::Connect(e), now);
                }
            }
            LinkState::Waiting { .. } => {}
            LinkState::Active { connected: false, since, .. } => {
                if now >= *since + CONNECT_TIMEOUT {
                    self.fail(registry, TrackerLinkError::ConnectTimeout, now);
                }
            }
            LinkState::Active { registration, .. } => {
                if let Err(e) = registration.on_timer(now) {
                    self.fail(registry, e.into(), now);
                } else {
                    self.flush(registry, now);
                }
            }
        }
    }

    /// Handles readiness of the tracker socket.
    pub(super) fn on_event(&mut self, registry: &Registry, writable: bool, now: Instant) {
        if writable {
            self.writing.assume_writable();
        }
        let LinkState::Active { socket, connected, .. } = &mut self.state else { return };
        if !*connected {
            match socket.take_error() {
                Ok(Some(e)) | Err(e) => {
                    return self.fail(registry, TrackerLinkError::Connect(e), now);
                }
                Ok(None) => {}
            }
            match socket.peer_addr() {
                Ok(_) => *connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => return self.fail(registry, TrackerLinkError::Connect(e), now),
            }
        }
        if let Err(error) = self.read(now) {
            return self.fail(registry, error, now);
        }
        self.flush(registry, now);
    }

    /// A client used the offered key: its session is one of the tracker's. A fresh key is
    /// offered if the server has `room` and is below its limit of tracker sessions.
    pub(super) fn key_used(&mut self, registry: &Registry, room: bool, now: Instant) {
        self.last_offered = None;
        self.sessions.opened();
        let room = self.sessions.room(room);
        if let LinkState::Active { registration, .. } = &mut self.state {
            registration.key_used(room, now);
        }
        self.flush(registry, now);
    }

    /// A session the tracker sent has ended; `room` tells whether the server has room.
    pub(super) fn session_ended(&mut self, registry: &Registry, room: bool, now: Instant) {
        self.sessions.ended();
        self.set_room(registry, room, now);
    }

    /// Whether the server has room for another session (after one ended, or filled up).
    pub(super) fn set_room(&mut self, registry: &Registry, room: bool, now: Instant) {
        let room = self.sessions.room(room);
        if let LinkState::Active { registration, .. } = &mut self.state {
            registration.set_room(room, now);
        }
        self.flush(registry, now);
    }

    /// Leaves the tracker: closing the connection makes it drop everything we offered.
    pub(super) fn shutdown(&mut self, registry: &Registry) {
        if let LinkState::Active { socket, .. } = &mut self.state {
            let _ = registry.deregister(socket);
            log::info!("tracker: unregistered from {}", self.config.addr);
        }
        self.state = LinkState::Waiting { retry_at: Instant::now() + Duration::from_secs(1 << 20) };
    }

    fn connect(&mut self, registry: &Registry, room: bool, now: Instant) -> io::Result<()> {
        let mut socket = TcpStream::connect(self.tracker)?;
        registry.register(&mut socket, self.token, Interest::READABLE | Interest::WRITABLE)?;
        let config =
            RegistrationConfig::new(&self.config.key, self.port, self.config.custom_addr.clone());
        let registration = Box::new(Registration::new(config, room, now));
        // Written to once connected (flush waits for that).
        self.writing = WriteReadiness::new();
        self.state = LinkState::Active { socket, registration, connected: false, since: now };
        Ok(())
    }

    fn read(&mut self, now: Instant) -> Result<(), TrackerLinkError> {
        let LinkState::Active { socket, registration, .. } = &mut self.state else { return Ok(()) };
        let was_registered = registration.is_registered();
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf) {
                Ok(0) => return Err(TrackerLinkError::Closed),
                Ok(n) => registration.receive(&buf[..n], now)?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(TrackerLinkError::Read(e)),
            }
        }
        if !was_registered && registration.is_registered() {
            log::info!(
                "tracker: registered with {} as key {:?} (port {})",
                self.config.addr,
                self.config.key,
                self.port
            );
            self.backoff = FIRST_RETRY;
            self.loss_reported = false;
        }
        if let Some(key) = registration.offered_key() {
            self.last_offered = Some(key.to_owned());
        }
        Ok(())
    }

    fn flush(&mut self, registry: &Registry, now: Instant) {
        let LinkState::Active { socket, registration, connected: true, .. } = &mut self.state
        else {
            return;
        };
        if let Some(key) = registration.offered_key() {
            self.last_offered = Some(key.to_owned());
        }
        match self.writing.flush(socket, registration.as_mut()) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WriteZero => {
                self.fail(registry, TrackerLinkError::StoppedReading, now)
            }
            Err(e) => self.fail(registry, TrackerLinkError::Write(e), now),
        }
    }

    fn fail(&mut self, registry: &Registry, reason: TrackerLinkError, now: Instant) {
        if let LinkState::Active { socket, .. } = &mut self.state {
            let _ = registry.deregister(socket);
        }
        if self.loss_reported {
            log::debug!("tracker {}: {reason}; retrying in {:?}", self.config.addr, self.backoff);
        } else {
            log::warn!(
                "tracker {}: {reason}; still serving, retrying in {:?} and then with backoff",
                self.config.addr,
                self.backoff
            );
            self.loss_reported = true;
        }
        self.state = LinkState::Waiting { retry_at: now + self.backoff };
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }
}

impl PendingOutput for Registration {
    fn pending(&self) -> &[u8] {
        self.output()
    }

    fn sent(&mut self, n: usize) {
        self.consume_output(n);
    }
}
