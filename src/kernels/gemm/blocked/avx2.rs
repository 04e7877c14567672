//! The AVX2 + FMA micro-kernels of the blocked GEMM: one `MR × NR` tile of
//! `c` from one packed panel of `a` and one of `b`.
//!
//! Shapes follow the register file: 16 ymm registers hold 12 accumulators
//! (6 rows × 2 vectors), the two vectors of the current `b` row and one
//! broadcast `a` element. That is 12 FMAs per 8 loads, enough to keep both
//! of Zen 3's FMA pipes busy.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::kernels::gemm::blocked::{MicroKernel, Width};

/// Proof that this CPU has AVX2 and FMA: only `detect` makes one, so a
/// kernel holding it may run the `#[target_feature]` code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Fma(());

impl Avx2Fma {
    /// `Some` when the CPU running this process supports AVX2 and FMA.
    pub(crate) fn detect() -> Option<Avx2Fma> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Some(Avx2Fma(()));
            }
        }
        None
    }
}

/// Rows of a tile (both element types).
const MR: usize = 6;

/// Columns of an f32 tile: two 8-lane vectors.
const F32_NR: usize = 16;

/// Columns of an f64 tile: two 4-lane vectors.
const F64_NR: usize = 8;

/// Checks the slice lengths every kernel relies on: panels of `kc` steps and
/// a tile whose last row ends inside `c`.
fn tile_fits<T>(kc: usize, mr: usize, nr: usize, a: &[T], b: &[T], c: &[T], rsc: usize) -> bool {
    let last_row_end = (mr - 1).checked_mul(rsc).and_then(|start| start.checked_add(nr));
    kc.checked_mul(mr).is_some_and(|len| a.len() >= len)
        && kc.checked_mul(nr).is_some_and(|len| b.len() >= len)
        && last_row_end.is_some_and(|end| c.len() >= end)
}

/// f32: 6 × 16 tiles (two 8-lane vectors per row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2F32(pub Avx2Fma);

/// f64: 6 × 8 tiles (two 4-lane vectors per row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2F64(pub Avx2Fma);

impl MicroKernel for Avx2F32 {
    type Elem = f32;
    type Rows = Width<MR>;
    type Cols = Width<F32_NR>;

    fn tile(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], rsc: usize, accumulate: bool) {
        assert!(tile_fits(kc, MR, F32_NR, a, b, c, rsc), "f32 tile out of bounds");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self.0` exists only if `detect` found AVX2 and FMA on this
        // CPU. The assert above proves the kernel's reads (`kc` steps of 6
        // elements of `a` and 16 of `b`) and writes (6 rows of 16 elements at
        // stride `rsc`) stay inside the slices; `c` is a unique borrow.
        unsafe {
            tile_f32(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), rsc, accumulate)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Avx2Fma::detect never succeeds off x86_64");
    }
}

impl MicroKernel for Avx2F64 {
    type Elem = f64;
    type Rows = Width<MR>;
    type Cols = Width<F64_NR>;

    fn tile(&self, kc: usize, a: &[f64], b: &[f64], c: &mut [f64], rsc: usize, accumulate: bool) {
        assert!(tile_fits(kc, MR, F64_NR, a, b, c, rsc), "f64 tile out of bounds");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for f32: AVX2 and FMA were detected, and the assert
        // proves `kc` steps of 6 `a` and 8 `b` elements and 6 rows of 8 `c`
        // elements at stride `rsc` lie inside the slices.
        unsafe {
            tile_f64(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), rsc, accumulate)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Avx2Fma::detect never succeeds off x86_64");
    }
}

/// `c[i·rsc + j] (+)= Σ_p a[p·6 + i] · b[p·16 + j]` for i < 6, j < 16.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `a` has `6·kc` and `b` `16·kc` readable
/// elements; `c` has `5·rsc + 16` writable elements (and readable ones when
/// `accumulate`), not overlapping `a` or `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_f32(kc: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, acc_c: bool) {
    const NR: usize = F32_NR;
    // The tile's rows of `c` are `rsc` apart, often a multiple of 4 KiB, so
    // they compete for the same L1 sets; fetching them now hides that miss
    // behind the k loop.
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * rsc).cast());
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * rsc + NR - 1).cast());
    }
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so the 16 elements at b + 16p and the 6 at
        // a + 6p are inside the panels (function contract).
        let (b0, b1, a_row) = unsafe {
            (_mm256_loadu_ps(b.add(p * NR)), _mm256_loadu_ps(b.add(p * NR + 8)), a.add(p * MR))
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: i < 6 = MR, inside this step's 6 elements of `a`.
            let ai = _mm256_set1_ps(unsafe { *a_row.add(i) });
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is c[i·rsc .. i·rsc + 16], inside `c`
        // for i < 6 (function contract).
        unsafe {
            let out = c.add(i * rsc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if acc_c {
                lo = _mm256_add_ps(_mm256_loadu_ps(out), lo);
                hi = _mm256_add_ps(_mm256_loadu_ps(out.add(8)), hi);
            }
            _mm256_storeu_ps(out, lo);
            _mm256_storeu_ps(out.add(8), hi);
        }
    }
}

