//! Which code computes a conversion or dot product: the portable scalar
//! reference, or a SIMD implementation the CPU supports (detected at run
//! time, once). Every entry point checks its lengths here, in release
//! builds, before any implementation runs.

use std::fmt;
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use crate::kernels::quant::x86;
use crate::kernels::quant::{BlockFormat, QuantError, scalar};

/// An implementation of this module's kernels.
///
/// [`Implementation::best`] is what the module's free functions
/// ([`vec_dot`](super::vec_dot), ...) use; naming one explicitly serves
/// tests and benchmarks, which compare them. Results: `Scalar` is ggml's
/// reference bit for bit. The SIMD implementations convert rows
/// (quantize, dequantize) with identical results, and compute dot products
/// with exact integer parts but their own order of float additions, so
/// they differ from `Scalar` by a few ulps of the row's magnitude, as
/// ggml's own SIMD code differs from its scalar code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Implementation {
    /// Portable Rust, ggml's scalar reference code.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512 (F, BW, DQ, VL) with VNNI, on top of `Avx2`'s
    /// features; where a kernel measured no faster in 512-bit form, this
    /// runs the `Avx2` one.
    Avx512,
}

/// An implementation this CPU can run.
#[derive(Clone, Copy)]
enum Backend {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(x86::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
}

impl Implementation {
    /// Every implementation, available here or not.
    pub const ALL: [Implementation; 3] =
        [Implementation::Scalar, Implementation::Avx2, Implementation::Avx512];

    pub const fn name(self) -> &'static str {
        match self {
            Implementation::Scalar => "scalar",
            Implementation::Avx2 => "avx2",
            Implementation::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        self.backend().is_ok()
    }

    /// The implementations this CPU can run, scalar first.
    pub fn available() -> impl Iterator<Item = Implementation> {
        Implementation::ALL.into_iter().filter(|implementation| implementation.is_available())
    }

    /// The fastest implementation this CPU can run (decided once).
    pub fn best() -> Implementation {
        static BEST: OnceLock<Implementation> = OnceLock::new();
        *BEST.get_or_init(|| Implementation::available().last().unwrap_or(Implementation::Scalar))
    }

    fn backend(self) -> Result<Backend, QuantError> {
        let unavailable = QuantError::Unavailable { implementation: self };
        match self {
            Implementation::Scalar => Ok(Backend::Scalar),
            #[cfg(target_arch = "x86_64")]
            Implementation::Avx2 => x86::Avx2::detect().map(Backend::Avx2).ok_or(unavailable),
            #[cfg(target_arch = "x86_64")]
            Implementation::Avx512 => x86::Avx512::detect().map(Backend::Avx512).ok_or(unavailable),
            #[cfg(not(target_arch = "x86_64"))]
            Implementation::Avx2 | Implementation::Avx512 => Err(unavailable),
        }
    }

    /// Decodes the blocks in `src` into `dst` (ggml's `dequantize_row_*`,
    /// bit for bit in every implementation).
    ///
    /// `dst.len()` must be a whole number of blocks and `src` exactly those
    /// blocks' bytes. Q8_1 has no ggml dequantizer; here it decodes like
    /// Q8_0 (`d·q`; its second scale, `d·Σq`, only serves dot products).
    pub fn dequantize_row(
        self,
        format: BlockFormat,
        src: &[u8],
        dst: &mut [f32],
    ) -> Result<(), QuantError> {
        let backend = self.backend()?;
        format.check_row(dst.len(), src.len())?;
        match backend {
            Backend::Scalar => scalar::dequantize_row(format, src, dst),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(avx2) => avx2.dequantize_row(format, src, dst),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(avx512) => avx512.avx2().dequantize_row(format, src, dst),
        }
        Ok(())
    }

    /// Encodes `src` into blocks in `dst` with ggml's reference quantizer
    /// (`quantize_row_*_ref`; IQ4_XS: `quantize_iq4_xs` without importance
    /// weights, which is what its `_ref` calls), byte for byte in every
    /// implementation.
    ///
    /// `src.len()` must be a whole number of blocks and `dst` exactly those
    /// blocks' bytes. Every byte of `dst` is written. Where ggml leaves
    /// bytes unwritten (the sums of an all-zero Q8_K block) they are zero
    /// here.
    pub fn quantize_row(
        self,
        format: BlockFormat,
        src: &[f32],
        dst: &mut [u8],
    ) -> Result<(), QuantError> {
        let backend = self.backend()?;
        format.check_row(src.len(), dst.len())?;
        let done = match backend {
            Backend::Scalar => false,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(avx2) => avx2.quantize_row(format, src, dst),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(avx512) => avx512.avx2().quantize_row(format, src, dst),
        };
        if !done {
            scalar::quantize_row(format, src, dst);
        }
        Ok(())
    }

