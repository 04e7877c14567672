//! What every served connection does alike, whatever its protocol: its timers, whether it was
//! admitted to a session, whether a job of it runs, and why it ended.

use std::time::{Duration, Instant};

use super::CloseReason;
use super::clock::ConnectionClock;
use crate::endpoint::EndpointCore;

/// The protocol-neutral state of one connection.
#[derive(Debug)]
pub struct Lifecycle {
    clock: ConnectionClock,
    admitted: bool,
    job_running: bool,
    close_reason: Option<CloseReason>,
    /// A timer (or a fault) ended the connection: it closes at once, without flushing.
    aborted: bool,
}

impl Lifecycle {
    pub fn new(clock: ConnectionClock) -> Self {
        Lifecycle { clock, admitted: false, job_running: false, close_reason: None, aborted: false }
    }

    pub fn clock(&self) -> &ConnectionClock {
        &self.clock
    }

    /// Notes how many bytes have moved through `core` by `now`.
    pub fn observe(&mut self, core: &EndpointCore, now: Instant) {
        self.clock.observe(core, now);
    }

    /// The next event an endpoint polled, if any; a broken stream ends the connection (once
    /// its output is flushed) for the error's reason.
    pub fn event<T>(&mut self, polled: Result<Option<T>, impl std::fmt::Display>) -> Option<T> {
        polled.unwrap_or_else(|error| {
            self.end(CloseReason::Protocol(error.to_string()));
            None
        })
    }

    /// The client was admitted to a session `now`, to last at most `limit`.
    pub fn admit(&mut self, now: Instant, limit: Option<Duration>) {
        self.admitted = true;
        self.clock.admit(now, limit);
    }

    pub fn admitted(&self) -> bool {
        self.admitted
    }

    pub fn job_started(&mut self) {
        self.job_running = true;
    }

    /// A job of the connection finished `now`: the connection was busy until then.
    pub fn job_done(&mut self, now: Instant) {
        self.job_running = false;
        self.clock.note_active(now);
    }

    pub fn job_running(&self) -> bool {
        self.job_running
    }

    /// Why the connection ends (it finishes once its output is flushed).
    pub fn end(&mut self, reason: CloseReason) {
        self.close_reason.get_or_insert(reason);
    }

    /// Ends the connection at once for `reason`.
    pub fn abort(&mut self, reason: CloseReason) {
        self.end(reason);
        self.aborted = true;
    }

    /// Whether the connection ended at once (a timer, a fault).
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    pub fn take_close_reason(&mut self) -> Option<CloseReason> {
        self.close_reason.take()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.next_timer(self.job_running).map(|(due, _)| due)
    }

    /// Ends the connection at once if one of its timers has fired by `now` (its byte count
    /// then is `bytes`).
    pub fn handle_timeout(&mut self, bytes: u64, now: Instant) {
        self.clock.observe_bytes(bytes, now);
        if let Some(timer) = self.clock.expired(now, self.job_running) {
            self.abort(timer.into());
        }
    }
}
