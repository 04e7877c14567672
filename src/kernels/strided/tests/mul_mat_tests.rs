use super::{BF16, F16, F32, I32, Tensor, assert_nmse};
use crate::kernels::GemmBackend;
use crate::kernels::strided::{ElementType, Layout, OpError, check_mul_mat, mul_mat};

/// `dst[m, n, i2, i3] = Σ_k src0[k, m, i2 / r2, i3 / r3] · src1[k, n, i2, i3]`
/// in f64.
fn reference(src0: &Tensor, src1: &Tensor) -> Vec<f32> {
    let [k, m, ne02, ne03] = src0.layout.ne();
    let [_, n, ne12, ne13] = src1.layout.ne();
    let (r2, r3) = (ne12 / ne02, ne13 / ne03);
    let row = |t: &Tensor, i1, i2, i3| -> Vec<f64> {
        (0..k).map(|kk| f64::from(t.get([kk, i1, i2, i3]))).collect()
    };
    let mut out = Vec::with_capacity(m * n * ne12 * ne13);
    for i3 in 0..ne13 {
        for i2 in 0..ne12 {
            let weights: Vec<Vec<f64>> = (0..m).map(|i| row(src0, i, i2 / r2, i3 / r3)).collect();
            for j in 0..n {
                let column = row(src1, j, i2, i3);
                for w in &weights {
                    out.push(w.iter().zip(&column).map(|(a, b)| a * b).sum::<f64>() as f32);
                }
            }
        }
    }
    out
}

fn dst_for(src0: &Tensor, src1: &Tensor) -> Tensor {
    let [_, m, ..] = src0.layout.ne();
    let [_, n, ne12, ne13] = src1.layout.ne();
    Tensor::poisoned(F32, [m, n, ne12, ne13])
}

/// Runs on every available backend and checks against the reference.
fn check_all_backends(src0: &Tensor, src1: &Tensor) {
    let expected = reference(src0, src1);
    for &backend in GemmBackend::available() {
        let mut dst = dst_for(src0, src1);
        mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), backend).unwrap();
        assert_nmse(&dst.values(), &expected, 1e-9);
    }
}

const TYPE_PAIRS: [(ElementType, ElementType); 6] =
    [(F32, F32), (F16, F32), (F16, F16), (BF16, F32), (F32, BF16), (BF16, BF16)];

#[test]
fn every_type_pair_and_column_count_matches_the_reference() {
    // test-backend-ops: m 16, n 1..16 (across our dot-product / GEMM switch),
    // k 4 and 256, batches {3, 2} broadcast {2, 2}.
    for (a, b) in TYPE_PAIRS {
        for n in [1, 4, 5, 8, 16] {
            for k in [4, 256] {
                let src0 = Tensor::random(a, [k, 16, 3, 2], 1, 1.0);
                let src1 = Tensor::random(b, [k, n, 6, 4], 2, 1.0);
                check_all_backends(&src0, &src1);
            }
        }
    }
}

