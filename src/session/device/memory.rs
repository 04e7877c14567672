//! Device memory of the CPU device: zeroed, aligned allocations with checked ranges.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};

use crate::session::SessionError;

/// The unit allocations are made of: its alignment is the alignment every allocation gets.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Block([u8; BLOCK]);

const BLOCK: usize = 64;

/// Largest alignment a client may ask for.
pub const MAX_ALIGNMENT: u64 = 4096;

/// Allocations at least this large are anonymous mappings of their own, with transparent huge
/// pages advised, as numpy does for its arrays (same threshold). Fewer TLB misses in the kernels:
/// SGEMM through the RPC went from 0.84–0.88× to 0.92–0.95× of numpy at 1024 (two side-by-side
/// runs), numpy's own operands being on huge pages. A mapping starts untouched, so the advice
/// comes before any page is faulted in (an aligned heap block is zeroed by writing it), is
/// page-aligned (every alignment a client may ask for) and goes back to the system on drop.
const MAPPED_FROM: usize = 4 << 20;

/// Where an allocation's bytes live.
enum Storage {
    /// Zeroed blocks from the heap.
    Blocks(Box<[Block]>),
    /// An anonymous private mapping: zero-filled by the kernel page by page.
    Mapped(memmap2::MmapMut),
}

/// One allocation handed out by DevAllocData.
pub struct DeviceMemory {
    storage: Storage,
    /// Offset of the first usable byte, for alignments beyond a block's.
    start: usize,
    len: usize,
}

impl std::fmt::Debug for DeviceMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceMemory({} bytes)", self.len)
    }
}

impl DeviceMemory {
    /// Allocates `nbytes` zeroed bytes aligned to `alignment` (a power of two up to
    /// [`MAX_ALIGNMENT`]). Failure to get the memory is an error, not an abort.
    pub fn allocate(nbytes: u64, alignment: u64) -> Result<Self, SessionError> {
        if !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
            return Err(SessionError::InvalidArgument(format!(
                "alignment {alignment} is not a power of two up to {MAX_ALIGNMENT}"
            )));
        }
        let len = usize::try_from(nbytes).map_err(|_| SessionError::AllocationFailed { nbytes })?;
        if len >= MAPPED_FROM {
            // Page-aligned, so aligned to anything up to MAX_ALIGNMENT: the bytes start at 0.
            let mapping = memmap2::MmapMut::map_anon(len)
                .map_err(|_| SessionError::AllocationFailed { nbytes })?;
            advise_huge_pages(&mapping);
            return Ok(DeviceMemory { storage: Storage::Mapped(mapping), start: 0, len });
        }
        let slack = alignment.saturating_sub(BLOCK as u64);
        let total = nbytes.checked_add(slack).ok_or(SessionError::AllocationFailed { nbytes })?;
        let block_count = usize::try_from(total.div_ceil(BLOCK as u64))
            .map_err(|_| SessionError::AllocationFailed { nbytes })?;
        let blocks = bytemuck::allocation::try_zeroed_slice_box::<Block>(block_count)
            .map_err(|()| SessionError::AllocationFailed { nbytes })?;
        let address = blocks.as_ptr() as usize;
        let align = alignment.max(1) as usize;
        let start = (align - address % align) % align;
        Ok(DeviceMemory { storage: Storage::Blocks(blocks), start, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = match &self.storage {
            Storage::Blocks(blocks) => bytemuck::cast_slice(blocks),
            Storage::Mapped(mapping) => mapping,
        };
        &all[self.start..self.start + self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let all: &mut [u8] = match &mut self.storage {
            Storage::Blocks(blocks) => bytemuck::cast_slice_mut(blocks),
            Storage::Mapped(mapping) => mapping,
        };
        &mut all[self.start..self.start + self.len]
    }

    /// The byte range `[offset, offset + len)` if it lies inside this allocation. Every copy
    /// path goes through here.
    pub fn checked_range(&self, offset: u64, len: u64) -> Result<Range<usize>, SessionError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len as u64 => Ok(offset as usize..end as usize),
            _ => Err(SessionError::OutOfBounds { offset, len, size: self.len as u64 }),
        }
    }

    /// Whether the bytes live in a mapping of their own (large allocations).
    #[cfg(test)]
    fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }
}

/// Asks the kernel to back `mapping` with transparent huge pages where it can (Linux); where it
/// declines (THP off, other systems) nothing changes but speed.
fn advise_huge_pages(mapping: &memmap2::MmapMut) {
    #[cfg(target_os = "linux")]
    if let Err(e) = mapping.advise(memmap2::Advice::HugePage) {
        log::debug!("no huge pages for device memory: {e}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = mapping;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_zeroed_and_of_the_requested_length() {
        let m = DeviceMemory::allocate(100, 64).unwrap();
        assert_eq!(m.len(), 100);
        assert!(m.bytes().iter().all(|&b| b == 0));
    }

    #[test]
    fn large_allocation_is_a_zeroed_writable_page_aligned_mapping() {
        let mut m = DeviceMemory::allocate(MAPPED_FROM as u64 + 100, 4096).unwrap();
        assert!(m.is_mapped());
        assert_eq!(m.len(), MAPPED_FROM + 100);
        assert!(m.bytes().iter().all(|&b| b == 0));
        m.bytes_mut().fill(7);
        assert!(m.bytes().iter().all(|&b| b == 7));
        assert_eq!(m.bytes().as_ptr() as usize % 4096, 0);
        assert!(m.checked_range(MAPPED_FROM as u64, 101).is_err());
    }

    #[test]
    fn small_allocation_comes_from_the_heap() {
        assert!(!DeviceMemory::allocate(MAPPED_FROM as u64 - 1, 64).unwrap().is_mapped());
    }

    #[test]
    fn allocation_honours_large_alignment() {
        let m = DeviceMemory::allocate(10, 4096).unwrap();
        assert_eq!(m.bytes().as_ptr() as usize % 4096, 0);
    }

    #[test]
    fn alignment_that_is_not_a_power_of_two_is_refused() {
        assert!(matches!(DeviceMemory::allocate(8, 48), Err(SessionError::InvalidArgument(_))));
    }

    #[test]
    fn impossible_size_fails_instead_of_aborting() {
        assert!(matches!(
            DeviceMemory::allocate(1 << 62, 64),
            Err(SessionError::AllocationFailed { .. })
        ));
    }

    #[test]
    fn range_past_the_end_is_refused() {
        let m = DeviceMemory::allocate(16, 64).unwrap();
        assert_eq!(m.checked_range(8, 8), Ok(8..16));
        assert!(m.checked_range(8, 9).is_err());
        assert!(m.checked_range(u64::MAX, 2).is_err());
    }
}
