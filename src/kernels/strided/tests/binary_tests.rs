use super::{BF16, F16, F32, Tensor, round_to, unravel};
use crate::kernels::strided::{
    BinaryOp, ElementType, OpError, add, binary, check_binary, div, mul, sub,
};

const OPS: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

fn apply(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

/// `dst[i] = src0[i] op src1[i mod src1.ne]`, rounded to `dst_elem`.
fn reference(op: BinaryOp, src0: &Tensor, src1: &Tensor, dst_elem: ElementType) -> Vec<f32> {
    let ne = src0.layout.ne();
    let ne1 = src1.layout.ne();
    (0..src0.layout.elements())
        .map(|flat| {
            let i = unravel(flat, ne);
            let j = [i[0] % ne1[0], i[1] % ne1[1], i[2] % ne1[2], i[3] % ne1[3]];
            round_to(dst_elem, apply(op, src0.get(i), src1.get(j)))
        })
        .collect()
}

fn run(op: BinaryOp, src0: &Tensor, src1: &Tensor, dst_elem: ElementType) -> Tensor {
    let mut dst = Tensor::poisoned(dst_elem, src0.layout.ne());
    binary(op, src0.view(), src1.view(), &mut dst.view_mut()).unwrap();
    dst
}

#[test]
fn every_op_broadcasts_src1_by_repetition_in_every_dimension() {
    // test-backend-ops' bin_bcast shapes: ne {10, 5, 4, 3}-ish with repeats nr.
    let cases = [
        ([10, 10, 1, 1], [1, 2, 1, 1]),
        ([10, 5, 4, 3], [2, 1, 1, 1]),
        ([10, 5, 4, 3], [1, 2, 2, 2]),
        ([10, 5, 4, 3], [2, 2, 2, 2]),
        ([16, 1, 1, 1], [1, 7, 3, 2]),
    ];
    for op in OPS {
        for (seed, (ne, nr)) in cases.into_iter().enumerate() {
            let big = [ne[0] * nr[0], ne[1] * nr[1], ne[2] * nr[2], ne[3] * nr[3]];
            let src0 = Tensor::random(F32, big, seed as u64, 1.0);
            let src1 = Tensor::random(F32, ne, 100 + seed as u64, 1.0);
            let dst = run(op, &src0, &src1, F32);
            assert_eq!(dst.values(), reference(op, &src0, &src1, F32), "{op:?} {ne:?} {nr:?}");
        }
    }
}

#[test]
fn a_permuted_src1_is_read_through_its_strides() {
    // test-backend-ops' perm1: b made as [ne1, ne2, ne0, ne3], permuted back.
    let ne = [4, 3, 2, 2];
    let stored = Tensor::random(F32, [ne[1], ne[2], ne[0], ne[3]], 1, 1.0);
    let src1 = stored.permute([1, 2, 0, 3]);
    assert_eq!(src1.layout.ne(), ne);
    let src0 = Tensor::random(F32, [8, 6, 2, 4], 2, 1.0);
    for op in OPS {
        let dst = run(op, &src0, &src1, F32);
        assert_eq!(dst.values(), reference(op, &src0, &src1, F32), "{op:?}");
    }
}

#[test]
fn src1_may_be_a_view_of_src0s_buffer() {
    // test-backend-ops' src_overlap: both operands views of one tensor.
    let base = Tensor::random(F32, [6, 4, 2, 3], 3, 1.0);
    let nb = base.layout.nb();
    let src0 = base.view_4d([6, 4, 2, 2], [nb[1], nb[2], nb[3]], 0);
    let src1 = base.view_4d([6, 4, 2, 2], [nb[1], nb[2], nb[3]], nb[3]);
    let dst = run(BinaryOp::Add, &src0, &src1, F32);
    assert_eq!(dst.values(), reference(BinaryOp::Add, &src0, &src1, F32));
}

#[test]
fn half_precision_combinations_compute_in_f32_and_round_once() {
    let combos = [
        (F16, F16, F16),
        (BF16, BF16, BF16),
        (BF16, F32, BF16),
        (BF16, F32, F32),
        (F16, F32, F16),
        (F16, F32, F32),
    ];
    for (a, b, d) in combos {
        let src0 = Tensor::random(a, [12, 3, 2, 1], 4, 1.0);
        let src1 = Tensor::random(b, [12, 1, 2, 1], 5, 1.0);
        for op in OPS {
            let dst = run(op, &src0, &src1, d);
            assert_eq!(dst.values(), reference(op, &src0, &src1, d), "{op:?} {a} {b} {d}");
        }
    }
}

#[test]
fn named_ops_are_the_binary_ops() {
    let src0 = Tensor::new(F32, [2, 1, 1, 1], &[6.0, 8.0]);
    let src1 = Tensor::new(F32, [1, 1, 1, 1], &[2.0]);
    let results: Vec<Vec<f32>> = [add, sub, mul, div]
        .into_iter()
        .map(|op| {
            let mut dst = Tensor::poisoned(F32, [2, 1, 1, 1]);
            op(src0.view(), src1.view(), &mut dst.view_mut()).unwrap();
            dst.values()
        })
        .collect();
    assert_eq!(results, [vec![8.0, 10.0], vec![4.0, 6.0], vec![12.0, 16.0], vec![3.0, 4.0]]);
}

#[test]
fn works_on_misaligned_bytes() {
    let src0 = Tensor::random(F16, [7, 3, 1, 1], 6, 1.0).misaligned();
    let src1 = Tensor::random(F32, [7, 1, 1, 1], 7, 1.0).misaligned();
    let mut dst = Tensor::poisoned(F16, [7, 3, 1, 1]).misaligned();
    binary(BinaryOp::Mul, src0.view(), src1.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.values(), reference(BinaryOp::Mul, &src0, &src1, F16));
}

#[test]
fn empty_tensors_compute_nothing() {
    let src0 = Tensor::random(F32, [0, 3, 1, 1], 8, 1.0);
    let src1 = Tensor::random(F32, [0, 1, 1, 1], 9, 1.0);
    let mut dst = Tensor::poisoned(F32, [0, 3, 1, 1]);
    binary(BinaryOp::Add, src0.view(), src1.view(), &mut dst.view_mut()).unwrap();
}

#[test]
fn rejects_src1_that_does_not_repeat_into_src0() {
    let src0 = Tensor::random(F32, [4, 3, 1, 1], 10, 1.0);
    let src1 = Tensor::random(F32, [3, 1, 1, 1], 11, 1.0);
    let err = check_binary(BinaryOp::Add, &src0.layout, &src1.layout, &src0.layout).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ADD: src1 with ne [3, 1, 1, 1] does not repeat into src0 with ne [4, 3, 1, 1]"
    );
}

