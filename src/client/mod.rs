//! A blocking Rust client for TVM-RPC servers (ours or TVM's own).
//!
//! ```no_run
//! use tensor_rpc::client::{Client, RemoteTensor};
//! let client = Client::connect("127.0.0.1:9090", "")?;
//! let dev = client.cpu(0);
//! let a = RemoteTensor::from_slice(&dev, &[2, 2], &[1.0f32, 2.0, 3.0, 4.0])?;
//! assert_eq!(a.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
//! let echo = client.function("testing.echo")?;
//! assert_eq!(echo.call(&[7i64.into()])?, tensor_rpc::endpoint::tvm::codec::Value::Int(7));
//! # Ok::<(), tensor_rpc::client::ClientError>(())
//! ```
//!
//! [`Channel`] is the connection (a client-mode endpoint on a socket), [`ClientSession`]
//! the `Session` of the remote server over it, and [`Client`] the typed API on top.
//! [`TrackerClient`] asks TVM's tracker for a server ([`Client::via_tracker`]).
//! The client needs no server code.

mod api;
mod channel;
mod error;
mod session;
mod tracker;

pub use api::{Arg, Client, Element, RemoteDevice, RemoteFunction, RemoteTensor};
pub use channel::{Channel, ChannelOptions, Reply};
pub use error::ClientError;
pub use session::{ClientSession, MAX_PACKET_FUNCTION};
pub use tracker::TrackerClient;
