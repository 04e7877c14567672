//! A growable byte ring: every connection reads into one and writes out of another.
//!
//! The ring owns bytes and nothing else. It knows nothing of packets or sockets: a socket
//! `recv` is a callback handed the free space ([`RingBuffer::fill_with`]), a socket `send` is a
//! callback handed the stored bytes ([`RingBuffer::drain_with`]). Parsers ask for the first `n`
//! stored bytes as one slice ([`RingBuffer::contiguous`]); writers reserve `n` contiguous free
//! bytes, fill them in place and commit ([`RingBuffer::reserve_contiguous`]), so a large payload
//! is copied once, not staged twice.

#[cfg(test)]
mod tests;

use std::io;

/// Capacity a ring starts with and shrinks back to once a large packet has passed through.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// A growable circular byte buffer.
#[derive(Debug)]
pub struct RingBuffer {
    buf: Vec<u8>,
    /// Index of the first stored byte.
    head: usize,
    /// Number of stored bytes.
    len: usize,
}

impl Default for RingBuffer {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RingBuffer {
    /// A ring that holds `capacity` bytes before it has to grow.
    pub fn with_capacity(capacity: usize) -> Self {
        RingBuffer { buf: vec![0; capacity], head: 0, len: 0 }
    }

    /// Bytes stored and not yet consumed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the ring holds before it has to grow.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Free bytes before the ring has to grow.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Index one past the last stored byte (where the next write lands).
    fn tail(&self) -> usize {
        let cap = self.capacity();
        if cap == 0 { 0 } else { (self.head + self.len) % cap }
    }

    /// The stored bytes as at most two slices, in order.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        let cap = self.capacity();
        if self.head + self.len <= cap {
            (&self.buf[self.head..self.head + self.len], &[])
        } else {
            let first = &self.buf[self.head..];
            let second = &self.buf[..self.len - first.len()];
            (first, second)
        }
    }

    /// Makes room for at least `additional` more bytes, growing if needed.
    pub fn reserve(&mut self, additional: usize) {
        if self.free() >= additional {
            return;
        }
        let wanted = self.len.checked_add(additional).expect("ring buffer size overflows usize");
        let new_capacity = wanted.max(self.capacity().saturating_mul(2)).max(DEFAULT_CAPACITY);
        self.relocate(new_capacity);
    }

    /// Moves the stored bytes to the start of a buffer of `new_capacity` bytes.
    fn relocate(&mut self, new_capacity: usize) {
        debug_assert!(new_capacity >= self.len);
        let mut buf = vec![0; new_capacity];
        let (a, b) = self.as_slices();
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.buf = buf;
        self.head = 0;
    }

    /// Moves the stored bytes to the start of the current buffer.
    fn compact(&mut self) {
        if self.head == 0 {
            return;
        }
        if self.head + self.len <= self.capacity() {
            self.buf.copy_within(self.head..self.head + self.len, 0);
        } else {
            // Wrapped: one rotation puts the first stored byte at index 0.
            self.buf.rotate_left(self.head);
        }
        self.head = 0;
    }

    /// Arranges that the first `n` bytes, those stored now and those written next, lie in one
    /// contiguous run, growing the ring if `n` exceeds its capacity. Cheap when little is stored,
    /// which is when a parser calls it: right after reading a packet's length.
    pub fn reserve_contiguous(&mut self, n: usize) {
        if n > self.capacity() {
            self.relocate(n.max(self.len));
        } else if self.head + n > self.capacity() {
            self.compact();
        }
    }

    /// The first `n` stored bytes as one slice, rotating the ring if they wrap.
    /// Returns `None` when fewer than `n` bytes are stored.
    pub fn contiguous(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.len {
            return None;
        }
        if self.head + n > self.capacity() {
            self.compact();
        }
        Some(&self.buf[self.head..self.head + n])
    }

    /// Copies the first `dst.len()` stored bytes into `dst` without consuming them.
    /// Returns `false` (and copies nothing) when fewer are stored.
    pub fn peek(&self, dst: &mut [u8]) -> bool {
        if dst.len() > self.len {
            return false;
        }
        let (a, b) = self.as_slices();
        let from_a = dst.len().min(a.len());
        dst[..from_a].copy_from_slice(&a[..from_a]);
        let rest = dst.len() - from_a;
        dst[from_a..].copy_from_slice(&b[..rest]);
        true
    }

    /// Drops the first `n` stored bytes. Panics if fewer are stored: that is a caller bug,
    /// never a consequence of input.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len, "consume({n}) with only {} bytes stored", self.len);
        self.len -= n;
        self.head = if self.len == 0 { 0 } else { (self.head + n) % self.capacity() };
    }

    /// Copies the first `dst.len()` stored bytes into `dst` and consumes them.
    pub fn read_exact(&mut self, dst: &mut [u8]) -> bool {
        if !self.peek(dst) {
            return false;
        }
        self.consume(dst.len());
        true
    }

    /// Appends `src`, growing as needed.
    pub fn push(&mut self, src: &[u8]) {
        self.reserve(src.len());
        let cap = self.capacity();
        let tail = self.tail();
        let first = src.len().min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&src[..first]);
        self.buf[..src.len() - first].copy_from_slice(&src[first..]);
        self.len += src.len();
    }

    /// Hands `n` contiguous free bytes to `fill`, then stores the first `k` of them, where `k`
    /// is what `fill` returns (at most `n`). The bytes are written in place: no staging copy.
    pub fn write_in_place<E>(
        &mut self,
        n: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        self.reserve(n);
        let tail = self.tail();
        let contiguous_free = if self.len > 0 && tail <= self.head {
            self.head - tail
        } else {
            self.capacity() - tail
        };
        if contiguous_free < n {
            // Not wrapped, but the room is split between the end and the start: move the
            // stored bytes to the start so the free space is one run.
            self.compact();
        }
        let tail = self.tail();
        let written = fill(&mut self.buf[tail..tail + n])?;
        assert!(written <= n, "fill reported {written} bytes written into {n}");
        self.len += written;
        Ok(written)
    }

    /// Hands the first contiguous run of free space to `reader` (e.g. a socket's `recv`) and
    /// stores what it wrote. Grows first if the ring is full. Returns the bytes stored.
    pub fn fill_with(
        &mut self,
        reader: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.free() == 0 {
            self.reserve(DEFAULT_CAPACITY);
        }
        if self.len == 0 {
            self.head = 0;
        }
        let tail = self.tail();
        let end = if self.len > 0 && tail <= self.head { self.head } else { self.capacity() };
        let written = reader(&mut self.buf[tail..end])?;
        assert!(written <= end - tail, "reader reported more bytes than it was given");
        self.len += written;
        Ok(written)
    }

    /// Hands the first contiguous run of stored bytes to `writer` (e.g. a socket's `send`) and
    /// consumes what it took. Returns the bytes consumed.
    pub fn drain_with(
        &mut self,
        writer: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let (first, _) = self.as_slices();
        if first.is_empty() {
            return Ok(0);
        }
        let taken = writer(first)?;
        assert!(taken <= first.len(), "writer reported more bytes than it was given");
        self.consume(taken);
        Ok(taken)
    }

    /// Gives memory back after a large packet has passed: an empty ring larger than
    /// `keep` shrinks to [`DEFAULT_CAPACITY`].
    pub fn shrink_if_empty(&mut self, keep: usize) {
        if self.len == 0 && self.capacity() > keep.max(DEFAULT_CAPACITY) {
            self.buf = vec![0; DEFAULT_CAPACITY];
            self.head = 0;
        }
    }
}
