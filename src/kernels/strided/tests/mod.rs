//! Specifications of the strided ops: each op against a plain reference
//! written from ggml's semantics (or hand-computed values), on contiguous,
//! permuted, strided and misaligned views, with broadcasting, f16/bf16
//! data, and every refusal.
//!
//! `Tensor` here plays ggml's part in building test graphs: a contiguous
//! tensor (`ggml_new_tensor`), a permutation of it (`ggml_permute`) or a
//! view into it (`ggml_view_4d`), all over one byte buffer.

mod add_id_tests;
mod argmax_tests;
mod binary_tests;
mod block_copy_tests;
mod clamp_fill_tests;
mod concat_tests;
mod copy_tests;
mod flash_attn_tests;
mod get_rows_tests;
mod glu_tests;
mod leaky_relu_tests;
mod mul_mat_id_tests;
mod mul_mat_tests;
mod norm_tests;
mod reduce_tests;
mod repeat_pad_acc_tests;
mod robustness_tests;
mod rope_tests;
mod scale_tests;
mod set_rows_tests;
mod soft_max_tests;
mod sort_tests;
mod timing_tests;
mod unary_tests;

use crate::kernels::strided::convert::{element_from_f32, element_to_f32};
use crate::kernels::strided::{ElementType, Layout, View, ViewMut};

pub(crate) const F32: ElementType = ElementType::F32;
pub(crate) const F16: ElementType = ElementType::F16;
pub(crate) const BF16: ElementType = ElementType::BF16;
pub(crate) const I32: ElementType = ElementType::I32;
pub(crate) const I64: ElementType = ElementType::I64;

/// The block format `format` as an element type.
pub(crate) const fn q(format: crate::kernels::quant::BlockFormat) -> ElementType {
    ElementType::Quant(format)
}

/// The block formats ggml's CPU multiplies as weights (all with a dot
/// product).
pub(crate) const WEIGHT_FORMATS: [crate::kernels::quant::BlockFormat; 12] = {
    use crate::kernels::quant::BlockFormat::*;
    [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, Iq4Nl, Iq4Xs]
};

/// A test tensor: a layout over an owned byte buffer that starts `shift`
/// bytes into 8-byte aligned storage.
#[derive(Debug, Clone)]
pub(crate) struct Tensor {
    pub layout: Layout,
    backing: Vec<u64>,
    shift: usize,
    /// Where the layout's first element sits in the bytes.
    offset: usize,
    len: usize,
}

impl Tensor {
    /// A contiguous tensor of `ne` whose elements (row-major) are `values`
    /// rounded to `elem`.
    pub fn new(elem: ElementType, ne: [usize; 4], values: &[f32]) -> Tensor {
        let layout = Layout::contiguous(elem, ne).unwrap();
        assert_eq!(values.len(), layout.elements(), "value count");
        let mut tensor = Tensor::zeroed(layout, layout.byte_extent());
        if elem.is_block_format() {
            // Blocks have no single elements: quantize whole rows.
            let mut view = tensor.view_mut();
            for (row, chunk) in values.chunks_exact(ne[0].max(1)).enumerate() {
                let [_, i1, i2, i3] = unravel(row * ne[0], ne);
                view.write_row_f32(i1, i2, i3, chunk).unwrap();
            }
            return tensor;
        }
        for (flat, &value) in values.iter().enumerate() {
            tensor.set(unravel(flat, ne), value);
        }
        tensor
    }

    /// A contiguous f32 tensor of this one's values (block formats
    /// dequantized, row by row).
    pub fn to_f32(&self) -> Tensor {
        let ne = self.layout.ne();
        let view = self.view();
        let mut values = vec![0.0f32; self.layout.elements()];
        for (row, chunk) in values.chunks_exact_mut(ne[0].max(1)).enumerate() {
            let [_, i1, i2, i3] = unravel(row * ne[0], ne);
            view.read_row_f32(i1, i2, i3, chunk).unwrap();
        }
        Tensor::new(F32, ne, &values)
    }

