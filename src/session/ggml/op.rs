//! ggml's numbering of ops and types (ggml.h of llama.cpp 0c1e570), for reading a graph and
//! for naming what it asks for in errors.

/// ggml's op names, indexed by op code (`enum ggml_op`, `GGML_OP_COUNT` = 101).
const OP_NAMES: [&str; 101] = [
    "NONE",
    "DUP",
    "ADD",
    "ADD_ID",
    "ADD1",
    "ACC",
    "SUB",
    "MUL",
    "DIV",
    "SQR",
    "SQRT",
    "LOG",
    "SIN",
    "COS",
    "SUM",
    "SUM_ROWS",
    "CUMSUM",
    "MEAN",
    "ARGMAX",
    "COUNT_EQUAL",
    "REPEAT",
    "REPEAT_BACK",
    "CONCAT",
    "SILU_BACK",
    "NORM",
    "RMS_NORM",
    "RMS_NORM_BACK",
    "GROUP_NORM",
    "L2_NORM",
    "MUL_MAT",
    "MUL_MAT_ID",
    "OUT_PROD",
    "SCALE",
    "SET",
    "CPY",
    "CONT",
    "RESHAPE",
    "VIEW",
    "PERMUTE",
    "TRANSPOSE",
    "GET_ROWS",
    "GET_ROWS_BACK",
    "SET_ROWS",
    "DIAG",
    "DIAG_MASK_INF",
    "DIAG_MASK_ZERO",
    "SOFT_MAX",
    "SOFT_MAX_BACK",
    "ROPE",
    "ROPE_BACK",
    "CLAMP",
    "CONV_TRANSPOSE_1D",
    "IM2COL",
    "IM2COL_BACK",
    "IM2COL_3D",
    "COL2IM_1D",
    "CONV_2D",
    "CONV_3D",
    "CONV_2D_DW",
    "CONV_TRANSPOSE_2D",
    "POOL_1D",
    "POOL_2D",
    "POOL_2D_BACK",
    "UPSCALE",
    "PAD",
    "PAD_REFLECT_1D",
    "ROLL",
    "ARANGE",
    "TIMESTEP_EMBEDDING",
    "ARGSORT",
    "TOP_K",
    "LEAKY_RELU",
    "TRI",
    "FILL",
    "FLASH_ATTN_EXT",
    "FLASH_ATTN_BACK",
    "SSM_CONV",
    "SSM_SCAN",
    "WIN_PART",
    "WIN_UNPART",
    "GET_REL_POS",
    "ADD_REL_POS",
    "RWKV_WKV6",
    "GATED_LINEAR_ATTN",
    "RWKV_WKV7",
    "SOLVE_TRI",
    "GATED_DELTA_NET",
    "LIGHTNING_INDEXER",
    "DSV4_HC_COMB",
    "DSV4_HC_PRE",
    "DSV4_HC_POST",
    "UNARY",
    "MAP_CUSTOM1",
    "MAP_CUSTOM2",
    "MAP_CUSTOM3",
    "CUSTOM",
    "CROSS_ENTROPY_LOSS",
    "CROSS_ENTROPY_LOSS_BACK",
    "OPT_STEP_ADAMW",
    "OPT_STEP_SGD",
    "GLU",
];

/// Ops that compute nothing: their result is a view of their source (`ggml_op_is_empty`).
pub const NONE: u32 = 0;
pub const RESHAPE: u32 = 36;
pub const VIEW: u32 = 37;
pub const PERMUTE: u32 = 38;
pub const TRANSPOSE: u32 = 39;

/// The op codes the session runs.
pub mod code {
    pub const DUP: u32 = 1;
    pub const ADD: u32 = 2;
    pub const ADD_ID: u32 = 3;
    pub const ACC: u32 = 5;
    pub const SUB: u32 = 6;
    pub const MUL: u32 = 7;
    pub const DIV: u32 = 8;
    pub const SQR: u32 = 9;
    pub const SQRT: u32 = 10;
    pub const LOG: u32 = 11;
    pub const SIN: u32 = 12;
    pub const COS: u32 = 13;
    pub const SUM: u32 = 14;
    pub const SUM_ROWS: u32 = 15;
    pub const CUMSUM: u32 = 16;
    pub const MEAN: u32 = 17;
    pub const ARGMAX: u32 = 18;
    pub const COUNT_EQUAL: u32 = 19;
    pub const REPEAT: u32 = 20;
    pub const CONCAT: u32 = 22;
    pub const NORM: u32 = 24;
    pub const RMS_NORM: u32 = 25;
    pub const L2_NORM: u32 = 28;
    pub const MUL_MAT: u32 = 29;
    pub const MUL_MAT_ID: u32 = 30;
    pub const SCALE: u32 = 32;
    pub const CPY: u32 = 34;
    pub const CONT: u32 = 35;
    pub const GET_ROWS: u32 = 40;
    pub const SET_ROWS: u32 = 42;
    pub const SOFT_MAX: u32 = 46;
    pub const ROPE: u32 = 48;
    pub const CLAMP: u32 = 50;
    pub const PAD: u32 = 64;
    pub const ARGSORT: u32 = 69;
    pub const TOP_K: u32 = 70;
    pub const LEAKY_RELU: u32 = 71;
    pub const FILL: u32 = 73;
    pub const FLASH_ATTN_EXT: u32 = 74;
    pub const UNARY: u32 = 91;
    pub const GLU: u32 = 100;
}

