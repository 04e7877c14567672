//! Python's `+` and `str()` on RPC values: what TVM's test functions, written in Python
//! (`tvm.rpc.testing`), do with their arguments, so that ours answer the same.

use super::SessionError;
use crate::endpoint::tvm::codec::Value;

/// Python's name of a value's type, as its TypeErrors spell it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::None => "NoneType",
        Value::Int(_) => "int",
        Value::Bool(_) => "bool",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::DataType(_) => "dtype",
        Value::Device(_) => "Device",
        Value::Tensor(_) | Value::TensorObject { .. } => "Tensor",
        Value::Function(_) => "Function",
        Value::Module(_) => "Module",
        Value::Handle(_) => "ctypes.c_void_p",
        Value::ObjectRef(_) | Value::Object { .. } => "Object",
    }
}

fn type_error(message: String) -> SessionError {
    SessionError::InvalidArgument(format!("TypeError: {message}"))
}

/// A Python number: bool and int add as integers, anything with a float as a float.
enum Number {
    Int(i64),
    Float(f64),
}

fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Int(v) => Some(Number::Int(*v)),
        Value::Bool(v) => Some(Number::Int(i64::from(*v))),
        Value::Float(v) => Some(Number::Float(*v)),
        _ => None,
    }
}

/// `lhs + rhs` as Python computes it. Integers are Python's unbounded ints, which the RPC
/// carries as int64: a sum outside int64 is an error rather than a wrapped value.
pub fn add(lhs: &Value, rhs: &Value) -> Result<Value, SessionError> {
    match (lhs, rhs) {
        (Value::Str(a), Value::Str(b)) => return Ok(Value::Str(format!("{a}{b}"))),
        (Value::Str(_), other) => {
            return Err(type_error(format!(
                "can only concatenate str (not \"{}\") to str",
                type_name(other)
            )));
        }
        (Value::Bytes(a), Value::Bytes(b)) => return Ok(Value::Bytes([&a[..], b].concat())),
        (Value::Bytes(_), other) => {
            return Err(type_error(format!("can't concat {} to bytes", type_name(other))));
        }
        _ => {}
    }
    match (number(lhs), number(rhs)) {
        (Some(Number::Int(a)), Some(Number::Int(b))) => {
            a.checked_add(b).map(Value::Int).ok_or_else(|| {
                SessionError::InvalidArgument(format!(
                    "OverflowError: {a} + {b} does not fit in a 64-bit integer"
                ))
            })
        }
        (Some(a), Some(b)) => Ok(Value::Float(as_float(a) + as_float(b))),
        _ => Err(type_error(format!(
            "unsupported operand type(s) for +: '{}' and '{}'",
            type_name(lhs),
            type_name(rhs)
        ))),
    }
}

fn as_float(n: Number) -> f64 {
    match n {
        Number::Int(v) => v as f64,
        Number::Float(v) => v,
    }
}

/// `str(value)` as Python (with tvm-ffi's types) spells it.
pub fn to_str(value: &Value) -> Result<String, SessionError> {
    Ok(match value {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(v) => v.to_string(),
        Value::Float(v) => float_repr(*v),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => bytes_repr(b),
        Value::DataType(t) => t.to_string(),
        Value::Device(d) => d.to_string(),
        other => {
            return Err(SessionError::InvalidArgument(format!(
                "cannot format {} as a string",
                other.describe()
            )));
        }
    })
}

/// Python's `repr(float)`: the shortest digits that read back as the same float, in
/// positional notation for exponents from -4 to 15 (with at least one decimal), otherwise
/// in scientific notation with a signed two-digit exponent (`1e+16`, `1.5e-07`).
pub fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "-1.25e-7", "0e0".
    let scientific = format!("{v:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    if !(-4..16).contains(&exponent) {
        let sign_of_exponent = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{sign_of_exponent}{:02}", exponent.unsigned_abs());
    }
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if exponent < 0 {
        let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
        return format!("{sign}0.{zeros}{digits}");
    }
    let integer_len = exponent as usize + 1;
    if digits.len() <= integer_len {
        let zeros = "0".repeat(integer_len - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        format!("{sign}{}.{}", &digits[..integer_len], &digits[integer_len..])
    }
}

/// Python's `repr(bytes)`: `b'...'`, printable ASCII as is, the rest escaped; double quotes
/// when the bytes hold a single quote and no double quote.
fn bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { '"' } else { '\'' };
    let mut out = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote as u8 => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr_does() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-0.0, "-0.0"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-300, "-2.5e-300"),
            (1234.5678, "1234.5678"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ];
        for (v, expected) in cases {
            assert_eq!(float_repr(v), expected, "{v:e}");
        }
    }

    #[test]
    fn bytes_print_as_python_repr_does() {
        assert_eq!(bytes_repr(b"ab"), "b'ab'");
        assert_eq!(bytes_repr(b"a'b"), "b\"a'b\"");
        assert_eq!(bytes_repr(b"a'\"b"), "b'a\\'\"b'");
        assert_eq!(bytes_repr(&[0, 10, 255, b'\\']), "b'\\x00\\n\\xff\\\\'");
    }

    #[test]
    fn ints_add_as_ints_and_with_a_float_as_floats() {
        assert_eq!(add(&Value::Int(10), &Value::Int(12)), Ok(Value::Int(22)));
        assert_eq!(add(&Value::Bool(true), &Value::Int(1)), Ok(Value::Int(2)));
        assert_eq!(add(&Value::Int(1), &Value::Float(2.5)), Ok(Value::Float(3.5)));
    }

    #[test]
    fn an_int_sum_past_int64_is_an_error_not_a_wrapped_value() {
        let err = add(&Value::Int(i64::MAX), &Value::Int(1)).unwrap_err();
        assert!(err.to_string().contains("OverflowError"), "{err}");
    }

    #[test]
    fn strings_and_bytes_concatenate_only_with_their_own_kind() {
        let s = |t: &str| Value::Str(t.into());
        assert_eq!(add(&s("abc"), &s("def")), Ok(s("abcdef")));
        assert_eq!(
            add(&Value::Bytes(b"a".to_vec()), &Value::Bytes(b"b".to_vec())),
            Ok(Value::Bytes(b"ab".to_vec()))
        );
        let err = add(&s("a"), &Value::Int(1)).unwrap_err();
        assert_eq!(err.to_string(), "TypeError: can only concatenate str (not \"int\") to str");
        let err = add(&Value::None, &Value::Int(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'"
        );
    }

    #[test]
    fn str_spells_values_as_python_does() {
        assert_eq!(to_str(&Value::None).unwrap(), "None");
        assert_eq!(to_str(&Value::Bool(true)).unwrap(), "True");
        assert_eq!(to_str(&Value::Int(-11)).unwrap(), "-11");
        assert_eq!(
            to_str(&Value::DataType(crate::endpoint::tvm::codec::DataType::FLOAT32)).unwrap(),
            "float32"
        );
        assert_eq!(
            to_str(&Value::Device(crate::endpoint::tvm::codec::Device::cpu(0))).unwrap(),
            "cpu:0"
        );
        assert!(to_str(&Value::Handle(1)).is_err());
    }
}
