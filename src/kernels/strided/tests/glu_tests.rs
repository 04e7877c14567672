use half::f16;

use super::{BF16, F16, F32, Tensor, assert_close, float_params, round_to};
use crate::kernels::strided::{ElementType, GluOp, GluParams, OpError, check_glu, glu};

/// `alpha` 1.702 and `limit` 7, as test-backend-ops passes SWIGLU_OAI
/// (the others ignore them).
fn params(op: i32, swapped: bool) -> GluParams {
    let mut raw = float_params(2, &[1.702, 7.0]);
    raw[0] = op;
    raw[1] = i32::from(swapped);
    GluParams::from_op_params(&raw).unwrap()
}

/// f(x) · g from the definitions, in f64, rounded to `elem`.
fn reference(op: GluOp, elem: ElementType, x: f32, g: f32) -> f32 {
    let (x, g) = (f64::from(x), f64::from(g));
    let f = match op {
        GluOp::Reglu => x.max(0.0),
        GluOp::Geglu => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        GluOp::Swiglu => x / (1.0 + (-x).exp()),
        GluOp::GegluErf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        GluOp::GegluQuick => x / (1.0 + (-1.702 * x).exp()),
        // gpt-oss with ggml's test alpha 1.702, limit 7 (see `params`).
        GluOp::SwigluOai => {
            let (x, g) = (x.min(7.0), g.clamp(-7.0, 7.0));
            return round_to(elem, (x / (1.0 + (-1.702 * x).exp()) * (g + 1.0)) as f32);
        }
        GluOp::SwigluClamp => {
            let (x, g) = (x.min(7.0), g.clamp(-7.0, 7.0));
            return round_to(elem, (x / (1.0 + (-x).exp()) * g) as f32);
        }
    };
    round_to(elem, (f * g) as f32)
}

fn fused_reference(src0: &Tensor, op: GluOp, swapped: bool) -> Vec<f32> {
    let [ne0, ne1, ne2, ne3] = src0.layout.ne();
    let nc = ne0 / 2;
    let mut out = Vec::new();
    for i3 in 0..ne3 {
        for i2 in 0..ne2 {
            for i1 in 0..ne1 {
                for i0 in 0..nc {
                    let (a, b) = (src0.get([i0, i1, i2, i3]), src0.get([i0 + nc, i1, i2, i3]));
                    let (x, g) = if swapped { (b, a) } else { (a, b) };
                    out.push(reference(op, src0.layout.elem(), x, g));
                }
            }
        }
    }
    out
}

const OPS: [(i32, GluOp); 7] = [
    (0, GluOp::Reglu),
    (1, GluOp::Geglu),
    (2, GluOp::Swiglu),
    (3, GluOp::SwigluOai),
    (4, GluOp::GegluErf),
    (5, GluOp::GegluQuick),
    (6, GluOp::SwigluClamp),
];

/// GEGLU and GEGLU_QUICK go through ggml's f16 tables in f32.
fn tolerance(op: GluOp) -> f32 {
    if matches!(op, GluOp::Geglu | GluOp::GegluQuick) { 2e-3 } else { 1e-5 }
}

#[test]
fn fused_rows_gate_their_first_half_with_the_second() {
    for (code, op) in OPS {
        for swapped in [false, true] {
            let src0 = Tensor::random(F32, [128, 2, 2, 2], 1, 3.0);
            let mut dst = Tensor::poisoned(F32, [64, 2, 2, 2]);
            glu(src0.view(), None, &mut dst.view_mut(), params(code, swapped)).unwrap();
            assert_close(&dst.values(), &fused_reference(&src0, op, swapped), tolerance(op));
        }
    }
}

#[test]
fn split_form_gates_src0_with_src1() {
    for (code, op) in OPS {
        let x = Tensor::random(F32, [16, 3, 1, 1], 2, 3.0);
        let g = Tensor::random(F32, [16, 3, 1, 1], 3, 3.0);
        let mut dst = Tensor::poisoned(F32, [16, 3, 1, 1]);
        glu(x.view(), Some(g.view()), &mut dst.view_mut(), params(code, false)).unwrap();
        let expected: Vec<f32> =
            x.values().iter().zip(g.values()).map(|(&a, b)| reference(op, F32, a, b)).collect();
        assert_close(&dst.values(), &expected, tolerance(op));
    }
}

#[test]
fn reads_views_with_padded_rows() {
    // test-backend-ops' "v": ne0 × 3 in memory.
    let x = Tensor::random(F32, [48, 2, 2, 1], 4, 3.0).sub_view([16, 2, 2, 1]);
    let g = Tensor::random(F32, [48, 2, 2, 1], 5, 3.0).sub_view([16, 2, 2, 1]);
    let mut dst = Tensor::poisoned(F32, [16, 2, 2, 1]);
    glu(x.view(), Some(g.view()), &mut dst.view_mut(), params(2, false)).unwrap();
    let expected: Vec<f32> = x
        .values()
        .iter()
        .zip(g.values())
        .map(|(&a, b)| reference(GluOp::Swiglu, F32, a, b))
        .collect();
    assert_close(&dst.values(), &expected, 1e-5);
}

