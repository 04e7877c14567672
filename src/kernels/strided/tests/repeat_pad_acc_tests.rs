use super::{BF16, F32, I32, Tensor};
use crate::kernels::strided::{
    AccParams, OpError, PadParams, acc, check_acc, check_pad, check_repeat, pad, repeat,
};

#[test]
fn repeat_tiles_the_source_in_every_dimension() {
    for elem in [F32, BF16, I32] {
        let src = Tensor::random(elem, [3, 2, 1, 2], 1, 50.0);
        let mut dst = Tensor::poisoned(elem, [6, 4, 3, 2]);
        repeat(src.view(), &mut dst.view_mut()).unwrap();
        for flat in 0..dst.layout.elements() {
            let [i0, i1, i2, i3] = super::unravel(flat, [6, 4, 3, 2]);
            assert_eq!(dst.get([i0, i1, i2, i3]), src.get([i0 % 3, i1 % 2, 0, i3]), "{elem}");
        }
    }
    let src = Tensor::random(F32, [3, 2, 1, 1], 2, 1.0);
    let odd = Tensor::poisoned(F32, [4, 2, 1, 1]);
    let err = check_repeat(&src.layout, &odd.layout).unwrap_err();
    assert!(matches!(err, OpError::NotRepeatable { .. }), "{err}");
}

fn pad_params(amounts: [i32; 8], circular: bool) -> PadParams {
    let mut raw = [0i32; 16];
    raw[..8].copy_from_slice(&amounts);
    raw[8] = i32::from(circular);
    PadParams::from_op_params(&raw).unwrap()
}

#[test]
fn pad_surrounds_the_source_with_zeros_or_wraps_it() {
    let src = Tensor::new(F32, [3, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut dst = Tensor::poisoned(F32, [6, 3, 1, 1]);
    pad(src.view(), &mut dst.view_mut(), &pad_params([1, 2, 0, 1, 0, 0, 0, 0], false)).unwrap();
    #[rustfmt::skip]
    let expected = [
        0.0, 1.0, 2.0, 3.0, 0.0, 0.0,
        0.0, 4.0, 5.0, 6.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(dst.values(), expected);
    let mut wrapped = Tensor::poisoned(F32, [6, 3, 1, 1]);
    let params = pad_params([1, 2, 0, 1, 0, 0, 0, 0], true);
    pad(src.view(), &mut wrapped.view_mut(), &params).unwrap();
    #[rustfmt::skip]
    let expected = [
        3.0, 1.0, 2.0, 3.0, 1.0, 2.0,
        6.0, 4.0, 5.0, 6.0, 4.0, 5.0,
        3.0, 1.0, 2.0, 3.0, 1.0, 2.0,
    ];
    assert_eq!(wrapped.values(), expected);
}

#[test]
fn pad_refuses_negative_amounts_and_a_strided_dst() {
    let mut raw = [0i32; 16];
    raw[3] = -1;
    assert!(matches!(PadParams::from_op_params(&raw), Err(OpError::InvalidParam { .. })));
    let src = Tensor::random(F32, [2, 2, 1, 1], 3, 1.0);
    let strided = Tensor::random(F32, [8, 2, 1, 1], 4, 1.0).sub_view([3, 2, 1, 1]);
    let err = check_pad(&src.layout, &strided.layout, &pad_params([1, 0, 0, 0, 0, 0, 0, 0], false))
        .unwrap_err();
    assert!(matches!(err, OpError::StrideRule { operand: "dst", .. }), "{err}");
}

fn acc_params(nb1: i32, nb2: i32, nb3: i32, offset: i32) -> [i32; 16] {
    let mut raw = [0i32; 16];
    raw[..4].copy_from_slice(&[nb1, nb2, nb3, offset]);
    raw
}

#[test]
fn acc_adds_into_a_strided_window_of_a_copy() {
    // A 2 × 2 window at row 1, column 1 of a 4 × 3 matrix.
    let src0 = Tensor::from_fn(F32, [4, 3, 1, 1], |[i0, i1, ..]| (10 * i1 + i0) as f32);
    let src1 = Tensor::new(F32, [2, 2, 1, 1], &[100.0, 200.0, 300.0, 400.0]);
    let params = AccParams::from_op_params(&acc_params(16, 48, 48, 16 + 4)).unwrap();
    let mut dst = Tensor::poisoned(F32, [4, 3, 1, 1]);
    acc(src0.view(), src1.view(), &mut dst.view_mut(), &params).unwrap();
    #[rustfmt::skip]
    let expected = [
        0.0, 1.0, 2.0, 3.0,
        10.0, 111.0, 212.0, 13.0,
        20.0, 321.0, 422.0, 23.0,
    ];
    assert_eq!(dst.values(), expected);
}

#[test]
fn acc_refuses_a_window_past_the_end_and_negative_params() {
    let src0 = Tensor::random(F32, [4, 3, 1, 1], 5, 1.0);
    let src1 = Tensor::random(F32, [2, 2, 1, 1], 6, 1.0);
    // The last element would start at byte 44 of 48 and end at 48: fits;
    // one byte further it would straddle the end (ggml accepts that).
    let fits = AccParams::from_op_params(&acc_params(16, 48, 48, 24)).unwrap();
    assert!(check_acc(&src0.layout, &src1.layout, &src0.layout, &fits).is_ok());
    let straddles = AccParams::from_op_params(&acc_params(16, 48, 48, 25)).unwrap();
    let err = check_acc(&src0.layout, &src1.layout, &src0.layout, &straddles).unwrap_err();
    assert!(err.to_string().contains("reaches past the end of src0"), "{err}");
    let huge = AccParams::from_op_params(&acc_params(i32::MAX, i32::MAX, 0, 0)).unwrap();
    assert!(check_acc(&src0.layout, &src1.layout, &src0.layout, &huge).is_err());
    assert!(matches!(
        AccParams::from_op_params(&acc_params(-16, 48, 48, 0)),
        Err(OpError::InvalidParam { param: "nb1", .. })
    ));
}