#[test]
fn broadcast_divides_the_batch_index_instead_of_wrapping() {
    // Two weight batches for four activation batches: 0, 0, 1, 1.
    let src0 = Tensor::from_fn(F32, [1, 1, 2, 1], |[_, _, i2, _]| (i2 + 1) as f32);
    let src1 = Tensor::new(F32, [1, 1, 4, 1], &[1.0; 4]);
    let mut dst = dst_for(&src0, &src1);
    mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), GemmBackend::default()).unwrap();
    assert_eq!(dst.values(), [1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn permuted_operands_are_read_through_their_strides() {
    // test-backend-ops' per: both made permuted, then permuted back.
    for per in [[0, 2, 1, 3], [0, 1, 3, 2], [0, 3, 2, 1]] {
        for (a, b) in [(F32, F32), (F16, F32), (BF16, F32)] {
            for n in [1, 8, 16] {
                let (ne_a, ne_b) = ([256, 16, 2, 3], [256, n, 2, 3]);
                let make = |elem, ne: [usize; 4], seed| {
                    let mut stored = [0; 4];
                    for dim in 0..4 {
                        stored[dim] = ne[per[dim]];
                    }
                    Tensor::random(elem, stored, seed, 1.0).permute(per)
                };
                let (src0, src1) = (make(a, ne_a, 3), make(b, ne_b, 4));
                assert_eq!(src0.layout.ne(), ne_a);
                check_all_backends(&src0, &src1);
            }
        }
    }
}

#[test]
fn padded_rows_and_strided_batches_are_followed() {
    // test-backend-ops' k_v: rows 64 long in memory, 32 used.
    let src0 = Tensor::random(F32, [64, 16, 1, 1], 5, 1.0).sub_view([32, 16, 1, 1]);
    let src1 = Tensor::random(F32, [64, 32, 1, 1], 6, 1.0).sub_view([32, 32, 1, 1]);
    check_all_backends(&src0, &src1);
    // m_v with pad: weight batches 16 rows + 16 bytes apart (a KV cache view).
    for (a, n) in [(F32, 1), (F16, 16)] {
        let base = Tensor::random(a, [64, 17, 8, 1], 7, 1.0);
        let nb = base.layout.nb();
        let src0 = base.view_4d([64, 8, 8, 1], [nb[1], 16 * nb[1] + 16, nb[3]], 0);
        let src1 = Tensor::random(F32, [64, n, 8, 1], 8, 1.0);
        check_all_backends(&src0, &src1);
    }
}

#[test]
fn operands_may_be_interleaved_views_of_one_tensor() {
    // test-backend-ops' src_overlap (a fused QKV).
    let base = Tensor::random(F32, [192, 32, 3, 2], 9, 1.0);
    let nb = base.layout.nb();
    let src0 = base.view_4d([96, 32, 3, 2], [nb[1], nb[2], nb[3]], 0);
    let src1 = base.view_4d([96, 4, 3, 2], [nb[1], nb[2], nb[3]], 96 * 4);
    check_all_backends(&src0, &src1);
}

#[test]
fn large_products_run_in_parallel_and_in_tiles() {
    // 300 rows of 8192: parallel dot products for n = 1, and three f16 weight
    // tiles of 128 rows for GEMM.
    for (a, n) in [(F16, 1), (F32, 3), (F16, 9), (BF16, 33)] {
        let src0 = Tensor::random(a, [8192, 300, 1, 1], 10, 1.0);
        let src1 = Tensor::random(F32, [8192, n, 1, 1], 11, 1.0);
        check_all_backends(&src0, &src1);
    }
}

#[test]
fn misaligned_weights_and_a_padded_destination_work() {
    let src0 = Tensor::random(F32, [33, 20, 2, 1], 12, 1.0).misaligned();
    let src1 = Tensor::random(F32, [33, 7, 2, 1], 13, 1.0).misaligned();
    let expected = reference(&src0, &src1);
    let base = Tensor::poisoned(F32, [24, 7, 2, 1]);
    let nb = base.layout.nb();
    let mut dst = base.view_4d([20, 7, 2, 1], [nb[1], nb[2], nb[3]], 0).misaligned();
    mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), GemmBackend::default()).unwrap();
    assert_nmse(&dst.values(), &expected, 1e-9);
    assert!(dst.bytes()[80..96].iter().all(|&b| b == 0xAB), "row padding written");
}

#[test]
fn an_empty_inner_dimension_gives_zeros() {
    let src0 = Tensor::random(F32, [0, 3, 1, 1], 14, 1.0);
    let src1 = Tensor::random(F32, [0, 2, 1, 1], 15, 1.0);
    let mut dst = dst_for(&src0, &src1);
    mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), GemmBackend::default()).unwrap();
    assert_eq!(dst.values(), [0.0; 6]);
}

fn check_err(src0: &Layout, src1: &Layout, dst: &Layout) -> String {
    check_mul_mat(src0, src1, dst).unwrap_err().to_string()
}

