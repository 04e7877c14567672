//! x86-64 SIMD kernels, selected at run time.
//!
//! Each instruction-set level is a zero-sized token ([`Avx2`], [`Avx512`])
//! that only [`Avx2::detect`] / [`Avx512::detect`] can make, after
//! checking the CPU. The kernels are `#[target_feature]` functions (safe to
//! call only where their features are enabled); a token's methods are the
//! one place that calls them, justified by the token's existence. Inside
//! the kernels everything is safe code except the loads and stores of
//! `memory`.
//!
//! Tiles (many weight rows × several activation rows) run through one
//! walk ([`vec_dot_tile`]) over each level's kernels for 4, 2 and 1
//! activation rows ([`TileKernels`]).
//!
//! The methods expect the lengths the caller (`Implementation`) checked:
//! whole blocks, the same count on both sides. Were they not, the kernels
//! would read only the blocks both sides have, never out of bounds.
//!
//! Loops over the fixed-size arrays of vectors are index loops on purpose:
//! they unroll into registers, where iterator chains over arrays of
//! vectors measured much slower (spilled to the stack).
#![allow(clippy::needless_range_loop)]

mod avx2_convert;
mod avx2_dot_k;
mod avx2_dot_legacy;
mod avx2_ops;
mod avx512_dot_k;
mod avx512_dot_legacy;
mod memory;

use std::sync::OnceLock;

use bytemuck::Pod;

use crate::kernels::quant::BlockFormat;
use crate::kernels::quant::blocks::{blocks_of, blocks_of_mut};

/// Runs `row` on each weight row of `xs` (bytes of whole blocks, as
/// checked by the caller) into the matching entry of `out`: one call of a
/// kernel computes a whole tile, its constants set up once.
#[inline(always)]
fn for_each_row<X: Pod, const C: usize>(
    xs: &[&[u8]],
    out: &mut [[f32; C]],
    row: impl Fn(&[X]) -> [f32; C],
) {
    for (x, out) in xs.iter().zip(out) {
        *out = row(blocks_of(x));
    }
}

/// The CPU features the kernels use, detected once.
#[derive(Clone, Copy)]
struct Features {
    avx2: bool,
    avx512: bool,
}

fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        Features { avx2, avx512 }
    })
}

/// Proof that this CPU has AVX2, FMA and F16C.
#[derive(Clone, Copy)]
pub(super) struct Avx2 {
    _detected: (),
}

impl Avx2 {
    pub(super) fn detect() -> Option<Avx2> {
        features().avx2.then_some(Avx2 { _detected: () })
    }

    /// `None` for the activation formats (no dot product of their own).
    pub(super) fn vec_dot(self, format: BlockFormat, x: &[u8], y: &[u8]) -> Option<f32> {
        use BlockFormat::*;
        use avx2_dot_legacy as legacy;
        // SAFETY: an `Avx2` exists only after `detect` found AVX2, FMA and
        // F16C, which are all the features these kernels enable.
        let dot = unsafe {
            match format {
                Q4_0 => legacy::dot_q4_0(blocks_of(x), blocks_of(y)),
                Q4_1 => legacy::dot_q4_1(blocks_of(x), blocks_of(y)),
                Q5_0 => legacy::dot_q5_0(blocks_of(x), blocks_of(y)),
                Q5_1 => legacy::dot_q5_1(blocks_of(x), blocks_of(y)),
                Q8_0 => legacy::dot_q8_0(blocks_of(x), blocks_of(y)),
                Iq4Nl => legacy::dot_iq4_nl(blocks_of(x), blocks_of(y)),
                Q8_1 | Q8K => return None,
                Q2K | Q3K | Q4K | Q5K | Q6K | Iq4Xs => {
                    let mut out = [[0f32; 1]];
                    return self.rows::<1>(format, &[x], [y], &mut out).then_some(out[0][0]);
                }
            }
        };
        Some(dot)
    }

    /// See [`Avx512::vec_dot_tile`].
    pub(super) fn vec_dot_tile(
        self,
        format: BlockFormat,
        xs: &[&[u8]],
        ys: &[&[u8]],
        out: &mut [f32],
        stride: usize,
    ) -> bool {
        vec_dot_tile(self, format, xs, ys, out, stride)
    }
}

impl Avx2 {
    /// Quantizes an activation row (Q8_0, Q8_1, Q8_K) and returns `true`;
    /// `false` for the weight formats, whose reference quantizers (scale
    /// searches, not on any hot path) stay scalar.
    pub(super) fn quantize_row(self, format: BlockFormat, src: &[f32], dst: &mut [u8]) -> bool {
        // SAFETY: an `Avx2` exists only after `detect` found AVX2, FMA and
        // F16C; these kernels enable AVX2 and F16C.
        unsafe {
            match format {
                BlockFormat::Q8_0 => avx2_convert::quantize_q8_0(src, blocks_of_mut(dst)),
                BlockFormat::Q8_1 => avx2_convert::quantize_q8_1(src, blocks_of_mut(dst)),
                BlockFormat::Q8K => avx2_convert::quantize_q8_k(src, blocks_of_mut(dst)),
                _ => return false,
            }
        }
        true
    }

