use super::{BF16, F16, F32, I32, I64, Rng, Tensor, round_to};
use crate::kernels::strided::{ElementType, Layout, OpError, check_set_rows, set_rows};

/// `dst[:, ids[i, i02 % ne11, i03 % ne12], i02, i03] = src0[:, i, i02, i03]`
/// applied to a copy of `dst`'s values.
fn reference(src0: &Tensor, ids: &Tensor, dst: &Tensor) -> Vec<f32> {
    let mut out = dst.clone();
    let [ne00, ne01, ne02, ne03] = src0.layout.ne();
    let [_, ne11, ne12, _] = ids.layout.ne();
    let elem = dst.layout.elem();
    for i03 in 0..ne03 {
        for i02 in 0..ne02 {
            for i in 0..ne01 {
                let id = ids.get([i, i02 % ne11, i03 % ne12, 0]) as usize;
                for i0 in 0..ne00 {
                    out.set([i0, id, i02, i03], round_to(elem, src0.get([i0, i, i02, i03])));
                }
            }
        }
    }
    out.values()
}

/// A shuffled subset of `0..rows` per id row (test-backend-ops does so).
fn shuffled_ids(elem: ElementType, ne: [usize; 4], rows: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let mut ids = Vec::new();
    for _ in 0..ne[1] * ne[2] {
        let mut all: Vec<i64> = (0..rows as i64).collect();
        for i in (1..all.len()).rev() {
            all.swap(i, rng.below(i + 1));
        }
        ids.extend(&all[..ne[0]]);
    }
    Tensor::ids(elem, ne, &ids)
}

fn run(src0: &Tensor, ids: &Tensor, dst: &mut Tensor) -> Result<(), OpError> {
    set_rows(src0.view(), ids.view(), &mut dst.view_mut())
}

