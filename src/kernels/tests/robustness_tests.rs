//! No input makes a kernel panic: random dtypes, shapes (negative, zero,
//! huge), data lengths and attributes either work or return an error, and
//! a failed op leaves its output untouched.

use proptest::prelude::*;

use super::Tensor;
use crate::kernels::{
    BinaryOp, DType, MatmulOptions, ReduceOp, ReduceOptions, TensorDesc, TensorView, UnaryOp,
    binary, cast, fill, infer_binary, matmul, reduce, softmax, transpose, unary,
};

/// Tensors above this size are skipped rather than allocated.
const MAX_TEST_BYTES: usize = 1 << 16;

fn dtypes() -> impl Strategy<Value = DType> {
    prop::sample::select(DType::ALL.to_vec())
}

fn shapes() -> impl Strategy<Value = Vec<i64>> {
    let dim = prop_oneof![
        8 => 0i64..4,
        1 => Just(-1i64),
        1 => Just(1i64 << 40),
        1 => Just(i64::MAX),
    ];
    prop::collection::vec(dim, 0..4)
}

/// A zero-filled tensor, if `shape` is valid and small enough to allocate.
fn tensor(dtype: DType, shape: &[i64]) -> Option<Tensor> {
    let desc = TensorDesc::new(dtype, shape).ok()?;
    (desc.size_bytes() <= MAX_TEST_BYTES).then(|| Tensor::filled_with_byte(dtype, shape, 0x3C))
}

/// Runs `op` on a copy of `out`; on error, the copy must be unchanged.
fn check_untouched_on_error(
    out: &Tensor,
    op: impl FnOnce(&mut crate::kernels::TensorViewMut<'_>) -> Result<(), crate::kernels::KernelError>,
) {
    let mut target = out.clone();
    if op(&mut target.view_mut()).is_err() {
        assert_eq!(target.bytes(), out.bytes(), "failed op wrote to its output");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn view_constructor_never_panics(dtype in dtypes(), shape in shapes(), len in 0usize..64) {
        let data = vec![0u8; len];
        let _ = TensorView::new(dtype, &shape, &data);
    }

    #[test]
    fn ops_never_panic_and_failed_ops_write_nothing(
        x_dtype in dtypes(), x_shape in shapes(),
        y_dtype in dtypes(), y_shape in shapes(),
        out_dtype in dtypes(), out_shape in shapes(),
        axis0 in -4i64..4, axis1 in -4i64..4,
        flags in any::<(bool, bool)>(),
        value in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -1e20f64..1e20],
    ) {
        let (Some(x), Some(y), Some(out)) = (
            tensor(x_dtype, &x_shape),
            tensor(y_dtype, &y_shape),
            tensor(out_dtype, &out_shape),
        ) else {
            return Ok(());
        };
        let (x, y) = (x.view(), y.view());
        let options = MatmulOptions { transpose_a: flags.0, transpose_b: flags.1 };
        let reduce_options = ReduceOptions { axis: axis0, keepdims: flags.0 };

        check_untouched_on_error(&out, |out| matmul(x, y, out, options));
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum] {
            check_untouched_on_error(&out, |out| binary(op, x, y, out));
            let _ = infer_binary(op, x.desc(), y.desc());
        }
        for op in [UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Exp, UnaryOp::Neg] {
            check_untouched_on_error(&out, |out| unary(op, x, out));
        }
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            check_untouched_on_error(&out, |out| reduce(op, x, reduce_options, out));
        }
        check_untouched_on_error(&out, |out| softmax(x, out));
        check_untouched_on_error(&out, |out| cast(x, out));
        check_untouched_on_error(&out, |out| transpose(x, axis0, axis1, out));
        check_untouched_on_error(&out, |out| fill(out, value));
    }

    #[test]
    fn ops_on_matching_outputs_succeed_or_reject_without_panicking(
        dtype in dtypes(), shape in shapes(), axis in -4i64..4,
    ) {
        // Same dtype and shape in and out: valid for many ops, so the
        // execution paths (not only validation) run on odd shapes.
        let (Some(x), Some(out)) = (tensor(dtype, &shape), tensor(dtype, &shape)) else {
            return Ok(());
        };
        let x = x.view();
        check_untouched_on_error(&out, |out| binary(BinaryOp::Div, x, x, out));
        check_untouched_on_error(&out, |out| unary(UnaryOp::Gelu, x, out));
        check_untouched_on_error(&out, |out| softmax(x, out));
        check_untouched_on_error(&out, |out| cast(x, out));
        check_untouched_on_error(&out, |out| transpose(x, axis, axis, out));
        let options = ReduceOptions { axis, keepdims: true };
        check_untouched_on_error(&out, |out| reduce(ReduceOp::Max, x, options, out));
    }
}
