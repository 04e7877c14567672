/// Bounds the decoder enforces on whatever a peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest `ndim` of a tensor record (DLPack tensors in practice stay far below it).
    pub max_ndim: usize,
    /// Largest number of values in one packed sequence.
    pub max_args: usize,
    /// Largest string (function names, keys, plans); bytes values are bounded by the packet.
    pub max_string_len: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_ndim: 32, max_args: 4096, max_string_len: 16 << 20 }
    }
}
