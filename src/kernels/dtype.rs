//! Element types a kernel can see, and how they are spelled in DLPack.

use std::fmt;

use crate::kernels::error::KernelError;

/// DLPack `DLDataTypeCode` values this module understands.
const DLPACK_INT: u8 = 0;
const DLPACK_UINT: u8 = 1;
const DLPACK_FLOAT: u8 = 2;
/// `kDLBool`, used by newer TVM; older TVM spells bool as `uint1`.
const DLPACK_BOOL: u8 = 6;

/// The scalar type of every element of a tensor.
///
/// Only single-lane types exist here: vector (`lanes > 1`) types are rejected
/// at the DLPack boundary, so kernels never see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float16,
    Float32,
    Float64,
    /// One byte per element, 0 for false and 1 for true.
    Bool,
}

impl DType {
    /// Every dtype, in a stable order (handy for exhaustive tests).
    pub const ALL: [DType; 12] = [
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::UInt8,
        DType::UInt16,
        DType::UInt32,
        DType::UInt64,
        DType::Float16,
        DType::Float32,
        DType::Float64,
        DType::Bool,
    ];

    /// Decodes a DLPack `DLDataType` (`code`, `bits`, `lanes`).
    ///
    /// Bool is accepted both as `kDLBool` with 8 bits and as TVM's legacy
    /// `uint1`; either way it is stored as one byte per element.
    pub fn from_dlpack(code: u8, bits: u8, lanes: u16) -> Result<DType, KernelError> {
        let unsupported =
            |reason: &'static str| KernelError::UnsupportedDLPackType { code, bits, lanes, reason };
        if lanes != 1 {
            return Err(unsupported("only single-lane (lanes = 1) types are supported"));
        }
        match (code, bits) {
            (DLPACK_INT, 8) => Ok(DType::Int8),
            (DLPACK_INT, 16) => Ok(DType::Int16),
            (DLPACK_INT, 32) => Ok(DType::Int32),
            (DLPACK_INT, 64) => Ok(DType::Int64),
            (DLPACK_UINT, 1) => Ok(DType::Bool),
            (DLPACK_UINT, 8) => Ok(DType::UInt8),
            (DLPACK_UINT, 16) => Ok(DType::UInt16),
            (DLPACK_UINT, 32) => Ok(DType::UInt32),
            (DLPACK_UINT, 64) => Ok(DType::UInt64),
            (DLPACK_FLOAT, 16) => Ok(DType::Float16),
            (DLPACK_FLOAT, 32) => Ok(DType::Float32),
            (DLPACK_FLOAT, 64) => Ok(DType::Float64),
            (DLPACK_BOOL, 8) => Ok(DType::Bool),
            (DLPACK_INT | DLPACK_UINT | DLPACK_FLOAT | DLPACK_BOOL, _) => {
                Err(unsupported("this bit width is not supported for the type code"))
            }
            _ => Err(unsupported("unknown or unsupported type code")),
        }
    }

    /// The DLPack `(code, bits, lanes)` of this dtype. Bool is encoded as
    /// `kDLBool` with 8 bits.
    pub const fn to_dlpack(self) -> (u8, u8, u16) {
        let (code, bits) = match self {
            DType::Int8 => (DLPACK_INT, 8),
            DType::Int16 => (DLPACK_INT, 16),
            DType::Int32 => (DLPACK_INT, 32),
            DType::Int64 => (DLPACK_INT, 64),
            DType::UInt8 => (DLPACK_UINT, 8),
            DType::UInt16 => (DLPACK_UINT, 16),
            DType::UInt32 => (DLPACK_UINT, 32),
            DType::UInt64 => (DLPACK_UINT, 64),
            DType::Float16 => (DLPACK_FLOAT, 16),
            DType::Float32 => (DLPACK_FLOAT, 32),
            DType::Float64 => (DLPACK_FLOAT, 64),
            DType::Bool => (DLPACK_BOOL, 8),
        };
        (code, bits, 1)
    }

    /// Bytes one element occupies in a compact tensor.
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::Int8 | DType::UInt8 | DType::Bool => 1,
            DType::Int16 | DType::UInt16 | DType::Float16 => 2,
            DType::Int32 | DType::UInt32 | DType::Float32 => 4,
            DType::Int64 | DType::UInt64 | DType::Float64 => 8,
        }
    }

    /// The name used in error messages (numpy spelling, e.g. `float32`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::Float16 => "float16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Bool => "bool",
        }
    }

    /// True for float16, float32 and float64.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::Float16 | DType::Float32 | DType::Float64)
    }

    /// True for the signed and unsigned integer types (not bool).
    pub const fn is_integer(self) -> bool {
        matches!(
            self,
            DType::Int8
                | DType::Int16
                | DType::Int32
                | DType::Int64
                | DType::UInt8
                | DType::UInt16
                | DType::UInt32
                | DType::UInt64
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_dlpack_round_trips_every_dtype() {
        for dtype in DType::ALL {
            let (code, bits, lanes) = dtype.to_dlpack();
            assert_eq!(DType::from_dlpack(code, bits, lanes), Ok(dtype));
        }
    }

    #[test]
    fn from_dlpack_decodes_common_types() {
        assert_eq!(DType::from_dlpack(2, 32, 1), Ok(DType::Float32));
        assert_eq!(DType::from_dlpack(0, 64, 1), Ok(DType::Int64));
        assert_eq!(DType::from_dlpack(1, 8, 1), Ok(DType::UInt8));
        assert_eq!(DType::from_dlpack(2, 16, 1), Ok(DType::Float16));
    }

    #[test]
    fn from_dlpack_accepts_legacy_tvm_bool_as_uint1() {
        assert_eq!(DType::from_dlpack(1, 1, 1), Ok(DType::Bool));
    }

    #[test]
    fn from_dlpack_rejects_vector_lanes() {
        let err = DType::from_dlpack(2, 32, 4).unwrap_err();
        assert!(err.to_string().contains("lanes 4"), "{err}");
    }

    #[test]
    fn from_dlpack_rejects_odd_bit_widths() {
        assert!(DType::from_dlpack(0, 12, 1).is_err());
        assert!(DType::from_dlpack(2, 8, 1).is_err());
    }

    #[test]
    fn from_dlpack_rejects_bfloat16_and_unknown_codes() {
        assert!(DType::from_dlpack(4, 16, 1).is_err());
        assert!(DType::from_dlpack(200, 32, 1).is_err());
    }

    #[test]
    fn size_bytes_matches_bit_width() {
        for dtype in DType::ALL {
            let (_, bits, _) = dtype.to_dlpack();
            assert_eq!(dtype.size_bytes() * 8, usize::from(bits));
        }
    }

    #[test]
    fn display_uses_numpy_names() {
        assert_eq!(DType::Float32.to_string(), "float32");
        assert_eq!(DType::UInt16.to_string(), "uint16");
        assert_eq!(DType::Bool.to_string(), "bool");
    }

    #[test]
    fn float_and_integer_classes_are_disjoint() {
        for dtype in DType::ALL {
            assert!(!(dtype.is_float() && dtype.is_integer()), "{dtype}");
        }
        assert!(!DType::Bool.is_float() && !DType::Bool.is_integer());
    }
}
