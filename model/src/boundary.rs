//! The boundary map: how the bytes of one layer's units fall into another layer's units.
//!
//! A TCP stream has no message boundaries. The application writes messages, the kernel
//! sends segments, the receiver reads chunks — three layers, each cutting the same byte
//! stream at different places. Given the lengths of the units of two layers (say the
//! messages written and the reads returned), [`BoundaryMap::compute`] says, for each unit of
//! the second layer, which byte ranges of which first-layer units it holds:
//! `read 1 = msg0[5..7] + msg1[0..3]`.

use serde::{Deserialize, Serialize};

/// A byte range `[start, end)` of one unit (message, segment) of the source layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Index of the source unit (message 0, 1, ...).
    pub unit: usize,
    /// First byte of the range, counted within that unit.
    pub start: usize,
    /// One past the last byte of the range, counted within that unit.
    pub end: usize,
}

impl Piece {
    /// Number of bytes in the range.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True for an empty range (never produced by [`BoundaryMap::compute`]).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// For each target unit (each read), the source pieces (message ranges) it holds, in
/// stream order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryMap {
    /// `targets[i]` lists the pieces of target unit `i`.
    pub targets: Vec<Vec<Piece>>,
}

impl BoundaryMap {
    /// Maps `target_lens` (e.g. read sizes) onto `source_lens` (e.g. message sizes), both
    /// describing the same byte stream from its first byte. Bytes past the end of the
    /// shorter layer are left out: a target that reaches past the last source byte holds
    /// only the pieces that exist.
    pub fn compute(source_lens: &[usize], target_lens: &[usize]) -> Self {
        let mut targets = Vec::with_capacity(target_lens.len());
        let mut unit = 0;
        let mut offset_in_unit = 0;
        for &target_len in target_lens {
            let mut pieces = Vec::new();
            let mut wanted = target_len;
            while wanted > 0 && unit < source_lens.len() {
                let left_in_unit = source_lens[unit] - offset_in_unit;
                let take = wanted.min(left_in_unit);
                if take > 0 {
                    pieces.push(Piece { unit, start: offset_in_unit, end: offset_in_unit + take });
                }
                wanted -= take;
                offset_in_unit += take;
                if offset_in_unit == source_lens[unit] {
                    unit += 1;
                    offset_in_unit = 0;
                }
            }
            targets.push(pieces);
        }
        BoundaryMap { targets }
    }

    /// Target units holding bytes of more than one source unit: the "sticky" reads.
    pub fn sticky_targets(&self) -> usize {
        self.targets.iter().filter(|pieces| pieces.len() > 1).count()
    }

    /// Source units whose bytes are spread over more than one target unit: the messages
    /// a reader receives in parts.
    pub fn split_sources(&self) -> usize {
        let mut seen_in = Vec::<usize>::new(); // per source unit: how many targets hold it
        for pieces in &self.targets {
            for piece in pieces {
                if seen_in.len() <= piece.unit {
                    seen_in.resize(piece.unit + 1, 0);
                }
                seen_in[piece.unit] += 1;
            }
        }
        seen_in.iter().filter(|&&n| n > 1).count()
    }

    /// The pieces of target `index` in words: `msg0[5..7] + msg1[0..3]`, with `label`
    /// naming the source units (`msg`, `seg`).
    pub fn describe(&self, index: usize, label: &str) -> String {
        self.targets
            .get(index)
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|p| format!("{label}{}[{}..{}]", p.unit, p.start, p.end))
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic: `1234567`, `abcde`, `hhhhh` read with `recv(5)`.
    #[test]
    fn classic_sticky_packet_case() {
        let map = BoundaryMap::compute(&[7, 5, 5], &[5, 5, 5, 2]);
        assert_eq!(map.describe(0, "msg"), "msg0[0..5]");
        assert_eq!(map.describe(1, "msg"), "msg0[5..7] + msg1[0..3]");
        assert_eq!(map.describe(2, "msg"), "msg1[3..5] + msg2[0..3]");
        assert_eq!(map.describe(3, "msg"), "msg2[3..5]");
        assert_eq!(map.sticky_targets(), 2);
        assert_eq!(map.split_sources(), 3);
    }

    #[test]
    fn one_read_holding_everything_is_one_sticky_read_and_no_split() {
        let map = BoundaryMap::compute(&[7, 5, 5], &[17]);
        assert_eq!(map.describe(0, "msg"), "msg0[0..7] + msg1[0..5] + msg2[0..5]");
        assert_eq!(map.sticky_targets(), 1);
        assert_eq!(map.split_sources(), 0);
    }

    #[test]
    fn aligned_reads_are_neither_sticky_nor_split() {
        let map = BoundaryMap::compute(&[3, 4], &[3, 4]);
        assert_eq!(map.sticky_targets(), 0);
        assert_eq!(map.split_sources(), 0);
    }

    #[test]
    fn empty_messages_are_skipped_and_short_streams_are_cut() {
        let map = BoundaryMap::compute(&[2, 0, 2], &[3, 5]);
        assert_eq!(map.describe(0, "msg"), "msg0[0..2] + msg2[0..1]");
        assert_eq!(map.describe(1, "msg"), "msg2[1..2]");
        assert_eq!(map.describe(9, "msg"), "");
    }

    #[test]
    fn pieces_cover_the_stream_exactly_once() {
        fn prop(sources: Vec<u8>, targets: Vec<u8>) -> bool {
            let sources: Vec<usize> = sources.into_iter().map(usize::from).collect();
            let targets: Vec<usize> = targets.into_iter().map(usize::from).collect();
            let map = BoundaryMap::compute(&sources, &targets);
            let covered: usize = map.targets.iter().flatten().map(Piece::len).sum();
            let expected = sources.iter().sum::<usize>().min(targets.iter().sum());
            let mut next = (0, 0);
            let contiguous = map.targets.iter().flatten().all(|p| {
                while next.0 < p.unit {
                    if next.1 != sources[next.0] {
                        return false; // moved on before finishing a unit
                    }
                    next = (next.0 + 1, 0);
                }
                let ok = p.start == next.1 && !p.is_empty();
                next.1 = p.end;
                ok
            });
            covered == expected && contiguous
        }
        quickcheck::QuickCheck::new().tests(1000).quickcheck(prop as fn(Vec<u8>, Vec<u8>) -> bool);
    }
}
