//! What a hostile or careless client can make a reference server hold, bounded: silent
//! clients are closed after the idle timeout and trickled frames after the frame timeout,
//! in every flavour and framing; the stop flag ends stop-and-wait connections and
//! connections blocked in a read; unfinished frames across connections are capped,
//! stop-and-wait included; connections over the cap are refused; impossible settings are
//! refused at start-up; and UDP peers are counted and their garbage logged at a bounded
//! rate.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socklab_harness::framing::FramingStrategy;
use socklab_harness::peer::{Behaviour, ConfigError, Flavour, PeerError, Server, ServerConfig, Transport};

fn strategy(name: &str) -> FramingStrategy {
    name.parse().unwrap()
}

/// Reads until the server closes the connection; how long that took (panics after 20 s).
fn time_until_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server never closed the connection: {e}"),
    }
    started.elapsed()
}

/// A client that sends the start of a frame and goes silent is closed after the idle
/// timeout (1 s here; wide margins: well before 10 s), in every flavour, for a codec
/// framing and for stop-and-wait; the sequential flavour then serves the next client.
#[test]
fn a_silent_client_is_closed_after_the_idle_timeout() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for flavour in Flavour::ALL {
        for framing in ["u32be", "stop-and-wait"] {
            let what = format!("{flavour} {framing}");
            let server = Server::start(ServerConfig {
                flavour: *flavour,
                framing: strategy(framing),
                idle_timeout: Duration::from_secs(1),
                ..ServerConfig::default()
            })
            .unwrap();
            let mut silent = TcpStream::connect(server.addr()).unwrap();
            silent.write_all(&100u32.to_be_bytes()).unwrap(); // a header, then nothing
            let waited = time_until_closed(&mut silent);
            assert!(waited < Duration::from_secs(10), "{what}: closed after {waited:?}");
            assert!(waited >= Duration::from_millis(500), "{what}: closed after only {waited:?}");
            // The reason is logged just after the socket closes.
            let deadline = Instant::now() + Duration::from_secs(5);
            while server.stats().errors().is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let errors = server.stats().errors();
            assert!(errors.iter().any(|e| e.contains("idle for 1 s")), "{what}: {errors:?}");

            if framing == "u32be" {
                let mut next = TcpStream::connect(server.addr()).unwrap();
                next.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                next.write_all(b"\0\0\0\x02hi").unwrap();
                let mut reply = [0u8; 6];
                next.read_exact(&mut reply).unwrap_or_else(|e| panic!("{what}: next client not served: {e}"));
                assert_eq!(&reply, b"\0\0\0\x02hi");
            }
        }
    }
}

/// Stopping a server ends its stop-and-wait connections at once (within the poll
/// interval), not after the idle timeout: before, the threaded and sequential
/// stop-and-wait paths ignored the stop flag.
#[test]
fn stopping_the_server_ends_stop_and_wait_connections() {
    for flavour in [Flavour::Threaded, Flavour::Sequential] {
        let server = Server::start(ServerConfig {
            flavour,
            framing: FramingStrategy::StopAndWait,
            idle_timeout: Duration::from_secs(60),
            ..ServerConfig::default()
        })
        .unwrap();
        let mut client = TcpStream::connect(server.addr()).unwrap();
        std::thread::sleep(Duration::from_millis(200)); // accepted and waiting for a header
        server.stop();
        let waited = time_until_closed(&mut client);
        assert!(waited < Duration::from_secs(5), "{flavour}: closed after {waited:?}");
    }
}

