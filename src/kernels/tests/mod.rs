//! Specifications of every op, checked against naive references
//! (`reference`), plus differential tests of the GEMM backends and
//! misaligned-data tests. Shared helpers live here.

mod cast_tests;
mod elementwise_tests;
mod fill_tests;
mod gemm_differential_tests;
mod matmul_tests;
mod misaligned_tests;
mod reduce_tests;
mod reference;
mod robustness_tests;
mod softmax_tests;
mod transpose_tests;
mod unary_tests;

use bytemuck::Pod;
use half::f16;

use crate::kernels::{DType, TensorView, TensorViewMut};

/// A Rust element type with its dtype, for building test tensors.
pub(crate) trait TestElement: Pod + PartialEq + std::fmt::Debug {
    const DTYPE: DType;
}

macro_rules! test_element {
    ($($ty:ty => $dtype:ident),* $(,)?) => {$(
        impl TestElement for $ty {
            const DTYPE: DType = DType::$dtype;
        }
    )*};
}

test_element!(
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
    u8 => UInt8, u16 => UInt16, u32 => UInt32, u64 => UInt64,
    f32 => Float32, f64 => Float64,
);

impl TestElement for f16 {
    const DTYPE: DType = DType::Float16;
}

/// An owned tensor whose bytes can be viewed aligned or at byte offset 1
/// of their buffer (misaligned for every element wider than a byte).
#[derive(Debug, Clone)]
pub(crate) struct Tensor {
    pub dtype: DType,
    pub shape: Vec<i64>,
    /// 8-byte aligned backing store; the tensor's bytes start at `offset`.
    backing: Vec<u64>,
    offset: usize,
    len: usize,
}

impl Tensor {
    pub fn from_vec<T: TestElement>(shape: &[i64], values: Vec<T>) -> Tensor {
        Tensor::from_bytes(T::DTYPE, shape, bytemuck::cast_slice(&values), 0)
    }

    pub fn scalar<T: TestElement>(value: T) -> Tensor {
        Tensor::from_vec(&[], vec![value])
    }

    /// Zero-filled tensor of any dtype (also bool).
    pub fn zeros(dtype: DType, shape: &[i64]) -> Tensor {
        let elements: usize = shape.iter().map(|&d| d as usize).product();
        Tensor::from_bytes(dtype, shape, &vec![0u8; elements * dtype.size_bytes()], 0)
    }

    /// Filled with `value` bytes repeated, to show what a kernel left
    /// untouched.
    pub fn filled_with_byte(dtype: DType, shape: &[i64], value: u8) -> Tensor {
        let elements: usize = shape.iter().map(|&d| d as usize).product();
        let bytes = vec![value; elements * dtype.size_bytes()];
        Tensor::from_bytes(dtype, shape, &bytes, 0)
    }

    fn from_bytes(dtype: DType, shape: &[i64], bytes: &[u8], offset: usize) -> Tensor {
        let mut backing = vec![0u64; (bytes.len() + offset).div_ceil(8) + 1];
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut backing);
        raw[offset..offset + bytes.len()].copy_from_slice(bytes);
        Tensor { dtype, shape: shape.to_vec(), backing, offset, len: bytes.len() }
    }

    /// The same tensor stored one byte into its buffer.
    pub fn misaligned(&self) -> Tensor {
        Tensor::from_bytes(self.dtype, &self.shape, self.bytes(), 1)
    }

    pub fn bytes(&self) -> &[u8] {
        let raw: &[u8] = bytemuck::cast_slice(&self.backing);
        &raw[self.offset..self.offset + self.len]
    }

    pub fn view(&self) -> TensorView<'_> {
        TensorView::new(self.dtype, &self.shape, self.bytes()).expect("valid test tensor")
    }

    pub fn view_mut(&mut self) -> TensorViewMut<'_> {
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut self.backing);
        let bytes = &mut raw[self.offset..self.offset + self.len];
        TensorViewMut::new(self.dtype, &self.shape, bytes).expect("valid test tensor")
    }

    pub fn to_vec<T: TestElement>(&self) -> Vec<T> {
        assert_eq!(self.dtype, T::DTYPE, "reading tensor as the wrong type");
        bytemuck::pod_collect_to_vec(self.bytes())
    }

    pub fn to_f64s(&self) -> Vec<f64> {
        match self.dtype {
            DType::Float16 => self.to_vec::<f16>().iter().map(|v| v.to_f64()).collect(),
            DType::Float32 => self.to_vec::<f32>().iter().map(|&v| v.into()).collect(),
            DType::Float64 => self.to_vec::<f64>(),
            DType::Int32 => self.to_vec::<i32>().iter().map(|&v| v.into()).collect(),
            DType::Int64 => self.to_vec::<i64>().iter().map(|&v| v as f64).collect(),
            other => panic!("to_f64s does not handle {other}"),
        }
    }
}

/// Small deterministic generator (SplitMix64) so random tests are
/// reproducible without another dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn f32s(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.unit() as f32).collect()
    }

    pub fn f64s(&mut self, count: usize) -> Vec<f64> {
        (0..count).map(|_| self.unit()).collect()
    }

    /// Integers in `-range..range`.
    pub fn i64s(&mut self, count: usize, range: i64) -> Vec<i64> {
        (0..count).map(|_| self.below(2 * range as usize) as i64 - range).collect()
    }
}

/// Asserts `actual` ≈ `expected` elementwise: `|a - e| <= atol + rtol·|e|`,
/// NaN matching NaN and infinities matching exactly.
#[track_caller]
pub(crate) fn assert_close(actual: &[f64], expected: &[f64], rtol: f64, atol: f64) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        };
        assert!(ok, "element {index}: got {a}, expected {e}");
    }
}

/// Number of elements of `shape`.
pub(crate) fn element_count(shape: &[i64]) -> usize {
    shape.iter().map(|&d| d as usize).product()
}
