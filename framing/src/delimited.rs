//! Frames ended by a delimiter byte (newline by default).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;

/// Default delimiter: `\n`.
const DEFAULT_DELIMITER: u8 = b'\n';
/// Default maximum payload length: 64 KiB.
const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Frames ended by one delimiter byte (default `\n`), like text lines.
///
/// ```text
/// +-------------------------------+-----+
/// | payload (no delimiter inside) | \n  |
/// +-------------------------------+-----+
/// ```
///
/// **A payload containing the delimiter breaks this framing**: the receiver would cut it
/// in two. The encoder therefore refuses such payloads with
/// [`FramingError::DelimiterInPayload`]; use [`CobsCodec`](super::CobsCodec) or a length
/// prefix for arbitrary bytes.
///
/// Defaults: delimiter `\n`, maximum payload 64 KiB (the delimiter not counted). The
/// decoder searches with `memchr` and remembers how far it has searched, so bytes are
/// scanned once however the frame is split across reads (rescanning from the start on
/// every read is quadratic). When a frame grows past the maximum, the decoder returns
/// [`FramingError::FrameTooLarge`] **once**, drops what it buffered, discards input up to
/// the next delimiter and then decodes normally again. The delimiter itself is not part
/// of the decoded frame; `\r` before `\n` is kept. End of stream after an unterminated
/// payload is [`FramingError::Truncated`].
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::DelimitedCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = DelimitedCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode("hello", &mut wire).unwrap();
/// codec.encode("world", &mut wire).unwrap();
/// assert_eq!(&wire[..], b"hello\nworld\n");
/// assert!(codec.encode("two\nlines", &mut wire).is_err());
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "hello");
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "world");
/// assert_eq!(codec.decode(&mut wire).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelimitedCodec {
    delimiter: u8,
    max_frame_len: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a frame; the first `searched` buffered bytes hold no delimiter.
    Reading { searched: usize },
    /// After an over-long frame: dropping input up to the next delimiter.
    Discarding,
}

impl Default for DelimitedCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl DelimitedCodec {
    /// Newline-delimited frames of at most 64 KiB.
    pub fn new() -> Self {
        Self::with_delimiter(DEFAULT_DELIMITER)
    }

    /// Frames ended by `delimiter`, of at most 64 KiB.
    pub fn with_delimiter(delimiter: u8) -> Self {
        DelimitedCodec {
            delimiter,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            state: State::Reading { searched: 0 },
        }
    }

    /// Sets the maximum payload length in bytes (delimiter not counted); default 64 KiB.
    pub fn max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self
    }

    /// The delimiter byte.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }
}

impl Decoder for DelimitedCodec {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        loop {
            match self.state {
                State::Reading { searched } => {
                    // A frame may hold `max_frame_len` payload bytes plus the delimiter.
                    let limit = src.len().min(self.max_frame_len.saturating_add(1));
                    let found = src.get(searched..limit).and_then(|s| memchr::memchr(self.delimiter, s));
                    match found {
                        Some(offset) => {
                            let end = searched + offset;
                            self.state = State::Reading { searched: 0 };
                            let frame = src.split_to(end).freeze();
                            src.advance(1);
                            return Ok(Some(frame));
                        }
                        None if src.len() > self.max_frame_len => {
                            let len = src.len() as u64;
                            src.clear();
                            self.state = State::Discarding;
                            return Err(FramingError::FrameTooLarge { len, max: self.max_frame_len as u64 });
                        }
                        None => {
                            self.state = State::Reading { searched: src.len() };
                            return Ok(None);
                        }
                    }
                }
                State::Discarding => match memchr::memchr(self.delimiter, src) {
                    Some(end) => {
                        src.advance(end + 1);
                        self.state = State::Reading { searched: 0 };
                    }
                    None => {
                        src.clear();
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let got = src.len() as u64;
                src.clear();
                self.state = State::Reading { searched: 0 };
                Err(FramingError::Truncated { expected: got + 1, got })
            }
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for DelimitedCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        if payload.len() > self.max_frame_len {
            return Err(FramingError::FrameTooLarge {
                len: payload.len() as u64,
                max: self.max_frame_len as u64,
            });
        }
        if let Some(position) = memchr::memchr(self.delimiter, payload) {
            return Err(FramingError::DelimiterInPayload { delimiter: self.delimiter, position });
        }
        dst.reserve(payload.len() + 1);
        dst.put_slice(payload);
        dst.put_u8(self.delimiter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_long_frame_is_reported_once_then_the_decoder_resyncs() {
        let mut codec = DelimitedCodec::new().max_frame_len(4);
        let mut buf = BytesMut::from(&b"abcdefgh"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(FramingError::FrameTooLarge { len: 8, max: 4 })));
        buf.extend_from_slice(b"ij\nok\n");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_frame_of_exactly_the_maximum_is_accepted() {
        let mut codec = DelimitedCodec::new().max_frame_len(4);
        let mut buf = BytesMut::from(&b"abcd\n"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "abcd");
    }

    #[test]
    fn bytes_already_searched_are_not_searched_again() {
        let mut codec = DelimitedCodec::new();
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(codec.state, State::Reading { searched: 3 });
        buf.extend_from_slice(b"d\n");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "abcd");
    }

    #[test]
    fn eof_after_an_unterminated_payload_is_truncated() {
        let mut codec = DelimitedCodec::new();
        let mut buf = BytesMut::from(&b"a\nbc"[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap().unwrap(), "a");
        assert!(matches!(codec.decode_eof(&mut buf), Err(FramingError::Truncated { expected: 3, got: 2 })));
    }
}
