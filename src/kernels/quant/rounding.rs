//! Float → integer conversions exactly as ggml's C code performs them on
//! x86-64, so quantized bytes match ggml's even at the edges.

/// `1.5·2^23`: adding it to a float of magnitude below `2^22` leaves the
/// rounded integer in the low mantissa bits.
const MAGIC_ROUNDING_BIAS: f32 = 12_582_912.0;

/// ggml's `nearest_int`: rounds to nearest, ties to even, by adding
/// [`MAGIC_ROUNDING_BIAS`] and reading the mantissa bits.
///
/// ggml asserts `|x| <= 4194303` only in debug builds; beyond that (and
/// for NaN and infinities) the trick yields deterministic garbage, which is
/// reproduced here bit for bit (NaN gives 0, +inf and -inf give -2^22).
pub(super) fn nearest_int(value: f32) -> i32 {
    let biased = value + MAGIC_ROUNDING_BIAS;
    (biased.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C's `(int)value` as x86-64's `cvttss2si` computes it: truncation toward
/// zero, and the "integer indefinite" `i32::MIN` for NaN and values outside
/// the `i32` range (where C leaves the result undefined). Rust's `as`
/// would saturate instead.
pub(super) fn truncate_to_i32(value: f32) -> i32 {
    // Exactly representable bounds: -2^31 is in range, 2^31 is not.
    const LOW: f32 = -2_147_483_648.0;
    const HIGH: f32 = 2_147_483_648.0;
    if (LOW..HIGH).contains(&value) { value as i32 } else { i32::MIN }
}

/// C's `(int8_t)value` on x86-64: [`truncate_to_i32`], then the low byte.
pub(super) fn truncate_to_i8(value: f32) -> i8 {
    truncate_to_i32(value) as i8
}

/// C's `(uint8_t)value` on x86-64: [`truncate_to_i32`], then the low byte.
pub(super) fn truncate_to_u8(value: f32) -> u8 {
    truncate_to_i32(value) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.49), -2);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
    }

    #[test]
    fn nearest_int_maps_nan_to_zero_and_infinities_to_minus_two_to_the_22() {
        assert_eq!(nearest_int(f32::NAN), 0);
        assert_eq!(nearest_int(-f32::NAN), 0);
        assert_eq!(nearest_int(f32::INFINITY), -0x0040_0000);
        assert_eq!(nearest_int(f32::NEG_INFINITY), -0x0040_0000);
    }

    #[test]
    fn truncation_gives_integer_indefinite_outside_the_i32_range() {
        assert_eq!(truncate_to_i32(-2.9), -2);
        assert_eq!(truncate_to_i32(2.9), 2);
        assert_eq!(truncate_to_i32(-2_147_483_648.0), i32::MIN);
        assert_eq!(truncate_to_i32(2_147_483_648.0), i32::MIN);
        assert_eq!(truncate_to_i32(f32::INFINITY), i32::MIN);
        assert_eq!(truncate_to_i32(f32::NAN), i32::MIN);
    }

    #[test]
    fn narrow_truncation_keeps_the_low_byte() {
        assert_eq!(truncate_to_i8(300.7), 44);
        assert_eq!(truncate_to_i8(-129.0), 127);
        assert_eq!(truncate_to_i8(f32::NAN), 0);
        assert_eq!(truncate_to_u8(255.9), 255);
        assert_eq!(truncate_to_u8(256.0), 0);
        assert_eq!(truncate_to_u8(-1.0), 255);
    }
}
