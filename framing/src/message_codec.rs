//! One codec type for every framing strategy, chosen at run time.
//!
//! Peers are configured by a [`FramingStrategy`] name, so they need a single type that
//! decodes frames into payload bytes and encodes payload bytes into frames whatever the
//! strategy. [`MessageCodec`] is that type: an enum over the framing codecs, itself a
//! [`Decoder`] and [`Encoder`]. The JSON-header scheme is mapped to its body (the header
//! carries `size`), so every strategy yields plain payloads.

use bytes::{Bytes, BytesMut};
use serde_json::Map;
use tokio_util::codec::{Decoder, Encoder};

use crate::{
    CobsCodec, DelimitedCodec, FixedSizeCodec, FramingError, FramingStrategy, JsonHeaderCodec,
    LengthPrefixedCodec, RawCodec, VarintCodec,
};

/// A framing codec chosen by strategy.
#[derive(Debug)]
pub enum MessageCodec {
    /// See [`RawCodec`].
    Raw(RawCodec),
    /// See [`DelimitedCodec`].
    Delimited(DelimitedCodec),
    /// See [`CobsCodec`].
    Cobs(CobsCodec),
    /// See [`LengthPrefixedCodec`].
    LengthPrefixed(LengthPrefixedCodec),
    /// See [`VarintCodec`].
    Varint(VarintCodec),
    /// See [`JsonHeaderCodec`]; frames are reduced to their bodies.
    JsonHeader(JsonHeaderCodec),
    /// See [`FixedSizeCodec`].
    FixedSize(FixedSizeCodec),
}

impl MessageCodec {
    /// The codec of `strategy` with frames limited to `max_frame_len` bytes, or `None`
    /// for stop-and-wait, which is a protocol rather than a codec.
    pub fn new(strategy: FramingStrategy, max_frame_len: usize) -> Option<Self> {
        Some(match strategy {
            FramingStrategy::Raw => MessageCodec::Raw(RawCodec),
            FramingStrategy::Line => {
                MessageCodec::Delimited(DelimitedCodec::new().max_frame_len(max_frame_len))
            }
            FramingStrategy::Cobs => MessageCodec::Cobs(CobsCodec::new().max_frame_len(max_frame_len)),
            FramingStrategy::LengthPrefixed { width, endian, signed } => MessageCodec::LengthPrefixed(
                LengthPrefixedCodec::new(width, endian).signed(signed).max_frame_len(max_frame_len),
            ),
            FramingStrategy::Varint => MessageCodec::Varint(VarintCodec::new().max_frame_len(max_frame_len)),
            FramingStrategy::JsonHeader(layout) => {
                MessageCodec::JsonHeader(JsonHeaderCodec::new().layout(layout).max_body_len(max_frame_len))
            }
            FramingStrategy::FixedSize(n) => MessageCodec::FixedSize(FixedSizeCodec::new(n)),
            FramingStrategy::StopAndWait => return None,
        })
    }
}

impl Decoder for MessageCodec {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self {
            MessageCodec::Raw(c) => c.decode(src),
            MessageCodec::Delimited(c) => c.decode(src),
            MessageCodec::Cobs(c) => c.decode(src),
            MessageCodec::LengthPrefixed(c) => c.decode(src),
            MessageCodec::Varint(c) => c.decode(src),
            MessageCodec::JsonHeader(c) => Ok(c.decode(src)?.map(|frame| frame.body)),
            MessageCodec::FixedSize(c) => c.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self {
            MessageCodec::Raw(c) => c.decode_eof(src),
            MessageCodec::Delimited(c) => c.decode_eof(src),
            MessageCodec::Cobs(c) => c.decode_eof(src),
            MessageCodec::LengthPrefixed(c) => c.decode_eof(src),
            MessageCodec::Varint(c) => c.decode_eof(src),
            MessageCodec::JsonHeader(c) => Ok(c.decode_eof(src)?.map(|frame| frame.body)),
            MessageCodec::FixedSize(c) => c.decode_eof(src),
        }
    }
}

impl Encoder<&[u8]> for MessageCodec {
    type Error = FramingError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FramingError> {
        match self {
            MessageCodec::Raw(c) => c.encode(payload, dst),
            MessageCodec::Delimited(c) => c.encode(payload, dst),
            MessageCodec::Cobs(c) => c.encode(payload, dst),
            MessageCodec::LengthPrefixed(c) => c.encode(payload, dst),
            MessageCodec::Varint(c) => c.encode(payload, dst),
            MessageCodec::JsonHeader(c) => c.encode_parts(&Map::new(), payload, dst),
            MessageCodec::FixedSize(c) => c.encode(payload, dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_strategy_round_trips_a_payload() {
        for strategy in FramingStrategy::EXAMPLES {
            let Some(mut codec) = MessageCodec::new(strategy, 1 << 20) else {
                assert_eq!(strategy, FramingStrategy::StopAndWait);
                continue;
            };
            let payload = vec![b'x'; 64];
            let mut wire = BytesMut::new();
            codec.encode(payload.as_slice(), &mut wire).unwrap();
            assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some(payload.as_slice()), "{strategy}");
        }
    }
}
