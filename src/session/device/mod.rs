//! The device layer both protocols share: one session's memory on this machine's CPU
//! device, protocol-neutral. Buffers live in a generation-checked table (a freed or forged
//! id is refused on use), a session may hold at most its `--memory-limit`, every byte range
//! is checked against its allocation in one place ([`DeviceMemory::checked_range`]), and the
//! server-wide figures of `tensor_rpc.stats` move as buffers come and go. TVM's sessions and
//! ggml's sessions are adapters over it; nothing here knows a wire type.

mod buffers;
pub mod machine_memory;
mod memory;
mod usage;

pub use buffers::{BufferStats, DeviceBuffers};
pub use memory::{DeviceMemory, MAX_ALIGNMENT};
pub use usage::{ServerUsage, UsageSnapshot};
