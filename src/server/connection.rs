//! One served connection with no I/O inside: an endpoint, the session InitServer created,
//! and the handshake and InitServer decisions. A mio loop (ours or a user's) moves the bytes.

use std::sync::Arc;
use std::time::Instant;

use crate::endpoint::codec::{ClientKey, HandshakeStatus, PROTOCOL_VERSION, Packet, Value};
use crate::endpoint::{Endpoint, EndpointConfig, Event, FramingError};
use crate::session::serve::{self, Outcome};
use crate::session::{
    FunctionRegistry, LocalSession, Placement, Session, SessionConfig, SessionStats,
};

use super::constructor::{RelayLimits, RelayPermit, RelayTarget, SessionPlan};

/// What every connection of a server shares.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// The key clients must present as `client:<match_key>`.
    pub match_key: String,
    /// The key we answer with, as `server:<server_key>`.
    pub server_key: String,
    pub endpoint: EndpointConfig,
    pub session: SessionConfig,
    pub registry: Arc<FunctionRegistry>,
    /// Bounds on `rpc.Connect` relays, shared by all connections of a server.
    pub relay: RelayLimits,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            match_key: String::new(),
            server_key: String::new(),
            endpoint: EndpointConfig::default(),
            session: SessionConfig::default(),
            registry: Arc::new(FunctionRegistry::with_builtins()),
            relay: RelayLimits::default(),
        }
    }
}

/// A server-side connection: feed it bytes through [`ServerConnection::endpoint`], call
/// [`ServerConnection::process`], send what the endpoint has to send.
pub struct ServerConnection {
    endpoint: Endpoint,
    session: Option<Box<dyn Session>>,
    config: ConnectionConfig,
    client_key: Option<ClientKey>,
    requests: u64,
    opened: Instant,
    job_running: bool,
    /// This connection's slot among the server's relays, while it relays.
    relay_permit: Option<RelayPermit>,
    /// The match key a client must present now; `None` refuses every key.
    match_key: Option<String>,
    /// Set while the server is full: a client whose key matches is told why it cannot have
    /// a session (an Exception in answer to InitServer) and the connection closes.
    refusal: Option<String>,
    /// Whether the handshake was accepted for a session (not refused).
    admitted: bool,
    /// When the handshake was accepted.
    admitted_at: Option<Instant>,
}

/// What [`ServerConnection::process`] leaves to its driver.
pub enum Progress {
    /// Everything buffered has been handled; wait for more input or for output to drain.
    Idle,
    /// A request to run off the event loop.
    Offload(Job),
}

/// Work to run off the event loop: a long request with the session that serves it, or the
/// connection to a relay's next hop.
pub struct Job {
    kind: JobKind,
}

enum JobKind {
    Serve { session: Box<dyn Session>, request: Packet<'static>, placement: Placement },
    Connect { target: RelayTarget, max_packet: u64, limits: RelayLimits },
}

impl Job {
    /// Where the job should run: compute work on a bounded pool, network waits elsewhere.
    pub fn placement(&self) -> Placement {
        match &self.kind {
            JobKind::Serve { placement, .. } => *placement,
            JobKind::Connect { .. } => Placement::Network,
        }
    }

    pub fn run(self) -> JobDone {
        match self.kind {
            JobKind::Serve { mut session, request, .. } => {
                let outcome = serve::execute(&mut *session, request);
                JobDone::Served { session, outcome }
            }
            JobKind::Connect { target, max_packet, limits } => {
                JobDone::Connected(target.connect(max_packet, &limits))
            }
        }
    }
}

/// A finished [`Job`], to hand back with [`ServerConnection::complete`].
pub enum JobDone {
    #[doc(hidden)]
    Served { session: Box<dyn Session>, outcome: Outcome },
    #[doc(hidden)]
    Connected(Result<Box<dyn Session>, String>),
}

impl ServerConnection {
    pub fn new(config: ConnectionConfig) -> Self {
        ServerConnection {
            endpoint: Endpoint::server(config.endpoint.clone()),
            session: None,
            client_key: None,
            requests: 0,
            opened: Instant::now(),
            job_running: false,
            relay_permit: None,
            match_key: Some(config.match_key.clone()),
            refusal: None,
            admitted: false,
            admitted_at: None,
            config,
        }
    }

    /// Changes the match key a client must present (before the handshake; a tracker hands
    /// out a fresh key for every session). `None` refuses every key.
    pub fn set_match_key(&mut self, key: Option<&str>) {
        if self.match_key.as_deref() != key {
            self.match_key = key.map(str::to_owned);
        }
    }

    /// While `Some`, a client whose key matches is refused a session with this message
    /// (as an Exception in answer to its InitServer, which TVM's client raises with the
    /// message); the connection then closes. Only the handshake is affected.
    pub fn set_refusal(&mut self, message: Option<String>) {
        self.refusal = message;
    }

