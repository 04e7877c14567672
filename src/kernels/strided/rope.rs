//! ROPE: rotary position embedding (`ggml_rope_ext`, `ggml_rope_multi`):
//! normal, NeoX, multi-section (M-RoPE, interleaved M-RoPE) and vision
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
//! Multi-section modes (qwen2-vl's M-RoPE 8, qwen3-vl's interleaved 40, the
//! vision encoder's 24) take four positions per token (`src1` holds
//! `4 · ne2`: time, height, width, extra) and `op_params[11..15]` the
//! sections: pair `i` of a row turns by the position of the section
//! `i % Σsections` falls in (interleaved: by `i % 3` within the first
//! `3 · section` pairs), with NeoX pairing. Vision mode rotates pairs
//! `(i, i + n_dims)` over the whole row (`n_dims == ne0 / 2`) and restarts
//! the angle of each section at its first pair.
//!
//! `op_params`: `[1]` n_dims, `[2]` mode, `[4]` n_ctx_orig, `[5..11]` f32
//! freq_base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow,
//! `[11..15]` sections, `[15]` n_offs (`ggml_rope_set_offset`).

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

/// Which channels a rotation pairs, and which position turns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RopeMode {
    /// `GGML_ROPE_TYPE_NORMAL` (0): adjacent channels `(2i, 2i + 1)`.
    Normal,
    /// `GGML_ROPE_TYPE_NEOX` (2): channels `(i, i + n_dims / 2)`.
    Neox,
    /// `GGML_ROPE_TYPE_MROPE` (8): NeoX pairs, positions by section.
    Multi,
    /// `GGML_ROPE_TYPE_IMROPE` (40): NeoX pairs, sections interleaved.
    InterleavedMulti,
    /// `GGML_ROPE_TYPE_VISION` (24): pairs `(i, i + n_dims)` over the whole
    /// row, each section's angles restarted.
    Vision,
}

impl RopeMode {
    /// Whether the mode takes four positions per token and sections.
    pub const fn is_multi_section(self) -> bool {
        matches!(self, RopeMode::Multi | RopeMode::InterleavedMulti | RopeMode::Vision)
    }
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
    /// Pairs per section (time, height, width, extra) of the
    /// multi-section modes; zeros otherwise.
    pub sections: [i32; 4],
    /// First rotated channel.
    pub n_offs: i32,
}

impl RopeParams {
    /// Fails for modes other than normal (0), NeoX (2), M-RoPE (8), vision
    /// (24) and interleaved M-RoPE (40).
    pub fn from_op_params(params: &OpParams) -> Result<RopeParams, OpError> {
        let mode = match params[2] {
            0 => RopeMode::Normal,
            2 => RopeMode::Neox,
            8 => RopeMode::Multi,
            24 => RopeMode::Vision,
            40 => RopeMode::InterleavedMulti,
            mode => {
                let reason = if mode & 1 == 1 {
                    "is no longer supported by ggml (mode & 1)"
                } else {
                    "is not supported (0 normal, 2 neox, 8 mrope, 24 vision and 40 imrope are)"
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
            sections: [params[11], params[12], params[13], params[14]],
            n_offs: params[15],
        })
    }
}

fn invalid(param: &'static str, value: i32, reason: &'static str) -> OpError {
    OpError::InvalidParam { op: OP, param, value: value.to_string(), reason }
}

/// Checks src0 f32/f16 with `nb[0]` the element size; dst of its type and
/// shape, same `nb[0]`; `src1` an i32 vector of `src0.ne[2]` positions
/// (four times that for the multi-section modes); `freq_factors` f32 with a
/// value per rotated pair; `n_dims` positive, even and `n_offs + n_dims <=
/// ne0` with `n_offs` even and `>= 0`; for the multi-section modes,
/// sections `>= 0`, one of the first three positive, summing to at most
/// `ne0`; for vision, `n_dims == ne0 / 2` and no offset.
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
    if params.mode.is_multi_section() {
        let positions = src0.ne()[2].checked_mul(4).ok_or(OpError::InvalidParam {
            op: OP,
            param: "src0 ne[2]",
            value: src0.ne()[2].to_string(),
            reason: "is too many tokens for four positions each",
        })?;
        require_dim_eq(OP, "src1", src1, 0, "4 * src0 ne[2] = ", positions)?;
    } else {
        require_dim_eq(OP, "src1", src1, 0, "src0 ne[2] ", src0.ne()[2])?;
    }
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
    if params.mode.is_multi_section() {
        check_sections(params, ne0)?;
    }
    if params.mode == RopeMode::Vision {
        if n_dims != ne0 / 2 {
            return Err(invalid("n_dims", params.n_dims, "must be src0 ne[0] / 2 in vision mode"));
        }
        if n_offs != 0 {
            return Err(invalid("n_offs", params.n_offs, "must be 0 in vision mode"));
        }
    }
    if let Some(freq_factors) = freq_factors {
        require_same_type(OP, "freq_factors", freq_factors, ElementType::F32)?;
        let pairs = pair_count(params.mode, n_dims, ne0);
        let reference =
            if params.mode == RopeMode::Vision { "ne0 / 2 = " } else { "n_dims / 2 = " };
        require_dim_at_least(OP, "freq_factors", freq_factors, 0, reference, pairs)?;
    }
    Ok(())
}

