//! What a hostile or careless client can make a reference server hold, bounded: silent
//! clients are closed after the idle timeout in every flavour and framing, the stop flag
//! ends stop-and-wait connections too, unfinished frames across connections are capped,
//! impossible settings are refused at start-up, and UDP peers are counted and their
//! garbage logged at a bounded rate.

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
