//! Frames preceded by a LEB128 varint length (protobuf's delimited format).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{FramingError, lost_boundary, skip_reported};

/// Default maximum payload length: 8 MiB.
const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;
/// A u64 takes at most 10 LEB128 bytes.
const MAX_VARINT_LEN: usize = 10;

/// Frames preceded by their payload length as an unsigned LEB128 varint, as protobuf's
/// `writeDelimitedTo` writes them.
///
/// Each varint byte carries 7 bits of the length, least significant group first; the
/// high bit says another byte follows.
///
/// ```text
/// +--------------------------+---------------------+
/// | length (1..=10 bytes)    | payload (length B)  |
/// +--------------------------+---------------------+
/// length 300:  ac 02   (0b0101100 | 0x80, then 0b10)
/// ```
///
/// Defaults: maximum payload 8 MiB. The decoder rejects overlong encodings (a length
/// written with more bytes than it needs, such as `80 00` for 0) and lengths that do not
/// fit a u64 with [`FramingError::InvalidHeader`], after which every call returns that
/// error again and discards what is buffered. A length over the maximum is
/// [`FramingError::FrameTooLarge`], raised before any memory is reserved; the oversized
/// payload is then skipped unbuffered. End of stream inside a frame is
/// [`FramingError::Truncated`].
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::VarintCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = VarintCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode(vec![7u8; 300], &mut wire).unwrap();
/// assert_eq!(&wire[..2], [0xac, 0x02]);
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap().len(), 300);
/// assert_eq!(codec.decode(&mut wire).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarintCodec {
    max_frame_len: usize,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for a complete varint.
    Head,
    /// The varint (this many bytes) has been consumed; waiting for this many payload bytes.
    Data { header_len: usize, len: usize },
    /// Skipping the rest of an oversized frame that was already reported.
    Skip(u64),
    /// An invalid varint was seen; the stream position is lost.
    Failed(String),
}

/// What the front of a buffer holds.
enum Varint {
    /// A complete varint: its value and its length in bytes.
    Complete(u64, usize),
    /// Not enough bytes yet.
    Incomplete,
}

fn read_varint(src: &[u8]) -> Result<Varint, FramingError> {
    let mut value = 0u64;
    for (i, &byte) in src.iter().take(MAX_VARINT_LEN).enumerate() {
        let group = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(FramingError::invalid_header("varint length does not fit in 64 bits"));
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(FramingError::invalid_header(format!(
                    "overlong varint: {} bytes for {value}",
                    i + 1
                )));
            }
            return Ok(Varint::Complete(value, i + 1));
        }
    }
    if src.len() >= MAX_VARINT_LEN {
        return Err(FramingError::invalid_header("varint longer than 10 bytes"));
    }
    Ok(Varint::Incomplete)
}

/// Number of bytes the LEB128 encoding of `value` takes.
fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

impl Default for VarintCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl VarintCodec {
    /// Varint-prefixed frames of at most 8 MiB.
    pub fn new() -> Self {
        VarintCodec { max_frame_len: DEFAULT_MAX_FRAME_LEN, state: State::Head }
    }

    /// Sets the maximum payload length in bytes; default 8 MiB.
    pub fn max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self
    }
}

impl Decoder for VarintCodec {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        loop {
            match self.state {
                State::Head => {
                    let (len, header_len) = match read_varint(src) {
                        Ok(Varint::Complete(len, header_len)) => (len, header_len),
                        Ok(Varint::Incomplete) => return Ok(None),
                        Err(err) => {
                            self.state = State::Failed(err.to_string());
                            return Err(err);
                        }
                    };
                    src.advance(header_len);
                    let max = self.max_frame_len as u64;
                    if len > max {
                        self.state = State::Skip(len);
                        return Err(FramingError::FrameTooLarge { len, max });
                    }
                    let len = len as usize;
                    if src.len() >= len {
                        return Ok(Some(src.split_to(len).freeze()));
                    }
                    src.reserve(len - src.len());
                    self.state = State::Data { header_len, len };
                    return Ok(None);
                }
                State::Data { len, .. } => {
                    if src.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Head;
                    return Ok(Some(src.split_to(len).freeze()));
                }
                State::Skip(remaining) => match skip_reported(src, remaining) {
                    0 => self.state = State::Head,
                    left => {
                        self.state = State::Skip(left);
                        return Ok(None);
                    }
                },
                State::Failed(ref reason) => return Err(lost_boundary(src, reason)),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let got = src.len() as u64;
        let truncated = match self.state {
            // An incomplete varint needs at least one more byte.
            State::Head if got > 0 => FramingError::Truncated { expected: got + 1, got },
            State::Data { header_len, len } => {
                let header_len = header_len as u64;
                FramingError::Truncated { expected: header_len + len as u64, got: header_len + got }
            }
            _ => return Ok(None),
        };
        src.clear();
        self.state = State::Head;
        Err(truncated)
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for VarintCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        let mut len = payload.len() as u64;
        if len > self.max_frame_len as u64 {
            return Err(FramingError::FrameTooLarge { len, max: self.max_frame_len as u64 });
        }
        dst.reserve(varint_len(len) + payload.len());
        while len >= 0x80 {
            dst.put_u8((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        dst.put_u8(len as u8);
        dst.put_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize) -> Vec<u8> {
        let mut dst = BytesMut::new();
        VarintCodec::new().max_frame_len(usize::MAX).encode(vec![0u8; len], &mut dst).unwrap();
        dst[..dst.len() - len].to_vec()
    }

    #[test]
    fn encodes_lengths_as_protobuf_does() {
        assert_eq!(header(0), [0x00]);
        assert_eq!(header(1), [0x01]);
        assert_eq!(header(127), [0x7f]);
        assert_eq!(header(128), [0x80, 0x01]);
        assert_eq!(header(300), [0xac, 0x02]);
        assert_eq!(header(16_384), [0x80, 0x80, 0x01]);
        for len in [0, 1, 127, 128, 300, 16_383, 16_384] {
            assert_eq!(varint_len(len as u64), header(len).len());
        }
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn rejects_overlong_and_overflowing_varints() {
        for wire in [
            &[0x80, 0x00][..],
            &[0x81, 0x80, 0x00],
            &[0xff; 10],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        ] {
            let mut codec = VarintCodec::new();
            let mut buf = BytesMut::from(wire);
            assert!(matches!(codec.decode(&mut buf), Err(FramingError::InvalidHeader { .. })), "{wire:x?}");
        }
        // u64::MAX is a valid varint, merely far over the limit.
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        assert!(matches!(
            VarintCodec::new().decode(&mut buf),
            Err(FramingError::FrameTooLarge { len: u64::MAX, .. })
        ));
    }
}
