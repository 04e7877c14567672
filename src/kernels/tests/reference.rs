//! Naive reference implementations: one output element at a time, from
//! multi-indices, sharing no code with the kernels.

fn dims(shape: &[i64]) -> Vec<usize> {
    shape.iter().map(|&d| d as usize).collect()
}

/// Multi-index of flat row-major `index` in `shape`.
pub fn unravel(mut index: usize, shape: &[usize]) -> Vec<usize> {
    let mut multi = vec![0; shape.len()];
    for axis in (0..shape.len()).rev() {
        multi[axis] = index % shape[axis];
        index /= shape[axis];
    }
    multi
}

/// Flat row-major index of `multi` in `shape`.
pub fn ravel(multi: &[usize], shape: &[usize]) -> usize {
    multi.iter().zip(shape).fold(0, |flat, (&i, &size)| flat * size + i)
}

/// Flat index into an operand of `shape` broadcast to the output position
/// `out_multi` (numpy rules: right-aligned, size-1 dimensions repeat).
pub fn broadcast_source(out_multi: &[usize], shape: &[usize]) -> usize {
    let skip = out_multi.len() - shape.len();
    let multi: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(axis, &size)| if size == 1 { 0 } else { out_multi[skip + axis] })
        .collect();
    ravel(&multi, shape)
}

/// Numpy broadcast shape of compatible shapes (the max of each right-aligned
/// pair).
pub fn broadcast_shape(a: &[i64], b: &[i64]) -> Vec<i64> {
    let rank = a.len().max(b.len());
    let pick = |s: &[i64], axis: usize| {
        let skip = rank - s.len();
        if axis < skip { 1 } else { s[axis - skip] }
    };
    (0..rank)
        .map(|axis| {
            let (x, y) = (pick(a, axis), pick(b, axis));
            if x == 1 { y } else { x }
        })
        .collect()
}

/// `f(a, b)` broadcast elementwise; returns the output and its shape.
pub fn binary<T: Copy>(
    a: &[T],
    a_shape: &[i64],
    b: &[T],
    b_shape: &[i64],
    f: impl Fn(T, T) -> T,
) -> (Vec<T>, Vec<i64>) {
    let out_shape = broadcast_shape(a_shape, b_shape);
    let out_dims = dims(&out_shape);
    let count: usize = out_dims.iter().product();
    let out = (0..count)
        .map(|flat| {
            let multi = unravel(flat, &out_dims);
            f(
                a[broadcast_source(&multi, &dims(a_shape))],
                b[broadcast_source(&multi, &dims(b_shape))],
            )
        })
        .collect();
    (out, out_shape)
}

/// Batched matmul with numpy semantics and optional transposes of the last
/// two dimensions, computed in f64; returns the output and its shape.
pub fn matmul(
    a: &[f64],
    a_shape: &[i64],
    b: &[f64],
    b_shape: &[i64],
    transpose_a: bool,
    transpose_b: bool,
) -> (Vec<f64>, Vec<i64>) {
    let (a_batch, a_mat) = a_shape.split_at(a_shape.len() - 2);
    let (b_batch, b_mat) = b_shape.split_at(b_shape.len() - 2);
    let (m, k) = if transpose_a { (a_mat[1], a_mat[0]) } else { (a_mat[0], a_mat[1]) };
    let n = if transpose_b { b_mat[0] } else { b_mat[1] };
    let (m, k, n) = (m as usize, k as usize, n as usize);
    let batch_shape = broadcast_shape(a_batch, b_batch);
    let batch_dims = dims(&batch_shape);
    let batches: usize = batch_dims.iter().product();
    let mut out = Vec::with_capacity(batches * m * n);
    for batch in 0..batches {
        let multi = unravel(batch, &batch_dims);
        let a_base = broadcast_source(&multi, &dims(a_batch)) * m * k;
        let b_base = broadcast_source(&multi, &dims(b_batch)) * k * n;
        for i in 0..m {
            for j in 0..n {
                let mut total = 0.0;
                for p in 0..k {
                    let a_value =
                        if transpose_a { a[a_base + p * m + i] } else { a[a_base + i * k + p] };
                    let b_value =
                        if transpose_b { b[b_base + j * k + p] } else { b[b_base + p * n + j] };
                    total += a_value * b_value;
                }
                out.push(total);
            }
        }
    }
    let mut shape = batch_shape;
    shape.extend([m as i64, n as i64]);
    (out, shape)
}

/// Folds axis `axis` of `x`: for each output position, `finish` of the
/// left fold of `step` from `init` over the axis.
pub fn reduce<T: Copy, A: Copy, R>(
    x: &[T],
    shape: &[i64],
    axis: usize,
    init: A,
    step: impl Fn(A, T) -> A,
    finish: impl Fn(A, usize) -> R,
) -> Vec<R> {
    let in_dims = dims(shape);
    let mut out_dims = in_dims.clone();
    out_dims[axis] = 1;
    let count: usize = out_dims.iter().product();
    (0..count)
        .map(|flat| {
            let mut multi = unravel(flat, &out_dims);
            let mut acc = init;
            for position in 0..in_dims[axis] {
                multi[axis] = position;
                acc = step(acc, x[ravel(&multi, &in_dims)]);
            }
            finish(acc, in_dims[axis])
        })
        .collect()
}

/// Softmax over the last axis, textbook formula with max subtraction.
pub fn softmax(x: &[f64], shape: &[i64]) -> Vec<f64> {
    let row = shape.last().map_or(1, |&d| d as usize);
    if row == 0 {
        return Vec::new();
    }
    x.chunks(row)
        .flat_map(|values| {
            let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = values.iter().map(|v| (v - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            exps.into_iter().map(move |e| e / total)
        })
        .collect()
}

/// `numpy.swapaxes(x, axis0, axis1)` (axes already non-negative).
pub fn swapaxes<T: Copy>(x: &[T], shape: &[i64], axis0: usize, axis1: usize) -> Vec<T> {
    let in_dims = dims(shape);
    let mut out_dims = in_dims.clone();
    out_dims.swap(axis0, axis1);
    let count: usize = out_dims.iter().product();
    (0..count)
        .map(|flat| {
            let mut multi = unravel(flat, &out_dims);
            multi.swap(axis0, axis1);
            x[ravel(&multi, &in_dims)]
        })
        .collect()
}

/// GELU, tanh approximation, in f64.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}