/// `c[i·rsc + j] (+)= Σ_p a[p·6 + i] · b[p·8 + j]` for i < 6, j < 8.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `a` has `6·kc` and `b` `8·kc` readable
/// elements; `c` has `5·rsc + 8` writable elements (and readable ones when
/// `accumulate`), not overlapping `a` or `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_f64(kc: usize, a: *const f64, b: *const f64, c: *mut f64, rsc: usize, acc_c: bool) {
    const NR: usize = F64_NR;
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * rsc).cast());
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * rsc + NR - 1).cast());
    }
    let mut acc = [[_mm256_setzero_pd(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc: the 8 elements at b + 8p and the 6 at a + 6p are
        // inside the panels (function contract).
        let (b0, b1, a_row) = unsafe {
            (_mm256_loadu_pd(b.add(p * NR)), _mm256_loadu_pd(b.add(p * NR + 4)), a.add(p * MR))
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: i < 6 = MR, inside this step's 6 elements of `a`.
            let ai = _mm256_set1_pd(unsafe { *a_row.add(i) });
            row[0] = _mm256_fmadd_pd(ai, b0, row[0]);
            row[1] = _mm256_fmadd_pd(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is c[i·rsc .. i·rsc + 8], inside `c`
        // for i < 6 (function contract).
        unsafe {
            let out = c.add(i * rsc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if acc_c {
                lo = _mm256_add_pd(_mm256_loadu_pd(out), lo);
                hi = _mm256_add_pd(_mm256_loadu_pd(out.add(4)), hi);
            }
            _mm256_storeu_pd(out, lo);
            _mm256_storeu_pd(out.add(4), hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tile computed one product at a time, in the kernel's order.
    fn naive_tile(kc: usize, mr: usize, nr: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; mr * nr];
        for p in 0..kc {
            for i in 0..mr {
                for j in 0..nr {
                    c[i * nr + j] += a[p * mr + i] * b[p * nr + j];
                }
            }
        }
        c
    }

    fn small_values(len: usize, seed: usize) -> Vec<f64> {
        (0..len).map(|i| ((i * 7 + seed) % 11) as f64 - 5.0).collect()
    }

    #[test]
    fn f64_tile_equals_the_naive_sum_and_leaves_the_rest_of_c_alone() {
        let Some(cpu) = Avx2Fma::detect() else { return };
        let kc = 13;
        let (a, b) = (small_values(kc * 6, 1), small_values(kc * 8, 2));
        let rsc = 11;
        let mut c = vec![f64::NAN; 5 * rsc + 8];
        Avx2F64(cpu).tile(kc, &a, &b, &mut c, rsc, false);
        let expected = naive_tile(kc, 6, 8, &a, &b);
        for i in 0..6 {
            assert_eq!(c[i * rsc..i * rsc + 8], expected[i * 8..i * 8 + 8], "row {i}");
            if i < 5 {
                assert!(c[i * rsc + 8..(i + 1) * rsc].iter().all(|x| x.is_nan()), "gap {i}");
            }
        }
    }

    #[test]
    fn f32_tile_accumulates_onto_c_when_asked() {
        let Some(cpu) = Avx2Fma::detect() else { return };
        let kc = 9;
        let a: Vec<f32> = small_values(kc * 6, 3).iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = small_values(kc * 16, 4).iter().map(|&x| x as f32).collect();
        let mut c = vec![1.0f32; 6 * 16];
        Avx2F32(cpu).tile(kc, &a, &b, &mut c, 16, true);
        let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let expected = naive_tile(kc, 6, 16, &wide(&a), &wide(&b));
        let got: Vec<f64> = c.iter().map(|&x| f64::from(x) - 1.0).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn tile_that_would_run_past_c_is_refused() {
        let Some(cpu) = Avx2Fma::detect() else { return };
        let (a, b) = (vec![0.0f64; 6], vec![0.0f64; 8]);
        let mut c = vec![0.0f64; 5 * 8 + 7];
        let refused = std::panic::catch_unwind(move || {
            Avx2F64(cpu).tile(1, &a, &b, &mut c, 8, false);
        });
        assert!(refused.is_err());
    }
}