/// Unfinished frames are capped across connections: with a 1 MiB cap, clients that each
/// hold 400 KiB of an unfinished 1 MiB frame are served until the cap, then the one that
/// would pass it is closed with a logged reason; the count returns to 0 after.
#[test]
fn unfinished_frames_are_capped_across_connections() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for flavour in [Flavour::Tokio, Flavour::Threaded] {
        let server =
            Server::start(ServerConfig { flavour, max_buffered_bytes: 1 << 20, ..ServerConfig::default() })
                .unwrap();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let mut client = TcpStream::connect(server.addr()).unwrap();
            client.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
            client.write_all(&vec![b'x'; 400 << 10]).unwrap();
            clients.push(client);
            std::thread::sleep(Duration::from_millis(200));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.stats().closed_with_error.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let errors = server.stats().errors();
        assert!(errors.iter().any(|e| e.contains("load shed")), "{flavour}: {errors:?}");
        let held = server.stats().buffered_bytes.load(Ordering::Relaxed);
        assert!(held <= 1 << 20, "{flavour}: {held} bytes held over the cap");
        drop(clients);
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.stats().buffered_bytes.load(Ordering::Relaxed) != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(server.stats().buffered_bytes.load(Ordering::Relaxed), 0, "{flavour}");
    }
}

#[test]
fn settings_a_machine_cannot_hold_are_refused_at_start_up() {
    let refused = |config: ServerConfig| match Server::start(config) {
        Err(PeerError::Config(e)) => e,
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error, the server started"),
    };
    let huge_fixed = refused(ServerConfig {
        framing: FramingStrategy::FixedSize(1_000_000_000_000),
        ..Default::default()
    });
    assert_eq!(huge_fixed, ConfigError::FixedOverMaxFrame { size: 1_000_000_000_000, max: 8 << 20 });
    assert_eq!(
        huge_fixed.to_string(),
        "fixed:1000000000000 records are larger than --max-frame 8388608; raise --max-frame or use smaller records"
    );
    let no_limit =
        refused(ServerConfig { framing: strategy("u64be"), max_frame_len: usize::MAX, ..Default::default() });
    assert_eq!(no_limit, ConfigError::MaxFrame { max: usize::MAX });
    let udp_saw = refused(ServerConfig {
        transport: Transport::Udp,
        framing: FramingStrategy::StopAndWait,
        ..Default::default()
    });
    assert_eq!(udp_saw, ConfigError::NeedsStream(FramingStrategy::StopAndWait));
    let source = refused(ServerConfig {
        behaviour: Behaviour::Source,
        framing: strategy("u8"),
        source_message_size: 1024,
        ..Default::default()
    });
    assert!(source.to_string().contains("carries at most 255 bytes"), "{source}");
    for (zero, expected) in [
        (ServerConfig { max_buffered_bytes: 0, ..Default::default() }, ConfigError::MaxBuffered),
        (ServerConfig { max_connections: 0, ..Default::default() }, ConfigError::MaxConnections),
        (ServerConfig { frame_timeout: Duration::ZERO, ..Default::default() }, ConfigError::FrameTimeout),
    ] {
        assert_eq!(refused(zero), expected);
    }
}

