//! The formats' sizes, names and pairings, and the length rules every
//! entry point enforces.

use crate::kernels::quant::{BlockFormat, QuantError, dequantize_row, quantize_row, vec_dot};

#[test]
fn block_sizes_are_ggml_s() {
    // (format, elements, bytes) from the static_asserts of ggml-common.h.
    let expected = [
        (BlockFormat::Q4_0, 32, 18),
        (BlockFormat::Q4_1, 32, 20),
        (BlockFormat::Q5_0, 32, 22),
        (BlockFormat::Q5_1, 32, 24),
        (BlockFormat::Q8_0, 32, 34),
        (BlockFormat::Q8_1, 32, 36),
        (BlockFormat::Q2K, 256, 84),
        (BlockFormat::Q3K, 256, 110),
        (BlockFormat::Q4K, 256, 144),
        (BlockFormat::Q5K, 256, 176),
        (BlockFormat::Q6K, 256, 210),
        (BlockFormat::Q8K, 256, 292),
        (BlockFormat::Iq4Nl, 32, 18),
        (BlockFormat::Iq4Xs, 256, 136),
    ];
    assert_eq!(expected.len(), BlockFormat::ALL.len());
    for (format, elems, bytes) in expected {
        assert_eq!((format.block_elems(), format.block_bytes()), (elems, bytes), "{format}");
    }
}

#[test]
fn names_and_type_numbers_are_ggml_s() {
    let expected = [
        ("q4_0", 2),
        ("q4_1", 3),
        ("q5_0", 6),
        ("q5_1", 7),
        ("q8_0", 8),
        ("q8_1", 9),
        ("q2_K", 10),
        ("q3_K", 11),
        ("q4_K", 12),
        ("q5_K", 13),
        ("q6_K", 14),
        ("q8_K", 15),
        ("iq4_nl", 20),
        ("iq4_xs", 23),
    ];
    for (format, (name, ggml_type)) in BlockFormat::ALL.into_iter().zip(expected) {
        assert_eq!(format.name(), name);
        assert_eq!(format.to_string(), name);
        assert_eq!(format.ggml_type(), ggml_type, "{name}");
        assert_eq!(BlockFormat::from_ggml_type(ggml_type), Some(format));
    }
}

#[test]
fn type_numbers_of_other_ggml_types_name_no_format() {
    // f32, f16, the removed q4_2/q4_3, iq2_xxs, bf16, a number past the end.
    for ggml_type in [0, 1, 4, 5, 16, 30, 43, u32::MAX] {
        assert_eq!(BlockFormat::from_ggml_type(ggml_type), None, "{ggml_type}");
    }
}

#[test]
fn dot_products_pair_each_format_with_ggml_s_vec_dot_type() {
    use BlockFormat::*;
    let expected = [
        (Q4_0, Some(Q8_0)),
        (Q4_1, Some(Q8_1)),
        (Q5_0, Some(Q8_0)),
        (Q5_1, Some(Q8_1)),
        (Q8_0, Some(Q8_0)),
        (Q8_1, None),
        (Q2K, Some(Q8K)),
        (Q3K, Some(Q8K)),
        (Q4K, Some(Q8K)),
        (Q5K, Some(Q8K)),
        (Q6K, Some(Q8K)),
        (Q8K, None),
        (Iq4Nl, Some(Q8_0)),
        (Iq4Xs, Some(Q8K)),
    ];
    for (format, y_format) in expected {
        assert_eq!(format.vec_dot_format(), y_format, "{format}");
        if let Some(y_format) = y_format {
            assert_eq!(format.block_elems(), y_format.block_elems(), "{format}");
        }
    }
}

#[test]
fn row_bytes_counts_whole_blocks() {
    assert_eq!(BlockFormat::Q4_0.row_bytes(0), Ok(0));
    assert_eq!(BlockFormat::Q4_0.row_bytes(4096), Ok(128 * 18));
    assert_eq!(BlockFormat::Q6K.row_bytes(4096), Ok(16 * 210));
}

#[test]
fn row_bytes_refuses_a_partial_block() {
    assert_eq!(
        BlockFormat::Q4K.row_bytes(300),
        Err(QuantError::PartialBlock { format: BlockFormat::Q4K, elements: 300, block_elems: 256 })
    );
}

#[test]
fn row_bytes_refuses_sizes_beyond_usize() {
    let elements = usize::MAX / 256 * 256;
    assert_eq!(
        BlockFormat::Q8K.row_bytes(elements),
        Err(QuantError::RowTooLarge { format: BlockFormat::Q8K, elements })
    );
}

