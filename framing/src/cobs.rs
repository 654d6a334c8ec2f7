//! Zero-delimited frames with consistent-overhead byte stuffing (COBS).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;

/// Default maximum payload length: 64 KiB.
const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;
/// A COBS block holds at most 254 non-zero bytes after its code byte.
const MAX_RUN: usize = 254;

/// Longest encoding of a payload of `len` bytes, delimiter included.
fn max_encoded_len(len: usize) -> usize {
    len.saturating_add(len / MAX_RUN).saturating_add(2)
}

/// Frames made safe for any payload by consistent-overhead byte stuffing, each ended by
/// `0x00`.
///
/// COBS removes every zero byte from the payload, so `0x00` can end frames. The payload
/// is cut at each zero into runs; each run is sent as a code byte (run length + 1) and
/// the run's bytes, and the zero is implied. A run of 254 non-zero bytes gets code
/// `0xFF` and no implied zero. Overhead: 1 byte per 254 payload bytes, plus the code and
/// the delimiter.
///
/// ```text
/// payload:  11 22 00 33
/// wire:     03 11 22 | 02 33 | 00
///           code run   code run  delimiter
/// ```
///
/// Defaults: maximum payload 64 KiB. The decoder finds the delimiter with `memchr`,
/// scanning every byte once, cuts the frame out of the buffer and unstuffs it in place
/// (no new allocation). A frame longer than the maximum is reported once with
/// [`FramingError::FrameTooLarge`] and skipped up to the next `0x00`; a malformed frame
/// ([`FramingError::InvalidHeader`]) is consumed, and decoding resumes at the next one.
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::CobsCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = CobsCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode([0x11, 0x22, 0x00, 0x33], &mut wire).unwrap();
/// assert_eq!(&wire[..], [0x03, 0x11, 0x22, 0x02, 0x33, 0x00]);
/// assert_eq!(&codec.decode(&mut wire).unwrap().unwrap()[..], [0x11, 0x22, 0x00, 0x33]);
/// assert_eq!(codec.decode(&mut wire).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CobsCodec {
    max_frame_len: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a frame; the first `searched` buffered bytes hold no `0x00`.
    Reading { searched: usize },
    /// After an over-long frame: dropping input up to the next `0x00`.
    Discarding,
}

impl Default for CobsCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl CobsCodec {
    /// COBS frames with payloads of at most 64 KiB.
    pub fn new() -> Self {
        CobsCodec { max_frame_len: DEFAULT_MAX_FRAME_LEN, state: State::Reading { searched: 0 } }
    }

    /// Sets the maximum payload length in bytes (before stuffing); default 64 KiB.
    pub fn max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self
    }

    fn too_large(&self, len: usize) -> FramingError {
        FramingError::FrameTooLarge { len: len as u64, max: self.max_frame_len as u64 }
    }
}

/// Unstuffs `frame` (without its delimiter) in place and returns the payload length.
fn unstuff_in_place(frame: &mut [u8]) -> Result<usize, FramingError> {
    let (mut read, mut write) = (0, 0);
    while read < frame.len() {
        let code = usize::from(frame[read]);
        if code == 0 {
            return Err(FramingError::invalid_header("zero byte inside a COBS frame"));
        }
        read += 1;
        let run = code - 1;
        if read + run > frame.len() {
            return Err(FramingError::invalid_header(format!(
                "COBS block announces {run} bytes but only {} remain in the frame",
                frame.len() - read
            )));
        }
        frame.copy_within(read..read + run, write);
        write += run;
        read += run;
        if code != 0xFF && read < frame.len() {
            frame[write] = 0;
            write += 1;
        }
    }
    Ok(write)
}

impl Decoder for CobsCodec {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        let max_encoded = max_encoded_len(self.max_frame_len);
        loop {
            match self.state {
                State::Reading { searched } => {
                    let limit = src.len().min(max_encoded);
                    match src.get(searched..limit).and_then(|s| memchr::memchr(0, s)) {
                        Some(offset) => {
                            let end = searched + offset;
                            self.state = State::Reading { searched: 0 };
                            let mut frame = src.split_to(end);
                            src.advance(1);
                            if frame.is_empty() {
                                return Err(FramingError::invalid_header("empty COBS frame (lone 0x00)"));
                            }
                            let len = unstuff_in_place(&mut frame)?;
                            if len > self.max_frame_len {
                                return Err(self.too_large(len));
                            }
                            frame.truncate(len);
                            return Ok(Some(frame.freeze()));
                        }
                        None if src.len() >= max_encoded => {
                            let len = src.len();
                            src.clear();
                            self.state = State::Discarding;
                            return Err(self.too_large(len));
                        }
                        None => {
                            self.state = State::Reading { searched: src.len() };
                            return Ok(None);
                        }
                    }
                }
                State::Discarding => match memchr::memchr(0, src) {
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

impl<T: AsRef<[u8]>> Encoder<T> for CobsCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let mut rest = item.as_ref();
        if rest.len() > self.max_frame_len {
            return Err(self.too_large(rest.len()));
        }
        dst.reserve(max_encoded_len(rest.len()));
        loop {
            let window = &rest[..rest.len().min(MAX_RUN)];
            match memchr::memchr(0, window) {
                Some(n) => {
                    dst.put_u8((n + 1) as u8);
                    dst.put_slice(&rest[..n]);
                    rest = &rest[n + 1..];
                }
                None if window.len() == MAX_RUN => {
                    dst.put_u8(0xFF);
                    dst.put_slice(window);
                    rest = &rest[MAX_RUN..];
                    if rest.is_empty() {
                        break;
                    }
                }
                None => {
                    dst.put_u8((window.len() + 1) as u8);
                    dst.put_slice(window);
                    break;
                }
            }
        }
        dst.put_u8(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(payload: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        CobsCodec::new().encode(payload, &mut dst).unwrap();
        dst.to_vec()
    }

    #[test]
    fn matches_the_reference_examples() {
        // The examples from Cheshire & Baker's paper, as listed on Wikipedia.
        assert_eq!(encode(&[]), [0x01, 0x00]);
        assert_eq!(encode(&[0x00]), [0x01, 0x01, 0x00]);
        assert_eq!(encode(&[0x00, 0x00]), [0x01, 0x01, 0x01, 0x00]);
        assert_eq!(encode(&[0x11, 0x22, 0x00, 0x33]), [0x03, 0x11, 0x22, 0x02, 0x33, 0x00]);
        assert_eq!(encode(&[0x11, 0x00, 0x00, 0x00]), [0x02, 0x11, 0x01, 0x01, 0x01, 0x00]);
        let run: Vec<u8> = (1..=254).collect();
        let mut expected = vec![0xFF];
        expected.extend_from_slice(&run);
        expected.push(0x00);
        assert_eq!(encode(&run), expected);
        let mut run_then_ff = run.clone();
        run_then_ff.push(0xFF);
        let mut expected = vec![0xFF];
        expected.extend_from_slice(&run);
        expected.extend_from_slice(&[0x02, 0xFF, 0x00]);
        assert_eq!(encode(&run_then_ff), expected);
    }

    #[test]
    fn malformed_frames_are_errors_and_decoding_resumes() {
        let mut codec = CobsCodec::new();
        let mut buf = BytesMut::from(&[0x05, 0x11, 0x00, 0x00, 0x02, 0x33, 0x00][..]);
        assert!(matches!(codec.decode(&mut buf), Err(FramingError::InvalidHeader { .. })));
        assert!(matches!(codec.decode(&mut buf), Err(FramingError::InvalidHeader { .. })));
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], [0x33]);
    }
}
