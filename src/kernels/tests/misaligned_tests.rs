//! Tensors whose bytes start at offset 1 of their buffer (as wire data can)
//! give exactly the same results as aligned ones, for inputs and outputs.

use half::f16;

use super::{Rng, Tensor};
use crate::kernels::{
    BinaryOp, DType, GemmBackend, KernelError, MatmulOptions, ReduceOp, ReduceOptions, TensorView,
    TensorViewMut, UnaryOp, binary, cast, fill, matmul_with_backend, reduce, softmax, transpose,
    unary,
};

/// Runs `op` once on aligned tensors and once on misaligned copies of the
/// same inputs and output, and checks that the output bytes agree.
fn assert_alignment_does_not_matter(
    inputs: &[Tensor],
    out: Tensor,
    op: impl Fn(&[TensorView<'_>], &mut TensorViewMut<'_>) -> Result<(), KernelError>,
) {
    let mut aligned_out = out.clone();
    let views: Vec<_> = inputs.iter().map(Tensor::view).collect();
    op(&views, &mut aligned_out.view_mut()).unwrap();

    let misaligned_inputs: Vec<Tensor> = inputs.iter().map(Tensor::misaligned).collect();
    let mut misaligned_out = out.misaligned();
    let views: Vec<_> = misaligned_inputs.iter().map(Tensor::view).collect();
    op(&views, &mut misaligned_out.view_mut()).unwrap();

    assert_eq!(aligned_out.bytes(), misaligned_out.bytes());
    assert!(aligned_out.bytes().iter().any(|&byte| byte != 0xAB), "op wrote nothing");
}

fn f32_tensor(rng: &mut Rng, shape: &[i64]) -> Tensor {
    Tensor::from_vec(shape, rng.f32s(shape.iter().product::<i64>() as usize))
}

#[test]
fn misaligned_view_reads_the_same_bytes() {
    let x = Tensor::from_vec(&[3], vec![1.0f64, 2.0, 3.0]);
    let moved = x.misaligned();
    assert_ne!(moved.view().data().as_ptr() as usize % 8, 0);
    assert_eq!(moved.view().data(), x.view().data());
}

#[test]
fn matmul_is_unaffected_by_misalignment() {
    let mut rng = Rng::new(51);
    let a = f32_tensor(&mut rng, &[2, 9, 7]);
    let b = f32_tensor(&mut rng, &[7, 5]);
    for &backend in GemmBackend::available() {
        let out = Tensor::filled_with_byte(DType::Float32, &[2, 9, 5], 0xAB);
        assert_alignment_does_not_matter(&[a.clone(), b.clone()], out, |v, out| {
            matmul_with_backend(v[0], v[1], out, MatmulOptions::default(), backend)
        });
    }
}

#[test]
fn binary_ops_are_unaffected_by_misalignment() {
    let mut rng = Rng::new(52);
    let a = Tensor::from_vec(&[4, 3], rng.f64s(12));
    let b = Tensor::from_vec(&[3], rng.f64s(3));
    let out = Tensor::filled_with_byte(DType::Float64, &[4, 3], 0xAB);
    assert_alignment_does_not_matter(&[a, b], out, |v, out| binary(BinaryOp::Div, v[0], v[1], out));

    let a = Tensor::from_vec(&[5], vec![1i32, -2, 3, -4, 5]);
    let out = Tensor::filled_with_byte(DType::Int32, &[5], 0xAB);
    assert_alignment_does_not_matter(&[a.clone(), a], out, |v, out| {
        binary(BinaryOp::Mul, v[0], v[1], out)
    });
}

#[test]
fn unary_ops_are_unaffected_by_misalignment() {
    let mut rng = Rng::new(53);
    let x = Tensor::from_vec(&[6], (0..6).map(|_| f16::from_f64(rng.unit())).collect());
    for op in [UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Exp, UnaryOp::Neg] {
        let out = Tensor::filled_with_byte(DType::Float16, &[6], 0xAB);
        assert_alignment_does_not_matter(std::slice::from_ref(&x), out, |v, out| {
            unary(op, v[0], out)
        });
    }
}

#[test]
fn softmax_is_unaffected_by_misalignment() {
    let mut rng = Rng::new(54);
    let x = f32_tensor(&mut rng, &[3, 4]);
    let out = Tensor::filled_with_byte(DType::Float32, &[3, 4], 0xAB);
    assert_alignment_does_not_matter(&[x], out, |v, out| softmax(v[0], out));
}

#[test]
fn reductions_are_unaffected_by_misalignment() {
    let x = Tensor::from_vec(&[3, 4], (0..12).map(|v| v * 7 - 30).collect::<Vec<i64>>());
    for op in [ReduceOp::Sum, ReduceOp::Max] {
        let out = Tensor::filled_with_byte(DType::Int64, &[4], 0xAB);
        let options = ReduceOptions { axis: 0, keepdims: false };
        assert_alignment_does_not_matter(std::slice::from_ref(&x), out, |v, out| {
            reduce(op, v[0], options, out)
        });
    }
}

#[test]
fn cast_is_unaffected_by_misalignment() {
    let x = Tensor::from_vec(&[4], vec![1.5f64, -2.5, 1e10, -7.0]);
    let out = Tensor::filled_with_byte(DType::Int32, &[4], 0xAB);
    assert_alignment_does_not_matter(&[x], out, |v, out| cast(v[0], out));
}

#[test]
fn transpose_is_unaffected_by_misalignment() {
    let x = Tensor::from_vec(&[3, 5], (0..15).collect::<Vec<i64>>());
    let out = Tensor::filled_with_byte(DType::Int64, &[5, 3], 0xAB);
    assert_alignment_does_not_matter(&[x], out, |v, out| transpose(v[0], 0, 1, out));
}

#[test]
fn fill_is_unaffected_by_misalignment() {
    let out = Tensor::filled_with_byte(DType::Float64, &[3], 0xAB);
    assert_alignment_does_not_matter(&[], out, |_, out| fill(out, 2.5));
}