#[test]
fn rejects_inner_dimensions_that_differ() {
    let src0 = Layout::contiguous(F32, [512, 4, 1, 1]).unwrap();
    let src1 = Layout::contiguous(F32, [256, 2, 1, 1]).unwrap();
    let dst = Layout::contiguous(F32, [4, 2, 1, 1]).unwrap();
    assert_eq!(check_err(&src0, &src1, &dst), "MUL_MAT: src1 ne[0] 256 != src0 ne[0] 512");
}

#[test]
fn rejects_batches_that_do_not_broadcast() {
    let src0 = Layout::contiguous(F32, [8, 4, 2, 1]).unwrap();
    let src1 = Layout::contiguous(F32, [8, 2, 3, 1]).unwrap();
    let dst = Layout::contiguous(F32, [4, 2, 3, 1]).unwrap();
    assert_eq!(
        check_err(&src0, &src1, &dst),
        "MUL_MAT: src1 ne[2] 3 is not a multiple of src0 ne[2] 2"
    );
}

#[test]
fn rejects_a_dst_other_than_ggml_computes() {
    let src0 = Layout::contiguous(F32, [8, 4, 1, 1]).unwrap();
    let src1 = Layout::contiguous(F32, [8, 2, 1, 1]).unwrap();
    let transposed = Layout::contiguous(F32, [2, 4, 1, 1]).unwrap();
    assert_eq!(
        check_err(&src0, &src1, &transposed),
        "MUL_MAT: dst has ne [2, 4, 1, 1], expected [4, 2, 1, 1]"
    );
    let half = Layout::contiguous(F16, [4, 2, 1, 1]).unwrap();
    assert_eq!(check_err(&src0, &src1, &half), "MUL_MAT: dst has type f16, expected f32");
    let permuted = Layout::new(F32, [4, 2, 1, 1], [8, 4, 32, 32]).unwrap();
    assert!(check_err(&src0, &src1, &permuted).contains("must have nb[0] == the element size"));
    let swapped_planes = Layout::new(F32, [4, 2, 2, 1], [4, 32, 16, 64]).unwrap();
    let src1_planes = Layout::contiguous(F32, [8, 2, 2, 1]).unwrap();
    assert!(check_err(&src0, &src1_planes, &swapped_planes).contains("must not be transposed"));
}

#[test]
fn rejects_transposed_weights_and_integer_operands() {
    let transposed = Layout::new(F32, [8, 4, 1, 1], [16, 4, 128, 128]).unwrap();
    let src1 = Layout::contiguous(F32, [8, 2, 1, 1]).unwrap();
    let dst = Layout::contiguous(F32, [4, 2, 1, 1]).unwrap();
    assert!(check_err(&transposed, &src1, &dst).starts_with("MUL_MAT: src0 (ne [8, 4, 1, 1]"));
    let ints = Layout::contiguous(I32, [8, 4, 1, 1]).unwrap();
    assert!(matches!(
        check_mul_mat(&ints, &src1, &dst),
        Err(OpError::UnsupportedType { operand: "src0", .. })
    ));
}

#[test]
fn an_unavailable_backend_is_an_error() {
    let Some(&missing) = GemmBackend::ALL.iter().find(|b| !b.is_available()) else {
        return;
    };
    let src0 = Tensor::random(F32, [4, 2, 1, 1], 16, 1.0);
    let src1 = Tensor::random(F32, [4, 8, 1, 1], 17, 1.0);
    let mut dst = dst_for(&src0, &src1);
    let err = mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), missing).unwrap_err();
    assert!(matches!(err, OpError::Gemm { .. }), "{err}");
}

#[test]
fn the_dot_product_and_gemm_strategies_agree() {
    use crate::kernels::strided::mul_mat::mul_mat_with_dot_columns;
    for n in [1, 3, 8, 12] {
        let src0 = Tensor::random(F16, [100, 40, 2, 1], 18, 1.0);
        let src1 = Tensor::random(F32, [100, n, 2, 3], 19, 1.0);
        let expected = reference(&src0, &src1);
        for dot_columns in [0, usize::MAX] {
            let mut dst = dst_for(&src0, &src1);
            let backend = GemmBackend::default();
            mul_mat_with_dot_columns(
                src0.view(),
                src1.view(),
                &mut dst.view_mut(),
                backend,
                dot_columns,
            )
            .unwrap();
            assert_nmse(&dst.values(), &expected, 1e-9);
        }
    }
}

