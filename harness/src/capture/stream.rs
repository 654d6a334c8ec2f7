//! From decoded packets to the report's records: relative sequence numbers, per connection
//! and direction, as Wireshark shows them. What the records say about a stream (its data
//! segments, its retransmissions) is pure analysis, in `socklab_model::analysis`.

use std::collections::HashMap;

use pnet_packet::tcp::TcpFlags;

use super::decode::{Decoded, flags_text};
use crate::report::{Direction, Transport, WirePacket};
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
