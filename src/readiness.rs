//! Reading a non-blocking stream socket under edge-triggered readiness (mio's), with no more
//! read calls than needed: shared by the server's loop and the client's channel.

use std::io;

/// A reader that notes whether its last read came back short. A stream socket that returns
/// less than the space offered held no more data at that moment, and with edge-triggered
/// readiness whatever arrives later brings a new event; so after a short read a driver stops
/// reading without the extra call that would only return WouldBlock (one syscall of about
/// three per echo call). The exception is an end of stream that arrived with the data: its
/// event has already been reported, so a driver that saw it reads on until the read returns 0.
pub(crate) struct ShortReadProbe<'a, R> {
    inner: &'a mut R,
    short: bool,
}

impl<'a, R> ShortReadProbe<'a, R> {
    pub(crate) fn new(inner: &'a mut R) -> Self {
        ShortReadProbe { inner, short: false }
    }

    /// Whether the last read returned less than the space it was given.
    pub(crate) fn was_short(&self) -> bool {
        self.short
    }
}

impl<R: io::Read> io::Read for ShortReadProbe<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::ShortReadProbe;

    #[test]
    fn a_read_that_fills_the_buffer_is_not_short() {
        let mut source: &[u8] = b"abcdef";
        let mut probe = ShortReadProbe::new(&mut source);
        let mut buf = [0u8; 4];
        assert_eq!(probe.read(&mut buf).unwrap(), 4);
        assert!(!probe.was_short());
    }

    #[test]
    fn a_read_of_less_than_the_buffer_is_short() {
        let mut source: &[u8] = b"ab";
        let mut probe = ShortReadProbe::new(&mut source);
        let mut buf = [0u8; 4];
        assert_eq!(probe.read(&mut buf).unwrap(), 2);
        assert!(probe.was_short());
    }
}