    pub(super) fn dequantize_row(self, format: BlockFormat, src: &[u8], dst: &mut [f32]) {
        use BlockFormat::*;
        use avx2_convert as c;
        // SAFETY: as in `quantize_row`.
        unsafe {
            match format {
                Q4_0 => c::dequantize_q4_0(blocks_of(src), dst),
                Q4_1 => c::dequantize_q4_1(blocks_of(src), dst),
                Q5_0 => c::dequantize_q5_0(blocks_of(src), dst),
                Q5_1 => c::dequantize_q5_1(blocks_of(src), dst),
                Q8_0 => c::dequantize_q8_0(blocks_of(src), dst),
                Q8_1 => c::dequantize_q8_1(blocks_of(src), dst),
                Q2K => c::dequantize_q2_k(blocks_of(src), dst),
                Q3K => c::dequantize_q3_k(blocks_of(src), dst),
                Q4K => c::dequantize_q4_k(blocks_of(src), dst),
                Q5K => c::dequantize_q5_k(blocks_of(src), dst),
                Q6K => c::dequantize_q6_k(blocks_of(src), dst),
                Q8K => c::dequantize_q8_k(blocks_of(src), dst),
                Iq4Nl => c::dequantize_iq4_nl(blocks_of(src), dst),
                Iq4Xs => c::dequantize_iq4_xs(blocks_of(src), dst),
            }
        }
    }
}

impl TileKernels for Avx2 {
    fn rows<const C: usize>(
        self,
        format: BlockFormat,
        xs: &[&[u8]],
        ys: [&[u8]; C],
        out: &mut [[f32; C]],
    ) -> bool {
        use BlockFormat::*;
        use avx2_dot_k as k;
        use avx2_dot_legacy as legacy;
        macro_rules! run {
            ($module:ident :: $kernel:ident) => {
                $module::$kernel::<C>(xs, ys.map(|y| blocks_of(y)), out)
            };
        }
        // SAFETY: an `Avx2` exists only after `detect` found AVX2, FMA and
        // F16C, which are all the features these kernels enable.
        unsafe {
            match format {
                Q4_0 => run!(legacy::tile_q4_0),
                Q4_1 => run!(legacy::tile_q4_1),
                Q5_0 => run!(legacy::tile_q5_0),
                Q5_1 => run!(legacy::tile_q5_1),
                Q8_0 => run!(legacy::tile_q8_0),
                Iq4Nl => run!(legacy::tile_iq4_nl),
                Q2K => run!(k::dot_q2_k),
                Q3K => run!(k::dot_q3_k),
                Q4K => run!(k::dot_q4_k),
                Q5K => run!(k::dot_q5_k),
                Q6K => run!(k::dot_q6_k),
                Iq4Xs => run!(k::dot_iq4_xs),
                Q8_1 | Q8K => return false,
            }
        }
        true
    }
}

/// The tile kernels of an instruction-set level.
trait TileKernels: Copy {
    /// `out[ix][c] = xs[ix] · ys[c]` with `format`'s kernel for `C`
    /// columns; `false` for the activation formats.
    fn rows<const C: usize>(
        self,
        format: BlockFormat,
        xs: &[&[u8]],
        ys: [&[u8]; C],
        out: &mut [[f32; C]],
    ) -> bool;
}

/// `out[iy * stride + ix] = xs[ix] · ys[iy]` (the caller checked every
/// length and that the output holds the tile): weight rows 32 at a time
/// against activation rows four (then two, one) at a time, so that each
/// weight block is unpacked once per four activation rows. `false` for
/// the activation formats.
fn vec_dot_tile<K: TileKernels>(
    kernels: K,
    format: BlockFormat,
    xs: &[&[u8]],
    ys: &[&[u8]],
    out: &mut [f32],
    stride: usize,
) -> bool {
    for (chunk, x_chunk) in xs.chunks(TILE_ROWS).enumerate() {
        let first_column = chunk * TILE_ROWS;
        let (quads, rest) = ys.as_chunks::<4>();
        let (pairs, single) = rest.as_chunks::<2>();
        let mut first_row = 0;
        for &y4 in quads {
            let at = TileAt { first_row, first_column, stride };
            if !tile_part::<K, 4>(kernels, format, x_chunk, y4, out, at) {
                return false;
            }
            first_row += 4;
        }
        for &y2 in pairs {
            let at = TileAt { first_row, first_column, stride };
            if !tile_part::<K, 2>(kernels, format, x_chunk, y2, out, at) {
                return false;
            }
            first_row += 2;
        }
        for &y in single {
            let at = TileAt { first_row, first_column, stride };
            if !tile_part::<K, 1>(kernels, format, x_chunk, [y], out, at) {
                return false;
            }
        }
    }
    true
}

