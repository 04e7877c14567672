//! No layout, stride, type, id or parameter makes an op panic or touch
//! bytes outside its views: for every op, thousands of random operand sets
//! shaped as the op expects — with random strides (padded, permuted, zero),
//! types, ids, values and parameters, and one rule broken now and then — each
//! either computed or refused with an error.

use super::{Rng, Tensor, unravel};
use crate::kernels::GemmBackend;
use crate::kernels::quant::BlockFormat;
use crate::kernels::strided::{
    AccParams, ArgsortParams, ClampParams, ConcatParams, ElementType, FlashAttnExtraViews,
    FlashAttnParams, GluParams, Layout, NormParams, OpError, PadParams, RopeParams, ScaleParams,
    SoftMaxParams, UnaryOp, acc, add, add_id, argsort, clamp, concat, cpy, cumsum, flash_attn_ext,
    get_rows, glu, mean, mul_mat, mul_mat_id, norm, pad, repeat, rms_norm, rope, scale, set_rows,
    soft_max, sum, sum_rows, top_k, unary,
};

use ElementType::{BF16, F16, F32, I32, I64};

/// Block formats: the 32-element ones a K/V cache uses, and the K quants.
const Q8_0: ElementType = ElementType::Quant(BlockFormat::Q8_0);
const Q4_0: ElementType = ElementType::Quant(BlockFormat::Q4_0);
const Q4_K: ElementType = ElementType::Quant(BlockFormat::Q4K);
const Q8_1: ElementType = ElementType::Quant(BlockFormat::Q8_1);

/// Random strides for `ne`: compact, padded, with dimensions 1..3 stored in
/// a shuffled order, or with a zero stride; `ne` itself sometimes off by one
/// in one dimension (a broken shape rule).
/// Block formats keep whole blocks stored contiguously (any other layout of
/// them cannot be built) and count dimension 0 in blocks.
fn random_layout(rng: &mut Rng, elem: ElementType, mut ne: [usize; 4]) -> Layout {
    let blocks = elem.is_block_format();
    if rng.below(20) == 0 {
        let dim = if blocks { 1 + rng.below(3) } else { rng.below(4) };
        ne[dim] = (ne[dim] + rng.below(3)).saturating_sub(1);
    }
    let size = elem.block_bytes();
    let mut order = [1, 2, 3];
    if rng.below(6) == 0 {
        order.swap(rng.below(3), rng.below(3));
    }
    let mut nb = [0; 4];
    nb[0] = if rng.below(12) == 0 && !blocks { size * (1 + rng.below(3)) } else { size };
    let pad = |rng: &mut Rng| if rng.below(4) == 0 { size * (1 + rng.below(2)) } else { 0 };
    let units = ne[0] / elem.block_elems();
    let mut next = nb[0] * units.max(1) + pad(rng);
    for &dim in &order {
        nb[dim] = if rng.below(20) == 0 { 0 } else { next };
        next = nb[dim].max(next) * ne[dim].max(1) + pad(rng);
    }
    Layout::new(elem, ne, nb).unwrap()
}

/// A tensor of `layout` whose elements are random values (now and then
/// infinite or NaN) or, for index types, ids below `bound` (now and then
/// outside `0..bound`).
fn fill(rng: &mut Rng, layout: Layout, bound: usize) -> Tensor {
    let mut tensor = Tensor::zeroed(layout, layout.byte_extent() + rng.below(3));
    if layout.elem().is_block_format() {
        // Any bytes are a block (NaN or infinite scales included).
        let len = tensor.bytes().len();
        let noise: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        tensor.bytes_mut().copy_from_slice(&noise);
        return tensor;
    }
    let ne = layout.ne();
    for flat in 0..layout.elements() {
        let value = match layout.elem() {
            I32 | I64 if rng.below(100) == 0 => [-1.0, bound as f32, 1e9][rng.below(3)],
            I32 | I64 => rng.below(bound.max(1)) as f32,
            _ => match rng.below(50) {
                0 => f32::NEG_INFINITY,
                1 => f32::NAN,
                _ => rng.unit() * 4.0,
            },
        };
        tensor.set(unravel(flat, ne), value);
    }
    tensor
}

