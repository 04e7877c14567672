//! ROPE: rotary position embedding (`ggml_rope_ext`), normal and NeoX
//! modes, with YaRN scaling and optional frequency factors, f32 and f16.
//!
//! Row `(i1, i2, i3)` of `src0` (head `i1` of token `i2`) is rotated by the
//! angles of position `src1[i2]`: pairs of the `n_dims` channels starting at
//! `n_offs` — adjacent pairs `(2i, 2i+1)` in normal mode, `(i, i + n_dims/2)`
//! in NeoX mode — turn by `theta_i = p · freq_base^(-2i/n_dims) / ff[i]`,
//! corrected by YaRN (`ext_factor`, `beta_fast`, `beta_slow`, `n_ctx_orig`)
//! and scaled by `attn_factor`, exactly as ggml's `rope_yarn`; the other
//! channels are copied. Angles are computed in f32 by repeated
//! multiplication, as ggml does, so that results agree to rounding.
//!
//! `op_params`: `[1]` n_dims, `[2]` mode, `[4]` n_ctx_orig, `[5..11]` f32
//! freq_base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow,
//! `[15]` n_offs (`ggml_rope_set_offset`). The multi-section and vision
//! modes are refused.

use std::f32::consts::PI;

use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::rules::{
    OpParams, for_each_row, param_f32, require_dim_at_least, require_dim_eq, require_row_stride,
    require_same_type, require_shape, require_type,
};
use crate::kernels::strided::soft_max::c_max;
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "ROPE";

/// Which channels a rotation pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RopeMode {
    /// `GGML_ROPE_TYPE_NORMAL` (0): adjacent channels `(2i, 2i + 1)`.
    Normal,
    /// `GGML_ROPE_TYPE_NEOX` (2): channels `(i, i + n_dims / 2)`.
    Neox,
}

/// The parameters of ROPE, as stored in `op_params`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeParams {
    pub n_dims: i32,
    pub mode: RopeMode,
    pub n_ctx_orig: i32,
    pub freq_base: f32,
    pub freq_scale: f32,
    pub ext_factor: f32,
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// First rotated channel.
    pub n_offs: i32,
}

impl RopeParams {
    /// Fails for modes other than normal (0) and NeoX (2).
    pub fn from_op_params(params: &OpParams) -> Result<RopeParams, OpError> {
        let mode = match params[2] {
            0 => RopeMode::Normal,
            2 => RopeMode::Neox,
            mode => {
                let reason = if mode & 1 == 1 {
                    "is no longer supported by ggml (mode & 1)"
                } else {
                    "is not supported (normal 0 and neox 2 are)"
                };
                return Err(OpError::InvalidParam {
                    op: OP,
                    param: "mode",
                    value: mode.to_string(),
                    reason,
                });
            }
        };
        Ok(RopeParams {
            n_dims: params[1],
            mode,
            n_ctx_orig: params[4],
            freq_base: param_f32(params, 5),
            freq_scale: param_f32(params, 6),
            ext_factor: param_f32(params, 7),
            attn_factor: param_f32(params, 8),
            beta_fast: param_f32(params, 9),
            beta_slow: param_f32(params, 10),
            n_offs: params[15],
        })
    }
}

fn invalid(param: &'static str, value: i32, reason: &'static str) -> OpError {
    OpError::InvalidParam { op: OP, param, value: value.to_string(), reason }
}

/// Checks src0 f32/f16 with `nb[0]` the element size; dst of its type and
/// shape, same `nb[0]`; `src1` an i32 vector of `src0.ne[2]` positions;
/// `freq_factors` f32 with at least `n_dims / 2` values; `n_dims` positive,
/// even and `n_offs + n_dims <= ne0` with `n_offs` even and `>= 0`.
pub fn check_rope(
    src0: &Layout,
    src1: &Layout,
    freq_factors: Option<&Layout>,
    dst: &Layout,
    params: &RopeParams,
) -> Result<(), OpError> {
    require_type(OP, "src0", src0, &[ElementType::F32, ElementType::F16], "f32, f16")?;
    require_same_type(OP, "dst", dst, src0.elem())?;
    require_shape(OP, "dst", dst, src0.ne())?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "dst", dst)?;
    require_same_type(OP, "src1", src1, ElementType::I32)?;
    require_dim_eq(OP, "src1", src1, 0, "src0 ne[2] ", src0.ne()[2])?;
    for dim in 1..4 {
        require_dim_eq(OP, "src1", src1, dim, "", 1)?;
    }
    let ne0 = src0.ne()[0];
    // ggml loops forever on n_dims 0; negative or odd counts make no pairs.
    let n_dims = usize::try_from(params.n_dims)
        .ok()
        .filter(|&n| n > 0 && n % 2 == 0)
        .ok_or_else(|| invalid("n_dims", params.n_dims, "must be positive and even"))?;
    let n_offs = usize::try_from(params.n_offs)
        .ok()
        .filter(|&n| n % 2 == 0)
        .ok_or_else(|| invalid("n_offs", params.n_offs, "must be >= 0 and even"))?;
    if n_offs + n_dims > ne0 {
        return Err(invalid("n_dims", params.n_dims, "plus n_offs exceeds src0 ne[0]"));
    }
    if let Some(freq_factors) = freq_factors {
        require_same_type(OP, "freq_factors", freq_factors, ElementType::F32)?;
        require_dim_at_least(OP, "freq_factors", freq_factors, 0, "n_dims / 2 = ", n_dims / 2)?;
    }
    Ok(())
}

