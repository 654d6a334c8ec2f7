//! The client's side of a framing: the frames it writes, where it cuts them into writes
//! (the chunkings of `reassembly`), the hostile length prefix of each length framing, and
//! decoding what comes back.

use bytes::{Bytes, BytesMut};
use socklab_harness::framing::{Endian, FramingStrategy, HeaderWidth, MessageCodec, stop_and_wait};
use socklab_harness::peer::Behaviour;
use socklab_harness::peer::payload;
use tokio_util::codec::{Decoder, Encoder};

/// Largest reply frame the client decodes: replies are never larger than what was sent,
/// and a garbage length above this is reported, not allocated.
pub(crate) const MAX_REPLY_FRAME: usize = 64 << 20;

/// A framing as the client uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wire(pub FramingStrategy);

impl Wire {
    /// Stop-and-wait is a protocol (length, ACK, body), not a codec over a byte stream.
    pub(crate) fn is_stop_and_wait(self) -> bool {
        self.0 == FramingStrategy::StopAndWait
    }

    /// Raw has no boundaries: only the bytes can be checked.
    pub(crate) fn is_raw(self) -> bool {
        self.0 == FramingStrategy::Raw
    }

    /// The codec of a stream framing; `None` for stop-and-wait.
    pub(crate) fn codec(self) -> Option<MessageCodec> {
        MessageCodec::new(self.0, MAX_REPLY_FRAME)
    }

    /// `payload` as a frame on the wire; for stop-and-wait, its length header then its
    /// body (which the protocol sends with an ACK between).
    pub(crate) fn frame(self, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        match self.codec() {
            Some(mut codec) => {
                // Parameters were validated against the framing's limits, so this cannot
                // fail; a payload that did would show up as a missing reply.
                let _ = codec.encode(payload, &mut out);
            }
            None => {
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                out.extend_from_slice(payload);
            }
        }
        out.freeze()
    }

    /// Bytes of `frame` before its payload (a length prefix or JSON header), and after it
    /// (a delimiter).
    pub(crate) fn overhead(self, frame_len: usize, payload_len: usize) -> (usize, usize) {
        match self.0 {
            FramingStrategy::Line | FramingStrategy::Cobs => (0, frame_len.saturating_sub(payload_len)),
            _ => (frame_len.saturating_sub(payload_len), 0),
        }
    }

    /// Where `reassembly`'s header cut falls in a frame: inside the length prefix when it
    /// has two bytes or more, just after a one-byte prefix, just before a delimiter, and in
    /// the middle of a fixed-size record or a raw message.
    pub(crate) fn header_cut(self, frame_len: usize, payload_len: usize) -> usize {
        let (head, tail) = self.overhead(frame_len, payload_len);
        let cut = match self.0 {
            FramingStrategy::Raw | FramingStrategy::FixedSize(_) => frame_len / 2,
            _ if tail > 0 => frame_len - tail,
            FramingStrategy::JsonHeader(_) | FramingStrategy::StopAndWait => 2,
            _ if head >= 2 => head / 2,
            _ => head,
        };
        cut.clamp(1, frame_len.saturating_sub(1).max(1))
    }

