//! `transpose(x, axis0, axis1, out)`: swaps two axes (numpy `swapaxes`),
//! for every dtype. Axes may be negative; swapping an axis with itself is a
//! copy. A 0-d input has no axes and is rejected, as in numpy.
//!
//! Works on raw bytes: elements are moved, never interpreted, so alignment
//! and dtype do not matter.

use std::borrow::Cow;

use bytemuck::Pod;

use crate::kernels::axis::normalize_axis;
use crate::kernels::element::{read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut, flops};

const OP: &str = "transpose";

/// The input seen as `[pre, d0, mid, d1, post]`, with `d0` and `d1` the
/// swapped axes (the output is `[pre, d1, mid, d0, post]`).
#[derive(Debug, Clone, Copy)]
struct SwapGeometry {
    /// Both axes are the same one: the output is a copy of the input.
    same_axis: bool,
    pre: usize,
    d0: usize,
    mid: usize,
    d1: usize,
    post: usize,
}

/// Validates the axes and returns the output's dtype (that of `x`), shape
/// (`x`'s with the two axes swapped) and cost.
pub fn infer_transpose(
    x: TensorDesc<'_>,
    axis0: i64,
    axis1: i64,
) -> Result<OutputSpec, KernelError> {
    plan_transpose(x, axis0, axis1).map(|(spec, _)| spec)
}

fn plan_transpose(
    x: TensorDesc<'_>,
    axis0: i64,
    axis1: i64,
) -> Result<(OutputSpec, SwapGeometry), KernelError> {
    let first = normalize_axis(OP, "axis0", "x", axis0, x.shape())?;
    let second = normalize_axis(OP, "axis1", "x", axis1, x.shape())?;
    let (low, high) = (first.min(second), first.max(second));
    let mut shape = x.shape().to_vec();
    shape.swap(low, high);
    let dims = x.dims();
    let geometry = SwapGeometry {
        same_axis: low == high,
        pre: dims[..low].iter().product(),
        d0: dims[low],
        mid: dims.get(low + 1..high).map_or(1, |d| d.iter().product()),
        d1: dims[high],
        post: dims[high + 1..].iter().product(),
    };
    let spec = OutputSpec { dtype: x.dtype(), shape, estimated_flops: flops(x.num_elements(), 1) };
    Ok((spec, geometry))
}

/// `out = swapaxes(x, axis0, axis1)`.
pub fn transpose(
    x: TensorView<'_>,
    axis0: i64,
    axis1: i64,
    out: &mut TensorViewMut<'_>,
) -> Result<(), KernelError> {
    let (spec, geometry) = plan_transpose(x.desc(), axis0, axis1)?;
    spec.check_output(OP, &out.desc())?;
    if x.num_elements() == 0 {
        // Nothing to move; returning here also keeps the loops below from
        // spinning over a huge dimension next to a zero one.
        return Ok(());
    }
    let element_size = x.dtype().size_bytes();
    if geometry.same_axis {
        // Same lengths: `out` was checked to have `x`'s dtype and shape.
        out.data_mut().copy_from_slice(x.data());
        return Ok(());
    }
    if geometry.post == 1 {
        // Swapping with the last axis moves single elements: gather them as
        // typed values rather than one tiny byte copy each.
        match element_size {
            1 => swap_single_elements::<u8>(x.data(), out.data_mut(), geometry),
            2 => swap_single_elements::<u16>(x.data(), out.data_mut(), geometry),
            4 => swap_single_elements::<u32>(x.data(), out.data_mut(), geometry),
            8 => swap_single_elements::<u64>(x.data(), out.data_mut(), geometry),
            _ => swap_axes(x.data(), out.data_mut(), geometry, element_size),
        }
        return Ok(());
    }
    swap_axes(x.data(), out.data_mut(), geometry, element_size);
    Ok(())
}

/// `swap_axes` for `post == 1`, moving whole elements of type `T` (only
/// its size matters).
fn swap_single_elements<T: Pod>(input: &[u8], output: &mut [u8], geometry: SwapGeometry) {
    let SwapGeometry { pre, d0, mid, d1, .. } = geometry;
    let input: Cow<'_, [T]> = read_elements(input);
    write_elements::<T, _>(output, |output| {
        let mut destinations = output.iter_mut();
        for p in 0..pre {
            for j in 0..d1 {
                for m in 0..mid {
                    let row = (p * d0 * mid + m) * d1 + j;
                    for i in 0..d0 {
                        let (Some(destination), Some(&source)) =
                            (destinations.next(), input.get(row + i * mid * d1))
                        else {
                            return;
                        };
                        *destination = source;
                    }
                }
            }
        }
    });
}

/// Writes the output in memory order, gathering each contiguous `post`
/// block of elements from its place in the input.
fn swap_axes(input: &[u8], output: &mut [u8], geometry: SwapGeometry, element_size: usize) {
    let SwapGeometry { pre, d0, mid, d1, post, .. } = geometry;
    let block = post * element_size;
    if block == 0 {
        return;
    }
    let mut blocks = output.chunks_exact_mut(block);
    for p in 0..pre {
        for j in 0..d1 {
            for m in 0..mid {
                for i in 0..d0 {
                    let source_block = (((p * d0 + i) * mid + m) * d1 + j) * block;
                    let (Some(destination), Some(source)) =
                        (blocks.next(), input.get(source_block..source_block + block))
                    else {
                        return;
                    };
                    destination.copy_from_slice(source);
                }
            }
        }
    }
}
