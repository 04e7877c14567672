use super::{BF16, F16, F32, I32, I64, Rng, Tensor, round_to};
use crate::kernels::strided::{OpError, check_get_rows, get_rows};

fn run(src0: &Tensor, ids: &Tensor) -> Result<Tensor, OpError> {
    let [ne00, ..] = src0.layout.ne();
    let [n, ne11, ne12, _] = ids.layout.ne();
    let elem = if src0.layout.elem() == I32 { I32 } else { F32 };
    let mut dst = Tensor::poisoned(elem, [ne00, n, ne11, ne12]);
    get_rows(src0.view(), ids.view(), &mut dst.view_mut())?;
    Ok(dst)
}

/// `dst[:, i10, i11, i12] = src0[:, ids[i10, i11, i12], i11, i12]`.
fn reference(src0: &Tensor, ids: &Tensor) -> Vec<f32> {
    let [ne00, ..] = src0.layout.ne();
    let [n, ne11, ne12, _] = ids.layout.ne();
    let mut out = Vec::new();
    for i12 in 0..ne12 {
        for i11 in 0..ne11 {
            for i10 in 0..n {
                let id = ids.get([i10, i11, i12, 0]) as usize;
                out.extend((0..ne00).map(|i0| src0.get([i0, id, i11, i12])));
            }
        }
    }
    out
}

fn random_ids(count: usize, rows: usize, seed: u64) -> Vec<i64> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.below(rows) as i64).collect()
}

#[test]
fn gathers_the_rows_named_by_the_ids() {
    let src0 = Tensor::from_fn(F32, [3, 4, 1, 1], |[i0, i1, ..]| (10 * i1 + i0) as f32);
    let ids = Tensor::ids(I32, [3, 1, 1, 1], &[2, 0, 2]);
    let dst = run(&src0, &ids).unwrap();
    assert_eq!(dst.values(), [20.0, 21.0, 22.0, 0.0, 1.0, 2.0, 20.0, 21.0, 22.0]);
}

#[test]
fn converts_f16_and_bf16_rows_to_f32() {
    for elem in [F16, BF16] {
        let src0 = Tensor::random(elem, [10, 5, 1, 1], 3, 1.0);
        let ids = Tensor::ids(I32, [3, 1, 1, 1], &[4, 1, 1]);
        let dst = run(&src0, &ids).unwrap();
        assert_eq!(dst.layout.elem(), F32);
        assert_eq!(dst.values(), reference(&src0, &ids), "{elem}");
    }
}

#[test]
fn each_batch_of_ids_reads_its_own_source_plane() {
    let src0 = Tensor::random(F32, [7, 5, 3, 2], 5, 1.0);
    let ids = Tensor::ids(I32, [4, 3, 2, 1], &random_ids(24, 5, 6));
    let dst = run(&src0, &ids).unwrap();
    assert_eq!(dst.layout.ne(), [7, 4, 3, 2]);
    assert_eq!(dst.values(), reference(&src0, &ids));
}

#[test]
fn reads_ids_through_a_strided_view() {
    // test-backend-ops' "v": a view of r/2 ids per row of r + 1, offset by one.
    let all = Tensor::ids(I32, [5, 2, 1, 1], &[9, 1, 3, 0, 2, 9, 4, 4, 1, 0]);
    let nb = all.layout.nb();
    let ids = all.view_4d([2, 2, 1, 1], [nb[1], nb[2], nb[3]], nb[0]);
    let src0 = Tensor::random(F32, [6, 5, 2, 1], 8, 1.0);
    let dst = run(&src0, &ids).unwrap();
    assert_eq!(dst.values(), reference(&src0, &ids));
    assert_eq!(dst.values()[..6], src0.values()[6..12], "row id 1 of the first plane");
}

#[test]
fn gathers_from_a_padded_source_view() {
    // test-backend-ops' "vs0": rows and columns offset inside a larger tensor.
    let padded = Tensor::random(F16, [12, 8, 2, 1], 9, 1.0);
    let nb = padded.layout.nb();
    let src0 = padded.view_4d([10, 5, 2, 1], [nb[1], nb[2], nb[3]], 2 * nb[0] + 3 * nb[1]);
    let ids = Tensor::ids(I32, [3, 2, 1, 1], &[4, 0, 2, 1, 1, 3]);
    let dst = run(&src0, &ids).unwrap();
    assert_eq!(dst.values(), reference(&src0, &ids));
}

