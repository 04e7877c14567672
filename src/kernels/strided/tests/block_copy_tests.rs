//! GET_ROWS, SET_ROWS and CPY/DUP/CONT with block formats: quantizing and
//! dequantizing copies, bit-exact against `quant`'s row functions.

use super::{BF16, F16, F32, I32, I64, Tensor, WEIGHT_FORMATS, q};
use crate::kernels::quant::{self, BlockFormat};
use crate::kernels::strided::cpu_quantize;
use crate::kernels::strided::{
    Layout, check_cpy, check_get_rows, check_set_rows, cont, cpy, dup, get_rows, set_rows,
};

/// The bytes ggml's CPU quantizer makes of `values`: the reference
/// quantizer's, but for Q8_0 / Q8_1 (checked against it in
/// `cpu_quantize`).
fn quantized(format: BlockFormat, values: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0u8; format.row_bytes(values.len()).unwrap()];
    cpu_quantize::quantize_row(format, values, &mut bytes).unwrap();
    if !matches!(format, BlockFormat::Q8_0 | BlockFormat::Q8_1) {
        let mut reference = vec![0u8; bytes.len()];
        quant::quantize_row(format, values, &mut reference).unwrap();
        assert_eq!(bytes, reference, "{format}");
    }
    bytes
}

/// Every format a K/V cache or a CPY may be quantized into.
const QUANTIZE_FORMATS: [BlockFormat; 14] = BlockFormat::ALL;

#[test]
fn get_rows_dequantizes_the_rows_named_by_the_ids() {
    for format in WEIGHT_FORMATS {
        let src0 = Tensor::random(q(format), [256, 5, 2, 1], 1, 3.0);
        let ids = Tensor::ids(I32, [3, 2, 1, 1], &[4, 0, 4, 1, 1, 3]);
        let mut dst = Tensor::poisoned(F32, [256, 3, 2, 1]);
        get_rows(src0.view(), ids.view(), &mut dst.view_mut()).unwrap();
        let all = src0.to_f32();
        for (i11, row_ids) in [[4, 0, 4], [1, 1, 3]].iter().enumerate() {
            for (i10, &id) in row_ids.iter().enumerate() {
                for i0 in 0..256 {
                    let (got, want) = (dst.get([i0, i10, i11, 0]), all.get([i0, id, i11, 0]));
                    assert_eq!(got.to_bits(), want.to_bits(), "{format} [{i0}, {i10}, {i11}]");
                }
            }
        }
    }
}

#[test]
fn get_rows_refuses_activation_formats_and_bad_ids() {
    let ids = Layout::contiguous(I32, [1, 1, 1, 1]).unwrap();
    let dst = Layout::contiguous(F32, [256, 1, 1, 1]).unwrap();
    for format in [BlockFormat::Q8_1, BlockFormat::Q8K] {
        let src0 = Layout::contiguous(q(format), [256, 2, 1, 1]).unwrap();
        let err = check_get_rows(&src0, &ids, &dst).unwrap_err().to_string();
        assert!(err.contains("src0 has type"), "{err}");
    }
    let src0 = Tensor::random(q(BlockFormat::Q4K), [256, 2, 1, 1], 2, 1.0);
    let ids = Tensor::ids(I32, [1, 1, 1, 1], &[2]);
    let mut dst = Tensor::poisoned(F32, [256, 1, 1, 1]);
    assert!(get_rows(src0.view(), ids.view(), &mut dst.view_mut()).is_err());
    assert!(dst.bytes().iter().all(|&b| b == 0xAB), "dst written before the id check");
}

#[test]
fn cpy_quantizes_each_row_as_ggmls_cpu_does() {
    for format in QUANTIZE_FORMATS {
        for from in [F32, F16, BF16] {
            let src = Tensor::random(from, [256, 3, 2, 1], 3, 150.0);
            let mut dst = Tensor::poisoned(q(format), [256, 3, 2, 1]);
            cpy(src.view(), &mut dst.view_mut()).unwrap();
            let expected = quantized(format, &src.values());
            assert_eq!(dst.bytes(), &expected[..], "{from} -> {format}");
        }
    }
}

#[test]
fn cpy_into_blocks_follows_element_order_across_reshapes_and_permutes() {
    // A permuted f32 source (rows of 64 = two blocks) into a q8_0 tensor of
    // rows of 128: the blocks hold the elements in src's row-major order.
    let stored = Tensor::random(F32, [64, 3, 4, 1], 4, 1.0);
    let src = stored.permute([0, 2, 1, 3]);
    let mut dst = Tensor::poisoned(q(BlockFormat::Q8_0), [128, 6, 1, 1]);
    cpy(src.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.bytes(), &quantized(BlockFormat::Q8_0, &src.values())[..]);
}

#[test]
fn cpy_dequantizes_blocks_into_f32_in_element_order() {
    for format in WEIGHT_FORMATS {
        let src = Tensor::random(q(format), [256, 2, 3, 1], 5, 10.0);
        // Same shape, and reshaped to rows of 128 (whole 32-blocks; a
        // super-block then spans two rows of the contiguous dst).
        for ne in [[256, 2, 3, 1], [128, 12, 1, 1]] {
            let mut dst = Tensor::poisoned(F32, ne);
            cpy(src.view(), &mut dst.view_mut()).unwrap();
            assert_eq!(dst.values(), src.to_f32().values(), "{format} into {ne:?}");
        }
    }
}

