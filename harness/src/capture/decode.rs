//! Decoding one captured frame — Ethernet, IPv4 or IPv6, TCP or UDP — with pnet's packet
//! views, keeping only what socklab records.

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::{TcpFlags, TcpPacket};
use pnet_packet::udp::UdpPacket;

use crate::report::{Direction, Transport};

/// The transport-layer facts of one frame, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Which way it went, judged by which end has a server port.
    pub dir: Direction,
    /// TCP or UDP.
    pub proto: Transport,
    /// Port of the client end.
    pub client_port: u16,
    /// TCP flag bits (`TcpFlags`); 0 for UDP.
    pub flags: u8,
    /// Absolute sequence number; 0 for UDP.
    pub seq: u32,
    /// Absolute acknowledgement number; 0 for UDP.
    pub ack: u32,
    /// Advertised window as sent; 0 for UDP.
    pub window: u16,
    /// The payload (cut short if the frame was).
    pub payload: &'a [u8],
}

/// Decodes `frame` when it is TCP or UDP over IPv4/IPv6 with one end on a port of
/// `server_ports`; anything else is `None`.
pub fn decode_frame<'a>(frame: &'a [u8], server_ports: &[u16]) -> Option<Decoded<'a>> {
    let ethernet = EthernetPacket::new(frame)?;
    let header_len = EthernetPacket::minimum_packet_size();
    let ip = frame.get(header_len..)?;
    let (protocol, transport) = match ethernet.get_ethertype() {
        EtherTypes::Ipv4 => {
            let packet = Ipv4Packet::new(ip)?;
            let start = usize::from(packet.get_header_length()) * 4;
            let end = usize::from(packet.get_total_length()).min(ip.len());
            (packet.get_next_level_protocol(), ip.get(start..end)?)
        }
        EtherTypes::Ipv6 => {
            let packet = Ipv6Packet::new(ip)?;
            let start = Ipv6Packet::minimum_packet_size();
            let end = (start + usize::from(packet.get_payload_length())).min(ip.len());
            (packet.get_next_header(), ip.get(start..end)?)
        }
        _ => return None,
    };
    decode_transport(protocol, transport, server_ports)
}

fn decode_transport<'a>(
    protocol: IpNextHeaderProtocol,
    bytes: &'a [u8],
    server_ports: &[u16],
) -> Option<Decoded<'a>> {
    let direction = |src: u16, dst: u16| {
        if server_ports.contains(&dst) {
            Some((Direction::ClientToServer, src))
        } else if server_ports.contains(&src) {
            Some((Direction::ServerToClient, dst))
        } else {
            None
        }
    };
    match protocol {
        IpNextHeaderProtocols::Tcp => {
            let tcp = TcpPacket::new(bytes)?;
            let (dir, client_port) = direction(tcp.get_source(), tcp.get_destination())?;
            let offset = usize::from(tcp.get_data_offset()) * 4;
            let payload = bytes.get(offset..)?;
            Some(Decoded {
                dir,
                proto: Transport::Tcp,
                client_port,
                flags: tcp.get_flags(),
                seq: tcp.get_sequence(),
                ack: tcp.get_acknowledgement(),
                window: tcp.get_window(),
                payload,
            })
        }
        IpNextHeaderProtocols::Udp => {
            let udp = UdpPacket::new(bytes)?;
            let (dir, client_port) = direction(udp.get_source(), udp.get_destination())?;
            let end = usize::from(udp.get_length()).clamp(8, bytes.len());
            Some(Decoded {
                dir,
                proto: Transport::Udp,
                client_port,
                flags: 0,
                seq: 0,
                ack: 0,
                window: 0,
                payload: bytes.get(8..end)?,
            })
        }
        _ => None,
    }
}

/// TCP flags as tcpdump prints them: `S` SYN, `F` FIN, `R` RST, `P` PSH, `U` URG,
/// `E` ECE, `W` CWR, then `.` for ACK (`S.` is a SYN-ACK, `.` a bare ACK).
pub fn flags_text(flags: u8) -> String {
    let mut text = String::new();
    for (bit, letter) in [
        (TcpFlags::SYN, 'S'),
        (TcpFlags::FIN, 'F'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'W'),
    ] {
        if flags & bit != 0 {
            text.push(letter);
        }
    }
    if flags & TcpFlags::ACK != 0 {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback frame: zero MACs, IPv4 127.0.0.1 → 127.0.0.1, TCP 40000 → 5000,
    /// seq 1000, ack 2000, flags PSH|ACK, window 512, payload `hello`.
    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]); // IPv4
        let total = 20 + 20 + 5;
        f.extend_from_slice(&[0x45, 0, 0, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&5000u16.to_be_bytes());
        f.extend_from_slice(&1000u32.to_be_bytes());
        f.extend_from_slice(&2000u32.to_be_bytes());
        f.extend_from_slice(&[0x50, 0x18]); // data offset 5 words; PSH|ACK
        f.extend_from_slice(&512u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(b"hello");
        f
    }

    #[test]
    fn decodes_a_loopback_tcp_frame() {
        let bytes = frame();
        let d = decode_frame(&bytes, &[5000]).unwrap();
        assert_eq!(d.dir, Direction::ClientToServer);
        assert_eq!(d.client_port, 40000);
        assert_eq!((d.seq, d.ack, d.window), (1000, 2000, 512));
        assert_eq!(flags_text(d.flags), "P.");
        assert_eq!(d.payload, b"hello");
        let back = decode_frame(&bytes, &[40000]).unwrap();
        assert_eq!((back.dir, back.client_port), (Direction::ServerToClient, 5000));
    }

    #[test]
    fn other_ports_and_cut_frames_are_skipped() {
        let bytes = frame();
        assert!(decode_frame(&bytes, &[6000]).is_none());
        assert!(decode_frame(&bytes[..30], &[5000]).is_none());
        assert!(decode_frame(&[], &[5000]).is_none());
    }

    #[test]
    fn flags_read_like_tcpdump() {
        assert_eq!(flags_text(TcpFlags::SYN), "S");
        assert_eq!(flags_text(TcpFlags::SYN | TcpFlags::ACK), "S.");
        assert_eq!(flags_text(TcpFlags::ACK), ".");
        assert_eq!(flags_text(TcpFlags::FIN | TcpFlags::ACK), "F.");
    }
}
