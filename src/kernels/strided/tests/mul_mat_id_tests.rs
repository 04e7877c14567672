use super::{F16, F32, I32, Rng, Tensor, assert_nmse, q};
use crate::kernels::GemmBackend;
use crate::kernels::quant::BlockFormat;
use crate::kernels::strided::{ElementType, OpError, check_mul_mat_id, mul_mat_id};

/// `dst[:, s, t] = experts[:, :, ids[s, t]]ᵀ · b[:, s % ne11, t]` in f64.
fn reference(experts: &Tensor, b: &Tensor, ids: &Tensor) -> Vec<f32> {
    let [k, m, ..] = experts.layout.ne();
    let ne11 = b.layout.ne()[1];
    let [n_used, n_tokens, ..] = ids.layout.ne();
    let mut out = Vec::new();
    for t in 0..n_tokens {
        for s in 0..n_used {
            let e = ids.get([s, t, 0, 0]) as usize;
            for i in 0..m {
                let dot: f64 = (0..k)
                    .map(|kk| {
                        f64::from(experts.get([kk, i, e, 0]))
                            * f64::from(b.get([kk, s % ne11, t, 0]))
                    })
                    .sum();
                out.push(dot as f32);
            }
        }
    }
    out
}

fn routing(n_used: usize, n_tokens: usize, n_expert: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let ids: Vec<i64> = (0..n_used * n_tokens).map(|_| rng.below(n_expert) as i64).collect();
    Tensor::ids(I32, [n_used, n_tokens, 1, 1], &ids)
}

fn run(experts: &Tensor, b: &Tensor, ids: &Tensor) -> Result<Tensor, OpError> {
    let m = experts.layout.ne()[1];
    let [n_used, n_tokens, ..] = ids.layout.ne();
    let mut dst = Tensor::poisoned(F32, [m, n_used, n_tokens, 1]);
    mul_mat_id(experts.view(), b.view(), ids.view(), &mut dst.view_mut(), GemmBackend::default())?;
    Ok(dst)
}

#[test]
fn each_token_is_multiplied_by_the_experts_it_was_routed_to() {
    // test-backend-ops: n_mats 4..8, n_used 1..4, b shared (ne11 1) or one
    // per slot; few tokens (dot products) and many (GEMM per expert).
    let weights: [ElementType; 5] =
        [F32, F16, q(BlockFormat::Q4_0), q(BlockFormat::Q8_0), q(BlockFormat::Q4K)];
    for elem in weights {
        for (n_used, shared, n_tokens) in [(2, true, 1), (2, false, 3), (4, false, 40)] {
            let experts = Tensor::random(elem, [256, 16, 8, 1], 1, 1.0);
            let ne11 = if shared { 1 } else { n_used };
            let b = Tensor::random(F32, [256, ne11, n_tokens, 1], 2, 1.0);
            let ids = routing(n_used, n_tokens, 8, 3);
            let dst = run(&experts, &b, &ids).unwrap();
            let expected = reference(&experts.to_f32(), &b, &ids);
            assert_nmse(&dst.values(), &expected, 5e-4);
        }
    }
}

#[test]
fn rejects_an_expert_id_outside_the_experts_before_writing() {
    let experts = Tensor::random(F32, [8, 4, 3, 1], 4, 1.0);
    let b = Tensor::random(F32, [8, 1, 2, 1], 5, 1.0);
    for bad in [3, -1] {
        let ids = Tensor::ids(I32, [2, 2, 1, 1], &[0, 1, 2, bad]);
        let mut dst = Tensor::poisoned(F32, [4, 2, 2, 1]);
        let err = mul_mat_id(
            experts.view(),
            b.view(),
            ids.view(),
            &mut dst.view_mut(),
            GemmBackend::default(),
        )
        .unwrap_err();
        assert!(matches!(err, OpError::RowIdOutOfRange { position: [1, 1, 0], .. }), "{err}");
        assert!(dst.bytes().iter().all(|&byte| byte == 0xAB));
    }
}

#[test]
fn rejects_shapes_ggml_mul_mat_id_refuses() {
    let experts = Tensor::random(F32, [8, 4, 3, 1], 6, 1.0);
    let ids = routing(3, 2, 3, 7);
    let dst = Tensor::poisoned(F32, [4, 3, 2, 1]);
    // b with 2 slots cannot broadcast over 3.
    let b = Tensor::random(F32, [8, 2, 2, 1], 8, 1.0);
    let err = check_mul_mat_id(&experts.layout, &b.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "MUL_MAT_ID: ids ne[0] 3 is not a multiple of src1 ne[1] 2");
    // A token count that differs from the ids'.
    let b = Tensor::random(F32, [8, 1, 5, 1], 9, 1.0);
    let err = check_mul_mat_id(&experts.layout, &b.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "MUL_MAT_ID: ids ne[1] 2 != src1 ne[2] 5");
    // Block weights need f32 activations.
    let experts = Tensor::random(q(BlockFormat::Q8_0), [32, 4, 3, 1], 10, 1.0);
    let b = Tensor::random(F16, [32, 1, 2, 1], 11, 1.0);
    let err = check_mul_mat_id(&experts.layout, &b.layout, &ids.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "MUL_MAT_ID: src1 has type f16, expected f32");
}
