//! socklab-framing: how a byte stream is cut back into the messages that were written
//! into it — the codecs socklab benchmarks, usable on their own.
//!
//! This crate depends on `bytes`, `tokio-util` (codecs), `tokio` (I/O traits, for the
//! stop-and-wait protocol), `memchr`, `serde_json` and `thiserror` only, so it can go into
//! a `Framed` without building socklab's packet capture or report renderers.
//!
//! TCP delivers bytes, not messages: three `write`s can arrive as two `read`s, or as
//! four (the "sticky packet" problem). A framing strategy puts enough structure into the
//! stream that the receiver can find every message boundary again, whatever the reads.
//!
//! Every codec here implements [`tokio_util::codec::Decoder`] and
//! [`tokio_util::codec::Encoder`], so it drops into `tokio_util::codec::Framed`,
//! `FramedRead` or `FramedWrite`:
//!
//! | strategy | codec | frame on the wire |
//! |---|---|---|
//! | `raw` | [`RawCodec`] | none: every read is a "message" (the sticky-packet baseline) |
//! | `line` | [`DelimitedCodec`] | payload, delimiter byte (`\n`) |
//! | `cobs` | [`CobsCodec`] | byte-stuffed payload, `0x00` |
//! | `u32be`, `u32le`, `u16be`, … | [`LengthPrefixedCodec`] | length (1/2/4/8 bytes), payload |
//! | `varint` | [`VarintCodec`] | LEB128 length, payload |
//! | `json-header`, `json-header:le:file_size` | [`JsonHeaderCodec`] | 4-byte length (BE or LE), JSON header with the body's size under `size` (or another key), body |
//! | `fixed:N` | [`FixedSizeCodec`] | exactly N bytes |
//! | `stop-and-wait` | [`stop_and_wait`] | a protocol, not a codec: length, ACK, body |
//!
//! The encoders accept any `T: AsRef<[u8]>` (`Bytes`, `&[u8]`, `Vec<u8>`, `&str`), because
//! an encoder copies the payload into the output buffer whatever it is handed; the JSON
//! header codec encodes a [`JsonFrame`]. Decoders yield [`bytes::Bytes`] cut out of the
//! read buffer without copying (`split_to(n).freeze()`), except COBS, which unstuffs
//! in place inside the frame it cut out.
//!
//! All codecs share one error type, [`FramingError`]. Length limits are checked as soon
//! as a length is known and **before** any memory is reserved for the frame, so a hostile
//! length prefix costs nothing but the error.
//!
//! The length-prefix, varint and JSON-header codecs share one decoder and differ only in
//! how they read their header; the delimiter and COBS codecs share one search. In both, a
//! frame that is already whole in the read buffer is cut out by a short inlined path, and
//! only a frame split across reads goes through the decoder's states. A length-announcing
//! decoder reserves a frame's whole body as soon as it has read the header and checked
//! the length, so the reads that complete a large frame land in place instead of growing
//! the buffer step by step.
//!
//! [`FramingStrategy`] names a strategy as a string (`u32be`, `fixed:64`, …) for suites
//! and the command line; its `Display` output parses back to the same value.
//! [`MessageCodec`] is one codec over every strategy, chosen at run time from that name.

use std::fmt;
use std::io;
use std::str::FromStr;

use bytes::{Buf, BytesMut};

mod announced;
mod cobs;
mod delimited;
mod fixed;
mod json_header;
mod length_prefixed;
mod message_codec;
mod raw;
pub mod stop_and_wait;
mod varint;

pub use cobs::CobsCodec;
pub use delimited::DelimitedCodec;
pub use fixed::FixedSizeCodec;
pub use json_header::{JsonFrame, JsonHeaderCodec, JsonLayout, SizeKey};
pub use length_prefixed::{Endian, HeaderWidth, LengthPrefixedCodec};
pub use message_codec::MessageCodec;
pub use raw::RawCodec;
pub use varint::VarintCodec;

