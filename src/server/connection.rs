//! One served connection with no I/O inside: an endpoint, the session InitServer created,
//! and the handshake and InitServer decisions. A mio loop (ours or a user's) moves the bytes.

use std::sync::Arc;
use std::time::Instant;

use crate::endpoint::codec::{ClientKey, HandshakeStatus, PROTOCOL_VERSION, Packet, Value};
use crate::endpoint::{Endpoint, EndpointConfig, Event, FramingError};
use crate::session::serve::{self, Outcome};
use crate::session::{FunctionRegistry, LocalSession, Session, SessionConfig, SessionStats};

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
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            match_key: String::new(),
            server_key: String::new(),
            endpoint: EndpointConfig::default(),
            session: SessionConfig::default(),
            registry: Arc::new(FunctionRegistry::with_builtins()),
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
}

impl ServerConnection {
    pub fn new(config: ConnectionConfig) -> Self {
        ServerConnection {
            endpoint: Endpoint::server(config.endpoint.clone()),
            session: None,
            config,
            client_key: None,
            requests: 0,
            opened: Instant::now(),
        }
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

    /// Handles every event the buffered input allows. `Err` means framing is lost; the
    /// endpoint then finishes once its output is flushed.
    pub fn process(&mut self) -> Result<(), FramingError> {
        loop {
            let Some(event) = self.endpoint.poll_event()? else {
                return Ok(());
            };
            match event {
                Event::ClientHello(key) => {
                    if key.matches(&self.config.match_key) {
                        self.endpoint.accept(&self.config.server_key);
                    } else {
                        log::warn!("refused client key {:?}", key.raw);
                        self.endpoint.reject(HandshakeStatus::Mismatch);
                    }
                    self.client_key = Some(key);
                }
                Event::Request(Packet::InitServer { version, args }) => {
                    let reply = self.init_server(&version, &args);
                    self.requests += 1;
                    self.reply(&reply);
                }
                Event::Request(request) => {
                    self.requests += 1;
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

    /// Creates the session InitServer asks for: a local one when no constructor is named.
    fn init_server(&mut self, version: &str, args: &[Value]) -> Packet<'static> {
        if self.session.is_some() {
            return Packet::Exception("InitServer: the server has already been initialized".into());
        }
        if version != PROTOCOL_VERSION {
            return Packet::Exception(format!(
                "InitServer: client protocol version {version:?} does not match the server's \
                 {PROTOCOL_VERSION:?}"
            ));
        }
        match args.first() {
            None => {
                let session = LocalSession::new(
                    Arc::clone(&self.config.registry),
                    self.config.session.clone(),
                );
                self.session = Some(Box::new(session));
                Packet::return_void()
            }
            Some(Value::Str(name)) => {
                Packet::Exception(format!("InitServer: unknown session constructor '{name}'"))
            }
            Some(other) => Packet::Exception(format!(
                "InitServer: the session constructor must be named by a string, got {}",
                other.describe()
            )),
        }
    }
}
