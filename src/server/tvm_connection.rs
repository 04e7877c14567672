//! One TVM RPC connection with no I/O inside: an endpoint, the session InitServer created,
//! the handshake and InitServer decisions, and its timers. A mio loop (ours or a user's)
//! moves the bytes and passes the time in.

use std::sync::Arc;
use std::time::Instant;

use super::clock::{ConnectionClock, Timeouts};
use super::connection::{
    Admission, Connection, ConnectionReport, Job, JobDone, Lifecycle, Progress,
};
use super::constructor::{RelayLimits, RelayPermit, SessionPlan};
use super::{CloseReason, ServerError};
use crate::endpoint::EndpointCore;
use crate::endpoint::ggml::GgmlEndpointConfig;
use crate::endpoint::tvm::codec::{ClientKey, HandshakeStatus, PROTOCOL_VERSION, Packet, Value};
use crate::endpoint::tvm::{EndpointConfig, ServerEndpoint, ServerEvent};
use crate::session::ggml::{GgmlSessionConfig, TensorCache};
use crate::session::serve::{self, Outcome};
use crate::session::{
    FunctionRegistry, LocalSession, Placement, Session, SessionConfig, SessionStats, Work,
};

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
    pub timeouts: Timeouts,
    /// What ggml-RPC connections of the server share.
    pub ggml: GgmlConfig,
}

/// Settings of ggml-RPC connections beyond those they share with TVM's (memory limit,
/// server-wide figures, GEMM backend, timeouts).
#[derive(Debug, Clone, Default)]
pub struct GgmlConfig {
    pub endpoint: GgmlEndpointConfig,
    /// The tensor cache of `--cache`.
    pub cache: Option<Arc<TensorCache>>,
}

impl ConnectionConfig {
    /// The settings of a ggml-RPC session of this server.
    pub fn ggml_session(&self) -> GgmlSessionConfig {
        GgmlSessionConfig {
            memory_limit: self.session.memory_limit,
            max_buffers: self.session.max_handles,
            usage: Arc::clone(&self.session.usage),
            gemm_backend: self.session.gemm_backend,
            cache: self.ggml.cache.clone(),
        }
    }
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
            timeouts: Timeouts::default(),
            ggml: GgmlConfig::default(),
        }
    }
}

/// A server-side TVM connection: feed it bytes through its [`EndpointCore`], call
/// [`Connection::process`], send what the core has to send.
pub struct TvmConnection {
    endpoint: ServerEndpoint,
    session: Option<Box<dyn Session>>,
    config: ConnectionConfig,
    life: Lifecycle,
    client_key: Option<ClientKey>,
    requests: u64,
    /// This connection's slot among the server's relays, while it relays.
    relay_permit: Option<RelayPermit>,
    /// The match key a client must present now; `None` refuses every key.
    match_key: Option<String>,
    /// Set while the server is full: a client whose key matches is told why it cannot have
    /// a session (an Exception in answer to InitServer) and the connection closes.
    refusal: Option<String>,
}

/// What a TVM job hands back.
enum TvmJobDone {
    Served { session: Box<dyn Session>, outcome: Outcome },
    Connected(Result<Box<dyn Session>, ServerError>),
}

