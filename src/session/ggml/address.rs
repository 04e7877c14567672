//! The address space ggml's client sees: each buffer gets an opaque `remote_ptr` (its id in
//! the session's [`DeviceBuffers`](crate::session::DeviceBuffers)) and a synthetic base
//! address, which tensors' `data` fields point into. Nothing the client sends is ever used
//! as a pointer: an address is translated back to (buffer, offset) and range-checked.

use std::collections::HashMap;

use super::GgmlSessionError;

/// Where the first buffer's addresses start: high enough to look like the heap addresses
/// ggml's own server hands out, far from 0 so a null or small forged address never lands
/// in a buffer.
const FIRST_BASE: u64 = 1 << 40;

/// Buffers start on this boundary (above every alignment a client asks for) and are kept
/// one boundary apart, so an address just past one buffer is in no other.
const BASE_ALIGN: u64 = 2 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteBuffer {
    pub base: u64,
    pub size: u64,
}

/// The synthetic addresses of a session's buffers.
#[derive(Debug)]
pub struct AddressSpace {
    buffers: HashMap<u64, RemoteBuffer>,
    next_base: u64,
}

impl Default for AddressSpace {
    fn default() -> Self {
        AddressSpace { buffers: HashMap::new(), next_base: FIRST_BASE }
    }
}

impl AddressSpace {
    /// Gives buffer `id` of `size` bytes its base address; `None` when the address space is
    /// used up (after some 16 million TiB of allocations in one session).
    pub fn insert(&mut self, id: u64, size: u64) -> Option<u64> {
        let base = self.next_base;
        let span = size.checked_next_multiple_of(BASE_ALIGN)?.checked_add(BASE_ALIGN)?;
        self.next_base = base.checked_add(span)?;
        self.buffers.insert(id, RemoteBuffer { base, size });
        Some(base)
    }

    pub fn remove(&mut self, id: u64) -> Option<RemoteBuffer> {
        self.buffers.remove(&id)
    }

    pub fn get(&self, id: u64) -> Result<RemoteBuffer, GgmlSessionError> {
        self.buffers.get(&id).copied().ok_or(GgmlSessionError::UnknownBuffer(id))
    }

    pub fn clear(&mut self) {
        self.buffers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_aligned_and_buffers_never_touch() {
        let mut space = AddressSpace::default();
        let a = space.insert(1, 100).unwrap();
        let b = space.insert(2, BASE_ALIGN).unwrap();
        let c = space.insert(3, 0).unwrap();
        assert_eq!(a % BASE_ALIGN, 0);
        assert!(b >= a + 100 + BASE_ALIGN - 100, "a gap after the first buffer");
        assert!(c >= b + BASE_ALIGN + BASE_ALIGN);
    }

    #[test]
    fn an_unknown_buffer_is_refused() {
        let mut space = AddressSpace::default();
        space.insert(1, 8).unwrap();
        assert_eq!(space.get(2), Err(GgmlSessionError::UnknownBuffer(2)));
        space.remove(1);
        assert_eq!(space.get(1), Err(GgmlSessionError::UnknownBuffer(1)));
    }

    #[test]
    fn the_address_space_running_out_refuses_the_buffer() {
        let mut space = AddressSpace { buffers: HashMap::new(), next_base: u64::MAX - BASE_ALIGN };
        assert_eq!(space.insert(1, 1 << 30), None);
    }
}
