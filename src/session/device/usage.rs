//! What all sessions of a server hold right now, for `tensor_rpc.stats`.
//!
//! Every [`LocalSession`](super::LocalSession) reports into the [`ServerUsage`] its
//! [`SessionConfig`](super::SessionConfig) points at, through a [`SessionUsage`] it owns: the
//! totals move as allocations come and go, and whatever a session still holds is taken off
//! when it is dropped, however its connection ended. Atomics, because sessions move between
//! the event loop and worker threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Server-wide counters, shared by every session of one server.
#[derive(Debug, Default)]
pub struct ServerUsage {
    sessions: AtomicU64,
    allocations: AtomicU64,
    bytes_held: AtomicU64,
    calls: AtomicU64,
}

/// A point-in-time copy of [`ServerUsage`]; the JSON `tensor_rpc.stats` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSnapshot {
    /// Live local sessions.
    pub sessions: u64,
    /// Live data allocations, over all sessions.
    pub allocations: u64,
    /// Bytes of device memory those allocations hold.
    pub bytes_held: u64,
    /// Function calls served since the server started.
    pub calls: u64,
}

impl UsageSnapshot {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of integers serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl ServerUsage {
    pub fn new() -> Arc<Self> {
        Arc::new(ServerUsage::default())
    }

    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            sessions: self.sessions.load(Ordering::Relaxed),
            allocations: self.allocations.load(Ordering::Relaxed),
            bytes_held: self.bytes_held.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }
}

/// One session's share of a [`ServerUsage`]; counts the session as live until dropped.
#[derive(Debug)]
pub(crate) struct SessionUsage {
    server: Arc<ServerUsage>,
    allocations: u64,
    bytes_held: u64,
}

impl SessionUsage {
    pub(crate) fn new(server: Arc<ServerUsage>) -> Self {
        server.sessions.fetch_add(1, Ordering::Relaxed);
        SessionUsage { server, allocations: 0, bytes_held: 0 }
    }

    pub(crate) fn allocated(&mut self, nbytes: u64) {
        self.allocations += 1;
        self.bytes_held += nbytes;
        self.server.allocations.fetch_add(1, Ordering::Relaxed);
        self.server.bytes_held.fetch_add(nbytes, Ordering::Relaxed);
    }

    pub(crate) fn freed(&mut self, nbytes: u64) {
        self.allocations -= 1;
        self.bytes_held -= nbytes;
        self.server.allocations.fetch_sub(1, Ordering::Relaxed);
        self.server.bytes_held.fetch_sub(nbytes, Ordering::Relaxed);
    }

    /// The server-wide figures this session reports into.
    pub(crate) fn server(&self) -> &ServerUsage {
        &self.server
    }

    pub(crate) fn called(&self) {
        self.server.calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for SessionUsage {
    fn drop(&mut self) {
        self.server.allocations.fetch_sub(self.allocations, Ordering::Relaxed);
        self.server.bytes_held.fetch_sub(self.bytes_held, Ordering::Relaxed);
        self.server.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::tvm::codec::{DataType, Device, Syscall, Value};
    use crate::session::{FunctionRegistry, LocalSession, Session, SessionConfig};

    #[test]
    fn dropping_a_session_takes_off_what_it_still_holds() {
        let server = ServerUsage::new();
        let mut a = SessionUsage::new(Arc::clone(&server));
        let mut b = SessionUsage::new(Arc::clone(&server));
        a.allocated(100);
        a.allocated(28);
        b.allocated(7);
        a.freed(28);
        assert_eq!(
            server.snapshot(),
            UsageSnapshot { sessions: 2, allocations: 2, bytes_held: 107, calls: 0 }
        );
        drop(a);
        assert_eq!(
            server.snapshot(),
            UsageSnapshot { sessions: 1, allocations: 1, bytes_held: 7, calls: 0 }
        );
        drop(b);
        assert_eq!(server.snapshot(), UsageSnapshot::default());
    }

    fn stats_of(session: &mut LocalSession) -> UsageSnapshot {
        let lookup = Syscall::GetGlobalFunc { name: "tensor_rpc.stats".into() };
        let Ok(Value::Handle(stats)) = session.syscall(&lookup) else { panic!("no stats") };
        let Value::Str(json) = session.call_func(stats, &[]).unwrap() else {
            panic!("tensor_rpc.stats returns a string")
        };
        UsageSnapshot::from_json(&json).unwrap()
    }

    #[test]
    fn stats_function_reports_every_session_of_the_server() {
        let registry = Arc::new(FunctionRegistry::with_builtins());
        let config = SessionConfig::default();
        let mut a = LocalSession::new(Arc::clone(&registry), config.clone());
        let mut b = LocalSession::new(registry, config);
        let f32 = DataType::FLOAT32;
        let alloc = |nbytes| Syscall::DevAllocData {
            device: Device::cpu(0),
            nbytes,
            alignment: 64,
            dtype: f32,
        };
        let Ok(Value::Handle(data)) = b.syscall(&alloc(4096)) else { panic!("no allocation") };
        b.syscall(&alloc(100)).unwrap();
        b.syscall(&Syscall::DevFreeData { device: Device::cpu(0), data }).unwrap();
        let seen = stats_of(&mut a);
        assert_eq!((seen.sessions, seen.allocations, seen.bytes_held), (2, 1, 100));
        drop(b);
        let seen = stats_of(&mut a);
        assert_eq!((seen.sessions, seen.allocations, seen.bytes_held), (1, 0, 0));
        assert_eq!(seen.calls, 2, "both stats calls counted");
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let snapshot = UsageSnapshot { sessions: 3, allocations: 4, bytes_held: 5, calls: 6 };
        assert_eq!(UsageSnapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
    }
}