#[test]
fn udp_peers_are_counted_and_garbage_is_logged_at_a_bounded_rate() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for flavour in [Flavour::Tokio, Flavour::Threaded] {
        let server = Server::start(ServerConfig {
            transport: Transport::Udp,
            flavour,
            framing: strategy("u32be"),
            max_frame_len: 1024,
            ..Default::default()
        })
        .unwrap();
        let peers: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        // Paced, so the server's receive buffer never overflows and every datagram counts.
        for _ in 0..10 {
            for peer in &peers {
                for _ in 0..20 {
                    peer.send_to(&u32::MAX.to_be_bytes(), server.addr()).unwrap(); // a frame over the limit
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = server.stats();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.closed_with_error.load(Ordering::Relaxed) < 600 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(stats.connections.load(Ordering::Relaxed), 3, "{flavour}: three peers");
        assert_eq!(
            stats.closed_with_error.load(Ordering::Relaxed),
            600,
            "{flavour}: every bad datagram counted"
        );
        assert!(
            stats.warnings_suppressed.load(Ordering::Relaxed) >= 500,
            "{flavour}: at most a few lines a second are logged, the rest counted"
        );
    }
}

/// Waits (at most 10 s) until `done` holds; whether it did.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Stop-and-wait holds the cap too (before, it held nothing against it: 16 clients with an
/// 8 MiB body each took the server to 134 MiB under an 8 MiB cap). With a 1 MiB cap, a
/// client announces 1 MiB, is acknowledged, sends all but a byte of the body and holds;
/// the next client's announcement would pass the cap, so it is closed unacknowledged with
/// a logged reason, and the count returns to 0 when the first leaves.
#[test]
fn stop_and_wait_announcements_count_against_the_buffer_cap() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for flavour in [Flavour::Tokio, Flavour::Threaded] {
        let cap = 1usize << 20;
        let server = Server::start(ServerConfig {
            flavour,
            framing: FramingStrategy::StopAndWait,
            max_buffered_bytes: cap,
            ..ServerConfig::default()
        })
        .unwrap();
        let announce = |stream: &mut TcpStream| -> Option<u8> {
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            stream.write_all(&(cap as u32).to_be_bytes()).unwrap();
            let mut answer = [0u8; 1];
            match stream.read(&mut answer) {
                Ok(1) => Some(answer[0]),
                _ => None, // closed (EOF or reset) without an answer
            }
        };
        let mut first = TcpStream::connect(server.addr()).unwrap();
        assert_eq!(announce(&mut first), Some(0x06), "{flavour}: the first announcement fits");
        first.write_all(&vec![b'x'; cap - 1]).unwrap();
        let mut second = TcpStream::connect(server.addr()).unwrap();
        assert_eq!(announce(&mut second), None, "{flavour}: over the cap, closed without an ACK");
        assert!(eventually(|| !server.stats().errors().is_empty()), "{flavour}: nothing logged");
        let errors = server.stats().errors();
        assert!(errors.iter().any(|e| e.contains("load shed")), "{flavour}: {errors:?}");
        let held = server.stats().buffered_bytes.load(Ordering::Relaxed);
        assert_eq!(held, cap as u64, "{flavour}: the acknowledged body is counted, the refused one not");
        drop(first);
        assert!(
            eventually(|| server.stats().buffered_bytes.load(Ordering::Relaxed) == 0),
            "{flavour}: the count returns to 0"
        );
    }
}

/// The bytes of a frame that never completes, sent one at a time; `framing` is u32be,
/// line or stop-and-wait.
fn endless_frame(framing: &str) -> Vec<u8> {
    let mut bytes = match framing {
        "line" => Vec::new(),
        _ => 1000u32.to_be_bytes().to_vec(),
    };
    bytes.extend(std::iter::repeat_n(b'x', 1000 - 1));
    bytes
}

/// Sends `bytes` one every `every` until the server closes the connection; how long that
/// took, or `None` if it still served after 20 s. Any answer (an ACK) is read and ignored.
fn trickle_until_closed(stream: &mut TcpStream, bytes: &[u8], every: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(every)).unwrap();
    let mut answer = [0u8; 16];
    for byte in bytes.iter().cycle() {
        if started.elapsed() > Duration::from_secs(20) {
            return None;
        }
        if stream.write_all(&[*byte]).is_err() {
            return Some(started.elapsed());
        }
        match stream.read(&mut answer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Slowloris: a client trickling one byte every 300 ms keeps resetting the idle timeout,
/// but its frame is not complete within the frame timeout (1 s here), so it is closed —
/// within 5 s, with a logged reason — in every flavour, for a length prefix, a delimiter
/// and stop-and-wait. Before, it was served for as long as it kept trickling.
#[test]
fn a_frame_trickled_a_byte_at_a_time_is_cut_off_at_the_frame_timeout() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let mut clients = Vec::new();
    for flavour in Flavour::ALL {
        for framing in ["u32be", "line", "stop-and-wait"] {
            let server = Server::start(ServerConfig {
                flavour: *flavour,
                framing: strategy(framing),
                frame_timeout: Duration::from_secs(1),
                ..ServerConfig::default()
            })
            .unwrap();
            let addr = server.addr();
            // The nine cases trickle side by side: each takes seconds of waiting.
            clients.push((
                format!("{flavour} {framing}"),
                server,
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    trickle_until_closed(&mut stream, &endless_frame(framing), Duration::from_millis(300))
                }),
            ));
        }
    }
    for (what, server, client) in clients {
        let closed = client.join().unwrap();
        let closed = closed.unwrap_or_else(|| panic!("{what}: still served after 20 s"));
        assert!(closed < Duration::from_secs(5), "{what}: closed after {closed:?}");
        assert!(closed >= Duration::from_millis(800), "{what}: closed after only {closed:?}");
        assert!(eventually(|| !server.stats().errors().is_empty()), "{what}: nothing logged");
        let errors = server.stats().errors();
        assert!(errors.iter().any(|e| e.contains("--frame-timeout")), "{what}: {errors:?}");
    }
}

