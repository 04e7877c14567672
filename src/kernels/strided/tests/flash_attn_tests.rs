use super::{BF16, F16, F32, Rng, Tensor, assert_nmse, float_params};
use crate::kernels::strided::{
    ElementType, FlashAttnExtraViews, FlashAttnExtras, FlashAttnParams, Layout, OpError,
    check_flash_attn_ext, flash_attn_ext,
};

struct Case {
    d: usize,
    dv: usize,
    heads: usize,
    /// Query heads per kv head (GQA) and batches.
    nr23: [usize; 2],
    n_kv: usize,
    n_q: usize,
    mask: bool,
    sinks: bool,
    max_bias: f32,
    softcap: f32,
    kv_type: ElementType,
    /// Build q, k, v as this permutation of a tensor (test-backend-ops'
    /// `permute`).
    permute: [usize; 4],
}

const BASE: Case = Case {
    d: 64,
    dv: 64,
    heads: 4,
    nr23: [1, 1],
    n_kv: 96,
    n_q: 8,
    mask: true,
    sinks: false,
    max_bias: 0.0,
    softcap: 0.0,
    kv_type: F16,
    permute: [0, 1, 2, 3],
};

fn params(scale: f32, max_bias: f32, softcap: f32, precision: i32) -> FlashAttnParams {
    let mut raw = float_params(0, &[scale, max_bias, softcap]);
    raw[3] = precision;
    FlashAttnParams::from_op_params(&raw).unwrap()
}

fn make(elem: ElementType, ne: [usize; 4], permute: [usize; 4], seed: u64) -> Tensor {
    let mut stored = [0; 4];
    for dim in 0..4 {
        stored[permute[dim]] = ne[dim];
    }
    let inverse = {
        let mut inverse = [0; 4];
        for dim in 0..4 {
            inverse[permute[dim]] = dim;
        }
        inverse
    };
    let t = Tensor::random(elem, stored, seed, 1.0).permute(inverse);
    assert_eq!(t.layout.ne(), ne);
    t
}

/// A mask like test-backend-ops' `init_tensor_kq_mask`: random values with
/// some `-inf`, never a whole row.
fn kq_mask(n_kv: usize, n_q: usize, batches: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_fn(F16, [n_kv, n_q, 1, batches], |[i0, ..]| {
        if i0 > 0 && rng.below(4) == 0 { f32::NEG_INFINITY } else { rng.unit() }
    })
}

fn slope(h: usize, n_head: usize, max_bias: f64) -> f64 {
    if max_bias <= 0.0 {
        return 1.0;
    }
    let n = 1usize << n_head.ilog2();
    let m0 = 2f64.powf(-max_bias / n as f64);
    let m1 = 2f64.powf(-(max_bias / 2.0) / n as f64);
    if h < n { m0.powi(h as i32 + 1) } else { m1.powi(2 * (h - n) as i32 + 1) }
}

struct Inputs {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Option<Tensor>,
    sinks: Option<Tensor>,
}

fn inputs(c: &Case) -> Inputs {
    let (h, b) = (c.heads * c.nr23[0], c.nr23[1]);
    Inputs {
        q: make(F32, [c.d, c.n_q, h, b], c.permute, 1),
        k: make(c.kv_type, [c.d, c.n_kv, c.heads, b], c.permute, 2),
        v: make(c.kv_type, [c.dv, c.n_kv, c.heads, b], c.permute, 3),
        mask: c.mask.then(|| kq_mask(c.n_kv, c.n_q, b, 4)),
        sinks: c.sinks.then(|| Tensor::random(F32, [h, 1, 1, 1], 5, 10.0)),
    }
}