/// ggml's name of op `code`, if it is one.
pub fn op_name(code: u32) -> Option<&'static str> {
    usize::try_from(code).ok().and_then(|i| OP_NAMES.get(i)).copied()
}

/// Whether `code` computes nothing (a view, reshape, permute, transpose, or none).
pub fn is_empty_op(code: u32) -> bool {
    matches!(code, NONE | RESHAPE | VIEW | PERMUTE | TRANSPOSE)
}

/// What a ggml type's elements are stored as: a name and blocks of elements
/// (`ggml_type_traits`: `blck_size`, `type_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeTraits {
    pub name: &'static str,
    /// Elements per block (1 for the plain types).
    pub block_elems: u64,
    /// Bytes per block.
    pub block_bytes: u64,
}

/// The traits of ggml type `type_id`; `None` for numbers that are no type (never were, or
/// whose support ggml removed).
pub fn type_traits(type_id: u32) -> Option<TypeTraits> {
    let (name, block_elems, block_bytes) = match type_id {
        0 => ("f32", 1, 4),
        1 => ("f16", 1, 2),
        2 => ("q4_0", 32, 18),
        3 => ("q4_1", 32, 20),
        6 => ("q5_0", 32, 22),
        7 => ("q5_1", 32, 24),
        8 => ("q8_0", 32, 34),
        9 => ("q8_1", 32, 36),
        10 => ("q2_K", 256, 84),
        11 => ("q3_K", 256, 110),
        12 => ("q4_K", 256, 144),
        13 => ("q5_K", 256, 176),
        14 => ("q6_K", 256, 210),
        15 => ("q8_K", 256, 292),
        16 => ("iq2_xxs", 256, 66),
        17 => ("iq2_xs", 256, 74),
        18 => ("iq3_xxs", 256, 98),
        19 => ("iq1_s", 256, 50),
        20 => ("iq4_nl", 32, 18),
        21 => ("iq3_s", 256, 110),
        22 => ("iq2_s", 256, 82),
        23 => ("iq4_xs", 256, 136),
        24 => ("i8", 1, 1),
        25 => ("i16", 1, 2),
        26 => ("i32", 1, 4),
        27 => ("i64", 1, 8),
        28 => ("f64", 1, 8),
        29 => ("iq1_m", 256, 56),
        30 => ("bf16", 1, 2),
        34 => ("tq1_0", 256, 54),
        35 => ("tq2_0", 256, 66),
        39 => ("mxfp4", 32, 17),
        40 => ("nvfp4", 64, 36),
        41 => ("q1_0", 128, 18),
        42 => ("q2_0", 64, 18),
        _ => return None,
    };
    Some(TypeTraits { name, block_elems, block_bytes })
}

/// ggml's name of type `type_id`, or its number when it is no type.
pub fn type_label(type_id: u32) -> String {
    type_traits(type_id).map_or_else(|| format!("type {type_id}"), |t| t.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_follow_ggmls_numbering() {
        assert_eq!(op_name(code::MUL_MAT), Some("MUL_MAT"));
        assert_eq!(op_name(code::FLASH_ATTN_EXT), Some("FLASH_ATTN_EXT"));
        assert_eq!(op_name(code::GLU), Some("GLU"));
        assert_eq!(op_name(VIEW), Some("VIEW"));
        assert_eq!(op_name(101), None);
    }

    #[test]
    fn removed_types_are_no_types() {
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 43, u32::MAX] {
            assert_eq!(type_traits(removed), None, "{removed}");
        }
        assert_eq!(
            type_traits(12).map(|t| (t.name, t.block_elems, t.block_bytes)),
            Some(("q4_K", 256, 144))
        );
        assert_eq!(type_label(4), "type 4");
    }
}
