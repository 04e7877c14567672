//! One port, several protocols: a new connection's first byte says which it speaks. TVM's
//! handshake begins with its magic (`0x71` first, little-endian); ggml-RPC begins with its
//! HELLO command (`0x0e`). Until that byte arrives the connection is [`Unidentified`]; then
//! it becomes that protocol's connection, the byte still in its input. Any other byte closes
//! the connection.

use std::time::Instant;

use super::CloseReason;
use super::clock::ConnectionClock;
use super::connection::{Admission, Connection, ConnectionReport, JobDone, Lifecycle, Progress};
use super::ggml_connection::GgmlConnection;
use super::tvm_connection::{ConnectionConfig, TvmConnection};
use crate::endpoint::EndpointCore;
use crate::endpoint::ggml::codec::Command;
use crate::endpoint::tvm::codec::handshake::RPC_MAGIC;
use crate::session::SessionStats;

/// The first byte of every TVM RPC connection: the low byte of its magic.
pub const TVM_FIRST_BYTE: u8 = RPC_MAGIC.to_le_bytes()[0];

/// The first byte of every ggml-RPC connection: HELLO's command number.
pub const GGML_FIRST_BYTE: u8 = Command::Hello as u8;

/// A connection whose first byte has not arrived yet.
pub struct Unidentified {
    core: EndpointCore,
    life: Lifecycle,
    config: ConnectionConfig,
    /// The admission the server set last, handed to the protocol's connection.
    match_key: Option<String>,
    refusal: Option<String>,
}

/// A served connection of any protocol.
pub enum ServedConnection {
    Unidentified(Box<Unidentified>),
    Tvm(Box<TvmConnection>),
    Ggml(Box<GgmlConnection>),
}

impl ServedConnection {
    /// A new connection, accepted `now`.
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let core = EndpointCore::new(config.endpoint.output_high_water);
        let clock = ConnectionClock::new(config.timeouts, now);
        ServedConnection::Unidentified(Box::new(Unidentified {
            core,
            life: Lifecycle::new(clock),
            match_key: Some(config.match_key.clone()),
            refusal: None,
            config,
        }))
    }

    fn get(&self) -> &dyn Connection {
        match self {
            ServedConnection::Unidentified(c) => c.as_ref(),
            ServedConnection::Tvm(c) => c.as_ref(),
            ServedConnection::Ggml(c) => c.as_ref(),
        }
    }

    fn get_mut(&mut self) -> &mut dyn Connection {
        match self {
            ServedConnection::Unidentified(c) => c.as_mut(),
            ServedConnection::Tvm(c) => c.as_mut(),
            ServedConnection::Ggml(c) => c.as_mut(),
        }
    }

    /// Becomes the connection of the protocol the first byte names, if it has arrived.
    fn identify(&mut self) {
        let ServedConnection::Unidentified(unidentified) = self else { return };
        let mut first = [0u8; 1];
        if unidentified.life.aborted() || !unidentified.core.input().peek(&mut first) {
            return;
        }
        match first[0] {
            TVM_FIRST_BYTE => {
                let core = std::mem::take(&mut unidentified.core);
                let config = unidentified.config.clone();
                let clock = unidentified.life.clock().clone();
                let mut tvm = TvmConnection::with_core(core, config, clock);
                tvm.set_admission(&unidentified.admission());
                *self = ServedConnection::Tvm(Box::new(tvm));
            }
            GGML_FIRST_BYTE => {
                let core = std::mem::take(&mut unidentified.core);
                let clock = unidentified.life.clock().clone();
                let mut ggml = GgmlConnection::with_core(core, &unidentified.config, clock);
                ggml.set_admission(&unidentified.admission());
                *self = ServedConnection::Ggml(Box::new(ggml));
            }
            byte => unidentified.life.abort(CloseReason::UnknownProtocol(byte)),
        }
    }
}

impl Unidentified {
    fn admission(&self) -> Admission<'_> {
        Admission { match_key: self.match_key.as_deref(), refusal: self.refusal.as_deref() }
    }
}