    /// A contiguous tensor of `ne` filled from `f(index)`.
    pub fn from_fn(
        elem: ElementType,
        ne: [usize; 4],
        mut f: impl FnMut([usize; 4]) -> f32,
    ) -> Tensor {
        let count = ne.iter().product();
        let values: Vec<f32> = (0..count).map(|flat| f(unravel(flat, ne))).collect();
        Tensor::new(elem, ne, &values)
    }

    /// Random values in `[-scale, scale)`.
    pub fn random(elem: ElementType, ne: [usize; 4], seed: u64, scale: f32) -> Tensor {
        let mut rng = Rng::new(seed);
        let count = ne.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.unit() * scale).collect();
        Tensor::new(elem, ne, &values)
    }

    /// Integer ids (i32 or i64) of `ne`.
    pub fn ids(elem: ElementType, ne: [usize; 4], ids: &[i64]) -> Tensor {
        let layout = Layout::contiguous(elem, ne).unwrap();
        let mut tensor = Tensor::zeroed(layout, layout.byte_extent());
        let bytes: Vec<u8> = match elem {
            ElementType::I32 => ids.iter().flat_map(|&id| (id as i32).to_le_bytes()).collect(),
            ElementType::I64 => ids.iter().flat_map(|&id| id.to_le_bytes()).collect(),
            other => panic!("ids of {other}"),
        };
        tensor.bytes_mut().copy_from_slice(&bytes);
        tensor
    }

    /// An all-zero buffer of `len` bytes under `layout`.
    pub fn zeroed(layout: Layout, len: usize) -> Tensor {
        Tensor { layout, backing: vec![0; len.div_ceil(8) + 2], shift: 0, offset: 0, len }
    }

    /// A destination of `ne` (contiguous) whose bytes are all 0xAB, to show
    /// what an op left untouched.
    pub fn poisoned(elem: ElementType, ne: [usize; 4]) -> Tensor {
        let layout = Layout::contiguous(elem, ne).unwrap();
        let mut tensor = Tensor::zeroed(layout, layout.byte_extent());
        tensor.bytes_mut().fill(0xAB);
        tensor
    }

    /// `ggml_permute(t, axes)`: dimension `i` becomes dimension `axes[i]`.
    pub fn permute(&self, axes: [usize; 4]) -> Tensor {
        let (mut ne, mut nb) = ([0; 4], [0; 4]);
        for (dim, &axis) in axes.iter().enumerate() {
            ne[axis] = self.layout.ne()[dim];
            nb[axis] = self.layout.nb()[dim];
        }
        Tensor { layout: Layout::new(self.layout.elem(), ne, nb).unwrap(), ..self.clone() }
    }

    /// `ggml_transpose`: dimensions 0 and 1 swapped.
    pub fn transpose(&self) -> Tensor {
        self.permute([1, 0, 2, 3])
    }

    /// `ggml_view_4d(t, ne, nb1, nb2, nb3, offset)`.
    pub fn view_4d(&self, ne: [usize; 4], nb: [usize; 3], offset: usize) -> Tensor {
        let nb = [self.layout.nb()[0], nb[0], nb[1], nb[2]];
        let layout = Layout::new(self.layout.elem(), ne, nb).unwrap();
        assert!(self.offset + offset + layout.byte_extent() <= self.len, "view outside tensor");
        Tensor { layout, offset: self.offset + offset, ..self.clone() }
    }

    /// A view of the same `ne` keeping this tensor's strides (`ggml_view_4d`
    /// of a larger tensor at offset 0).
    pub fn sub_view(&self, ne: [usize; 4]) -> Tensor {
        let nb = self.layout.nb();
        self.view_4d(ne, [nb[1], nb[2], nb[3]], 0)
    }

    /// The same tensor one byte further into its storage: misaligned for
    /// every element wider than a byte.
    pub fn misaligned(&self) -> Tensor {
        let mut moved = Tensor { shift: self.shift + 1, ..self.clone() };
        moved.backing = vec![0; self.backing.len() + 1];
        let bytes = self.bytes().to_vec();
        moved.bytes_mut().copy_from_slice(&bytes);
        moved
    }

    fn raw(&self) -> &[u8] {
        let raw: &[u8] = bytemuck::cast_slice(&self.backing);
        &raw[self.shift..self.shift + self.len]
    }

    /// All bytes of the underlying buffer.
    pub fn bytes(&self) -> &[u8] {
        self.raw()
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut self.backing);
        &mut raw[self.shift..self.shift + self.len]
    }

    pub fn view(&self) -> View<'_> {
        View::new(self.layout, &self.raw()[self.offset..]).unwrap()
    }

    pub fn view_mut(&mut self) -> ViewMut<'_> {
        let (layout, offset) = (self.layout, self.offset);
        ViewMut::new(layout, &mut self.bytes_mut()[offset..]).unwrap()
    }

    fn element_range(&self, index: [usize; 4]) -> std::ops::Range<usize> {
        let nb = self.layout.nb();
        let start = self.offset + (0..4).map(|dim| index[dim] * nb[dim]).sum::<usize>();
        start..start + self.layout.elem().block_bytes()
    }

    /// Element `index` as f32.
    pub fn get(&self, index: [usize; 4]) -> f32 {
        element_to_f32(self.layout.elem(), &self.raw()[self.element_range(index)])
    }

    pub fn set(&mut self, index: [usize; 4], value: f32) {
        let (elem, range) = (self.layout.elem(), self.element_range(index));
        element_from_f32(elem, value, &mut self.bytes_mut()[range]);
    }

    /// Every element in row-major order (block formats dequantized).
    pub fn values(&self) -> Vec<f32> {
        if self.layout.elem().is_block_format() {
            return self.to_f32().values();
        }
        let ne = self.layout.ne();
        (0..self.layout.elements()).map(|flat| self.get(unravel(flat, ne))).collect()
    }
}

