use super::{F32, I32, Tensor};
use crate::kernels::strided::{ArgsortParams, OpError, argsort, check_argsort, check_top_k, top_k};

fn order(code: i32) -> ArgsortParams {
    let mut raw = [0i32; 16];
    raw[0] = code;
    ArgsortParams::from_op_params(&raw).unwrap()
}

fn indices(t: &Tensor) -> Vec<usize> {
    t.values().iter().map(|&v| v as usize).collect()
}

#[test]
fn argsort_orders_each_row_ascending_or_descending() {
    let src = Tensor::random(F32, [37, 3, 2, 1], 1, 10.0);
    for (code, descending) in [(0, false), (1, true)] {
        let mut dst = Tensor::poisoned(I32, [37, 3, 2, 1]);
        argsort(src.view(), &mut dst.view_mut(), order(code)).unwrap();
        for (i1, i2) in [(0, 0), (2, 1), (1, 0)] {
            let row: Vec<f32> = (0..37).map(|i0| src.get([i0, i1, i2, 0])).collect();
            let sorted: Vec<f32> =
                (0..37).map(|i0| row[dst.get([i0, i1, i2, 0]) as usize]).collect();
            let mut expected = row.clone();
            expected.sort_by(|a, b| if descending { b.total_cmp(a) } else { a.total_cmp(b) });
            assert_eq!(sorted, expected, "order {code} row ({i1}, {i2})");
        }
    }
}

#[test]
fn ties_keep_index_order_and_nan_cannot_upset_the_sort() {
    let src = Tensor::new(F32, [5, 1, 1, 1], &[2.0, f32::NAN, 2.0, -1.0, f32::NAN]);
    let mut dst = Tensor::poisoned(I32, [5, 1, 1, 1]);
    argsort(src.view(), &mut dst.view_mut(), order(0)).unwrap();
    assert_eq!(indices(&dst), [3, 0, 2, 1, 4]);
    argsort(src.view(), &mut dst.view_mut(), order(1)).unwrap();
    assert_eq!(indices(&dst), [1, 4, 0, 2, 3]);
}

#[test]
fn top_k_gives_the_largest_first_two_swapped() {
    // ggml swaps the first two to show that their order does not matter.
    let src =
        Tensor::new(F32, [6, 2, 1, 1], &[0.1, 0.9, 0.5, 0.7, 0.2, 0.3, 6., 5., 4., 3., 2., 1.]);
    let mut dst = Tensor::poisoned(I32, [3, 2, 1, 1]);
    top_k(src.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(indices(&dst), [3, 1, 2, 1, 0, 2]);
    let mut one = Tensor::poisoned(I32, [1, 2, 1, 1]);
    top_k(src.view(), &mut one.view_mut()).unwrap();
    assert_eq!(indices(&one), [1, 0]);
}

#[test]
fn rejects_bad_orders_more_than_the_row_and_other_types() {
    let mut raw = [0i32; 16];
    raw[0] = 2;
    assert!(matches!(
        ArgsortParams::from_op_params(&raw),
        Err(OpError::InvalidParam { param: "order", .. })
    ));
    let src = Tensor::random(F32, [4, 2, 1, 1], 2, 1.0);
    let too_many = Tensor::poisoned(I32, [5, 2, 1, 1]);
    let err = check_top_k(&src.layout, &too_many.layout).unwrap_err();
    assert_eq!(err.to_string(), "TOP_K: src0 ne[0] 4 < dst ne[0] = k = 5");
    let floats = Tensor::poisoned(F32, [4, 2, 1, 1]);
    let err = check_argsort(&src.layout, &floats.layout).unwrap_err();
    assert!(matches!(err, OpError::TypeMismatch { operand: "dst", .. }), "{err}");
}
