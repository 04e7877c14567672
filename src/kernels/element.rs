//! Rust element types behind each `DType`, and safe typed access to the raw
//! (possibly misaligned) tensor bytes.

use std::borrow::Cow;
use std::fmt::Debug;

use bytemuck::Pod;
use half::f16;

/// A Rust type that stores one tensor element (see `rust_type!` for which
/// dtype maps to which type).
pub(crate) trait Element: Pod + Send + Sync + PartialEq + Debug + 'static {}

impl Element for i8 {}
impl Element for i16 {}
impl Element for i32 {}
impl Element for i64 {}
impl Element for u8 {}
impl Element for u16 {}
impl Element for u32 {}
impl Element for u64 {}
impl Element for f16 {}
impl Element for f32 {}
impl Element for f64 {}

/// The elements of `bytes`, borrowed in place when `bytes` is aligned for
/// `T`, otherwise copied into an aligned buffer (bytes from the wire may
/// start at any offset). The copy is the size of the tensor itself.
pub(crate) fn read_elements<T: Pod>(bytes: &[u8]) -> Cow<'_, [T]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(elements) => Cow::Borrowed(elements),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// Runs `write` on `bytes` viewed as `&mut [T]`: in place when aligned,
/// otherwise on a zeroed aligned buffer whose bytes are copied back after.
/// `write` must therefore not depend on the previous contents.
pub(crate) fn write_elements<T: Pod, R>(bytes: &mut [u8], write: impl FnOnce(&mut [T]) -> R) -> R {
    if let Ok(elements) = bytemuck::try_cast_slice_mut(bytes) {
        return write(elements);
    }
    let count = bytes.len() / std::mem::size_of::<T>();
    let mut staging = vec![T::zeroed(); count];
    let result = write(&mut staging);
    let staged: &[u8] = bytemuck::cast_slice(&staging);
    if let Some(destination) = bytes.get_mut(..staged.len()) {
        destination.copy_from_slice(staged);
    }
    result
}

/// Calls `$body` with the type alias `$T` bound to the Rust element type of
/// `$dtype`, for the dtypes listed; any other dtype evaluates `$otherwise`.
macro_rules! dispatch_dtype {
    ($dtype:expr, $T:ident => $body:expr, [$($variant:ident),* $(,)?], $otherwise:expr) => {
        match $dtype {
            $($crate::kernels::dtype::DType::$variant => {
                type $T = $crate::kernels::element::rust_type!($variant);
                $body
            })*
            #[allow(unreachable_patterns)]
            _ => $otherwise,
        }
    };
}

/// Maps a `DType` variant name to its Rust element type.
macro_rules! rust_type {
    (Int8) => {
        i8
    };
    (Int16) => {
        i16
    };
    (Int32) => {
        i32
    };
    (Int64) => {
        i64
    };
    (UInt8) => {
        u8
    };
    (UInt16) => {
        u16
    };
    (UInt32) => {
        u32
    };
    (UInt64) => {
        u64
    };
    (Float16) => {
        ::half::f16
    };
    (Float32) => {
        f32
    };
    (Float64) => {
        f64
    };
}

pub(crate) use dispatch_dtype;
pub(crate) use rust_type;

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte buffer whose slice `[1..]` is guaranteed misaligned for every
    /// element type wider than one byte.
    fn misaligned_copy(bytes: &[u8]) -> (Vec<u64>, usize) {
        let mut backing = vec![0u64; bytes.len() / 8 + 2];
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut backing);
        raw[1..1 + bytes.len()].copy_from_slice(bytes);
        (backing, bytes.len())
    }

    #[test]
    fn read_elements_borrows_aligned_data() {
        let values = [1.0f32, 2.0, 3.0];
        let bytes: &[u8] = bytemuck::cast_slice(&values);
        assert!(matches!(read_elements::<f32>(bytes), Cow::Borrowed(_)));
    }

    #[test]
    fn read_elements_copies_misaligned_data() {
        let values = [1.0f32, -2.0, 3.5];
        let (backing, len) = misaligned_copy(bytemuck::cast_slice(&values));
        let raw: &[u8] = bytemuck::cast_slice(&backing);
        let read = read_elements::<f32>(&raw[1..1 + len]);
        assert!(matches!(read, Cow::Owned(_)));
        assert_eq!(&*read, &values);
    }

    #[test]
    fn write_elements_writes_back_through_misaligned_data() {
        let mut backing = vec![0u64; 3];
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut backing);
        write_elements::<i32, ()>(&mut raw[1..13], |out| out.copy_from_slice(&[7, -8, 9]));
        let expected: &[u8] = bytemuck::cast_slice(&[7i32, -8, 9]);
        assert_eq!(&raw[1..13], expected);
        assert_eq!(raw[0], 0);
        assert_eq!(raw[13], 0);
    }
}
