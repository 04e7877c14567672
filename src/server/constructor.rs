//! Session constructors of InitServer: none (a local session) or `rpc.Connect` (a relay to
//! the next hop, TVM's multi-hop / proxy use).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ServerError;
use crate::client::{Channel, ChannelOptions, ClientSession};
use crate::endpoint::tvm::codec::Value;
use crate::session::Session;

/// The name TVM's client uses for "relay my requests to another server".
pub const RPC_CONNECT: &str = "rpc.Connect";

/// What InitServer asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionPlan {
    Local,
    Relay(RelayTarget),
}

/// Where a relay connects: `["rpc.Connect", host, port, key, enable_logging, next...]`;
/// `next` is the next hop's own constructor (for three hops and more).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayTarget {
    pub host: String,
    pub port: u16,
    pub key: String,
    pub next: Vec<Value>,
}

impl SessionPlan {
    pub fn parse(args: &[Value]) -> Result<SessionPlan, ServerError> {
        let Some(first) = args.first() else { return Ok(SessionPlan::Local) };
        let Value::Str(name) = first else {
            return Err(ServerError::ConstructorNotNamed { got: first.describe() });
        };
        if name != RPC_CONNECT {
            return Err(ServerError::UnknownConstructor(name.clone()));
        }
        let bad = |detail: String| Err(ServerError::BadRelayArguments(detail));
        let usage = "expects [\"rpc.Connect\", host, port, key, enable_logging, ...]";
        let host = match args.get(1) {
            Some(Value::Str(h)) if !h.is_empty() => h.clone(),
            _ => return bad(format!("{usage}: host must be a string")),
        };
        let port = match args.get(2) {
            Some(Value::Int(p)) => match u16::try_from(*p) {
                Ok(port) => port,
                Err(_) => return bad(format!("port {p} is out of range")),
            },
            _ => return bad(format!("{usage}: port must be an integer")),
        };
        let key = match args.get(3) {
            None => String::new(),
            Some(Value::Str(k)) => k.clone(),
            Some(other) => return bad(format!("key must be a string, got {}", other.describe())),
        };
        let next = args.get(5..).map(<[Value]>::to_vec).unwrap_or_default();
        Ok(SessionPlan::Relay(RelayTarget { host, port, key, next }))
    }
}

/// Relay sessions a server keeps open at once unless told otherwise.
pub const DEFAULT_MAX_RELAYS: usize = 32;

/// Bounds on `rpc.Connect`, shared by every connection of a server (clones share the count).
///
/// A client can ask a server to relay to itself, and that hop to relay to itself again, each
/// hop holding a connection, a network thread and buffers. A relay to the server's own
/// listening address is refused outright; loops through another of its addresses, or through
/// a pair of servers, end at `max_sessions` open relays.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Most relay sessions open at once; 0 refuses every `rpc.Connect`.
    pub max_sessions: usize,
    /// The server's own listening address (set by `Server::bind`).
    pub own_addr: Option<SocketAddr>,
    open: Arc<AtomicUsize>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits::new(DEFAULT_MAX_RELAYS)
    }
}

impl RelayLimits {
    pub fn new(max_sessions: usize) -> Self {
        RelayLimits { max_sessions, own_addr: None, open: Arc::default() }
    }

    /// Relay sessions open (or connecting) now.
    pub fn open_sessions(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Takes one of the `max_sessions` slots, held until the permit is dropped.
    pub fn acquire(&self) -> Result<RelayPermit, ServerError> {
        let taken = self.open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < self.max_sessions).then_some(n + 1)
        });
        match taken {
            Ok(_) => Ok(RelayPermit { open: Arc::clone(&self.open) }),
            Err(_) if self.max_sessions == 0 => Err(ServerError::RelaysDisabled),
            Err(open) => Err(ServerError::TooManyRelays { open }),
        }
    }

    /// Whether `addr` reaches this server itself: its own address, or its port on a
    /// loopback or unspecified address.
    pub fn is_own_addr(&self, addr: &SocketAddr) -> bool {
        let Some(own) = self.own_addr else { return false };
        let ip = addr.ip();
        own.port() == addr.port() && (ip == own.ip() || ip.is_loopback() || ip.is_unspecified())
    }
}

/// One open relay session's slot of [`RelayLimits::max_sessions`].
#[derive(Debug)]
pub struct RelayPermit {
    open: Arc<AtomicUsize>,
}

