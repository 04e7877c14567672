//! One session's buffers: allocated against its memory limit, addressed by opaque ids.

use std::sync::Arc;

use super::DeviceMemory;
use super::usage::{ServerUsage, SessionUsage};
use crate::session::{HandleTable, SessionError};

/// What a session's buffers hold, for logs and statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Buffers allocated since the session began.
    pub allocations: u64,
    pub bytes_held: u64,
    pub peak_bytes: u64,
}

/// A session's allocations of device memory. Ids are never 0, and a freed id stays
/// refused even once its slot is reused. Dropping the table frees everything in it and
/// takes it off the server's figures.
#[derive(Debug)]
pub struct DeviceBuffers {
    table: HandleTable<DeviceMemory>,
    limit: Option<u64>,
    stats: BufferStats,
    usage: SessionUsage,
}

impl DeviceBuffers {
    /// At most `limit` bytes (`None`: no limit) in at most `max_buffers` buffers, counted
    /// into the server-wide `usage` (this table counts as one session there until dropped).
    pub fn new(limit: Option<u64>, max_buffers: usize, usage: Arc<ServerUsage>) -> Self {
        DeviceBuffers {
            table: HandleTable::new(max_buffers),
            limit,
            stats: BufferStats::default(),
            usage: SessionUsage::new(usage),
        }
    }

    /// Allocates `nbytes` zeroed bytes aligned to `alignment` and returns the buffer's id;
    /// refused when the session would hold more than its limit.
    pub fn allocate(&mut self, nbytes: u64, alignment: u64) -> Result<u64, SessionError> {
        let would_hold = self.stats.bytes_held.saturating_add(nbytes);
        if let Some(limit) = self.limit
            && would_hold > limit
        {
            return Err(SessionError::MemoryLimit { requested: nbytes, would_hold, limit });
        }
        let memory = DeviceMemory::allocate(nbytes, alignment)?;
        let id = self.table.insert(memory)?;
        self.stats.allocations += 1;
        self.stats.bytes_held = would_hold;
        self.stats.peak_bytes = self.stats.peak_bytes.max(would_hold);
        self.usage.allocated(nbytes);
        Ok(id)
    }

    /// Frees a buffer; its id is refused from now on.
    pub fn free(&mut self, id: u64) -> Result<(), SessionError> {
        let memory = self.table.remove(id)?;
        let len = memory.len() as u64;
        self.stats.bytes_held -= len;
        self.usage.freed(len);
        Ok(())
    }

    pub fn get(&self, id: u64) -> Result<&DeviceMemory, SessionError> {
        self.table.get(id)
    }

    pub fn get_mut(&mut self, id: u64) -> Result<&mut DeviceMemory, SessionError> {
        self.table.get_mut(id)
    }

    /// Mutable access to several distinct buffers at once, in the order of `ids`.
    pub fn get_disjoint_mut(
        &mut self,
        ids: &[u64],
    ) -> Result<Vec<&mut DeviceMemory>, SessionError> {
        self.table.get_disjoint_mut(ids)
    }

    /// The session's limit, if it has one.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Bytes the session may still allocate (`None`: no limit).
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|limit| limit.saturating_sub(self.stats.bytes_held))
    }

    pub fn stats(&self) -> BufferStats {
        self.stats
    }

    /// Buffers live now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Counts one call served, server-wide.
    pub fn count_call(&self) {
        self.usage.called();
    }

    /// What all sessions of the server hold now.
    pub fn server_usage(&self) -> super::UsageSnapshot {
        self.usage.server().snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers(limit: Option<u64>) -> (DeviceBuffers, Arc<ServerUsage>) {
        let usage = ServerUsage::new();
        (DeviceBuffers::new(limit, 16, Arc::clone(&usage)), usage)
    }

    #[test]
    fn allocations_count_against_the_limit_and_free_gives_room_back() {
        let (mut b, _) = buffers(Some(100));
        let a = b.allocate(60, 64).unwrap();
        assert!(matches!(b.allocate(41, 64), Err(SessionError::MemoryLimit { .. })));
        assert_eq!(b.remaining(), Some(40));
        b.free(a).unwrap();
        b.allocate(100, 64).unwrap();
        assert_eq!(b.stats().peak_bytes, 100);
    }

    #[test]
    fn freed_and_forged_ids_are_refused() {
        let (mut b, _) = buffers(None);
        let a = b.allocate(8, 64).unwrap();
        b.free(a).unwrap();
        assert_eq!(b.get(a).unwrap_err(), SessionError::UnknownHandle { handle: a });
        assert!(b.free(a).is_err(), "no double free");
        for forged in [0, a + 1, u64::MAX] {
            assert!(b.get(forged).is_err(), "{forged:#x}");
        }
    }

    #[test]
    fn dropping_the_buffers_takes_them_off_the_server_figures() {
        let (mut b, usage) = buffers(None);
        b.allocate(10, 64).unwrap();
        b.allocate(20, 64).unwrap();
        let snapshot = usage.snapshot();
        assert_eq!((snapshot.sessions, snapshot.allocations, snapshot.bytes_held), (1, 2, 30));
        drop(b);
        assert_eq!(usage.snapshot(), UsageSnapshot::default());
    }

    use super::super::UsageSnapshot;
}
