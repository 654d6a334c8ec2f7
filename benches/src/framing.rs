//! The framing codec workload: about 1 MiB of equal-sized messages, encoded by every
//! strategy, decoded from memory the way a socket reader would see it.
//!
//! Decode: the encoded stream is appended to a read buffer in 64 KiB chunks, as large
//! socket reads would arrive, and every frame is decoded and dropped, as a user would
//! drop it after use. Encode: the same messages are encoded into one buffer.
//!
//! Every strategy has a **floor** beside it: the simplest correct decoder of the same
//! wire format (read the header and `split_to(n).freeze()`; `memchr` and split; unstuff
//! in place; parse the JSON header), so the ratio socklab / floor is the cost of what the
//! codec adds (state, limits, error handling). tokio-util's codecs are the ecosystem
//! anchors, and `memcpy` of the same payload bytes is the physical limit.
//!
//! Three entries decode the u32 stream through [`decode_framed_read`] instead, reads
//! sized by the buffer's spare capacity as `FramedRead` does: there a decoder that
//! reserves a frame's body as soon as it reads the header makes the reads that complete
//! the frame land in place, which fixed-size appends cannot show.
//!
//! Entries are named; [`run_decode`] and [`run_encode`] run one entry over a prepared
//! [`Streams`] so that the criterion bench (`benches/framing.rs`) and the instruction
//! counter (`examples/framing_instructions.rs`) measure exactly the same code.

use std::hint::black_box;
use std::io;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Map, Value};
use socklab_framing::{
    CobsCodec, DelimitedCodec, FixedSizeCodec, JsonFrame, JsonHeaderCodec, LengthPrefixedCodec, RawCodec,
    VarintCodec,
};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LinesCodec};

/// Message sizes, one criterion group each.
pub const SIZES: [(usize, &str); 4] = [(16, "16B"), (256, "256B"), (4 * 1024, "4KiB"), (64 * 1024, "64KiB")];
/// Payload bytes per iteration.
pub const STREAM_BYTES: usize = 1 << 20;
/// Bytes appended to the read buffer at a time, like one large socket read.
pub const READ_CHUNK: usize = 64 * 1024;
/// Largest frame the floors accept (tokio-util's and socklab's default).
const FLOOR_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Decode entries, in the order the benchmark runs them.
pub const DECODE_ENTRIES: [&str; 20] = [
    "memcpy",
    "tokio-util LengthDelimitedCodec",
    "tokio-util LinesCodec",
    "floor u32be",
    "socklab u32be",
    "floor varint (prost)",
    "socklab varint",
    "floor line",
    "socklab line",
    "floor cobs",
    "socklab cobs",
    "floor fixed",
    "socklab fixed",
    "floor json-header",
    "socklab json-header",
    "floor raw",
    "socklab raw",
    "FramedRead floor u32be",
    "FramedRead tokio-util LengthDelimitedCodec",
    "FramedRead socklab u32be",
];

/// Encode entries, in the order the benchmark runs them.
pub const ENCODE_ENTRIES: [&str; 10] = [
    "memcpy",
    "tokio-util LengthDelimitedCodec",
    "tokio-util LinesCodec",
    "socklab u32be",
    "socklab line",
    "socklab varint",
    "socklab cobs",
    "socklab fixed",
    "socklab json-header",
    "socklab raw",
];