    /// The most payload bytes one frame can carry, when the framing limits it.
    pub(crate) fn max_payload(self) -> Option<u64> {
        match self.0 {
            FramingStrategy::LengthPrefixed { width, signed, .. } => {
                let bits = width.bytes() as u32 * 8 - u32::from(signed);
                Some(if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 })
            }
            FramingStrategy::FixedSize(n) => Some(n as u64),
            FramingStrategy::StopAndWait => Some(u64::from(u32::MAX)),
            _ => None,
        }
    }

    /// The bytes of a length prefix far above any sane frame, and the length it announces:
    /// the largest the field holds. `None` for framings without a length field wide enough
    /// to announce more than 16 MiB (delimiters, fixed records, u8, u16).
    pub(crate) fn hostile_prefix(self) -> Option<(Vec<u8>, u64)> {
        const SANE: u64 = 16 << 20;
        match self.0 {
            // The largest positive value: for a signed field a negative one is merely invalid.
            FramingStrategy::LengthPrefixed { width, endian, .. } => {
                let announced = self.max_payload().filter(|&n| n > SANE)?;
                let bytes = announced.to_be_bytes();
                let mut field = bytes[8 - width.bytes()..].to_vec();
                if endian == Endian::Little {
                    field.reverse();
                }
                Some((field, announced))
            }
            FramingStrategy::Varint => {
                let announced = 1u64 << 62;
                let mut field = Vec::new();
                let mut n = announced;
                while n >= 0x80 {
                    field.push((n as u8 & 0x7f) | 0x80);
                    n >>= 7;
                }
                field.push(n as u8);
                Some((field, announced))
            }
            // The 4-byte length of the JSON header.
            FramingStrategy::JsonHeader(_) | FramingStrategy::StopAndWait => {
                Some((u32::MAX.to_be_bytes().to_vec(), u64::from(u32::MAX)))
            }
            _ => None,
        }
    }

    /// Whether the framing has a length field (what `hostile-length` attacks).
    pub(crate) fn is_length_framing(self) -> bool {
        matches!(
            self.0,
            FramingStrategy::LengthPrefixed { .. }
                | FramingStrategy::Varint
                | FramingStrategy::JsonHeader(_)
                | FramingStrategy::StopAndWait
        )
    }

    /// Whether the field is too narrow for a hostile length (u8, u16 and their signed kin).
    pub(crate) fn is_narrow_length(self) -> bool {
        matches!(self.0, FramingStrategy::LengthPrefixed { width: HeaderWidth::U8 | HeaderWidth::U16, .. })
    }
}

/// Payload bytes per message where a check moves a lot of data (slow-reader, a sink's
/// concurrency turns): 16 KiB, or less when the framing carries less, or N for `fixed:N`.
pub(crate) fn bulk_message_size(wire: Wire, message_size: usize) -> usize {
    const BULK: usize = 16 << 10;
    match (wire.0, wire.max_payload()) {
        (FramingStrategy::FixedSize(n), _) => n,
        (_, Some(most)) => BULK.min(most as usize).max(message_size.min(most as usize)),
        (_, None) => BULK,
    }
}

/// Message `seq` of `size` bytes: a self-checking payload (sequence number, checksum,
/// printable filler), safe for every framing.
pub(crate) fn message(seq: u32, size: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(size);
    payload::write(&mut out, seq, size);
    out.freeze()
}

/// What a server with `behaviour` should send back for `message`; `None` when it sends
/// nothing back (sink) or something of its own (source).
pub(crate) fn expected_reply(behaviour: Behaviour, message: &Bytes) -> Option<Bytes> {
    match behaviour {
        Behaviour::Echo => Some(message.clone()),
        Behaviour::EchoUpper => Some(Bytes::from(message.to_ascii_uppercase())),
        Behaviour::Sink | Behaviour::Source => None,
    }
}

/// Frames decoded from a reply stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Decoded {
    /// Each frame's payload, with the index of the read that completed it.
    pub frames: Vec<(Bytes, usize)>,
    /// Bytes at the end that did not complete a frame.
    pub trailing: usize,
    /// Why decoding stopped early, when it did (a garbage length, an invalid header).
    pub error: Option<String>,
}

/// Decodes `reads` (each a socket read, in order) with `wire`'s codec. Raw framing has
/// no boundaries, so each read is a "frame".
pub(crate) fn decode(wire: Wire, reads: &[Bytes]) -> Decoded {
    let mut decoded = Decoded::default();
    let Some(mut codec) = wire.codec() else { return decoded };
    if wire.is_raw() {
        decoded.frames = reads.iter().cloned().enumerate().map(|(i, r)| (r, i)).collect();
        return decoded;
    }
    let mut buffer = BytesMut::new();
    for (index, read) in reads.iter().enumerate() {
        buffer.extend_from_slice(read);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => decoded.frames.push((frame, index)),
                Ok(None) => break,
                Err(e) => {
                    decoded.error = Some(e.to_string());
                    let rest: usize = reads[index + 1..].iter().map(Bytes::len).sum();
                    decoded.trailing = buffer.len() + rest;
                    return decoded;
                }
            }
        }
    }
    decoded.trailing = buffer.len();
    decoded
}

/// Stop-and-wait's answers to a length announcement.
pub(crate) const ACK: u8 = stop_and_wait::ACK;

