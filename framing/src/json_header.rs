//! The "header dict" scheme: a length, a JSON header that carries `size`, then the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

use super::length_prefixed::Endian;
use super::{FramingError, lost_boundary, skip_reported};

/// Default maximum JSON header length: 64 KiB.
const DEFAULT_MAX_HEADER_LEN: usize = 64 * 1024;
/// Default maximum body length: 8 MiB.
const DEFAULT_MAX_BODY_LEN: usize = 8 * 1024 * 1024;
/// Width of the header length field.
const LEN_FIELD: usize = 4;

/// One decoded (or to-be-encoded) frame of the JSON header scheme.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonFrame {
    /// The JSON header object. On decode it holds everything the peer sent, `size`
    /// included; on encode `size` is set from the body and any other value is replaced.
    pub header: Map<String, Value>,
    /// The body, `size` bytes.
    pub body: Bytes,
}

impl JsonFrame {
    /// A frame with this body and a header holding only `size`.
    pub fn new(body: impl Into<Bytes>) -> Self {
        JsonFrame { header: Map::new(), body: body.into() }
    }

    /// Adds a header field (`name`, `desc`, anything the peer understands).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.header.insert(key.into(), value.into());
        self
    }

    /// The `name` header field, when it is a string.
    pub fn name(&self) -> Option<&str> {
        self.header.get("name").and_then(Value::as_str)
    }
}

/// The "header dict" scheme many tutorials use for file transfer: a 4-byte length, a
/// JSON object header that must carry `size` (and may carry `name`, `desc`, anything
/// else), then `size` body bytes.
///
/// ```text
/// +----------------+----------------------------------+-----------------+
/// | header length  | JSON header (UTF-8 object)       | body            |
/// | 4 bytes, BE    | {"size":5,"name":"a.txt"}        | size bytes      |
/// +----------------+----------------------------------+-----------------+
/// ```
///
/// Defaults: header length big-endian (Python `struct.pack('!I', n)`; use
/// [`endian`](Self::endian) for peers that send `struct.pack('i', n)`, which is
/// little-endian), maximum header 64 KiB, maximum body 8 MiB. Both limits are checked
/// before memory is reserved ([`FramingError::FrameTooLarge`]). A header that is not a
/// JSON object, or whose `size` is missing or not a non-negative integer, is
/// [`FramingError::InvalidHeader`]. After an oversized or invalid header the body length
/// is unknown and the stream cannot be resynchronised: every later call returns an
/// error and discards what is buffered.
/// An oversized body is skipped unbuffered and decoding goes on. The body is cut out of
/// the read buffer without copying.
///
/// ```
/// use bytes::BytesMut;
/// use socklab_framing::{JsonFrame, JsonHeaderCodec};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = JsonHeaderCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode(JsonFrame::new("hello").with("name", "a.txt"), &mut wire).unwrap();
/// let frame = codec.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(frame.name(), Some("a.txt"));
/// assert_eq!(frame.header["size"], 5);
/// assert_eq!(frame.body, "hello");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JsonHeaderCodec {
    endian: Endian,
    max_header_len: usize,
    max_body_len: usize,
    state: State,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Waiting for the header length field.
    Head,
    /// Waiting for a JSON header of this many bytes.
    Header(usize),
    /// Waiting for a body of `size` bytes.
    Body { header: Map<String, Value>, header_len: usize, size: usize },
    /// Skipping the rest of an oversized body that was already reported.
    Skip(u64),
    /// The stream position is lost.
    Failed(String),
}

impl Default for JsonHeaderCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonHeaderCodec {
    /// Big-endian header length, headers up to 64 KiB, bodies up to 8 MiB.
    pub fn new() -> Self {
        JsonHeaderCodec {
            endian: Endian::Big,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            max_body_len: DEFAULT_MAX_BODY_LEN,
            state: State::Head,
        }
    }

    /// Sets the byte order of the header length field; default big-endian.
    pub fn endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// Sets the maximum JSON header length in bytes; default 64 KiB (capped at u32::MAX).
    pub fn max_header_len(mut self, max_header_len: usize) -> Self {
        self.max_header_len = max_header_len;
        self
    }

    /// Sets the maximum body length in bytes; default 8 MiB.
    pub fn max_body_len(mut self, max_body_len: usize) -> Self {
        self.max_body_len = max_body_len;
        self
    }

    fn fail(&mut self, err: FramingError) -> FramingError {
        self.state = State::Failed(format!("stream lost after an earlier error: {err}"));
        err
    }

    fn parse_header(&self, raw: &[u8]) -> Result<(Map<String, Value>, u64), FramingError> {
        let header: Map<String, Value> = serde_json::from_slice(raw)
            .map_err(|e| FramingError::invalid_header(format!("header is not a JSON object: {e}")))?;
        let size = match header.get("size") {
            None => return Err(FramingError::invalid_header("header has no \"size\"")),
            Some(v) => v.as_u64().ok_or_else(|| {
                FramingError::invalid_header(format!("header \"size\" is not a non-negative integer: {v}"))
            })?,
        };
        Ok((header, size))
    }
}

