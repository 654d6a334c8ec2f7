//! The impairment relays over real loopback sockets: what they pass, cut, glue, hold back,
//! reset and lose, and that a seed replays it.
//!
//! Timing assertions are lower bounds only (a delay is at least what was asked): a loaded
//! machine makes things later, never earlier.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use socklab_harness::impair::{Impairment, PassThrough, RelayConfig, TcpRelay, UdpRelay};

/// A server that accepts `connections` clients one after another and echoes each until
/// it closes (bounded: 10 s per connection).
fn echo_server(connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept() else { return };
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 65536];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    addr
}

/// A server that records the size of each read of its first client (reading as data
/// arrives, `read_size` at a time) until EOF, and returns them.
fn recording_server(read_size: usize) -> (SocketAddr, thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reads = Vec::new();
        let mut buf = vec![0u8; read_size];
        for _ in 0..100_000 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reads.push(buf[..n].to_vec()),
            }
        }
        reads
    });
    (addr, handle)
}

fn spec(text: &str) -> Impairment {
    Impairment::parse(text).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Waits (bounded) until the relay's first connection is closed, and returns its record.
fn closed_record(relay: &TcpRelay) -> socklab_harness::impair::ProxyConnection {
    for _ in 0..1000 {
        if let Some(record) = relay.connection(0).filter(|c| c.closed) {
            return record;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("the connection did not close within 10 s: {:?}", relay.connection(0));
}

#[test]
fn pass_through_relays_both_ways_and_counts() {
    for mode in [PassThrough::Splice, PassThrough::Copy] {
        let relay = TcpRelay::start_with(
            echo_server(1),
            &Impairment::default(),
            1,
            RelayConfig { pass_through: mode, ..RelayConfig::default() },
        )
        .unwrap();
        let mut client = connect(relay.addr());
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let mut client = client.try_clone().unwrap();
            let data = data.clone();
            thread::spawn(move || client.write_all(&data).unwrap())
        };
        let mut back = vec![0u8; data.len()];
        client.read_exact(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == data, "{mode:?}: the echo came back changed");
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0, "{mode:?}: the FIN is passed on both ways");
        let record = closed_record(&relay);
        assert_eq!((record.up.bytes_in, record.up.bytes_out), (200_000, 200_000), "{mode:?}");
        assert_eq!((record.down.bytes_in, record.down.bytes_out), (200_000, 200_000), "{mode:?}");
        assert!(!record.up.impaired && !record.reset && record.error.is_none(), "{mode:?}: {record:?}");
    }
}

/// The writes the relay made towards the server through `spec` with `seed`, when the
/// client writes `messages` back to back, and the server's reads.
fn through(spec_text: &str, seed: u64, messages: &[&[u8]], read_size: usize) -> (Vec<usize>, Vec<Vec<u8>>) {
    let (server, reads) = recording_server(read_size);
    let relay = TcpRelay::start(server, &spec(spec_text), seed).unwrap();
    let mut client = connect(relay.addr());
    client.set_nodelay(true).unwrap();
    for message in messages {
        client.write_all(message).unwrap();
    }
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let reads = reads.join().unwrap();
    let record = closed_record(&relay);
    assert_eq!(record.up.output_writes.total as usize, record.up.output_writes.first.len());
    (record.up.output_writes.first.iter().map(|w| w.len).collect(), reads)
}

#[test]
fn the_same_seed_makes_the_same_writes_over_real_sockets() {
    let data: Vec<u8> = (0..300u32).map(|i| (i % 26) as u8 + b'a').collect();
    let (a, reads) = through("split=1..7+gap=0", 42, &[&data[..100], &data[100..]], 4096);
    let (b, _) = through("split=1..7+gap=0", 42, &[&data[..50], &data[50..250], &data[250..]], 4096);
    let (c, _) = through("split=1..7+gap=0", 43, &[&data], 4096);
    assert_eq!(a, b, "same seed, same bytes: same writes, however the client wrote them");
    assert_ne!(a, c, "another seed cuts elsewhere");
    assert!(a.iter().all(|&n| (1..=7).contains(&n)), "{a:?}");
    assert_eq!(a.iter().sum::<usize>(), 300);
    assert_eq!(reads.concat(), data, "the bytes arrive intact and in order");
}

#[test]
fn split_one_gives_a_reader_that_keeps_up_one_byte_per_read() {
    // A 50 ms gap is far more than a blocked reader needs to wake up.
    let (writes, reads) = through("split=1+gap=50ms", 1, &[b"1234567", b"abcde", b"hhhhh"], 5);
    assert_eq!(writes, vec![1; 17]);
    assert_eq!(reads.len(), 17, "{reads:?}");
    assert_eq!(reads.concat(), b"1234567abcdehhhhh");
}

#[test]
fn merge_puts_three_writes_in_one_read() {
    let (writes, reads) = through("merge=50ms", 1, &[b"1234567", b"abcde", b"hhhhh"], 1024);
    assert_eq!(writes, [17]);
    assert_eq!(reads, [b"1234567abcdehhhhh".to_vec()]);
}

#[test]
fn a_request_reply_protocol_is_slowed_not_stuck_by_holding() {
    for text in ["merge=4096B", "random", "split=3"] {
        let relay = TcpRelay::start(echo_server(1), &spec(text), 5).unwrap();
        let mut client = connect(relay.addr());
        let mut reply = [0u8; 10];
        for round in 0..10u8 {
            let request = [round; 10];
            client.write_all(&request).unwrap();
            client.read_exact(&mut reply).unwrap_or_else(|e| panic!("{text}: round {round}: {e}"));
            assert_eq!(reply, request, "{text}");
        }
    }
}

#[test]
fn delay_adds_at_least_its_time_each_way() {
    let relay = TcpRelay::start(echo_server(1), &spec("delay=20ms"), 1).unwrap();
    let mut client = connect(relay.addr());
    let mut reply = [0u8; 4];
    for _ in 0..3 {
        let sent = Instant::now();
        client.write_all(b"ping").unwrap();
        client.read_exact(&mut reply).unwrap();
        assert!(sent.elapsed() >= Duration::from_millis(40), "{:?}", sent.elapsed());
    }
    drop(client);
    let record = closed_record(&relay);
    assert!(record.up.output_writes.first.iter().all(|w| w.delay_us >= 20_000.0), "{record:?}");
}

#[test]
fn stall_stops_forwarding_for_its_time() {
    let (server, reads) = recording_server(1024);
    let relay = TcpRelay::start(server, &spec("stall=200ms@5"), 1).unwrap();
    let mut client = connect(relay.addr());
    let sent = Instant::now();
    client.write_all(b"12345678").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let reads = reads.join().unwrap();
    assert!(sent.elapsed() >= Duration::from_millis(200));
    assert_eq!(reads.concat(), b"12345678");
    assert_eq!(reads[0], b"12345", "the first 5 bytes came before the stall");
}

#[test]
fn reset_after_sends_n_bytes_then_resets_both_sides() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return (got, None),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Some(e.kind())),
            }
        }
    });
    let relay = TcpRelay::start(server_addr, &spec("reset-after=10"), 1).unwrap();
    let mut client = connect(relay.addr());
    client.write_all(&[7u8; 100]).unwrap();
    let (got, error) = server.join().unwrap();
    assert_eq!(got, [7u8; 10], "exactly 10 bytes before the reset");
    assert_eq!(error, Some(ErrorKind::ConnectionReset), "the server sees RST, not FIN");
    let client_sees = client.read(&mut [0u8; 16]);
    assert_eq!(client_sees.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset), "and so does the client");
    let record = closed_record(&relay);
    assert!(record.reset, "{record:?}");
    assert_eq!(record.up.bytes_out, 10);
}