#[test]
fn rejects_an_empty_src1_for_a_non_empty_src0() {
    let src0 = Tensor::random(F32, [4, 3, 1, 1], 12, 1.0);
    let src1 = Tensor::random(F32, [4, 0, 1, 1], 13, 1.0);
    let err = check_binary(BinaryOp::Mul, &src0.layout, &src1.layout, &src0.layout).unwrap_err();
    assert!(matches!(err, OpError::NotRepeatable { .. }), "{err}");
}

#[test]
fn rejects_a_dst_shape_other_than_src0s() {
    let src0 = Tensor::random(F32, [4, 3, 1, 1], 14, 1.0);
    let dst = Tensor::poisoned(F32, [4, 1, 1, 1]);
    let err = check_binary(BinaryOp::Sub, &src0.layout, &dst.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "SUB: dst has ne [4, 1, 1, 1], expected [4, 3, 1, 1]");
}

#[test]
fn rejects_type_combinations_ggml_does_not_compute() {
    let f32_t = Tensor::random(F32, [4, 1, 1, 1], 15, 1.0);
    let f16_t = Tensor::random(F16, [4, 1, 1, 1], 16, 1.0);
    // f32 src0 with an f16 src1.
    let err = check_binary(BinaryOp::Add, &f32_t.layout, &f16_t.layout, &f32_t.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { operand: "src1", .. }), "{err}");
    // f16 + f16 into f32.
    let err = check_binary(BinaryOp::Add, &f16_t.layout, &f16_t.layout, &f32_t.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { operand: "dst", .. }), "{err}");
}

#[test]
fn rejects_a_src0_with_strided_rows() {
    let src0 = Tensor::random(F32, [3, 4, 1, 1], 17, 1.0).transpose();
    let src1 = Tensor::random(F32, [4, 1, 1, 1], 18, 1.0);
    let dst = Tensor::poisoned(F32, [4, 3, 1, 1]);
    let err = check_binary(BinaryOp::Div, &src0.layout, &src1.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