/// One round trip of `hello` in `framing` (u32be, line or stop-and-wait) on a blocking
/// stream.
fn round_trip(stream: &mut TcpStream, framing: &str) -> std::io::Result<()> {
    let mut reply = vec![0u8; 9];
    match framing {
        "line" => {
            stream.write_all(b"hello\n")?;
            stream.read_exact(&mut reply[..6])?;
            assert_eq!(&reply[..6], b"hello\n");
        }
        "u32be" => {
            stream.write_all(b"\0\0\0\x05hello")?;
            stream.read_exact(&mut reply)?;
            assert_eq!(&reply, b"\0\0\0\x05hello");
        }
        _ => {
            // Announce, wait for the ACK, send; then the echo the other way round.
            stream.write_all(&5u32.to_be_bytes())?;
            stream.read_exact(&mut reply[..1])?;
            assert_eq!(reply[0], 0x06);
            stream.write_all(b"hello")?;
            stream.read_exact(&mut reply[..4])?;
            assert_eq!(&reply[..4], &5u32.to_be_bytes());
            stream.write_all(&[0x06])?;
            stream.read_exact(&mut reply[..5])?;
            assert_eq!(&reply[..5], b"hello");
        }
    }
    Ok(())
}

/// The frame timeout bounds one frame, not a connection: a client sending a whole frame
/// every 500 ms for 3 s (three times the 1 s frame timeout) is answered every time.
#[test]
fn whole_frames_sent_slowly_are_not_cut_off() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let mut clients = Vec::new();
    for flavour in Flavour::ALL {
        for framing in ["u32be", "line", "stop-and-wait"] {
            let server = Server::start(ServerConfig {
                flavour: *flavour,
                framing: strategy(framing),
                frame_timeout: Duration::from_secs(1),
                ..ServerConfig::default()
            })
            .unwrap();
            let addr = server.addr();
            clients.push((
                format!("{flavour} {framing}"),
                server,
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    for _ in 0..6 {
                        std::thread::sleep(Duration::from_millis(500));
                        round_trip(&mut stream, framing)?;
                    }
                    Ok::<_, std::io::Error>(())
                }),
            ));
        }
    }
    for (what, server, client) in clients {
        client.join().unwrap().unwrap_or_else(|e| panic!("{what}: cut off: {e}"));
        assert_eq!(server.stats().messages.load(Ordering::Relaxed), 6, "{what}");
        assert!(server.stats().errors().is_empty(), "{what}: {:?}", server.stats().errors());
    }
}

/// At most `max_connections` are served at once (3 here): one more is closed at once,
/// counted and logged; when a client leaves, its place is free again. For the tokio and
/// threaded flavours (the sequential one serves one at a time anyway).
#[test]
fn connections_over_the_cap_are_refused_counted_and_logged() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for flavour in [Flavour::Tokio, Flavour::Threaded] {
        let server =
            Server::start(ServerConfig { flavour, max_connections: 3, ..ServerConfig::default() }).unwrap();
        let mut served: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
        for stream in &mut served {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            round_trip(stream, "u32be")
                .unwrap_or_else(|e| panic!("{flavour}: within the cap, not served: {e}"));
        }
        let mut refused = TcpStream::connect(server.addr()).unwrap();
        let waited = time_until_closed(&mut refused);
        assert!(waited < Duration::from_secs(5), "{flavour}: the fourth closed after {waited:?}");
        let stats = server.stats();
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1, "{flavour}");
        assert_eq!(stats.connections.load(Ordering::Relaxed), 3, "{flavour}: the refused one is not served");
        assert_eq!(stats.open_connections.load(Ordering::Relaxed), 3, "{flavour}");

        drop(served.pop());
        assert!(eventually(|| stats.open_connections.load(Ordering::Relaxed) == 2), "{flavour}: slot kept");
        let mut next = TcpStream::connect(server.addr()).unwrap();
        next.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        round_trip(&mut next, "u32be").unwrap_or_else(|e| panic!("{flavour}: a freed place not reused: {e}"));
    }
}

