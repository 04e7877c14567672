use super::{F32, I32, Tensor};
use crate::kernels::strided::{OpError, add_id, check_add_id};

#[test]
fn each_row_gets_the_bias_of_its_expert() {
    let src0 = Tensor::random(F32, [8, 2, 3, 1], 1, 1.0);
    let biases = Tensor::random(F32, [8, 4, 1, 1], 2, 1.0);
    let ids = Tensor::ids(I32, [2, 3, 1, 1], &[3, 0, 1, 1, 2, 3]);
    let mut dst = Tensor::poisoned(F32, [8, 2, 3, 1]);
    add_id(src0.view(), biases.view(), ids.view(), &mut dst.view_mut()).unwrap();
    for (i1, i2, expert) in [(0, 0, 3), (1, 0, 0), (0, 1, 1), (1, 2, 3)] {
        for i0 in 0..8 {
            let expected = src0.get([i0, i1, i2, 0]) + biases.get([i0, expert, 0, 0]);
            assert_eq!(dst.get([i0, i1, i2, 0]), expected);
        }
    }
}

#[test]
fn rejects_an_expert_id_outside_the_biases_before_writing() {
    let src0 = Tensor::random(F32, [4, 2, 1, 1], 3, 1.0);
    let biases = Tensor::random(F32, [4, 3, 1, 1], 4, 1.0);
    let ids = Tensor::ids(I32, [2, 1, 1, 1], &[0, 3]);
    let mut dst = Tensor::poisoned(F32, [4, 2, 1, 1]);
    let err = add_id(src0.view(), biases.view(), ids.view(), &mut dst.view_mut()).unwrap_err();
    assert!(matches!(err, OpError::RowIdOutOfRange { id: 3, rows: 3, .. }), "{err}");
    assert!(dst.bytes().iter().all(|&b| b == 0xAB));
}

#[test]
fn rejects_ids_that_do_not_cover_the_rows() {
    let src0 = Tensor::random(F32, [4, 2, 3, 1], 5, 1.0);
    let biases = Tensor::random(F32, [4, 3, 1, 1], 6, 1.0);
    let ids = Tensor::ids(I32, [2, 2, 1, 1], &[0; 4]);
    let err = check_add_id(&src0.layout, &biases.layout, &ids.layout, &src0.layout).unwrap_err();
    assert_eq!(err.to_string(), "ADD_ID: ids ne[1] 2 != src0 ne[2] 3");
}
