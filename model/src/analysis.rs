//! Pure analysis of recorded packets: which data segments carried a byte stream, in
//! stream order (for the boundary map), and which carried bytes sent before
//! (retransmissions, tail-loss probes), kept and counted rather than dropped.

use std::collections::HashMap;

use crate::report::{Direction, IoEvent, RetransmittedSegment, Transport, WirePacket};

/// The data segments of one direction of one TCP connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSegments {
    /// One event per segment that carried new stream bytes, in stream order; `len` counts
    /// only the new bytes, so the lengths add up to the stream and line up with the
    /// writes and reads.
    pub segments: Vec<IoEvent>,
    /// Every segment that carried bytes sent before, in capture order: retransmissions
    /// (after a timeout or duplicate ACKs) and tail-loss probes. A segment that carried
    /// new bytes as well is also in `segments`, with those.
    pub retransmissions: Vec<RetransmittedSegment>,
}

/// The segments of the TCP stream going `dir` on the connection from `client_port`
/// (the first connection when `None`), counting stream bytes from `skip` on: bytes
/// before offset `skip` (a warm-up exchange, say) are left out, so offsets line up with
/// the writes that follow it. Nothing from offset `skip` on is dropped: a segment whose
/// bytes were all sent before is listed in [`StreamSegments::retransmissions`].
pub fn stream_segments(
    packets: &[WirePacket],
    dir: Direction,
    client_port: Option<u16>,
    skip: usize,
) -> StreamSegments {
    let port =
        client_port.or_else(|| packets.iter().find(|p| p.proto == Transport::Tcp).map(|p| p.client_port));
    let skip = skip as u64;
    let mut out = StreamSegments::default();
    // Stream offset one past the highest byte seen so far, counted from the first
    // payload byte (relative sequence 1), skipped bytes included.
    let mut sent_end = 0u64;
    for packet in packets {
        if packet.proto != Transport::Tcp
            || Some(packet.client_port) != port
            || packet.dir != dir
            || packet.len == 0
        {
            continue;
        }
        let start = u64::from(packet.seq.wrapping_sub(1));
        let end = start + packet.len as u64;
        let whole_text = || packet.payload.clone().unwrap_or_default();
        // Bytes sent before, within the part of the stream that is kept.
        let from = start.max(skip);
        let repeated = sent_end.min(end).saturating_sub(from);
        if repeated > 0 {
            out.retransmissions.push(RetransmittedSegment {
                at_us: packet.at_us,
                start: (from - skip) as usize,
                len: (end - from) as usize,
                repeated: repeated as usize,
                text: if from == start { whole_text() } else { String::new() },
            });
        }
        let new_from = start.max(sent_end).max(skip);
        if end > new_from {
            let text = if new_from == start { whole_text() } else { String::new() };
            out.segments.push(IoEvent { at_us: packet.at_us, len: (end - new_from) as usize, text });
        }
        sent_end = sent_end.max(end);
    }
    out
}