#[test]
fn an_upstream_that_refuses_is_recorded_and_the_client_let_go() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // nothing listens now
    let relay = TcpRelay::start(closed, &Impairment::default(), 1).unwrap();
    let mut client = connect(relay.addr());
    let outcome = client.read(&mut [0u8; 1]);
    assert!(matches!(outcome, Ok(0) | Err(_)), "{outcome:?}");
    let record = closed_record(&relay);
    assert!(record.error.unwrap().starts_with(&format!("cannot connect to {closed}")));
}

#[test]
fn a_udp_spec_is_refused_by_the_tcp_relay_and_the_other_way_round() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = TcpRelay::start(addr, &spec("loss=0.1"), 1).err().unwrap();
    assert!(err.to_string().starts_with("loss applies to UDP only"), "{err}");
    let err = UdpRelay::start(addr, &spec("split=3"), 1).err().unwrap();
    assert!(err.to_string().starts_with("split applies to TCP only"), "{err}");
}

/// Sends `count` datagrams carrying their sequence number through a UDP relay with
/// `spec`, paced so that no socket buffer overflows (at most 64 in flight, counting the
/// relay's drops), and returns the sequence numbers that arrived and the relay's record.
fn udp_through(
    spec_text: &str,
    seed: u64,
    count: u32,
) -> (Vec<u32>, socklab_harness::impair::ProxyObservation) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let relay = UdpRelay::start(receiver.local_addr().unwrap(), &spec(spec_text), seed).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.connect(relay.addr()).unwrap();
    let mut arrived = Vec::new();
    let mut buf = [0u8; 64];
    let started = Instant::now();
    // Datagrams the receiver will never see (dropped) and extra ones (copies).
    let missing = |relay: &UdpRelay| {
        relay
            .observation()
            .connections
            .first()
            .map_or(0, |c| c.up.dropped.total as i64 - c.up.duplicated.total as i64)
    };
    for seq in 0..count {
        let mut payload = [0u8; 32];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        sender.send(&payload).unwrap();
        // Keep at most 64 datagrams between sender and receiver.
        while i64::from(seq) + 1 - arrived.len() as i64 - missing(&relay) > 64 {
            match receiver.recv(&mut buf) {
                Ok(n) if n >= 4 => arrived.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
                Ok(_) => {}
                Err(_) => break, // the relay's record will show what went missing
            }
            assert!(started.elapsed() < Duration::from_secs(60), "bounded in time");
        }
    }
    while let Ok(n) = receiver.recv(&mut buf) {
        if n >= 4 {
            arrived.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
        if arrived.len() as i64 + missing(&relay) >= i64::from(count) {
            break;
        }
    }
    (arrived, relay.observation())
}