impl Decoder for JsonHeaderCodec {
    type Item = JsonFrame;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<JsonFrame>, FramingError> {
        loop {
            match self.state {
                State::Head => {
                    let Some(field) = src.first_chunk::<LEN_FIELD>() else { return Ok(None) };
                    let len = match self.endian {
                        Endian::Big => u32::from_be_bytes(*field),
                        Endian::Little => u32::from_le_bytes(*field),
                    } as u64;
                    if len > self.max_header_len as u64 {
                        let err = FramingError::FrameTooLarge { len, max: self.max_header_len as u64 };
                        return Err(self.fail(err));
                    }
                    src.advance(LEN_FIELD);
                    self.state = State::Header(len as usize);
                }
                State::Header(len) => {
                    if src.len() < len {
                        src.reserve(len - src.len());
                        return Ok(None);
                    }
                    let (header, size) = match self.parse_header(&src[..len]) {
                        Ok(parsed) => parsed,
                        Err(err) => return Err(self.fail(err)),
                    };
                    src.advance(len);
                    if size > self.max_body_len as u64 {
                        self.state = State::Skip(size);
                        return Err(FramingError::FrameTooLarge { len: size, max: self.max_body_len as u64 });
                    }
                    self.state = State::Body { header, header_len: len, size: size as usize };
                }
                State::Body { size, .. } => {
                    if src.len() < size {
                        src.reserve(size - src.len());
                        return Ok(None);
                    }
                    let State::Body { header, .. } = std::mem::replace(&mut self.state, State::Head) else {
                        unreachable!("matched State::Body above")
                    };
                    return Ok(Some(JsonFrame { header, body: src.split_to(size).freeze() }));
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

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<JsonFrame>, FramingError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let got = src.len() as u64;
        let field = LEN_FIELD as u64;
        let truncated = match self.state {
            State::Head if got > 0 => FramingError::Truncated { expected: field, got },
            State::Header(len) => FramingError::Truncated { expected: field + len as u64, got: field + got },
            State::Body { header_len, size, .. } => {
                let before = field + header_len as u64;
                FramingError::Truncated { expected: before + size as u64, got: before + got }
            }
            _ => return Ok(None),
        };
        src.clear();
        self.state = State::Head;
        Err(truncated)
    }
}

impl Encoder<JsonFrame> for JsonHeaderCodec {
    type Error = FramingError;

    fn encode(&mut self, item: JsonFrame, dst: &mut BytesMut) -> Result<(), FramingError> {
        let JsonFrame { mut header, body } = item;
        let size = body.len() as u64;
        if size > self.max_body_len as u64 {
            return Err(FramingError::FrameTooLarge { len: size, max: self.max_body_len as u64 });
        }
        header.insert("size".to_owned(), Value::from(size));
        let start = dst.len();
        dst.put_slice(&[0; LEN_FIELD]);
        // Writing a Map to a BytesMut cannot fail: keys are strings, the writer grows.
        serde_json::to_writer((&mut *dst).writer(), &header).map_err(|e| FramingError::Io(e.into()))?;
        let header_len = dst.len() - start - LEN_FIELD;
        let max = self.max_header_len.min(u32::MAX as usize);
        if header_len > max {
            dst.truncate(start);
            return Err(FramingError::FrameTooLarge { len: header_len as u64, max: max as u64 });
        }
        let field = match self.endian {
            Endian::Big => (header_len as u32).to_be_bytes(),
            Endian::Little => (header_len as u32).to_le_bytes(),
        };
        dst[start..start + LEN_FIELD].copy_from_slice(&field);
        dst.reserve(body.len());
        dst.put_slice(&body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with_header(json: &str, body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(json.len() as u32);
        buf.put_slice(json.as_bytes());
        buf.put_slice(body);
        buf
    }

    #[test]
    fn decodes_a_python_style_header_with_extra_fields() {
        let mut buf = frame_with_header(r#"{"name": "a.txt", "desc": "demo", "size": 3}"#, b"abc");
        let frame = JsonHeaderCodec::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.header["desc"], "demo");
        assert_eq!(frame.body, "abc");
    }

    #[test]
    fn a_header_without_a_valid_size_is_an_invalid_header() {
        for json in
            [r#"{"name": "a"}"#, r#"{"size": -1}"#, r#"{"size": "3"}"#, r#"{"size": 1.5}"#, "[1]", "{"]
        {
            let mut buf = frame_with_header(json, b"abc");
            let mut codec = JsonHeaderCodec::new();
            assert!(matches!(codec.decode(&mut buf), Err(FramingError::InvalidHeader { .. })), "{json}");
            assert!(codec.decode(&mut buf).is_err(), "stays failed after {json}");
        }
    }

    #[test]
    fn the_encoder_sets_size_and_the_little_endian_variant_reads_python_native_headers() {
        let mut codec = JsonHeaderCodec::new().endian(Endian::Little);
        let mut wire = BytesMut::new();
        codec.encode(JsonFrame::new("xy").with("size", 99), &mut wire).unwrap();
        assert_eq!(&wire[..4], b"\x0a\x00\x00\x00");
        assert_eq!(&wire[4..], br#"{"size":2}xy"#);
        let frame = codec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(frame.header["size"], 2);
    }
}
