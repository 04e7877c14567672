//! Bit-exactness against ggml's own reference code: bytes and hashes that
//! a C harness produced by running ggml's `quantize_row_*_ref`,
//! `dequantize_row_*` and `ggml_vec_dot_*_generic` on the seeded inputs of
//! `tests/mod.rs` (see `testdata/README.md`).

use std::collections::HashMap;

use super::{
    N, SplitMix, dequantize, dot_x_input, extreme_input, fnv1a, fnv1a_floats, formats_with_dot,
    main_input, quantize, random_blocks_with_tame_scales, y_input,
};
use crate::kernels::quant::{BlockFormat, Implementation};

const GOLDEN: &str = include_str!("../testdata/golden.txt");

/// ggml's quantization of [`main_input`], in full, per format.
fn ggml_quantized_main_input(format: BlockFormat) -> &'static [u8] {
    match format {
        BlockFormat::Q4_0 => include_bytes!("../testdata/quantized/q4_0.bin"),
        BlockFormat::Q4_1 => include_bytes!("../testdata/quantized/q4_1.bin"),
        BlockFormat::Q5_0 => include_bytes!("../testdata/quantized/q5_0.bin"),
        BlockFormat::Q5_1 => include_bytes!("../testdata/quantized/q5_1.bin"),
        BlockFormat::Q8_0 => include_bytes!("../testdata/quantized/q8_0.bin"),
        BlockFormat::Q8_1 => include_bytes!("../testdata/quantized/q8_1.bin"),
        BlockFormat::Q2K => include_bytes!("../testdata/quantized/q2_K.bin"),
        BlockFormat::Q3K => include_bytes!("../testdata/quantized/q3_K.bin"),
        BlockFormat::Q4K => include_bytes!("../testdata/quantized/q4_K.bin"),
        BlockFormat::Q5K => include_bytes!("../testdata/quantized/q5_K.bin"),
        BlockFormat::Q6K => include_bytes!("../testdata/quantized/q6_K.bin"),
        BlockFormat::Q8K => include_bytes!("../testdata/quantized/q8_K.bin"),
        BlockFormat::Iq4Nl => include_bytes!("../testdata/quantized/iq4_nl.bin"),
        BlockFormat::Iq4Xs => include_bytes!("../testdata/quantized/iq4_xs.bin"),
    }
}

/// `golden.txt`'s lines `<what> [<format>] <hex>`, keyed by what and format.
fn golden() -> HashMap<(String, String), u64> {
    let mut values = HashMap::new();
    for line in GOLDEN.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (what, format, hex) = match words[..] {
            [what, format, hex] => (what, format, hex),
            [what, hex] => (what, "", hex),
            _ => panic!("malformed golden line {line:?}"),
        };
        let value = u64::from_str_radix(hex, 16).expect("hex golden value");
        values.insert((what.to_string(), format.to_string()), value);
    }
    values
}

#[track_caller]
fn expected(what: &str, format: &str) -> u64 {
    *golden().get(&(what.to_string(), format.to_string())).unwrap_or_else(|| {
        panic!("no golden value {what} {format}");
    })
}

/// The index and values of the first differing byte, for a readable
/// failure.
fn first_difference(ours: &[u8], theirs: &[u8]) -> Option<(usize, u8, u8)> {
    ours.iter().zip(theirs).enumerate().find(|(_, (a, b))| a != b).map(|(i, (&a, &b))| (i, a, b))
}

#[test]
fn seeded_inputs_are_the_ones_the_harness_used() {
    assert_eq!(fnv1a_floats(&main_input()), expected("input_main", ""));
    assert_eq!(fnv1a_floats(&y_input()), expected("input_y", ""));
    assert_eq!(fnv1a_floats(&extreme_input()), expected("input_extreme", ""));
}