#[test]
fn works_on_misaligned_bytes() {
    let src0 = Tensor::random(F16, [9, 4, 1, 1], 10, 1.0).misaligned();
    let ids = Tensor::ids(I32, [2, 1, 1, 1], &[3, 1]).misaligned();
    let layout = crate::kernels::strided::Layout::contiguous(F32, [9, 2, 1, 1]).unwrap();
    let mut dst = Tensor::zeroed(layout, layout.byte_extent()).misaligned();
    get_rows(src0.view(), ids.view(), &mut dst.view_mut()).unwrap();
    let expected: Vec<f32> = reference(&src0, &ids).iter().map(|&v| round_to(F16, v)).collect();
    assert_eq!(dst.values(), expected);
}

#[test]
fn copies_i32_rows_as_i32() {
    let src0 = Tensor::from_fn(I32, [2, 3, 1, 1], |[i0, i1, ..]| (i1 * 100 + i0) as f32);
    let ids = Tensor::ids(I32, [2, 1, 1, 1], &[2, 1]);
    let dst = run(&src0, &ids).unwrap();
    assert_eq!(dst.layout.elem(), I32);
    assert_eq!(dst.values(), [200.0, 201.0, 100.0, 101.0]);
}

#[test]
fn rejects_a_row_id_past_the_source_and_leaves_dst_untouched() {
    let src0 = Tensor::random(F32, [3, 5, 1, 1], 11, 1.0);
    let ids = Tensor::ids(I32, [3, 1, 1, 1], &[0, 1, 5]);
    let mut dst = Tensor::poisoned(F32, [3, 3, 1, 1]);
    let err = get_rows(src0.view(), ids.view(), &mut dst.view_mut()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET_ROWS: row id 5 at src1 [2, 0, 0] is outside the 5 rows of src0"
    );
    assert!(dst.bytes().iter().all(|&b| b == 0xAB), "dst was written");
}

#[test]
fn rejects_a_negative_row_id() {
    let src0 = Tensor::random(F32, [3, 5, 1, 1], 12, 1.0);
    let ids = Tensor::ids(I32, [1, 1, 1, 1], &[-1]);
    assert!(matches!(run(&src0, &ids), Err(OpError::RowIdOutOfRange { id: -1, rows: 5, .. })));
}

#[test]
fn rejects_ids_that_are_not_i32() {
    let src0 = Tensor::random(F32, [3, 5, 1, 1], 13, 1.0);
    let ids = Tensor::ids(I64, [1, 1, 1, 1], &[0]);
    let dst = Tensor::poisoned(F32, [3, 1, 1, 1]);
    let err = check_get_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "GET_ROWS: src1 has type i64, expected i32");
}

#[test]
fn rejects_a_dst_shape_other_than_ggml_computes() {
    let src0 = Tensor::random(F32, [3, 5, 1, 1], 14, 1.0);
    let ids = Tensor::ids(I32, [2, 1, 1, 1], &[0, 1]);
    // Fewer output rows than ids: rpc-server wrote past such a dst.
    let dst = Tensor::poisoned(F32, [3, 1, 1, 1]);
    let err = check_get_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "GET_ROWS: dst has ne [3, 1, 1, 1], expected [3, 2, 1, 1]");
}

#[test]
fn rejects_a_dst_that_is_not_f32() {
    let src0 = Tensor::random(F16, [3, 5, 1, 1], 15, 1.0);
    let ids = Tensor::ids(I32, [1, 1, 1, 1], &[0]);
    let dst = Tensor::poisoned(F16, [3, 1, 1, 1]);
    let err = check_get_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::TypeMismatch { operand: "dst", .. }), "{err}");
}

#[test]
fn rejects_id_batches_that_do_not_match_the_source_planes() {
    let src0 = Tensor::random(F32, [3, 5, 2, 1], 16, 1.0);
    let ids = Tensor::ids(I32, [1, 3, 1, 1], &[0, 0, 0]);
    let dst = Tensor::poisoned(F32, [3, 1, 3, 1]);
    let err = check_get_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "GET_ROWS: src1 ne[1] 3 != src0 ne[2] 2");
}

#[test]
fn rejects_a_source_whose_rows_are_not_contiguous() {
    let src0 = Tensor::random(F32, [5, 3, 1, 1], 17, 1.0).transpose();
    let ids = Tensor::ids(I32, [1, 1, 1, 1], &[0]);
    let dst = Tensor::poisoned(F32, [3, 1, 1, 1]);
    let err = check_get_rows(&src0.layout, &ids.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
