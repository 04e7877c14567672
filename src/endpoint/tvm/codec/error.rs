use thiserror::Error;

/// Why a packet (or a handshake field) could not be decoded. The message is what the peer
/// reads in the Exception packet, so it names the offending field and value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("packet truncated: {what} needs {needed} bytes but only {available} remain")]
    Truncated { what: &'static str, needed: u64, available: u64 },
    #[error("packet has {count} unread bytes after its contents")]
    TrailingBytes { count: usize },
    #[error("unknown RPC code {0}")]
    UnknownCode(i32),
    #[error("argument {position} has unknown type index {index}")]
    UnknownTypeIndex { position: usize, index: i32 },
    #[error("argument {position} has type index {index} ({name}), which cannot be sent over RPC")]
    UnsupportedTypeIndex { position: usize, index: i32, name: &'static str },
    #[error("argument {position}: object type index {outer} carries inner type index {inner}")]
    ObjectTypeMismatch { position: usize, outer: i32, inner: u32 },
    #[error("negative argument count {0}")]
    NegativeArgCount(i32),
    #[error("{count} arguments exceed the limit of {limit}")]
    TooManyArgs { count: usize, limit: usize },
    #[error("ndim {ndim} is outside the allowed range 0..={limit}")]
    NdimOutOfRange { ndim: i32, limit: usize },
    #[error("shape {shape:?} has negative dimension {value} at axis {axis}")]
    NegativeDimension { shape: Vec<i64>, axis: usize, value: i64 },
    #[error("shape {shape:?} of dtype {dtype} holds more bytes than fit in 64 bits")]
    ShapeOverflow { shape: Vec<i64>, dtype: String },
    #[error("dtype {dtype} has zero lanes")]
    ZeroLanes { dtype: String },
    #[error("string of {len} bytes exceeds the limit of {limit}")]
    StringTooLong { len: u64, limit: u64 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{call} expects {expected}, got {got}")]
    BadArguments { call: &'static str, expected: &'static str, got: String },
    #[error("CopyToRemote declares {declared} bytes but carries {carried}")]
    CopyPayloadLength { declared: u64, carried: u64 },
    #[error("unexpected {code} packet: {why}")]
    UnexpectedPacket { code: &'static str, why: &'static str },
}