fn tensor(rng: &mut Rng, types: &[ElementType], ne: [usize; 4], bound: usize) -> Tensor {
    let elem = types[rng.below(types.len())];
    let layout = random_layout(rng, elem, ne);
    fill(rng, layout, bound)
}

fn small(rng: &mut Rng) -> usize {
    1 + rng.below(4)
}

fn params(rng: &mut Rng) -> [i32; 16] {
    [0; 16].map(|_| match rng.below(4) {
        0 => 0,
        1 => rng.below(8) as i32,
        2 => (rng.unit() * 4.0).to_bits() as i32,
        _ => rng.next_u64() as i32,
    })
}

const FLOATS: [ElementType; 3] = [F32, F16, BF16];

/// Runs `case` `count` times; fails if fewer than `min_ran` of them passed
/// the checks (so that the kernels themselves ran on random inputs).
fn exercise(
    name: &str,
    count: usize,
    min_ran: usize,
    mut case: impl FnMut(&mut Rng) -> Result<(), OpError>,
) {
    let mut rng = Rng::new(name.len() as u64 * 7919);
    let ran = (0..count).filter(|_| case(&mut rng).is_ok()).count();
    assert!(ran >= min_ran, "{name}: only {ran} of {count} random cases ran");
}

#[test]
fn get_rows_survives_random_operands() {
    exercise("GET_ROWS", 2000, 200, |rng| {
        let [a, b, c, d] = [0; 4].map(|_| small(rng));
        let n = small(rng);
        let types = [F32, F16, BF16, I32, Q8_0, Q8_1];
        let elem = types[rng.below(types.len())];
        let a = a * elem.block_elems();
        let src0 = tensor(rng, &[elem], [a, b, c, d], 0);
        let ids = tensor(rng, &[I32, I32, I32, I64], [n, c, d, 1], b);
        let mut dst = tensor(rng, &[F32, F32, I32], [a, n, c, d], 0);
        get_rows(src0.view(), ids.view(), &mut dst.view_mut())
    });
}

#[test]
fn set_rows_survives_random_operands() {
    exercise("SET_ROWS", 2000, 200, |rng| {
        let [a, r, c, d] = [0; 4].map(|_| small(rng));
        let rows = small(rng);
        let types = [F32, F16, BF16, I32, Q8_0, Q4_0];
        let dst_elem = types[rng.below(types.len())];
        let a = a * dst_elem.block_elems();
        let src0 = tensor(rng, &[F32, F16], [a, r, c, d], 0);
        let id_planes = 1 + rng.below(c);
        let ids = tensor(rng, &[I64, I32], [r, id_planes, 1, 1], rows);
        let mut dst = tensor(rng, &[dst_elem], [a, rows, c, d], 0);
        set_rows(src0.view(), ids.view(), &mut dst.view_mut())
    });
}

#[test]
fn elementwise_ops_survive_random_operands() {
    exercise("ELEMENTWISE", 3000, 600, |rng| {
        let ne = [0; 4].map(|_| small(rng));
        let src0 = tensor(rng, &FLOATS, ne, 0);
        let mut dst = tensor(rng, &FLOATS, ne, 0);
        let raw = params(rng);
        match rng.below(6) {
            0 => {
                let src1 = tensor(rng, &FLOATS, [ne[0], 1, ne[2], 1], 0);
                add(src0.view(), src1.view(), &mut dst.view_mut())
            }
            1 => rms_norm(src0.view(), &mut dst.view_mut(), NormParams::from_op_params(&raw)),
            2 => norm(src0.view(), &mut dst.view_mut(), NormParams { eps: 1e-5 }),
            3 => scale(src0.view(), &mut dst.view_mut(), ScaleParams::from_op_params(&raw)),
            4 => unary(UnaryOp::Gelu, src0.view(), &mut dst.view_mut()),
            _ => cpy(src0.view(), &mut dst.view_mut()),
        }
    });
}