/// Everything that can go wrong while framing or unframing, for every codec.
///
/// Each variant carries the numbers needed to understand it; no variant hides inside an
/// [`io::Error`] that callers would have to downcast. [`FramingError::Io`]'s message
/// includes the I/O error, so `source()` is `None`: a chain printer such as anyhow's
/// `{:#}` shows the cause once.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// A frame (or a frame header) is longer than the configured limit. Raised by the
    /// decoder as soon as the length is known, before any memory is reserved for it, and
    /// by the encoder for an oversized payload.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Length announced by the peer (or the payload length, when encoding), in bytes.
        /// For delimiter-based codecs: the bytes seen without finding a delimiter.
        len: u64,
        /// The configured limit, in bytes.
        max: u64,
    },
    /// A header could not be understood: a negative or overlong length, a JSON header
    /// that is not an object or has no valid `size`, a malformed COBS block.
    #[error("invalid frame header: {reason}")]
    InvalidHeader {
        /// What was wrong, in plain words.
        reason: String,
    },
    /// The stream ended in the middle of a frame (raised from `decode_eof`).
    #[error("stream ended mid-frame: expected at least {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the current frame needs (header included), as far as the decoder knows.
        expected: u64,
        /// Bytes of that frame that had arrived.
        got: u64,
    },
    /// A fixed-size codec was asked to encode a payload of the wrong length.
    #[error("payload of {len} bytes does not fit records of exactly {expected} bytes")]
    WrongSize {
        /// Length of the payload, in bytes.
        len: usize,
        /// The record size, in bytes.
        expected: usize,
    },
    /// A delimiter codec was asked to encode a payload containing its delimiter, which
    /// the receiver would split into two frames.
    #[error("payload contains the delimiter byte {delimiter:#04x} at offset {position}")]
    DelimiterInPayload {
        /// The codec's delimiter byte.
        delimiter: u8,
        /// Offset of its first occurrence in the payload.
        position: usize,
    },
    /// The underlying reader or writer failed.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for FramingError {
    fn from(error: io::Error) -> Self {
        FramingError::Io(error)
    }
}

impl FramingError {
    pub(crate) fn invalid_header(reason: impl Into<String>) -> Self {
        FramingError::InvalidHeader { reason: reason.into() }
    }
}

/// Skips up to `remaining` bytes of an oversized frame whose error was already returned;
/// returns how many are still to skip (0: the next frame starts here). Shared by the
/// codecs that announce lengths, so none of them buffers a hostile frame.
pub(crate) fn skip_reported(src: &mut BytesMut, remaining: u64) -> u64 {
    let n = remaining.min(src.len() as u64);
    src.advance(n as usize);
    remaining - n
}

/// The error a length-announcing codec keeps returning once it has lost the frame
/// boundary; what is buffered is dropped, since nothing after it can be decoded.
pub(crate) fn lost_boundary(src: &mut BytesMut, reason: &str) -> FramingError {
    src.clear();
    FramingError::invalid_header(reason)
}

/// A framing strategy by name, as suites and the command line spell it.
///
/// | string | strategy |
/// |---|---|
/// | `raw` | [`RawCodec`] |
/// | `line` | [`DelimitedCodec`] with `\n` |
/// | `cobs` | [`CobsCodec`] |
/// | `u8`, `u16be`, `u16le`, `u32be`, `u32le`, `u64be`, `u64le` | [`LengthPrefixedCodec`], unsigned |
/// | `i16be` … `i64le`, e.g. `i32le` (Python `struct.pack('i', n)`) | [`LengthPrefixedCodec`], signed |
/// | `varint` | [`VarintCodec`] |
/// | `json-header` | [`JsonHeaderCodec`] |
/// | `fixed:N` (N ≥ 1) | [`FixedSizeCodec`] |
/// | `stop-and-wait` | the [`stop_and_wait`] protocol |
///
/// ```
/// use socklab_framing::FramingStrategy;
///
/// let s: FramingStrategy = "fixed:64".parse().unwrap();
/// assert_eq!(s, FramingStrategy::FixedSize(64));
/// assert_eq!(s.to_string(), "fixed:64");
/// assert!("u24be".parse::<FramingStrategy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FramingStrategy {
    /// No framing at all.
    Raw,
    /// Newline-delimited frames.
    Line,
    /// Zero-delimited, COBS-stuffed frames.
    Cobs,
    /// A fixed-width length prefix.
    LengthPrefixed {
        /// Width of the length field.
        width: HeaderWidth,
        /// Byte order of the length field.
        endian: Endian,
        /// Whether the length field is a signed integer (negative values are rejected).
        signed: bool,
    },
    /// A LEB128 varint length prefix.
    Varint,
    /// A 4-byte length, a JSON header carrying the body's size, then the body.
    JsonHeader(JsonLayout),
    /// Records of exactly this many bytes (never 0).
    FixedSize(usize),
    /// Announce the length, wait for an ACK, send the body.
    StopAndWait,
}

