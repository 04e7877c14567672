//! The element types of ggml tensors that the strided ops understand.
//!
//! Every type is described as a *block*: `block_elems` elements stored in
//! `block_bytes` bytes. The plain types are blocks of one element; ggml's
//! quantized formats (`Quant`: Q8_0 is 32 elements in 34 bytes, ...) are the
//! same description with larger blocks, so layouts, extents and row access
//! are written once for both. Rows of every type convert through
//! `row_to_f32` / `row_from_f32` (`convert`: a block format's through
//! `quant::dequantize_row` / `quant::quantize_row`), which is how every op
//! that accepts "any float type" reads and writes rows.

use std::fmt;

use crate::kernels::quant::BlockFormat;

/// The type of every element of a tensor, numbered as ggml's `enum ggml_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    /// One of ggml's quantized block formats (`ggml_is_quantized`).
    Quant(BlockFormat),
}

impl ElementType {
    /// Every plain (one element per block) type, in ggml's numbering order.
    pub const PLAIN: [ElementType; 8] = [
        ElementType::F32,
        ElementType::F16,
        ElementType::I8,
        ElementType::I16,
        ElementType::I32,
        ElementType::I64,
        ElementType::F64,
        ElementType::BF16,
    ];

    /// The type ggml numbers `type_id` (`GGML_TYPE_*`), if it is one of ours.
    pub fn from_ggml(type_id: u32) -> Option<ElementType> {
        Self::PLAIN
            .into_iter()
            .find(|elem| elem.ggml_type() == type_id)
            .or_else(|| BlockFormat::from_ggml_type(type_id).map(ElementType::Quant))
    }

    /// The block format, for a quantized type.
    pub const fn block_format(self) -> Option<BlockFormat> {
        match self {
            ElementType::Quant(format) => Some(format),
            _ => None,
        }
    }

    /// ggml's number for this type (`GGML_TYPE_*`).
    pub const fn ggml_type(self) -> u32 {
        match self {
            ElementType::F32 => 0,
            ElementType::F16 => 1,
            ElementType::I8 => 24,
            ElementType::I16 => 25,
            ElementType::I32 => 26,
            ElementType::I64 => 27,
            ElementType::F64 => 28,
            ElementType::BF16 => 30,
            ElementType::Quant(format) => format.ggml_type(),
        }
    }

    /// ggml's name for this type (`ggml_type_name`).
    pub const fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::BF16 => "bf16",
            ElementType::F64 => "f64",
            ElementType::I8 => "i8",
            ElementType::I16 => "i16",
            ElementType::I32 => "i32",
            ElementType::I64 => "i64",
            ElementType::Quant(format) => format.name(),
        }
    }

    /// Elements per block (`ggml_blck_size`): 1 for the plain types.
    pub const fn block_elems(self) -> usize {
        match self {
            ElementType::Quant(format) => format.block_elems(),
            _ => 1,
        }
    }

    /// Bytes per block (`ggml_type_size`): the element size for the plain
    /// types.
    pub const fn block_bytes(self) -> usize {
        match self {
            ElementType::I8 => 1,
            ElementType::F16 | ElementType::BF16 | ElementType::I16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
            ElementType::Quant(format) => format.block_bytes(),
        }
    }

    /// Whether ggml can convert this type's rows to f32 (its `to_float`):
    /// every type but the integers and the activation-only formats Q8_1 and
    /// Q8_K, which ggml only ever quantizes into.
    pub const fn dequantizes(self) -> bool {
        match self {
            ElementType::F32 | ElementType::F16 | ElementType::BF16 => true,
            ElementType::Quant(format) => !matches!(format, BlockFormat::Q8_1 | BlockFormat::Q8K),
            _ => false,
        }
    }

    /// Whether elements are stored in blocks of more than one
    /// (`ggml_is_quantized`).
    pub const fn is_block_format(self) -> bool {
        self.block_elems() > 1
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_ggml_number() {
        for elem in ElementType::PLAIN {
            assert_eq!(ElementType::from_ggml(elem.ggml_type()), Some(elem));
        }
    }

    #[test]
    fn ggml_numbers_follow_ggml_h() {
        assert_eq!(ElementType::from_ggml(0), Some(ElementType::F32));
        assert_eq!(ElementType::from_ggml(1), Some(ElementType::F16));
        assert_eq!(ElementType::from_ggml(26), Some(ElementType::I32));
        assert_eq!(ElementType::from_ggml(27), Some(ElementType::I64));
        assert_eq!(ElementType::from_ggml(30), Some(ElementType::BF16));
    }

    #[test]
    fn quantized_numbers_are_block_formats_and_unknown_ones_nothing() {
        assert_eq!(ElementType::from_ggml(8), Some(ElementType::Quant(BlockFormat::Q8_0)));
        assert_eq!(ElementType::from_ggml(12), Some(ElementType::Quant(BlockFormat::Q4K)));
        // 16 is IQ2_XXS (not implemented), 43 is GGML_TYPE_COUNT.
        assert_eq!(ElementType::from_ggml(16), None);
        assert_eq!(ElementType::from_ggml(43), None);
        assert_eq!(ElementType::from_ggml(u32::MAX), None);
    }

    #[test]
    fn every_block_format_round_trips_through_its_ggml_number() {
        for format in BlockFormat::ALL {
            let elem = ElementType::Quant(format);
            assert_eq!(ElementType::from_ggml(elem.ggml_type()), Some(elem));
            assert_eq!(elem.block_format(), Some(format));
            assert!(elem.is_block_format(), "{elem}");
        }
        let q4_k = ElementType::Quant(BlockFormat::Q4K);
        assert_eq!((q4_k.block_elems(), q4_k.block_bytes(), q4_k.name()), (256, 144, "q4_K"));
    }

    #[test]
    fn plain_types_are_blocks_of_one_element() {
        for elem in ElementType::PLAIN {
            assert_eq!(elem.block_elems(), 1, "{elem}");
            assert!(!elem.is_block_format());
        }
        assert_eq!(ElementType::BF16.block_bytes(), 2);
        assert_eq!(ElementType::I64.block_bytes(), 8);
    }
}
