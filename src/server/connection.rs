//! What the event loop knows of a connection, whatever its protocol: a small trait
//! ([`Connection`]) over an endpoint's buffers, and the boxed [`Job`]s a connection hands out
//! to run off the loop. A protocol's connection (TVM's [`TvmConnection`], ...) owns its
//! endpoint, session and timers; the loop only moves bytes, runs jobs and keeps the limits.
//!
//! [`TvmConnection`]: super::TvmConnection

use std::any::Any;
use std::time::Instant;

use super::CloseReason;
pub use super::lifecycle::Lifecycle;
use crate::endpoint::EndpointCore;
use crate::session::{Placement, SessionStats};

/// A served connection with no I/O inside: the driver moves bytes through its
/// [`EndpointCore`], calls [`Connection::process`] after each read, and runs the jobs it
/// returns; time comes in as `now` and [`Connection::poll_timeout`] says when it next needs
/// [`Connection::handle_timeout`].
pub trait Connection: Send {
    /// The endpoint's buffers, for the driver's I/O.
    fn core(&self) -> &EndpointCore;
    fn core_mut(&mut self) -> &mut EndpointCore;

    /// Whether the driver should read from the peer now.
    fn wants_read(&self) -> bool;

    /// Who may have a session now: set by the server before each step of a connection
    /// whose handshake is not over.
    fn set_admission(&mut self, admission: &Admission<'_>);

    /// Handles everything the buffered input allows. A request that runs long comes back as
    /// [`Progress::Offload`]: run the job anywhere, then [`Connection::complete`] it; until
    /// then the connection waits and later requests stay buffered, in order.
    fn process(&mut self, now: Instant) -> Progress;

    /// Hands back a finished job.
    fn complete(&mut self, done: JobDone, now: Instant);

    /// Whether the connection is over: close it now.
    fn is_finished(&self) -> bool;

    /// Whether the handshake is over (accepted, refused or rejected).
    fn handshake_done(&self) -> bool;

    /// What the connection did, for the log line when it closes.
    fn report(&self) -> ConnectionReport;

    /// Its timers, admission, job and end, alike in every protocol.
    fn lifecycle(&self) -> &Lifecycle;
    fn lifecycle_mut(&mut self) -> &mut Lifecycle;

    /// When the connection next needs [`Connection::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant> {
        self.lifecycle().poll_timeout()
    }

    /// Acts on timers that have fired by `now` (a timed-out connection finishes at once).
    fn handle_timeout(&mut self, now: Instant) {
        let bytes = self.core().bytes_in() + self.core().bytes_out();
        self.lifecycle_mut().handle_timeout(bytes, now);
    }

    /// Why the connection ended, if it ended of its own accord (protocol error, timer).
    fn take_close_reason(&mut self) -> Option<CloseReason> {
        self.lifecycle_mut().take_close_reason()
    }

    /// Whether the client was admitted to a session: the server counts it as one.
    fn admitted(&self) -> bool {
        self.lifecycle().admitted()
    }

    /// Whether a job of this connection runs off the loop.
    fn job_running(&self) -> bool {
        self.lifecycle().job_running()
    }

    /// When bytes last moved, as far as the connection has observed.
    fn last_active(&self) -> Instant {
        self.lifecycle().clock().last_active()
    }

    /// Whether part of a request has arrived and the rest has not (for the log line when
    /// the peer goes away): by default, whether unread input is buffered.
    fn mid_request(&self) -> bool {
        !self.core().input().is_empty()
    }
}

/// Who may have a session now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission<'a> {
    /// The key a TVM client must present (`client:<key>`); `None` refuses every key.
    pub match_key: Option<&'a str>,
    /// Set while the server is full: a client that would be admitted is told why it is not
    /// (in its protocol's way) and the connection closes.
    pub refusal: Option<&'a str>,
}

/// What a connection did, for logs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionReport {
    /// The protocol, once the first byte told it.
    pub protocol: Option<&'static str>,
    pub opened: Instant,
    /// Requests answered.
    pub requests: u64,
    pub session: SessionStats,
}

/// What [`Connection::process`] leaves to its driver.
pub enum Progress {
    /// Everything buffered has been handled; wait for more input or for output to drain.
    Idle,
    /// Work to run off the event loop.
    Offload(Job),
}

/// Work to run off the event loop, whatever the protocol: a long request with the session
/// that serves it, or a relay's connection to its next hop.
pub struct Job {
    placement: Placement,
    work: Box<dyn FnOnce() -> JobDone + Send>,
}

impl Job {
    pub fn new(placement: Placement, work: impl FnOnce() -> JobDone + Send + 'static) -> Self {
        Job { placement, work: Box::new(work) }
    }

    /// Where the job should run: compute work on a bounded pool, network waits elsewhere.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    pub fn run(self) -> JobDone {
        (self.work)()
    }
}

/// A finished [`Job`], to hand back to the connection that made it, which alone knows what
/// it holds.
pub struct JobDone(Box<dyn Any + Send>);

impl JobDone {
    pub fn new<T: Send + 'static>(value: T) -> Self {
        JobDone(Box::new(value))
    }

    /// What the job produced, if it is a `T`.
    pub fn downcast<T: 'static>(self) -> Result<T, JobDone> {
        self.0.downcast::<T>().map(|value| *value).map_err(JobDone)
    }
}
