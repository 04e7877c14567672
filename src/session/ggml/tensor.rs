//! Where a tensor's bytes are: its `rpc_tensor` translated to (buffer, offset, extent) and
//! checked for its whole extent, as far as its `ne`/`nb` strides reach, inside its buffer.

use super::GgmlSessionError;
use super::address::AddressSpace;
use super::op::type_traits;
use crate::endpoint::ggml::codec::RpcTensor;

/// A tensor's bytes inside one of the session's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The buffer's id (the client's `remote_ptr`).
    pub buffer: u64,
    /// Where the tensor's first byte is in the buffer.
    pub offset: u64,
    /// Bytes from the first to one past the last its strides reach (`ggml_nbytes`).
    pub extent: u64,
}

impl Placement {
    /// The buffer offsets `[offset + start, offset + start + len)`, if they lie within the
    /// tensor.
    pub fn subrange(
        &self,
        start: u64,
        len: u64,
        tensor: &RpcTensor,
    ) -> Result<(u64, u64), GgmlSessionError> {
        match start.checked_add(len) {
            Some(end) if end <= self.extent => Ok((self.offset + start, len)),
            _ => Err(GgmlSessionError::OutsideTensor {
                tensor: name(tensor),
                offset: start,
                len,
                extent: self.extent,
            }),
        }
    }
}

/// A tensor's name for messages: its own, or its id.
pub fn name(tensor: &RpcTensor) -> String {
    let name = tensor.name_str();
    if name.is_empty() { format!("#{:x}", tensor.id) } else { name.into_owned() }
}

/// Bytes from a tensor's first byte to one past the last its strides reach, as
/// `ggml_nbytes` computes them (0 for an empty tensor), for any ggml type. Refuses types
/// that are none, and a first dimension that is not a whole number of blocks.
pub fn extent(tensor: &RpcTensor) -> Result<u64, GgmlSessionError> {
    let traits = type_traits(tensor.ggml_type).ok_or_else(|| GgmlSessionError::UnknownType {
        tensor: name(tensor),
        type_id: tensor.ggml_type,
    })?;
    let ne = tensor.shape.map(u64::from);
    let nb = tensor.byte_strides.map(u64::from);
    let bad = |why: &str| GgmlSessionError::Shape { tensor: name(tensor), why: why.to_owned() };
    if !ne[0].is_multiple_of(traits.block_elems) {
        return Err(bad(&format!(
            "ne[0] {} is not a multiple of the {}-element blocks of {}",
            ne[0], traits.block_elems, traits.name
        )));
    }
    if ne.contains(&0) {
        return Ok(0);
    }
    let too_large = || bad("its strides reach past 2^64 bytes");
    let mut bytes = if traits.block_elems == 1 {
        traits.block_bytes
    } else {
        (ne[0] / traits.block_elems).checked_mul(nb[0]).ok_or_else(too_large)?
    };
    let first = if traits.block_elems == 1 { 0 } else { 1 };
    for dim in first..4 {
        let reach = (ne[dim] - 1).checked_mul(nb[dim]).ok_or_else(too_large)?;
        bytes = bytes.checked_add(reach).ok_or_else(too_large)?;
    }
    Ok(bytes)
}

/// Where `tensor`'s bytes are: its buffer must be one of the session's, its data address
/// inside that buffer and its whole extent too. A tensor with no buffer is refused (with a
/// data address: ggml's server once ran code through such a one).
pub fn place(tensor: &RpcTensor, space: &AddressSpace) -> Result<Placement, GgmlSessionError> {
    if tensor.buffer == 0 {
        return Err(if tensor.data != 0 {
            GgmlSessionError::DataWithoutBuffer { tensor: name(tensor), data: tensor.data }
        } else {
            GgmlSessionError::NoMemory { tensor: name(tensor) }
        });
    }
    let buffer = space.get(tensor.buffer)?;
    let extent = extent(tensor)?;
    let outside = || GgmlSessionError::OutsideBuffer {
        tensor: name(tensor),
        data: tensor.data,
        extent,
        buffer: tensor.buffer,
        base: buffer.base,
        size: buffer.size,
    };
    let offset = tensor.data.checked_sub(buffer.base).ok_or_else(outside)?;
    match offset.checked_add(extent) {
        // An empty tensor may sit at the buffer's very end.
        Some(end) if end <= buffer.size && offset <= buffer.size => {
            Ok(Placement { buffer: tensor.buffer, offset, extent })
        }
        _ => Err(outside()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(ggml_type: u32, ne: [u32; 4], nb: [u32; 4]) -> RpcTensor {
        RpcTensor { ggml_type, shape: ne, byte_strides: nb, ..RpcTensor::ABSENT }
    }

    #[test]
    fn extent_is_ggml_nbytes_for_plain_and_block_types() {
        assert_eq!(extent(&tensor(0, [4, 3, 1, 1], [4, 16, 48, 48])).unwrap(), 48);
        // A transposed view reaches as far as its strides do.
        assert_eq!(extent(&tensor(0, [3, 4, 1, 1], [16, 4, 48, 48])).unwrap(), 48);
        // q4_0: 64 elements = 2 blocks of 18 bytes per row, 3 rows.
        assert_eq!(extent(&tensor(2, [64, 3, 1, 1], [18, 36, 108, 108])).unwrap(), 108);
        assert_eq!(extent(&tensor(0, [4, 0, 1, 1], [4, 16, 16, 16])).unwrap(), 0);
    }

    #[test]
    fn extent_counts_the_strides_of_size_one_dimensions_not() {
        // A dimension of one element adds nothing, whatever its stride.
        assert_eq!(extent(&tensor(0, [2, 1, 1, 1], [4, u32::MAX, u32::MAX, 8])).unwrap(), 8);
    }

    #[test]
    fn types_that_are_none_and_partial_blocks_are_refused() {
        assert!(matches!(
            extent(&tensor(4, [1, 1, 1, 1], [0; 4])),
            Err(GgmlSessionError::UnknownType { type_id: 4, .. })
        ));
        assert!(extent(&tensor(2, [33, 1, 1, 1], [18, 36, 36, 36])).is_err());
    }

    #[test]
    fn strides_reaching_past_two_to_the_64_are_refused_not_wrapped() {
        // Each dimension reaches almost 2^64 bytes; four of them together do not fit.
        let huge = tensor(0, [u32::MAX; 4], [u32::MAX; 4]);
        assert!(extent(&huge).is_err());
    }
}
