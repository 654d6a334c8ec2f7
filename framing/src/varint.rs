//! Frames preceded by a LEB128 varint length (protobuf's delimited format).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;
use super::announced::{Announced, Head, Header};

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
    decoder: Announced<VarintLength>,
}

/// A LEB128 length header, and the largest body it may announce.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VarintLength {
    max_frame_len: usize,
}

impl Header for VarintLength {
    type Meta = ();

    #[inline]
    fn max_body_len(&self) -> u64 {
        self.max_frame_len as u64
    }

    #[inline]
    fn read(&self, src: &[u8]) -> Result<Head<()>, FramingError> {
        // Lengths under 128 take one byte: the common case for small messages.
        match src.first() {
            Some(&byte) if byte < 0x80 => Ok(Head::Complete { len: 1, body_len: u64::from(byte), meta: () }),
            _ => read_varint(src),
        }
    }
}

/// Reads a varint of any length from the front of `src`.
fn read_varint(src: &[u8]) -> Result<Head<()>, FramingError> {
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
            return Ok(Head::Complete { len: i + 1, body_len: value, meta: () });
        }
    }
    if src.len() >= MAX_VARINT_LEN {
        return Err(FramingError::invalid_header("varint longer than 10 bytes"));
    }
    // An incomplete varint needs at least one more byte.
    Ok(Head::Incomplete { needed: src.len() + 1 })
}

/// The LEB128 encoding of `len` as the bytes of a little-endian word, and how many of
/// them it takes. The encoder stores the whole word and keeps that many bytes: the same
/// bytes assembled in a stack array and copied out were a `memcpy` call of a variable
/// length, 4.3-5.1 ns per 16-byte frame depending on how the build laid them out.
#[inline]
fn varint_word(mut len: u64) -> (u128, usize) {
    let mut word = 0u128;
    let mut n = 0;
    while len >= 0x80 {
        word |= u128::from((len as u8 & 0x7f) | 0x80) << (8 * n);
        len >>= 7;
        n += 1;
    }
    (word | u128::from(len as u8) << (8 * n), n + 1)
}

/// Number of bytes the LEB128 encoding of `value` takes (the tests check the encoder with it).
#[cfg(test)]
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
        VarintCodec { decoder: Announced::new(VarintLength { max_frame_len: DEFAULT_MAX_FRAME_LEN }) }
    }

    /// Sets the maximum payload length in bytes; default 8 MiB.
    pub fn max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.decoder.header.max_frame_len = max_frame_len;
        self
    }
}

impl Decoder for VarintCodec {
    type Item = Bytes;
    type Error = FramingError;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        Ok(self.decoder.decode(src)?.map(|((), body)| body))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        Ok(self.decoder.decode_eof(src)?.map(|((), body)| body))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for VarintCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        let len = payload.len() as u64;
        let max = self.decoder.header.max_body_len();
        if len > max {
            return Err(FramingError::FrameTooLarge { len, max });
        }
        let (header, header_len) = varint_word(len);
        let start = dst.len();
        dst.reserve(16 + payload.len());
        dst.extend_from_slice(&header.to_le_bytes());
        dst.truncate(start + header_len);
        dst.extend_from_slice(payload);
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
    fn every_length_encodes_to_the_varint_the_decoder_reads_back() {
        fn prop(len: u64, shift: u8) -> bool {
            // Lengths of every varint size, up to u64::MAX's ten bytes.
            let len = len >> (shift % 64);
            let (word, n) = varint_word(len);
            let bytes = word.to_le_bytes();
            n == varint_len(len)
                && bytes[n..].iter().all(|&b| b == 0)
                && matches!(read_varint(&bytes[..n]), Ok(Head::Complete { len: l, body_len, .. }) if l == n && body_len == len)
        }
        assert!(prop(u64::MAX, 0) && prop(0, 0) && prop(1 << 63, 0));
        quickcheck::quickcheck(prop as fn(u64, u8) -> bool);
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
