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

/// An independent capture to check socklab's against: a plain `AF_PACKET` socket on `lo`
/// read with `recvmsg`, each frame's time taken from its `SO_TIMESTAMPNS` control
/// message. It shares no code with socklab's capture, which reads a `TPACKET_V3` ring.
struct ReferenceCapture {
    fd: std::os::fd::OwnedFd,
}

/// A frame as the reference capture saw it: the kernel's receive time and the bytes.
struct ReferenceFrame {
    wall: std::time::SystemTime,
    bytes: Vec<u8>,
}

impl ReferenceCapture {
    /// Opens the socket, and waits (at most 2 s) until the kernel stamps frames as they
    /// arrive: it switches timestamping on a moment after the first socket asks, and a
    /// frame that arrived unstamped gets the time it was read instead.
    fn open() -> ReferenceCapture {
        use std::os::fd::FromRawFd;
        let protocol = i32::from((libc::ETH_P_ALL as u16).to_be());
        // SAFETY: plain socket(2), checked before it is wrapped.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
        assert!(raw >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nobody else owns.
        let capture = ReferenceCapture { fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) } };
        capture.set(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        capture.set(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
        capture.set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20);
        // SAFETY: all-zero is a valid sockaddr_ll to fill in.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: a NUL-terminated name.
        address.sll_ifindex = unsafe { libc::if_nametoindex(c"lo".as_ptr()) } as i32;
        // SAFETY: a live sockaddr_ll and its size.
        let rc = unsafe {
            libc::bind(
                capture.raw(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind to lo: {}", std::io::Error::last_os_error());
        capture.wait_until_stamping();
        capture.read_all();
        capture
    }

    fn raw(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    fn set(&self, level: i32, name: i32, value: i32) {
        // SAFETY: a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
        assert_eq!(rc, 0, "setsockopt {level}/{name}: {}", std::io::Error::last_os_error());
    }

    /// Sends UDP probes to a socket of our own on loopback until one comes back stamped
    /// before the send returned: then the kernel is stamping frames on arrival.
    fn wait_until_stamping(&self) {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..200 {
            probe.send_to(b"socklab timestamp probe", ("127.0.0.1", port)).unwrap();
            let sent = std::time::SystemTime::now();
            std::thread::sleep(Duration::from_millis(1));
            let stamped_in_time = self
                .read_all()
                .iter()
                .filter(|f| ports(&f.bytes).is_some_and(|(_, dst)| dst == port))
                .any(|f| f.wall <= sent);
            if stamped_in_time {
                return;
            }
            assert!(Instant::now() < deadline, "the kernel did not start stamping frames within 2 s");
        }
        panic!("the kernel did not start stamping frames after 200 probes");
    }

    /// Every frame queued now (at most 100 000).
    fn read_all(&self) -> Vec<ReferenceFrame> {
        let mut frames = Vec::new();
        let mut buffer = vec![0u8; 70_000];
        for _ in 0..100_000 {
            let mut control = [0u64; 16];
            let mut iov = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
            // SAFETY: all-zero is a valid msghdr to fill in.
            let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
            message.msg_iov = &mut iov;
            message.msg_iovlen = 1;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = std::mem::size_of_val(&control);
            // SAFETY: the msghdr points at live buffers of the sizes it gives.
            let n = unsafe { libc::recvmsg(self.raw(), &mut message, libc::MSG_DONTWAIT) };
            if n < 0 {
                break;
            }
            let mut wall = None;
            // SAFETY: walks the control messages the kernel wrote into `control`.
            unsafe {
                let mut header = libc::CMSG_FIRSTHDR(&message);
                while !header.is_null() {
                    if (*header).cmsg_level == libc::SOL_SOCKET
                        && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
                    {
                        let ts = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<libc::timespec>());
                        wall =
                            Some(std::time::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                    }
                    header = libc::CMSG_NXTHDR(&message, header);
                }
            }
            let wall = wall.expect("every frame carries SCM_TIMESTAMPNS");
            frames.push(ReferenceFrame { wall, bytes: buffer[..n as usize].to_vec() });
        }
        frames
    }
}

/// Source and destination port of an Ethernet + IPv4 + TCP/UDP frame.
fn ports(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let transport = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    Some((u16::from_be_bytes([transport[0], transport[1]]), u16::from_be_bytes([transport[2], transport[3]])))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn every_packet_time_is_within_100_us_of_an_independent_capture() {
    if !test_may_use(Capability::NetRaw, "every_packet_time_is_within_100_us_of_an_independent_capture") {
        return;
    }
    /// The target: socklab's time for a packet within 100 µs of tcpdump's.
    const TOLERANCE_US: f64 = 100.0;
    let reference = ReferenceCapture::open();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let clock = Instant::now();
    let capture = Capture::start(CaptureConfig::loopback(port), clock).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        all.len()
    });
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Writes milliseconds apart, then a burst microseconds apart.
    three_nodelay_writes(&mut stream);
    for message in [&b"one"[..], b"two", b"three", b"four", b"five"] {
        stream.write_all(message).unwrap();
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(server.join().unwrap(), 17 + 3 + 3 + 5 + 4 + 4);
    drop(stream);
    let captured = capture.finish();
    let reference: Vec<ReferenceFrame> = reference
        .read_all()
        .into_iter()
        .filter(|f| ports(&f.bytes).is_some_and(|(src, dst)| src == port || dst == port))
        .collect();
    // The reference's wall times on the case clock, through a link of our own.
    let (case_now, wall_now) = (clock.elapsed(), std::time::SystemTime::now());
    let on_case_clock = |wall: std::time::SystemTime| match wall_now.duration_since(wall) {
        Ok(before) => (case_now.as_secs_f64() - before.as_secs_f64()) * 1e6,
        Err(after) => (case_now.as_secs_f64() + after.duration().as_secs_f64()) * 1e6,
    };

    assert_eq!(captured.frames.len(), reference.len(), "both captures saw the same packets");
    assert!(captured.frames.len() >= 12, "{} packets", captured.frames.len());
    let mut used = vec![false; reference.len()];
    let (mut wall_gaps, mut case_gaps) = (Vec::new(), Vec::new());
    for (frame, packet) in captured.frames.iter().zip(&captured.packets) {
        let index = (0..reference.len())
            .find(|&i| !used[i] && reference[i].bytes == frame.bytes)
            .unwrap_or_else(|| panic!("socklab's packet {packet:?} is not in the reference capture"));
        used[index] = true;
        let theirs = &reference[index];
        let wall_gap_us = match frame.wall.duration_since(theirs.wall) {
            Ok(late) => late.as_secs_f64() * 1e6,
            Err(early) => -early.duration().as_secs_f64() * 1e6,
        };
        let case_gap_us = packet.at_us - on_case_clock(theirs.wall);
        assert!(
            wall_gap_us.abs() <= TOLERANCE_US && case_gap_us.abs() <= TOLERANCE_US,
            "{} {} seq {} len {}: {wall_gap_us:.1} µs from the reference's time ({case_gap_us:.1} µs on the case clock)",
            packet.flags,
            if packet.dir == Direction::ClientToServer { "→" } else { "←" },
            packet.seq,
            packet.len
        );
        wall_gaps.push(wall_gap_us.abs());
        case_gaps.push(case_gap_us.abs());
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{} packets: |socklab - reference| max {:.3} µs, median {:.3} µs (pcap times); max {:.3} µs, median {:.3} µs (case clock)",
        wall_gaps.len(),
        max(&wall_gaps),
        median(&mut wall_gaps.clone()),
        max(&case_gaps),
        median(&mut case_gaps.clone())
    );
}

/// Other loopback traffic — here a 512 MiB bulk transfer on another port — neither
/// fills the capture's ring nor shows up as the case's drops: a kernel filter keeps only
/// the case's ports. Before the filter, a busy machine made cases report hundreds of
/// "kernel drops" that were not theirs.
#[test]
fn other_loopback_traffic_is_neither_captured_nor_counted_as_drops() {
    if !test_may_use(Capability::NetRaw, "other_loopback_traffic_is_neither_captured_nor_counted_as_drops") {
        return;
    }
    let noise = TcpListener::bind("127.0.0.1:0").unwrap();
    let noise_addr = noise.local_addr().unwrap();
    let sink = std::thread::spawn(move || {
        let (mut stream, _) = noise.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        std::io::copy(&mut stream, &mut std::io::sink()).unwrap()
    });
    let source = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(noise_addr).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..512 {
            stream.write_all(&chunk).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(20)); // the bulk transfer is under way
    let (captured, received) = captured_exchange(CaptureConfig::loopback, three_nodelay_writes);
    source.join().unwrap();
    assert_eq!(sink.join().unwrap(), 512 << 20);
    assert_eq!(received, 17);
    assert_eq!(captured.kernel_drops, 0, "drops of other traffic are not the case's");
    assert_eq!(payload_lens(&captured), [7, 5, 5]);
    let noise_port = noise_addr.port();
    assert!(captured.packets.iter().all(|p| p.client_port != noise_port), "only the case's packets");
}
