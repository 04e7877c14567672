//! A bounds-checked little-endian reader over one payload, whose errors name the command.
//!
//! The TVM codec's `WireReader` does the same job but reports TVM's `DecodeError` and has no
//! read of a fixed-size array (ggml's layouts are full of them: `ne[4]`, `src[10]`,
//! `name[64]`), so this codec keeps its own few lines.

use super::{Command, GgmlDecodeError};

pub(super) struct PayloadReader<'a> {
    command: Command,
    rest: &'a [u8],
}

impl<'a> PayloadReader<'a> {
    pub(super) fn new(command: Command, payload: &'a [u8]) -> Self {
        PayloadReader { command, rest: payload }
    }

    /// Bytes not yet read.
    pub(super) fn remaining(&self) -> u64 {
        self.rest.len() as u64
    }

    fn truncated(&self, what: &'static str, needed: u64) -> GgmlDecodeError {
        GgmlDecodeError::Truncated {
            command: self.command,
            what,
            needed,
            available: self.remaining(),
        }
    }

    /// The next `N` bytes as an array.
    pub(super) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], GgmlDecodeError> {
        let (head, rest) =
            self.rest.split_first_chunk::<N>().ok_or_else(|| self.truncated(what, N as u64))?;
        self.rest = rest;
        Ok(*head)
    }

    /// Everything not yet read.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, GgmlDecodeError> {
        self.array::<1>(what).map(|[byte]| byte)
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, GgmlDecodeError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn i32(&mut self, what: &'static str) -> Result<i32, GgmlDecodeError> {
        self.array(what).map(i32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, GgmlDecodeError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// `N` consecutive `u32`s.
    pub(super) fn u32s<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u32; N], GgmlDecodeError> {
        let mut values = [0; N];
        for value in &mut values {
            *value = self.u32(what)?;
        }
        Ok(values)
    }

    /// `N` consecutive `i32`s.
    pub(super) fn i32s<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[i32; N], GgmlDecodeError> {
        let mut values = [0; N];
        for value in &mut values {
            *value = self.i32(what)?;
        }
        Ok(values)
    }

    /// `N` consecutive `u64`s.
    pub(super) fn u64s<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u64; N], GgmlDecodeError> {
        let mut values = [0; N];
        for value in &mut values {
            *value = self.u64(what)?;
        }
        Ok(values)
    }

    /// Fails unless every byte has been read.
    pub(super) fn finish(&self) -> Result<(), GgmlDecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(GgmlDecodeError::TrailingBytes { command: self.command, count }),
        }
    }
}