socklab_harness::named_enum!(
    /// The `chunking` parameter: which chunkings `reassembly` sends, all five or one.
    pub ChunkingChoice, "chunking", {
        /// All five, one connection each.
        All => "all",
        /// One write per message, a pause between them (as tutorial clients send).
        PerMessage => "per-message",
        /// Every message in one write.
        Merged => "merged",
        /// One byte per write.
        ByteByByte => "byte-by-byte",
        /// Every frame cut inside its header.
        HeaderCut => "header-cut",
        /// Seeded random cuts.
        Random => "random",
    }
);

/// How `reassembly` cuts what it sends into writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunking {
    /// One write per message, a pause between them.
    PerMessage,
    /// Every message in one write.
    Merged,
    /// One byte per write, TCP_NODELAY, a pause between writes.
    ByteByByte,
    /// Every frame in two writes, cut inside its header.
    HeaderCut,
    /// Seeded random cuts that both split and merge frames.
    Random(u64),
}

impl Chunking {
    /// The chunkings of `reassembly`, in the order they run.
    pub(crate) fn all(seed: u64) -> [Chunking; 5] {
        [
            Chunking::PerMessage,
            Chunking::Merged,
            Chunking::ByteByByte,
            Chunking::HeaderCut,
            Chunking::Random(seed),
        ]
    }

    /// The chunkings `reassembly` sends for the `chunking` parameter: all five for
    /// `all`, else the one it names.
    pub(crate) fn chosen(choice: ChunkingChoice, seed: u64) -> Vec<Chunking> {
        Chunking::all(seed)
            .into_iter()
            .filter(|c| choice == ChunkingChoice::All || c.choice() == choice)
            .collect()
    }