impl FramingStrategy {
    /// Every name [`FromStr`] accepts except `fixed:N` (records of N bytes, any N >= 1),
    /// in the order documentation and error messages list them.
    pub const NAMES: &'static [&'static str] = &[
        "raw",
        "line",
        "cobs",
        "u8",
        "i8",
        "u16be",
        "u16le",
        "i16be",
        "i16le",
        "u32be",
        "u32le",
        "i32be",
        "i32le",
        "u64be",
        "u64le",
        "i64be",
        "i64le",
        "varint",
        "json-header",
        "stop-and-wait",
    ];

    /// One example of every strategy, in the order documentation lists them.
    pub const EXAMPLES: [FramingStrategy; 10] = [
        FramingStrategy::Raw,
        FramingStrategy::Line,
        FramingStrategy::Cobs,
        FramingStrategy::LengthPrefixed { width: HeaderWidth::U32, endian: Endian::Big, signed: false },
        FramingStrategy::LengthPrefixed { width: HeaderWidth::U32, endian: Endian::Little, signed: false },
        FramingStrategy::LengthPrefixed { width: HeaderWidth::U16, endian: Endian::Big, signed: false },
        FramingStrategy::Varint,
        FramingStrategy::JsonHeader(JsonLayout::DEFAULT),
        FramingStrategy::FixedSize(64),
        FramingStrategy::StopAndWait,
    ];

    /// One line saying what the strategy does, for `socklab list` and reports.
    pub fn summary(&self) -> &'static str {
        match self {
            FramingStrategy::Raw => "no framing: every read is a message (shows sticky packets)",
            FramingStrategy::Line => "payload then '\\n'; payloads must not contain '\\n'",
            FramingStrategy::Cobs => "consistent-overhead byte stuffing, frames end in 0x00; any payload",
            FramingStrategy::LengthPrefixed { .. } => "fixed-width length prefix, then the payload",
            FramingStrategy::Varint => "LEB128 varint length prefix (protobuf style), then the payload",
            FramingStrategy::JsonHeader(_) => {
                "4-byte length, JSON header with the body's size, then the body"
            }
            FramingStrategy::FixedSize(_) => "records of exactly N bytes",
            FramingStrategy::StopAndWait => "announce the length, wait for the receiver's ACK, send the body",
        }
    }
}

impl fmt::Display for FramingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingStrategy::Raw => f.write_str("raw"),
            FramingStrategy::Line => f.write_str("line"),
            FramingStrategy::Cobs => f.write_str("cobs"),
            FramingStrategy::LengthPrefixed { width, endian, signed } => {
                let sign = if *signed { 'i' } else { 'u' };
                let bits = width.bytes() * 8;
                match (width, endian) {
                    (HeaderWidth::U8, _) => write!(f, "{sign}{bits}"),
                    (_, Endian::Big) => write!(f, "{sign}{bits}be"),
                    (_, Endian::Little) => write!(f, "{sign}{bits}le"),
                }
            }
            FramingStrategy::Varint => f.write_str("varint"),
            FramingStrategy::JsonHeader(layout) => write!(f, "json-header{layout}"),
            FramingStrategy::FixedSize(n) => write!(f, "fixed:{n}"),
            FramingStrategy::StopAndWait => f.write_str("stop-and-wait"),
        }
    }
}