#[test]
fn quantize_row_matches_ggml_reference_byte_for_byte() {
    let x = main_input();
    for format in BlockFormat::ALL {
        let ours = quantize(format, &x);
        let theirs = ggml_quantized_main_input(format);
        assert_eq!(ours.len(), theirs.len(), "{format}: length");
        if let Some((at, a, b)) = first_difference(&ours, theirs) {
            let block = at / format.block_bytes();
            let offset = at % format.block_bytes();
            panic!(
                "{format}: byte {at} (block {block}, offset {offset}) is {a:#04x}, ggml's {b:#04x}"
            );
        }
        assert_eq!(fnv1a(ours), expected("quantize", format.name()), "{format}: golden hash");
    }
}

#[test]
fn quantize_row_matches_ggml_on_nan_infinities_and_subnormals() {
    let x = extreme_input();
    for format in BlockFormat::ALL {
        let ours = quantize(format, &x);
        assert_eq!(fnv1a(ours), expected("quantize_extreme", format.name()), "{format}");
    }
}

#[test]
fn quantize_row_matches_ggml_on_the_dot_product_operands() {
    for (format, y_format) in formats_with_dot() {
        assert_eq!(
            fnv1a(quantize(format, &dot_x_input())),
            expected("quantize_dot_x", format.name()),
            "{format}"
        );
        assert_eq!(
            fnv1a(quantize(y_format, &y_input())),
            expected("quantize_dot_y", format.name()),
            "{y_format} for {format}"
        );
    }
}

/// ggml has no `dequantize_row_q8_1`.
fn formats_ggml_dequantizes() -> impl Iterator<Item = BlockFormat> {
    BlockFormat::ALL.into_iter().filter(|&f| f != BlockFormat::Q8_1)
}

#[test]
fn dequantize_row_matches_ggml_bit_for_bit() {
    for format in formats_ggml_dequantizes() {
        let ours = dequantize(format, ggml_quantized_main_input(format));
        assert_eq!(fnv1a_floats(&ours), expected("dequantize", format.name()), "{format}");
    }
}

#[test]
fn dequantize_row_matches_ggml_on_random_block_bytes() {
    for format in formats_ggml_dequantizes() {
        let bytes =
            SplitMix::new(1000 + format.ggml_type() as u64).bytes(format.row_bytes(N).unwrap());
        let ours = dequantize(format, &bytes);
        assert_eq!(fnv1a_floats(&ours), expected("dequantize_random", format.name()), "{format}");
    }
}

#[test]
fn vec_dot_matches_ggml_generic_bit_for_bit() {
    for (format, y_format) in formats_with_dot() {
        let x = quantize(format, &dot_x_input());
        let y = quantize(y_format, &y_input());
        let ours = Implementation::Scalar.vec_dot(format, N, &x, &y).unwrap();
        assert_eq!(ours.to_bits() as u64, expected("vec_dot", format.name()), "{format}: {ours}");
    }
}

#[test]
fn vec_dot_matches_ggml_generic_on_random_blocks() {
    for (format, y_format) in formats_with_dot() {
        let seed = format.ggml_type() as u64;
        let x = random_blocks_with_tame_scales(format, 2000 + seed);
        let y = random_blocks_with_tame_scales(y_format, 3000 + seed);
        let ours = Implementation::Scalar.vec_dot(format, N, &x, &y).unwrap();
        assert!(ours.is_finite(), "{format}: {ours}");
        assert_eq!(ours.to_bits() as u64, expected("vec_dot_random", format.name()), "{format}");
    }
}

/// ggml's fp16 and bf16 conversions of every 4099th f32 bit pattern.
#[test]
fn scale_conversions_match_ggml_on_a_sample_of_all_f32_bit_patterns() {
    let samples = || (0..1u32 << 20).map(|i| f32::from_bits(i.wrapping_mul(4099)));
    let f16s = fnv1a(
        samples().flat_map(|v| crate::kernels::quant::fp16::f32_to_f16_bits(v).to_le_bytes()),
    );
    assert_eq!(f16s, expected("f16_from_f32_sample", ""));
    let mut bf16 = vec![0u8; 2 << 20];
    let values: Vec<f32> = samples().collect();
    crate::kernels::quant::f32_to_bf16_row(&values, &mut bf16).unwrap();
    assert_eq!(fnv1a(bf16), expected("bf16_from_f32_sample", ""));
}
