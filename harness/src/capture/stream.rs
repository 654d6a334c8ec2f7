//! From captured packets to stream facts: relative sequence numbers, and the data
//! segments that carried a byte stream, in stream order, for the boundary map.

use std::collections::HashMap;

use pnet_packet::tcp::TcpFlags;

use super::decode::{Decoded, flags_text};
use crate::report::{Direction, IoEvent, Transport, WirePacket};
use crate::text::printable;

/// Payloads up to this many bytes are kept in the record (and the report).
pub const PAYLOAD_TEXT_MAX: usize = 256;

/// Turns absolute sequence numbers into relative ones, per connection and direction:
/// the SYN is 0, the first payload byte 1 (as Wireshark shows them).
#[derive(Debug, Default)]
pub struct Numbering {
    initial: HashMap<(u16, Direction), u32>,
}

impl Numbering {
    /// The record of one decoded packet captured at `at_us`.
    pub fn record(&mut self, packet: &Decoded<'_>, at_us: f64) -> WirePacket {
        let (seq, ack) = match packet.proto {
            Transport::Udp => (0, 0),
            Transport::Tcp => {
                let syn = packet.flags & TcpFlags::SYN != 0;
                let own = *self.initial.entry((packet.client_port, packet.dir)).or_insert_with(|| {
                    // Capture began mid-connection: number from the first byte seen.
                    if syn { packet.seq } else { packet.seq.wrapping_sub(1) }
                });
                let other = match packet.dir {
                    Direction::ClientToServer => Direction::ServerToClient,
                    Direction::ServerToClient => Direction::ClientToServer,
                };
                let ack = match self.initial.get(&(packet.client_port, other)) {
                    Some(&initial) if packet.flags & TcpFlags::ACK != 0 => packet.ack.wrapping_sub(initial),
                    _ => 0,
                };
                (packet.seq.wrapping_sub(own), ack)
            }
        };
        WirePacket {
            at_us,
            dir: packet.dir,
            proto: packet.proto,
            client_port: packet.client_port,
            flags: if packet.proto == Transport::Tcp { flags_text(packet.flags) } else { String::new() },
            seq,
            ack,
            window: packet.window,
            len: packet.payload.len(),
            payload: (packet.payload.len() <= PAYLOAD_TEXT_MAX && !packet.payload.is_empty())
                .then(|| printable(packet.payload)),
        }
    }
}

/// The data segments of one direction of one TCP connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSegments {
    /// One event per segment that carried new stream bytes, in stream order; `len` counts
    /// only the new bytes (a retransmission's repeated bytes are left out).
    pub segments: Vec<IoEvent>,
    /// Segments that carried only bytes already sent (retransmissions).
    pub retransmissions: usize,
}

/// The segments of the TCP stream going `dir` on the connection from `client_port`
/// (the first connection when `None`), counting stream bytes from `skip` on: bytes
/// before offset `skip` (a warm-up exchange, say) are left out, so offsets line up with
/// the writes that follow it.
pub fn stream_segments(
    packets: &[WirePacket],
    dir: Direction,
    client_port: Option<u16>,
    skip: usize,
) -> StreamSegments {
    let port =
        client_port.or_else(|| packets.iter().find(|p| p.proto == Transport::Tcp).map(|p| p.client_port));
    let mut out = StreamSegments::default();
    // Stream offset one past the highest byte seen so far, counted from the first
    // payload byte (relative sequence 1).
    let mut next = skip as u64;
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
        if end <= next {
            if end > skip as u64 {
                out.retransmissions += 1;
            }
            continue;
        }
        let new_from = start.max(next);
        let new_len = (end - new_from) as usize;
        let text = match &packet.payload {
            Some(text) if new_len == packet.len => text.clone(),
            _ => String::new(),
        };
        out.segments.push(IoEvent { at_us: packet.at_us, len: new_len, text });
        next = end;
    }
    out
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
    fn numbering_starts_at_the_syn() {
        let mut numbering = Numbering::default();
        let syn = Decoded {
            dir: Direction::ClientToServer,
            proto: Transport::Tcp,
            client_port: 9,
            flags: TcpFlags::SYN,
            seq: 1000,
            ack: 0,
            window: 1,
            payload: b"",
        };
        assert_eq!(numbering.record(&syn, 0.0).seq, 0);
        let synack = Decoded {
            dir: Direction::ServerToClient,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            seq: 7,
            ack: 1001,
            ..syn.clone()
        };
        let r = numbering.record(&synack, 1.0);
        assert_eq!((r.seq, r.ack, r.flags.as_str()), (0, 1, "S."));
        let first =
            Decoded { flags: TcpFlags::ACK | TcpFlags::PSH, seq: 1001, ack: 8, payload: b"hi", ..syn };
        let r = numbering.record(&first, 2.0);
        assert_eq!((r.seq, r.ack, r.len, r.payload.as_deref()), (1, 1, 2, Some("hi")));
    }

    #[test]
    fn segments_skip_warm_up_bytes_other_directions_and_retransmissions() {
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
        assert_eq!(s.retransmissions, 1);
    }
}
