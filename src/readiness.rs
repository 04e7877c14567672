//! Reading and writing a non-blocking stream socket under edge-triggered readiness (mio's),
//! with no more calls than needed: the one mechanism behind the server's loop, the client's
//! channel and the tracker link.
//!
//! A stream socket that returns less than the space offered held no more data at that moment,
//! and with edge-triggered readiness whatever arrives later brings a new event; so after a
//! short read a driver waits for the poller instead of making the extra call that would only
//! return WouldBlock (one syscall of about three per echo call). The exception is an end of
//! stream that arrived with the data: its event has already been reported and will not come
//! again, so reads go on until one returns it.

use std::io::{self, ErrorKind, Read, Write};

/// What a driver knows about whether its socket has anything to read.
#[derive(Debug)]
pub(crate) struct ReadReadiness {
    /// A read may find data (or an error): false after a short read or WouldBlock, until the
    /// poller reports the socket again.
    readable: bool,
    /// The poller has reported the end of the stream.
    end_reported: bool,
    /// A read returned the end of the stream: nothing more will ever arrive.
    at_end: bool,
}

impl ReadReadiness {
    /// A new socket: it may already hold data.
    pub(crate) fn new() -> Self {
        ReadReadiness { readable: true, end_reported: false, at_end: false }
    }

    /// Whether a read is worth making now.
    pub(crate) fn may_read(&self) -> bool {
        self.readable && !self.at_end
    }

    /// Whether a read has returned the end of the stream.
    pub(crate) fn at_end(&self) -> bool {
        self.at_end
    }

    /// Takes in what the poller reported for this socket. An error shows up on the next read.
    pub(crate) fn on_event(&mut self, event: &mio::event::Event) {
        self.note_event(event.is_readable(), event.is_read_closed(), event.is_error());
    }

    fn note_event(&mut self, readable: bool, read_closed: bool, error: bool) {
        self.readable |= readable || read_closed || error;
        self.end_reported |= read_closed;
    }

    /// Lets the next read go ahead whatever the poller said: for a driver that spins on the
    /// socket itself, or one that no longer waits for events.
    pub(crate) fn assume_readable(&mut self) {
        self.readable = true;
    }

    /// Makes one read from `socket` through `read` (handed the socket, which it reads once)
    /// and notes what the read showed. Returns what `read` returned.
    pub(crate) fn read<S: Read>(
        &mut self,
        socket: &mut S,
        read: impl FnOnce(&mut ShortReadProbe<'_, S>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut probe = ShortReadProbe { inner: socket, short: false };
        let result = read(&mut probe);
        match &result {
            Ok(0) => self.at_end = true,
            Ok(_) => self.readable = !probe.short || self.end_reported,
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.readable = false,
            Err(_) => {}
        }
        result
    }
}

/// A socket whose reads note whether they came back short (less than the space offered).
pub(crate) struct ShortReadProbe<'a, S> {
    inner: &'a mut S,
    short: bool,
}

impl<S: Read> Read for ShortReadProbe<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// Output waiting for a socket: what [`WriteReadiness::flush`] drains.
pub(crate) trait PendingOutput {
    /// The next bytes to send (empty when nothing waits).
    fn pending(&self) -> &[u8];
    /// Marks the first `n` pending bytes as sent.
    fn sent(&mut self, n: usize);
}

impl PendingOutput for crate::endpoint::EndpointCore {
    fn pending(&self) -> &[u8] {
        self.output().0
    }

    fn sent(&mut self, n: usize) {
        self.consume_output(n);
    }
}

/// What a driver knows about whether its socket takes more output.
#[derive(Debug)]
pub(crate) struct WriteReadiness {
    writable: bool,
}

impl WriteReadiness {
    /// A new socket: it may take output at once.
    pub(crate) fn new() -> Self {
        WriteReadiness { writable: true }
    }

    /// Takes in what the poller reported for this socket.
    pub(crate) fn on_event(&mut self, event: &mio::event::Event) {
        self.writable |= event.is_writable();
    }

    /// Lets the next write go ahead whatever the poller said.
    pub(crate) fn assume_writable(&mut self) {
        self.writable = true;
    }