#[test]
fn writes_each_source_row_at_its_id_and_leaves_other_rows() {
    let src0 = Tensor::new(F32, [2, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
    let ids = Tensor::ids(I64, [2, 1, 1, 1], &[3, 0]);
    let mut dst = Tensor::new(F32, [2, 4, 1, 1], &[9.0; 8]);
    run(&src0, &ids, &mut dst).unwrap();
    assert_eq!(dst.values(), [3.0, 4.0, 9.0, 9.0, 9.0, 9.0, 1.0, 2.0]);
}

#[test]
fn converts_into_every_destination_type_with_either_id_type() {
    for (src_elem, dst_elem) in [(F32, F16), (F32, F32), (F32, BF16), (F16, F16), (F16, F32)] {
        for id_elem in [I64, I32] {
            let src0 = Tensor::random(src_elem, [6, 3, 2, 3], 20, 1.0);
            let ids = shuffled_ids(id_elem, [3, 2, 3, 1], 5, 21);
            let mut dst = Tensor::random(dst_elem, [6, 5, 2, 3], 22, 1.0);
            let expected = reference(&src0, &ids, &dst);
            run(&src0, &ids, &mut dst).unwrap();
            assert_eq!(dst.values(), expected, "{src_elem} -> {dst_elem}, {id_elem} ids");
        }
    }
}

#[test]
fn ids_broadcast_over_source_planes() {
    // test-backend-ops' nr23: ids for [ne2, ne3], source and dst planes ×2, ×3.
    let src0 = Tensor::random(F32, [4, 2, 2, 3], 23, 1.0);
    let ids = shuffled_ids(I64, [2, 1, 1, 1], 6, 24);
    let mut dst = Tensor::random(F16, [4, 6, 2, 3], 25, 1.0);
    let expected = reference(&src0, &ids, &dst);
    run(&src0, &ids, &mut dst).unwrap();
    assert_eq!(dst.values(), expected);
}

#[test]
fn reads_source_and_ids_through_views() {
    // test-backend-ops' "v": the first r/2 rows of src0 and ids.
    let full_src = Tensor::random(F32, [5, 4, 2, 1], 26, 1.0);
    let src0 = full_src.sub_view([5, 2, 2, 1]);
    let full_ids = shuffled_ids(I64, [4, 2, 1, 1], 7, 27);
    let ids = full_ids.sub_view([2, 2, 1, 1]);
    let mut dst = Tensor::random(F16, [5, 7, 2, 1], 28, 1.0);
    let expected = reference(&src0, &ids, &dst);
    run(&src0, &ids, &mut dst).unwrap();
    assert_eq!(dst.values(), expected);
}

#[test]
fn writes_into_a_strided_destination_view() {
    let src0 = Tensor::random(F32, [3, 2, 1, 1], 29, 1.0);
    let ids = Tensor::ids(I32, [2, 1, 1, 1], &[1, 2]);
    let base = Tensor::random(F16, [8, 4, 1, 1], 30, 1.0);
    let nb = base.layout.nb();
    let mut dst = base.view_4d([3, 4, 1, 1], [nb[1], nb[2], nb[3]], 2 * nb[0]);
    let expected = reference(&src0, &ids, &dst);
    run(&src0, &ids, &mut dst).unwrap();
    assert_eq!(dst.values(), expected);
    // Outside the view nothing changed.
    assert_eq!(dst.bytes()[..4], base.bytes()[..4]);
}

#[test]
fn rejects_an_id_past_the_destination_rows_and_writes_nothing() {
    let src0 = Tensor::random(F32, [2, 2, 1, 1], 31, 1.0);
    let ids = Tensor::ids(I64, [2, 1, 1, 1], &[0, 4]);
    let mut dst = Tensor::poisoned(F16, [2, 4, 1, 1]);
    let err = run(&src0, &ids, &mut dst).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SET_ROWS: row id 4 at src1 [1, 0, 0] is outside the 4 rows of dst"
    );
    assert!(dst.bytes().iter().all(|&b| b == 0xAB), "dst was written");
}

#[test]
fn rejects_a_negative_id() {
    let src0 = Tensor::random(F32, [2, 1, 1, 1], 32, 1.0);
    let ids = Tensor::ids(I32, [1, 1, 1, 1], &[-3]);
    let mut dst = Tensor::poisoned(F32, [2, 4, 1, 1]);
    assert!(matches!(run(&src0, &ids, &mut dst), Err(OpError::RowIdOutOfRange { id: -3, .. })));
}

#[test]
fn rejects_more_source_planes_than_the_destination_has() {
    // The rpc-server advisory: dst with one plane (its nb[2] ignored by the
    // size check) and a source with two.
    let src0 = Tensor::random(F32, [4, 1, 2, 1], 33, 1.0);
    let ids = Tensor::ids(I64, [1, 1, 1, 1], &[0]);
    let dst = Layout::new(F16, [4, 2, 1, 1], [2, 8, 1 << 30, 1 << 30]).unwrap();
    let err = check_set_rows(&src0.layout, &ids.layout, &dst).unwrap_err();
    assert_eq!(err.to_string(), "SET_ROWS: dst ne[2] 1 != src0 ne[2] 2");
}

#[test]
fn rejects_id_planes_that_do_not_divide_the_source_planes() {
    let src0 = Tensor::random(F32, [4, 1, 3, 1], 34, 1.0);
    let ids = Tensor::ids(I64, [1, 2, 1, 1], &[0, 0]);
    let dst = Tensor::poisoned(F32, [4, 2, 3, 1]);
    let err = check_set_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "SET_ROWS: src0 ne[2] 3 is not a multiple of src1 ne[1] 2");
}

#[test]
fn rejects_an_id_count_other_than_the_source_rows() {
    let src0 = Tensor::random(F32, [4, 3, 1, 1], 35, 1.0);
    let ids = Tensor::ids(I64, [2, 1, 1, 1], &[0, 1]);
    let dst = Tensor::poisoned(F32, [4, 3, 1, 1]);
    let err = check_set_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "SET_ROWS: src1 ne[0] 2 != src0 ne[1] 3");
}

#[test]
fn rejects_float_ids_and_unsupported_types() {
    let src0 = Tensor::random(F32, [4, 1, 1, 1], 36, 1.0);
    let float_ids = Tensor::random(F32, [1, 1, 1, 1], 37, 1.0);
    let dst = Tensor::poisoned(F16, [4, 2, 1, 1]);
    let err = check_set_rows(&src0.layout, &float_ids.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { operand: "src1", .. }), "{err}");
    let ids = Tensor::ids(I64, [1, 1, 1, 1], &[0]);
    let bf16_src = Tensor::random(BF16, [4, 1, 1, 1], 38, 1.0);
    let err = check_set_rows(&bf16_src.layout, &ids.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { operand: "src0", .. }), "{err}");
}

#[test]
fn rejects_a_destination_without_contiguous_rows() {
    let src0 = Tensor::random(F32, [2, 1, 1, 1], 39, 1.0);
    let ids = Tensor::ids(I64, [1, 1, 1, 1], &[0]);
    let dst = Tensor::poisoned(F32, [3, 2, 1, 1]).transpose();
    let err = check_set_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "dst", .. }), "{err}");
}
