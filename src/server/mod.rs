//! The standalone server: one mio `Poll` driving any number of connections.
//!
//! The loop only moves bytes: read until `WouldBlock` while the endpoint wants input, let the
//! [`ServerConnection`] handle what arrived, write until `WouldBlock`. Protocol decisions live
//! in the connection and the endpoint. The loop also keeps the server's limits (sessions,
//! connections still in their handshake, timeouts) and, with a tracker, its registration
//! there ([`TrackerConfig`]), whose socket is one more source in the same `Poll`.

mod connection;
mod constructor;
pub mod memory_tuning;
mod tracker_link;
mod workers;

pub use connection::{ConnectionConfig, Job, JobDone, Progress, ServerConnection};
pub use constructor::{
    DEFAULT_MAX_RELAYS, RPC_CONNECT, RelayLimits, RelayPermit, RelayTarget, SessionPlan,
};
pub use tracker_link::TrackerConfig;

use tracker_link::TrackerLink;

use workers::{Completion, JobOwner, WorkerPool};

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::readiness::ReadReadiness;

/// How long a connection stays quiet before buffers grown for large packets are released.
const BUFFER_RELEASE_AFTER: Duration = Duration::from_secs(1);

/// How long a server shutting down waits for running requests and unsent replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const TRACKER: Token = Token(usize::MAX - 3);

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub connection: ConnectionConfig,
    /// Threads that run long requests (large kernels, relayed calls) off the event loop.
    pub workers: usize,
    /// How long a network thread (one per relay request in flight) stays after its last job.
    pub network_thread_idle: Duration,
    /// Most sessions served at once; the next client is refused with a message saying so.
    pub max_sessions: usize,
    /// Most connections still in their handshake; further ones are closed on accept.
    pub max_handshaking: usize,
    /// A connection must complete its handshake within this time (slow or silent clients
    /// are dropped).
    pub handshake_timeout: Duration,
    /// A session in which no bytes move for this long is closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// After any event, keep polling without sleeping for this long before blocking again:
    /// waking a sleeping thread costs tens of microseconds, spinning a few. Zero disables.
    pub busy_poll: Duration,
    /// Register with TVM's tracker.
    pub tracker: Option<TrackerConfig>,
}

impl ServerConfig {
    /// Listens on `addr` with default connection settings and one worker per core.
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            connection: ConnectionConfig::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            network_thread_idle: workers::NETWORK_THREAD_IDLE,
            max_sessions: 64,
            max_handshaking: 128,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(900)),
            busy_poll: Duration::from_micros(50),
            tracker: None,
        }
    }
}

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the server loop: {e}");
        }
    }
}

struct Client {
    id: u64,
    socket: TcpStream,
    peer: SocketAddr,
    conn: ServerConnection,
    reading: ReadReadiness,
    writable: bool,
    /// When bytes last moved.
    last_active: Instant,
    /// Whether the server counts this connection as a session (its handshake was accepted).
    counted: bool,
    /// When the session must end (the client's `-timeout=N`).
    session_deadline: Option<Instant>,
}

/// Why a connection is closed by a timer.
fn expired(client: &Client, config: &ServerConfig, now: Instant) -> Option<&'static str> {
    let (due, reason) = deadline(client, config)?;
    (now >= due).then_some(reason)
}

/// The next time a timer closes `client`, and why.
fn deadline(client: &Client, config: &ServerConfig) -> Option<(Instant, &'static str)> {
    if !client.counted {
        return Some((client.conn.opened() + config.handshake_timeout, "handshake timeout"));
    }
    let idle = config
        .idle_timeout
        .filter(|_| !client.conn.job_running())
        .map(|t| (client.last_active + t, "idle timeout"));
    let session = client.session_deadline.map(|t| (t, "session timeout (the client's -timeout)"));
    match (idle, session) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A bound server; [`Server::run`] serves until shut down.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    clients: Slab<Client>,
    config: ServerConfig,
    shutdown: ShutdownHandle,
    workers: WorkerPool,
    next_client_id: u64,
    /// Connections counted as sessions.
    sessions: usize,
    tracker: Option<TrackerLink>,
    accepting: bool,
}