#[test]
fn mul_mat_survives_random_operands() {
    exercise("MUL_MAT", 1500, 150, |rng| {
        let weights = [F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q8_1];
        let elem = weights[rng.below(weights.len())];
        let k =
            if elem.is_block_format() { small(rng) * elem.block_elems() } else { small(rng) * 3 };
        let (m, n) = (small(rng) * 5, [1, 2, 5, 9][rng.below(4)]);
        let (b2, b3) = (small(rng), small(rng));
        let (r2, r3) = (small(rng), 1 + rng.below(2));
        let src0 = tensor(rng, &[elem], [k, m, b2, b3], 0);
        let src1 = tensor(rng, &FLOATS, [k, n, b2 * r2, b3 * r3], 0);
        let mut dst = tensor(rng, &[F32], [m, n, b2 * r2, b3 * r3], 0);
        mul_mat(src0.view(), src1.view(), &mut dst.view_mut(), GemmBackend::default())
    });
}

#[test]
fn soft_max_survives_random_operands() {
    exercise("SOFT_MAX", 2000, 100, |rng| {
        let [a, b, c, d] = [0; 4].map(|_| small(rng));
        let src0 = tensor(rng, &[F32], [a, b, c, d], 0);
        let mask_rows = b + rng.below(2);
        let mask = tensor(rng, &[F16, F32], [a, mask_rows, 1, 1], 0);
        let sinks = tensor(rng, &[F32], [c, 1, 1, 1], 0);
        let mut dst = tensor(rng, &[F32], [a, b, c, d], 0);
        let p = SoftMaxParams { scale: rng.unit(), max_bias: rng.unit() * 8.0 };
        let mask = (rng.below(4) != 0).then(|| mask.view());
        let sinks = (rng.below(2) == 0).then(|| sinks.view());
        soft_max(src0.view(), mask, sinks, &mut dst.view_mut(), p)
    });
}

#[test]
fn glu_survives_random_operands() {
    exercise("GLU", 2000, 200, |rng| {
        let [a, b, c, d] = [0; 4].map(|_| small(rng));
        let split = rng.below(2) == 0;
        let width = if split { a } else { 2 * a };
        let elem = [FLOATS[rng.below(3)]];
        let src0 = tensor(rng, &elem, [width, b, c, d], 0);
        let src1 = tensor(rng, &elem, [width, b, c, d], 0);
        let mut dst = tensor(rng, &elem, [a, b, c, d], 0);
        let mut raw = params(rng);
        raw[0] = rng.below(8) as i32;
        let p = GluParams::from_op_params(&raw)?;
        glu(src0.view(), split.then(|| src1.view()), &mut dst.view_mut(), p)
    });
}

#[test]
fn rope_survives_random_operands() {
    exercise("ROPE", 3000, 200, |rng| {
        let [h, t, b] = [0; 3].map(|_| small(rng));
        let ne0 = 2 * small(rng) * 2;
        let src0 = tensor(rng, &[F32, F16], [ne0, h, t, b], 0);
        let positions = tensor(rng, &[I32], [t, 1, 1, 1], 100_000);
        let multi = rng.below(3) == 0;
        let positions =
            if multi { tensor(rng, &[I32], [4 * t, 1, 1, 1], 100_000) } else { positions };
        let factors = tensor(rng, &[F32], [ne0 / 2, 1, 1, 1], 0);
        let mut dst = tensor(rng, &[F32, F16], [ne0, h, t, b], 0);
        let mut raw = params(rng);
        raw[1] = [ne0, ne0 / 2, 2, 0][rng.below(4)] as i32;
        raw[2] = if multi { [8, 24, 40, 2][rng.below(4)] } else { [0, 2, 8][rng.below(3)] };
        for slot in &mut raw[11..15] {
            *slot = [0, 1, 2, 1, 2, 1, -1, i32::MAX][rng.below(8)];
        }
        raw[15] = [0, 2, 1][rng.below(3)];
        let p = RopeParams::from_op_params(&raw)?;
        let factors = (rng.below(2) == 0).then(|| factors.view());
        rope(src0.view(), positions.view(), factors, &mut dst.view_mut(), &p)
    });
}

