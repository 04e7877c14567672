//! The timers of one connection, on a clock the driver passes in: how long its handshake may
//! take, how long its session may stay quiet, and when the client's own `-timeout=N` ends it.
//! Nothing here reads the time, so tests drive every timer without sleeping.

use std::time::{Duration, Instant};

use super::CloseReason;
use crate::endpoint::EndpointCore;

/// Timeouts every connection of a server shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection must complete its handshake within this time (slow or silent clients
    /// are dropped).
    pub handshake: Duration,
    /// A session in which no bytes move for this long is closed; `None` never.
    pub idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { handshake: Duration::from_secs(5), idle: Some(Duration::from_secs(900)) }
    }
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Handshake,
    Idle(Duration),
    Session(Duration),
}

impl From<Timer> for CloseReason {
    fn from(timer: Timer) -> Self {
        match timer {
            Timer::Handshake => CloseReason::HandshakeTimeout,
            Timer::Idle(t) => CloseReason::IdleTimeout(t),
            Timer::Session(t) => CloseReason::SessionTimeout(t),
        }
    }
}

/// When a connection opened, when bytes last moved on it, and when its session must end.
#[derive(Debug, Clone)]
pub struct ConnectionClock {
    timeouts: Timeouts,
    opened: Instant,
    last_active: Instant,
    /// Bytes in plus bytes out when activity was last observed.
    bytes_seen: u64,
    /// Set once the session is admitted.
    session: Option<SessionTimes>,
}

#[derive(Debug, Clone, Copy)]
struct SessionTimes {
    admitted: Instant,
    /// The client's `-timeout=N`.
    limit: Option<Duration>,
}

impl ConnectionClock {
    pub fn new(timeouts: Timeouts, now: Instant) -> Self {
        ConnectionClock { timeouts, opened: now, last_active: now, bytes_seen: 0, session: None }
    }

    pub fn opened(&self) -> Instant {
        self.opened
    }

    /// When the session was admitted, if it was.
    pub fn admitted_at(&self) -> Option<Instant> {
        self.session.map(|s| s.admitted)
    }

    /// Notes whether bytes moved through `core` since the last look: if they did, the
    /// connection was active `now`.
    pub fn observe(&mut self, core: &EndpointCore, now: Instant) {
        self.observe_bytes(core.bytes_in() + core.bytes_out(), now);
    }

    /// [`ConnectionClock::observe`] from the connection's byte count (bytes in plus out).
    pub fn observe_bytes(&mut self, seen: u64, now: Instant) {
        if seen != self.bytes_seen {
            self.bytes_seen = seen;
            self.last_active = self.last_active.max(now);
        }
    }

    /// The connection was busy until `now` (a job of it just finished), whatever moved.
    pub fn note_active(&mut self, now: Instant) {
        self.last_active = self.last_active.max(now);
    }

    /// The handshake was accepted `now`; the client asked its session to last at most
    /// `limit` (its `-timeout=N`).
    pub fn admit(&mut self, now: Instant, limit: Option<Duration>) {
        self.session = Some(SessionTimes { admitted: now, limit });
    }

    /// Since when bytes have not moved.
    pub fn last_active(&self) -> Instant {
        self.last_active
    }

    /// The next timer to fire, and when. While a request runs off the loop the session is
    /// busy, not idle.
    pub fn next_timer(&self, job_running: bool) -> Option<(Instant, Timer)> {
        let Some(session) = self.session else {
            return Some((self.opened + self.timeouts.handshake, Timer::Handshake));
        };
        let idle = self
            .timeouts
            .idle
            .filter(|_| !job_running)
            .map(|t| (self.last_active + t, Timer::Idle(t)));
        let limit = session.limit.map(|t| (session.admitted + t, Timer::Session(t)));
        match (idle, limit) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The timer that has fired by `now`, if any.
    pub fn expired(&self, now: Instant, job_running: bool) -> Option<Timer> {
        self.next_timer(job_running).filter(|(due, _)| now >= *due).map(|(_, timer)| timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(now: Instant) -> ConnectionClock {
        let timeouts =
            Timeouts { handshake: Duration::from_secs(5), idle: Some(Duration::from_secs(60)) };
        ConnectionClock::new(timeouts, now)
    }

    #[test]
    fn handshake_timer_fires_at_its_timeout_after_opening() {
        let t0 = Instant::now();
        let clock = clock(t0);
        assert_eq!(clock.expired(t0 + Duration::from_millis(4999), false), None);
        assert_eq!(clock.expired(t0 + Duration::from_secs(5), false), Some(Timer::Handshake));
    }

    #[test]
    fn idle_timer_counts_from_the_last_bytes_moved() {
        let t0 = Instant::now();
        let mut clock = clock(t0);
        clock.admit(t0, None);
        let mut core = EndpointCore::default();
        core.receive(b"x");
        clock.observe(&core, t0 + Duration::from_secs(30));
        assert_eq!(clock.expired(t0 + Duration::from_secs(89), false), None);
        let idle = Timer::Idle(Duration::from_secs(60));
        assert_eq!(clock.expired(t0 + Duration::from_secs(90), false), Some(idle));
    }

    #[test]
    fn a_session_running_a_job_is_not_idle() {
        let t0 = Instant::now();
        let mut clock = clock(t0);
        clock.admit(t0, None);
        assert_eq!(clock.expired(t0 + Duration::from_secs(3600), true), None);
    }

    #[test]
    fn the_clients_own_timeout_ends_the_session_even_while_it_is_busy() {
        let t0 = Instant::now();
        let mut clock = clock(t0);
        clock.admit(t0 + Duration::from_secs(1), Some(Duration::from_secs(3)));
        let session = Some(Timer::Session(Duration::from_secs(3)));
        assert_eq!(clock.expired(t0 + Duration::from_secs(4), true), session);
    }
}
