use super::{BF16, F16, F32, I32, Tensor, round_to};
use crate::kernels::strided::{
    ElementType, Layout, OpError, check_cont, check_cpy, check_dup, cont, cpy, dup,
};

/// CPY's meaning: element k of src (row-major) is element k of dst.
fn reference(src: &Tensor, dst_elem: ElementType) -> Vec<f32> {
    src.values().iter().map(|&v| round_to(dst_elem, v)).collect()
}

fn copy_into(src: &Tensor, dst: &mut Tensor) {
    cpy(src.view(), &mut dst.view_mut()).unwrap();
}

const FLOATS: [ElementType; 3] = [F32, F16, BF16];

#[test]
fn converts_between_every_pair_of_float_types() {
    for from in FLOATS {
        for to in FLOATS {
            let src = Tensor::random(from, [10, 10, 10, 1], 1, 150.0);
            let mut dst = Tensor::poisoned(to, [10, 10, 10, 1]);
            copy_into(&src, &mut dst);
            assert_eq!(dst.values(), reference(&src, to), "{from} -> {to}");
        }
    }
}

#[test]
fn f32_to_i32_truncates_and_i32_to_f32_is_exact() {
    let src = Tensor::new(F32, [4, 1, 1, 1], &[-149.7, -0.5, 0.99, 149.2]);
    let mut ints = Tensor::poisoned(I32, [4, 1, 1, 1]);
    copy_into(&src, &mut ints);
    assert_eq!(ints.values(), [-149.0, 0.0, 0.0, 149.0]);
    let mut back = Tensor::poisoned(F32, [4, 1, 1, 1]);
    copy_into(&ints, &mut back);
    assert_eq!(back.values(), [-149.0, 0.0, 0.0, 149.0]);
}

#[test]
fn a_permuted_or_transposed_source_is_copied_in_its_own_row_major_order() {
    let base = Tensor::random(F32, [5, 4, 3, 2], 2, 1.0);
    for src in [base.permute([0, 2, 1, 3]), base.permute([1, 0, 3, 2]), base.permute([3, 2, 1, 0])]
    {
        for to in [F32, F16] {
            let mut dst = Tensor::poisoned(to, src.layout.ne());
            copy_into(&src, &mut dst);
            assert_eq!(dst.values(), reference(&src, to));
        }
    }
}

#[test]
fn a_permuted_destination_receives_elements_in_its_row_major_order() {
    let src = Tensor::random(F32, [6, 4, 3, 1], 3, 1.0);
    let mut dst = Tensor::poisoned(F16, [4, 6, 3, 1]).transpose();
    copy_into(&src, &mut dst);
    assert_eq!(dst.values(), reference(&src, F16));
}

#[test]
fn shapes_may_differ_when_element_counts_agree() {
    let src = Tensor::random(F32, [6, 4, 1, 1], 4, 1.0);
    for ne in [[24, 1, 1, 1], [4, 6, 1, 1], [2, 3, 2, 2]] {
        let mut dst = Tensor::poisoned(F32, ne);
        copy_into(&src, &mut dst);
        assert_eq!(dst.values(), src.values(), "{ne:?}");
    }
    // Also from a transposed source into another shape.
    let mut dst = Tensor::poisoned(F32, [3, 8, 1, 1]);
    copy_into(&src.transpose(), &mut dst);
    assert_eq!(dst.values(), src.transpose().values());
}

#[test]
fn a_strided_destination_view_keeps_the_bytes_between_its_rows() {
    // test-backend-ops' dst_alloc: a view of a larger buffer.
    let src = Tensor::random(F32, [3, 4, 1, 1], 5, 1.0);
    let base = Tensor::poisoned(F16, [5, 4, 1, 1]);
    let nb = base.layout.nb();
    let mut dst = base.view_4d([3, 4, 1, 1], [nb[1], nb[2], nb[3]], 0);
    copy_into(&src, &mut dst);
    assert_eq!(dst.values(), reference(&src, F16));
    let padding = &dst.bytes()[6..10];
    assert!(padding.iter().all(|&b| b == 0xAB), "bytes between rows changed");
}

#[test]
fn same_type_copies_keep_every_bit_even_nan_payloads() {
    // A 2 × 2 f16 of a NaN with payload, -inf, a subnormal and -0, read
    // transposed (so unit by unit).
    let layout = Layout::contiguous(F16, [2, 2, 1, 1]).unwrap();
    let mut src = Tensor::zeroed(layout, 8);
    let bits: [u16; 4] = [0x7e01, 0xfc00, 0x0001, 0x8000];
    let raw: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    src.bytes_mut().copy_from_slice(&raw);
    let mut dst = Tensor::poisoned(F16, [2, 2, 1, 1]);
    copy_into(&src.transpose(), &mut dst);
    let expected: Vec<u8> =
        [bits[0], bits[2], bits[1], bits[3]].iter().flat_map(|b| b.to_le_bytes()).collect();
    assert_eq!(dst.bytes(), expected);
}

#[test]
fn dup_and_cont_copy_like_cpy() {
    let src = Tensor::random(BF16, [4, 3, 2, 1], 6, 1.0).permute([1, 2, 0, 3]);
    let mut duplicate = Tensor::poisoned(BF16, src.layout.ne());
    dup(src.view(), &mut duplicate.view_mut()).unwrap();
    assert_eq!(duplicate.values(), src.values());
    let mut reshaped = Tensor::poisoned(BF16, [24, 1, 1, 1]);
    cont(src.view(), &mut reshaped.view_mut()).unwrap();
    assert_eq!(reshaped.values(), src.values());
}

#[test]
fn works_on_misaligned_bytes() {
    let src = Tensor::random(F16, [5, 3, 1, 1], 7, 1.0).transpose().misaligned();
    let mut dst = Tensor::poisoned(F32, [3, 5, 1, 1]).misaligned();
    copy_into(&src, &mut dst);
    assert_eq!(dst.values(), src.values());
}

#[test]
fn rejects_different_element_counts() {
    let src = Tensor::random(F32, [4, 3, 1, 1], 8, 1.0);
    let dst = Tensor::poisoned(F32, [4, 2, 1, 1]);
    let err = check_cpy(&src.layout, &dst.layout).unwrap_err();
    assert_eq!(err.to_string(), "CPY: dst element count 8 differs from src0's");
}

#[test]
fn rejects_conversions_ggml_does_not_make() {
    let src = Tensor::random(F16, [4, 1, 1, 1], 9, 1.0);
    let dst = Tensor::poisoned(I32, [4, 1, 1, 1]);
    let err = check_cpy(&src.layout, &dst.layout).unwrap_err();
    assert!(matches!(err, OpError::UnsupportedType { operand: "dst", .. }), "{err}");
}

#[test]
fn dup_needs_the_same_shape_and_cont_a_contiguous_dst_of_the_same_type() {
    let src = Tensor::random(F32, [4, 3, 1, 1], 10, 1.0);
    let reshaped = Tensor::poisoned(F32, [12, 1, 1, 1]);
    assert!(matches!(check_dup(&src.layout, &reshaped.layout), Err(OpError::ShapeMismatch { .. })));
    let transposed = Tensor::poisoned(F32, [3, 4, 1, 1]).transpose();
    assert!(matches!(
        check_cont(&src.layout, &transposed.layout),
        Err(OpError::StrideRule { operand: "dst", .. })
    ));
    let other_type = Tensor::poisoned(F16, [4, 3, 1, 1]);
    assert!(matches!(
        check_cont(&src.layout, &other_type.layout),
        Err(OpError::TypeMismatch { .. })
    ));
}