    /// Whether the client's handshake was accepted for a session.
    pub fn admitted(&self) -> bool {
        self.admitted
    }

    /// When the client's handshake was accepted for a session.
    pub fn admitted_at(&self) -> Option<Instant> {
        self.admitted_at
    }

    /// Whether the handshake is over (accepted, refused or rejected).
    pub fn handshake_done(&self) -> bool {
        self.client_key.is_some()
    }

    pub fn endpoint(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    pub fn endpoint_ref(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The key the client presented, once the handshake has happened.
    pub fn client_key(&self) -> Option<&ClientKey> {
        self.client_key.as_ref()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn opened(&self) -> Instant {
        self.opened
    }

    pub fn session_stats(&self) -> SessionStats {
        self.session.as_ref().map(|s| s.stats()).unwrap_or_default()
    }

    /// Whether the connection is over and its output handed out: close it.
    pub fn is_finished(&self) -> bool {
        self.endpoint.is_finished()
    }

    /// Whether a request is running off the loop (its [`Job`] not yet completed).
    pub fn job_running(&self) -> bool {
        self.job_running
    }

    /// Hands back a finished [`Job`]: the session returns and the reply is written.
    pub fn complete(&mut self, done: JobDone) {
        self.job_running = false;
        match done {
            JobDone::Served { mut session, outcome } => {
                serve::deliver(&mut self.endpoint, &mut *session, outcome);
                self.session = Some(session);
            }
            JobDone::Connected(Ok(session)) => {
                self.session = Some(session);
                self.reply(&Packet::return_void());
            }
            JobDone::Connected(Err(message)) => {
                self.relay_permit = None;
                self.reply(&Packet::Exception(message));
            }
        }
    }

    /// Handles every event the buffered input allows. A request that runs long comes back
    /// as [`Progress::Offload`]: run the job anywhere, then [`ServerConnection::complete`]
    /// it; until then the connection waits (TVM's WaitForAsyncCallback) and later requests
    /// stay buffered, in order. `Err` means framing is lost; the endpoint then finishes once
    /// its output is flushed.
    pub fn process(&mut self) -> Result<Progress, FramingError> {
        loop {
            let Some(event) = self.endpoint.poll_event()? else {
                return Ok(Progress::Idle);
            };
            match event {
                Event::ClientHello(key) => {
                    if self.match_key.as_deref().is_some_and(|m| key.matches(m)) {
                        self.endpoint.accept(&self.config.server_key);
                        if self.refusal.is_none() {
                            self.admitted = true;
                            self.admitted_at = Some(Instant::now());
                        }
                    } else {
                        log::warn!("refused client key {:?}", key.raw);
                        self.endpoint.reject(HandshakeStatus::Mismatch);
                    }
                    self.client_key = Some(key);
                }
                Event::Request(Packet::InitServer { .. }) if !self.admitted => {
                    let message = self.refusal.clone().unwrap_or_else(|| "no session".into());
                    log::warn!("refused a session: {message}");
                    self.reply(&Packet::Exception(message));
                    self.endpoint.close();
                    return Ok(Progress::Idle);
                }
                Event::Request(Packet::InitServer { version, args }) => {
                    self.requests += 1;
                    match self.init_server(&version, &args) {
                        Ok(SessionPlan::Local) => self.reply(&Packet::return_void()),
                        Ok(SessionPlan::Relay(target)) => match self.config.relay.acquire() {
                            Ok(permit) => {
                                self.relay_permit = Some(permit);
                                self.job_running = true;
                                let max_packet = self.config.endpoint.max_packet;
                                let limits = self.config.relay.clone();
                                let kind = JobKind::Connect { target, max_packet, limits };
                                return Ok(Progress::Offload(Job { kind }));
                            }
                            Err(message) => self.reply(&Packet::Exception(message)),
                        },
                        Err(message) => self.reply(&Packet::Exception(message)),
                    }
                }
                Event::Request(request) => {
                    self.requests += 1;
                    let placement =
                        self.session.as_ref().map_or(Placement::Inline, |s| s.placement(&request));
                    if placement != Placement::Inline
                        && let Some(session) = self.session.take()
                    {
                        self.job_running = true;
                        let request = request.into_owned();
                        let kind = JobKind::Serve { session, request, placement };
                        return Ok(Progress::Offload(Job { kind }));
                    }
                    match self.session.as_deref_mut() {
                        Some(session) => {
                            let outcome = serve::execute(session, request);
                            serve::deliver(&mut self.endpoint, session, outcome);
                        }
                        None => {
                            let code = request.code().name();
                            let outcome = Outcome::Reply(Packet::Exception(format!(
                                "{code} before InitServer: the session is not initialized"
                            )));
                            self.reply_outcome(outcome);
                        }
                    }
                }
                Event::Rejected(error) => log::debug!("rejected packet: {error}"),
                Event::Shutdown => {}
                // A server endpoint reports none of these; ignore rather than trust that.
                Event::Connected { .. }
                | Event::Return(_)
                | Event::Exception(_)
                | Event::CopyAck(_) => log::error!("client event on a server connection"),
            }
        }
    }

    /// [`ServerConnection::process`] for drivers without threads: long requests run here,
    /// on the caller's thread.
    pub fn process_inline(&mut self) -> Result<(), FramingError> {
        while let Progress::Offload(job) = self.process()? {
            self.complete(job.run());
        }
        Ok(())
    }

    fn reply(&mut self, packet: &Packet<'_>) {
        if let Err(e) = self.endpoint.reply(packet) {
            log::error!("reply dropped: {e}");
        }
    }

    fn reply_outcome(&mut self, outcome: Outcome) {
        if let Outcome::Reply(packet) = outcome {
            self.reply(&packet);
        }
    }

    /// Checks InitServer and creates a local session right away; a relay's session is
    /// created by a [`Job`], since connecting to the next hop blocks.
    fn init_server(&mut self, version: &str, args: &[Value]) -> Result<SessionPlan, String> {
        if self.session.is_some() {
            return Err("InitServer: the server has already been initialized".into());
        }
        if version != PROTOCOL_VERSION {
            return Err(format!(
                "InitServer: client protocol version {version:?} does not match the server's \
                 {PROTOCOL_VERSION:?}"
            ));
        }
        let plan = SessionPlan::parse(args)?;
        if plan == SessionPlan::Local {
            let session =
                LocalSession::new(Arc::clone(&self.config.registry), self.config.session.clone());
            self.session = Some(Box::new(session));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::codec::handshake::encode_client_hello;
    use crate::endpoint::codec::{DataType, Syscall, TensorRecord};

    fn frame(packet: &Packet<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        packet.encode_frame(&mut out);
        out
    }

    fn init_server() -> Packet<'static> {
        Packet::InitServer { version: PROTOCOL_VERSION.into(), args: vec![] }
    }

    /// A connection past handshake and InitServer, whose registry has `slow` (cost 1e9).
    fn initialized() -> ServerConnection {
        let mut registry = FunctionRegistry::with_builtins();
        registry.register_with_cost("slow", |_| 1_000_000_000, |_, _| Ok(Value::Int(7)));
        let config = ConnectionConfig { registry: Arc::new(registry), ..Default::default() };
        let mut conn = ServerConnection::new(config);
        let mut hello = Vec::new();
        encode_client_hello("client:", &mut hello);
        conn.endpoint().receive(&hello);
        conn.endpoint().receive(&frame(&init_server()));
        assert!(matches!(conn.process(), Ok(Progress::Idle)));
        conn.endpoint().take_output();
        conn
    }

    fn call(conn: &mut ServerConnection, name: &str, args: Vec<Value>) -> Vec<u8> {
        conn.endpoint()
            .receive(&frame(&Packet::Syscall(Syscall::GetGlobalFunc { name: name.into() })));
        conn.process_inline().unwrap();
        let reply = conn.endpoint().take_output();
        let handle = u64::from_le_bytes(reply[20..28].try_into().unwrap());
        frame(&Packet::CallFunc { function: handle, args })
    }

    #[test]
    fn request_before_init_server_gets_an_exception() {
        let mut conn = ServerConnection::new(ConnectionConfig::default());
        let mut hello = Vec::new();
        encode_client_hello("client:", &mut hello);
        conn.endpoint().receive(&hello);
        conn.endpoint()
            .receive(&frame(&Packet::Syscall(Syscall::GetGlobalFunc { name: "x".into() })));
        conn.process().unwrap();
        let out = conn.endpoint().take_output();
        let expected = frame(&Packet::Exception(
            "GetGlobalFunc before InitServer: the session is not initialized".into(),
        ));
        assert!(out.ends_with(&expected));
    }

    #[test]
    fn second_init_server_gets_an_exception() {
        let mut conn = initialized();
        conn.endpoint().receive(&frame(&init_server()));
        conn.process().unwrap();
        let expected =
            frame(&Packet::Exception("InitServer: the server has already been initialized".into()));
        assert_eq!(conn.endpoint().take_output(), expected);
    }

    #[test]
    fn wrong_protocol_version_gets_an_exception() {
        let mut conn = ServerConnection::new(ConnectionConfig::default());
        let mut hello = Vec::new();
        encode_client_hello("client:", &mut hello);
        conn.endpoint().receive(&hello);
        conn.endpoint()
            .receive(&frame(&Packet::InitServer { version: "0.7.0".into(), args: vec![] }));
        conn.process().unwrap();
        let expected = frame(&Packet::Exception(
            "InitServer: client protocol version \"0.7.0\" does not match the server's \"0.8.0\""
                .into(),
        ));
        assert!(conn.endpoint().take_output().ends_with(&expected));
    }

    #[test]
    fn wrong_key_is_refused_with_mismatch() {
        let config = ConnectionConfig { match_key: "mine".into(), ..Default::default() };
        let mut conn = ServerConnection::new(config);
        let mut hello = Vec::new();
        encode_client_hello("client:yours", &mut hello);
        conn.endpoint().receive(&hello);
        conn.process().unwrap();
        assert_eq!(conn.endpoint().take_output(), 0xFF273i32.to_le_bytes());
        assert!(conn.is_finished());
    }

    #[test]
    fn full_server_answers_init_server_with_its_refusal_and_closes() {
        let mut conn = ServerConnection::new(ConnectionConfig::default());
        conn.set_refusal(Some("busy: 64 sessions".into()));
        let mut hello = Vec::new();
        encode_client_hello("client:", &mut hello);
        conn.endpoint().receive(&hello);
        conn.endpoint().receive(&frame(&init_server()));
        conn.process().unwrap();
        assert!(!conn.admitted());
        let out = conn.endpoint().take_output();
        assert!(out.starts_with(&0xFF271i32.to_le_bytes()), "the handshake succeeds");
        assert!(out.ends_with(&frame(&Packet::Exception("busy: 64 sessions".into()))));
        assert!(conn.is_finished());
    }

    #[test]
    fn match_key_set_after_creation_is_the_one_required() {
        let mut conn = ServerConnection::new(ConnectionConfig::default());
        conn.set_match_key(Some("pool:0.25"));
        let mut hello = Vec::new();
        encode_client_hello("client:pool:0.25 -timeout=3", &mut hello);
        conn.endpoint().receive(&hello);
        conn.process().unwrap();
        assert!(conn.admitted());
        assert_eq!(conn.client_key().unwrap().timeout, Some(std::time::Duration::from_secs(3)));

        let mut other = ServerConnection::new(ConnectionConfig::default());
        other.set_match_key(None);
        let mut hello = Vec::new();
        encode_client_hello("client:", &mut hello);
        other.endpoint().receive(&hello);
        other.process().unwrap();
        assert!(!other.admitted());
        assert_eq!(other.endpoint().take_output(), 0xFF273i32.to_le_bytes());
    }

    #[test]
    fn long_call_is_offloaded_and_later_requests_wait_for_it() {
        let mut conn = initialized();
        let slow = call(&mut conn, "slow", vec![]);
        let echo = call(&mut conn, "testing.echo", vec![Value::Int(1)]);
        conn.endpoint().receive(&slow);
        conn.endpoint().receive(&echo);
        let Ok(Progress::Offload(job)) = conn.process() else { panic!("expected a job") };
        assert!(conn.job_running());
        assert!(matches!(conn.process(), Ok(Progress::Idle)), "echo waits behind the job");
        assert!(conn.endpoint().take_output().is_empty());
        conn.complete(job.run());
        conn.process().unwrap();
        let out = conn.endpoint().take_output();
        let mut expected = frame(&Packet::call_return(Value::Int(7)));
        expected.extend(frame(&Packet::call_return(Value::Int(1))));
        assert_eq!(out, expected);
    }

    #[test]
    fn copy_from_remote_beyond_the_tensor_is_refused_without_reserving_its_bytes() {
        let mut conn = initialized();
        let mut record = TensorRecord::unallocated_cpu(DataType::FLOAT32, &[4]);
        let alloc = Syscall::DevAllocDataWithScope { tensor: record.clone(), scope: None };
        conn.endpoint().receive(&frame(&Packet::Syscall(alloc)));
        conn.process_inline().unwrap();
        let reply = conn.endpoint().take_output();
        record.data = u64::from_le_bytes(reply[20..28].try_into().unwrap());
        let before = conn.endpoint_ref().buffer_capacity();
        let copy = Packet::CopyFromRemote { source: record, nbytes: 32 << 20 };
        conn.endpoint().receive(&frame(&copy));
        conn.process_inline().unwrap();
        let expected = frame(&Packet::Exception(
            "copy of 33554432 bytes exceeds the 16 bytes of a float32 tensor of shape [4]".into(),
        ));
        assert_eq!(conn.endpoint().take_output(), expected);
        assert_eq!(conn.endpoint_ref().buffer_capacity(), before, "no buffer grew");
    }

    #[test]
    fn short_calls_run_inline() {
        let mut conn = initialized();
        let echo = call(&mut conn, "testing.echo", vec![Value::Int(1)]);
        conn.endpoint().receive(&echo);
        assert!(matches!(conn.process(), Ok(Progress::Idle)));
        assert_eq!(conn.endpoint().take_output(), frame(&Packet::call_return(Value::Int(1))));
    }
}
