//! Shared driver for the framing fuzz targets.
//!
//! Every target reads its input as: byte 0 = read size (1..=256 bytes per simulated
//! `read`), byte 1 = a configuration byte the target interprets (a limit, a header
//! width), the rest = the byte stream. The driver feeds the stream to the decoder read
//! by read, keeps calling it after errors (bounded, so a decoder that stays failed
//! cannot hang the fuzzer), signals end of stream, and checks that no decoded frame is
//! longer than the limit and that the read buffer never holds more than the limit plus
//! one read plus a small header allowance.

use bytes::BytesMut;
use socklab_framing::FramingError;
use tokio_util::codec::Decoder;

/// An input split into its parts.
pub struct Input<'a> {
    /// Bytes per simulated read.
    pub read_size: usize,
    /// The configuration byte.
    pub config: u8,
    /// The stream.
    pub stream: &'a [u8],
}

/// Splits fuzzer data into read size, configuration byte and stream.
pub fn split(data: &[u8]) -> Option<Input<'_>> {
    match data {
        [read, config, stream @ ..] => {
            Some(Input { read_size: usize::from(*read) + 1, config: *config, stream })
        }
        _ => None,
    }
}

/// Decodes `input.stream` with `decoder`; panics (a fuzz finding) when a frame is longer
/// than `max` or the buffer grows past `max + read_size + slack` bytes.
pub fn drive<D>(
    mut decoder: D,
    input: &Input<'_>,
    frame_len: impl Fn(&D::Item) -> usize,
    max: usize,
    slack: usize,
) where
    D: Decoder<Error = FramingError>,
{
    let mut buf = BytesMut::new();
    let bound = input.stream.len() + 2;
    let check = |item: &D::Item| {
        let len = frame_len(item);
        assert!(len <= max, "decoded a frame of {len} bytes, limit {max}");
    };
    for chunk in input.stream.chunks(input.read_size) {
        buf.extend_from_slice(chunk);
        // Keep decoding after errors, as a caller that skips bad frames would: an error
        // may leave bytes the next call consumes (an oversized body to skip).
        for _ in 0..bound {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => check(&item),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert!(
            buf.len() <= max.saturating_add(input.read_size).saturating_add(slack),
            "buffer holds {} bytes, limit {max}",
            buf.len()
        );
    }
    for _ in 0..bound {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(item)) => check(&item),
            Ok(None) | Err(_) => break,
        }
    }
}
