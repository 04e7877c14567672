//! The protocol-neutral half of every endpoint: the ring the peer's bytes arrive in, the ring
//! our bytes leave from, their counters, and the rule that stops a server from taking more
//! requests while its peer leaves replies unread. A protocol's endpoint owns one
//! [`EndpointCore`] and decides only what the bytes mean.

use std::io::{self, Read, Write};

use crate::ringbuf::RingBuffer;

/// How far ahead of the current step an endpoint reads, so pipelined requests arrive in few
/// reads without letting a peer park unbounded data in our buffer.
pub const READ_AHEAD: usize = 256 << 10;

/// The default output high-water mark (see [`EndpointCore::new`]).
pub const DEFAULT_OUTPUT_HIGH_WATER: usize = 1 << 20;

/// Bytes in, bytes out: the buffers and counters one connection's endpoint is made of.
#[derive(Debug)]
pub struct EndpointCore {
    reader: RingBuffer,
    writer: RingBuffer,
    bytes_in: u64,
    bytes_out: u64,
    output_high_water: usize,
}

impl EndpointCore {
    /// While more output than `output_high_water` waits to be sent, a server processes no
    /// new request and reads nothing more: a peer that does not read its replies cannot grow
    /// our buffers.
    pub fn new(output_high_water: usize) -> Self {
        EndpointCore {
            reader: RingBuffer::default(),
            writer: RingBuffer::default(),
            bytes_in: 0,
            bytes_out: 0,
            output_high_water,
        }
    }

    /// Bytes received from the peer so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes handed out for sending so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Whether output is waiting to be sent.
    pub fn wants_write(&self) -> bool {
        !self.writer.is_empty()
    }

    /// Whether more output waits than the high-water mark allows.
    pub fn output_backlogged(&self) -> bool {
        self.writer.len() > self.output_high_water
    }

    /// Whether a protocol whose current step still needs `needed` bytes should read now: it
    /// needs them, or it may read ahead, and a server's output is not backlogged.
    pub fn wants_read_for(&self, needed: usize, server: bool) -> bool {
        let room = needed > 0 || self.reader.len() < READ_AHEAD;
        room && !(server && self.output_backlogged())
    }

    /// Feeds bytes received from the peer.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
        self.bytes_in += bytes.len() as u64;
    }

    /// Performs one read from `src` into the input buffer (never less than the ring's free
    /// run). Returns what `src.read` returned.
    pub fn receive_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        let n = self.reader.fill_with(|free| src.read(free))?;
        self.bytes_in += n as u64;
        Ok(n)
    }

    /// Performs one write of pending output to `dst`. Returns what `dst.write` returned.
    pub fn send_to(&mut self, dst: &mut impl Write) -> io::Result<usize> {
        let n = self.writer.drain_with(|data| dst.write(data))?;
        self.bytes_out += n as u64;
        Ok(n)
    }

    /// Pending output, as at most two slices in order.
    pub fn output(&self) -> (&[u8], &[u8]) {
        self.writer.as_slices()
    }

    /// Marks the first `n` bytes of [`EndpointCore::output`] as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.writer.consume(n);
        self.bytes_out += n as u64;
    }

    /// Takes all pending output (for tests and simple drivers).
    pub fn take_output(&mut self) -> Vec<u8> {
        let (a, b) = self.writer.as_slices();
        let out = [a, b].concat();
        self.consume_output(out.len());
        out
    }

    /// Counts payload bytes the driver sent past the endpoint, straight from its memory.
    pub fn count_direct_output(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// Counts payload bytes the driver received past the endpoint, straight into its memory.
    pub fn count_direct_input(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    /// Bytes of memory the input and output buffers hold.
    pub fn buffer_capacity(&self) -> usize {
        self.reader.capacity() + self.writer.capacity()
    }

    /// Gives back the memory of buffers grown for large packets, if they are empty. Buffers
    /// are kept while traffic flows (a large copy arrives as a run of large packets, and
    /// regrowing for each would cost an allocation and its page faults every time), so a
    /// driver calls this once a connection has been quiet for a while.
    pub fn release_idle_buffers(&mut self) {
        self.reader.shrink_if_empty(READ_AHEAD);
        self.writer.shrink_if_empty(READ_AHEAD);
    }

    /// The bytes received and not yet consumed by the protocol.
    pub fn input(&self) -> &RingBuffer {
        &self.reader
    }

    /// The input ring, for the protocol's parser.
    pub fn input_mut(&mut self) -> &mut RingBuffer {
        &mut self.reader
    }

    /// The output ring, for the protocol's encoders.
    pub fn output_mut(&mut self) -> &mut RingBuffer {
        &mut self.writer
    }

    /// Both rings at once: a decoded request borrows the input while its reply is written.
    pub fn rings_mut(&mut self) -> (&mut RingBuffer, &mut RingBuffer) {
        (&mut self.reader, &mut self.writer)
    }
}

impl Default for EndpointCore {
    fn default() -> Self {
        EndpointCore::new(DEFAULT_OUTPUT_HIGH_WATER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_and_sent_bytes_are_counted() {
        let mut core = EndpointCore::default();
        core.receive(b"abc");
        core.output_mut().push(b"hello");
        let mut sink = Vec::new();
        assert_eq!(core.send_to(&mut sink).unwrap(), 5);
        assert_eq!((core.bytes_in(), core.bytes_out()), (3, 5));
        assert_eq!(sink, b"hello");
    }

    #[test]
    fn a_server_stops_reading_while_its_output_is_backlogged() {
        let mut core = EndpointCore::new(4);
        core.output_mut().push(b"12345");
        assert!(!core.wants_read_for(8, true));
        assert!(core.wants_read_for(8, false), "a client always reads its replies");
        core.consume_output(5);
        assert!(core.wants_read_for(8, true));
    }

    #[test]
    fn reading_ahead_stops_at_the_read_ahead_bound() {
        let mut core = EndpointCore::default();
        core.receive(&vec![0; READ_AHEAD]);
        assert!(!core.wants_read_for(0, true));
        assert!(core.wants_read_for(1, true), "bytes the current step needs are read");
    }
}
