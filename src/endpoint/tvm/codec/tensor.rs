//! DLPack scalar descriptors and the tensor record (a DLTensor without strides).
//!
//! Layout of a record: `u64 data` (a handle the server handed out, never dereferenced by the
//! client), `i32 device_type`, `i32 device_id`, `i32 ndim`, dtype (`u8 code, u8 bits,
//! u16 lanes`), `ndim x i64 shape`, `u64 byte_offset`.

use std::fmt;

use super::{DecodeError, DecodeLimits, WireReader, WireSink};

/// A DLPack data type: `code` 0 int, 1 uint, 2 float, 3 opaque handle, 4 bfloat, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

impl DataType {
    pub const INT: u8 = 0;
    pub const UINT: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const HANDLE: u8 = 3;
    pub const BFLOAT: u8 = 4;

    pub const fn new(code: u8, bits: u8, lanes: u16) -> Self {
        DataType { code, bits, lanes }
    }

    pub const FLOAT32: DataType = DataType::new(Self::FLOAT, 32, 1);

    /// Bytes one element occupies (all lanes), rounded up to whole bytes.
    pub fn element_bytes(&self) -> u64 {
        (u64::from(self.bits) * u64::from(self.lanes)).div_ceil(8)
    }

    pub(crate) fn decode(r: &mut WireReader<'_>) -> Result<Self, DecodeError> {
        Ok(DataType {
            code: r.u8("dtype code")?,
            bits: r.u8("dtype bits")?,
            lanes: r.u16("dtype lanes")?,
        })
    }

    pub(crate) fn encode(&self, w: &mut impl WireSink) {
        w.put_u8(self.code);
        w.put_u8(self.bits);
        w.put_u16(self.lanes);
    }
}

impl fmt::Display for DataType {
    /// TVM's spelling: `float32`, `int8`, `uint1` (bool), `float16x4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            Self::INT => "int",
            Self::UINT => "uint",
            Self::FLOAT => "float",
            Self::HANDLE => "handle",
            Self::BFLOAT => "bfloat",
            _ => {
                return write!(
                    f,
                    "dtype(code={}, bits={}, lanes={})",
                    self.code, self.bits, self.lanes
                );
            }
        };
        write!(f, "{name}{}", self.bits)?;
        if self.lanes != 1 {
            write!(f, "x{}", self.lanes)?;
        }
        Ok(())
    }
}

/// A DLPack device: `device_type` 1 is the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    pub device_type: i32,
    pub device_id: i32,
}

impl Device {
    pub const CPU_TYPE: i32 = 1;

    pub const fn cpu(device_id: i32) -> Self {
        Device { device_type: Self::CPU_TYPE, device_id }
    }

    pub(crate) fn decode(r: &mut WireReader<'_>) -> Result<Self, DecodeError> {
        Ok(Device { device_type: r.i32("device type")?, device_id: r.i32("device id")? })
    }

    pub(crate) fn encode(&self, w: &mut impl WireSink) {
        w.put_i32(self.device_type);
        w.put_i32(self.device_id);
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.device_type {
            1 => "cpu",
            2 => "cuda",
            3 => "cuda_host",
            4 => "opencl",
            7 => "vulkan",
            8 => "metal",
            10 => "rocm",
            _ => return write!(f, "device({}, {})", self.device_type, self.device_id),
        };
        write!(f, "{name}:{}", self.device_id)
    }
}

/// A compact DLTensor as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRecord {
    /// The data handle the server handed out (0 for "not allocated yet").
    pub data: u64,
    pub device: Device,
    pub dtype: DataType,
    pub shape: Vec<i64>,
    pub byte_offset: u64,
}

impl TensorRecord {
    /// A compact tensor on CPU 0 with no data yet: what a client sends to have it allocated
    /// (`DevAllocDataWithScope`), then fills in with the handle it gets back.
    pub fn unallocated_cpu(dtype: DataType, shape: &[i64]) -> Self {
        TensorRecord {
            data: 0,
            device: Device::cpu(0),
            dtype,
            shape: shape.to_vec(),
            byte_offset: 0,
        }
    }

