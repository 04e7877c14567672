//! One ggml-RPC connection with no I/O inside: its endpoint, the session its HELLO opened,
//! and its timers. Commands are served in order; a graph (and a tensor filled from the
//! cache) runs as a job off the event loop while later commands wait behind it.
//!
//! ggml-RPC has no error reply: a command the endpoint or the session refuses ends this one
//! connection, and its close reason (in the server's log) says why. Everything the session
//! held goes with it.

use std::time::Instant;

use super::CloseReason;
use super::clock::ConnectionClock;
use super::connection::{
    Admission, Connection, ConnectionReport, Job, JobDone, Lifecycle, Progress,
};
use super::tvm_connection::ConnectionConfig;
use crate::endpoint::EndpointCore;
use crate::endpoint::ggml::{GgmlEvent, GgmlServerEndpoint};
use crate::session::ggml::{
    GgmlSession, GgmlSessionConfig, GgmlSessionError, Served, SetTensorWrite, WorkDone,
};
use crate::session::{Placement, SessionStats};

/// What a ggml job hands back: the session, and how its work went.
struct GgmlJobDone {
    session: Box<GgmlSession>,
    result: Result<WorkDone, GgmlSessionError>,
}

/// A server-side ggml-RPC connection.
pub struct GgmlConnection {
    endpoint: GgmlServerEndpoint,
    /// Opened by HELLO; with a job while one runs.
    session: Option<Box<GgmlSession>>,
    session_config: GgmlSessionConfig,
    /// A SET_TENSOR whose data is arriving.
    write: Option<SetTensorWrite>,
    life: Lifecycle,
    refusal: Option<String>,
    requests: u64,
}

impl GgmlConnection {
    /// A connection whose first bytes are already in `core`, its timers running since it
    /// was accepted.
    pub fn with_core(
        core: EndpointCore,
        config: &ConnectionConfig,
        clock: ConnectionClock,
    ) -> Self {
        GgmlConnection {
            endpoint: GgmlServerEndpoint::with_core(core, config.ggml.endpoint),
            session: None,
            session_config: config.ggml_session(),
            write: None,
            life: Lifecycle::new(clock),
            refusal: None,
            requests: 0,
        }
    }

    pub fn endpoint(&mut self) -> &mut GgmlServerEndpoint {
        &mut self.endpoint
    }

    /// [`Connection::process`] for drivers without threads: jobs run on the caller's thread.
    pub fn process_inline(&mut self, now: Instant) {
        while let Progress::Offload(job) = self.process(now) {
            self.complete(job.run(), now);
        }
    }

    /// Ends the connection for `error`.
    fn fail(&mut self, error: impl std::fmt::Display) {
        self.life.end(CloseReason::Protocol(error.to_string()));
        self.endpoint.close();
    }

    fn stats(&self) -> SessionStats {
        self.session.as_ref().map_or_else(SessionStats::default, |s| {
            let stats = s.stats();
            SessionStats {
                calls: stats.graphs,
                allocations: 0,
                bytes_held: stats.bytes_held,
                peak_bytes: stats.peak_bytes,
            }
        })
    }
}

impl Connection for GgmlConnection {
    fn core(&self) -> &EndpointCore {
        self.endpoint.core()
    }

    fn core_mut(&mut self) -> &mut EndpointCore {
        self.endpoint.core_mut()
    }

    fn wants_read(&self) -> bool {
        !self.life.aborted() && self.endpoint.wants_read()
    }

    /// ggml-RPC has no key: only a full server's refusal applies.
    fn set_admission(&mut self, admission: &Admission<'_>) {
        self.refusal = admission.refusal.map(str::to_owned);
    }