/// The index of element `flat` of `ne` in row-major order (dimension 0
/// fastest).
pub(crate) fn unravel(mut flat: usize, ne: [usize; 4]) -> [usize; 4] {
    let mut index = [0; 4];
    for dim in 0..4 {
        index[dim] = flat % ne[dim];
        flat /= ne[dim];
    }
    index
}

/// Small deterministic generator (SplitMix64).
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
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// test-backend-ops' error metric: `Σ(a - b)² / Σ b²`.
pub(crate) fn nmse(actual: &[f32], expected: &[f32]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    let (mut error, mut norm) = (0.0f64, 0.0f64);
    for (&a, &e) in actual.iter().zip(expected) {
        error += (f64::from(a) - f64::from(e)).powi(2);
        norm += f64::from(e).powi(2);
    }
    error / norm
}

/// Asserts NMSE below `max` (the per-op threshold of test-backend-ops).
#[track_caller]
pub(crate) fn assert_nmse(actual: &[f32], expected: &[f32], max: f64) {
    for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(a.is_nan() == e.is_nan(), "element {index}: got {a}, expected {e}");
    }
    let error = nmse(actual, expected);
    assert!(error <= max, "NMSE {error:e} > {max:e}");
}

/// Asserts elementwise `|a - e| <= tolerance · max(1, |e|)` (NaN = NaN).
#[track_caller]
pub(crate) fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= tolerance * e.abs().max(1.0)
        };
        assert!(ok, "element {index}: got {a}, expected {e}");
    }
}

/// Rounds `value` through `elem` (what storing it there keeps).
pub(crate) fn round_to(elem: ElementType, value: f32) -> f32 {
    let mut bytes = [0u8; 8];
    element_from_f32(elem, value, &mut bytes);
    element_to_f32(elem, &bytes)
}

/// Op params with the given f32s from index `start`.
pub(crate) fn float_params(start: usize, values: &[f32]) -> [i32; 16] {
    let mut params = [0i32; 16];
    for (slot, value) in params[start..].iter_mut().zip(values) {
        *slot = value.to_bits() as i32;
    }
    params
}