    /// Number of elements (1 for a 0-d tensor). Checked at decode time not to overflow.
    pub fn num_elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    /// Bytes the tensor's elements occupy; sub-byte types take a whole byte per element, as in
    /// TVM's `GetDataSize`. Checked at decode time not to overflow.
    pub fn nbytes(&self) -> u64 {
        checked_nbytes(&self.shape, self.dtype).unwrap_or(u64::MAX)
    }

    pub(crate) fn decode(
        r: &mut WireReader<'_>,
        limits: &DecodeLimits,
    ) -> Result<Self, DecodeError> {
        let data = r.u64("tensor data handle")?;
        let device = Device::decode(r)?;
        let ndim = r.i32("tensor ndim")?;
        if ndim < 0 || ndim as usize > limits.max_ndim {
            return Err(DecodeError::NdimOutOfRange { ndim, limit: limits.max_ndim });
        }
        let dtype = DataType::decode(r)?;
        let shape_bytes = r.bytes(ndim as u64 * 8, "tensor shape")?;
        let shape: Vec<i64> = shape_bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect();
        let byte_offset = r.u64("tensor byte offset")?;
        if let Some((axis, &value)) = shape.iter().enumerate().find(|(_, d)| **d < 0) {
            return Err(DecodeError::NegativeDimension { shape, axis, value });
        }
        if dtype.lanes == 0 {
            return Err(DecodeError::ZeroLanes { dtype: dtype.to_string() });
        }
        if checked_nbytes(&shape, dtype).is_none() {
            return Err(DecodeError::ShapeOverflow { shape, dtype: dtype.to_string() });
        }
        Ok(TensorRecord { data, device, dtype, shape, byte_offset })
    }

    pub(crate) fn encode(&self, w: &mut impl WireSink) {
        w.put_u64(self.data);
        self.device.encode(w);
        w.put_i32(self.shape.len() as i32);
        self.dtype.encode(w);
        for &d in &self.shape {
            w.put_i64(d);
        }
        w.put_u64(self.byte_offset);
    }
}

/// Bytes of a compact tensor, or `None` if the count does not fit in 63 bits (so offsets
/// added to it stay representable) or a dimension is negative.
pub fn checked_nbytes(shape: &[i64], dtype: DataType) -> Option<u64> {
    let mut elements: u64 = 1;
    for &d in shape {
        elements = elements.checked_mul(u64::try_from(d).ok()?)?;
    }
    let bytes = elements.checked_mul(dtype.element_bytes())?;
    (bytes <= i64::MAX as u64).then_some(bytes)
}

/// TVM's `DeviceAttrKind`: which attribute of a device `DevGetAttr` asks for. Any `i64` may
/// come over the wire; the named ones are TVM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceAttrKind(pub i64);

impl DeviceAttrKind {
    pub const EXIST: Self = Self(0);
    pub const MAX_THREADS_PER_BLOCK: Self = Self(1);
    pub const WARP_SIZE: Self = Self(2);
    pub const MAX_SHARED_MEMORY_PER_BLOCK: Self = Self(3);
    pub const COMPUTE_VERSION: Self = Self(4);
    pub const DEVICE_NAME: Self = Self(5);
    pub const MAX_CLOCK_RATE: Self = Self(6);
    pub const MULTI_PROCESSOR_COUNT: Self = Self(7);
    pub const MAX_THREAD_DIMENSIONS: Self = Self(8);
    pub const MAX_REGISTERS_PER_BLOCK: Self = Self(9);
    pub const GCN_ARCH: Self = Self(10);
    pub const API_VERSION: Self = Self(11);
    pub const DRIVER_VERSION: Self = Self(12);
    pub const L2_CACHE_SIZE_BYTES: Self = Self(13);
    pub const TOTAL_GLOBAL_MEMORY: Self = Self(14);
    pub const AVAILABLE_GLOBAL_MEMORY: Self = Self(15);
    pub const IMAGE_PITCH_ALIGNMENT: Self = Self(16);
}
