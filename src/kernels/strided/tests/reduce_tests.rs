use super::{BF16, F16, F32, Tensor, assert_close, round_to};
use crate::kernels::strided::{
    Layout, OpError, check_mean, check_sum, check_sum_rows, cumsum, mean, sum, sum_rows,
};

/// Row `(i1, i2, i3)` of `t` as f64.
fn row(t: &Tensor, i1: usize, i2: usize, i3: usize) -> Vec<f64> {
    (0..t.layout.ne()[0]).map(|i0| f64::from(t.get([i0, i1, i2, i3]))).collect()
}

#[test]
fn sum_adds_every_element_of_a_permuted_tensor() {
    let src = Tensor::random(F32, [33, 4, 3, 2], 1, 10.0).permute([0, 2, 1, 3]);
    let mut dst = Tensor::poisoned(F32, [1, 1, 1, 1]);
    sum(src.view(), &mut dst.view_mut()).unwrap();
    let expected: f64 = src.values().iter().map(|&v| f64::from(v)).sum();
    assert_close(&dst.values(), &[expected as f32], 1e-6);
}

#[test]
fn sum_of_half_types_is_rounded_to_their_type() {
    for elem in [F16, BF16] {
        let src = Tensor::random(elem, [10, 3, 1, 1], 2, 4.0);
        let mut dst = Tensor::poisoned(elem, [1, 1, 1, 1]);
        sum(src.view(), &mut dst.view_mut()).unwrap();
        let total: f32 = src.values().iter().sum();
        assert_eq!(dst.values(), [round_to(elem, total)], "{elem}");
    }
}

#[test]
fn sum_rows_and_mean_reduce_each_row_of_a_view() {
    let base = Tensor::random(F32, [40, 5, 3, 2], 3, 5.0);
    let src = base.sub_view([17, 5, 3, 2]);
    let mut sums = Tensor::poisoned(F32, [1, 5, 3, 2]);
    let mut means = Tensor::poisoned(F32, [1, 5, 3, 2]);
    sum_rows(src.view(), &mut sums.view_mut()).unwrap();
    mean(src.view(), &mut means.view_mut()).unwrap();
    for (i1, i2, i3) in [(0, 0, 0), (4, 2, 1), (2, 1, 0)] {
        let total: f64 = row(&src, i1, i2, i3).iter().sum();
        assert_eq!(sums.get([0, i1, i2, i3]), total as f32);
        assert_eq!(means.get([0, i1, i2, i3]), total as f32 / 17.0);
    }
}

#[test]
fn cumsum_runs_along_each_row() {
    let src = Tensor::new(F32, [4, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0, -0.0, 0.5, 0.25, -1.0]);
    let mut dst = Tensor::poisoned(F32, [4, 2, 1, 1]);
    cumsum(src.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.values(), [1.0, 3.0, 6.0, 10.0, -0.0, 0.5, 0.75, -0.25]);
    assert!(dst.values()[4].is_sign_negative(), "the first value is kept as it is");
}

#[test]
fn rejects_what_ggml_cannot_reduce() {
    let f16_rows = Layout::contiguous(F16, [4, 2, 1, 1]).unwrap();
    let per_row = Layout::contiguous(F32, [1, 2, 1, 1]).unwrap();
    let err = check_sum_rows(&f16_rows, &per_row).unwrap_err();
    assert!(matches!(err, OpError::TypeMismatch { operand: "src0", .. }), "{err}");
    let rows = Layout::contiguous(F32, [4, 2, 1, 1]).unwrap();
    let wrong = Layout::contiguous(F32, [2, 2, 1, 1]).unwrap();
    let err = check_mean(&rows, &wrong).unwrap_err();
    assert_eq!(err.to_string(), "MEAN: dst has ne [2, 2, 1, 1], expected [1, 2, 1, 1]");
    let transposed = Layout::new(F32, [4, 2, 1, 1], [8, 4, 32, 32]).unwrap();
    let err = check_sum_rows(&transposed, &per_row).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}

#[test]
fn sum_reads_rows_as_consecutive_elements_like_ggml() {
    // test-backend-ops sums [33, 256] transposed: ggml (its nb[0] assert
    // compiled out) adds, for each of the 33 rows, the 256 floats that
    // follow the row's first element in memory.
    let stored = Tensor::random(F32, [33, 256, 1, 1], 4, 1.0);
    let transposed = stored.transpose();
    let mut dst = Tensor::poisoned(F32, [1, 1, 1, 1]);
    sum(transposed.view(), &mut dst.view_mut()).unwrap();
    let flat = stored.values();
    let expected: f64 =
        (0..33).map(|r| flat[r..r + 256].iter().map(|&v| f64::from(v)).sum::<f64>()).sum();
    assert_eq!(dst.values(), [expected as f32]);
    // A row of one element repeated (nb[0] 0) would read past its 4 bytes.
    let narrow = Layout::new(F32, [4, 1, 1, 1], [0, 16, 16, 16]).unwrap();
    let err = check_sum(&narrow, &Layout::contiguous(F32, [1, 1, 1, 1]).unwrap()).unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "src0", .. }), "{err}");
}
