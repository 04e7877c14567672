//! The element types of ggml tensors that the strided ops understand.
//!
//! Every type is described as a *block*: `block_elems` elements stored in
//! `block_bytes` bytes. The plain types are blocks of one element; ggml's
//! quantized formats (Q8_0: 32 elements in 34 bytes, ...) are the same
//! description with larger blocks, so layouts, extents and row access are
//! written once for both. A quantized format joins as another variant whose
//! rows convert through `row_to_f32` / `row_from_f32` (`convert`), which is
//! how every op that accepts "any float type" reads and writes rows.

use std::fmt;

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
}

impl ElementType {
    /// Every type, in ggml's numbering order.
    pub const ALL: [ElementType; 8] = [
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
        Self::ALL.into_iter().find(|elem| elem.ggml_type() == type_id)
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
        }
    }

    /// Elements per block (`ggml_blck_size`): 1 for the plain types.
    pub const fn block_elems(self) -> usize {
        1
    }

    /// Bytes per block (`ggml_type_size`): the element size for the plain
    /// types.
    pub const fn block_bytes(self) -> usize {
        match self {
            ElementType::I8 => 1,
            ElementType::F16 | ElementType::BF16 | ElementType::I16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
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
        for elem in ElementType::ALL {
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
    fn quantized_and_unknown_numbers_are_not_plain_types() {
        // 8 is Q8_0, 43 is GGML_TYPE_COUNT.
        assert_eq!(ElementType::from_ggml(8), None);
        assert_eq!(ElementType::from_ggml(43), None);
        assert_eq!(ElementType::from_ggml(u32::MAX), None);
    }

    #[test]
    fn plain_types_are_blocks_of_one_element() {
        for elem in ElementType::ALL {
            assert_eq!(elem.block_elems(), 1, "{elem}");
            assert!(!elem.is_block_format());
        }
        assert_eq!(ElementType::BF16.block_bytes(), 2);
        assert_eq!(ElementType::I64.block_bytes(), 8);
    }
}