impl TvmConnection {
    /// A connection accepted `now`.
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let core = EndpointCore::new(config.endpoint.output_high_water);
        let clock = ConnectionClock::new(config.timeouts, now);
        Self::with_core(core, config, clock)
    }

    /// A connection whose first bytes are already in `core` (the server read them to tell
    /// the protocol), its timers running since it was accepted.
    pub fn with_core(core: EndpointCore, config: ConnectionConfig, clock: ConnectionClock) -> Self {
        TvmConnection {
            endpoint: ServerEndpoint::server_with_core(core, config.endpoint.clone()),
            session: None,
            life: Lifecycle::new(clock),
            client_key: None,
            requests: 0,
            relay_permit: None,
            match_key: Some(config.match_key.clone()),
            refusal: None,
            config,
        }
    }

    pub fn endpoint(&mut self) -> &mut ServerEndpoint {
        &mut self.endpoint
    }

    pub fn endpoint_ref(&self) -> &ServerEndpoint {
        &self.endpoint
    }

    /// The key the client presented, once the handshake has happened.
    pub fn client_key(&self) -> Option<&ClientKey> {
        self.client_key.as_ref()
    }

    /// When the client's handshake was accepted for a session.
    pub fn admitted_at(&self) -> Option<Instant> {
        self.life.clock().admitted_at()
    }

    pub fn session_stats(&self) -> SessionStats {
        self.session.as_ref().map(|s| s.stats()).unwrap_or_default()
    }

    /// [`Connection::process`] for drivers without threads: long requests run here, on the
    /// caller's thread. `Err` if the connection ended for a reason of its own (framing lost):
    /// it finishes once its output is flushed.
    pub fn process_inline(&mut self, now: Instant) -> Result<(), CloseReason> {
        while let Progress::Offload(job) = self.process(now) {
            self.complete(job.run(), now);
        }
        self.life.take_close_reason().map_or(Ok(()), Err)
    }

    fn reply(&mut self, packet: &Packet<'_>) {
        if let Err(e) = self.endpoint.reply(packet) {
            log::error!("reply dropped: {e}");
        }
    }

    fn exception(&mut self, error: impl std::fmt::Display) {
        self.reply(&Packet::Exception(error.to_string()));
    }

    fn on_client_hello(&mut self, key: ClientKey, now: Instant) {
        if self.match_key.as_deref().is_some_and(|m| key.matches(m)) {
            if self.endpoint.accept(&self.config.server_key).is_err() {
                log::error!("handshake accepted outside its decision");
            }
            if self.refusal.is_none() {
                self.life.admit(now, key.timeout);
            }
        } else {
            log::warn!("refused client key {:?}", key.raw);
            self.endpoint.reject(HandshakeStatus::Mismatch);
        }
        self.client_key = Some(key);
    }

    /// Handles InitServer; a relay's first hop comes back as a job, since connecting blocks.
    fn on_init_server(&mut self, version: &str, args: &[Value]) -> Option<Job> {
        match self.init_server(version, args) {
            Ok(SessionPlan::Local) => self.reply(&Packet::return_void()),
            Ok(SessionPlan::Relay(target)) => match self.config.relay.acquire() {
                Ok(permit) => {
                    self.relay_permit = Some(permit);
                    self.life.job_started();
                    let max_packet = self.config.endpoint.max_packet;
                    let limits = self.config.relay.clone();
                    return Some(Job::new(Placement::Network, move || {
                        JobDone::new(TvmJobDone::Connected(target.connect(max_packet, &limits)))
                    }));
                }
                Err(error) => self.exception(error),
            },
            Err(error) => self.exception(error),
        }
        None
    }

    /// Checks InitServer and creates a local session right away; a relay's session is
    /// created by a [`Job`], since connecting to the next hop blocks.
    fn init_server(&mut self, version: &str, args: &[Value]) -> Result<SessionPlan, ServerError> {
        if self.session.is_some() {
            return Err(ServerError::AlreadyInitialized);
        }
        if version != PROTOCOL_VERSION {
            return Err(ServerError::VersionMismatch { client: version.to_owned() });
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

impl Connection for TvmConnection {
    fn core(&self) -> &EndpointCore {
        self.endpoint.core()
    }

    fn core_mut(&mut self) -> &mut EndpointCore {
        self.endpoint.core_mut()
    }

    fn wants_read(&self) -> bool {
        self.endpoint.wants_read()
    }

    /// Changes the match key a client must present and the refusal a full server gives;
    /// only the handshake is affected (a tracker hands out a fresh key for every session).
    fn set_admission(&mut self, admission: &Admission<'_>) {
        if self.match_key.as_deref() != admission.match_key {
            self.match_key = admission.match_key.map(str::to_owned);
        }
        self.refusal = admission.refusal.map(str::to_owned);
    }

    fn process(&mut self, now: Instant) -> Progress {
        self.life.observe(self.endpoint.core(), now);
        loop {
            // A broken stream ends the connection once its output is flushed.
            let Some(event) = self.life.event(self.endpoint.poll_event()) else {
                return Progress::Idle;
            };
            match event {
                ServerEvent::ClientHello(key) => self.on_client_hello(key, now),
                ServerEvent::Request(Packet::InitServer { .. }) if !self.life.admitted() => {
                    let message = self.refusal.clone().unwrap_or_else(|| "no session".into());
                    log::warn!("refused a session: {message}");
                    self.reply(&Packet::Exception(message));
                    self.endpoint.close();
                    return Progress::Idle;
                }
                ServerEvent::Request(Packet::InitServer { version, args }) => {
                    self.requests += 1;
                    if let Some(job) = self.on_init_server(&version, &args) {
                        return Progress::Offload(job);
                    }
                }
                // Served here rather than in a method: the request borrows the endpoint's
                // input, and its reply goes to the endpoint's output.
                ServerEvent::Request(request) => {
                    self.requests += 1;
                    let Some(session) = self.session.as_deref_mut() else {
                        let request = request.code().name();
                        self.exception(ServerError::NotInitialized { request });
                        continue;
                    };
                    let prepared = session.prepare(request);
                    if prepared.placement == Placement::Inline {
                        let outcome = serve::execute(session, prepared.work);
                        serve::deliver(&mut self.endpoint, session, outcome);
                        continue;
                    }
                    let work: Work<'static> = prepared.work.into_owned();
                    let Some(mut session) = self.session.take() else { continue };
                    self.life.job_started();
                    return Progress::Offload(Job::new(prepared.placement, move || {
                        let outcome = serve::execute(&mut *session, work);
                        JobDone::new(TvmJobDone::Served { session, outcome })
                    }));
                }
                ServerEvent::Rejected(error) => log::debug!("rejected packet: {error}"),
                ServerEvent::Shutdown => {}
            }
        }
    }

    /// Hands back a finished job: the session returns and the reply is written.
    fn complete(&mut self, done: JobDone, now: Instant) {
        self.life.job_done(now);
        match done.downcast::<TvmJobDone>() {
            Ok(TvmJobDone::Served { mut session, outcome }) => {
                serve::deliver(&mut self.endpoint, &mut *session, outcome);
                self.session = Some(session);
            }
            Ok(TvmJobDone::Connected(Ok(session))) => {
                self.session = Some(session);
                self.reply(&Packet::return_void());
            }
            Ok(TvmJobDone::Connected(Err(error))) => {
                self.relay_permit = None;
                self.exception(error);
            }
            Err(_) => {
                log::error!("a TVM connection was handed another protocol's job");
                self.life.abort(CloseReason::InternalError);
            }
        }
    }

    fn is_finished(&self) -> bool {
        self.life.aborted() || self.endpoint.is_finished()
    }

    fn handshake_done(&self) -> bool {
        self.client_key.is_some()
    }

    fn report(&self) -> ConnectionReport {
        ConnectionReport {
            protocol: Some("TVM"),
            opened: self.life.clock().opened(),
            requests: self.requests,
            session: self.session_stats(),
        }
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::endpoint::tvm::codec::handshake::encode_client_hello;
    use crate::endpoint::tvm::codec::{DataType, Syscall, TensorRecord};
    use crate::session::PreparedBody;

    fn frame(packet: &Packet<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        packet.encode_frame(&mut out);
        out
    }

    fn hello(key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_client_hello(key, &mut out);
        out
    }

    fn init_server() -> Packet<'static> {
        Packet::InitServer { version: PROTOCOL_VERSION.into(), args: vec![] }
    }

    /// A connection opened at `now` that has received `bytes`, processed at `now`.
    fn fed(config: ConnectionConfig, now: Instant, bytes: &[&[u8]]) -> TvmConnection {
        let mut conn = TvmConnection::new(config, now);
        for b in bytes {
            conn.endpoint().receive(b);
        }
        let _ = conn.process_inline(now);
        conn
    }

    /// A connection past handshake and InitServer, whose registry has `slow` (cost 1e9).
    fn initialized(now: Instant) -> TvmConnection {
        let mut registry = FunctionRegistry::with_builtins();
        registry.register_prepared("slow", |_| {
            Ok(PreparedBody::new(1_000_000_000, |_, _| Ok(Value::Int(7))))
        });
        let config = ConnectionConfig { registry: Arc::new(registry), ..Default::default() };
        let mut conn = fed(config, now, &[&hello("client:"), &frame(&init_server())]);
        conn.endpoint().take_output();
        conn
    }

    fn call(conn: &mut TvmConnection, name: &str, args: Vec<Value>) -> Vec<u8> {
        conn.endpoint()
            .receive(&frame(&Packet::Syscall(Syscall::GetGlobalFunc { name: name.into() })));
        conn.process_inline(Instant::now()).unwrap();
        let reply = conn.endpoint().take_output();
        let handle = u64::from_le_bytes(reply[20..28].try_into().unwrap());
        frame(&Packet::CallFunc { function: handle, args })
    }

    #[test]
    fn request_before_init_server_gets_an_exception() {
        let get = frame(&Packet::Syscall(Syscall::GetGlobalFunc { name: "x".into() }));
        let mut conn = fed(ConnectionConfig::default(), Instant::now(), &[&hello("client:"), &get]);
        let expected = frame(&Packet::Exception(
            "GetGlobalFunc before InitServer: the session is not initialized".into(),
        ));
        assert!(conn.endpoint().take_output().ends_with(&expected));
    }

    #[test]
    fn second_init_server_gets_an_exception() {
        let mut conn = initialized(Instant::now());
        conn.endpoint().receive(&frame(&init_server()));
        conn.process(Instant::now());
        let expected =
            frame(&Packet::Exception("InitServer: the server has already been initialized".into()));
        assert_eq!(conn.endpoint().take_output(), expected);
    }

    #[test]
    fn wrong_protocol_version_gets_an_exception() {
        let init = frame(&Packet::InitServer { version: "0.7.0".into(), args: vec![] });
        let mut conn =
            fed(ConnectionConfig::default(), Instant::now(), &[&hello("client:"), &init]);
        let expected = frame(&Packet::Exception(
            "InitServer: client protocol version \"0.7.0\" does not match the server's \"0.8.0\""
                .into(),
        ));
        assert!(conn.endpoint().take_output().ends_with(&expected));
    }

    #[test]
    fn wrong_key_is_refused_with_mismatch() {
        let config = ConnectionConfig { match_key: "mine".into(), ..Default::default() };
        let mut conn = fed(config, Instant::now(), &[&hello("client:yours")]);
        assert_eq!(conn.endpoint().take_output(), 0xFF273i32.to_le_bytes());
        assert!(conn.is_finished());
    }

    #[test]
    fn full_server_answers_init_server_with_its_refusal_and_closes() {
        let mut conn = TvmConnection::new(ConnectionConfig::default(), Instant::now());
        conn.set_admission(&Admission { match_key: Some(""), refusal: Some("busy: 64 sessions") });
        conn.endpoint().receive(&hello("client:"));
        conn.endpoint().receive(&frame(&init_server()));
        conn.process(Instant::now());
        assert!(!conn.admitted());
        let out = conn.endpoint().take_output();
        assert!(out.starts_with(&0xFF271i32.to_le_bytes()), "the handshake succeeds");
        assert!(out.ends_with(&frame(&Packet::Exception("busy: 64 sessions".into()))));
        assert!(conn.is_finished());
    }

    #[test]
    fn match_key_set_after_creation_is_the_one_required() {
        let mut conn = TvmConnection::new(ConnectionConfig::default(), Instant::now());
        conn.set_admission(&Admission { match_key: Some("pool:0.25"), refusal: None });
        conn.endpoint().receive(&hello("client:pool:0.25 -timeout=3"));
        conn.process(Instant::now());
        assert!(conn.admitted());
        assert_eq!(conn.client_key().unwrap().timeout, Some(Duration::from_secs(3)));

        let mut other = TvmConnection::new(ConnectionConfig::default(), Instant::now());
        other.set_admission(&Admission { match_key: None, refusal: None });
        other.endpoint().receive(&hello("client:"));
        other.process(Instant::now());
        assert!(!other.admitted());
        assert_eq!(other.endpoint().take_output(), 0xFF273i32.to_le_bytes());
    }

    #[test]
    fn long_call_is_offloaded_and_later_requests_wait_for_it() {
        let now = Instant::now();
        let mut conn = initialized(now);
        let slow = call(&mut conn, "slow", vec![]);
        let echo = call(&mut conn, "testing.echo", vec![Value::Int(1)]);
        conn.endpoint().receive(&slow);
        conn.endpoint().receive(&echo);
        let Progress::Offload(job) = conn.process(now) else { panic!("expected a job") };
        assert_eq!(job.placement(), Placement::Compute);
        assert!(conn.job_running());
        assert!(matches!(conn.process(now), Progress::Idle), "echo waits behind the job");
        assert!(conn.endpoint().take_output().is_empty());
        conn.complete(job.run(), now);
        conn.process(now);
        let out = conn.endpoint().take_output();
        let mut expected = frame(&Packet::call_return(Value::Int(7)));
        expected.extend(frame(&Packet::call_return(Value::Int(1))));
        assert_eq!(out, expected);
    }

    #[test]
    fn copy_from_remote_beyond_the_tensor_is_refused_without_reserving_its_bytes() {
        let mut conn = initialized(Instant::now());
        let mut record = TensorRecord::unallocated_cpu(DataType::FLOAT32, &[4]);
        let alloc = Syscall::DevAllocDataWithScope { tensor: record.clone(), scope: None };
        conn.endpoint().receive(&frame(&Packet::Syscall(alloc)));
        conn.process_inline(Instant::now()).unwrap();
        let reply = conn.endpoint().take_output();
        record.data = u64::from_le_bytes(reply[20..28].try_into().unwrap());
        let before = conn.core().buffer_capacity();
        let copy = Packet::CopyFromRemote { source: record, nbytes: 32 << 20 };
        conn.endpoint().receive(&frame(&copy));
        conn.process_inline(Instant::now()).unwrap();
        let expected = frame(&Packet::Exception(
            "copy of 33554432 bytes exceeds the 16 bytes of a float32 tensor of shape [4]".into(),
        ));
        assert_eq!(conn.endpoint().take_output(), expected);
        assert_eq!(conn.core().buffer_capacity(), before, "no buffer grew");
    }

    #[test]
    fn short_calls_run_inline() {
        let now = Instant::now();
        let mut conn = initialized(now);
        let echo = call(&mut conn, "testing.echo", vec![Value::Int(1)]);
        conn.endpoint().receive(&echo);
        assert!(matches!(conn.process(now), Progress::Idle));
        assert_eq!(conn.endpoint().take_output(), frame(&Packet::call_return(Value::Int(1))));
    }

    fn with_timeouts(handshake: u64, idle: Option<u64>) -> ConnectionConfig {
        let timeouts = Timeouts {
            handshake: Duration::from_secs(handshake),
            idle: idle.map(Duration::from_secs),
        };
        ConnectionConfig { timeouts, ..Default::default() }
    }

    #[test]
    fn handshake_timeout_closes_a_connection_that_never_sends_its_key() {
        let t0 = Instant::now();
        let mut conn = fed(with_timeouts(5, None), t0, &[&0x71u8.to_le_bytes()]);
        assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        conn.handle_timeout(t0 + Duration::from_secs(4));
        assert!(!conn.is_finished());
        conn.handle_timeout(t0 + Duration::from_secs(5));
        assert!(conn.is_finished());
        assert!(matches!(conn.take_close_reason(), Some(CloseReason::HandshakeTimeout)));
    }

    #[test]
    fn idle_timeout_closes_a_session_in_which_nothing_moves() {
        let t0 = Instant::now();
        let mut conn = fed(with_timeouts(5, Some(60)), t0, &[&hello("client:")]);
        conn.endpoint().take_output();
        // A request at t0 + 30 s moves the idle deadline.
        conn.endpoint().receive(&frame(&init_server()));
        conn.process(t0 + Duration::from_secs(30));
        assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(90)));
        conn.handle_timeout(t0 + Duration::from_secs(89));
        assert!(!conn.is_finished());
        conn.handle_timeout(t0 + Duration::from_secs(90));
        assert!(conn.is_finished());
        let reason = conn.take_close_reason().unwrap().to_string();
        assert_eq!(reason, "idle timeout (60 s)");
    }

    #[test]
    fn a_session_is_not_idle_while_its_job_runs() {
        let t0 = Instant::now();
        let config = with_timeouts(5, Some(60));
        let mut conn = TvmConnection::new(ConnectionConfig { ..config }, t0);
        let mut registry = FunctionRegistry::with_builtins();
        registry.register_prepared("slow", |_| {
            Ok(PreparedBody::new(u64::MAX, |_, _| Ok(Value::Int(7))))
        });
        conn.config.registry = Arc::new(registry);
        conn.endpoint().receive(&hello("client:"));
        conn.endpoint().receive(&frame(&init_server()));
        conn.process(t0);
        conn.endpoint().take_output();
        let slow = call(&mut conn, "slow", vec![]);
        conn.endpoint().receive(&slow);
        let Progress::Offload(job) = conn.process(t0) else { panic!("expected a job") };
        assert_eq!(conn.poll_timeout(), None, "no timer runs while the job does");
        conn.handle_timeout(t0 + Duration::from_secs(3600));
        assert!(!conn.is_finished());
        conn.complete(job.run(), t0 + Duration::from_secs(3600));
        assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(3660)));
    }

    #[test]
    fn the_clients_timeout_ends_its_session() {
        let t0 = Instant::now();
        let mut conn = fed(with_timeouts(5, None), t0, &[&hello("client: -timeout=3")]);
        assert!(conn.admitted());
        assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        conn.handle_timeout(t0 + Duration::from_secs(3));
        assert!(conn.is_finished());
        let reason = conn.take_close_reason().unwrap().to_string();
        assert_eq!(reason, "session timeout (the client's -timeout=3)");
    }

    #[test]
    fn lost_framing_is_the_close_reason() {
        let config = ConnectionConfig {
            endpoint: EndpointConfig { max_packet: 1024, ..Default::default() },
            ..Default::default()
        };
        let mut conn = TvmConnection::new(config, Instant::now());
        conn.endpoint().receive(&hello("client:"));
        conn.endpoint().receive(&(1u64 << 40).to_le_bytes());
        conn.process(Instant::now());
        conn.endpoint().take_output();
        assert!(conn.is_finished(), "finished once the handshake reply is out");
        let reason = conn.take_close_reason().unwrap().to_string();
        assert!(reason.contains("exceeds the maximum of 1024"), "{reason}");
    }
}