/// `dst = rope(src0, positions src1)`.
pub fn rope(
    src0: View<'_>,
    src1: View<'_>,
    freq_factors: Option<View<'_>>,
    dst: &mut ViewMut<'_>,
    params: &RopeParams,
) -> Result<(), OpError> {
    check_rope(
        src0.layout(),
        src1.layout(),
        freq_factors.as_ref().map(View::layout),
        dst.layout(),
        params,
    )?;
    // Both are checked non-negative and within ne0 above.
    let n_dims = params.n_dims as usize;
    let n_offs = params.n_offs as usize;
    let ne0 = src0.layout().ne()[0];
    let factors: Vec<f32> = match &freq_factors {
        Some(view) => {
            (0..n_dims / 2).map(|i| view.read_f32([i, 0, 0, 0])).collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };
    let yarn = Yarn::new(params, n_dims);
    let theta_scale = params.freq_base.powf(-2.0 / n_dims as f32);
    // (cos, sin) of each pair for the current position.
    let mut angles = vec![(0.0f32, 0.0f32); n_dims / 2];
    let mut angles_for = None;
    let mut row = vec![0.0f32; ne0];
    let mut out = vec![0.0f32; ne0];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        if angles_for != Some(i2) {
            let position = src1.read_index([i2, 0, 0, 0])? as f32;
            let mut theta = position;
            for (pair, angle) in angles.iter_mut().enumerate() {
                let factor = factors.get(pair).copied().unwrap_or(1.0);
                *angle = yarn.cos_sin(theta / factor, 2 * pair);
                theta *= theta_scale;
            }
            angles_for = Some(i2);
        }
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        out.copy_from_slice(&row);
        let (window, window_out) =
            (&row[n_offs..n_offs + n_dims], &mut out[n_offs..n_offs + n_dims]);
        let partner = match params.mode {
            RopeMode::Normal => 1,
            RopeMode::Neox => n_dims / 2,
        };
        for (pair, &(cos, sin)) in angles.iter().enumerate() {
            let first = match params.mode {
                RopeMode::Normal => 2 * pair,
                RopeMode::Neox => pair,
            };
            let (x0, x1) = (window[first], window[first + partner]);
            window_out[first] = x0 * cos - x1 * sin;
            window_out[first + partner] = x0 * sin + x1 * cos;
        }
        dst.write_row_f32(i1, i2, i3, &out)
    })
}

/// YaRN's correction of each angle (ggml's `rope_yarn`, with the correction
/// dimensions of `ggml_rope_yarn_corr_dims`).
struct Yarn {
    freq_scale: f32,
    ext_factor: f32,
    mscale: f32,
    low: f32,
    high: f32,
}

impl Yarn {
    fn new(params: &RopeParams, n_dims: usize) -> Yarn {
        let n_dims_f = n_dims as f32;
        let corr_dim = |n_rot: f32| {
            n_dims_f * (params.n_ctx_orig as f32 / (n_rot * 2.0 * PI)).ln()
                / (2.0 * params.freq_base.ln())
        };
        let start = corr_dim(params.beta_fast).floor();
        let end = corr_dim(params.beta_slow).ceil();
        // ggml: MAX(0, start) and MIN(n_dims - 1, end), C's macros.
        let low = c_max(0.0, start);
        let high = if n_dims_f - 1.0 < end { n_dims_f - 1.0 } else { end };
        let mut mscale = params.attn_factor;
        if params.ext_factor != 0.0 {
            mscale *= 1.0 + 0.1 * (1.0 / params.freq_scale).ln();
        }
        Yarn { freq_scale: params.freq_scale, ext_factor: params.ext_factor, mscale, low, high }
    }

    /// `(cos θ, sin θ)·mscale` for the unscaled angle `theta_extrap` of
    /// channel `i0`.
    fn cos_sin(&self, theta_extrap: f32, i0: usize) -> (f32, f32) {
        let theta_interp = self.freq_scale * theta_extrap;
        let theta = if self.ext_factor != 0.0 {
            let ramp_mix = self.ramp(i0) * self.ext_factor;
            theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix
        } else {
            theta_interp
        };
        (theta.cos() * self.mscale, theta.sin() * self.mscale)
    }

    /// ggml's `rope_yarn_ramp`: 1 below the low correction dimension, 0
    /// above the high one.
    fn ramp(&self, i0: usize) -> f32 {
        let y = ((i0 / 2) as f32 - self.low) / c_max(0.001, self.high - self.low);
        let clamped = c_max(0.0, y);
        1.0 - if 1.0 < clamped { 1.0 } else { clamped }
    }
}