#[test]
fn dequantize_row_rejects_a_partial_block_and_leaves_the_output_alone() {
    for format in BlockFormat::ALL {
        let elements = format.block_elems() + 1;
        let mut out = vec![7.0f32; elements];
        let err = dequantize_row(format, &vec![0; 2 * format.block_bytes()], &mut out);
        assert!(matches!(err, Err(QuantError::PartialBlock { .. })), "{format}: {err:?}");
        assert!(out.iter().all(|&v| v == 7.0), "{format}: output touched");
    }
}

#[test]
fn dequantize_row_rejects_source_bytes_that_are_not_exactly_the_blocks() {
    for format in BlockFormat::ALL {
        let elements = 2 * format.block_elems();
        let right = 2 * format.block_bytes();
        for wrong in [0, right - 1, right + 1, 3 * format.block_bytes()] {
            let mut out = vec![7.0f32; elements];
            assert_eq!(
                dequantize_row(format, &vec![0; wrong], &mut out),
                Err(QuantError::ByteLengthMismatch {
                    format,
                    elements,
                    expected: right,
                    actual: wrong
                })
            );
            assert!(out.iter().all(|&v| v == 7.0), "{format}: output touched");
        }
    }
}

#[test]
fn quantize_row_rejects_wrong_lengths_and_leaves_the_output_alone() {
    for format in BlockFormat::ALL {
        let block_elems = format.block_elems();
        let mut out = vec![0xA5u8; format.block_bytes()];
        let partial = quantize_row(format, &vec![1.0; block_elems - 1], &mut out);
        assert!(matches!(partial, Err(QuantError::PartialBlock { .. })), "{format}");
        let short = quantize_row(format, &vec![1.0; 2 * block_elems], &mut out);
        assert!(matches!(short, Err(QuantError::ByteLengthMismatch { .. })), "{format}");
        assert!(out.iter().all(|&b| b == 0xA5), "{format}: output touched");
    }
}

#[test]
fn empty_rows_are_accepted() {
    for format in BlockFormat::ALL {
        dequantize_row(format, &[], &mut []).unwrap();
        quantize_row(format, &[], &mut []).unwrap();
        if format.vec_dot_format().is_some() {
            assert_eq!(vec_dot(format, 0, &[], &[]).unwrap(), 0.0, "{format}");
        }
    }
}

#[test]
fn vec_dot_refuses_activation_formats_as_the_quantized_row() {
    for format in [BlockFormat::Q8_1, BlockFormat::Q8K] {
        let x = vec![0u8; format.block_bytes()];
        assert_eq!(
            vec_dot(format, format.block_elems(), &x, &x),
            Err(QuantError::NoDotProduct { format })
        );
    }
}

#[test]
fn vec_dot_checks_n_and_both_operands_lengths() {
    let (x_format, y_format) = (BlockFormat::Q4K, BlockFormat::Q8K);
    let x = vec![0u8; 2 * x_format.block_bytes()];
    let y = vec![0u8; 2 * y_format.block_bytes()];
    assert!(vec_dot(x_format, 512, &x, &y).is_ok());
    assert!(matches!(vec_dot(x_format, 500, &x, &y), Err(QuantError::PartialBlock { .. })));
    assert_eq!(
        vec_dot(x_format, 256, &x, &y),
        Err(QuantError::ByteLengthMismatch {
            format: x_format,
            elements: 256,
            expected: 144,
            actual: 288
        })
    );
    assert_eq!(
        vec_dot(x_format, 512, &x, &y[1..]),
        Err(QuantError::ByteLengthMismatch {
            format: y_format,
            elements: 512,
            expected: 584,
            actual: 583
        })
    );
    // An n whose Q8_K byte count overflows is refused, not wrapped.
    let huge = usize::MAX / 256 * 256;
    assert!(vec_dot(x_format, huge, &x, &y).is_err());
    assert!(matches!(BlockFormat::Q8K.row_bytes(huge), Err(QuantError::RowTooLarge { .. })));
}

#[test]
fn errors_name_the_format_and_the_sizes() {
    let err = QuantError::ByteLengthMismatch {
        format: BlockFormat::Q4_0,
        elements: 64,
        expected: 36,
        actual: 35,
    };
    assert_eq!(err.to_string(), "q4_0: 64 elements take 36 bytes of blocks, but 35 were given");
}
