use half::f16;

use super::{BF16, F16, F32, I32, Tensor, assert_close, round_to};
use crate::kernels::strided::{OpError, UnaryOp, check_unary, unary};

const ALL: [UnaryOp; 26] = [
    UnaryOp::Abs,
    UnaryOp::Sgn,
    UnaryOp::Neg,
    UnaryOp::Step,
    UnaryOp::Tanh,
    UnaryOp::Elu,
    UnaryOp::Relu,
    UnaryOp::Sigmoid,
    UnaryOp::Gelu,
    UnaryOp::GeluQuick,
    UnaryOp::GeluErf,
    UnaryOp::Silu,
    UnaryOp::Hardswish,
    UnaryOp::Hardsigmoid,
    UnaryOp::Exp,
    UnaryOp::Expm1,
    UnaryOp::Softplus,
    UnaryOp::Floor,
    UnaryOp::Ceil,
    UnaryOp::Round,
    UnaryOp::Trunc,
    UnaryOp::Sqr,
    UnaryOp::Sqrt,
    UnaryOp::Log,
    UnaryOp::Sin,
    UnaryOp::Cos,
];

/// Each op from its definition, in f64.
fn reference(op: UnaryOp, x: f64) -> f64 {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    match op {
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sgn => x.signum() * f64::from(u8::from(x != 0.0)),
        UnaryOp::Neg => -x,
        UnaryOp::Step => f64::from(u8::from(x > 0.0)),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Elu => {
            if x > 0.0 {
                x
            } else {
                x.exp_m1()
            }
        }
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Gelu => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        UnaryOp::GeluQuick => x * sigmoid(1.702 * x),
        UnaryOp::GeluErf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Hardswish => x * ((x + 3.0) / 6.0).clamp(0.0, 1.0),
        UnaryOp::Hardsigmoid => ((x + 3.0) / 6.0).clamp(0.0, 1.0),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Expm1 => x.exp_m1(),
        UnaryOp::Softplus => {
            if x > 20.0 {
                x
            } else {
                x.exp().ln_1p()
            }
        }
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round(),
        UnaryOp::Trunc => x.trunc(),
        UnaryOp::Sqr => x * x,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
    }
}

fn run(op: UnaryOp, src0: &Tensor) -> Tensor {
    let mut dst = Tensor::poisoned(src0.layout.elem(), src0.layout.ne());
    unary(op, src0.view(), &mut dst.view_mut()).unwrap();
    dst
}

/// Inputs in [-3, 3] plus a few exact cases; positive for SQRT and LOG.
fn inputs(op: UnaryOp) -> Tensor {
    let positive = matches!(op, UnaryOp::Sqrt | UnaryOp::Log);
    Tensor::from_fn(F32, [32, 3, 2, 1], |[i0, i1, i2, _]| {
        let x = (i0 as f32 - 15.5) * 0.19 + i1 as f32 * 0.013 - i2 as f32 * 0.5;
        if positive { x.abs() + 0.01 } else { x }
    })
}

#[test]
fn every_op_matches_its_definition_in_f32() {
    for op in ALL {
        let src0 = inputs(op);
        let dst = run(op, &src0);
        let expected: Vec<f32> =
            src0.values().iter().map(|&x| reference(op, f64::from(x)) as f32).collect();
        // GELU and GELU_QUICK go through ggml's f16 table: f16 accuracy.
        let tolerance = if matches!(op, UnaryOp::Gelu | UnaryOp::GeluQuick) { 2e-3 } else { 1e-5 };
        assert_close(&dst.values(), &expected, tolerance);
    }
}

#[test]
fn f16_and_bf16_compute_in_f32_and_round_once() {
    for elem in [F16, BF16] {
        for op in ALL {
            let src0 = Tensor::from_fn(elem, [16, 2, 1, 1], |[i0, i1, ..]| {
                let x = i0 as f32 * 0.37 - 2.9 + i1 as f32 * 0.11;
                if matches!(op, UnaryOp::Sqrt | UnaryOp::Log) { x.abs() + 0.01 } else { x }
            });
            let dst = run(op, &src0);
            let expected: Vec<f32> = src0
                .values()
                .iter()
                .map(|&x| round_to(elem, reference(op, f64::from(x)) as f32))
                .collect();
            // One rounding of the result; exp and friends may differ from
            // the f64 value by an f32 ulp before it.
            let ulp = if elem == F16 { 1e-3 } else { 8e-3 };
            assert_close(&dst.values(), &expected, ulp);
        }
    }
}

#[test]
fn f32_gelu_is_ggml_table_lookup() {
    // Inside (-10, 10) the f32 result is ggml's gelu_f32 of f16(x), stored
    // as f16; outside, 0 or x.
    let values = [-9.99f32, -3.0, -0.001, 0.0, 0.3333, 2.5, 9.5, 10.0, 25.0, -11.0];
    let src0 = Tensor::new(F32, [values.len(), 1, 1, 1], &values);
    let dst = run(UnaryOp::Gelu, &src0);
    let expected: Vec<f32> = values
        .iter()
        .map(|&x| {
            if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x
            } else {
                let rounded = f16::from_f32(x).to_f32();
                let gelu = 0.5
                    * rounded
                    * (1.0 + (0.797_884_6 * rounded * (1.0 + 0.044715 * rounded * rounded)).tanh());
                f16::from_f32(gelu).to_f32()
            }
        })
        .collect();
    assert_eq!(dst.values(), expected);
}

#[test]
fn extreme_inputs_give_no_nan_where_ggml_gives_none() {
    // test-backend-ops feeds [-150, 150] to look for NaN in GELU and SILU.
    let values = [-150.0f32, -88.0, 88.0, 150.0];
    let src0 = Tensor::new(F32, [4, 1, 1, 1], &values);
    for op in [UnaryOp::Gelu, UnaryOp::GeluQuick, UnaryOp::Silu, UnaryOp::Sigmoid, UnaryOp::Tanh] {
        let dst = run(op, &src0);
        assert!(dst.values().iter().all(|v| !v.is_nan()), "{op:?}: {:?}", dst.values());
    }
}

#[test]
fn reads_a_view_with_padded_rows() {
    // test-backend-ops' "v": a view of a tensor 3×, 2×, 5×, 4× larger.
    let base = Tensor::random(F32, [24, 4, 10, 4], 1, 3.0);
    let src0 = base.sub_view([8, 2, 2, 1]);
    let dst = run(UnaryOp::Silu, &src0);
    let expected: Vec<f32> = src0.values().iter().map(|&x| x / (1.0 + (-x).exp())).collect();
    assert_eq!(dst.values(), expected);
}

#[test]
fn rejects_a_dst_of_another_type() {
    let src0 = Tensor::random(F16, [4, 1, 1, 1], 2, 1.0);
    let dst = Tensor::poisoned(F32, [4, 1, 1, 1]);
    let err = check_unary(UnaryOp::Exp, &src0.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "EXP: dst has type f32, expected f16");
}

#[test]
fn rejects_integer_tensors() {
    let src0 = Tensor::ids(I32, [2, 1, 1, 1], &[1, 2]);
    let err = check_unary(UnaryOp::Neg, &src0.layout, &src0.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { op: "NEG", .. }), "{err}");
}

#[test]
fn rejects_rows_that_are_not_contiguous() {
    let src0 = Tensor::random(F32, [3, 4, 1, 1], 3, 1.0).transpose();
    let dst = Tensor::poisoned(F32, [4, 3, 1, 1]);
    let err = check_unary(UnaryOp::Relu, &src0.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
