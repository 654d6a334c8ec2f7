//! Frames preceded by a fixed-width length field.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;
use super::announced::{Announced, Head, Header};

/// Default maximum payload length: 8 MiB.
const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Width of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderWidth {
    /// 1 byte.
    U8,
    /// 2 bytes.
    U16,
    /// 4 bytes.
    U32,
    /// 8 bytes.
    U64,
}

impl HeaderWidth {
    /// The width in bytes.
    pub fn bytes(self) -> usize {
        match self {
            HeaderWidth::U8 => 1,
            HeaderWidth::U16 => 2,
            HeaderWidth::U32 => 4,
            HeaderWidth::U64 => 8,
        }
    }
}

/// Byte order of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Most significant byte first: network order, Python `struct` `!` / `>`.
    Big,
    /// Least significant byte first: x86 and ARM native order, Python `struct` `<`.
    Little,
}

/// Frames preceded by their payload length in a 1, 2, 4 or 8 byte field.
///
/// ```text
/// +----------------------+---------------------+
/// | length (W bytes)     | payload (length B)  |
/// +----------------------+---------------------+
/// u32be: 00 00 00 05  68 65 6c 6c 6f   = "hello"
/// ```
///
/// The length counts the payload only. Presets: [`u32_be`](Self::u32_be) (network
/// order, Python `struct.pack('!I', n)`) and [`python_native_i32`](Self::python_native_i32)
/// (Python `struct.pack('i', n)`: a signed 32-bit little-endian integer on x86 and ARM).
/// With a signed field a negative length is [`FramingError::InvalidHeader`].
///
/// Defaults: maximum payload 8 MiB (capped further by what the field can hold). The
/// decoder checks the length against the maximum **before** reserving any memory and
/// returns [`FramingError::FrameTooLarge`]; it then skips the announced payload without
/// buffering it, so decoding can go on. A complete frame is cut out of the read buffer
/// without copying. The encoder rejects payloads over the maximum. End of stream inside
/// a frame is [`FramingError::Truncated`]. After `InvalidHeader` the stream cannot be
/// resynchronised, and every later call returns the error again
/// and discards what is buffered.
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::LengthPrefixedCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = LengthPrefixedCodec::u32_be();
/// let mut wire = BytesMut::new();
/// codec.encode("hello", &mut wire).unwrap();
/// assert_eq!(&wire[..], b"\x00\x00\x00\x05hello");
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "hello");
/// assert_eq!(codec.decode(&mut wire).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthPrefixedCodec {
    max_frame_len: usize,
    decoder: Announced<LengthField>,
}

/// The length field: how wide, which byte order, whether signed, and the effective limit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LengthField {
    width: HeaderWidth,
    endian: Endian,
    signed: bool,
    /// `max_frame_len` capped by what the field can hold; kept up to date by the builders.
    limit: u64,
}

impl LengthField {
    /// Reads the length field from the front of an 8-byte `word` (bytes past the field
    /// are shifted or masked away, whatever they hold).
    #[inline]
    fn value_in_word(&self, word: [u8; 8]) -> u64 {
        let unused_bits = 64 - 8 * self.width.bytes() as u32;
        match self.endian {
            Endian::Big => u64::from_be_bytes(word) >> unused_bits,
            Endian::Little => u64::from_le_bytes(word) & (u64::MAX >> unused_bits),
        }
    }

    #[cold]
    fn negative(&self, value: u64) -> FramingError {
        // Sign-extend only to report the value.
        let shift = 64 - self.width.bytes() as u32 * 8;
        let negative = ((value << shift) as i64) >> shift;
        FramingError::invalid_header(format!("negative length {negative}"))
    }
}

impl Header for LengthField {
    type Meta = ();

    #[inline]
    fn max_body_len(&self) -> u64 {
        self.limit
    }

    #[inline]
    fn read(&self, src: &[u8]) -> Result<Head<()>, FramingError> {
        let len = self.width.bytes();
        let value = match src.first_chunk::<8>() {
            // While frames are being decoded 8 bytes are nearly always buffered: one load
            // and a shift or a mask read any width in either order, with no jump on the
            // width per frame.
            Some(word) => self.value_in_word(*word),
            None if src.len() < len => return Ok(Head::Incomplete { needed: len }),
            // Fewer than 8 bytes buffered (the end of a burst): zero-padded to a word.
            None => {
                let mut word = [0u8; 8];
                word[..src.len()].copy_from_slice(src);
                self.value_in_word(word)
            }
        };
        if self.signed && (value >> (len * 8 - 1)) & 1 == 1 {
            return Err(self.negative(value));
        }
        Ok(Head::Complete { len, body_len: value, meta: () })
    }
}