/// ggml's rules on the sections: none negative (they index pairs), one of
/// time, height and width positive, and the sum within the row.
fn check_sections(params: &RopeParams, ne0: usize) -> Result<(), OpError> {
    let invalid_sections = |reason| OpError::InvalidParam {
        op: OP,
        param: "sections",
        value: format!("{:?}", params.sections),
        reason,
    };
    if params.sections.iter().any(|&s| s < 0) {
        return Err(invalid_sections("must not be negative"));
    }
    if params.sections[..3].iter().all(|&s| s == 0) {
        return Err(invalid_sections("must have a positive time, height or width section"));
    }
    // Four values below 2^31 each: the sum fits in i64.
    let total: i64 = params.sections.iter().map(|&s| i64::from(s)).sum();
    if usize::try_from(total).map_or(true, |total| total > ne0) {
        return Err(invalid_sections("sum to more than src0 ne[0]"));
    }
    Ok(())
}

/// How many pairs a row rotates: `n_dims / 2`, or the whole row's in vision
/// mode.
fn pair_count(mode: RopeMode, n_dims: usize, ne0: usize) -> usize {
    if mode == RopeMode::Vision { ne0 / 2 } else { n_dims / 2 }
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
    let ne2 = src0.layout().ne()[2];
    let pairs = pair_count(params.mode, n_dims, ne0);
    let factors: Vec<f32> = match &freq_factors {
        Some(view) => (0..pairs).map(|i| view.read_f32([i, 0, 0, 0])).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let angles_of = Angles {
        yarn: Yarn::new(params, n_dims),
        theta_scale: params.freq_base.powf(-2.0 / n_dims as f32),
        factors,
        mode: params.mode,
        // Checked non-negative and summing to at most ne0 in the modes that
        // read them; the others ignore them, as ggml does.
        sections: if params.mode.is_multi_section() {
            params.sections.map(|s| usize::try_from(s).unwrap_or(0))
        } else {
            [0; 4]
        },
    };
    // (cos, sin) of each pair for the current token.
    let mut angles = vec![(0.0f32, 0.0f32); pairs];
    let mut angles_for = None;
    let mut row = vec![0.0f32; ne0];
    let mut out = vec![0.0f32; ne0];
    for_each_row(src0.layout().ne(), |i1, i2, i3| {
        if angles_for != Some(i2) {
            let mut positions = [0.0f32; 4];
            let count = if params.mode.is_multi_section() { 4 } else { 1 };
            for (section, position) in positions.iter_mut().enumerate().take(count) {
                *position = src1.read_index([i2 + section * ne2, 0, 0, 0])? as f32;
            }
            angles_of.fill(positions, &mut angles);
            angles_for = Some(i2);
        }
        src0.read_row_f32(i1, i2, i3, &mut row)?;
        out.copy_from_slice(&row);
        let (start, partner) = match params.mode {
            RopeMode::Normal => (n_offs, 1),
            RopeMode::Neox | RopeMode::Multi | RopeMode::InterleavedMulti => (n_offs, n_dims / 2),
            RopeMode::Vision => (0, n_dims),
        };
        for (pair, &(cos, sin)) in angles.iter().enumerate() {
            let first = start
                + match params.mode {
                    RopeMode::Normal => 2 * pair,
                    _ => pair,
                };
            let (x0, x1) = (row[first], row[first + partner]);
            out[first] = x0 * cos - x1 * sin;
            out[first + partner] = x0 * sin + x1 * cos;
        }
        dst.write_row_f32(i1, i2, i3, &out)
    })
}

/// The angles of one token's pairs, computed as ggml's `ggml_rope_cache_init`
/// and `ggml_mrope_cache_init` do: in f32, by repeated multiplication.
struct Angles {
    yarn: Yarn,
    theta_scale: f32,
    factors: Vec<f32>,
    mode: RopeMode,
    sections: [usize; 4],
}

impl Angles {
    /// `(cos, sin)` of every pair for the positions (time, height, width,
    /// extra; only the first for the single-position modes).
    fn fill(&self, positions: [f32; 4], angles: &mut [(f32, f32)]) {
        let [s0, s1, s2, s3] = self.sections;
        let total = (s0 + s1 + s2 + s3).max(1);
        let (sec_w, sec_e) = (s0 + s1, s0 + s1 + s2);
        let mut theta = positions;
        for (pair, angle) in angles.iter_mut().enumerate() {
            let sector = pair % total;
            if self.mode == RopeMode::Vision {
                // Each section's angle restarts at its first pair.
                for (section, start) in [0, s0, sec_w, sec_e].into_iter().enumerate() {
                    if sector == start {
                        theta[section] = positions[section];
                        break;
                    }
                }
            }
            let section = match self.mode {
                RopeMode::Normal | RopeMode::Neox => 0,
                RopeMode::InterleavedMulti => match sector % 3 {
                    1 if sector < 3 * s1 => 1,
                    2 if sector < 3 * s2 => 2,
                    0 if sector < 3 * s0 => 0,
                    _ => 3,
                },
                RopeMode::Multi | RopeMode::Vision => {
                    if sector < s0 {
                        0
                    } else if sector < sec_w {
                        1
                    } else if sector < sec_w + s2 {
                        2
                    } else {
                        3
                    }
                }
            };
            let factor = self.factors.get(pair).copied().unwrap_or(1.0);
            *angle = self.yarn.cos_sin(theta[section] / factor, 2 * pair);
            theta.iter_mut().for_each(|t| *t *= self.theta_scale);
        }
    }
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
