//! No framing at all: the sticky-packet baseline.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FramingError;

/// No framing: whatever one read delivered is one "message".
///
/// ```text
/// write("1234567") write("abcde") write("hhhhh")
/// wire:  1234567abcdehhhhh            (no boundaries are sent)
/// reads: 12345 | 67abc | dehhh | hh   (5-byte reads: the messages are lost)
/// ```
///
/// The encoder copies the payload unchanged; the decoder returns everything buffered.
/// It exists to show what goes wrong without framing, and as the cheapest point in the
/// benchmarks.
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::RawCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = RawCodec;
/// let mut wire = BytesMut::new();
/// codec.encode("hello ", &mut wire).unwrap();
/// codec.encode("world", &mut wire).unwrap();
/// // Two writes, one read: the boundary is gone.
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "hello world");
/// assert_eq!(codec.decode(&mut wire).unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawCodec;

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = FramingError;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if src.is_empty() { Ok(None) } else { Ok(Some(src.split().freeze())) }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for RawCodec {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        dst.extend_from_slice(item.as_ref());
        Ok(())
    }
}