/// softmax(q·kᵀ·scale (soft-capped) + slope·mask, sink)·v in f64, laid out
/// [Dv, H, n_q, B].
fn reference(x: &Inputs, p: &FlashAttnParams) -> Vec<f32> {
    let [d, n_q, heads, batches] = x.q.layout.ne();
    let [dv, n_kv, kv_heads, _] = x.v.layout.ne();
    let group = heads / kv_heads;
    let mut out = vec![0.0f32; dv * heads * n_q * batches];
    for b in 0..batches {
        for iq in 0..n_q {
            for h in 0..heads {
                let kh = h / group;
                let mut scores: Vec<f64> = (0..n_kv)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|i| {
                                f64::from(x.q.get([i, iq, h, b]))
                                    * f64::from(x.k.get([i, j, kh, b]))
                            })
                            .sum();
                        let mut s = dot * f64::from(p.scale);
                        if p.logit_softcap != 0.0 {
                            let c = f64::from(p.logit_softcap);
                            s = c * (s / c).tanh();
                        }
                        if let Some(mask) = &x.mask {
                            let [_, _, m2, m3] = mask.layout.ne();
                            let m = f64::from(mask.get([j, iq, h % m2, b % m3]));
                            s += slope(h, heads, f64::from(p.max_bias)) * m;
                        }
                        s
                    })
                    .collect();
                let sink = x.sinks.as_ref().map(|s| f64::from(s.get([h, 0, 0, 0])));
                let max = scores.iter().copied().chain(sink).fold(f64::NEG_INFINITY, f64::max);
                scores.iter_mut().for_each(|s| *s = (*s - max).exp());
                let total: f64 = scores.iter().sum::<f64>() + sink.map_or(0.0, |s| (s - max).exp());
                for i in 0..dv {
                    let value: f64 =
                        (0..n_kv).map(|j| scores[j] * f64::from(x.v.get([i, j, kh, b]))).sum();
                    out[((b * n_q + iq) * heads + h) * dv + i] = (value / total) as f32;
                }
            }
        }
    }
    out
}

fn run(x: &Inputs, p: &FlashAttnParams) -> Result<Tensor, OpError> {
    let [_, n_q, heads, batches] = x.q.layout.ne();
    let dv = x.v.layout.ne()[0];
    let mut dst = Tensor::poisoned(F32, [dv, heads, n_q, batches]);
    let extras = FlashAttnExtraViews {
        mask: x.mask.as_ref().map(Tensor::view),
        sinks: x.sinks.as_ref().map(Tensor::view),
    };
    flash_attn_ext(x.q.view(), x.k.view(), x.v.view(), extras, &mut dst.view_mut(), p)?;
    Ok(dst)
}

fn check_case(c: &Case) {
    let x = inputs(c);
    let p = params(1.0 / (c.d as f32).sqrt(), c.max_bias, c.softcap, 10);
    let dst = run(&x, &p).unwrap();
    assert_nmse(&dst.values(), &reference(&x, &p), 1e-10);
}

#[test]
fn attends_with_a_mask_for_f16_bf16_and_f32_caches() {
    for kv_type in [F16, BF16, F32] {
        check_case(&Case { kv_type, ..BASE });
    }
}

#[test]
fn attends_without_a_mask_and_for_a_single_query() {
    check_case(&Case { mask: false, ..BASE });
    check_case(&Case { n_q: 1, n_kv: 513, ..BASE });
}

#[test]
fn grouped_query_heads_share_their_kv_head_and_batches_stay_apart() {
    check_case(&Case { nr23: [4, 1], ..BASE });
    check_case(&Case { nr23: [2, 3], n_q: 3, ..BASE });
}

#[test]
fn key_and_value_head_sizes_may_differ() {
    check_case(&Case { d: 192, dv: 128, heads: 2, ..BASE });
    check_case(&Case { d: 40, dv: 24, heads: 2, n_kv: 7, ..BASE });
}

#[test]
fn alibi_softcap_and_sinks_follow_ggml() {
    check_case(&Case { max_bias: 8.0, heads: 6, ..BASE });
    check_case(&Case { softcap: 10.0, ..BASE });
    check_case(&Case { sinks: true, ..BASE });
    check_case(&Case { sinks: true, mask: false, max_bias: 0.0, n_q: 1, ..BASE });
}

#[test]
fn permuted_operands_are_read_through_their_strides() {
    for permute in [[0, 2, 1, 3], [0, 1, 3, 2]] {
        check_case(&Case { permute, nr23: [2, 2], ..BASE });
    }
}