    /// Writes `output` to `socket` until it is all out or the socket would block (then waits
    /// for the poller's next writable event). Returns whether anything went out; a socket
    /// that takes nothing is an error of kind `WriteZero`.
    pub(crate) fn flush(
        &mut self,
        socket: &mut impl Write,
        output: &mut impl PendingOutput,
    ) -> io::Result<bool> {
        let mut wrote = false;
        while self.writable && !output.pending().is_empty() {
            match socket.write(output.pending()) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    output.sent(n);
                    wrote = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(wrote)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, ErrorKind, Read, Write};

    use super::{PendingOutput, ReadReadiness, WriteReadiness};

    /// A socket that hands out the queued results of its reads, one per call.
    struct Scripted(Vec<io::Result<usize>>);

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.remove(0)?;
            buf[..n].fill(7);
            Ok(n)
        }
    }

    fn read_once(readiness: &mut ReadReadiness, socket: &mut Scripted) -> io::Result<usize> {
        let mut buf = [0u8; 8];
        readiness.read(socket, |probe| probe.read(&mut buf))
    }

    #[test]
    fn a_read_that_fills_the_buffer_leaves_the_socket_readable() {
        let mut readiness = ReadReadiness::new();
        read_once(&mut readiness, &mut Scripted(vec![Ok(8)])).unwrap();
        assert!(readiness.may_read());
    }

    #[test]
    fn a_short_read_waits_for_the_poller() {
        let mut readiness = ReadReadiness::new();
        read_once(&mut readiness, &mut Scripted(vec![Ok(3)])).unwrap();
        assert!(!readiness.may_read());
        readiness.note_event(true, false, false);
        assert!(readiness.may_read());
    }

    #[test]
    fn would_block_waits_for_the_poller() {
        let mut readiness = ReadReadiness::new();
        let err = read_once(&mut readiness, &mut Scripted(vec![Err(ErrorKind::WouldBlock.into())]));
        assert_eq!(err.unwrap_err().kind(), ErrorKind::WouldBlock);
        assert!(!readiness.may_read());
    }

    #[test]
    fn after_a_reported_end_of_stream_a_short_read_reads_on() {
        let mut readiness = ReadReadiness::new();
        readiness.note_event(true, true, false);
        let mut socket = Scripted(vec![Ok(3), Ok(0)]);
        read_once(&mut readiness, &mut socket).unwrap();
        assert!(readiness.may_read(), "the end of the stream has no event left to come");
        assert_eq!(read_once(&mut readiness, &mut socket).unwrap(), 0);
        assert!(readiness.at_end());
        assert!(!readiness.may_read());
    }

    #[test]
    fn an_error_event_lets_the_next_read_report_it() {
        let mut readiness = ReadReadiness::new();
        read_once(&mut readiness, &mut Scripted(vec![Ok(3)])).unwrap();
        readiness.note_event(false, false, true);
        assert!(readiness.may_read());
    }

    #[test]
    fn a_spinning_driver_reads_whatever_the_poller_said() {
        let mut readiness = ReadReadiness::new();
        read_once(&mut readiness, &mut Scripted(vec![Ok(3)])).unwrap();
        readiness.assume_readable();
        assert!(readiness.may_read());
    }

    /// A socket that takes at most the queued number of bytes per write call.
    struct Accepting(Vec<io::Result<usize>>, Vec<u8>);

    impl Write for Accepting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.0.remove(0)?.min(buf.len());
            self.1.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Queue(Vec<u8>);

    impl PendingOutput for Queue {
        fn pending(&self) -> &[u8] {
            &self.0
        }

        fn sent(&mut self, n: usize) {
            self.0.drain(..n);
        }
    }

    #[test]
    fn flush_writes_until_the_output_is_out() {
        let mut socket = Accepting(vec![Ok(2), Ok(2)], Vec::new());
        let mut output = Queue(b"abcd".to_vec());
        assert!(WriteReadiness::new().flush(&mut socket, &mut output).unwrap());
        assert_eq!(socket.1, b"abcd");
        assert!(output.0.is_empty());
    }

    #[test]
    fn flush_stops_at_would_block_and_waits_for_the_poller() {
        let mut socket = Accepting(vec![Ok(1), Err(ErrorKind::WouldBlock.into())], Vec::new());
        let mut output = Queue(b"abcd".to_vec());
        let mut writing = WriteReadiness::new();
        assert!(writing.flush(&mut socket, &mut output).unwrap());
        assert_eq!(output.0, b"bcd");
        assert!(!writing.flush(&mut socket, &mut output).unwrap(), "no write until an event");
        writing.assume_writable();
        socket.0.push(Ok(3));
        assert!(writing.flush(&mut socket, &mut output).unwrap());
        assert!(output.0.is_empty());
    }

    #[test]
    fn a_socket_that_takes_nothing_is_an_error() {
        let mut socket = Accepting(vec![Ok(0)], Vec::new());
        let err = WriteReadiness::new().flush(&mut socket, &mut Queue(b"x".to_vec())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WriteZero);
    }
}
