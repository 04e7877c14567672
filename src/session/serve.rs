//! Runs a decoded request against a [`Session`] and writes the reply into the endpoint.
//!
//! Split in two so a driver can run the first half elsewhere (a worker thread) while the
//! endpoint waits in WaitForAsyncCallback: [`execute`] needs only the session and the
//! [`Work`] its [`Session::prepare`] left; [`deliver`] writes the outcome once the endpoint
//! is at hand again.

use crate::endpoint::tvm::ServerEndpoint;
use crate::endpoint::tvm::codec::{Packet, TensorRecord};

use super::{Session, SessionError, Work};

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

/// Runs `work` with `session`. InitServer and Shutdown belong to the connection, not the
/// session, and are refused here.
pub fn execute(session: &mut dyn Session, work: Work<'_>) -> Outcome {
    let request = match work {
        Work::Request(request) => request,
        Work::Call(call) => {
            return Outcome::from_result(session.run_prepared(call).map(Packet::call_return));
        }
        Work::Refused(error) => return Outcome::from_result(Err(error)),
    };
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
        Packet::Syscall(call) => session.syscall(&call).map(|v| Packet::Return(vec![v])),
        Packet::InitServer { .. } => Err(SessionError::InvalidArgument(
            "InitServer: the server has already been initialized".into(),
        )),
        other => Err(SessionError::InvalidArgument(format!(
            "{} is not a request a session serves",
            other.code().name()
        ))),
    })
}

/// Writes `outcome` as the reply to the request the endpoint is waiting on.
pub fn deliver(endpoint: &mut ServerEndpoint, session: &mut dyn Session, outcome: Outcome) {
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