/// TCP segments in `packets` that carried sequence space sent before — payload bytes, a
/// SYN or a FIN — counted over every connection and both directions: retransmissions
/// after a timeout or duplicate ACKs, and tail-loss probes. Bare ACKs (and keep-alive or
/// zero-window probes, which carry no new sequence space) are not counted.
pub fn retransmitted_segments(packets: &[WirePacket]) -> usize {
    let mut sent_end: HashMap<(u16, Direction), u64> = HashMap::new();
    let mut count = 0;
    for packet in packets.iter().filter(|p| p.proto == Transport::Tcp) {
        let span =
            packet.len as u64 + u64::from(packet.flags.contains('S')) + u64::from(packet.flags.contains('F'));
        if span == 0 {
            continue;
        }
        // Relative sequence numbers: the SYN is 0, so the first byte is never "before".
        let start = u64::from(packet.seq);
        let seen = sent_end.entry((packet.client_port, packet.dir)).or_insert(0);
        count += usize::from(start < *seen);
        *seen = (*seen).max(start + span);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seq: u32, len: usize, dir: Direction) -> WirePacket {
        WirePacket {
            at_us: f64::from(seq),
            dir,
            proto: Transport::Tcp,
            client_port: 1,
            flags: "P.".into(),
            seq,
            ack: 1,
            window: 100,
            len,
            payload: None,
        }
    }

    #[test]
    fn segments_skip_warm_up_bytes_and_other_directions_and_keep_retransmissions() {
        let c2s = Direction::ClientToServer;
        let packets = vec![
            data(1, 4, c2s),                       // warm-up ping, skipped
            data(1, 4, Direction::ServerToClient), // the reply, other direction
            data(5, 7, c2s),                       // bytes 4..11
            data(5, 7, c2s),                       // retransmission
            data(12, 10, c2s),                     // bytes 11..21
        ];
        let s = stream_segments(&packets, c2s, None, 4);
        assert_eq!(s.segments.iter().map(|e| e.len).collect::<Vec<_>>(), [7, 10]);
        assert_eq!(s.retransmissions.len(), 1);
        assert_eq!((s.retransmissions[0].start, s.retransmissions[0].len), (0, 7));
    }

    fn packet(at_us: f64, dir: Direction, flags: &str, seq: u32, payload: &str) -> WirePacket {
        WirePacket {
            at_us,
            dir,
            proto: Transport::Tcp,
            client_port: 40_000,
            flags: flags.into(),
            seq,
            ack: 1,
            window: 100,
            len: payload.len(),
            payload: (!payload.is_empty()).then(|| payload.to_string()),
        }
    }

    /// A warm connection as captured: handshake, three messages, a fast retransmission
    /// of the second, then a tail-loss probe (the last segment again, 2 ms later, before
    /// the delayed ACK), and the close with the client's FIN retransmitted.
    fn retransmitting_connection() -> Vec<WirePacket> {
        let (c2s, s2c) = (Direction::ClientToServer, Direction::ServerToClient);
        vec![
            packet(0.0, c2s, "S", 0, ""),
            packet(10.0, s2c, "S.", 0, ""),
            packet(20.0, c2s, ".", 1, ""),
            packet(100.0, c2s, "P.", 1, "1234567"),
            packet(110.0, c2s, "P.", 8, "abcde"),
            packet(120.0, c2s, "P.", 13, "hhhhh"),
            packet(130.0, s2c, ".", 1, ""),
            packet(140.0, c2s, "P.", 8, "abcde"),    // retransmission
            packet(2_120.0, c2s, "P.", 13, "hhhhh"), // tail-loss probe
            packet(2_130.0, s2c, ".", 1, ""),        // the receiver's duplicate ACK
            packet(3_000.0, c2s, "F.", 18, ""),
            packet(3_500.0, c2s, "F.", 18, ""), // FIN retransmitted
            packet(3_510.0, s2c, "F.", 1, ""),
            packet(3_520.0, c2s, ".", 19, ""),
        ]
    }

    #[test]
    fn a_retransmission_and_a_tail_loss_probe_are_counted_and_kept() {
        let packets = retransmitting_connection();
        let s = stream_segments(&packets, Direction::ClientToServer, None, 0);
        // The stream's first transmissions, unchanged by the repeats.
        assert_eq!(
            s.segments.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
            ["1234567", "abcde", "hhhhh"]
        );
        assert_eq!(s.segments.iter().map(|e| e.at_us).collect::<Vec<_>>(), [100.0, 110.0, 120.0]);
        // Both repeats kept, with their own times, ranges and bytes.
        let kept: Vec<(f64, usize, usize, usize, &str)> = s
            .retransmissions
            .iter()
            .map(|r| (r.at_us, r.start, r.len, r.repeated, r.text.as_str()))
            .collect();
        assert_eq!(kept, [(140.0, 7, 5, 5, "abcde"), (2_120.0, 12, 5, 5, "hhhhh")]);
        // Counted over the whole capture: the data retransmission, the probe and the FIN.
        assert_eq!(retransmitted_segments(&packets), 3);
    }

    #[test]
    fn a_segment_repeating_some_bytes_and_adding_new_ones_is_in_both_lists() {
        let c2s = Direction::ClientToServer;
        let packets = vec![packet(1.0, c2s, "P.", 1, "abcde"), packet(2.0, c2s, "P.", 4, "defgh")];
        let s = stream_segments(&packets, c2s, None, 0);
        assert_eq!(s.segments.iter().map(|e| e.len).collect::<Vec<_>>(), [5, 3]);
        assert_eq!(s.segments[1].text, "", "only part of its bytes are new");
        assert_eq!(
            (s.retransmissions[0].start, s.retransmissions[0].len, s.retransmissions[0].repeated),
            (3, 5, 2)
        );
        assert_eq!(retransmitted_segments(&packets), 1);
    }

    #[test]
    fn a_clean_connection_has_no_retransmissions() {
        let packets: Vec<WirePacket> = retransmitting_connection()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| ![7, 8, 11].contains(i))
            .map(|(_, p)| p)
            .collect();
        assert_eq!(retransmitted_segments(&packets), 0);
        assert!(stream_segments(&packets, Direction::ClientToServer, None, 0).retransmissions.is_empty());
    }
}
