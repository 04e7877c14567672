//! The standalone server: one mio `Poll` driving any number of connections.
//!
//! The loop only moves bytes: read until `WouldBlock` while the endpoint wants input, let the
//! [`ServerConnection`] handle what arrived, write until `WouldBlock`. Protocol decisions live
//! in the connection and the endpoint. The loop also keeps the server's limits (sessions,
//! connections still in their handshake, timeouts) and, with a tracker, its registration
//! there ([`TrackerConfig`]), whose socket is one more source in the same `Poll`.

mod busy_poll;
mod clock;
mod connection;
mod constructor;
mod detect;
mod error;
mod ggml_connection;
mod lifecycle;
pub mod memory_tuning;
mod tracker_link;
mod tvm_connection;
mod workers;

pub use busy_poll::BusyPoll;
pub use clock::{ConnectionClock, Timeouts, Timer};
pub use connection::{Admission, Connection, ConnectionReport, Job, JobDone, Lifecycle, Progress};
pub use constructor::{
    DEFAULT_MAX_RELAYS, RPC_CONNECT, RelayLimits, RelayPermit, RelayTarget, SessionPlan,
};
pub use detect::{GGML_FIRST_BYTE, ServedConnection, TVM_FIRST_BYTE};
pub use error::{CloseReason, ServerError, TrackerLinkError};
pub use ggml_connection::GgmlConnection;
pub use tracker_link::TrackerConfig;
pub use tvm_connection::{ConnectionConfig, GgmlConfig, TvmConnection};

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