/// `count` messages of `size` printable bytes, never `\n`, so every codec can carry them.
pub fn messages(size: usize) -> Vec<Bytes> {
    let count = (STREAM_BYTES / size).max(8);
    (0..count)
        .map(|i| Bytes::from((0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect::<Vec<u8>>()))
        .collect()
}

fn encode_with<I, E: Encoder<I>>(mut encoder: E, items: impl IntoIterator<Item = I>) -> Vec<u8>
where
    E::Error: std::fmt::Debug,
{
    let mut dst = BytesMut::new();
    for item in items {
        encoder.encode(item, &mut dst).expect("benchmark messages fit every codec");
    }
    dst.to_vec()
}

/// One message size, encoded by every strategy.
pub struct Streams {
    /// Message size, in bytes.
    pub size: usize,
    /// The messages.
    pub messages: Vec<Bytes>,
    /// The same messages as strings, for `LinesCodec`'s encoder.
    pub lines: Vec<String>,
    /// The same messages as JSON-header frames (a header of `size` alone), for its encoder.
    pub json_frames: Vec<JsonFrame>,
    /// Payload bytes in all messages.
    pub payload: usize,
    raw: Vec<u8>,
    line: Vec<u8>,
    cobs: Vec<u8>,
    u32be: Vec<u8>,
    varint: Vec<u8>,
    json: Vec<u8>,
    fixed: Vec<u8>,
}

impl Streams {
    /// Encodes the messages of `size` bytes with every strategy.
    ///
    /// # Panics
    /// If socklab's and tokio-util's u32 length prefixes disagree on the wire format.
    pub fn new(size: usize) -> Self {
        let messages = messages(size);
        let payload = messages.iter().map(Bytes::len).sum();
        let lines =
            messages.iter().map(|m| String::from_utf8(m.to_vec()).expect("messages are ASCII")).collect();
        let json_frames: Vec<JsonFrame> = messages.iter().map(|m| JsonFrame::new(m.clone())).collect();
        let u32be = encode_with(LengthPrefixedCodec::u32_be(), &messages);
        assert_eq!(
            u32be,
            encode_with(LengthDelimitedCodec::new(), messages.iter().cloned()),
            "same wire format"
        );
        Streams {
            size,
            payload,
            lines,
            raw: encode_with(RawCodec, &messages),
            line: encode_with(DelimitedCodec::new(), &messages),
            cobs: encode_with(CobsCodec::new(), &messages),
            u32be,
            varint: encode_with(VarintCodec::new(), &messages),
            json: encode_with(JsonHeaderCodec::new(), &json_frames),
            json_frames,
            fixed: encode_with(FixedSizeCodec::new(size), &messages),
            messages,
        }
    }

    /// Number of messages.
    pub fn count(&self) -> usize {
        self.messages.len()
    }
}

/// Appends `stream` to a read buffer chunk by chunk and decodes (and drops) every frame;
/// returns how many frames were decoded. Never inlined, so that each decoder's loop is
/// compiled on its own, whatever else [`run_decode`] holds.
#[inline(never)]
pub fn decode_all<D: Decoder>(mut decoder: D, stream: &[u8]) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::with_capacity(2 * READ_CHUNK);
    let mut frames = 0;
    for chunk in stream.chunks(READ_CHUNK) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).expect("benchmark stream is valid") {
            black_box(frame);
            frames += 1;
        }
    }
    frames
}

/// Decodes (and drops) every frame of `stream` the way `tokio_util::codec::FramedRead`
/// drives a decoder over a socket that always has data: the buffer starts at
/// `FramedRead`'s 8 KiB, `reserve(1)` comes before every read, and a read fills the
/// buffer's spare capacity, at most [`READ_CHUNK`] bytes. Unlike [`decode_all`], the
/// decoder's own reservations decide how much each read brings.
pub fn decode_framed_read<D: Decoder>(mut decoder: D, stream: &[u8]) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut rest = stream;
    let mut frames = 0;
    loop {
        while let Some(frame) = decoder.decode(&mut buf).expect("benchmark stream is valid") {
            black_box(frame);
            frames += 1;
        }
        if rest.is_empty() {
            return frames;
        }
        buf.reserve(1);
        let (read, tail) = rest.split_at((buf.capacity() - buf.len()).min(READ_CHUNK).min(rest.len()));
        buf.extend_from_slice(read);
        rest = tail;
    }
}

/// Copies the payload bytes into `scratch` in read-sized chunks: what any decoder must
/// at least do with bytes that arrive from a socket.
fn memcpy_chunks(raw: &[u8], scratch: &mut BytesMut) {
    for chunk in raw.chunks(READ_CHUNK) {
        scratch.clear();
        scratch.extend_from_slice(chunk);
        black_box(&*scratch);
    }
}