    /// The dot product of the `n`-element row `x` (in `format`) with the
    /// row `y` (in `format.vec_dot_format()`): ggml's
    /// `ggml_vec_dot_<x>_<y>`.
    ///
    /// `n` must be a whole number of blocks, and `x` and `y` exactly the
    /// bytes of `n` values in their formats.
    pub fn vec_dot(
        self,
        format: BlockFormat,
        n: usize,
        x: &[u8],
        y: &[u8],
    ) -> Result<f32, QuantError> {
        let backend = self.backend()?;
        let y_format = format.vec_dot_format().ok_or(QuantError::NoDotProduct { format })?;
        format.check_row(n, x.len())?;
        y_format.check_row(n, y.len())?;
        backend.vec_dot(format, x, y).ok_or(QuantError::NoDotProduct { format })
    }

    /// The dot products of several weight rows `xs` (in `format`) with
    /// several activation rows `ys` (in `format.vec_dot_format()`), all of
    /// `n` elements: `out[iy * out_stride + ix] = x[ix] · y[iy]`, the
    /// layout of a block of ggml's MUL_MAT result (a row per activation
    /// row, a column per weight row). Other elements of `out` are left
    /// alone, so `out` may be a view into a wider result whose rows are
    /// `out_stride` apart.
    ///
    /// Every row is checked as in [`vec_dot`](Self::vec_dot); `out_stride`
    /// must be at least `xs.len()` and `out` long enough for the last row.
    /// Nothing is written unless every check passes.
    ///
    /// This is the entry point for matrix products: the checks run once per
    /// tile, and the AVX-512 kernels take many weight rows per call and up
    /// to four activation rows at a time, unpacking each weight block once
    /// for all four (measured: about twice the throughput of one dot
    /// product at a time for 8 activation rows; for one activation row, the
    /// per-call overhead of a short row is saved). Results equal
    /// [`vec_dot`](Self::vec_dot)'s within the same few ulps.
    pub fn vec_dot_tile(
        self,
        format: BlockFormat,
        n: usize,
        xs: &[&[u8]],
        ys: &[&[u8]],
        out: &mut [f32],
        out_stride: usize,
    ) -> Result<(), QuantError> {
        let backend = self.backend()?;
        let y_format = format.vec_dot_format().ok_or(QuantError::NoDotProduct { format })?;
        for x in xs {
            format.check_row(n, x.len())?;
        }
        for y in ys {
            y_format.check_row(n, y.len())?;
        }
        check_tile_output(xs.len(), ys.len(), out.len(), out_stride)?;
        if xs.is_empty() || ys.is_empty() {
            return Ok(());
        }
        match backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(avx2) => {
                if !avx2.vec_dot_tile(format, xs, ys, out, out_stride) {
                    return Err(QuantError::NoDotProduct { format });
                }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(avx512) => {
                if !avx512.vec_dot_tile(format, xs, ys, out, out_stride) {
                    return Err(QuantError::NoDotProduct { format });
                }
            }
            Backend::Scalar => {
                for (y, out_row) in ys.iter().zip(out.chunks_mut(out_stride)) {
                    for (x, out) in xs.iter().zip(out_row.iter_mut()) {
                        *out = backend
                            .vec_dot(format, x, y)
                            .ok_or(QuantError::NoDotProduct { format })?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Backend {
    #[inline]
    fn vec_dot(self, format: BlockFormat, x: &[u8], y: &[u8]) -> Option<f32> {
        match self {
            Backend::Scalar => scalar::vec_dot(format, x, y),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(avx2) => avx2.vec_dot(format, x, y),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(avx512) => avx512.vec_dot(format, x, y),
        }
    }
}

/// Checks that an output of `actual` floats holds `rows` rows of `columns`
/// values `stride` apart.
fn check_tile_output(
    columns: usize,
    rows: usize,
    actual: usize,
    stride: usize,
) -> Result<(), QuantError> {
    if rows == 0 || columns == 0 {
        return Ok(());
    }
    if stride < columns {
        return Err(QuantError::TileStrideTooSmall { stride, columns });
    }
    let needed = (rows - 1)
        .checked_mul(stride)
        .and_then(|start| start.checked_add(columns))
        .ok_or(QuantError::TileOutputTooShort { rows, columns, stride, actual })?;
    if actual < needed {
        return Err(QuantError::TileOutputTooShort { rows, columns, stride, actual });
    }
    Ok(())
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
