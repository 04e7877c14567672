//! Runs a decoded request against a [`Session`] and writes the reply into the endpoint.
//!
//! Split in two so a driver can run the first half elsewhere (a worker thread) while the
//! endpoint waits in WaitForAsyncCallback: [`execute`] needs only the session and the
//! request; [`deliver`] writes the outcome once the endpoint is at hand again.

use crate::endpoint::Endpoint;
use crate::endpoint::codec::{Packet, Syscall, TensorRecord, Value};

use super::{Session, SessionError};

/// What answers a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A Return or Exception packet.
    Reply(Packet<'static>),
    /// A CopyAck, filled from the session straight into the output buffer.
    CopyAck { source: TensorRecord, nbytes: u64 },
}

impl Outcome {
    fn from_result(result: Result<Packet<'static>, SessionError>) -> Self {
        Outcome::Reply(result.unwrap_or_else(|e| Packet::Exception(e.to_string())))
    }
}

/// Serves `request` with `session`. InitServer and Shutdown belong to the connection, not
/// the session, and are refused here.
pub fn execute(session: &mut dyn Session, request: Packet<'_>) -> Outcome {
    Outcome::from_result(match request {
        Packet::CallFunc { function, args } => {
            session.call_func(function, &args).map(Packet::call_return)
        }
        Packet::CopyToRemote { target, data } => {
            session.copy_to_remote(&target, &data).map(|()| Packet::return_void())
        }
        Packet::CopyFromRemote { source, nbytes } => {
            return Outcome::CopyAck { source, nbytes };
        }
        Packet::Syscall(call) => syscall(session, &call).map(|v| Packet::Return(vec![v])),
        Packet::InitServer { .. } => Err(SessionError::InvalidArgument(
            "InitServer: the server has already been initialized".into(),
        )),
        other => Err(SessionError::InvalidArgument(format!(
            "{} is not a request a session serves",
            other.code().name()
        ))),
    })
}

/// Runs a syscall; its reply is one value (None for those that return nothing).
pub fn syscall(session: &mut dyn Session, call: &Syscall) -> Result<Value, SessionError> {
    let void = |r: Result<(), SessionError>| r.map(|()| Value::None);
    match call {
        Syscall::GetGlobalFunc { name } => {
            session.get_global_func(name).map(|h| Value::Handle(h.unwrap_or(0)))
        }
        Syscall::FreeHandle { handle } => void(session.free_handle(*handle)),
        Syscall::DevSetDevice { device } => void(session.dev_set_device(*device)),
        Syscall::DevGetAttr { device, kind } => session.dev_get_attr(*device, *kind),
        Syscall::DevAllocData { device, nbytes, alignment, dtype } => {
            session.dev_alloc_data(*device, *nbytes, *alignment, *dtype).map(Value::Handle)
        }
        Syscall::DevAllocDataWithScope { tensor, scope } => {
            session.dev_alloc_data_with_scope(tensor, scope.as_deref()).map(Value::Handle)
        }
        Syscall::DevFreeData { device, data } => void(session.dev_free_data(*device, *data)),
        Syscall::DevStreamSync { device, stream } => {
            void(session.dev_stream_sync(*device, *stream))
        }
        Syscall::CopyAmongRemote { from, to, stream } => {
            void(session.copy_among_remote(from, to, *stream))
        }
        Syscall::DevCreateStream { device } => {
            session.dev_create_stream(*device).map(Value::Handle)
        }
        Syscall::DevFreeStream { device, stream } => {
            void(session.dev_free_stream(*device, *stream))
        }
        Syscall::DevSetStream { device, stream } => void(session.dev_set_stream(*device, *stream)),
        Syscall::DevGetCurrentStream { device } => {
            session.dev_get_current_stream(*device).map(Value::Handle)
        }
    }
}

/// Writes `outcome` as the reply to the request the endpoint is waiting on.
pub fn deliver(endpoint: &mut Endpoint, session: &mut dyn Session, outcome: Outcome) {
    let result = match outcome {
        Outcome::Reply(packet) => endpoint.reply(&packet),
        Outcome::CopyAck { source, nbytes } => match usize::try_from(nbytes) {
            // Refused before anything is reserved for the reply.
            Ok(_) if let Err(e) = session.check_copy_from_remote(&source, nbytes) => {
                endpoint.reply(&Packet::Exception(e.to_string()))
            }
            Ok(n) => endpoint.reply_copy_ack(n, |out| {
                session.copy_from_remote(&source, out).map_err(|e| e.to_string())
            }),
            Err(_) => endpoint.reply(&Packet::Exception(format!(
                "CopyFromRemote of {nbytes} bytes does not fit in memory"
            ))),
        },
    };
    if let Err(e) = result {
        log::error!("reply dropped: {e}");
    }
}