/// Up to [`TILE_ROWS`] weight rows against `C` activation rows, written
/// into the tile at `at`.
fn tile_part<K: TileKernels, const C: usize>(
    kernels: K,
    format: BlockFormat,
    xs: &[&[u8]],
    ys: [&[u8]; C],
    out: &mut [f32],
    at: TileAt,
) -> bool {
    let mut dots = [[0f32; C]; TILE_ROWS];
    let Some(dots) = dots.get_mut(..xs.len()) else { return false };
    if !kernels.rows::<C>(format, xs, ys, dots) {
        return false;
    }
    for (ix, row_dots) in dots.iter().enumerate() {
        for (c, &dot) in row_dots.iter().enumerate() {
            let index = (at.first_row + c) * at.stride + at.first_column + ix;
            if let Some(out) = out.get_mut(index) {
                *out = dot;
            }
        }
    }
    true
}

/// Weight rows per call of a tile kernel (its results wait on the stack).
const TILE_ROWS: usize = 32;

/// Where a part of a tile goes: its first activation row (output row) and
/// weight row (output column), and the output's row stride.
#[derive(Clone, Copy)]
struct TileAt {
    first_row: usize,
    first_column: usize,
    stride: usize,
}

/// Proof that this CPU has AVX-512 F, BW, DQ, VL and VNNI, and everything
/// [`Avx2`] needs.
#[derive(Clone, Copy)]
pub(super) struct Avx512 {
    _detected: (),
}

impl Avx512 {
    pub(super) fn detect() -> Option<Avx512> {
        features().avx512.then_some(Avx512 { _detected: () })
    }

    /// The AVX2 kernels, for what has no AVX-512 kernel of its own.
    pub(super) fn avx2(self) -> Avx2 {
        Avx2 { _detected: () }
    }

    /// `None` for the activation formats (no dot product of their own).
    pub(super) fn vec_dot(self, format: BlockFormat, x: &[u8], y: &[u8]) -> Option<f32> {
        // A lone short row of a 32-element format: the AVX2 kernel's
        // smaller fixed cost wins (measured: up to 512 elements; from 1024
        // on the AVX-512 one is as fast or faster).
        const SHORT_ROW_BLOCKS: usize = 16;
        if format.block_elems() == 32 && x.len() <= SHORT_ROW_BLOCKS * format.block_bytes() {
            return self.avx2().vec_dot(format, x, y);
        }
        let mut out = [[0f32; 1]];
        self.rows::<1>(format, &[x], [y], &mut out).then_some(out[0][0])
    }

    /// `out[iy * stride + ix] = xs[ix] · ys[iy]` (the caller checked every
    /// length and that the output holds the tile); `false` for the
    /// activation formats.
    pub(super) fn vec_dot_tile(
        self,
        format: BlockFormat,
        xs: &[&[u8]],
        ys: &[&[u8]],
        out: &mut [f32],
        stride: usize,
    ) -> bool {
        vec_dot_tile(self, format, xs, ys, out, stride)
    }
}

impl TileKernels for Avx512 {
    fn rows<const C: usize>(
        self,
        format: BlockFormat,
        xs: &[&[u8]],
        ys: [&[u8]; C],
        out: &mut [[f32; C]],
    ) -> bool {
        use BlockFormat::*;
        use avx512_dot_k as k;
        use avx512_dot_legacy as legacy;
        macro_rules! run {
            ($module:ident :: $kernel:ident) => {
                $module::$kernel::<C>(xs, ys.map(|y| blocks_of(y)), out)
            };
        }
        // SAFETY: an `Avx512` exists only after `detect` found AVX-512 F,
        // BW, DQ, VL, VNNI, AVX2, FMA and F16C, which are all the features
        // these kernels enable.
        unsafe {
            match format {
                Q4_0 => run!(legacy::dot_q4_0),
                Q4_1 => run!(legacy::dot_q4_1),
                Q5_0 => run!(legacy::dot_q5_0),
                Q5_1 => run!(legacy::dot_q5_1),
                Q8_0 => run!(legacy::dot_q8_0),
                Iq4Nl => run!(legacy::dot_iq4_nl),
                Q2K => run!(k::dot_q2_k),
                Q3K => run!(k::dot_q3_k),
                Q4K => run!(k::dot_q4_k),
                Q5K => run!(k::dot_q5_k),
                Q6K => run!(k::dot_q6_k),
                Iq4Xs => run!(k::dot_iq4_xs),
                Q8_1 | Q8K => return false,
            }
        }
        true
    }
}
