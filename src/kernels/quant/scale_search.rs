//! The scale searches of ggml's K-quant reference quantizers: for one
//! group of values, find a scale (and minimum) and the small integers that
//! approximate the group well, trying a few candidate scales around the
//! obvious one.
//!
//! These are ggml's `make_qx_quants` (Q6_K), `make_q3_quants` (Q3_K) and
//! `make_qkx2_quants` (Q2_K, Q4_K, Q5_K), only in the parameterisations the
//! reference quantizers use. Every float operation happens in ggml's order
//! (`w*x*l` is `(w·x)·l`), since the chosen candidate, and so the output
//! bytes, can depend on the last bit of a sum.

use crate::kernels::quant::rounding::nearest_int;

/// Below this magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// The element of largest magnitude (the first one on ties; NaN never
/// wins), and that magnitude.
pub(super) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// Symmetric quantization of `x` to `L[i] ∈ 0..2·nmax` (meaning
/// `L[i] − nmax`), weighting each element by `x²` (`make_qx_quants` with
/// `rmse_type = 1` and no importance weights). Returns the scale.
pub(super) fn symmetric_scale_weighted_by_square(x: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    // The sums of w·x·l and w·l² for the levels at inverse scale `iscale`.
    let sums_at = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = clamp(nearest_int(iscale * v)) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let fill_levels = |iscale: f32, levels: &mut [i8]| {
        for (level, &v) in levels.iter_mut().zip(x) {
            *level = (nmax + clamp(nearest_int(iscale * v))) as i8;
        }
    };

    let iscale = -nmax_f / max;
    fill_levels(iscale, levels);
    let (sumlx, suml2) = sums_at(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for step in (-9..=9).filter(|&step| step != 0) {
        let iscale = -(nmax_f + 0.1 * step as f32) / max;
        let (sumlx, suml2) = sums_at(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill_levels(iscale, levels);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q3_K's symmetric quantization of `x` to `L[i] ∈ 0..2·nmax`
/// (`make_q3_quants` with `do_rmse`): start from the obvious scale, then
/// move single elements to another level while that lowers the
/// `x²`-weighted error, for at most five passes. Returns the scale.
pub(super) fn symmetric_scale_by_coordinate_descent(
    x: &[f32],
    nmax: i32,
    levels: &mut [i8],
) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (level, &v) in levels.iter_mut().zip(x) {
        let l = clamp(nearest_int(iscale * v));
        *level = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (level, &v) in levels.iter_mut().zip(x) {
            let w = v * v;
            let old = *level as f32;
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = clamp(nearest_int(v * sl2 / slx));
                if new_l != *level as i32 {
                    let new_f = new_l as f32;
                    slx += w * v * new_f;
                    sl2 += w * new_f * new_f;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *level = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for level in levels.iter_mut() {
        *level += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// How [`affine_scale_search`] measures the error of a candidate.
#[derive(Clone, Copy)]
pub(super) enum ErrorNorm {
    /// Weighted absolute error (Q2_K).
    Absolute,
    /// Weighted squared error (Q4_K, Q5_K).
    Squared,
}

/// The candidate inverse scales of [`affine_scale_search`]:
/// `(rmin + rdelta·step + nmax)/(max − min)` for `step` in `0..=steps`.
#[derive(Clone, Copy)]
pub(super) struct ScaleCandidates {
    pub rmin: f32,
    pub rdelta: f32,
    pub steps: i32,
}

/// Affine quantization of `x` to `L[i] ∈ 0..=nmax` with
/// `x ≈ scale·L − min_out` (`make_qkx2_quants`): the obvious scale from the
/// range, then a weighted least-squares fit of scale and minimum for each
/// candidate level assignment, keeping the one with the smallest weighted
/// error. Returns `(scale, min_out)`; `min_out ≥ 0` is the negated minimum.
/// `aux` is scratch of `x.len()` levels.
pub(super) fn affine_scale_search(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    candidates: ScaleCandidates,
    norm: ErrorNorm,
    levels: &mut [u8],
    aux: &mut [u8],
) -> (f32, f32) {
    let (Some((&x0, x_rest)), Some((&w0, w_rest))) = (x.split_first(), weights.split_first())
    else {
        return (0.0, 0.0);
    };
    let mut min = x0;
    let mut max = x0;
    let mut sum_w = w0;
    let mut sum_x = sum_w * x0;
    for (&v, &w) in x_rest.iter().zip(w_rest) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let nmax_f = nmax as f32;
    let error_of = |diff: f32| match norm {
        ErrorNorm::Absolute => diff.abs(),
        ErrorNorm::Squared => diff * diff,
    };

    let iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((level, &v), &w) in levels.iter_mut().zip(x).zip(weights) {
        *level = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        let diff = scale * *level as f32 + min - v;
        best_error += w * error_of(diff);
    }
    if candidates.steps < 1 {
        return (scale, -min);
    }
    for step in 0..=candidates.steps {
        let iscale = (candidates.rmin + candidates.rdelta * step as f32 + nmax_f) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((a, &v), &w) in aux.iter_mut().zip(x).zip(weights) {
            let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *a = l as u8;
            let l = l as f32;
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for ((&a, &v), &w) in aux.iter().zip(x).zip(weights) {
                let diff = this_scale * a as f32 + this_min - v;
                cur_error += w * error_of(diff);
            }
            if cur_error < best_error {
                levels.copy_from_slice(aux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}