impl Connection for Unidentified {
    fn core(&self) -> &EndpointCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut EndpointCore {
        &mut self.core
    }

    fn wants_read(&self) -> bool {
        !self.life.aborted() && self.core.input().is_empty()
    }

    fn set_admission(&mut self, admission: &Admission<'_>) {
        self.match_key = admission.match_key.map(str::to_owned);
        self.refusal = admission.refusal.map(str::to_owned);
    }

    fn process(&mut self, now: Instant) -> Progress {
        self.life.observe(&self.core, now);
        Progress::Idle
    }

    fn complete(&mut self, _: JobDone, _: Instant) {
        log::error!("a connection of no protocol yet was handed a job");
    }

    fn is_finished(&self) -> bool {
        self.life.aborted()
    }

    fn handshake_done(&self) -> bool {
        false
    }

    fn report(&self) -> ConnectionReport {
        ConnectionReport {
            protocol: None,
            opened: self.life.clock().opened(),
            requests: 0,
            session: SessionStats::default(),
        }
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }
}

impl Connection for ServedConnection {
    fn core(&self) -> &EndpointCore {
        self.get().core()
    }

    fn core_mut(&mut self) -> &mut EndpointCore {
        self.get_mut().core_mut()
    }

    fn wants_read(&self) -> bool {
        self.get().wants_read()
    }

    fn set_admission(&mut self, admission: &Admission<'_>) {
        self.get_mut().set_admission(admission);
    }

    fn process(&mut self, now: Instant) -> Progress {
        self.identify();
        self.get_mut().process(now)
    }

    fn complete(&mut self, done: JobDone, now: Instant) {
        self.get_mut().complete(done, now);
    }

    fn is_finished(&self) -> bool {
        self.get().is_finished()
    }

    fn handshake_done(&self) -> bool {
        self.get().handshake_done()
    }

    fn report(&self) -> ConnectionReport {
        self.get().report()
    }

    fn lifecycle(&self) -> &Lifecycle {
        self.get().lifecycle()
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        self.get_mut().lifecycle_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tvm_magic_makes_a_tvm_connection() {
        let mut conn = ServedConnection::new(ConnectionConfig::default(), Instant::now());
        conn.core_mut().receive(&RPC_MAGIC.to_le_bytes());
        conn.process(Instant::now());
        assert!(matches!(conn, ServedConnection::Tvm(_)));
        assert!(!conn.is_finished());
    }

    #[test]
    fn an_unknown_first_byte_closes_the_connection_naming_the_byte() {
        let mut conn = ServedConnection::new(ConnectionConfig::default(), Instant::now());
        conn.core_mut().receive(b"GET / HTTP/1.1\r\n");
        conn.process(Instant::now());
        assert!(conn.is_finished());
        let reason = conn.take_close_reason().unwrap().to_string();
        assert!(reason.contains("first byte 0x47"), "{reason}");
    }

    #[test]
    fn the_admission_set_before_the_first_byte_is_the_tvm_connections() {
        use crate::endpoint::tvm::codec::handshake::encode_client_hello;
        let mut conn = ServedConnection::new(ConnectionConfig::default(), Instant::now());
        conn.set_admission(&Admission { match_key: Some("offered"), refusal: None });
        let mut hello = Vec::new();
        encode_client_hello("client:offered", &mut hello);
        conn.core_mut().receive(&hello);
        conn.process(Instant::now());
        assert!(conn.admitted());
    }

    #[test]
    fn a_silent_connection_times_out_in_its_handshake() {
        let t0 = Instant::now();
        let config = ConnectionConfig::default();
        let timeout = config.timeouts.handshake;
        let mut conn = ServedConnection::new(config, t0);
        assert_eq!(conn.poll_timeout(), Some(t0 + timeout));
        conn.handle_timeout(t0 + timeout);
        assert!(conn.is_finished());
        assert!(matches!(conn.take_close_reason(), Some(CloseReason::HandshakeTimeout)));
    }
}