/// Runs decode entry `entry` once over `streams`; returns the number of frames decoded
/// (for `memcpy`, the number of messages). `scratch` is `memcpy`'s reused buffer.
///
/// # Panics
/// On an unknown entry, or a stream that does not decode.
pub fn run_decode(entry: &str, streams: &Streams, scratch: &mut BytesMut) -> usize {
    let s = streams;
    match entry {
        "memcpy" => {
            memcpy_chunks(&s.raw, scratch);
            s.count()
        }
        "tokio-util LengthDelimitedCodec" => decode_all(LengthDelimitedCodec::new(), &s.u32be),
        "tokio-util LinesCodec" => decode_all(LinesCodec::new(), &s.line),
        "floor u32be" => decode_all(U32Floor, &s.u32be),
        "socklab u32be" => decode_all(LengthPrefixedCodec::u32_be(), &s.u32be),
        "floor varint (prost)" => decode_all(VarintFloor, &s.varint),
        "socklab varint" => decode_all(VarintCodec::new(), &s.varint),
        "floor line" => decode_all(LineFloor, &s.line),
        "socklab line" => decode_all(DelimitedCodec::new(), &s.line),
        "floor cobs" => decode_all(CobsFloor, &s.cobs),
        "socklab cobs" => decode_all(CobsCodec::new(), &s.cobs),
        "floor fixed" => decode_all(FixedFloor(s.size), &s.fixed),
        "socklab fixed" => decode_all(FixedSizeCodec::new(s.size), &s.fixed),
        "floor json-header" => decode_all(JsonHeaderFloor, &s.json),
        "socklab json-header" => decode_all(JsonHeaderCodec::new(), &s.json),
        "floor raw" => decode_all(RawFloor, &s.raw),
        "socklab raw" => decode_all(RawCodec, &s.raw),
        "FramedRead floor u32be" => decode_framed_read(U32Floor, &s.u32be),
        "FramedRead tokio-util LengthDelimitedCodec" => {
            decode_framed_read(LengthDelimitedCodec::new(), &s.u32be)
        }
        "FramedRead socklab u32be" => decode_framed_read(LengthPrefixedCodec::u32_be(), &s.u32be),
        other => panic!("unknown decode entry {other:?}; known: {DECODE_ENTRIES:?}"),
    }
}

/// Runs encode entry `entry` once: clears `dst` and encodes every message of `streams`
/// into it, handing each message over in the cheapest form the codec's API takes: a
/// reference where it accepts one (socklab's codecs, the JSON header codec's frames
/// built beforehand like every other codec's messages), an owned `Bytes` clone where it
/// needs ownership (`LengthDelimitedCodec`: that cost is part of its API). Returns the
/// bytes written.
///
/// # Panics
/// On an unknown entry.
pub fn run_encode(entry: &str, streams: &Streams, dst: &mut BytesMut) -> usize {
    dst.clear();
    let msgs = &streams.messages;
    match entry {
        "memcpy" => msgs.iter().for_each(|m| dst.extend_from_slice(m)),
        "tokio-util LengthDelimitedCodec" => {
            let mut e = LengthDelimitedCodec::new();
            msgs.iter().for_each(|m| e.encode(m.clone(), dst).expect("fits"));
        }
        "tokio-util LinesCodec" => {
            let mut e = LinesCodec::new();
            streams.lines.iter().for_each(|line| e.encode(line, dst).expect("fits"));
        }
        "socklab u32be" => encode_refs(LengthPrefixedCodec::u32_be(), msgs, dst),
        "socklab line" => encode_refs(DelimitedCodec::new(), msgs, dst),
        "socklab varint" => encode_refs(VarintCodec::new(), msgs, dst),
        "socklab cobs" => encode_refs(CobsCodec::new(), msgs, dst),
        "socklab fixed" => encode_refs(FixedSizeCodec::new(streams.size), msgs, dst),
        "socklab json-header" => {
            let mut e = JsonHeaderCodec::new();
            streams.json_frames.iter().for_each(|f| e.encode(f, dst).expect("fits"));
        }
        "socklab raw" => encode_refs(RawCodec, msgs, dst),
        other => panic!("unknown encode entry {other:?}; known: {ENCODE_ENTRIES:?}"),
    }
    black_box(&*dst);
    dst.len()
}

fn encode_refs<E: for<'a> Encoder<&'a Bytes>>(mut encoder: E, msgs: &[Bytes], dst: &mut BytesMut) {
    for m in msgs {
        if encoder.encode(m, dst).is_err() {
            panic!("benchmark messages fit every codec");
        }
    }
}

