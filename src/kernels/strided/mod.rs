//! CPU kernels for the ops a ggml graph sends, on strided 4-D views.
//!
//! A tensor is what ggml describes: an element type, `ne[4]` (elements per
//! dimension, dimension 0 fastest) and `nb[4]` (byte strides), over bytes
//! the caller has already found inside some buffer. These kernels know
//! nothing of buffers, tensor ids or the wire: a `Layout` is checked once
//! (its byte extent computable without overflow), a `View` / `ViewMut`
//! proves its bytes cover that extent, and from then on every row an op
//! touches is in bounds.
//!
//! Every op comes in two halves, like the rest of `kernels`:
//! 1. `check_<op>(layouts.., params)`: every rule on types, shapes and
//!    strides, on layouts alone, so a graph can be validated before any of
//!    it runs. The rules are those of ggml's op constructors (`ggml_<op>`
//!    in ggml.c, which compute `dst`'s shape: we receive `dst` from the
//!    client and verify it) and the `GGML_ASSERT`s of its CPU kernels — a
//!    graph accepted here is one ggml's CPU backend would compute — plus
//!    the bounds ggml forgets to check (row ids, mask sizes).
//! 2. `<op>(views.., dst, params)`: checks again (cheaply) and computes what
//!    ggml's CPU backend computes (llama.cpp 0c1e570), to its rounding.
//!
//! Parameters come from ggml's `op_params` (`OpParams`, 16 `i32`s) through
//! each op's `*Params::from_op_params`.
//!
//! Types: the plain types and ggml's block formats (`ElementType::Quant`,
//! bit-exact through `kernels::quant`). Block formats are weights of
//! MUL_MAT / MUL_MAT_ID (ggml's quantized-activation dot products for few
//! columns), sources of GET_ROWS and CONCAT, K/V caches of FLASH_ATTN_EXT,
//! and sources or destinations of CPY/DUP/CONT/SET_ROWS (quantized as
//! ggml's CPU quantizes, `cpu_quantize`); the other ops refuse them.
//!
//! Aliasing: the caller guarantees that `dst`'s bytes do not overlap any
//! source's (an in-place op's source is copied to scratch first), so ops
//! take `&[u8]` sources and a `&mut [u8]` destination in safe Rust.
//!
//! Work: an op's cost is about `dst.elements()` (times the inner dimension
//! for MUL_MAT, MUL_MAT_ID and FLASH_ATTN_EXT, and a log factor for
//! ARGSORT / TOP_K); a layout with zero strides can describe
//! many elements over few bytes, so a caller bounding work should bound
//! element counts, not bytes. Empty tensors cost nothing however large
//! their other dimensions.

mod acc;
mod add_id;
mod argmax;
mod binary;
mod clamp;
mod concat;
mod convert;
mod copy;
mod cpu_quantize;
mod element_type;
mod error;
mod fill;
mod flash_attn;
mod get_rows;
mod glu;
mod layout;
mod leaky_relu;
mod mul_mat;
mod mul_mat_id;
mod norm;
mod pad;
mod quant_dot;
mod reduce;
mod repeat;
mod rope;
mod rules;
mod scale;
mod set_rows;
mod soft_max;
mod sort;
mod unary;
mod view;

#[cfg(test)]
mod tests;

pub use acc::{AccParams, acc, check_acc};
pub use add_id::{add_id, check_add_id};
pub use argmax::{argmax, check_argmax, check_count_equal, count_equal};
pub use binary::{BinaryOp, add, binary, check_binary, div, mul, sub};
pub use clamp::{ClampParams, check_clamp, clamp};
pub use concat::{ConcatParams, check_concat, concat};
pub use copy::{check_cont, check_cpy, check_dup, cont, cpy, dup};
pub use element_type::ElementType;
pub use error::OpError;
pub use fill::{FillParams, check_fill, fill};
pub use flash_attn::{
    FlashAttnExtraViews, FlashAttnExtras, FlashAttnParams, check_flash_attn_ext, flash_attn_ext,
};
pub use get_rows::{check_get_rows, get_rows};
pub use glu::{GluOp, GluParams, check_glu, glu};
pub use layout::{Layout, MAX_DIMS};
pub use leaky_relu::{LeakyReluParams, check_leaky_relu, leaky_relu};
pub use mul_mat::{check_mul_mat, mul_mat};
pub use mul_mat_id::{check_mul_mat_id, mul_mat_id};
pub use norm::{NormParams, check_l2_norm, check_norm, check_rms_norm, l2_norm, norm, rms_norm};
pub use pad::{PadParams, check_pad, pad};
pub use reduce::{
    check_cumsum, check_mean, check_sum, check_sum_rows, cumsum, mean, sum, sum_rows,
};
pub use repeat::{check_repeat, repeat};
pub use rope::{RopeMode, RopeParams, check_rope, rope};
pub use rules::OpParams;
pub use scale::{ScaleParams, check_scale, scale};
pub use set_rows::{check_set_rows, set_rows};
pub use soft_max::{SoftMaxParams, check_soft_max, soft_max};
pub use sort::{ArgsortParams, SortOrder, argsort, check_argsort, check_top_k, top_k};
pub use unary::{UnaryOp, check_unary, unary};
pub use view::{View, ViewMut};