#[test]
fn flash_attn_ext_survives_random_operands() {
    exercise("FLASH_ATTN_EXT", 1500, 150, |rng| {
        let (d, dv, n_q, n_kv) = (small(rng) * 4, small(rng) * 4, small(rng), small(rng) * 3);
        let (kv_heads, group, batches) = (small(rng), small(rng), 1 + rng.below(2));
        let heads = kv_heads * group;
        let blocks = rng.below(3) == 0;
        let (d, dv) = if blocks { (d * 8, dv * 8) } else { (d, dv) };
        let kv_types: &[ElementType] = if blocks { &[Q8_0, Q4_0, Q8_1, F16] } else { &FLOATS };
        let q = tensor(rng, &[F32], [d, n_q, heads, batches], 0);
        let k = tensor(rng, kv_types, [d, n_kv, kv_heads, batches], 0);
        let v = tensor(rng, kv_types, [dv, n_kv, kv_heads, batches], 0);
        let mask_rows = n_q + rng.below(3);
        let mask = tensor(rng, &[F16], [n_kv, mask_rows, 1, batches], 0);
        let sinks = tensor(rng, &[F32], [heads, 1, 1, 1], 0);
        let mut dst = tensor(rng, &[F32], [dv, heads, n_q, batches], 0);
        let mut raw = params(rng);
        raw[3] = [0, 10, 20][rng.below(3)];
        let p = FlashAttnParams::from_op_params(&raw)?;
        let extras = FlashAttnExtraViews {
            mask: (rng.below(3) != 0).then(|| mask.view()),
            sinks: (rng.below(2) == 0).then(|| sinks.view()),
        };
        flash_attn_ext(q.view(), k.view(), v.view(), extras, &mut dst.view_mut(), &p)
    });
}

#[test]
fn block_copies_survive_random_operands() {
    exercise("CPY_BLOCKS", 2000, 300, |rng| {
        let [a, b, c, d] = [0; 4].map(|_| small(rng));
        let types = [F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q8_1];
        let (from, to) = (types[rng.below(types.len())], types[rng.below(types.len())]);
        let a = a * from.block_elems().max(to.block_elems());
        let src0 = tensor(rng, &[from], [a, b, c, d], 0);
        // Same element count, sometimes reshaped.
        let ne = if rng.below(2) == 0 { [a, b, c, d] } else { [a, b * c, d, 1] };
        let mut dst = tensor(rng, &[to], ne, 0);
        cpy(src0.view(), &mut dst.view_mut())
    });
}

#[test]
fn mul_mat_id_survives_random_operands() {
    exercise("MUL_MAT_ID", 1500, 150, |rng| {
        let weights = [F32, F16, Q8_0, Q4_K];
        let elem = weights[rng.below(weights.len())];
        let k =
            if elem.is_block_format() { small(rng) * elem.block_elems() } else { small(rng) * 3 };
        let (m, n_expert, n_used, n_tokens) = (small(rng) * 3, small(rng), small(rng), small(rng));
        let ne11 = if rng.below(2) == 0 { 1 } else { n_used };
        let src0 = tensor(rng, &[elem], [k, m, n_expert, 1], 0);
        let src1 = tensor(rng, &[F32, F16], [k, ne11, n_tokens, 1], 0);
        let ids = tensor(rng, &[I32], [n_used, n_tokens, 1, 1], n_expert);
        let mut dst = tensor(rng, &[F32], [m, n_used, n_tokens, 1], 0);
        mul_mat_id(
            src0.view(),
            src1.view(),
            ids.view(),
            &mut dst.view_mut(),
            GemmBackend::default(),
        )
    });
}