fn too_large(len: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes over the limit"))
}

/// Floor for u32 big-endian length prefixes: read the header, check the limit,
/// `split_to(n).freeze()`. No state: an incomplete frame's header is read again.
pub struct U32Floor;

impl Decoder for U32Floor {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let Some(head) = src.first_chunk::<4>() else { return Ok(None) };
        let n = u32::from_be_bytes(*head) as usize;
        if n > FLOOR_MAX_FRAME_LEN {
            return Err(too_large(n));
        }
        if src.len() - 4 < n {
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(n).freeze()))
    }
}

/// Floor for varint length prefixes: `prost::encoding::decode_varint`, check the limit,
/// `split_to(n).freeze()`.
pub struct VarintFloor;

impl Decoder for VarintFloor {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let mut head = &src[..];
        let n = match prost::encoding::decode_varint(&mut head) {
            Ok(n) => n as usize,
            // prost cannot tell a cut varint from a bad one; 10 bytes are always enough.
            Err(_) if src.len() < 10 => return Ok(None),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        if n > FLOOR_MAX_FRAME_LEN {
            return Err(too_large(n));
        }
        let header = src.len() - head.len();
        if head.len() < n {
            return Ok(None);
        }
        src.advance(header);
        Ok(Some(src.split_to(n).freeze()))
    }
}

/// Floor for newline-delimited frames: `memchr` over what is buffered, split. No limit
/// and no memory of how far it searched (a frame spanning reads is searched again).
pub struct LineFloor;

impl Decoder for LineFloor {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let Some(end) = memchr::memchr(b'\n', src) else { return Ok(None) };
        let frame = src.split_to(end).freeze();
        src.advance(1);
        Ok(Some(frame))
    }
}

/// Floor for COBS: `memchr` for the `0x00`, split, unstuff in place.
pub struct CobsFloor;

impl Decoder for CobsFloor {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let Some(end) = memchr::memchr(0, src) else { return Ok(None) };
        let mut frame = src.split_to(end);
        src.advance(1);
        let (mut read, mut write) = (0, 0);
        while read < frame.len() {
            let code = usize::from(frame[read]);
            if code == 0 || read + code > frame.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed COBS frame"));
            }
            frame.copy_within(read + 1..read + code, write);
            write += code - 1;
            read += code;
            if code != 0xFF && read < frame.len() {
                frame[write] = 0;
                write += 1;
            }
        }
        frame.truncate(write);
        Ok(Some(frame.freeze()))
    }
}

/// Floor for fixed-size records: `split_to(n).freeze()`.
pub struct FixedFloor(pub usize);

impl Decoder for FixedFloor {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        if src.len() < self.0 {
            return Ok(None);
        }
        Ok(Some(src.split_to(self.0).freeze()))
    }
}

/// Floor for the JSON header scheme: read the header length, parse the header into a
/// map (the frame carries it), read `size`, split the body. No state: an incomplete
/// frame's header is parsed again.
pub struct JsonHeaderFloor;

impl Decoder for JsonHeaderFloor {
    type Item = JsonFrame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<JsonFrame>> {
        let Some(head) = src.first_chunk::<4>() else { return Ok(None) };
        let header_len = u32::from_be_bytes(*head) as usize;
        if header_len > FLOOR_MAX_FRAME_LEN {
            return Err(too_large(header_len));
        }
        if src.len() - 4 < header_len {
            return Ok(None);
        }
        let header: Map<String, Value> = serde_json::from_slice(&src[4..4 + header_len])?;
        let size = header.get("size").and_then(Value::as_u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "header has no non-negative integer size")
        })? as usize;
        if size > FLOOR_MAX_FRAME_LEN {
            return Err(too_large(size));
        }
        if src.len() - 4 - header_len < size {
            return Ok(None);
        }
        src.advance(4 + header_len);
        Ok(Some(JsonFrame { header, body: src.split_to(size).freeze() }))
    }
}

/// Floor for no framing: everything buffered is one frame (what `RawCodec` does).
pub struct RawFloor;

impl Decoder for RawFloor {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        if src.is_empty() { Ok(None) } else { Ok(Some(src.split().freeze())) }
    }
}