#[test]
fn a_permuted_block_tensor_dequantizes_through_its_strides() {
    let stored = Tensor::random(q(BlockFormat::Q4_0), [64, 3, 2, 1], 6, 1.0);
    let src = stored.permute([0, 2, 1, 3]);
    let mut dst = Tensor::poisoned(F32, [64, 2, 3, 1]);
    cont(src.view(), &mut Tensor::poisoned(q(BlockFormat::Q4_0), [64, 2, 3, 1]).view_mut())
        .unwrap();
    cpy(src.view(), &mut dst.view_mut()).unwrap();
    let all = stored.to_f32();
    for (i1, i2, i0) in [(0, 0, 0), (1, 2, 63), (0, 1, 17)] {
        assert_eq!(dst.get([i0, i1, i2, 0]), all.get([i0, i2, i1, 0]));
    }
}

#[test]
fn same_type_block_copies_move_whole_blocks() {
    let src = Tensor::random(q(BlockFormat::Q6K), [256, 2, 2, 1], 7, 1.0);
    let mut dst = Tensor::poisoned(q(BlockFormat::Q6K), [256, 2, 2, 1]);
    dup(src.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.bytes(), src.bytes());
    // Permuted: CONT gathers the blocks of each row.
    let permuted = src.permute([0, 2, 1, 3]);
    let mut dst = Tensor::poisoned(q(BlockFormat::Q6K), [256, 2, 2, 1]);
    cont(permuted.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.to_f32().get([5, 1, 0, 0]), src.to_f32().get([5, 0, 1, 0]));
}

#[test]
fn cpy_refuses_what_ggml_cannot_convert() {
    let f32_rows = Layout::contiguous(F32, [64, 2, 1, 1]).unwrap();
    let q8_0 = Layout::contiguous(q(BlockFormat::Q8_0), [64, 2, 1, 1]).unwrap();
    let q4_0 = Layout::contiguous(q(BlockFormat::Q4_0), [64, 2, 1, 1]).unwrap();
    let err = |a: &Layout, b: &Layout| check_cpy(a, b).unwrap_err().to_string();
    // Between two block formats, from activation formats, into integers.
    assert!(err(&q8_0, &q4_0).contains("dst has type q4_0"));
    let q8_1 = Layout::contiguous(q(BlockFormat::Q8_1), [64, 2, 1, 1]).unwrap();
    assert!(err(&q8_1, &f32_rows).contains("dst has type f32"));
    let i32_rows = Layout::contiguous(I32, [64, 2, 1, 1]).unwrap();
    assert!(err(&q8_0, &i32_rows).contains("dst has type i32"));
    // Into blocks: src rows of whole blocks, contiguous elements; dst
    // contiguous.
    let odd = Layout::contiguous(F32, [16, 8, 1, 1]).unwrap();
    assert!(err(&odd, &q8_0).contains("src0 ne[0] 16 is not a multiple of the dst block of 32"));
    let transposed = Layout::new(F32, [64, 2, 1, 1], [8, 4, 512, 512]).unwrap();
    assert!(err(&transposed, &q8_0).contains("nb[0]"));
    let padded = Layout::new(q(BlockFormat::Q8_0), [64, 2, 1, 1], [34, 100, 200, 200]).unwrap();
    assert!(err(&f32_rows, &padded).contains("must be contiguous"));
    // Out of blocks: dst rows of whole blocks unless contiguous.
    let short_rows = Layout::new(F32, [16, 8, 1, 1], [4, 80, 640, 640]).unwrap();
    assert!(err(&q8_0, &short_rows).contains("dst ne[0] 16 is not a multiple"));
}

#[test]
fn set_rows_quantizes_each_row_into_the_cache() {
    for format in [BlockFormat::Q8_0, BlockFormat::Q4_0, BlockFormat::Q4_1, BlockFormat::Iq4Nl] {
        for src_elem in [F32, F16] {
            let src0 = Tensor::random(src_elem, [64, 2, 2, 1], 8, 1.0);
            let ids = Tensor::ids(I64, [2, 1, 1, 1], &[3, 0]);
            let mut cache = Tensor::poisoned(q(format), [64, 4, 2, 1]);
            set_rows(src0.view(), ids.view(), &mut cache.view_mut()).unwrap();
            let values = src0.values();
            for (i, id) in [(0, 3), (1, 0)] {
                for i02 in 0..2 {
                    let row = &values[(i02 * 2 + i) * 64..][..64];
                    let got = cache.view().row(id, i02, 0).unwrap();
                    assert_eq!(&got[..format.row_bytes(64).unwrap()], &quantized(format, row)[..]);
                }
            }
            // Rows no id names are untouched.
            assert!(cache.view().row(1, 0, 0).unwrap().iter().all(|&b| b == 0xAB));
        }
    }
}

#[test]
fn set_rows_writes_i32_by_truncation() {
    let src0 = Tensor::new(F32, [2, 1, 1, 1], &[-2.7, 3.9]);
    let ids = Tensor::ids(I32, [1, 1, 1, 1], &[0]);
    let mut dst = Tensor::poisoned(I32, [2, 1, 1, 1]);
    set_rows(src0.view(), ids.view(), &mut dst.view_mut()).unwrap();
    assert_eq!(dst.values(), [-2.0, 3.0]);
}

#[test]
fn set_rows_refuses_block_sources() {
    let src0 = Layout::contiguous(q(BlockFormat::Q8_0), [32, 1, 1, 1]).unwrap();
    let ids = Layout::contiguous(I64, [1, 1, 1, 1]).unwrap();
    let dst = Layout::contiguous(F16, [32, 1, 1, 1]).unwrap();
    let err = check_set_rows(&src0, &ids, &dst).unwrap_err().to_string();
    assert!(err.contains("src0 has type q8_0"), "{err}");
}