/// A string that names no framing strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown framing strategy {input:?}: expected one of {}, json-header:be|le[:SIZE_KEY], fixed:N (N >= 1)",
    FramingStrategy::NAMES.join(", ")
)]
pub struct UnknownStrategy {
    /// The string as given.
    pub input: String,
}

impl FromStr for FramingStrategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownStrategy { input: s.to_owned() };
        let strategy = match s {
            "raw" => FramingStrategy::Raw,
            "line" => FramingStrategy::Line,
            "cobs" => FramingStrategy::Cobs,
            "varint" => FramingStrategy::Varint,
            "stop-and-wait" => FramingStrategy::StopAndWait,
            _ => {
                if let Some(layout) = s.strip_prefix("json-header") {
                    FramingStrategy::JsonHeader(layout.parse().map_err(|_| unknown())?)
                } else if let Some(n) = s.strip_prefix("fixed:") {
                    // Only canonical decimal, so that Display round-trips exactly.
                    if n.starts_with('+') || (n.len() > 1 && n.starts_with('0')) {
                        return Err(unknown());
                    }
                    match n.parse::<usize>() {
                        Ok(n) if n > 0 => FramingStrategy::FixedSize(n),
                        _ => return Err(unknown()),
                    }
                } else {
                    parse_length_prefix(s).ok_or_else(unknown)?
                }
            }
        };
        Ok(strategy)
    }
}

fn parse_length_prefix(s: &str) -> Option<FramingStrategy> {
    let (signed, rest) = match s.as_bytes().first()? {
        b'u' => (false, &s[1..]),
        b'i' => (true, &s[1..]),
        _ => return None,
    };
    let (bits, endian) = if rest == "8" {
        ("8", Endian::Big)
    } else if let Some(bits) = rest.strip_suffix("be") {
        (bits, Endian::Big)
    } else if let Some(bits) = rest.strip_suffix("le") {
        (bits, Endian::Little)
    } else {
        return None;
    };
    let width = match bits {
        "8" if rest == "8" => HeaderWidth::U8,
        "16" => HeaderWidth::U16,
        "32" => HeaderWidth::U32,
        "64" => HeaderWidth::U64,
        _ => return None,
    };
    Some(FramingStrategy::LengthPrefixed { width, endian, signed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_round_trips_through_display() {
        for s in FramingStrategy::EXAMPLES {
            assert_eq!(s.to_string().parse::<FramingStrategy>(), Ok(s), "{s}");
            assert!(!s.summary().is_empty());
        }
    }

    #[test]
    fn every_name_parses_and_round_trips() {
        for name in FramingStrategy::NAMES {
            let s: FramingStrategy = name.parse().unwrap();
            assert_eq!(s.to_string(), *name);
        }
        // Every example's name is listed (fixed:N apart).
        for s in FramingStrategy::EXAMPLES {
            let name = s.to_string();
            assert!(FramingStrategy::NAMES.contains(&name.as_str()) || name.starts_with("fixed:"), "{name}");
        }
    }

    #[test]
    fn every_width_sign_and_byte_order_has_a_name() {
        for width in ["8", "16", "32", "64"] {
            for sign in ["u", "i"] {
                let orders: &[&str] = if width == "8" { &[""] } else { &["be", "le"] };
                for order in orders {
                    let name = format!("{sign}{width}{order}");
                    assert!(
                        FramingStrategy::NAMES.contains(&name.as_str()),
                        "{name} is parsed but not listed"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_unknown_names_and_lists_the_valid_ones() {
        for bad in ["", "u8be", "u24be", "u32", "fixed:0", "fixed:", "fixed:+4", "fixed:07", "LINE", "x32be"]
        {
            let err = bad.parse::<FramingStrategy>().unwrap_err();
            assert!(err.to_string().contains("json-header"), "{bad}: {err}");
        }
    }
}
