//! MUL_MAT_ID: a matrix product per token with the experts it was routed
//! to (`ggml_mul_mat_id`; the expert FFNs of mixtral, qwen2moe, ...).
//!
//! `src0` holds `n_expert` weight matrices `[K, M, n_expert]`, `src1` the
//! activations `[K, ne11, n_tokens]` (`ne11` is 1, shared by every expert
//! slot, or `n_used`, one per slot), `ids` i32 `[n_used, n_tokens]` the
//! experts of each token; `dst` is `[M, n_used, n_tokens]` with
//! `dst[:, s, t] = src0[:, :, ids[s, t]]ᵀ · src1[:, s % ne11, t]`.
//!
//! The columns that go to one expert are gathered and multiplied together,
//! by MUL_MAT's strategies (so a block-format expert with few tokens uses
//! ggml's quantized dot products, and one with many the GEMM backend), as
//! ggml's CPU groups rows by expert. Every id is checked against `n_expert`
//! before anything is written: ggml only asserts it in debug builds, and
//! writes out of bounds otherwise.

use crate::kernels::error::KernelError;
use crate::kernels::gemm::GemmBackend;
use crate::kernels::strided::element_type::ElementType;
use crate::kernels::strided::error::OpError;
use crate::kernels::strided::layout::Layout;
use crate::kernels::strided::mul_mat::{
    Strategy, batch_products, max_dot_columns, require_weight_type,
};
use crate::kernels::strided::rules::{
    require_dim_eq, require_dim_multiple, require_ordered_strides, require_row_stride,
    require_same_type, require_shape, require_type,
};
use crate::kernels::strided::view::{View, ViewMut};

const OP: &str = "MUL_MAT_ID";

/// Checks the weight type (MUL_MAT's), src1 f32 (or the weights' own f16 /
/// bf16), ids i32 `[n_used, n_tokens]`, shapes (`src1.ne[0] == src0.ne[0]`,
/// `ids.ne[1] == src1.ne[2]`, `ids.ne[0]` a multiple of `src1.ne[1]`,
/// `src0` and `src1` three-dimensional), dst f32 `[M, n_used, n_tokens, 1]`
/// with ascending strides, and `nb[0]` the element size everywhere.
pub fn check_mul_mat_id(
    src0: &Layout,
    src1: &Layout,
    ids: &Layout,
    dst: &Layout,
) -> Result<(), OpError> {
    require_weight_type(OP, src0)?;
    match src0.elem() {
        ElementType::F16 => {
            require_type(OP, "src1", src1, &[ElementType::F32, ElementType::F16], "f32, f16")?
        }
        ElementType::BF16 => {
            require_type(OP, "src1", src1, &[ElementType::F32, ElementType::BF16], "f32, bf16")?
        }
        _ => require_same_type(OP, "src1", src1, ElementType::F32)?,
    }
    require_same_type(OP, "ids", ids, ElementType::I32)?;
    require_same_type(OP, "dst", dst, ElementType::F32)?;
    let [k, m, _, _] = src0.ne();
    let [_, ne11, n_tokens, _] = src1.ne();
    let n_used = ids.ne()[0];
    require_dim_eq(OP, "src0", src0, 3, "", 1)?;
    require_dim_eq(OP, "src1", src1, 0, "src0 ne[0] ", k)?;
    require_dim_eq(OP, "src1", src1, 3, "", 1)?;
    require_dim_eq(OP, "ids", ids, 1, "src1 ne[2] ", n_tokens)?;
    require_dim_eq(OP, "ids", ids, 2, "", 1)?;
    require_dim_eq(OP, "ids", ids, 3, "", 1)?;
    require_dim_multiple(OP, "ids", ids, 0, "src1 ne[1] ", ne11)?;
    require_shape(OP, "dst", dst, [m, n_used, n_tokens, 1])?;
    require_row_stride(OP, "src0", src0)?;
    require_row_stride(OP, "src1", src1)?;
    require_row_stride(OP, "dst", dst)?;
    require_ordered_strides(OP, "dst", dst)
}

/// `dst[:, s, t] = src0[:, :, ids[s, t]]ᵀ · src1[:, s % ne11, t]`; fails
/// without writing if an id is outside `0..n_expert`.
pub fn mul_mat_id(
    src0: View<'_>,
    src1: View<'_>,
    ids: View<'_>,
    dst: &mut ViewMut<'_>,
    backend: GemmBackend,
) -> Result<(), OpError> {
    check_mul_mat_id(src0.layout(), src1.layout(), ids.layout(), dst.layout())?;
    if !backend.is_available() {
        let source = Box::new(KernelError::BackendUnavailable { backend });
        return Err(OpError::Gemm { op: OP, source });
    }
    if dst.layout().is_empty() {
        return Ok(());
    }
    let [k, m, n_expert, _] = src0.layout().ne();
    let ne11 = src1.layout().ne()[1];
    let [n_used, n_tokens, ..] = ids.layout().ne();
    // Every (slot, token) by expert, every id checked first.
    let mut routed: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_expert];
    for token in 0..n_tokens {
        for slot in 0..n_used {
            let id = ids.read_index([slot, token, 0, 0])?;
            let expert = usize::try_from(id).ok().filter(|&e| e < n_expert).ok_or(
                OpError::RowIdOutOfRange {
                    op: OP,
                    operand: "ids",
                    position: [slot, token, 0],
                    id,
                    rows: n_expert,
                    target: "src0's experts",
                },
            )?;
            routed[expert].push((slot, token));
        }
    }
    let strategy = Strategy { backend, max_dot_columns: max_dot_columns(src0.layout().elem()) };
    let mut columns = Vec::new();
    let mut products = Vec::new();
    let mut dst_row = vec![0.0f32; m];
    for (expert, pairs) in routed.iter().enumerate() {
        if pairs.is_empty() {
            continue;
        }
        let n = pairs.len();
        columns.resize(n * k, 0.0);
        products.resize(n * m, 0.0);
        for (column, &(slot, token)) in columns.chunks_exact_mut(k.max(1)).zip(pairs) {
            // ne11 divides n_used (checked), and dst is not empty: ne11 > 0.
            src1.read_row_f32(slot % ne11, token, 0, column)?;
        }
        batch_products(src0, [expert, 0], &columns, &mut products, strategy)?;
        // products is [m][n]: column j goes to dst's row (slot, token).
        for (j, &(slot, token)) in pairs.iter().enumerate() {
            for (value, row) in dst_row.iter_mut().zip(products.chunks_exact(n)) {
                *value = row[j];
            }
            dst.write_row_f32(slot, token, 0, &dst_row)?;
        }
    }
    Ok(())
}
