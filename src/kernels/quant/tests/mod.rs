//! Specifications of the quantized block formats. Shared here: the seeded
//! inputs (generated exactly as the C harness that made `testdata/`
//! generated them), FNV-1a hashes, and the golden values' parser.

mod extreme_tests;
mod format_tests;
mod golden_tests;
mod implementation_tests;
mod known_vector_tests;
mod round_trip_tests;
mod vec_dot_tests;

use crate::kernels::quant::{BlockFormat, dequantize_row, quantize_row};

/// Elements of each seeded input (four super-blocks).
pub(super) const N: usize = 1024;

/// SplitMix64, the generator the golden harness used.
pub(super) struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits (exact in f32).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [-1, 1).
    pub fn signed_unit(&mut self) -> f32 {
        2.0 * self.unit() - 1.0
    }

    /// `count` bytes, eight per draw, little-endian.
    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(count + 8);
        while bytes.len() < count {
            bytes.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        bytes.truncate(count);
        bytes
    }
}

/// The golden harness's main input: four super-blocks of different
/// character (weight-like with outliers; zeros, one-signed and sparse
/// groups; grids with rounding ties; magnitudes from 3e6 down to 1e-20).
pub(super) fn main_input() -> Vec<f32> {
    let mut rng = SplitMix::new(1);
    let mut x = Vec::with_capacity(N);
    for i in 0..256 {
        let g = rng.unit() + rng.unit() + rng.unit() + rng.unit() - 2.0;
        let v = 0.02 * g;
        x.push(if i % 37 == 5 { v * 40.0 } else { v });
    }
    for i in 0..256 {
        let u = rng.unit();
        x.push(match i {
            0..64 => 0.0,
            64..128 => 0.5 + u,
            128..192 => -(0.5 + u),
            _ if i % 4 == 0 => 2.0 * u - 1.0,
            _ => 0.0,
        });
    }
    for i in 0..256i32 {
        x.push(if i < 128 { (i % 32 - 16) as f32 * 0.25 } else { (i % 16 - 8) as f32 * 0.125 });
    }
    for i in 0..256 {
        let s = rng.signed_unit();
        x.push(match i {
            0..64 => s * 3.0e6,
            64..128 => s * 1.0e-6,
            128..192 => s * 1.0e-20,
            _ => s,
        });
    }
    x
}

/// The harness's second operand of dot products: uniform in [-1, 1).
pub(super) fn y_input() -> Vec<f32> {
    let mut rng = SplitMix::new(2);
    (0..N).map(|_| rng.signed_unit()).collect()
}

/// The harness's first operand of dot products: uniform with every 64th
/// element ten times larger.
pub(super) fn dot_x_input() -> Vec<f32> {
    let mut rng = SplitMix::new(4);
    (0..N).map(|i| rng.signed_unit() * if i % 64 == 7 { 10.0 } else { 1.0 }).collect()
}

/// The harness's extreme input (two super-blocks): NaN, infinities,
/// -0.0, ±FLT_MAX, subnormals, an all-NaN block, then values around 1e-39
/// (whose reciprocal scales overflow).
pub(super) fn extreme_input() -> Vec<f32> {
    let mut rng = SplitMix::new(3);
    let mut x: Vec<f32> = (0..512).map(|_| rng.signed_unit()).collect();
    x[3] = f32::NAN;
    x[40] = f32::INFINITY;
    x[77] = f32::NEG_INFINITY;
    x[100] = -0.0;
    x[130] = f32::MAX;
    x[131] = -f32::MAX;
    x[200] = 1e-40;
    x[201] = -1e-40;
    x[224..256].fill(f32::NAN);
    for v in &mut x[256..] {
        *v *= 1e-39;
    }
    x
}

/// Where a format's scales are: offsets of its fp16 scale fields in a
/// block, or of Q8_K's one f32 scale.
pub(super) enum ScaleFields {
    F16(&'static [usize]),
    F32AtZero,
}

pub(super) fn scale_fields(format: BlockFormat) -> ScaleFields {
    use BlockFormat::*;
    match format {
        Q4_0 | Q5_0 | Q8_0 | Iq4Nl | Iq4Xs => ScaleFields::F16(&[0]),
        Q4_1 | Q5_1 | Q8_1 | Q4K | Q5K => ScaleFields::F16(&[0, 2]),
        Q2K => ScaleFields::F16(&[80, 82]),
        Q3K => ScaleFields::F16(&[108]),
        Q6K => ScaleFields::F16(&[208]),
        Q8K => ScaleFields::F32AtZero,
    }
}

/// Random blocks whose scales are masked to finite values below 1/2 in
/// magnitude (so dot products of them are finite), as the harness made
/// them.
pub(super) fn random_blocks_with_tame_scales(format: BlockFormat, seed: u64) -> Vec<u8> {
    let mut bytes = SplitMix::new(seed).bytes(format.row_bytes(N).unwrap());
    for block in bytes.chunks_exact_mut(format.block_bytes()) {
        match scale_fields(format) {
            ScaleFields::F16(offsets) => {
                for &at in offsets {
                    let v = u16::from_le_bytes([block[at], block[at + 1]]) & 0xB7FF;
                    block[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            ScaleFields::F32AtZero => {
                let v = u32::from_le_bytes([block[0], block[1], block[2], block[3]]) & 0xBDFF_FFFF;
                block[..4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    bytes
}

pub(super) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// FNV-1a of the floats' little-endian bits, every NaN counted as the same
/// NaN (payloads are not compared: which NaN an addition of two NaNs keeps
/// is up to the compiler).
pub(super) fn fnv1a_floats(values: &[f32]) -> u64 {
    fnv1a(values.iter().flat_map(|v| {
        let bits = if v.is_nan() { 0x7fc0_0000 } else { v.to_bits() };
        bits.to_le_bytes()
    }))
}

pub(super) fn quantize(format: BlockFormat, x: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0xA5; format.row_bytes(x.len()).unwrap()];
    quantize_row(format, x, &mut bytes).unwrap();
    bytes
}

pub(super) fn dequantize(format: BlockFormat, bytes: &[u8]) -> Vec<f32> {
    let elements = bytes.len() / format.block_bytes() * format.block_elems();
    let mut x = vec![f32::NAN; elements];
    dequantize_row(format, bytes, &mut x).unwrap();
    x
}

/// The formats with a dot product of their own.
pub(super) fn formats_with_dot() -> impl Iterator<Item = (BlockFormat, BlockFormat)> {
    BlockFormat::ALL.into_iter().filter_map(|f| f.vec_dot_format().map(|y| (f, y)))
}

/// Q8_K's dot products trust its stored sums of 16 quants; make random
/// blocks' sums true.
pub(super) fn fix_q8_k_sums(y: &mut [u8]) {
    for block in y.chunks_exact_mut(BlockFormat::Q8K.block_bytes()) {
        let sums: Vec<i16> = block[4..260]
            .chunks_exact(16)
            .map(|g| g.iter().map(|&q| q as i8 as i16).sum())
            .collect();
        for (at, sum) in sums.iter().enumerate() {
            block[260 + 2 * at..262 + 2 * at].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

/// Q8_1's dot products trust its stored `s = fp16(d·Σq)`; make random
/// blocks' `s` true.
pub(super) fn fix_q8_1_sums(y: &mut [u8]) {
    for block in y.chunks_exact_mut(BlockFormat::Q8_1.block_bytes()) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let sum: i32 = block[4..].iter().map(|&q| q as i8 as i32).sum();
        block[2..4].copy_from_slice(&half::f16::from_f32(sum as f32 * d).to_le_bytes());
    }
}
