use super::{F16, F32, I32, I64, Rng, Tensor, assert_nmse, round_to};
use crate::kernels::strided::{OpError, RopeMode, RopeParams, check_rope, rope};

/// test-backend-ops' defaults: freq_base 10000, beta_fast 1, beta_slow 1,
/// n_ctx_orig 0.
fn params(mode: i32, n_dims: i32, fs: f32, ef: f32, af: f32, n_offs: i32) -> [i32; 16] {
    let mut raw = [0i32; 16];
    raw[1] = n_dims;
    raw[2] = mode;
    for (slot, value) in [(5, 10000.0f32), (6, fs), (7, ef), (8, af), (9, 1.0), (10, 1.0)] {
        raw[slot] = value.to_bits() as i32;
    }
    raw[15] = n_offs;
    raw
}

/// ggml's RoPE in f64: the YaRN angle of pair `pair` of position
/// `position`, its frequency `base^(-2·exponent/n_dims)`.
fn angle(p: &RopeParams, position: f64, exponent: usize, pair: usize, factor: f64) -> (f64, f64) {
    let n_dims = f64::from(p.n_dims);
    let base = f64::from(p.freq_base);
    let corr = |beta: f32| {
        n_dims * (f64::from(p.n_ctx_orig) / (f64::from(beta) * 2.0 * std::f64::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    let low = corr(p.beta_fast).floor().max(0.0);
    let high = corr(p.beta_slow).ceil().min(n_dims - 1.0);
    let extrap = position * base.powf(-2.0 * exponent as f64 / n_dims) / factor;
    let interp = f64::from(p.freq_scale) * extrap;
    let mut mscale = f64::from(p.attn_factor);
    let theta = if p.ext_factor != 0.0 {
        let y = (pair as f64 - low) / (high - low).max(0.001);
        let ramp = (1.0 - y.clamp(0.0, 1.0)) * f64::from(p.ext_factor);
        mscale *= 1.0 + 0.1 * (1.0 / f64::from(p.freq_scale)).ln();
        interp * (1.0 - ramp) + extrap * ramp
    } else {
        interp
    };
    (theta.cos() * mscale, theta.sin() * mscale)
}

/// Which of the four positions turns pair `pair`, and the exponent of its
/// frequency: the section the pair's sector `pair % Σs` lies in (for
/// interleaved M-RoPE: sector % 3, within the first 3·s pairs), counted
/// from the row's start, or in vision mode from the section's start.
fn section_of(p: &RopeParams, pair: usize) -> (usize, usize) {
    if !p.mode.is_multi_section() {
        return (0, pair);
    }
    let s = p.sections.map(|s| s as usize);
    let sector = pair % s.iter().sum::<usize>();
    let starts = [0, s[0], s[0] + s[1], s[0] + s[1] + s[2]];
    let section = match p.mode {
        RopeMode::InterleavedMulti => match sector % 3 {
            1 if sector < 3 * s[1] => 1,
            2 if sector < 3 * s[2] => 2,
            0 if sector < 3 * s[0] => 0,
            _ => 3,
        },
        _ => (0..4).rev().find(|&k| sector >= starts[k] && s[k] > 0).unwrap_or(0),
    };
    let exponent = if p.mode == RopeMode::Vision { sector - starts[section] } else { pair };
    (section, exponent)
}

fn reference(src0: &Tensor, pos: &Tensor, ff: Option<&Tensor>, p: &RopeParams) -> Vec<f32> {
    let [ne0, ne1, ne2, ne3] = src0.layout.ne();
    let (n_dims, n_offs) = (p.n_dims as usize, p.n_offs as usize);
    let pairs = if p.mode == RopeMode::Vision { ne0 / 2 } else { n_dims / 2 };
    let mut out = Vec::new();
    for i3 in 0..ne3 {
        for i2 in 0..ne2 {
            for i1 in 0..ne1 {
                let x = |i0: usize| f64::from(src0.get([i0, i1, i2, i3]));
                let mut row: Vec<f64> = (0..ne0).map(x).collect();
                for pair in 0..pairs {
                    let factor = ff.map_or(1.0, |f| f64::from(f.get([pair, 0, 0, 0])));
                    let (section, exponent) = section_of(p, pair);
                    let position = f64::from(pos.get([i2 + section * ne2, 0, 0, 0]));
                    let (cos, sin) = angle(p, position, exponent, pair, factor);
                    let (a, b) = match p.mode {
                        RopeMode::Normal => (n_offs + 2 * pair, n_offs + 2 * pair + 1),
                        RopeMode::Vision => (pair, pair + n_dims),
                        _ => (n_offs + pair, n_offs + pair + n_dims / 2),
                    };
                    row[a] = x(a) * cos - x(b) * sin;
                    row[b] = x(a) * sin + x(b) * cos;
                }
                out.extend(row.iter().map(|&v| round_to(src0.layout.elem(), v as f32)));
            }
        }
    }
    out
}

fn positions(count: usize, n_ctx: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let ids: Vec<i64> = (0..count).map(|_| rng.below(n_ctx) as i64).collect();
    Tensor::ids(I32, [count, 1, 1, 1], &ids)
}

fn run(src0: &Tensor, pos: &Tensor, ff: Option<&Tensor>, raw: [i32; 16]) -> Tensor {
    let p = RopeParams::from_op_params(&raw).unwrap();
    let mut dst = Tensor::poisoned(src0.layout.elem(), src0.layout.ne());
    rope(src0.view(), pos.view(), ff.map(Tensor::view), &mut dst.view_mut(), &p).unwrap();
    let expected = reference(src0, pos, ff, &p);
    let max = if src0.layout.elem() == F16 { 1e-5 } else { 1e-7 };
    assert_nmse(&dst.values(), &expected, max);
    dst
}

#[test]
fn params_follow_ggml_rope_impl_layout() {
    let raw = params(2, 64, 0.25, 0.5, 1.5, 4);
    let p = RopeParams::from_op_params(&raw).unwrap();
    assert_eq!((p.n_dims, p.mode, p.n_offs), (64, RopeMode::Neox, 4));
    assert_eq!((p.freq_base, p.freq_scale, p.ext_factor, p.attn_factor), (10000.0, 0.25, 0.5, 1.5));
}

#[test]
fn both_modes_rotate_every_pair_of_a_full_row() {
    for mode in [0, 2] {
        let src0 = Tensor::random(F32, [128, 4, 6, 1], 1, 1.0);
        run(&src0, &positions(6, 512, 2), None, params(mode, 128, 1.0, 0.0, 1.0, 0));
    }
}

#[test]
fn channels_past_n_dims_are_copied() {
    for mode in [0, 2] {
        let src0 = Tensor::random(F32, [64, 3, 5, 2], 3, 1.0);
        let dst = run(&src0, &positions(5, 512, 4), None, params(mode, 32, 1.0, 0.0, 1.0, 0));
        assert_eq!(dst.get([40, 1, 2, 1]), src0.get([40, 1, 2, 1]));
    }
}

#[test]
fn position_zero_is_the_identity_with_attn_factor_one() {
    let src0 = Tensor::random(F32, [8, 2, 1, 1], 5, 1.0);
    let dst =
        run(&src0, &Tensor::ids(I32, [1, 1, 1, 1], &[0]), None, params(0, 8, 1.0, 0.0, 1.0, 0));
    assert_eq!(dst.values(), src0.values());
}

#[test]
fn a_normal_pair_turns_by_the_position_angle() {
    // Pair 0 turns by p radians: (1, 0) at position 1 becomes (cos 1, sin 1).
    let src0 = Tensor::new(F32, [2, 1, 1, 1], &[1.0, 0.0]);
    let dst =
        run(&src0, &Tensor::ids(I32, [1, 1, 1, 1], &[1]), None, params(0, 2, 1.0, 0.0, 1.0, 0));
    assert_eq!(dst.values(), [1f32.cos(), 1f32.sin()]);
}

#[test]
fn yarn_scaling_and_attn_factor_follow_ggml() {
    for (mode, fs, ef, af) in [(0, 0.25, 0.5, 1.0), (2, 0.5, 1.0, 1.5), (2, 1.0, 0.0, 0.7)] {
        let src0 = Tensor::random(F32, [64, 3, 4, 1], 6, 1.0);
        let mut raw = params(mode, 64, fs, ef, af, 0);
        raw[4] = 4096; // n_ctx_orig, which YaRN's correction dims use
        raw[9] = 32f32.to_bits() as i32;
        run(&src0, &positions(4, 2048, 7), None, raw);
    }
}

#[test]
fn yarn_with_ggml_test_n_ctx_orig_zero() {
    // test-backend-ops passes n_ctx_orig 0, which makes the correction dims
    // [0, -inf].
    let src0 = Tensor::random(F32, [32, 2, 3, 1], 8, 1.0);
    run(&src0, &positions(3, 512, 9), None, params(2, 32, 0.5, 0.5, 1.0, 0));
}

#[test]
fn frequency_factors_divide_the_angles() {
    for mode in [0, 2] {
        let src0 = Tensor::random(F32, [32, 2, 3, 1], 10, 1.0);
        let mut rng = Rng::new(11);
        let factors: Vec<f32> = (0..16).map(|_| 1.0 + 0.1 * rng.unit()).collect();
        let ff = Tensor::new(F32, [16, 1, 1, 1], &factors);
        run(&src0, &positions(3, 512, 12), Some(&ff), params(mode, 32, 1.0, 0.0, 1.0, 0));
    }
}

#[test]
fn an_offset_window_rotates_only_its_channels() {
    for mode in [0, 2] {
        let src0 = Tensor::random(F32, [48, 2, 3, 1], 13, 1.0);
        let dst = run(&src0, &positions(3, 512, 14), None, params(mode, 16, 1.0, 0.0, 1.0, 8));
        assert_eq!(dst.get([3, 1, 2, 0]), src0.get([3, 1, 2, 0]));
        assert_eq!(dst.get([30, 1, 2, 0]), src0.get([30, 1, 2, 0]));
    }
}

#[test]
fn f16_data_and_strided_views_work() {
    // test-backend-ops' v = 1: a view of a tensor 2×, 4×, 3× larger.
    let base = Tensor::random(F16, [20, 20, 9, 1], 15, 1.0);
    let src0 = base.sub_view([10, 5, 3, 1]);
    run(&src0, &positions(3, 512, 16), None, params(2, 10, 1.0, 0.0, 1.0, 0));
    // v = 2: the second half of each row, at an odd element offset.
    let base = Tensor::random(F32, [20, 5, 3, 1], 17, 1.0);
    let nb = base.layout.nb();
    let src0 = base.view_4d([10, 5, 3, 1], [nb[1], nb[2], nb[3]], 10 * 4);
    run(&src0.misaligned(), &positions(3, 512, 18), None, params(0, 10, 1.0, 0.0, 1.0, 0));
}

fn check(src0: &Tensor, pos: &Tensor, ff: Option<&Tensor>, raw: [i32; 16]) -> OpError {
    match RopeParams::from_op_params(&raw) {
        Err(err) => err,
        Ok(p) => {
            let dst = Tensor::poisoned(src0.layout.elem(), src0.layout.ne());
            check_rope(&src0.layout, &pos.layout, ff.map(|f| &f.layout), &dst.layout, &p)
                .unwrap_err()
        }
    }
}

/// `params` with the multi-section `sections`.
fn multi(mode: i32, n_dims: i32, sections: [i32; 4]) -> [i32; 16] {
    let mut raw = params(mode, n_dims, 1.0, 0.0, 1.0, 0);
    raw[11..15].copy_from_slice(&sections);
    raw
}

#[test]
fn multi_section_modes_turn_each_section_by_its_own_position() {
    // test-backend-ops: qwen2-vl M-RoPE 128 dims, sections {16, 24, 24, 0};
    // qwen3-vl interleaved {24, 20, 20, 0}; sections summing to fewer pairs
    // than the row repeat.
    let cases = [(8, 128, [16, 24, 24, 0]), (40, 128, [24, 20, 20, 0]), (8, 32, [2, 3, 1, 1])];
    for (mode, n_dims, sections) in cases {
        for ne0 in [n_dims as usize, n_dims as usize + 16] {
            let src0 = Tensor::random(F32, [ne0, 4, 5, 1], 30, 1.0);
            run(&src0, &positions(20, 512, 31), None, multi(mode, n_dims, sections));
        }
    }
}

#[test]
fn vision_mode_rotates_the_whole_row_restarting_each_section() {
    // test-backend-ops: vision 2D RoPE with sections {16, 16, 0, 0}.
    let src0 = Tensor::random(F32, [64, 3, 4, 1], 32, 1.0);
    run(&src0, &positions(16, 100, 33), None, multi(24, 32, [8, 8, 0, 0]));
    let src0 = Tensor::random(F16, [80, 2, 3, 1], 34, 1.0);
    let factors: Vec<f32> = (0..40).map(|i| 1.0 + 0.01 * i as f32).collect();
    let ff = Tensor::new(F32, [40, 1, 1, 1], &factors);
    run(&src0, &positions(12, 100, 35), Some(&ff), multi(24, 40, [12, 8, 0, 0]));
}

#[test]
fn rejects_multi_section_layouts_ggml_cannot_compute() {
    let src0 = Tensor::random(F32, [32, 1, 2, 1], 36, 1.0);
    // One position per token instead of four.
    let err = check(&src0, &positions(2, 8, 37), None, multi(8, 32, [4, 4, 4, 0]));
    assert_eq!(err.to_string(), "ROPE: src1 ne[0] 2 != 4 * src0 ne[2] = 8");
    let pos = positions(8, 8, 38);
    for sections in [[0, 0, 0, 4], [-1, 4, 4, 0], [20, 20, 0, 0]] {
        let err = check(&src0, &pos, None, multi(8, 32, sections));
        assert!(matches!(err, OpError::InvalidParam { param: "sections", .. }), "{err}");
    }
    let err = check(&src0, &pos, None, multi(24, 8, [2, 2, 0, 0]));
    assert_eq!(err.to_string(), "ROPE: n_dims 8 must be src0 ne[0] / 2 in vision mode");
    // Vision rotates every pair of the row: it needs a factor for each.
    let ff = Tensor::new(F32, [8, 1, 1, 1], &[1.0; 8]);
    let err = check(&src0, &pos, Some(&ff), multi(24, 16, [4, 4, 0, 0]));
    assert_eq!(err.to_string(), "ROPE: freq_factors ne[0] 8 < ne0 / 2 = 16");
}

#[test]
fn rejects_unknown_and_retired_modes() {
    let src0 = Tensor::random(F32, [8, 1, 1, 1], 19, 1.0);
    let pos = positions(1, 8, 20);
    for mode in [4, 16, 32] {
        let err = check(&src0, &pos, None, params(mode, 8, 1.0, 0.0, 1.0, 0));
        assert!(matches!(err, OpError::InvalidParam { param: "mode", .. }), "{err}");
    }
    let err = check(&src0, &pos, None, params(1, 8, 1.0, 0.0, 1.0, 0));
    assert_eq!(err.to_string(), "ROPE: mode 1 is no longer supported by ggml (mode & 1)");
}

#[test]
fn rejects_n_dims_that_ggml_cannot_rotate() {
    let src0 = Tensor::random(F32, [8, 1, 1, 1], 21, 1.0);
    let pos = positions(1, 8, 22);
    // 0 makes ggml loop forever; odd and too many make no whole pairs.
    for n_dims in [0, 3, -2, 10] {
        let err = check(&src0, &pos, None, params(0, n_dims, 1.0, 0.0, 1.0, 0));
        assert!(matches!(err, OpError::InvalidParam { param: "n_dims", .. }), "{n_dims}: {err}");
    }
    let err = check(&src0, &pos, None, params(0, 4, 1.0, 0.0, 1.0, 6));
    assert_eq!(err.to_string(), "ROPE: n_dims 4 plus n_offs exceeds src0 ne[0]");
    let err = check(&src0, &pos, None, params(0, 4, 1.0, 0.0, 1.0, 1));
    assert!(matches!(err, OpError::InvalidParam { param: "n_offs", .. }), "{err}");
}

#[test]
fn rejects_positions_that_are_not_one_i32_per_token() {
    let src0 = Tensor::random(F32, [8, 2, 3, 1], 23, 1.0);
    let err = check(&src0, &positions(2, 8, 24), None, params(0, 8, 1.0, 0.0, 1.0, 0));
    assert_eq!(err.to_string(), "ROPE: src1 ne[0] 2 != src0 ne[2] 3");
    let wide = Tensor::ids(I64, [3, 1, 1, 1], &[0, 1, 2]);
    let err = check(&src0, &wide, None, params(0, 8, 1.0, 0.0, 1.0, 0));
    assert!(matches!(err, OpError::TypeMismatch { operand: "src1", .. }), "{err}");
}

#[test]
fn rejects_too_few_frequency_factors() {
    let src0 = Tensor::random(F32, [8, 1, 1, 1], 25, 1.0);
    let ff = Tensor::new(F32, [3, 1, 1, 1], &[1.0; 3]);
    let err = check(&src0, &positions(1, 8, 26), Some(&ff), params(0, 8, 1.0, 0.0, 1.0, 0));
    assert_eq!(err.to_string(), "ROPE: freq_factors ne[0] 3 < n_dims / 2 = 4");
}
