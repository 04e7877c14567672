//! Session constructors of InitServer: none (a local session) or `rpc.Connect` (a relay to
//! the next hop, TVM's multi-hop / proxy use).

use crate::client::{Channel, ChannelOptions, ClientSession};
use crate::endpoint::codec::Value;
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
    pub fn parse(args: &[Value]) -> Result<SessionPlan, String> {
        let Some(first) = args.first() else { return Ok(SessionPlan::Local) };
        let Value::Str(name) = first else {
            return Err(format!(
                "InitServer: the session constructor must be named by a string, got {}",
                first.describe()
            ));
        };
        if name != RPC_CONNECT {
            return Err(format!("InitServer: unknown session constructor '{name}'"));
        }
        let usage = "expects [\"rpc.Connect\", host, port, key, enable_logging, ...]";
        let host = match args.get(1) {
            Some(Value::Str(h)) if !h.is_empty() => h.clone(),
            _ => return Err(format!("{RPC_CONNECT} {usage}: host must be a string")),
        };
        let port = match args.get(2) {
            Some(Value::Int(p)) => {
                u16::try_from(*p).map_err(|_| format!("{RPC_CONNECT}: port {p} is out of range"))?
            }
            _ => return Err(format!("{RPC_CONNECT} {usage}: port must be an integer")),
        };
        let key = match args.get(3) {
            None => String::new(),
            Some(Value::Str(k)) => k.clone(),
            Some(other) => {
                return Err(format!(
                    "{RPC_CONNECT}: key must be a string, got {}",
                    other.describe()
                ));
            }
        };
        let next = args.get(5..).map(<[Value]>::to_vec).unwrap_or_default();
        Ok(SessionPlan::Relay(RelayTarget { host, port, key, next }))
    }
}

impl RelayTarget {
    /// Connects to the next hop (blocking: run it off the event loop). `max_packet` is our
    /// own limit, which the relay reports to the client in front when it is the smaller.
    pub fn connect(&self, max_packet: u64) -> Result<Box<dyn Session>, String> {
        let options = ChannelOptions {
            key: self.key.clone(),
            constructor: self.next.clone(),
            ..ChannelOptions::default()
        };
        match Channel::connect((self.host.as_str(), self.port), options) {
            Ok(channel) => Ok(Box::new(ClientSession::relay(channel, max_packet))),
            Err(e) => Err(format!("{RPC_CONNECT} to {}:{} failed: {e}", self.host, self.port)),
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
            SessionPlan::parse(&[s("rpc.LocalSession")]),
            Err("InitServer: unknown session constructor 'rpc.LocalSession'".into())
        );
    }

    #[test]
    fn port_out_of_range_is_refused() {
        let args = [s("rpc.Connect"), s("h"), Value::Int(70000)];
        assert_eq!(
            SessionPlan::parse(&args),
            Err("rpc.Connect: port 70000 is out of range".into())
        );
    }
}
