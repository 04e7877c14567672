use super::{F16, F32, I32, Tensor};
use crate::kernels::quant::BlockFormat;
use crate::kernels::strided::{ConcatParams, OpError, check_concat, concat};

fn params(dim: i32) -> ConcatParams {
    let mut raw = [0i32; 16];
    raw[0] = dim;
    ConcatParams::from_op_params(&raw).unwrap()
}

fn joined(a: &Tensor, b: &Tensor, dim: usize) -> Tensor {
    let mut ne = a.layout.ne();
    ne[dim] += b.layout.ne()[dim];
    let mut dst = Tensor::poisoned(a.layout.elem(), ne);
    concat(a.view(), b.view(), &mut dst.view_mut(), params(dim as i32)).unwrap();
    dst
}

#[test]
fn joins_along_every_dimension() {
    for dim in 0..4 {
        let mut ne_b = [3, 2, 2, 2];
        ne_b[dim] = 5;
        let a = Tensor::random(F32, [3, 2, 2, 2], 1, 1.0);
        let b = Tensor::random(F32, ne_b, 2, 1.0);
        let dst = joined(&a, &b, dim);
        let n = a.layout.ne()[dim];
        let ne = dst.layout.ne();
        for flat in 0..dst.layout.elements() {
            let index = super::unravel(flat, ne);
            let expected = if index[dim] < n {
                a.get(index)
            } else {
                let mut shifted = index;
                shifted[dim] -= n;
                b.get(shifted)
            };
            assert_eq!(dst.get(index), expected, "dim {dim} at {index:?}");
        }
    }
}

#[test]
fn joins_permuted_integer_and_half_views_exactly() {
    for elem in [I32, F16] {
        let a = Tensor::random(elem, [4, 3, 2, 1], 3, 100.0).permute([0, 2, 1, 3]);
        let b = Tensor::random(elem, [4, 2, 1, 1], 4, 100.0);
        let dst = joined(&a, &b, 2);
        assert_eq!(dst.get([1, 1, 2, 0]), a.get([1, 1, 2, 0]));
        assert_eq!(dst.get([3, 0, 3, 0]), b.get([3, 0, 0, 0]));
    }
}

#[test]
fn joins_rows_of_blocks() {
    let q8_0 = super::q(BlockFormat::Q8_0);
    let a = Tensor::random(q8_0, [64, 2, 1, 1], 5, 1.0);
    let b = Tensor::random(q8_0, [32, 2, 1, 1], 6, 1.0);
    let dst = joined(&a, &b, 0).to_f32();
    let (a, b) = (a.to_f32(), b.to_f32());
    assert_eq!(dst.get([63, 1, 0, 0]), a.get([63, 1, 0, 0]));
    assert_eq!(dst.get([70, 1, 0, 0]), b.get([6, 1, 0, 0]));
}

#[test]
fn rejects_other_dimensions_that_differ_and_bad_params() {
    let a = Tensor::random(F32, [3, 2, 1, 1], 7, 1.0);
    let b = Tensor::random(F32, [3, 4, 1, 1], 8, 1.0);
    let dst = Tensor::poisoned(F32, [6, 2, 1, 1]);
    let err = check_concat(&a.layout, &b.layout, &dst.layout, params(0)).unwrap_err();
    assert_eq!(err.to_string(), "CONCAT: src1 ne[1] 4 != src0 2");
    let mut raw = [0i32; 16];
    raw[0] = 4;
    assert!(matches!(
        ConcatParams::from_op_params(&raw),
        Err(OpError::InvalidParam { param: "dim", .. })
    ));
    let half = Tensor::random(F16, [3, 2, 1, 1], 9, 1.0);
    let err = check_concat(&a.layout, &half.layout, &dst.layout, params(0)).unwrap_err();
    assert!(matches!(err, OpError::TypeMismatch { operand: "src1", .. }), "{err}");
}