    fn process(&mut self, now: Instant) -> Progress {
        self.life.observe(self.endpoint.core(), now);
        loop {
            // A broken stream ends the connection once its output is flushed.
            let Some(event) = self.life.event(self.endpoint.poll_event()) else {
                return Progress::Idle;
            };
            // Served here rather than in methods: SET_TENSOR's data borrows the endpoint's
            // input while the session writes it into a buffer.
            match event {
                GgmlEvent::Hello { .. } => {
                    if let Some(refusal) = self.refusal.take() {
                        self.fail(format!("refused a ggml-RPC session: {refusal}"));
                        return Progress::Idle;
                    }
                    if self.endpoint.accept_hello().is_err() {
                        self.fail("HELLO accepted outside its decision");
                        return Progress::Idle;
                    }
                    self.life.admit(now, None);
                    self.session = Some(Box::new(GgmlSession::new(self.session_config.clone())));
                }
                GgmlEvent::Request(request) => {
                    self.requests += 1;
                    let Some(session) = self.session.as_deref_mut() else {
                        self.fail("a command while a job holds the session");
                        return Progress::Idle;
                    };
                    let answered = match session.serve(request) {
                        Ok(Served::Reply(reply)) => {
                            self.endpoint.reply(&reply).map_err(|e| e.to_string())
                        }
                        Ok(Served::Done) => self.endpoint.finish().map_err(|e| e.to_string()),
                        Ok(Served::Bytes { buffer, offset, len }) => {
                            let Ok(len) = usize::try_from(len) else {
                                self.fail("GET_TENSOR of more bytes than this machine addresses");
                                return Progress::Idle;
                            };
                            match self.endpoint.reply_get_tensor(len, |out| {
                                session
                                    .bytes(buffer, offset, len as u64)
                                    .map(|b| out.copy_from_slice(b))
                            }) {
                                Ok(Ok(())) => Ok(()),
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Ok(Served::Work(work)) => {
                            let Some(mut session) = self.session.take() else { continue };
                            self.life.job_started();
                            return Progress::Offload(Job::new(Placement::Compute, move || {
                                let result = session.run(work);
                                JobDone::new(GgmlJobDone { session, result })
                            }));
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(message) = answered {
                        self.fail(message);
                        return Progress::Idle;
                    }
                }
                GgmlEvent::SetTensor { header, data_len } => {
                    let Some(session) = self.session.as_deref_mut() else {
                        self.fail("SET_TENSOR while a job holds the session");
                        return Progress::Idle;
                    };
                    self.requests += 1;
                    match session.begin_set_tensor(&header, data_len) {
                        Ok(write) => {
                            self.write = Some(write);
                            if let Err(e) = self.endpoint.accept_set_tensor() {
                                self.fail(e);
                                return Progress::Idle;
                            }
                        }
                        Err(e) => {
                            self.fail(format!("SET_TENSOR: {e}"));
                            return Progress::Idle;
                        }
                    }
                }
                GgmlEvent::SetTensorData(data) => {
                    let (Some(session), Some(write)) =
                        (self.session.as_deref_mut(), self.write.as_mut())
                    else {
                        self.fail("SET_TENSOR data without its header");
                        return Progress::Idle;
                    };
                    if let Err(e) = session.write_set_tensor(write, data) {
                        self.fail(format!("SET_TENSOR: {e}"));
                        return Progress::Idle;
                    }
                }
                GgmlEvent::SetTensorDone => {
                    if let Some(write) = self.write.take() {
                        GgmlSession::end_set_tensor(write);
                    }
                }
            }
        }
    }

    fn complete(&mut self, done: JobDone, now: Instant) {
        self.life.job_done(now);
        let Ok(GgmlJobDone { session, result }) = done.downcast::<GgmlJobDone>() else {
            log::error!("a ggml connection was handed another protocol's job");
            self.life.abort(CloseReason::InternalError);
            return;
        };
        self.session = Some(session);
        let answered = match result {
            Ok(WorkDone::Done) => self.endpoint.finish().map_err(|e| e.to_string()),
            Ok(WorkDone::Reply(reply)) => self.endpoint.reply(&reply).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(message) = answered {
            self.fail(message);
        }
    }

    fn is_finished(&self) -> bool {
        self.life.aborted() || self.endpoint.is_finished()
    }

    fn handshake_done(&self) -> bool {
        self.endpoint.greeted() || self.endpoint.is_finished()
    }

    fn report(&self) -> ConnectionReport {
        ConnectionReport {
            protocol: Some("ggml-RPC"),
            opened: self.life.clock().opened(),
            requests: self.requests,
            session: self.stats(),
        }
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }

    fn mid_request(&self) -> bool {
        self.endpoint.mid_request()
    }
}
