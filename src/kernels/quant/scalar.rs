//! The portable reference implementation: ggml's scalar code, format by
//! format (`legacy`, `k_quants`, `iq4`). Lengths are checked by the caller
//! (`Implementation`); here they are whole, matching blocks.

use crate::kernels::quant::{BlockFormat, iq4, k_quants, legacy};

pub(super) fn dequantize_row(format: BlockFormat, src: &[u8], dst: &mut [f32]) {
    match format {
        BlockFormat::Q4_0 => legacy::dequantize_q4_0(src, dst),
        BlockFormat::Q4_1 => legacy::dequantize_q4_1(src, dst),
        BlockFormat::Q5_0 => legacy::dequantize_q5_0(src, dst),
        BlockFormat::Q5_1 => legacy::dequantize_q5_1(src, dst),
        BlockFormat::Q8_0 => legacy::dequantize_q8_0(src, dst),
        BlockFormat::Q8_1 => legacy::dequantize_q8_1(src, dst),
        BlockFormat::Q2K => k_quants::dequantize_q2_k(src, dst),
        BlockFormat::Q3K => k_quants::dequantize_q3_k(src, dst),
        BlockFormat::Q4K => k_quants::dequantize_q4_k(src, dst),
        BlockFormat::Q5K => k_quants::dequantize_q5_k(src, dst),
        BlockFormat::Q6K => k_quants::dequantize_q6_k(src, dst),
        BlockFormat::Q8K => k_quants::dequantize_q8_k(src, dst),
        BlockFormat::Iq4Nl => iq4::dequantize_iq4_nl(src, dst),
        BlockFormat::Iq4Xs => iq4::dequantize_iq4_xs(src, dst),
    }
}

pub(super) fn quantize_row(format: BlockFormat, src: &[f32], dst: &mut [u8]) {
    match format {
        BlockFormat::Q4_0 => legacy::quantize_q4_0(src, dst),
        BlockFormat::Q4_1 => legacy::quantize_q4_1(src, dst),
        BlockFormat::Q5_0 => legacy::quantize_q5_0(src, dst),
        BlockFormat::Q5_1 => legacy::quantize_q5_1(src, dst),
        BlockFormat::Q8_0 => legacy::quantize_q8_0(src, dst),
        BlockFormat::Q8_1 => legacy::quantize_q8_1(src, dst),
        BlockFormat::Q2K => k_quants::quantize_q2_k(src, dst),
        BlockFormat::Q3K => k_quants::quantize_q3_k(src, dst),
        BlockFormat::Q4K => k_quants::quantize_q4_k(src, dst),
        BlockFormat::Q5K => k_quants::quantize_q5_k(src, dst),
        BlockFormat::Q6K => k_quants::quantize_q6_k(src, dst),
        BlockFormat::Q8K => k_quants::quantize_q8_k(src, dst),
        BlockFormat::Iq4Nl => iq4::quantize_iq4_nl(src, dst),
        BlockFormat::Iq4Xs => iq4::quantize_iq4_xs(src, dst),
    }
}

/// `None` for the activation formats, which have no dot product of their
/// own.
pub(super) fn vec_dot(format: BlockFormat, x: &[u8], y: &[u8]) -> Option<f32> {
    Some(match format {
        BlockFormat::Q4_0 => legacy::vec_dot_q4_0_q8_0(x, y),
        BlockFormat::Q4_1 => legacy::vec_dot_q4_1_q8_1(x, y),
        BlockFormat::Q5_0 => legacy::vec_dot_q5_0_q8_0(x, y),
        BlockFormat::Q5_1 => legacy::vec_dot_q5_1_q8_1(x, y),
        BlockFormat::Q8_0 => legacy::vec_dot_q8_0_q8_0(x, y),
        BlockFormat::Q2K => k_quants::vec_dot_q2_k_q8_k(x, y),
        BlockFormat::Q3K => k_quants::vec_dot_q3_k_q8_k(x, y),
        BlockFormat::Q4K => k_quants::vec_dot_q4_k_q8_k(x, y),
        BlockFormat::Q5K => k_quants::vec_dot_q5_k_q8_k(x, y),
        BlockFormat::Q6K => k_quants::vec_dot_q6_k_q8_k(x, y),
        BlockFormat::Iq4Nl => iq4::vec_dot_iq4_nl_q8_0(x, y),
        BlockFormat::Iq4Xs => iq4::vec_dot_iq4_xs_q8_k(x, y),
        BlockFormat::Q8_1 | BlockFormat::Q8K => return None,
    })
}