impl Server {
    /// Binds the listening socket (port 0 picks a free port; see [`Server::local_addr`]).
    pub fn bind(mut config: ServerConfig) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.addr)?;
        config.connection.relay.own_addr = Some(listener.local_addr()?);
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let workers =
            WorkerPool::new(config.workers, config.network_thread_idle, Arc::clone(&waker))?;
        let shutdown = ShutdownHandle { flag: Arc::new(AtomicBool::new(false)), waker };
        let port = listener.local_addr()?.port();
        let tracker =
            config.tracker.clone().map(|t| TrackerLink::new(t, port, TRACKER, Instant::now()));
        Ok(Server {
            poll,
            listener,
            clients: Slab::new(),
            config,
            shutdown,
            workers,
            next_client_id: 0,
            sessions: 0,
            tracker,
            accepting: true,
        })
    }

    /// Sessions being served (connections whose handshake was accepted).
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    fn has_room(&self) -> bool {
        self.sessions < self.config.max_sessions
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.clients.len()
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called; then stops accepting, leaves
    /// the tracker, lets running requests finish and replies go out (for a short grace
    /// period), and closes every connection.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut spin_until = Instant::now();
        let mut next_timer = Instant::now();
        while !self.shutdown.flag.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next_timer {
                self.run_timers(now);
                next_timer = self.next_deadline(now);
            }
            let timeout = if now < spin_until {
                Duration::ZERO
            } else {
                next_timer.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if events.is_empty() {
                continue;
            }
            self.handle(&events);
            // Spin for the next request only while no compute job runs: a job needs every
            // core (GEMM runs one thread per core), and its end wakes the loop anyway.
            spin_until = if self.workers.computing() {
                Instant::now()
            } else {
                Instant::now() + self.config.busy_poll
            };
            // Events can bring deadlines forward (a new connection's handshake timer).
            next_timer = next_timer.min(Instant::now() + Duration::from_millis(100));
        }
        self.stop(&mut events);
        Ok(())
    }

    fn handle(&mut self, events: &Events) {
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept_all(),
                WAKER => self.finish_jobs(),
                TRACKER => {
                    if let Some(link) = &mut self.tracker {
                        link.on_event(self.poll.registry(), event.is_writable(), Instant::now());
                    }
                }
                Token(key) => {
                    if let Some(client) = self.clients.get_mut(key) {
                        client.reading.on_event(event);
                        client.writable |= event.is_writable();
                    }
                    self.drive(key);
                }
            }
        }
    }

    /// Closes connections whose time is up, shrinks idle buffers, keeps the tracker going.
    fn run_timers(&mut self, now: Instant) {
        self.release_idle_buffers();
        let due: Vec<(usize, &'static str)> = self
            .clients
            .iter()
            .filter_map(|(key, c)| expired(c, &self.config, now).map(|r| (key, r)))
            .collect();
        for (key, reason) in due {
            self.close(key, reason);
        }
        let room = self.has_room();
        if let Some(link) = &mut self.tracker {
            link.on_timer(self.poll.registry(), room, now);
        }
    }

    /// When [`Server::run_timers`] next has work, at most a second away.
    fn next_deadline(&self, now: Instant) -> Instant {
        let mut next = now + Duration::from_secs(1);
        if self.holds_large_buffers() {
            next = next.min(now + BUFFER_RELEASE_AFTER);
        }
        for (_, client) in self.clients.iter() {
            if let Some((due, _)) = deadline(client, &self.config) {
                next = next.min(due);
            }
        }
        if let Some(link) = &self.tracker {
            next = next.min(link.next_deadline());
        }
        next
    }

    /// Stops accepting, leaves the tracker, and closes every connection once its running
    /// request and unsent replies are done (or the grace period is over).
    fn stop(&mut self, events: &mut Events) {
        log::info!("shutting down: {} sessions open", self.sessions);
        self.accepting = false;
        let _ = self.poll.registry().deregister(&mut self.listener);
        if let Some(link) = &mut self.tracker {
            link.shutdown(self.poll.registry());
        }
        let grace_end = Instant::now() + SHUTDOWN_GRACE;
        loop {
            let busy = |c: &Client| c.conn.job_running() || c.conn.endpoint_ref().wants_write();
            let idle: Vec<usize> =
                self.clients.iter().filter(|(_, c)| !busy(c)).map(|(k, _)| k).collect();
            for key in idle {
                self.close(key, "server shutting down");
            }
            let now = Instant::now();
            if self.clients.is_empty() || now >= grace_end {
                break;
            }
            let wait = grace_end - now;
            if self.poll.poll(events, Some(wait.min(Duration::from_millis(50)))).is_ok() {
                let handled: Vec<Token> = events.iter().map(|e| e.token()).collect();
                for token in handled {
                    match token {
                        WAKER => self.finish_jobs(),
                        Token(key) if key < TRACKER.0 => {
                            if let Some(client) = self.clients.get_mut(key) {
                                client.writable = true;
                                client.reading.assume_readable();
                            }
                            self.drive(key);
                        }
                        _ => {}
                    }
                }
            }
        }
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, "server shutting down");
        }
    }

    fn holds_large_buffers(&self) -> bool {
        self.clients.iter().any(|(_, c)| c.conn.endpoint_ref().buffer_capacity() > 1 << 20)
    }

    /// Shrinks the buffers of connections that have been quiet for a while.
    fn release_idle_buffers(&mut self) {
        let now = Instant::now();
        for (_, client) in self.clients.iter_mut() {
            if now.duration_since(client.last_active) >= BUFFER_RELEASE_AFTER {
                client.conn.endpoint().release_idle_buffers();
            }
        }
    }

    fn accept_all(&mut self) {
        while self.accepting {
            match self.listener.accept() {
                Ok((socket, peer)) => {
                    let handshaking = self.clients.len() - self.sessions;
                    if handshaking >= self.config.max_handshaking {
                        log::warn!(
                            "refused connection from {peer}: {handshaking} connections are \
                             already in their handshake (limit {})",
                            self.config.max_handshaking
                        );
                        continue; // dropping the socket closes it
                    }
                    if let Err(e) = self.register(socket, peer) {
                        log::warn!("cannot serve {peer}: {e}");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: drop this attempt, keep serving.
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
        }
    }

    fn register(&mut self, mut socket: TcpStream, peer: SocketAddr) -> io::Result<()> {
        socket.set_nodelay(true)?;
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        self.next_client_id += 1;
        self.poll.registry().register(
            &mut socket,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        log::info!("connection from {peer} opened");
        entry.insert(Client {
            id: self.next_client_id,
            socket,
            peer,
            conn: ServerConnection::new(self.config.connection.clone()),
            reading: ReadReadiness::new(),
            writable: true,
            last_active: Instant::now(),
            counted: false,
            session_deadline: None,
        });
        self.drive(key);
        Ok(())
    }

    /// Moves bytes and handles events for one connection until it would block.
    fn drive(&mut self, key: usize) {
        let room = self.has_room();
        let Some(client) = self.clients.get_mut(key) else { return };
        if !client.conn.handshake_done() {
            let match_key = match &self.tracker {
                Some(link) => link.match_key(),
                None => Some(self.config.connection.match_key.as_str()),
            };
            client.conn.set_match_key(match_key);
            client.conn.set_refusal((!room).then(|| {
                let max = self.config.max_sessions;
                format!(
                    "tensor-rpc server is busy: {max} sessions open, the most it serves \
                     (--max-sessions {max}); try again later"
                )
            }));
        }
        let verdict = pump(client, key, &self.workers);
        if !client.counted && client.conn.admitted() {
            client.counted = true;
            let timeout = client.conn.client_key().and_then(|k| k.timeout);
            client.session_deadline = timeout.map(|t| Instant::now() + t);
            self.sessions += 1;
            let room = self.has_room();
            if let Some(link) = &mut self.tracker {
                link.key_used(self.poll.registry(), room, Instant::now());
            }
        }
        if let Some(reason) = verdict {
            self.close(key, &reason);
        }
    }

    /// Hands finished jobs back to their connections (if those are still open).
    fn finish_jobs(&mut self) {
        for (owner, completion) in self.workers.take_completed() {
            let Some(client) = self.clients.get_mut(owner.key).filter(|c| c.id == owner.id) else {
                continue; // the connection closed meanwhile; the job's session is dropped
            };
            match completion {
                Completion::Done(done) => {
                    client.conn.complete(done);
                    self.drive(owner.key);
                }
                Completion::Panicked(message) => {
                    log::error!("request of {} panicked: {message}", client.peer);
                    self.close(owner.key, "internal error");
                }
            }
        }
    }

    fn close(&mut self, key: usize, reason: &str) {
        if !self.clients.contains(key) {
            return;
        }
        let mut client = self.clients.remove(key);
        let _ = self.poll.registry().deregister(&mut client.socket);
        if client.counted {
            self.sessions -= 1;
            let room = self.has_room();
            if let Some(link) = &mut self.tracker {
                link.session_ended(self.poll.registry(), room, Instant::now());
            }
        }
        let stats = client.conn.session_stats();
        let endpoint = client.conn.endpoint_ref();
        let seconds = client.conn.opened().elapsed().as_secs_f64();
        if client.counted {
            log::info!(
                "session of {} ended ({reason}) after {seconds:.3}s: {} requests ({} calls), \
                 {} bytes in, {} bytes out, peak memory {} bytes",
                client.peer,
                client.conn.requests(),
                stats.calls,
                endpoint.bytes_in(),
                endpoint.bytes_out(),
                stats.peak_bytes,
            );
        } else {
            log::info!(
                "connection from {} closed ({reason}) after {seconds:.3}s without a session",
                client.peer
            );
        }
        // Dropping the connection drops its session: memory, handles and files go with it.
        drop(client);
        if self.clients.is_empty() {
            // Idle: give back what the sessions' small blocks left free in the heaps.
            memory_tuning::return_free_memory();
        }
    }
}

/// Reads, processes and writes until nothing more can happen now. Returns why the
/// connection must close, if it must.
fn pump(client: &mut Client, key: usize, workers: &WorkerPool) -> Option<String> {
    loop {
        let mut progressed = false;
        while client.reading.may_read() && client.conn.endpoint_ref().wants_read() {
            let endpoint = client.conn.endpoint();
            match client.reading.read(&mut client.socket, |socket| endpoint.receive_from(socket)) {
                Ok(0) => {}
                Ok(_) => progressed = true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Some(format!("read error: {e}")),
            }
        }
        match client.conn.process() {
            Ok(Progress::Idle) => {}
            Ok(Progress::Offload(job)) => {
                workers.submit(JobOwner { key, id: client.id }, job);
                progressed = true;
            }
            Err(e) => log::warn!("connection from {}: {e}", client.peer),
        }
        while client.writable && client.conn.endpoint_ref().wants_write() {
            match client.conn.endpoint().send_to(&mut client.socket) {
                Ok(0) => return Some("peer stopped reading".into()),
                Ok(_) => progressed = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => client.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Some(format!("write error: {e}")),
            }
        }
        if client.conn.is_finished() {
            return Some("session ended".into());
        }
        if client.reading.at_end() && !client.conn.endpoint_ref().wants_write() {
            return Some("peer closed".into());
        }
        if !progressed {
            return None;
        }
        client.last_active = Instant::now();
    }
}
