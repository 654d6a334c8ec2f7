//! Zero-delimited frames with consistent-overhead byte stuffing (COBS).

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;
use super::delimited::DelimiterSearch;

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
    search: DelimiterSearch,
}

impl Default for CobsCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl CobsCodec {
    /// COBS frames with payloads of at most 64 KiB.
    pub fn new() -> Self {
        CobsCodec { max_frame_len: DEFAULT_MAX_FRAME_LEN, search: DelimiterSearch::new() }
    }

    /// Sets the maximum payload length in bytes (before stuffing); default 64 KiB.
    pub fn max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self
    }

    fn too_large(&self, len: u64) -> FramingError {
        FramingError::FrameTooLarge { len, max: self.max_frame_len as u64 }
    }
}

/// Unstuffs the first `len` bytes of `frame` (its delimiter, if any, follows them) in
/// place and returns the payload, which starts one byte in: the first code byte is
/// dropped rather than the payload moved.
///
/// Each later code byte becomes the zero it stands for, where it is, so a frame with no
/// run of 254 non-zero bytes is unstuffed without moving a byte. Only after a `0xFF`
/// block (no implied zero) do the blocks that follow move, by one byte per such block.
fn unstuff_in_place(mut frame: BytesMut, len: usize) -> Result<Bytes, FramingError> {
    // Payload byte i goes to frame[1 + i]; `write` is the next such position, never
    // past `read`.
    let (mut read, mut write) = (0, 1);
    let mut zero_pending = false;
    while read < len {
        let code = usize::from(frame[read]);
        if code == 0 {
            return Err(FramingError::invalid_header("zero byte inside a COBS frame"));
        }
        if zero_pending {
            // The previous block's implied zero: onto this code byte, now read, at the latest.
            frame[write] = 0;
            write += 1;
        }
        let run = code - 1;
        let start = read + 1;
        if start + run > len {
            return Err(FramingError::invalid_header(format!(
                "COBS block announces {run} bytes but only {} remain in the frame",
                len - start
            )));
        }
        if write != start {
            frame.copy_within(start..start + run, write);
        }
        write += run;
        read = start + run;
        zero_pending = code != 0xFF;
    }
    frame.truncate(write);
    let mut payload = frame.freeze();
    payload.advance(1);
    Ok(payload)
}

impl Decoder for CobsCodec {
    type Item = Bytes;
    type Error = FramingError;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        let len = match self.search.next(src, 0, max_encoded_len(self.max_frame_len)) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(len) => return Err(self.too_large(len)),
        };
        // The frame and its delimiter leave the buffer together, in one `split_to`; the
        // delimiter goes when the unstuffed frame is truncated.
        let frame = src.split_to(len + 1);
        if len == 0 {
            return Err(FramingError::invalid_header("empty COBS frame (lone 0x00)"));
        }
        let payload = unstuff_in_place(frame, len)?;
        if payload.len() > self.max_frame_len {
            return Err(self.too_large(payload.len() as u64));
        }
        Ok(Some(payload))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => self.search.eof(src).map_or(Ok(None), Err),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for CobsCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        if payload.len() > self.max_frame_len {
            return Err(self.too_large(payload.len() as u64));
        }
        dst.reserve(max_encoded_len(payload.len()));
        // One pass over the payload for its zeros; each zero-free run between them goes
        // out as blocks, the zero itself implied by the block that ends before it.
        let mut last = payload;
        while let Some(zero) = memchr::memchr(0, last) {
            put_run(dst, &last[..zero]);
            last = &last[zero + 1..];
        }
        // A final run of whole 254-byte blocks needs no empty block after it: no zero follows.
        if !last.is_empty() && last.len() % MAX_RUN == 0 {
            put_full_blocks(dst, last);
        } else {
            put_run(dst, last);
        }
        dst.extend_from_slice(&[0]);
        Ok(())
    }
}

// The writes below use `extend_from_slice`, which inlines to a capacity check and a copy
// (a single store for a code byte); `put_u8` would be a call and a `memcpy` per byte.

/// Writes a zero-free run that a zero (or the end of the payload) follows: full 254-byte
/// blocks (code `0xFF`), then a block of the remaining 0..=253 bytes.
#[inline]
fn put_run(dst: &mut BytesMut, run: &[u8]) {
    let (full, rest) = run.split_at(run.len() / MAX_RUN * MAX_RUN);
    put_full_blocks(dst, full);
    dst.extend_from_slice(&[rest.len() as u8 + 1]);
    dst.extend_from_slice(rest);
}

/// Writes whole 254-byte blocks, each with code `0xFF`.
#[inline]
fn put_full_blocks(dst: &mut BytesMut, run: &[u8]) {
    for block in run.chunks_exact(MAX_RUN) {
        dst.extend_from_slice(&[0xFF]);
        dst.extend_from_slice(block);
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

    #[test]
    fn decodes_the_reference_examples_in_place() {
        let run: Vec<u8> = (1..=254).collect();
        let mut run_then_ff = run.clone();
        run_then_ff.push(0xFF);
        let mut long_runs = vec![0x11; 600];
        long_runs[300] = 0;
        for payload in [
            &[][..],
            &[0x00],
            &[0x00, 0x00],
            &[0x11, 0x22, 0x00, 0x33],
            &[0x11, 0x00, 0x00, 0x00],
            &run,
            &run_then_ff,
            &long_runs,
        ] {
            let mut wire = BytesMut::from(&encode(payload)[..]);
            let frame = CobsCodec::new().decode(&mut wire).unwrap().unwrap();
            assert_eq!(&frame[..], payload);
            assert!(wire.is_empty());
        }
    }
}
