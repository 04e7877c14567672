//! Little-endian primitives: a bounds-checked reader over a packet body, and the sink
//! trait encoders write into (a `Vec<u8>` or a connection's [`RingBuffer`]).

use byteorder::{ByteOrder, LittleEndian};

use super::DecodeError;
use crate::ringbuf::RingBuffer;

/// Reads little-endian fields from a byte slice; every read checks what remains.
#[derive(Debug, Clone)]
pub struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> WireReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        WireReader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes, or reports which field was cut short.
    pub fn bytes(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining() as u64;
        if n > available {
            return Err(DecodeError::Truncated { what, needed: n, available });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// Takes everything that remains.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos;
        self.pos = self.buf.len();
        &self.buf[start..]
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(LittleEndian::read_u16(self.bytes(2, what)?))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(LittleEndian::read_i32(self.bytes(4, what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(LittleEndian::read_u32(self.bytes(4, what)?))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(LittleEndian::read_i64(self.bytes(8, what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(LittleEndian::read_u64(self.bytes(8, what)?))
    }

    pub fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        Ok(LittleEndian::read_f64(self.bytes(8, what)?))
    }

    /// Fails unless every byte has been read: a packet longer than its contents is malformed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Where encoders write. Implemented for `Vec<u8>` and [`RingBuffer`].
pub trait WireSink {
    fn put(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn put_u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn put_i32(&mut self, v: i32) {
        self.put(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.put(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn put_f64(&mut self, v: f64) {
        self.put(&v.to_le_bytes());
    }
}

impl WireSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl WireSink for RingBuffer {
    fn put(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }
}

/// A sink that only counts, so `encoded_len` can never disagree with `encode`.
#[derive(Debug, Default)]
pub struct LenCounter(pub u64);

impl WireSink for LenCounter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }
}