#[test]
fn half_types_round_once() {
    for elem in [F16, BF16] {
        let src0 = Tensor::random(elem, [32, 3, 1, 1], 6, 3.0);
        let mut dst = Tensor::poisoned(elem, [16, 3, 1, 1]);
        for (code, op) in [(2, GluOp::Swiglu), (4, GluOp::GegluErf)] {
            glu(src0.view(), None, &mut dst.view_mut(), params(code, false)).unwrap();
            let ulp = if elem == F16 { 1e-3 } else { 8e-3 };
            assert_close(&dst.values(), &fused_reference(&src0, op, false), ulp);
        }
    }
}

#[test]
fn f32_geglu_below_minus_ten_is_zero_even_for_an_infinite_gate() {
    let x = Tensor::new(F32, [2, 1, 1, 1], &[-12.0, 11.0]);
    let g = Tensor::new(F32, [2, 1, 1, 1], &[f32::INFINITY, 2.0]);
    let mut dst = Tensor::poisoned(F32, [2, 1, 1, 1]);
    glu(x.view(), Some(g.view()), &mut dst.view_mut(), params(1, false)).unwrap();
    assert_eq!(dst.values(), [0.0, 22.0]);
}

#[test]
fn f16_geglu_multiplies_the_tabled_gelu() {
    let x = Tensor::new(F16, [1, 1, 1, 1], &[0.7]);
    let g = Tensor::new(F16, [1, 1, 1, 1], &[1.3]);
    let mut dst = Tensor::poisoned(F16, [1, 1, 1, 1]);
    glu(x.view(), Some(g.view()), &mut dst.view_mut(), params(1, false)).unwrap();
    let xv = x.values()[0];
    let gelu = 0.5 * xv * (1.0 + (0.797_884_6 * xv * (1.0 + 0.044715 * xv * xv)).tanh());
    let tabled = f16::from_f32(gelu).to_f32();
    assert_eq!(dst.values()[0], round_to(F16, tabled * g.values()[0]));
}

#[test]
fn rejects_unknown_glu_ops() {
    let mut raw = [0i32; 16];
    raw[0] = 7;
    let err = GluParams::from_op_params(&raw).unwrap_err();
    assert_eq!(err.to_string(), "GLU: op 7 is no GLU op (REGLU 0 ... SWIGLU_CLAMP 6)");
}

#[test]
fn rejects_a_fused_dst_that_is_not_half_as_wide() {
    let src0 = Tensor::random(F32, [8, 2, 1, 1], 7, 1.0);
    let dst = Tensor::poisoned(F32, [8, 2, 1, 1]);
    let err = check_glu(&src0.layout, None, &dst.layout, params(2, false)).unwrap_err();
    assert_eq!(err.to_string(), "GLU: dst has ne [8, 2, 1, 1], expected [4, 2, 1, 1]");
}

#[test]
fn rejects_split_operands_of_different_shape_or_type() {
    let x = Tensor::random(F32, [8, 2, 1, 1], 8, 1.0);
    let narrow = Tensor::random(F32, [4, 2, 1, 1], 9, 1.0);
    let err = check_glu(&x.layout, Some(&narrow.layout), &x.layout, params(2, false)).unwrap_err();
    assert!(matches!(err, OpError::ShapeMismatch { operand: "src1", .. }), "{err}");
    let half = Tensor::random(F16, [8, 2, 1, 1], 10, 1.0);
    let err = check_glu(&x.layout, Some(&half.layout), &x.layout, params(2, false)).unwrap_err();
    assert!(matches!(err, OpError::TypeMismatch { operand: "src1", .. }), "{err}");
}

#[test]
fn rejects_a_permuted_source() {
    let src0 = Tensor::random(F32, [4, 3, 2, 1], 11, 1.0).permute([0, 2, 1, 3]);
    let dst = Tensor::poisoned(F32, [2, 2, 3, 1]);
    let err = check_glu(&src0.layout, None, &dst.layout, params(2, false)).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}

#[test]
fn swiglu_oai_takes_only_f32_and_swiglu_clamp_not_bf16() {
    let half = Tensor::random(F16, [8, 2, 1, 1], 12, 1.0);
    let err = check_glu(&half.layout, Some(&half.layout), &half.layout, params(3, false));
    assert!(matches!(err, Err(OpError::TypeMismatch { operand: "src0", .. })), "{err:?}");
    assert!(check_glu(&half.layout, Some(&half.layout), &half.layout, params(6, false)).is_ok());
    let brain = Tensor::random(BF16, [8, 2, 1, 1], 13, 1.0);
    let err = check_glu(&brain.layout, Some(&brain.layout), &brain.layout, params(6, false));
    assert!(matches!(err, Err(OpError::UnsupportedType { operand: "src0", .. })), "{err:?}");
}
