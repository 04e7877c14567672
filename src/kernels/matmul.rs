//! Batched matrix multiplication with numpy `matmul` semantics.
//!
//! Both operands must have rank >= 2: the last two dimensions are the
//! matrices and the leading ones are batch dimensions, broadcast against
//! each other like numpy. 1-D operands are **rejected** (numpy would promote
//! them to a row / column vector); reshape them to `[1, k]` or `[k, 1]`.
//! `transpose_a` / `transpose_b` swap the last two dimensions of an operand
//! before multiplying (no copy is made: the GEMM reads it strided).

use std::borrow::Cow;

use crate::kernels::broadcast::{BroadcastPlan, broadcast_shapes};
use crate::kernels::dtype::DType;
use crate::kernels::element::{read_elements, write_elements};
use crate::kernels::error::KernelError;
use crate::kernels::gemm::{GemmBackend, GemmElement, MatRef, gemm};
use crate::kernels::tensor::{OutputSpec, TensorDesc, TensorView, TensorViewMut};

const OP: &str = "matmul";
const SUPPORTED: &str = "float32, float64";

/// Attributes of `matmul`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatmulOptions {
    /// Multiply by the transpose of `a`'s last two dimensions.
    pub transpose_a: bool,
    /// Multiply by the transpose of `b`'s last two dimensions.
    pub transpose_b: bool,
}

/// Sizes of one matmul, derived from validated shapes.
struct MatmulGeometry {
    m: usize,
    n: usize,
    k: usize,
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    out_batch: Vec<usize>,
}

/// Validates `a`, `b` and `options` and returns the output's dtype (that of
/// the operands), shape (`[broadcast batch..., m, n]`) and cost (`2·m·n·k`
/// per matrix).
pub fn infer_matmul(
    a: TensorDesc<'_>,
    b: TensorDesc<'_>,
    options: MatmulOptions,
) -> Result<OutputSpec, KernelError> {
    let (spec, _) = plan_matmul(a, b, options)?;
    Ok(spec)
}

fn plan_matmul(
    a: TensorDesc<'_>,
    b: TensorDesc<'_>,
    options: MatmulOptions,
) -> Result<(OutputSpec, MatmulGeometry), KernelError> {
    if !matches!(a.dtype(), DType::Float32 | DType::Float64) {
        return Err(KernelError::UnsupportedDType {
            op: OP,
            arg: "a",
            dtype: a.dtype(),
            supported: SUPPORTED,
        });
    }
    if b.dtype() != a.dtype() {
        return Err(KernelError::DTypeMismatch {
            op: OP,
            arg: "b",
            actual: b.dtype(),
            expected: a.dtype(),
        });
    }
    for (arg, desc) in [("a", &a), ("b", &b)] {
        if desc.rank() < 2 {
            return Err(KernelError::RankTooLow {
                op: OP,
                arg,
                shape: desc.shape().to_vec(),
                min_rank: 2,
            });
        }
    }
    let (a_batch, a_matrix) = a.shape().split_at(a.rank() - 2);
    let (b_batch, b_matrix) = b.shape().split_at(b.rank() - 2);
    let (m, a_inner) =
        if options.transpose_a { (a_matrix[1], a_matrix[0]) } else { (a_matrix[0], a_matrix[1]) };
    let (b_inner, n) =
        if options.transpose_b { (b_matrix[1], b_matrix[0]) } else { (b_matrix[0], b_matrix[1]) };
    if a_inner != b_inner {
        return Err(KernelError::InnerDimensionMismatch {
            op: OP,
            a_shape: a.shape().to_vec(),
            b_shape: b.shape().to_vec(),
            a_inner,
            b_inner,
        });
    }
    // Report batch mismatches with the full shapes, which is what the
    // caller knows.
    let out_batch =
        broadcast_shapes(OP, ("a", a_batch), ("b", b_batch)).map_err(|err| match err {
            KernelError::BroadcastMismatch { a_dim, b_dim, op, .. } => {
                KernelError::BroadcastMismatch {
                    op,
                    a_arg: "a",
                    a_shape: a.shape().to_vec(),
                    b_arg: "b",
                    b_shape: b.shape().to_vec(),
                    a_dim,
                    b_dim,
                }
            }
            other => other,
        })?;
    let mut shape = out_batch.clone();
    shape.extend([m, n]);
    // The output shape is new (broadcast batch × m × n): make sure it is a
    // valid, addressable tensor before anyone allocates it.
    let out_desc = TensorDesc::new(a.dtype(), &shape)?;

    let to_usize = |dims: &[i64]| dims.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let geometry = MatmulGeometry {
        m: m as usize,
        n: n as usize,
        k: a_inner as usize,
        a_batch: to_usize(a_batch),
        b_batch: to_usize(b_batch),
        out_batch: to_usize(&out_batch),
    };
    let estimated_flops = u64::try_from(out_desc.num_elements())
        .unwrap_or(u64::MAX)
        .saturating_mul(geometry.k as u64)
        .saturating_mul(2);
    let spec = OutputSpec { dtype: a.dtype(), shape, estimated_flops };
    Ok((spec, geometry))
}

