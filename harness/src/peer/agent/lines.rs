//! Reading a stream as lines of at most a given length, without ever holding more: a
//! line past the limit is read to its end and dropped, never buffered whole.

use std::io::{self, BufRead};

/// What the next line of input was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line, without its `\n` (and without a `\r` before it).
    Line(Vec<u8>),
    /// A line longer than the limit, dropped; `bytes` is its length.
    TooLong {
        /// Its length, newline excluded.
        bytes: usize,
    },
    /// The input ended at a line boundary.
    Eof,
    /// The input ended in the middle of a line of `bytes` bytes.
    Truncated {
        /// Bytes of the unfinished line.
        bytes: usize,
    },
}

/// Lines of at most `max` bytes from `inner`.
pub struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    /// Reads lines of at most `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, max }
    }

    /// The next line; memory held is at most `max` bytes plus the reader's buffer.
    ///
    /// # Errors
    /// The underlying reader's errors (`Interrupted` is retried).
    pub fn next_line(&mut self) -> io::Result<LineEvent> {
        let mut line = Vec::new();
        let mut length = 0usize;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(if length == 0 { LineEvent::Eof } else { LineEvent::Truncated { bytes: length } });
            }
            let (chunk, found_newline) = match memchr_newline(available) {
                Some(at) => (&available[..at], true),
                None => (available, false),
            };
            if length + chunk.len() <= self.max {
                line.extend_from_slice(chunk);
            } else {
                // Past the limit: keep counting, keep nothing.
                line = Vec::new();
            }
            length += chunk.len();
            let consumed = chunk.len() + usize::from(found_newline);
            self.inner.consume(consumed);
            if found_newline {
                if length > self.max {
                    return Ok(LineEvent::TooLong { bytes: length });
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(LineEvent::Line(line));
            }
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[u8], max: usize) -> Vec<LineEvent> {
        // A tiny buffer, so lines span many fill_buf calls.
        let mut reader = LineReader::new(io::BufReader::with_capacity(3, input), max);
        let mut out = Vec::new();
        for _ in 0..100 {
            let event = reader.next_line().unwrap();
            let end = matches!(event, LineEvent::Eof | LineEvent::Truncated { .. });
            out.push(event);
            if end {
                break;
            }
        }
        out
    }

    #[test]
    fn lines_split_at_newlines_whatever_the_buffering() {
        assert_eq!(
            events(b"ab\r\n\ncdef\n", 10),
            [
                LineEvent::Line(b"ab".to_vec()),
                LineEvent::Line(vec![]),
                LineEvent::Line(b"cdef".to_vec()),
                LineEvent::Eof
            ]
        );
    }

    #[test]
    fn a_long_line_is_dropped_and_the_next_one_read() {
        let mut input = vec![b'x'; 25];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(
            events(&input, 10),
            [LineEvent::TooLong { bytes: 25 }, LineEvent::Line(b"ok".to_vec()), LineEvent::Eof]
        );
        // Exactly at the limit is fine.
        assert_eq!(events(b"0123456789\n", 10)[0], LineEvent::Line(b"0123456789".to_vec()));
    }

    #[test]
    fn input_that_ends_mid_line_says_so() {
        assert_eq!(
            events(b"ok\n{\"type\":", 100),
            [LineEvent::Line(b"ok".to_vec()), LineEvent::Truncated { bytes: 8 }]
        );
        assert_eq!(events(&[b'x'; 50], 10), [LineEvent::Truncated { bytes: 50 }]);
    }
}