impl LengthPrefixedCodec {
    /// Unsigned lengths of the given width and byte order, payloads of at most 8 MiB.
    pub fn new(width: HeaderWidth, endian: Endian) -> Self {
        let field = LengthField { width, endian, signed: false, limit: 0 };
        LengthPrefixedCodec { max_frame_len: DEFAULT_MAX_FRAME_LEN, decoder: Announced::new(field) }
            .with_limit()
    }

    /// 4-byte big-endian unsigned length: network order, Python `struct.pack('!I', n)`.
    pub fn u32_be() -> Self {
        Self::new(HeaderWidth::U32, Endian::Big)
    }

    /// 4-byte little-endian unsigned length.
    pub fn u32_le() -> Self {
        Self::new(HeaderWidth::U32, Endian::Little)
    }

    /// 2-byte big-endian unsigned length (payloads up to 65,535 bytes).
    pub fn u16_be() -> Self {
        Self::new(HeaderWidth::U16, Endian::Big)
    }

    /// 4-byte little-endian **signed** length: what Python's `struct.pack('i', n)`
    /// produces on x86 and ARM hosts, as many tutorial servers send it.
    pub fn python_native_i32() -> Self {
        Self::new(HeaderWidth::U32, Endian::Little).signed(true)
    }

    /// Treats the length field as a signed integer (negative lengths become
    /// [`FramingError::InvalidHeader`]); default unsigned.
    pub fn signed(mut self, signed: bool) -> Self {
        self.decoder.header.signed = signed;
        self.with_limit()
    }

    /// Sets the maximum payload length in bytes; default 8 MiB. The effective maximum is
    /// also capped by the largest length the field can hold.
    pub fn max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self.with_limit()
    }

    /// The largest payload this codec accepts, in bytes.
    pub fn effective_max_frame_len(&self) -> u64 {
        self.decoder.header.limit
    }

    fn with_limit(mut self) -> Self {
        let field = &mut self.decoder.header;
        let bits = field.width.bytes() as u32 * 8 - u32::from(field.signed);
        let field_max = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        field.limit = (self.max_frame_len as u64).min(field_max);
        self
    }

    /// Size of the length field, in bytes.
    pub fn header_len(&self) -> usize {
        self.decoder.header.width.bytes()
    }
}

impl Decoder for LengthPrefixedCodec {
    type Item = Bytes;
    type Error = FramingError;