/// Stopping a threaded or sequential server ends connections blocked in a read at once,
/// though they no longer wake up to look at the stop flag.
#[test]
fn stopping_the_server_ends_idle_connections_at_once() {
    for flavour in [Flavour::Threaded, Flavour::Sequential] {
        let server = Server::start(ServerConfig { flavour, ..ServerConfig::default() }).unwrap();
        let mut client = TcpStream::connect(server.addr()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        round_trip(&mut client, "u32be").unwrap();
        client.write_all(b"\0\0").unwrap(); // half a header: the server is inside a frame
        std::thread::sleep(Duration::from_millis(200));
        server.stop();
        let waited = time_until_closed(&mut client);
        assert!(waited < Duration::from_secs(2), "{flavour}: closed after {waited:?}");
        assert!(server.stats().errors().is_empty(), "{flavour}: a stop is no client error");
    }
}

/// Replies a client does not read count against the cap too (past 256 KiB a connection):
/// with a 16 MiB cap, one client's 12 MiB echo waits unread (the kernel takes at most
/// 4 MiB of it here, `tcp_wmem`), so a second client's 8 MiB frame would pass the cap and
/// that connection is closed. Before, replies were not counted and the server held them
/// for every such client.
#[test]
fn replies_a_client_does_not_read_count_against_the_cap() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for flavour in [Flavour::Tokio, Flavour::Threaded] {
        let cap = 16usize << 20;
        let server = Server::start(ServerConfig {
            flavour,
            max_buffered_bytes: cap,
            max_frame_len: 16 << 20,
            ..ServerConfig::default()
        })
        .unwrap();
        let frame = |len: usize| {
            let mut bytes = (len as u32).to_be_bytes().to_vec();
            bytes.resize(4 + len, b'x');
            bytes
        };
        let reader = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        reader.set_recv_buffer_size(4096).unwrap(); // the echo stays with the server
        reader.connect(&server.addr().into()).unwrap();
        let mut not_reading: TcpStream = reader.into();
        not_reading.write_all(&frame(12 << 20)).unwrap();
        assert!(
            eventually(|| server.stats().messages.load(Ordering::Relaxed) == 1),
            "{flavour}: the frame was not received"
        );
        std::thread::sleep(Duration::from_millis(200)); // the echo is written as far as it goes
        let counted = server.stats().buffered_bytes.load(Ordering::Relaxed);
        assert!(counted > 6 << 20, "{flavour}: {counted} bytes of an unread 12 MiB echo counted");
        let mut second = TcpStream::connect(server.addr()).unwrap();
        // The server closes it part way; what it did not read may then reset the write.
        let _ = second.write_all(&frame(8 << 20));
        let waited = time_until_closed(&mut second);
        assert!(waited < Duration::from_secs(10), "{flavour}");
        assert!(eventually(|| !server.stats().errors().is_empty()), "{flavour}: nothing logged");
        let errors = server.stats().errors();
        assert!(errors.iter().any(|e| e.contains("load shed")), "{flavour}: {errors:?}");
        let held = server.stats().buffered_bytes.load(Ordering::Relaxed);
        assert!(held <= cap as u64, "{flavour}: {held} bytes held over the cap");
        drop(not_reading);
        assert!(
            eventually(|| server.stats().buffered_bytes.load(Ordering::Relaxed) == 0),
            "{flavour}: the count returns to 0"
        );
    }
}
