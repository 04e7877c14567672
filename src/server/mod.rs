//! The standalone server: one mio `Poll` driving any number of connections.
//!
//! The loop only moves bytes: read until `WouldBlock` while the endpoint wants input, let the
//! [`ServerConnection`] handle what arrived, write until `WouldBlock`. Protocol decisions live
//! in the connection and the endpoint.

mod connection;
mod constructor;
pub mod memory_tuning;
mod workers;

pub use connection::{ConnectionConfig, Job, JobDone, Progress, ServerConnection};
pub use constructor::{
    DEFAULT_MAX_RELAYS, RPC_CONNECT, RelayLimits, RelayPermit, RelayTarget, SessionPlan,
};

use workers::{Completion, JobOwner, WorkerPool};

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

/// How long a connection stays quiet before buffers grown for large packets are released.
const BUFFER_RELEASE_AFTER: Duration = Duration::from_secs(1);

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub connection: ConnectionConfig,
    /// Threads that run long requests (large kernels, relayed calls) off the event loop.
    pub workers: usize,
    /// How long a network thread (one per relay request in flight) stays after its last job.
    pub network_thread_idle: Duration,
}

impl ServerConfig {
    /// Listens on `addr` with default connection settings and one worker per core.
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            connection: ConnectionConfig::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            network_thread_idle: workers::NETWORK_THREAD_IDLE,
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
    readable: bool,
    writable: bool,
    peer_closed: bool,
    /// When bytes last moved.
    last_active: Instant,
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
        Ok(Server {
            poll,
            listener,
            clients: Slab::new(),
            config,
            shutdown,
            workers,
            next_client_id: 0,
        })
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

    /// Serves until [`ShutdownHandle::shutdown`] is called.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.shutdown.flag.load(Ordering::SeqCst) {
            let timeout = self.holds_large_buffers().then_some(BUFFER_RELEASE_AFTER);
            self.release_idle_buffers();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.finish_jobs(),
                    Token(key) => {
                        if let Some(client) = self.clients.get_mut(key) {
                            client.readable |= event.is_readable() || event.is_read_closed();
                            client.writable |= event.is_writable();
                        }
                        self.drive(key);
                    }
                }
            }
        }
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, "server shutting down");
        }
        Ok(())
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
        loop {
            match self.listener.accept() {
                Ok((socket, peer)) => {
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
            readable: true,
            writable: true,
            peer_closed: false,
            last_active: Instant::now(),
        });
        self.drive(key);
        Ok(())
    }

    /// Moves bytes and handles events for one connection until it would block.
    fn drive(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else { return };
        let verdict = pump(client, key, &self.workers);
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
        let stats = client.conn.session_stats();
        let endpoint = client.conn.endpoint_ref();
        log::info!(
            "connection from {} closed ({reason}) after {:.3}s: {} requests, {} bytes in, {} bytes out, peak memory {} bytes",
            client.peer,
            client.conn.opened().elapsed().as_secs_f64(),
            client.conn.requests(),
            endpoint.bytes_in(),
            endpoint.bytes_out(),
            stats.peak_bytes,
        );
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
        while client.readable && client.conn.endpoint_ref().wants_read() {
            match client.conn.endpoint().receive_from(&mut client.socket) {
                Ok(0) => {
                    client.peer_closed = true;
                    client.readable = false;
                }
                Ok(_) => progressed = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => client.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
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
        if client.peer_closed && !client.conn.endpoint_ref().wants_write() {
            return Some("peer closed".into());
        }
        if !progressed {
            return None;
        }
        client.last_active = Instant::now();
    }
}
