//! Loads and stores between arrays and vector registers: the only raw
//! memory accesses of the SIMD kernels.
//!
//! Every helper takes a reference to an array of exactly the vector's size,
//! so the access is in bounds by construction; the unaligned forms are
//! used throughout because blocks sit at any byte offset of a row.

use std::arch::x86_64::*;
use std::mem::size_of;

use bytemuck::Pod;

/// The 16 bytes of `bytes` as a vector.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn load_128(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: `bytes` is 16 readable bytes and `loadu` has no alignment
    // requirement.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

/// The 32 bytes of `bytes` (any plain-bytes value of that size, such as
/// `[u8; 32]` or `[[u8; 16]; 2]`) as a vector.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn load_256<T: Pod>(bytes: &T) -> __m256i {
    const { assert!(size_of::<T>() == 32) };
    // SAFETY: `bytes` is a reference to 32 readable bytes (the size is
    // checked at compile time) and `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256((bytes as *const T).cast()) }
}

/// The 64 bytes of `bytes` (any plain-bytes value of that size, such as
/// `[[u8; 32]; 2]`) as a vector.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn load_512<T: Pod>(bytes: &T) -> __m512i {
    const { assert!(size_of::<T>() == 64) };
    // SAFETY: `bytes` is a reference to 64 readable bytes (the size is
    // checked at compile time) and `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512((bytes as *const T).cast()) }
}

/// Eight floats as a vector.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn load_f32x8(values: &[f32; 8]) -> __m256 {
    // SAFETY: `values` is 32 readable bytes and `loadu` has no alignment
    // requirement.
    unsafe { _mm256_loadu_ps(values.as_ptr()) }
}

/// Writes the 16 bytes of `v` to `out`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn store_128(out: &mut [u8; 16], v: __m128i) {
    // SAFETY: `out` is 16 writable bytes, borrowed exclusively, and
    // `storeu` has no alignment requirement.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) }
}

/// Writes the 32 bytes of `v` to `out`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn store_256(out: &mut [u8; 32], v: __m256i) {
    // SAFETY: `out` is 32 writable bytes, borrowed exclusively, and
    // `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) }
}

/// Writes the eight floats of `v` to `out`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn store_f32x8(out: &mut [f32; 8], v: __m256) {
    // SAFETY: `out` is 32 writable bytes, borrowed exclusively, and
    // `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) }
}