/// test-backend-ops' tolerance for MUL_MAT.
const MUL_MAT_NMSE: f64 = 5e-4;

#[test]
fn block_weights_match_the_dequantized_reference_on_both_strategies() {
    // test-backend-ops' shapes: m 16, n 1..16 and larger, k 256 (and 1024
    // for the 32-blocks), batches {3, 2} broadcast {2, 2}.
    for format in super::WEIGHT_FORMATS {
        for n in [1, 3, 9, 32] {
            let src0 = Tensor::random(super::q(format), [256, 16, 3, 2], 1, 1.0);
            let src1 = Tensor::random(F32, [256, n, 6, 4], 2, 1.0);
            let expected = reference(&src0.to_f32(), &src1);
            for &backend in GemmBackend::available() {
                let mut dst = dst_for(&src0, &src1);
                mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), backend).unwrap();
                assert_nmse(&dst.values(), &expected, MUL_MAT_NMSE);
            }
        }
    }
}

#[test]
fn few_columns_of_block_weights_are_ggmls_quantized_dot_products() {
    use crate::kernels::quant;
    for format in super::WEIGHT_FORMATS {
        let src0 = Tensor::random(super::q(format), [512, 5, 1, 1], 3, 2.0);
        let src1 = Tensor::random(F32, [512, 2, 1, 1], 4, 1.0);
        let mut dst = dst_for(&src0, &src1);
        mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), GemmBackend::default()).unwrap();
        let target = format.vec_dot_format().unwrap();
        for j in 0..2 {
            let column: Vec<f32> = (0..512).map(|i| src1.get([i, j, 0, 0])).collect();
            let mut quantized = vec![0u8; target.row_bytes(512).unwrap()];
            crate::kernels::strided::cpu_quantize::quantize_row(target, &column, &mut quantized)
                .unwrap();
            for i in 0..5 {
                let row = src0.view().row(i, 0, 0).unwrap();
                let expected = quant::vec_dot(format, 512, row, &quantized).unwrap();
                assert_eq!(dst.get([i, j, 0, 0]), expected, "{format} row {i} column {j}");
            }
        }
    }
}

#[test]
fn block_weights_read_permuted_activations_and_broadcast_batches() {
    let format = crate::kernels::quant::BlockFormat::Q4_0;
    let src0 = Tensor::random(super::q(format), [64, 8, 2, 1], 5, 1.0);
    for n in [2, 12] {
        // Activations stored [k, 4, n, 1], permuted to [k, n, 4, 1]: four
        // batches over the two weight batches.
        let stored = Tensor::random(F32, [64, 4, n, 1], 6, 1.0);
        let src1 = stored.permute([0, 2, 1, 3]);
        let expected = reference(&src0.to_f32(), &src1);
        let mut dst = dst_for(&src0, &src1);
        mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), GemmBackend::default()).unwrap();
        assert_nmse(&dst.values(), &expected, MUL_MAT_NMSE);
    }
}

#[test]
fn rejects_block_weights_with_non_f32_activations_and_activation_formats() {
    use crate::kernels::quant::BlockFormat;
    let weights = Layout::contiguous(super::q(BlockFormat::Q8_0), [64, 4, 1, 1]).unwrap();
    let f16 = Layout::contiguous(F16, [64, 2, 1, 1]).unwrap();
    let dst = Layout::contiguous(F32, [4, 2, 1, 1]).unwrap();
    assert!(check_err(&weights, &f16, &dst).contains("src1 has type f16, expected f32"));
    for format in [BlockFormat::Q8_1, BlockFormat::Q8K] {
        let src0 = Layout::contiguous(super::q(format), [256, 4, 1, 1]).unwrap();
        let f32 = Layout::contiguous(F32, [256, 2, 1, 1]).unwrap();
        let err = check_err(&src0, &f32, &dst);
        assert!(err.contains("src0 has type") && err.contains(format.name()), "{err}");
    }
}