    #[inline(always)]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        Ok(self.decoder.decode(src)?.map(|((), body)| body))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        Ok(self.decoder.decode_eof(src)?.map(|((), body)| body))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for LengthPrefixedCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        let len = payload.len() as u64;
        let LengthField { width, endian, limit: max, .. } = self.decoder.header;
        if len > max {
            return Err(FramingError::FrameTooLarge { len, max });
        }
        dst.reserve(width.bytes() + payload.len());
        // `len <= limit`, which the field width caps, so the narrowing casts are exact.
        // `extend_from_slice` inlines to a store of the field; `put_u32` would be a call.
        match (width, endian) {
            (HeaderWidth::U8, _) => dst.extend_from_slice(&[len as u8]),
            (HeaderWidth::U16, Endian::Big) => dst.extend_from_slice(&(len as u16).to_be_bytes()),
            (HeaderWidth::U16, Endian::Little) => dst.extend_from_slice(&(len as u16).to_le_bytes()),
            (HeaderWidth::U32, Endian::Big) => dst.extend_from_slice(&(len as u32).to_be_bytes()),
            (HeaderWidth::U32, Endian::Little) => dst.extend_from_slice(&(len as u32).to_le_bytes()),
            (HeaderWidth::U64, Endian::Big) => dst.extend_from_slice(&len.to_be_bytes()),
            (HeaderWidth::U64, Endian::Little) => dst.extend_from_slice(&len.to_le_bytes()),
        }
        dst.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    #[test]
    fn reads_every_width_and_byte_order() {
        let cases: [(LengthPrefixedCodec, &[u8]); 5] = [
            (LengthPrefixedCodec::new(HeaderWidth::U8, Endian::Big), b"\x02hi"),
            (LengthPrefixedCodec::u16_be(), b"\x00\x02hi"),
            (LengthPrefixedCodec::new(HeaderWidth::U16, Endian::Little), b"\x02\x00hi"),
            (LengthPrefixedCodec::python_native_i32(), b"\x02\x00\x00\x00hi"),
            (LengthPrefixedCodec::new(HeaderWidth::U64, Endian::Big), b"\x00\x00\x00\x00\x00\x00\x00\x02hi"),
        ];
        for (mut codec, wire) in cases {
            let mut buf = BytesMut::from(wire);
            assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "hi");
            let mut out = BytesMut::new();
            codec.encode("hi", &mut out).unwrap();
            assert_eq!(&out[..], wire);
        }
    }

    #[test]
    fn a_field_read_from_a_whole_word_matches_one_read_alone() {
        // With 8 bytes buffered the field is read from the buffer's first 8 bytes (the
        // first frame here), with fewer from a zero-padded copy (the last one, for fields
        // of 1, 2 and 4 bytes).
        let widths = [HeaderWidth::U8, HeaderWidth::U16, HeaderWidth::U32, HeaderWidth::U64];
        for (width, endian) in widths.into_iter().flat_map(|w| [(w, Endian::Big), (w, Endian::Little)]) {
            let mut codec = LengthPrefixedCodec::new(width, endian);
            let mut wire = BytesMut::new();
            codec.encode(&[7u8; 200][..], &mut wire).unwrap();
            codec.encode("x", &mut wire).unwrap();
            let mut buf = wire.clone();
            assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &[7u8; 200][..], "{width:?} {endian:?}");
            assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "x", "{width:?} {endian:?}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_negative_signed_length_is_an_invalid_header() {
        let mut codec = LengthPrefixedCodec::python_native_i32();
        let mut buf = BytesMut::from(&b"\xff\xff\xff\xffxyz"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("negative length -1"), "{err}");
        assert!(matches!(codec.decode(&mut buf), Err(FramingError::InvalidHeader { .. })));
    }

    #[test]
    fn an_oversized_frame_is_skipped_without_buffering_it() {
        let mut codec = LengthPrefixedCodec::u16_be().max_frame_len(3);
        let mut buf = BytesMut::from(&b"\x00\x05abc"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(FramingError::FrameTooLarge { len: 5, max: 3 })));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
        buf.extend_from_slice(b"de\x00\x02ok");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    }

    #[test]
    fn the_field_width_caps_the_maximum() {
        let mut codec = LengthPrefixedCodec::new(HeaderWidth::U8, Endian::Big);
        assert_eq!(codec.effective_max_frame_len(), 255);
        assert!(matches!(
            codec.encode(vec![0u8; 256], &mut BytesMut::new()),
            Err(FramingError::FrameTooLarge { len: 256, max: 255 })
        ));
        assert_eq!(
            LengthPrefixedCodec::python_native_i32().max_frame_len(usize::MAX).effective_max_frame_len(),
            i32::MAX as u64
        );
    }

    #[test]
    fn a_whole_frame_takes_the_fast_path_and_leaves_no_state() {
        let mut codec = LengthPrefixedCodec::u32_be();
        let mut buf = BytesMut::from(&b"\0\0\0\x02hi\0\0\0\x01!"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "hi");
        assert!(codec.decoder.is_between_frames());
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "!");
        assert!(codec.decoder.is_between_frames());
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_partial_frame_reserves_its_whole_body_once_its_length_is_checked() {
        let mut codec = LengthPrefixedCodec::u32_be().max_frame_len(100_000);
        let mut buf = BytesMut::with_capacity(16);
        buf.put_u32(100_000);
        buf.put_slice(b"abc");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(!codec.decoder.is_between_frames());
        assert!(buf.capacity() >= 100_000, "reserved {}", buf.capacity());

        // One byte over the limit: refused, and nothing reserved for it.
        let mut codec = LengthPrefixedCodec::u32_be().max_frame_len(99_999);
        let mut buf = BytesMut::with_capacity(16);
        buf.put_u32(100_000);
        buf.put_slice(b"abc");
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FramingError::FrameTooLarge { len: 100_000, max: 99_999 })
        ));
        assert!(buf.capacity() <= 16, "reserved {} for a refused frame", buf.capacity());
    }

    #[test]
    fn split_frames_come_out_as_the_fast_path_gives_them() {
        let wire = b"\0\0\0\x05hello\0\0\0\0\0\0\0\x03abc";
        let mut whole = BytesMut::from(&wire[..]);
        let mut fast = Vec::new();
        let mut codec = LengthPrefixedCodec::u32_be();
        while let Some(frame) = codec.decode(&mut whole).unwrap() {
            fast.push(frame);
        }
        for cut in 1..wire.len() {
            let mut codec = LengthPrefixedCodec::u32_be();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut split = Vec::new();
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                split.push(frame);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                split.push(frame);
            }
            assert_eq!(split, fast, "cut at {cut}");
        }
        assert_eq!(fast, ["hello", "", "abc"]);
    }
}
