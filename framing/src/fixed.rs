//! Records of one fixed size.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;

/// Records of exactly `N` bytes; no header, no delimiter.
///
/// ```text
/// +----------------+----------------+----
/// | record 0 (N B) | record 1 (N B) | ...
/// +----------------+----------------+----
/// ```
///
/// The encoder rejects a payload of any other length with [`FramingError::WrongSize`];
/// end of stream inside a record is [`FramingError::Truncated`].
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::FixedSizeCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FixedSizeCodec::new(4);
/// let mut wire = BytesMut::new();
/// codec.encode("abcd", &mut wire).unwrap();
/// codec.encode("efgh", &mut wire).unwrap();
/// assert!(codec.encode("too long", &mut wire).is_err());
/// assert_eq!(&wire[..], b"abcdefgh");
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "abcd");
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "efgh");
/// assert_eq!(codec.decode(&mut wire).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedSizeCodec {
    record_len: usize,
}

impl FixedSizeCodec {
    /// Records of `record_len` bytes.
    ///
    /// # Panics
    /// If `record_len` is 0 (a zero-length record would make the decoder yield forever).
    pub fn new(record_len: usize) -> Self {
        assert!(record_len > 0, "FixedSizeCodec record length must be at least 1 byte");
        FixedSizeCodec { record_len }
    }

    /// The record length, in bytes.
    pub fn record_len(&self) -> usize {
        self.record_len
    }
}

impl Decoder for FixedSizeCodec {
    type Item = Bytes;
    type Error = FramingError;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if src.len() >= self.record_len {
            Ok(Some(src.split_to(self.record_len).freeze()))
        } else {
            // The record length is the caller's own configuration, so reserving it is safe.
            src.reserve(self.record_len - src.len());
            Ok(None)
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let got = src.len() as u64;
                src.clear();
                Err(FramingError::Truncated { expected: self.record_len as u64, got })
            }
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FixedSizeCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        if payload.len() != self.record_len {
            return Err(FramingError::WrongSize { len: payload.len(), expected: self.record_len });
        }
        dst.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eof_inside_a_record_is_truncated() {
        let mut codec = FixedSizeCodec::new(4);
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap().unwrap(), "abcd");
        assert!(matches!(codec.decode_eof(&mut buf), Err(FramingError::Truncated { expected: 4, got: 2 })));
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }
}
