//! pcap export: captured frames as a classic pcap file (Ethernet link type, nanosecond
//! timestamps: the kernel's receive times as they are, the format tcpdump writes with
//! `--time-stamp-precision=nano`), which `tcpdump -r` and Wireshark open.

use std::time::UNIX_EPOCH;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};

use super::Frame;

/// Largest frame a pcap written here holds whole (above loopback's 65536-byte MTU).
pub const SNAPLEN: u32 = 262_144;

/// The frames as the bytes of a pcap file.
///
/// # Errors
/// [`pcap_file::PcapError`] when a frame cannot be written (longer than [`SNAPLEN`]).
pub fn to_pcap(frames: &[Frame]) -> Result<Vec<u8>, pcap_file::PcapError> {
    let header = PcapHeader {
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(Vec::new(), header)?;
    for frame in frames {
        let timestamp = frame.wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = u32::try_from(frame.bytes.len()).unwrap_or(u32::MAX);
        writer.write_packet(&PcapPacket::new(timestamp, len, &frame.bytes))?;
    }
    Ok(writer.into_writer())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;
    use std::time::{Duration, SystemTime};

    #[test]
    fn frames_read_back_with_their_bytes_and_times() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let frames = vec![
            Frame { wall, at_us: 0.0, bytes: vec![1, 2, 3] },
            Frame { wall: wall + Duration::from_micros(5), at_us: 5.0, bytes: vec![0; 70_000] },
        ];
        let bytes = to_pcap(&frames).unwrap();
        let mut reader = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        assert_eq!(reader.header().ts_resolution, TsResolution::NanoSecond);
        let first = reader.next_packet().unwrap().unwrap();
        assert_eq!(first.data.as_ref(), [1, 2, 3]);
        assert_eq!(first.timestamp, Duration::from_nanos(1_700_000_000_123_456_789), "to the nanosecond");
        let second = reader.next_packet().unwrap().unwrap();
        assert_eq!(second.data.len(), 70_000);
        assert!(reader.next_packet().is_none());
    }
}