#[test]
fn kv_cache_views_and_v_as_a_view_of_k_work() {
    let c = Case { n_kv: 32, ..BASE };
    let mut x = inputs(&c);
    // K and V as the first 32 of 64 cache rows, and V inside K's rows.
    let cache = Tensor::random(F16, [64, 64, 4, 1], 6, 1.0);
    let nb = cache.layout.nb();
    x.k = cache.view_4d([64, 32, 4, 1], [nb[1], nb[2], nb[3]], 0);
    x.v = cache.view_4d([48, 32, 4, 1], [nb[1], nb[2], nb[3]], 0);
    let p = params(0.125, 0.0, 0.0, 0);
    let dst = run(&x, &p).unwrap();
    assert_nmse(&dst.values(), &reference(&x, &p), 1e-10);
}

#[test]
fn a_query_whose_keys_are_all_masked_gets_zeros() {
    let c = Case { n_kv: 4, n_q: 1, heads: 1, d: 8, dv: 8, ..BASE };
    let mut x = inputs(&c);
    x.mask = Some(Tensor::new(F16, [4, 1, 1, 1], &[f32::NEG_INFINITY; 4]));
    let dst = run(&x, &params(1.0, 0.0, 0.0, 0)).unwrap();
    assert_eq!(dst.values(), [0.0; 8]);
}

#[test]
fn a_padded_mask_is_read_by_row() {
    // llama.cpp pads the mask's rows; only the first n_q are used.
    let c = Case { n_q: 3, ..BASE };
    let mut x = inputs(&c);
    let padded = kq_mask(100, 64, 1, 7);
    x.mask = Some(padded);
    let p = params(0.125, 0.0, 0.0, 10);
    let dst = run(&x, &p).unwrap();
    // The reference reads mask[j, iq] for j < n_kv, which is the same entries.
    assert_nmse(&dst.values(), &reference(&x, &p), 1e-10);
}

fn layouts(x: &Inputs) -> (Layout, Layout, Layout, Layout) {
    let [_, n_q, heads, batches] = x.q.layout.ne();
    let dv = x.v.layout.ne()[0];
    let dst = Layout::contiguous(F32, [dv, heads, n_q, batches]).unwrap();
    (x.q.layout, x.k.layout, x.v.layout, dst)
}

fn check_err(x: &Inputs, dst: Option<Layout>, p: &FlashAttnParams) -> OpError {
    let (q, k, v, default_dst) = layouts(x);
    let extras = FlashAttnExtras {
        mask: x.mask.as_ref().map(|m| &m.layout),
        sinks: x.sinks.as_ref().map(|s| &s.layout),
    };
    check_flash_attn_ext(&q, &k, &v, extras, &dst.unwrap_or(default_dst), p).unwrap_err()
}

