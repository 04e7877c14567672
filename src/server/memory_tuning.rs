//! How the C allocator gives memory back, for a server whose clients come and go.
//!
//! glibc serves large allocations with `mmap` and returns them to the system on free, but it
//! raises that threshold whenever such a block is freed (up to 32 MiB), after which blocks of
//! the size of our packet buffers and tensors come from its heaps instead, and freed heap
//! memory mostly stays resident. After many clients with large copies the process keeps the
//! high-water mark of all of them. Fixing the threshold keeps large blocks on `mmap`, so the
//! memory of a closed session goes back to the system; what smaller blocks leave free in the
//! heaps is returned by [`return_free_memory`], which the server calls whenever its last
//! connection closes.
//!
//! The threshold sits above the GEMM kernels' packing buffers (≈ 1.1 MiB for f32 and 2.2 MiB
//! for f64, allocated and freed by every call on every GEMM thread). Mapped, each call paid for
//! fresh zeroed pages: at 128 KiB a single-threaded 256³ SGEMM fell from 65–67 to 43–50 GFLOP/s.
//! The trim threshold is raised with it, or a freed buffer at the top of a heap would be handed
//! back at once and faulted in again by the next call. These are the values glibc's own dynamic
//! adjustment would settle on after freeing 4 MiB blocks, fixed so that it cannot drift to 32 MiB.

/// Blocks at least this large are always mapped and unmapped on their own.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Free memory at the top of a heap beyond this much is returned to the system at once.
pub const TRIM_THRESHOLD: usize = 2 * MMAP_THRESHOLD;

/// Makes the allocator return large freed blocks to the system at once (glibc only; a no-op
/// elsewhere). Call it early in `main`, before threads start. Returns whether it took effect.
pub fn release_freed_memory_promptly() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; it takes no
        // pointers, and glibc serializes it against concurrent allocation.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns the free memory of the allocator's heaps to the system (glibc's `malloc_trim`; a
/// no-op elsewhere). Returns whether any memory was released.
pub fn return_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointers; it only releases memory glibc holds free.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
