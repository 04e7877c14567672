//! The wire layout of TVM 0.27's RPC protocol ("0.8.0"), written once.
//!
//! Every layout has its encoder and decoder side by side, so they cannot drift:
//! [`wire`] (little-endian primitives over a byte slice), [`value`] (packed sequences with
//! tvm-ffi type indices), [`tensor`] (DLTensor records), [`packet`] (the packets by RPC code)
//! and [`handshake`] (the magic + key exchange before any packet).
//!
//! Decoding takes a complete packet body as a slice and returns typed values or a
//! [`DecodeError`]. It never panics and never allocates more than the bytes it was given
//! justify: every count is checked against the bytes that remain before anything is reserved.

pub mod handshake;
pub mod packet;
pub mod tensor;
pub mod value;
pub mod wire;

mod error;
mod limits;
#[cfg(test)]
mod tests;

pub use error::DecodeError;
pub use handshake::{ClientKey, HandshakeStatus};
pub use limits::DecodeLimits;
pub use packet::{Packet, RpcCode, Syscall};
pub use tensor::{DataType, Device, DeviceAttrKind, TensorRecord, checked_nbytes};
pub use value::{TypeIndex, Value};
pub use wire::{WireReader, WireSink};

/// The protocol version this crate speaks, sent in InitServer.
pub const PROTOCOL_VERSION: &str = "0.8.0";