#[test]
fn row_and_index_ops_survive_random_operands() {
    exercise("ROW_OPS", 4000, 800, |rng| {
        let ne = [0; 4].map(|_| small(rng));
        let [a, b, c, d] = ne;
        let raw = params(rng);
        match rng.below(10) {
            0 => {
                let src0 = tensor(rng, &[F32, F16], ne, 0);
                let mut dst = tensor(rng, &[F32, F16], ne, 0);
                clamp(src0.view(), &mut dst.view_mut(), ClampParams::from_op_params(&raw))
            }
            1 => {
                let src0 = tensor(rng, &FLOATS, ne, 0);
                let mut dst = tensor(rng, &FLOATS, [1, 1, 1, 1], 0);
                sum(src0.view(), &mut dst.view_mut())
            }
            2 => {
                let src0 = tensor(rng, &[F32, F16], ne, 0);
                let mut dst = tensor(rng, &[F32], [1, b, c, d], 0);
                if rng.below(2) == 0 {
                    sum_rows(src0.view(), &mut dst.view_mut())
                } else {
                    mean(src0.view(), &mut dst.view_mut())
                }
            }
            3 => {
                let src0 = tensor(rng, &[F32], ne, 0);
                let mut dst = tensor(rng, &[F32], ne, 0);
                cumsum(src0.view(), &mut dst.view_mut())
            }
            4 => {
                let src0 = tensor(rng, &[F32], ne, 0);
                let mut dst = tensor(rng, &[I32], ne, 0);
                argsort(src0.view(), &mut dst.view_mut(), ArgsortParams::from_op_params(&raw)?)
            }
            5 => {
                let src0 = tensor(rng, &[F32], ne, 0);
                let k = 1 + rng.below(a + 1);
                let mut dst = tensor(rng, &[I32], [k, b, c, d], 0);
                top_k(src0.view(), &mut dst.view_mut())
            }
            6 => {
                let p = ConcatParams::from_op_params(&raw)?;
                let mut other = ne;
                other[p.dim] = small(rng);
                let mut joined = ne;
                joined[p.dim] += other[p.dim];
                let types = [F32, F16, I32];
                let elem = [types[rng.below(3)]];
                let src0 = tensor(rng, &elem, ne, 0);
                let src1 = tensor(rng, &elem, other, 0);
                let mut dst = tensor(rng, &elem, joined, 0);
                concat(src0.view(), src1.view(), &mut dst.view_mut(), p)
            }
            7 => {
                let src0 = tensor(rng, &[F32, F16, I32], ne, 0);
                let tiled = [0; 4].map(|_| small(rng));
                let tiled = [0, 1, 2, 3].map(|dim| ne[dim] * tiled[dim]);
                let mut dst = tensor(rng, &[F32, F16, I32], tiled, 0);
                repeat(src0.view(), &mut dst.view_mut())
            }
            8 => {
                let mut raw = raw;
                raw[..8].iter_mut().for_each(|p| *p = [0, 1, 2, -1][rng.below(4)]);
                let p = PadParams::from_op_params(&raw)?;
                let padded = [0, 1, 2, 3].map(|dim| ne[dim] + p.left[dim] + p.right[dim]);
                let src0 = tensor(rng, &[F32], ne, 0);
                let mut dst = tensor(rng, &[F32], padded, 0);
                pad(src0.view(), &mut dst.view_mut(), &p)
            }
            _ => {
                let src0 = tensor(rng, &[F32], ne, 0);
                if rng.below(2) == 0 {
                    let experts = small(rng);
                    let src1 = tensor(rng, &[F32], [a, experts, 1, 1], 0);
                    let ids = tensor(rng, &[I32], [b, c, 1, 1], src1.layout.ne()[1]);
                    let mut dst = tensor(rng, &[F32], ne, 0);
                    add_id(src0.view(), src1.view(), ids.view(), &mut dst.view_mut())
                } else {
                    let window = [small(rng), small(rng), 1, 1];
                    let src1 = tensor(rng, &[F32], window, 0);
                    let mut raw = raw;
                    let row = 4 * a;
                    raw[..4].copy_from_slice(
                        &[row, row * b, row * b * c, 4 * rng.below(4)].map(|v| v as i32),
                    );
                    let p = AccParams::from_op_params(&raw)?;
                    let mut dst = tensor(rng, &[F32], ne, 0);
                    acc(src0.view(), src1.view(), &mut dst.view_mut(), &p)
                }
            }
        }
    });
}