#[test]
fn udp_loss_of_a_tenth_loses_ten_percent_the_same_ones_for_the_same_seed() {
    let (arrived, record) = udp_through("loss=0.1", 2024, 10_000);
    let lost: BTreeSet<u32> = (0..10_000).filter(|seq| !arrived.contains(seq)).collect();
    let share = lost.len() as f64 / 10_000.0;
    assert!((0.07..=0.13).contains(&share), "lost {share}");
    let up = &record.connections[0].up;
    let dropped: BTreeSet<u32> = up.dropped.first.iter().map(|&i| i as u32).collect();
    assert_eq!(dropped, lost, "the sequence numbers show which: exactly the ones the relay dropped");
    assert_eq!(up.dropped.total as usize, lost.len());
    let (again, _) = udp_through("loss=0.1", 2024, 10_000);
    let lost_again: BTreeSet<u32> = (0..10_000).filter(|seq| !again.contains(seq)).collect();
    assert_eq!(lost_again, lost, "the same seed loses the same datagrams");
    let (other, _) = udp_through("loss=0.1", 2025, 10_000);
    let lost_other: BTreeSet<u32> = (0..10_000).filter(|seq| !other.contains(seq)).collect();
    assert_ne!(lost_other, lost, "another seed loses others");
}

#[test]
fn udp_duplicates_reorders_and_truncates_as_recorded() {
    let (arrived, record) = udp_through("duplicate=0.2+reorder=0.2/2+truncate=8@0.5", 9, 1000);
    let up = &record.connections[0].up;
    assert_eq!(arrived.len() as u64, 1000 + up.duplicated.total, "every datagram, and the copies");
    assert!(up.duplicated.total > 100 && up.reordered.total > 100 && up.truncated.total > 100, "{up:?}");
    assert!(arrived.windows(2).any(|w| w[1] < w[0]), "some arrived out of order");
}

