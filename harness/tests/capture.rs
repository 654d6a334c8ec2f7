//! Packet capture on loopback against cases whose segment counts are known. These need
//! CAP_NET_RAW: without it they skip with the reason, or fail when
//! SOCKLAB_REQUIRE_PRIVILEGED=1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socklab_harness::capture::{Capture, CaptureConfig, Captured, pcap, stream_segments};
use socklab_harness::privilege::{Capability, test_may_use};
use socklab_harness::report::{Direction, Transport};

/// Runs `client` against a server that reads to EOF, with capture around the whole
/// connection; returns what the capture saw and the bytes the server read.
fn captured_exchange(
    config: impl Fn(u16) -> CaptureConfig,
    client: impl FnOnce(&mut TcpStream),
) -> (Captured, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let capture = Capture::start(config(port), Instant::now()).expect("start capture");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        all.len()
    });
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client(&mut stream);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let received = server.join().unwrap();
    drop(stream);
    (capture.finish(), received)
}

fn payload_lens(captured: &Captured) -> Vec<usize> {
    captured
        .packets
        .iter()
        .filter(|p| p.dir == Direction::ClientToServer && p.len > 0)
        .map(|p| p.len)
        .collect()
}

fn three_nodelay_writes(stream: &mut TcpStream) {
    stream.set_nodelay(true).unwrap();
    for message in [&b"1234567"[..], b"abcde", b"hhhhh"] {
        stream.write_all(message).unwrap();
        // Let each segment leave before the next write, so none can queue behind another.
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn three_nodelay_writes_on_a_cold_connection_are_three_segments() {
    if !test_may_use(Capability::NetRaw, "three_nodelay_writes_on_a_cold_connection_are_three_segments") {
        return;
    }
    let (captured, received) = captured_exchange(CaptureConfig::loopback, three_nodelay_writes);
    assert_eq!(received, 17);
    assert_eq!(payload_lens(&captured), [7, 5, 5], "{:#?}", captured.packets);
    let texts: Vec<_> = captured.packets.iter().filter_map(|p| p.payload.clone()).collect();
    assert_eq!(texts, ["1234567", "abcde", "hhhhh"]);
    // The handshake and the close are in: capture started before connect, stopped after.
    let flags: Vec<&str> = captured.packets.iter().map(|p| p.flags.as_str()).collect();
    assert_eq!(&flags[..3], ["S", "S.", "."], "{flags:?}");
    assert!(flags.iter().filter(|f| f.contains('F')).count() == 2, "both FINs: {flags:?}");
    assert!(captured.packets.iter().all(|p| p.proto == Transport::Tcp));
    let segments = stream_segments(&captured.packets, Direction::ClientToServer, None, 0);
    assert_eq!(segments.segments.iter().map(|s| s.len).collect::<Vec<_>>(), [7, 5, 5]);
    assert_eq!(captured.kernel_drops, 0);
}

#[test]
fn loopback_frames_are_counted_once_and_twice_without_the_dedupe() {
    if !test_may_use(Capability::NetRaw, "loopback_frames_are_counted_once_and_twice_without_the_dedupe") {
        return;
    }
    // Two captures of the same connection: one ignoring loopback's outgoing copies, one
    // seeing both copies of every frame.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let clock = Instant::now();
    let deduped = Capture::start(CaptureConfig::loopback(port), clock).unwrap();
    let raw =
        Capture::start(CaptureConfig { ignore_outgoing: false, ..CaptureConfig::loopback(port) }, clock)
            .unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
    });
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    three_nodelay_writes(&mut stream);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    server.join().unwrap();
    drop(stream);
    let deduped = deduped.finish();
    let raw = raw.finish();
    // The true count: 3 handshake + 3 data + their ACKs + 2 FIN + final ACK, about 10–14;
    // the exact number depends on delayed/merged ACKs, but each is on the wire once.
    let n = deduped.packets.len();
    assert!((9..=16).contains(&n), "{n} packets: {:#?}", deduped.packets);
    assert_eq!(raw.packets.len(), 2 * n, "without PACKET_IGNORE_OUTGOING every frame shows twice");
    assert_eq!(payload_lens(&deduped), [7, 5, 5]);
    assert_eq!(payload_lens(&raw), [7, 7, 5, 5, 5, 5]);
}

#[test]
fn one_100_kb_write_with_a_known_mss_is_a_bounded_number_of_segments() {
    if !test_may_use(Capability::NetRaw, "one_100_kb_write_with_a_known_mss_is_a_bounded_number_of_segments")
    {
        return;
    }
    const BYTES: usize = 100 * 1024;
    const MSS: usize = 1000;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let capture = Capture::start(CaptureConfig::loopback(port), Instant::now()).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        all.len()
    });
    // TCP_MAXSEG before connect caps the MSS this end announces and uses.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_tcp_mss(MSS as u32).unwrap();
    socket.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut stream = TcpStream::from(socket);
    stream.write_all(&vec![b'x'; BYTES]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(server.join().unwrap(), BYTES);
    drop(stream);
    let captured = capture.finish();
    let lens = payload_lens(&captured);
    eprintln!("{} segments: {lens:?}", lens.len());
    assert_eq!(lens.iter().sum::<usize>(), BYTES, "every byte on the wire exactly once");
    // Loopback hands the capture GSO super-segments (up to 64 KiB) that are never cut
    // into MSS pieces, so every segment but the last is a whole number of MSS-sized
    // pieces, each the MSS less TCP options (12 bytes of timestamps; at most 40).
    let (last, rest) = lens.split_last().unwrap();
    let piece = rest.iter().copied().fold(0, gcd);
    assert!(rest.is_empty() || (MSS - 40..=MSS).contains(&piece), "piece {piece}: {lens:?}");
    assert!(*last <= 65_536, "{lens:?}");
    assert!((BYTES.div_ceil(65_536)..=BYTES.div_ceil(MSS - 40)).contains(&lens.len()), "{lens:?}");
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[test]
fn the_pcap_file_parses_back_with_the_same_packet_count() {
    if !test_may_use(Capability::NetRaw, "the_pcap_file_parses_back_with_the_same_packet_count") {
        return;
    }
    let (captured, _) = captured_exchange(CaptureConfig::loopback, three_nodelay_writes);
    let bytes = pcap::to_pcap(&captured.frames).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
    let mut count = 0;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        assert_eq!(packet.data.as_ref(), captured.frames[count].bytes.as_slice());
        count += 1;
    }
    assert_eq!(count, captured.packets.len());
    let (observation, artifact) = captured.into_report_parts("tcp-coalescing[nodelay=true]");
    let artifact = artifact.unwrap();
    assert_eq!(observation.pcap.as_deref(), Some(artifact.path.as_str()));
    assert!(artifact.path.starts_with("cases/") && artifact.path.ends_with("/capture.pcap"));
}