/// `out = a · b` (per batch, with `options`' transposes) using the default
/// GEMM backend.
pub fn matmul(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
    options: MatmulOptions,
) -> Result<(), KernelError> {
    matmul_with_backend(a, b, out, options, GemmBackend::default())
}

/// `matmul` with an explicitly chosen GEMM backend (for benchmarks and
/// differential tests). Fails with `BackendUnavailable` if `backend` is not
/// compiled in.
pub fn matmul_with_backend(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
    options: MatmulOptions,
    backend: GemmBackend,
) -> Result<(), KernelError> {
    let (spec, geometry) = plan_matmul(a.desc(), b.desc(), options)?;
    spec.check_output(OP, &out.desc())?;
    if !backend.is_available() {
        return Err(KernelError::BackendUnavailable { backend });
    }
    match a.dtype() {
        DType::Float32 => run_matmul::<f32>(a, b, out, &geometry, options, backend),
        DType::Float64 => run_matmul::<f64>(a, b, out, &geometry, options, backend),
        dtype => {
            Err(KernelError::UnsupportedDType { op: OP, arg: "a", dtype, supported: SUPPORTED })
        }
    }
}

fn run_matmul<T: GemmElement + Default>(
    a: TensorView<'_>,
    b: TensorView<'_>,
    out: &mut TensorViewMut<'_>,
    geometry: &MatmulGeometry,
    options: MatmulOptions,
    backend: GemmBackend,
) -> Result<(), KernelError> {
    let a_data: Cow<'_, [T]> = read_elements(a.data());
    let b_data: Cow<'_, [T]> = read_elements(b.data());
    let MatmulGeometry { m, n, k, .. } = *geometry;
    let (a_size, b_size, out_size) = (m * k, k * n, m * n);
    let plan = BroadcastPlan::new(&geometry.a_batch, &geometry.b_batch, &geometry.out_batch);
    let out_of_bounds = KernelError::Internal { op: OP, detail: "batch offset outside operand" };

    write_elements::<T, _>(out.data_mut(), |c| {
        let mut result = Ok(());
        plan.for_each_run(|run| {
            for step in 0..run.len {
                if result.is_err() {
                    return;
                }
                let a_index = run.a_offset + step * run.a_step;
                let b_index = run.b_offset + step * run.b_step;
                let out_index = run.out_offset + step;
                let a_matrix = a_data.get(a_index * a_size..(a_index + 1) * a_size);
                let b_matrix = b_data.get(b_index * b_size..(b_index + 1) * b_size);
                let c_matrix = c.get_mut(out_index * out_size..(out_index + 1) * out_size);
                result = match (a_matrix, b_matrix, c_matrix) {
                    (Some(a_matrix), Some(b_matrix), Some(c_matrix)) => gemm(
                        backend,
                        a_operand(a_matrix, m, k, options.transpose_a),
                        b_operand(b_matrix, k, n, options.transpose_b),
                        c_matrix,
                    ),
                    _ => Err(out_of_bounds.clone()),
                };
            }
        });
        result
    })
}

/// `a` as an `m × k` matrix, read through its transpose (stored `k × m`)
/// when `transposed`.
fn a_operand<T>(data: &[T], m: usize, k: usize, transposed: bool) -> MatRef<'_, T> {
    let (row_stride, col_stride) = if transposed { (1, m) } else { (k, 1) };
    MatRef { data, rows: m, cols: k, row_stride, col_stride }
}

/// `b` as a `k × n` matrix, read through its transpose (stored `n × k`)
/// when `transposed`.
fn b_operand<T>(data: &[T], k: usize, n: usize, transposed: bool) -> MatRef<'_, T> {
    let (row_stride, col_stride) = if transposed { (1, k) } else { (n, 1) };
    MatRef { data, rows: k, cols: n, row_stride, col_stride }
}
