//! Self-checking message payloads: every message carries its sequence number and a
//! checksum, so a receiver can tell an intact, in-order message from a corrupted, lost,
//! reordered or glued one.
//!
//! ```text
//! | seq: 8 lowercase hex digits | checksum: 8 hex digits | filler: size - 16 printable bytes |
//! ```
//!
//! Every byte is printable ASCII (0x21..=0x7e), so payloads are safe for newline- and
//! zero-delimited framing, and an `echo-upper` reply can be checked too (hex reads in
//! either case; see [`verify_upper`]). The filler is derived from the sequence number
//! and a seed, and the checksum covers the sequence number and the filler.

use bytes::{BufMut, BytesMut};

/// Smallest payload: the sequence number and the checksum.
pub const MIN_PAYLOAD: usize = 16;

/// What a receiver concluded about one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Well formed; carries this sequence number.
    Intact(u32),
    /// Wrong length, unreadable header or checksum mismatch.
    Corrupted,
}

/// Writes the payload of message `seq` of `size` bytes (at least [`MIN_PAYLOAD`]) into
/// `out`.
pub fn write(out: &mut BytesMut, seq: u32, size: usize, seed: u64) {
    let size = size.max(MIN_PAYLOAD);
    out.reserve(size);
    let start = out.len();
    out.put_slice(format!("{seq:08x}00000000").as_bytes());
    let mut state = mix(seed ^ u64::from(seq));
    for _ in MIN_PAYLOAD..size {
        state = mix(state);
        out.put_u8(filler_byte(state));
    }
    let sum = checksum(seq, &out[start + MIN_PAYLOAD..]);
    out[start + 8..start + 16].copy_from_slice(format!("{sum:08x}").as_bytes());
}

/// Checks a received payload that should be `size` bytes long: length, header and
/// checksum.
pub fn verify(payload: &[u8], size: usize) -> Verdict {
    match header(payload, size) {
        Some((seq, sum)) if checksum(seq, &payload[MIN_PAYLOAD..]) == sum => Verdict::Intact(seq),
        _ => Verdict::Corrupted,
    }
}

/// Checks an `echo-upper` reply: the upper-cased bytes of message `seq`. The checksum
/// covers the lower-case filler, so the expected bytes are regenerated from the seed.
pub fn verify_upper(payload: &[u8], size: usize, seed: u64) -> Verdict {
    let Some((seq, _)) = header(payload, size) else {
        return Verdict::Corrupted;
    };
    let mut expected = BytesMut::new();
    write(&mut expected, seq, size, seed);
    expected.make_ascii_uppercase();
    if expected[..] == payload[..] { Verdict::Intact(seq) } else { Verdict::Corrupted }
}

/// Sequence number and checksum, when the length is right and both parse.
fn header(payload: &[u8], size: usize) -> Option<(u32, u32)> {
    if payload.len() != size.max(MIN_PAYLOAD) {
        return None;
    }
    Some((parse_hex(&payload[..8])?, parse_hex(&payload[8..16])?))
}

fn parse_hex(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits).ok().and_then(|s| u32::from_str_radix(s, 16).ok())
}

/// FNV-1a over the sequence number and the filler.
fn checksum(seq: u32, filler: &[u8]) -> u32 {
    seq.to_le_bytes()
        .iter()
        .chain(filler)
        .fold(0x811c_9dc5_u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A printable, non-space byte.
fn filler_byte(state: u64) -> u8 {
    0x21 + (state >> 33) as u8 % 94
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u32, size: usize) -> BytesMut {
        let mut out = BytesMut::new();
        write(&mut out, seq, size, 9);
        out
    }

    #[test]
    fn payloads_verify_and_are_printable() {
        for size in [16, 17, 256, 4096] {
            let p = payload(7, size);
            assert_eq!(p.len(), size);
            assert!(p.iter().all(|b| (0x21..=0x7e).contains(b)));
            assert_eq!(verify(&p, size), Verdict::Intact(7));
        }
        assert_eq!(&payload(0x1a, 16)[..8], b"0000001a");
    }

    #[test]
    fn corruption_glue_and_splits_are_caught() {
        let mut p = payload(1, 64);
        p[40] ^= 0x01;
        assert_eq!(verify(&p, 64), Verdict::Corrupted);
        let glued = [payload(1, 64), payload(2, 64)].concat();
        assert_eq!(verify(&glued, 64), Verdict::Corrupted);
        assert_eq!(verify(&payload(1, 64)[..32], 64), Verdict::Corrupted);
        assert_eq!(verify(b"zzzzzzzz00000000", 16), Verdict::Corrupted);
    }

    #[test]
    fn upper_cased_echoes_verify_against_the_seed() {
        let mut p = payload(3, 128);
        p.make_ascii_uppercase();
        assert_eq!(verify_upper(&p, 128, 9), Verdict::Intact(3));
        assert_eq!(verify_upper(&p, 128, 10), Verdict::Corrupted);
        assert_eq!(verify(&p, 128), Verdict::Corrupted, "upper case breaks the checksum");
    }
}
