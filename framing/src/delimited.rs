//! Frames ended by a delimiter byte (newline by default).

use bytes::{Buf, Bytes, BytesMut};
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
    search: DelimiterSearch,
}

/// Finds frames ended by a delimiter byte in a read buffer: the search
/// [`DelimitedCodec`] and [`CobsCodec`](super::CobsCodec) share.
///
/// It scans with `memchr` and remembers how far it has searched, so bytes are scanned
/// once however a frame is split across reads. A frame longer than the caller's window
/// is reported once, what was buffered is dropped, and input is discarded up to the next
/// delimiter. A whole frame already buffered takes the fast path: one `memchr`, one split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DelimiterSearch {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a frame; the first `searched` buffered bytes hold no delimiter.
    Reading { searched: usize },
    /// After an over-long frame: dropping input up to the next delimiter.
    Discarding,
}

impl DelimiterSearch {
    pub(crate) fn new() -> Self {
        DelimiterSearch { state: State::Reading { searched: 0 } }
    }

    /// Finds the next frame: its length, when a whole frame is buffered. The frame and
    /// its delimiter are then the front `len + 1` bytes of `src`, for the caller to cut in
    /// one `split_to` (see [`cut_line`]); `Ok(None)` when no complete frame is buffered.
    /// `window` is the most bytes a frame may take, its delimiter included.
    ///
    /// # Errors
    /// The number of bytes buffered when the frame outgrew `window`; they are dropped,
    /// and so is the input up to the next delimiter.
    #[inline]
    pub(crate) fn next(
        &mut self,
        src: &mut BytesMut,
        delimiter: u8,
        window: usize,
    ) -> Result<Option<usize>, u64> {
        if let State::Reading { searched } = self.state {
            let limit = src.len().min(window);
            if let Some(offset) = src.get(searched..limit).and_then(|s| memchr::memchr(delimiter, s)) {
                self.state = State::Reading { searched: 0 };
                return Ok(Some(searched + offset));
            }
        }
        self.slow(src, delimiter, window)
    }

    /// No delimiter within reach, or discarding.
    #[inline(never)]
    fn slow(&mut self, src: &mut BytesMut, delimiter: u8, window: usize) -> Result<Option<usize>, u64> {
        match self.state {
            State::Reading { .. } if src.len() >= window => {
                let len = src.len() as u64;
                src.clear();
                self.state = State::Discarding;
                Err(len)
            }
            State::Reading { .. } => {
                // `next` searched everything buffered (less than `window`) and found no
                // delimiter: remember that, so those bytes are not searched again.
                self.state = State::Reading { searched: src.len() };
                Ok(None)
            }
            State::Discarding => match memchr::memchr(delimiter, src) {
                Some(end) => {
                    src.advance(end + 1);
                    self.state = State::Reading { searched: 0 };
                    self.next(src, delimiter, window)
                }
                None => {
                    src.clear();
                    Ok(None)
                }
            },
        }
    }

    /// At end of stream, after [`next`](Self::next) found no frame: `Truncated` when
    /// unterminated bytes are buffered (they are dropped).
    pub(crate) fn eof(&mut self, src: &mut BytesMut) -> Option<FramingError> {
        if src.is_empty() {
            return None;
        }
        let got = src.len() as u64;
        src.clear();
        self.state = State::Reading { searched: 0 };
        Some(FramingError::Truncated { expected: got + 1, got })
    }
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
        DelimitedCodec { delimiter, max_frame_len: DEFAULT_MAX_FRAME_LEN, search: DelimiterSearch::new() }
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

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        // A frame may hold `max_frame_len` payload bytes plus the delimiter.
        match self.search.next(src, self.delimiter, self.max_frame_len.saturating_add(1)) {
            Ok(Some(len)) => Ok(Some(cut_line(src, len))),
            Ok(None) => Ok(None),
            Err(len) => Err(FramingError::FrameTooLarge { len, max: self.max_frame_len as u64 }),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => self.search.eof(src).map_or(Ok(None), Err),
        }
    }
}

/// Cuts a frame of `len` bytes and its delimiter off the front of `src`, and returns the
/// frame without copying.
///
/// Frame and delimiter are cut out together and the delimiter dropped from the frozen
/// frame: one call into `bytes` per frame instead of two (`BytesMut::advance` is not
/// inlined across crates; `Bytes::truncate` is). Like the length-announcing decoder's
/// `cut`, it runs once, after the search: a frame cut inside the search and merged with
/// the slow paths' frames went through a stack slot whose read-back stalled.
#[inline(always)]
fn cut_line(src: &mut BytesMut, len: usize) -> Bytes {
    let mut frame = src.split_to(len + 1).freeze();
    frame.truncate(len);
    frame
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
        dst.extend_from_slice(payload);
        dst.extend_from_slice(&[self.delimiter]);
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
        assert_eq!(codec.search.state, State::Reading { searched: 3 });
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