impl Drop for RelayPermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RelayTarget {
    /// Connects to the next hop (blocking: run it off the event loop). `max_packet` is our
    /// own limit, which the relay reports to the client in front when it is the smaller.
    /// An address that is this server itself is refused (see [`RelayLimits`]).
    pub fn connect(
        &self,
        max_packet: u64,
        limits: &RelayLimits,
    ) -> Result<Box<dyn Session>, ServerError> {
        let failed = |e: &dyn std::fmt::Display| ServerError::RelayFailed {
            host: self.host.clone(),
            port: self.port,
            reason: e.to_string(),
        };
        let addrs: Vec<SocketAddr> =
            (self.host.as_str(), self.port).to_socket_addrs().map_err(|e| failed(&e))?.collect();
        if addrs.iter().any(|a| limits.is_own_addr(a)) {
            return Err(ServerError::RelayToSelf { host: self.host.clone(), port: self.port });
        }
        let options = ChannelOptions {
            key: self.key.clone(),
            constructor: self.next.clone(),
            ..ChannelOptions::default()
        };
        match Channel::connect(addrs.as_slice(), options) {
            Ok(channel) => Ok(Box::new(ClientSession::relay(channel, max_packet))),
            Err(e) => Err(failed(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn no_constructor_means_a_local_session() {
        assert_eq!(SessionPlan::parse(&[]), Ok(SessionPlan::Local));
    }

    #[test]
    fn rpc_connect_as_tvm_sends_it_is_a_relay() {
        let args = [s("rpc.Connect"), s("127.0.0.1"), Value::Int(9120), s(""), Value::Bool(false)];
        assert_eq!(
            SessionPlan::parse(&args),
            Ok(SessionPlan::Relay(RelayTarget {
                host: "127.0.0.1".into(),
                port: 9120,
                key: String::new(),
                next: vec![],
            }))
        );
    }

    #[test]
    fn constructor_arguments_beyond_the_fifth_go_to_the_next_hop() {
        let args = [
            s("rpc.Connect"),
            s("a"),
            Value::Int(1),
            s("k"),
            Value::Bool(false),
            s("rpc.Connect"),
            s("b"),
            Value::Int(2),
        ];
        let Ok(SessionPlan::Relay(target)) = SessionPlan::parse(&args) else { panic!() };
        assert_eq!(target.next, vec![s("rpc.Connect"), s("b"), Value::Int(2)]);
    }

    #[test]
    fn unknown_constructor_is_refused_by_name() {
        assert_eq!(
            SessionPlan::parse(&[s("rpc.LocalSession")]).unwrap_err().to_string(),
            "InitServer: unknown session constructor 'rpc.LocalSession'"
        );
    }

    #[test]
    fn relay_slots_run_out_at_the_limit_and_return_when_dropped() {
        let limits = RelayLimits::new(2);
        let clone = limits.clone();
        let a = limits.acquire().unwrap();
        let _b = clone.acquire().unwrap();
        assert_eq!(
            limits.acquire().unwrap_err().to_string(),
            "rpc.Connect: 2 relay sessions are open, the limit of this server; try again later"
        );
        drop(a);
        assert_eq!(limits.open_sessions(), 1);
        assert!(limits.acquire().is_ok());
    }

    #[test]
    fn zero_relay_slots_refuse_every_relay() {
        assert_eq!(
            RelayLimits::new(0).acquire().unwrap_err().to_string(),
            "rpc.Connect: this server does not relay to other servers"
        );
    }

    #[test]
    fn relay_to_our_own_listening_address_is_refused_before_connecting() {
        let mut limits = RelayLimits::new(4);
        limits.own_addr = Some("127.0.0.1:9".parse().unwrap());
        let target =
            RelayTarget { host: "localhost".into(), port: 9, key: String::new(), next: vec![] };
        let Err(message) = target.connect(1 << 20, &limits) else { panic!("connected") };
        assert_eq!(
            message.to_string(),
            "rpc.Connect to localhost:9 refused: that is this server itself"
        );
    }

    #[test]
    fn port_out_of_range_is_refused() {
        let args = [s("rpc.Connect"), s("h"), Value::Int(70000)];
        assert_eq!(
            SessionPlan::parse(&args).unwrap_err().to_string(),
            "rpc.Connect: port 70000 is out of range"
        );
    }
}
