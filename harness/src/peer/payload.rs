//! Self-checking message payloads: every message carries its sequence number and a
//! checksum, so a receiver can tell an intact, in-order message from a corrupted, lost,
//! reordered, glued or cut one.
//!
//! ```text
//! | seq: 8 hex digits | check: 8 hex digits | filler: size - 16 bytes of a fixed pattern |
//! ```
//!
//! `check` is a hash of the sequence number and the payload length; the filler is the
//! printable pattern `!"#$%…` (0x21..=0x7e) repeated, so the receiver checks it with a
//! memory compare rather than a per-byte hash. That keeps verification at memcmp speed,
//! so the measurement costs far less than the framing it measures (a per-byte hash of 64
//! KiB messages capped throughput below 1 GB/s). Every byte is printable ASCII, so
//! payloads are safe for newline- and zero-delimited framing, and an `echo-upper` reply
//! can be checked too (hex reads in either case; see [`verify_upper`]).

use bytes::{BufMut, BytesMut};

/// Smallest payload: the sequence number and the check.
pub const MIN_PAYLOAD: usize = 16;

/// Length of one period of the filler pattern.
const PERIOD: usize = 94;
/// The filler pattern, many periods long, so a long filler is written and compared in
/// few large chunks (a whole number of periods, so chunk boundaries stay in phase).
const PATTERN_LEN: usize = PERIOD * 44;
static PATTERN: [u8; PATTERN_LEN] = pattern(false);
static PATTERN_UPPER: [u8; PATTERN_LEN] = pattern(true);

const fn pattern(upper: bool) -> [u8; PATTERN_LEN] {
    let mut bytes = [0u8; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        let b = 0x21 + (i % PERIOD) as u8;
        bytes[i] = if upper { b.to_ascii_uppercase() } else { b };
        i += 1;
    }
    bytes
}

/// What a receiver concluded about one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Well formed; carries this sequence number.
    Intact(u32),
    /// Wrong length, unreadable header, check mismatch or damaged filler.
    Corrupted,
}

/// Appends the payload of message `seq`, `size` bytes long (at least [`MIN_PAYLOAD`]).
pub fn write(out: &mut BytesMut, seq: u32, size: usize) {
    let size = size.max(MIN_PAYLOAD);
    out.reserve(size);
    put_hex(out, seq);
    put_hex(out, check(seq, size));
    let mut left = size - MIN_PAYLOAD;
    while left > 0 {
        let n = left.min(PATTERN_LEN);
        out.put_slice(&PATTERN[..n]);
        left -= n;
    }
}

/// Turns a payload written by [`write()`] into message `seq`'s: only the header changes,
/// so senders build the filler once and renumber it per message.
pub fn renumber(payload: &mut [u8], seq: u32) {
    if payload.len() < MIN_PAYLOAD {
        return;
    }
    let mut header = BytesMut::with_capacity(MIN_PAYLOAD);
    put_hex(&mut header, seq);
    put_hex(&mut header, check(seq, payload.len()));
    payload[..MIN_PAYLOAD].copy_from_slice(&header);
}

/// Checks a received payload that should be `size` bytes long.
pub fn verify(payload: &[u8], size: usize) -> Verdict {
    verify_against(payload, size, &PATTERN)
}

/// Checks an `echo-upper` reply: message `seq` in ASCII upper case.
pub fn verify_upper(payload: &[u8], size: usize) -> Verdict {
    verify_against(payload, size, &PATTERN_UPPER)
}

fn verify_against(payload: &[u8], size: usize, pattern: &[u8; PATTERN_LEN]) -> Verdict {
    let size = size.max(MIN_PAYLOAD);
    if payload.len() != size {
        return Verdict::Corrupted;
    }
    let (Some(seq), Some(sum)) = (parse_hex(&payload[..8]), parse_hex(&payload[8..16])) else {
        return Verdict::Corrupted;
    };
    let filler_intact =
        payload[MIN_PAYLOAD..].chunks(PATTERN_LEN).all(|chunk| chunk == &pattern[..chunk.len()]);
    if sum == check(seq, size) && filler_intact { Verdict::Intact(seq) } else { Verdict::Corrupted }
}

fn put_hex(out: &mut BytesMut, value: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.put_u8(DIGITS[(value >> (shift * 4)) as usize & 0xf]);
    }
}

fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| Some(acc << 4 | (d as char).to_digit(16)?))
}

/// FNV-1a over the sequence number and the length.
fn check(seq: u32, size: usize) -> u32 {
    seq.to_le_bytes()
        .iter()
        .chain(&(size as u64).to_le_bytes())
        .fold(0x811c_9dc5_u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u32, size: usize) -> BytesMut {
        let mut out = BytesMut::new();
        write(&mut out, seq, size);
        out
    }

    #[test]
    fn payloads_verify_and_are_printable() {
        for size in [16, 17, 256, 4096, PATTERN_LEN + 16, 3 * PATTERN_LEN + 100] {
            let p = payload(7, size);
            assert_eq!(p.len(), size);
            assert!(p.iter().all(|b| (0x21..=0x7e).contains(b)));
            assert_eq!(verify(&p, size), Verdict::Intact(7));
        }
        assert_eq!(&payload(0x1a, 16)[..8], b"0000001a");
        assert_eq!(&payload(0, 20)[16..], b"!\"#$");
    }

    #[test]
    fn corruption_glue_and_cuts_are_caught() {
        for offset in [0, 5, 12, 40, 5000] {
            let mut p = payload(1, 6000);
            p[offset] ^= 0x01;
            assert_eq!(verify(&p, 6000), Verdict::Corrupted, "byte {offset}");
        }
        let glued = [payload(1, 64), payload(2, 64)].concat();
        assert_eq!(verify(&glued, 64), Verdict::Corrupted);
        assert_eq!(verify(&payload(1, 64)[..32], 64), Verdict::Corrupted);
        assert_eq!(verify(b"zzzzzzzz00000000", 16), Verdict::Corrupted);
        let mut renumbered = payload(1, 300);
        renumber(&mut renumbered, 9);
        assert_eq!(renumbered, payload(9, 300));
        let mut wrong_seq = payload(1, 64);
        wrong_seq[7] = b'2';
        assert_eq!(verify(&wrong_seq, 64), Verdict::Corrupted, "the check covers the sequence number");
    }

    #[test]
    fn upper_cased_echoes_verify_as_such() {
        let mut p = payload(0xab, 128);
        p.make_ascii_uppercase();
        assert_eq!(verify_upper(&p, 128), Verdict::Intact(0xab));
        assert_eq!(verify(&p, 128), Verdict::Corrupted, "upper case changes the filler");
    }
}