#[test]
fn rejects_alibi_without_a_mask_and_unknown_precisions() {
    let x = inputs(&Case { mask: false, ..BASE });
    let err = check_err(&x, None, &params(1.0, 8.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: mask is required: max_bias > 0");
    let mut raw = [0i32; 16];
    raw[3] = 20;
    let err = FlashAttnParams::from_op_params(&raw).unwrap_err();
    assert!(matches!(err, OpError::InvalidParam { param: "precision", .. }), "{err}");
}

#[test]
fn rejects_a_mask_narrower_than_the_keys_or_shorter_than_the_queries() {
    let mut x = inputs(&BASE);
    x.mask = Some(kq_mask(95, 8, 1, 8));
    let err = check_err(&x, None, &params(1.0, 0.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: mask ne[0] 95 < k ne[1] 96");
    x.mask = Some(kq_mask(96, 7, 1, 9));
    let err = check_err(&x, None, &params(1.0, 0.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: mask ne[1] 7 < q ne[1] 8");
}

#[test]
fn rejects_heads_that_do_not_group_and_kv_lengths_that_differ() {
    let mut x = inputs(&BASE);
    x.k = Tensor::random(F16, [64, 96, 3, 1], 10, 1.0);
    let err = check_err(&x, None, &params(1.0, 0.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: q ne[2] 4 is not a multiple of k ne[2] 3");
    let mut x = inputs(&BASE);
    x.v = Tensor::random(F16, [64, 95, 4, 1], 11, 1.0);
    let err = check_err(&x, None, &params(1.0, 0.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: v ne[1] 95 != k ne[1] 96");
}

#[test]
fn rejects_a_dst_that_is_not_laid_out_as_ggml_writes_it() {
    let x = inputs(&BASE);
    // [Dv, n_q, H, B] instead of [Dv, H, n_q, B].
    let unpermuted = Layout::contiguous(F32, [64, 8, 4, 1]).unwrap();
    let err = check_err(&x, Some(unpermuted), &params(1.0, 0.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: dst has ne [64, 8, 4, 1], expected [64, 4, 8, 1]");
    let strided = Layout::new(F32, [64, 4, 8, 1], [4, 512, 2048, 16384]).unwrap();
    let err = check_err(&x, Some(strided), &params(1.0, 0.0, 0.0, 0));
    assert!(matches!(err, OpError::StrideRule { operand: "dst", .. }), "{err}");
}

#[test]
fn rejects_an_f16_query() {
    let mut x = inputs(&BASE);
    x.q = Tensor::random(F16, [64, 8, 4, 1], 12, 1.0);
    let err = check_err(&x, None, &params(1.0, 0.0, 0.0, 0));
    assert_eq!(err.to_string(), "FLASH_ATTN_EXT: q has type f16, expected f32");
}

/// The inputs with block-format caches replaced by their dequantized values
/// and, when `quantized_query`, the query rounded through K's dot-product
/// format as ggml's CPU rounds it: what the block path must compute.
fn as_ggml_computes(x: &Inputs, quantized_query: bool) -> Inputs {
    let mut q = x.q.to_f32();
    if quantized_query && let Some(format) = x.k.layout.elem().block_format() {
        let target = format.vec_dot_format().unwrap();
        q = Tensor::new(super::q(target), q.layout.ne(), &q.values()).to_f32();
    }
    Inputs { q, k: x.k.to_f32(), v: x.v.to_f32(), mask: x.mask.clone(), sinks: x.sinks.clone() }
}

#[test]
fn attends_over_block_format_caches_as_ggml_does() {
    use crate::kernels::quant::BlockFormat;
    for kv_type in [BlockFormat::Q8_0, BlockFormat::Q4_0, BlockFormat::Q4_1, BlockFormat::Q5_0] {
        for c in [
            Case { kv_type: super::q(kv_type), ..BASE },
            Case { kv_type: super::q(kv_type), n_q: 1, nr23: [2, 1], sinks: true, ..BASE },
            Case { kv_type: super::q(kv_type), permute: [0, 2, 1, 3], softcap: 20.0, ..BASE },
        ] {
            let x = inputs(&c);
            let p = params(1.0 / (c.d as f32).sqrt(), c.max_bias, c.softcap, 0);
            let dst = run(&x, &p).unwrap().values();
            // Exactly ggml's method (to f32 rounding), and within
            // test-backend-ops' 5e-4 of the exact attention.
            assert_nmse(&dst, &reference(&as_ggml_computes(&x, true), &p), 1e-9);
            assert_nmse(&dst, &reference(&as_ggml_computes(&x, false), &p), 5e-4);
        }
    }
}

#[test]
fn block_keys_may_meet_float_values_and_k_quant_keys_need_whole_super_blocks() {
    use crate::kernels::quant::BlockFormat;
    let c = Case { kv_type: super::q(BlockFormat::Q8_0), ..BASE };
    let mut x = inputs(&c);
    x.v = Tensor::random(F16, [64, 96, 4, 1], 13, 1.0);
    let p = params(0.125, 0.0, 0.0, 0);
    let dst = run(&x, &p).unwrap().values();
    assert_nmse(&dst, &reference(&as_ggml_computes(&x, true), &p), 1e-9);
    // q4_K keys of 256 channels work; the activation formats are refused.
    let c = Case { kv_type: super::q(BlockFormat::Q4K), d: 256, dv: 256, heads: 1, ..BASE };
    let x = inputs(&c);
    let dst = run(&x, &p).unwrap().values();
    assert_nmse(&dst, &reference(&as_ggml_computes(&x, true), &p), 1e-9);
    let mut x = inputs(&Case { d: 256, dv: 256, heads: 1, ..BASE });
    x.k = Tensor::random(super::q(BlockFormat::Q8K), [256, 96, 1, 1], 14, 1.0);
    let err = check_err(&x, None, &p).to_string();
    assert!(err.contains("k has type q8_K"), "{err}");
}