/// A server that accepts up to `connections` clients at once and echoes each until it
/// closes (bounded: 30 s per connection).
fn echo_server_for(connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept() else { return };
            thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Waits (bounded: 10 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within 10 s");
}

#[test]
fn a_tcp_connection_idle_for_the_timeout_is_closed_counted_and_its_slot_freed() {
    // Every way a direction moves bytes: splice, copy, and the seeded schedule.
    for (text, pass_through) in
        [("none", PassThrough::Splice), ("none", PassThrough::Copy), ("split=3+gap=0", PassThrough::Splice)]
    {
        let config = RelayConfig {
            idle_timeout: Duration::from_secs(1),
            max_connections: 1,
            pass_through,
            ..RelayConfig::default()
        };
        let relay = TcpRelay::start_with(echo_server_for(2), &spec(text), 1, config).unwrap();
        let mut client = connect(relay.addr());
        client.write_all(b"ping").unwrap();
        client.read_exact(&mut [0u8; 4]).unwrap();
        let quiet = Instant::now();
        let end = client.read(&mut [0u8; 16]);
        let waited = quiet.elapsed();
        assert!(matches!(end, Ok(0)), "{text}: the relay closed the idle connection with a FIN: {end:?}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(6),
            "{text}: closed {waited:?} after the last byte, for a 1 s timeout"
        );
        let record = closed_record(&relay);
        assert_eq!(record.error.as_deref(), Some("idle for 1s: closed by the relay"), "{text}");
        assert!(!record.reset, "{text}: closed, not reset");
        wait_until("the slot is free", || relay.counters().open == 0);
        assert_eq!(relay.counters().closed_idle, 1, "{text}");
        let mut next = connect(relay.addr());
        next.write_all(b"again").unwrap();
        let mut reply = [0u8; 5];
        next.read_exact(&mut reply).unwrap_or_else(|e| panic!("{text}: the freed slot serves: {e}"));
        assert_eq!(&reply, b"again");
        assert_eq!(relay.refused(), 0, "{text}");
    }
}

#[test]
fn a_connection_whose_server_stopped_reading_is_closed_when_nothing_moves() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    // Accepts and holds the connection without ever reading (bounded: 20 s).
    let holder = thread::spawn(move || {
        let held = listener.accept();
        thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let config = RelayConfig { idle_timeout: Duration::from_secs(1), ..RelayConfig::default() };
    let relay = TcpRelay::start_with(upstream, &Impairment::default(), 1, config).unwrap();
    let client = connect(relay.addr());
    client.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let writer = thread::spawn(move || {
        let chunk = vec![0u8; 1 << 16];
        // Until the buffers on the way fill and the relay closes the connection; at
        // most 1 GiB.
        for _ in 0..16_384 {
            if (&client).write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let record = closed_record(&relay);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(record.error.as_deref(), Some("idle for 1s: closed by the relay"), "{record:?}");
    assert!(record.up.bytes_in > 0, "bytes moved until the buffers were full");
    assert!(writer.join().unwrap(), "the client's writes fail once the relay let go");
    drop(holder);
}

#[test]
fn a_client_that_resets_frees_its_slot_at_once() {
    let config = RelayConfig { max_connections: 1, ..RelayConfig::default() };
    let relay = TcpRelay::start_with(echo_server_for(2), &Impairment::default(), 1, config).unwrap();
    let mut client = connect(relay.addr());
    client.write_all(b"ping").unwrap();
    client.read_exact(&mut [0u8; 4]).unwrap();
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    drop(client); // RST
    wait_until("the reset frees the slot", || relay.counters().open == 0);
    let mut next = connect(relay.addr());
    next.write_all(b"next").unwrap();
    let mut reply = [0u8; 4];
    next.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"next");
    assert_eq!(relay.refused(), 0);
}

#[test]
fn connections_over_the_cap_are_refused_counted_and_named() {
    let config = RelayConfig { max_connections: 2, ..RelayConfig::default() };
    let relay = TcpRelay::start_with(echo_server_for(2), &Impairment::default(), 1, config).unwrap();
    let held: Vec<TcpStream> = (0..2).map(|_| connect(relay.addr())).collect();
    wait_until("two connections served", || relay.counters().open == 2);
    let mut third = connect(relay.addr());
    let local = third.local_addr().unwrap();
    let outcome = third.read(&mut [0u8; 1]);
    assert!(matches!(outcome, Ok(0) | Err(_)), "closed at once: {outcome:?}");
    let counters = relay.counters();
    assert_eq!((counters.refused, counters.last_refused), (1, Some(local)), "{counters:?}");
    drop(held);
}

#[test]
fn stopping_the_relay_ends_idle_connections_at_once() {
    let relay = TcpRelay::start(echo_server_for(1), &Impairment::default(), 1).unwrap();
    let mut client = connect(relay.addr());
    client.write_all(b"ping").unwrap();
    client.read_exact(&mut [0u8; 4]).unwrap();
    let stopped = Instant::now();
    drop(relay);
    let end = client.read(&mut [0u8; 1]);
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "the stop reaches a blocked read: {:?}",
        stopped.elapsed()
    );
}

/// A UDP server that echoes every datagram back to its sender, for `for_how_long`.
fn udp_echo(for_how_long: Duration) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        while started.elapsed() < for_how_long {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    addr
}

/// One datagram from a new socket through `relay`: whether its echo came back.
fn udp_answered(relay: SocketAddr, wait: Duration) -> (bool, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(b"hello", relay).unwrap();
    (socket.recv(&mut [0u8; 16]).is_ok(), socket.local_addr().unwrap())
}

#[test]
fn udp_flows_expire_so_new_clients_are_served_and_a_refused_one_is_counted() {
    let config =
        RelayConfig { max_connections: 4, flow_timeout: Duration::from_secs(1), ..RelayConfig::default() };
    let relay =
        UdpRelay::start_with(udp_echo(Duration::from_secs(30)), &Impairment::default(), 1, config).unwrap();
    for client in 0..4 {
        assert!(udp_answered(relay.addr(), Duration::from_secs(5)).0, "client {client}");
    }
    let (answered, refused) = udp_answered(relay.addr(), Duration::from_millis(500));
    assert!(!answered, "a fifth address while four flows are live is refused");
    let counters = relay.counters();
    assert_eq!((counters.refused, counters.last_refused), (1, Some(refused)), "{counters:?}");
    // The four flows go quiet; after the timeout (and the sweep) their slots are free.
    wait_until("the idle flows expire", || relay.counters().closed_idle == 4);
    for client in 0..4 {
        assert!(udp_answered(relay.addr(), Duration::from_secs(5)).0, "new client {client} after the expiry");
    }
    let observation = relay.observation();
    let expired = observation.connections.iter().filter(|c| c.closed).collect::<Vec<_>>();
    assert_eq!(expired.len(), 4, "{observation:?}");
    assert!(
        expired.iter().all(|c| c.error.as_deref() == Some("idle for 1s: flow closed by the relay")),
        "{expired:?}"
    );
    assert_eq!(observation.connections.len(), 8, "each flow its own record, indexes never reused");
}

#[test]
fn the_udp_delay_queue_is_bounded_and_what_it_drops_is_counted() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = RelayConfig { max_queued_bytes: 1 << 20, ..RelayConfig::default() };
    let relay = UdpRelay::start_with(receiver.local_addr().unwrap(), &spec("delay=30s"), 1, config).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.connect(relay.addr()).unwrap();
    let reads = |relay: &UdpRelay| relay.observation().connections.first().map_or(0, |c| c.up.reads_in);
    let payload = [7u8; 1000];
    // 2,000 datagrams of 1000 B, in bursts of 50 the relay reads before the next, so no
    // socket buffer overflows and every one reaches the relay.
    for burst in 1..=40u64 {
        for _ in 0..50 {
            sender.send(&payload).unwrap();
        }
        wait_until("the relay reads the burst", || reads(&relay) == burst * 50);
    }
    let up = relay.observation().connections[0].up.clone();
    // Each waiting datagram counts 1000 B + QUEUED_OVERHEAD; 1 MiB holds 929 of them.
    let held = (1 << 20) / (1000 + socklab_harness::impair::QUEUED_OVERHEAD) as u64;
    assert_eq!(up.dropped_queue_full, 2000 - held, "{up:?}");
    assert_eq!(relay.counters().dropped_queue_full, 2000 - held);
    assert_eq!(up.dropped.total, 0, "the seeded loss is another count");
    assert_eq!(up.writes_out, 0, "nothing is due before 30 s");
}