use crate::readiness::{ReadReadiness, WriteReadiness};

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
    /// What every connection shares (its timeouts included).
    pub connection: ConnectionConfig,
    /// Threads that run long requests (large kernels, relayed calls) off the event loop.
    pub workers: usize,
    /// How long a network thread (one per relay request in flight) stays after its last job.
    pub network_thread_idle: Duration,
    /// Most sessions served at once; the next client is refused with a message saying so.
    pub max_sessions: usize,
    /// Most connections still in their handshake; further ones are closed on accept.
    pub max_handshaking: usize,
    /// After a batch of events that came within this window of the last, keep polling
    /// without sleeping for this long before blocking again (see [`BusyPoll`]). Zero
    /// disables.
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
    conn: ServedConnection,
    reading: ReadReadiness,
    writing: WriteReadiness,
    /// Whether the server counts this connection as a session (its handshake was accepted).
    counted: bool,
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
        let tracker = match config.tracker.clone() {
            Some(t) => Some(TrackerLink::new(t, port, TRACKER, Instant::now())?),
            None => None,
        };
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
        let mut busy = BusyPoll::new(self.config.busy_poll);
        let mut idle_since = Instant::now();
        let mut next_timer = Instant::now();
        while !self.shutdown.flag.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next_timer {
                self.run_timers(now);
                next_timer = self.next_deadline(now);
            }
            let timeout = if busy.should_spin(idle_since, now) {
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
            busy.on_events(idle_since, Instant::now());
            next_timer = next_timer.min(self.handle(&events));
            idle_since = Instant::now();
            // Spin for the next request only while no compute job runs: a job needs every
            // core (GEMM runs one thread per core), and its end wakes the loop anyway.
            if self.workers.computing() {
                busy.pause();
            }
            // Events can bring deadlines forward (a session's own -timeout, say).
            next_timer = next_timer.min(idle_since + Duration::from_millis(100));
        }
        self.stop(&mut events);
        Ok(())
    }

    /// Handles a batch of events; returns the earliest deadline of connections it opened.
    fn handle(&mut self, events: &Events) -> Instant {
        let mut next = Instant::now() + Duration::from_secs(1);
        for event in events.iter() {
            match event.token() {
                LISTENER => next = next.min(self.accept_all()),
                WAKER => self.finish_jobs(),
                TRACKER => {
                    if let Some(link) = &mut self.tracker {
                        link.on_event(self.poll.registry(), event.is_writable(), Instant::now());
                    }
                }
                Token(key) => {
                    if let Some(client) = self.clients.get_mut(key) {
                        client.reading.on_event(event);
                        client.writing.on_event(event);
                    }
                    self.drive(key);
                }
            }
        }
        next
    }

    /// Closes connections whose time is up, shrinks idle buffers, keeps the tracker going.
    fn run_timers(&mut self, now: Instant) {
        self.release_idle_buffers(now);
        let mut finished = Vec::new();
        for (key, client) in self.clients.iter_mut() {
            if client.conn.poll_timeout().is_some_and(|due| now >= due) {
                client.conn.handle_timeout(now);
                if client.conn.is_finished() {
                    finished.push(key);
                }
            }
        }
        for key in finished {
            self.close(key, None);
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
            if let Some(due) = client.conn.poll_timeout() {
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
        let shutting_down = || Some(CloseReason::ServerShuttingDown);
        loop {
            let busy = |c: &Client| c.conn.job_running() || c.conn.core().wants_write();
            let idle: Vec<usize> =
                self.clients.iter().filter(|(_, c)| !busy(c)).map(|(k, _)| k).collect();
            for key in idle {
                self.close(key, shutting_down());
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
                                client.writing.assume_writable();
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
            self.close(key, shutting_down());
        }
    }

    fn holds_large_buffers(&self) -> bool {
        self.clients.iter().any(|(_, c)| c.conn.core().buffer_capacity() > 1 << 20)
    }

    /// Shrinks the buffers of connections that have been quiet for a while.
    fn release_idle_buffers(&mut self, now: Instant) {
        for (_, client) in self.clients.iter_mut() {
            if now.duration_since(client.conn.last_active()) >= BUFFER_RELEASE_AFTER {
                client.conn.core_mut().release_idle_buffers();
            }
        }
    }

    /// Accepts every waiting connection; returns the earliest of their handshake deadlines.
    fn accept_all(&mut self) -> Instant {
        let mut next = Instant::now() + Duration::from_secs(1);
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
                    match self.register(socket, peer) {
                        Ok(due) => next = next.min(due),
                        Err(e) => log::warn!("cannot serve {peer}: {e}"),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: drop this attempt, keep serving.
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
        next
    }

    /// Starts serving a new connection; returns its handshake deadline.
    fn register(&mut self, mut socket: TcpStream, peer: SocketAddr) -> io::Result<Instant> {
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
        let now = Instant::now();
        let conn = ServedConnection::new(self.config.connection.clone(), now);
        let due = conn.poll_timeout().unwrap_or(now);
        entry.insert(Client {
            id: self.next_client_id,
            socket,
            peer,
            conn,
            reading: ReadReadiness::new(),
            writing: WriteReadiness::new(),
            counted: false,
        });
        self.drive(key);
        Ok(due)
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
            let max = self.config.max_sessions;
            let refusal = (!room).then(|| {
                format!(
                    "tensor-rpc server is busy: {max} sessions open, the most it serves \
                     (--max-sessions {max}); try again later"
                )
            });
            client.conn.set_admission(&Admission { match_key, refusal: refusal.as_deref() });
        }
        let verdict = pump(client, key, &self.workers);
        if !client.counted && client.conn.admitted() {
            client.counted = true;
            self.sessions += 1;
            let room = self.has_room();
            if let Some(link) = &mut self.tracker {
                link.key_used(self.poll.registry(), room, Instant::now());
            }
        }
        if let Some(reason) = verdict {
            self.close(key, reason);
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
                    client.conn.complete(done, Instant::now());
                    self.drive(owner.key);
                }
                Completion::Panicked(message) => {
                    log::error!("request of {} panicked: {message}", client.peer);
                    self.close(owner.key, Some(CloseReason::InternalError));
                }
            }
        }
    }

    /// Closes a connection: `reason`, or the one the connection gives, or "session ended".
    fn close(&mut self, key: usize, reason: Option<CloseReason>) {
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
        let reason =
            reason.or_else(|| client.conn.take_close_reason()).unwrap_or(CloseReason::SessionEnded);
        let report = client.conn.report();
        let core = client.conn.core();
        let seconds = report.opened.elapsed().as_secs_f64();
        if client.counted {
            log::info!(
                "{} session of {} ended ({reason}) after {seconds:.3}s: {} requests ({} \
                 calls), {} bytes in, {} bytes out, peak memory {} bytes",
                report.protocol.unwrap_or("?"),
                client.peer,
                report.requests,
                report.session.calls,
                core.bytes_in(),
                core.bytes_out(),
                report.session.peak_bytes,
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
/// connection must close, if it must (`Some(None)`: for the reason the connection gives).
fn pump(client: &mut Client, key: usize, workers: &WorkerPool) -> Option<Option<CloseReason>> {
    loop {
        let mut progressed = false;
        while client.reading.may_read() && client.conn.wants_read() {
            let core = client.conn.core_mut();
            match client.reading.read(&mut client.socket, |socket| core.receive_from(socket)) {
                Ok(0) => {}
                Ok(_) => progressed = true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Some(Some(CloseReason::ReadError(e))),
            }
        }
        if let Progress::Offload(job) = client.conn.process(Instant::now()) {
            workers.submit(JobOwner { key, id: client.id }, job);
            progressed = true;
        }
        match client.writing.flush(&mut client.socket, client.conn.core_mut()) {
            Ok(wrote) => progressed |= wrote,
            Err(e) if e.kind() == ErrorKind::WriteZero => {
                return Some(Some(CloseReason::PeerStoppedReading));
            }
            Err(e) => return Some(Some(CloseReason::WriteError(e))),
        }
        if client.conn.is_finished() {
            return Some(None);
        }
        if client.reading.at_end() && !client.conn.core().wants_write() {
            let mid_request = client.conn.mid_request();
            return Some(Some(if mid_request {
                CloseReason::PeerClosedMidRequest
            } else {
                CloseReason::PeerClosed
            }));
        }
        if !progressed {
            return None;
        }
    }
}
