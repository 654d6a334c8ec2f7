//! Shared driver for the framing fuzz targets.
//!
//! Every target reads its input as: byte 0 = read size (1..=256 bytes per simulated
//! `read`), byte 1 = a configuration byte the target interprets (a limit, a header
//! width), the rest = the byte stream. The driver feeds the stream to the decoder read
//! by read, keeps calling it after errors while they make progress (an error that
//! consumed bytes, such as skipping an oversized body, may let the next call decode; two
//! errors in a row that consume nothing mean the decoder is stuck until more bytes come,
//! so retrying is wasted work), signals end of stream, and checks:
//!
//! - no decoded frame is longer than the limit;
//! - every frame decoded consumes at least one byte (a decoder that yields frames
//!   without consuming would loop forever in a caller);
//! - the read buffer never holds more than the limit plus one read plus a small header
//!   allowance, and its **capacity** (what is allocated, which a hostile length prefix
//!   could inflate by reserving before checking the limit) never exceeds twice that plus
//!   a little for the allocator's rounding.

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
    let check = |item: &D::Item| {
        let len = frame_len(item);
        assert!(len <= max, "decoded a frame of {len} bytes, limit {max}");
    };
    let held_bound = max.saturating_add(input.read_size).saturating_add(slack);
    let capacity_bound = held_bound.saturating_mul(2).saturating_add(1024);
    for chunk in input.stream.chunks(input.read_size) {
        buf.extend_from_slice(chunk);
        decode_while_progressing(&mut buf, |b| decoder.decode(b), &check);
        assert!(buf.len() <= held_bound, "buffer holds {} bytes, limit {max}", buf.len());
        assert!(buf.capacity() <= capacity_bound, "buffer capacity {} bytes, limit {max}", buf.capacity());
    }
    decode_while_progressing(&mut buf, |b| decoder.decode_eof(b), &check);
}

/// Calls `decode` until it needs more bytes, or fails twice in a row without consuming
/// any; checks every frame and that each consumed bytes.
fn decode_while_progressing<T>(
    buf: &mut BytesMut,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, FramingError>,
    check: &impl Fn(&T),
) {
    let mut stuck = 0;
    while stuck < 2 {
        let before = buf.len();
        match decode(buf) {
            Ok(Some(item)) => {
                check(&item);
                assert!(buf.len() < before, "a frame was decoded without consuming a byte");
                stuck = 0;
            }
            Ok(None) => return,
            Err(_) if buf.len() < before => stuck = 0,
            Err(_) => stuck += 1,
        }
    }
}