    /// The `chunking` parameter's value that picks it alone (its name is that value's).
    pub(crate) fn choice(self) -> ChunkingChoice {
        match self {
            Chunking::PerMessage => ChunkingChoice::PerMessage,
            Chunking::Merged => ChunkingChoice::Merged,
            Chunking::ByteByByte => ChunkingChoice::ByteByByte,
            Chunking::HeaderCut => ChunkingChoice::HeaderCut,
            Chunking::Random(_) => ChunkingChoice::Random,
        }
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> String {
        match self {
            Chunking::PerMessage => "one write per message".into(),
            Chunking::Merged => "all in one write".into(),
            Chunking::ByteByByte => "1 byte per write".into(),
            Chunking::HeaderCut => "cut inside the header".into(),
            Chunking::Random(seed) => format!("random cuts (seed {seed})"),
        }
    }

    /// Whether the writes are paced (a pause between them, so the server reads them apart).
    pub(crate) fn paced(self) -> bool {
        self != Chunking::Merged
    }

    /// A stream framing's frames cut into writes.
    pub(crate) fn cut_stream(self, wire: Wire, frames: &[Bytes], payload_lens: &[usize]) -> Vec<Bytes> {
        let stream: Bytes = frames.concat().into();
        let mut cuts = Vec::new(); // offsets in the stream where a write ends
        let mut offset = 0;
        match self {
            Chunking::PerMessage => {
                for frame in frames {
                    offset += frame.len();
                    cuts.push(offset);
                }
            }
            Chunking::Merged => cuts.push(stream.len()),
            Chunking::ByteByByte => cuts.extend(1..=stream.len()),
            Chunking::HeaderCut => {
                for (frame, &payload_len) in frames.iter().zip(payload_lens) {
                    cuts.push(offset + wire.header_cut(frame.len(), payload_len));
                    offset += frame.len();
                    cuts.push(offset);
                }
            }
            Chunking::Random(seed) => {
                let mut rng = SplitMix(seed);
                let mean = (stream.len() / frames.len().max(1)).max(1);
                while offset < stream.len() {
                    offset = (offset + 1 + rng.below(2 * mean)).min(stream.len());
                    cuts.push(offset);
                }
            }
        }
        split_at(&stream, &cuts)
    }

    /// One part of a stop-and-wait message (its 4-byte header or its body) cut into
    /// writes. The protocol waits for an ACK between the two, so no chunking merges
    /// messages: `Merged` is one write per part.
    pub(crate) fn cut_part(self, part: &Bytes, is_header: bool, rng: &mut SplitMix) -> Vec<Bytes> {
        let cuts: Vec<usize> = match self {
            Chunking::PerMessage | Chunking::Merged => vec![part.len()],
            Chunking::ByteByByte => (1..=part.len()).collect(),
            Chunking::HeaderCut if is_header => vec![part.len() / 2, part.len()],
            Chunking::HeaderCut => vec![part.len()],
            Chunking::Random(_) => {
                let mut cuts = Vec::new();
                let mut offset = 0;
                while offset < part.len() {
                    offset = (offset + 1 + rng.below(part.len())).min(part.len());
                    cuts.push(offset);
                }
                cuts
            }
        };
        split_at(part, &cuts)
    }
}

/// `bytes` cut at the increasing offsets `cuts` (the last being its length); empty
/// pieces are left out.
fn split_at(bytes: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(cuts.len());
    let mut start = 0;
    for &end in cuts {
        let end = end.min(bytes.len());
        if end > start {
            pieces.push(bytes.slice(start..end));
            start = end;
        }
    }
    if start < bytes.len() {
        pieces.push(bytes.slice(start..));
    }
    pieces
}

/// SplitMix64: a small seeded generator, so a case's random cuts replay from its seed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Wire {
        Wire(name.parse().unwrap())
    }

    #[test]
    fn hostile_prefixes_match_the_field_width_and_byte_order() {
        assert_eq!(wire("u32be").hostile_prefix(), Some((vec![0xff; 4], u64::from(u32::MAX))));
        assert_eq!(wire("i32le").hostile_prefix(), Some((vec![0xff, 0xff, 0xff, 0x7f], i32::MAX as u64)));
        assert_eq!(wire("u64be").hostile_prefix().unwrap().0.len(), 8);
        assert_eq!(wire("varint").hostile_prefix().unwrap().1, 1 << 62);
        assert_eq!(wire("u16be").hostile_prefix(), None, "65535 bytes is a sane frame");
        assert_eq!(wire("line").hostile_prefix(), None);
        assert!(wire("json-header").hostile_prefix().is_some());
    }

    #[test]
    fn header_cuts_fall_inside_the_header_or_before_the_delimiter() {
        let payload = message(0, 20);
        for (name, cut) in
            [("u32be", 2), ("u16le", 1), ("u8", 1), ("line", 20), ("fixed:20", 10), ("json-header", 2)]
        {
            let w = wire(name);
            let frame = w.frame(&payload);
            assert_eq!(w.header_cut(frame.len(), payload.len()), cut, "{name}");
        }
    }

    #[test]
    fn every_chunking_keeps_every_byte_in_order() {
        let w = wire("u32be");
        let frames: Vec<Bytes> = (0..3).map(|i| w.frame(&message(i, 20))).collect();
        let whole: Vec<u8> = frames.concat();
        for chunking in Chunking::all(7) {
            let writes = chunking.cut_stream(w, &frames, &[20, 20, 20]);
            assert_eq!(writes.concat(), whole, "{}", chunking.name());
        }
        assert_eq!(Chunking::Merged.cut_stream(w, &frames, &[20; 3]).len(), 1);
        assert_eq!(Chunking::ByteByByte.cut_stream(w, &frames, &[20; 3]).len(), 72);
        assert_eq!(Chunking::HeaderCut.cut_stream(w, &frames, &[20; 3])[0].len(), 2);
        let random = Chunking::Random(7).cut_stream(w, &frames, &[20; 3]);
        assert_eq!(random, Chunking::Random(7).cut_stream(w, &frames, &[20; 3]), "a seed replays");
    }

    #[test]
    fn decoding_keeps_the_read_that_completed_each_frame() {
        let w = wire("line");
        let reads = [Bytes::from_static(b"AB\nC"), Bytes::from_static(b"D\nE")];
        let decoded = decode(w, &reads);
        assert_eq!(decoded.frames, vec![(Bytes::from_static(b"AB"), 0), (Bytes::from_static(b"CD"), 1)]);
        assert_eq!(decoded.trailing, 1);
        let garbage = decode(wire("u32be"), &[Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1])]);
        assert!(garbage.error.unwrap().contains("exceeds the limit"));
    }
}
