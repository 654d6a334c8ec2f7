//! Reference peers on loopback: every flavour and behaviour, hostile input, stalls and
//! timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use socklab_harness::framing::FramingStrategy;
use socklab_harness::peer::payload::{self, Verdict};
use socklab_harness::peer::{
    Behaviour, Flavour, MessageCodec, Mode, PeerError, Server, ServerConfig, Transport, Workload,
    run_workload,
};
use tokio_util::codec::{Decoder, Encoder};

fn strategy(name: &str) -> FramingStrategy {
    name.parse().unwrap()
}

fn server(flavour: Flavour, behaviour: Behaviour, framing: &str) -> Server {
    Server::start(ServerConfig { flavour, behaviour, framing: strategy(framing), ..ServerConfig::default() })
        .unwrap()
}

fn workload(mode: Mode, framing: &str, size: usize, server: Behaviour) -> Workload {
    Workload {
        mode,
        framing: strategy(framing),
        message_size: size,
        duration: Duration::from_secs(5),
        max_messages: 200,
        server,
        reply_timeout: Duration::from_secs(5),
        ..Workload::default()
    }
}

/// A sending window that is over before the sender starts (here: zero long) still sends
/// one message, in every mode, so a case always has traffic to judge. Before the fix the
/// window was timed from before the sender task was spawned, and a late start sent
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_over_before_the_sender_starts_still_sends_one_message() {
    for (mode, behaviour) in [
        (Mode::PingPong, Behaviour::Echo),
        (Mode::Pipelined, Behaviour::Echo),
        (Mode::OpenLoop, Behaviour::Echo),
        (Mode::Bulk, Behaviour::Sink),
    ] {
        for framing in ["u32be", "stop-and-wait"] {
            let server = server(Flavour::Tokio, behaviour, framing);
            let what = format!("{mode} {framing}");
            let zero = Workload { duration: Duration::ZERO, ..workload(mode, framing, 100, behaviour) };
            let result = run_workload(server.addr(), &zero).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            // Pipelined mode batches a whole window into its first write.
            assert!(result.sent >= 1, "{what}: sent nothing");
            if behaviour == Behaviour::Echo {
                let n = result.sent;
                assert_eq!((result.replied, result.intact, result.latency.count()), (n, n, n), "{what}");
                assert!(result.elapsed > Duration::ZERO, "{what}: elapsed {:?}", result.elapsed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flavour_and_reply_behaviour_round_trips_every_strategy() {
    let strategies =
        ["line", "cobs", "u32be", "u16le", "varint", "json-header", "fixed:100", "stop-and-wait"];
    for flavour in Flavour::ALL {
        for behaviour in [Behaviour::Echo, Behaviour::EchoUpper] {
            for framing in strategies {
                let server = server(*flavour, behaviour, framing);
                for mode in [Mode::PingPong, Mode::Pipelined] {
                    let what = format!("{flavour} {behaviour} {framing} {mode}");
                    let result = run_workload(server.addr(), &workload(mode, framing, 100, behaviour))
                        .await
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(result.sent, 200, "{what}");
                    assert_eq!((result.replied, result.intact), (200, 200), "{what}");
                    assert_eq!((result.corrupted, result.out_of_order), (0, 0), "{what}");
                    assert_eq!(result.latency.count(), 200, "{what}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_into_a_sink_arrives_intact_and_in_order() {
    for flavour in Flavour::ALL {
        for framing in ["u32be", "line", "stop-and-wait"] {
            let server = server(*flavour, Behaviour::Sink, framing);
            let mut w = workload(Mode::Bulk, framing, 4096, Behaviour::Sink);
            w.max_messages = 500;
            let result = run_workload(server.addr(), &w).await.unwrap();
            let stats = server.stats();
            assert_eq!(result.sent, 500);
            assert_eq!(stats.intact.load(Ordering::Relaxed), 500, "{flavour} {framing}");
            assert_eq!(stats.corrupted.load(Ordering::Relaxed), 0);
            assert_eq!(stats.out_of_order.load(Ordering::Relaxed), 0);
            assert_eq!(stats.bytes.load(Ordering::Relaxed), 500 * 4096);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_keeps_the_bytes_but_not_the_messages() {
    let server = server(Flavour::Tokio, Behaviour::Echo, "raw");
    let mut w = workload(Mode::Pipelined, "raw", 16_384, Behaviour::Echo);
    w.window = 32;
    let result = run_workload(server.addr(), &w).await.unwrap();
    assert_eq!(result.replied, 200, "every byte comes back");
    assert!(result.corrupted > 0, "reads glue or split 16 KiB messages: {result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sends_verifiable_messages() {
    let _server = server(Flavour::Threaded, Behaviour::Source, "u32be");
    let addr = _server.addr();
    let frames = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut codec = MessageCodec::new(strategy("u32be"), 1 << 20).unwrap();
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 4096];
        let mut verdicts = Vec::new();
        while verdicts.len() < 100 {
            let n = stream.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                verdicts.push(payload::verify(&frame, 1024));
            }
        }
        verdicts
    })
    .await
    .unwrap();
    for (i, verdict) in frames.iter().take(100).enumerate() {
        assert_eq!(*verdict, Verdict::Intact(i as u32));
    }
}

/// An echo server that flips one byte of every tenth reply.
fn corrupting_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut codec = MessageCodec::new(strategy("u32be"), 1 << 20).unwrap();
        let (mut buf, mut out, mut chunk, mut count) = (BytesMut::new(), BytesMut::new(), [0u8; 4096], 0);
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                let mut reply = frame.to_vec();
                count += 1;
                if count % 10 == 0 {
                    reply[20] ^= 0x01;
                }
                codec.encode(&reply[..], &mut out).unwrap();
            }
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_catches_a_corrupted_stream() {
    let result = run_workload(corrupting_echo(), &workload(Mode::Pipelined, "u32be", 64, Behaviour::Echo))
        .await
        .unwrap();
    assert_eq!(result.corrupted, 20);
    assert_eq!(result.intact, 180);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_includes_the_queueing_behind_a_stall() {
    // 1000 messages/s for 1 s; the server stops for 200 ms after message 300. Messages
    // meant to leave during the stall wait for it: up to 200 ms, a fifth of all messages.
    let stall = Some((300, Duration::from_millis(200)));
    let run = |mode| async move {
        let server =
            Server::start(ServerConfig { behaviour: Behaviour::Echo, stall, ..ServerConfig::default() })
                .unwrap();
        let w = Workload {
            mode,
            duration: Duration::from_secs(1),
            max_messages: 1000,
            rate_per_s: 1000.0,
            window: 1,
            ..Workload::default()
        };
        run_workload(server.addr(), &w).await.unwrap()
    };
    let open = run(Mode::OpenLoop).await;
    assert_eq!(open.target_rate, Some(1000.0));
    assert!(open.achieved_rate > 500.0, "{}", open.achieved_rate);
    let p90 = open.latency.quantile_ns(0.90);
    assert!(p90 >= 40_000_000, "open-loop p90 {p90} ns should include the stall's queueing");
    assert!(open.latency.summary().max_ns >= 150_000_000);
    // A closed loop waits out the stall with a single slow sample: its p90 hides it.
    let closed = run(Mode::PingPong).await;
    assert!(closed.latency.summary().max_ns >= 150_000_000);
    assert!(closed.latency.quantile_ns(0.90) < 40_000_000, "{:?}", closed.latency.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_that_connection_only() {
    for flavour in Flavour::ALL {
        let server =
            Server::start(ServerConfig { flavour: *flavour, max_frame_len: 1024, ..ServerConfig::default() })
                .unwrap();
        let addr = server.addr();
        tokio::task::spawn_blocking(move || {
            let mut hostile = TcpStream::connect(addr).unwrap();
            hostile.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            hostile.write_all(&u32::MAX.to_be_bytes()).unwrap();
            let mut rest = Vec::new();
            let _ = hostile.read_to_end(&mut rest); // the server closes it
        })
        .await
        .unwrap();
        let result =
            run_workload(addr, &workload(Mode::PingPong, "u32be", 64, Behaviour::Echo)).await.unwrap();
        assert_eq!(result.intact, 200, "{flavour}: other clients are still served");
        let errors = server.stats().errors();
        assert_eq!(errors.len(), 1, "{flavour}: {errors:?}");
        assert!(
            errors[0].contains("frame of 4294967295 bytes exceeds the limit of 1024 bytes"),
            "{}",
            errors[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_with_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut w = workload(Mode::PingPong, "u32be", 64, Behaviour::Echo);
    w.reply_timeout = Duration::from_millis(200);
    let err = run_workload(addr, &w).await.unwrap_err();
    assert!(matches!(err, PeerError::Timeout { .. }), "{err}");
    assert_eq!(err.to_string(), format!("no reply from {addr} within 200 ms"));
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_one_line_error() {
    let first = server(Flavour::Tokio, Behaviour::Echo, "u32be");
    let err = Server::start(ServerConfig { listen: first.addr(), ..ServerConfig::default() }).err().unwrap();
    let text = err.to_string();
    assert!(text.starts_with(&format!("cannot listen on {}: ", first.addr())), "{text}");
    assert!(!text.contains('\n'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_servers_answer_framed_datagrams() {
    for flavour in [Flavour::Tokio, Flavour::Threaded] {
        let server = Server::start(ServerConfig {
            transport: Transport::Udp,
            flavour,
            behaviour: Behaviour::EchoUpper,
            ..ServerConfig::default()
        })
        .unwrap();
        let addr = server.addr();
        let reply = tokio::task::spawn_blocking(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut codec = MessageCodec::new(strategy("u32be"), 1024).unwrap();
            let mut out = BytesMut::new();
            codec.encode(&b"hello"[..], &mut out).unwrap();
            socket.send_to(&out, addr).unwrap();
            let mut buf = [0u8; 64];
            let n = socket.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        })
        .await
        .unwrap();
        assert_eq!(reply, b"\0\0\0\x05HELLO", "{flavour}");
    }
}

/// TCP ping-pong runs on a blocking socket of its own (two system calls per round trip);
/// it still judges every reply, through every server flavour, and times every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ping_pong_verifies_every_reply() {
    for (flavour, blocking) in Flavour::ALL.iter().flat_map(|f| [(f, true), (f, false)]) {
        for behaviour in [Behaviour::Echo, Behaviour::EchoUpper] {
            let server = server(*flavour, behaviour, "u32be");
            let mut w = workload(Mode::PingPong, "u32be", 64, behaviour);
            w.max_messages = 2000;
            w.blocking_ping_pong = blocking;
            let result = run_workload(server.addr(), &w).await.unwrap();
            let what = format!("{flavour} {behaviour} blocking={blocking}");
            assert_eq!((result.sent, result.replied, result.intact), (2000, 2000, 2000), "{what}");
            assert_eq!((result.corrupted, result.out_of_order, result.lost), (0, 0, 0), "{what}");
            assert_eq!(result.latency.count(), 2000, "{what}");
            assert_eq!(server.stats().messages.load(Ordering::Relaxed), 2000, "{what}");
        }
    }
    let result = run_workload(corrupting_echo(), &workload(Mode::PingPong, "u32be", 64, Behaviour::Echo))
        .await
        .unwrap();
    assert_eq!((result.sent, result.replied), (200, 200));
    assert_eq!((result.intact, result.corrupted), (180, 20), "every tenth reply flipped: {result:?}");
}

/// A raw echo server sends each read back as it comes, so a request larger than both
/// directions' socket buffers cannot be written whole before its reply is read: the
/// blocking client reads while its `send` is stuck, and every byte comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ping_pong_with_requests_larger_than_the_socket_buffers_does_not_deadlock() {
    let server = server(Flavour::Threaded, Behaviour::Echo, "raw");
    let mut w = workload(Mode::PingPong, "raw", 32 << 20, Behaviour::Echo);
    w.max_messages = 3;
    w.max_frame_len = 64 << 20;
    let result = tokio::time::timeout(Duration::from_secs(60), run_workload(server.addr(), &w))
        .await
        .expect("a deadlocked ping-pong")
        .unwrap();
    assert_eq!((result.sent, result.replied), (3, 3), "{result:?}");
    assert_eq!(result.throughput.bytes, 3 * (32 << 20));
}

/// The blocking client looks at the cancel flag while it waits: a server that never
/// answers does not keep it for the reply timeout once the case is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ping_pong_stops_soon_after_its_cancel_flag_is_raised() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut w = workload(Mode::PingPong, "u32be", 64, Behaviour::Echo);
    w.reply_timeout = Duration::from_secs(30);
    let cancel = w.cancel.clone();
    let started = std::time::Instant::now();
    let run = tokio::spawn(async move { run_workload(addr, &w).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!((result.sent, result.replied), (1, 0), "{result:?}");
    drop(listener);
}

/// A UDP ping-pong whose requests all go unanswered still ends with its duration: the
/// loop's clock advances on a lost request too, not only on a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_ping_pong_with_every_reply_lost_ends_with_its_duration() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut w = workload(Mode::PingPong, "u32be", 64, Behaviour::Echo);
    w.transport = Transport::Udp;
    w.duration = Duration::from_millis(300);
    w.reply_timeout = Duration::from_millis(50);
    let started = std::time::Instant::now();
    let result = run_workload(silent.local_addr().unwrap(), &w).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "200 lost requests of 50 ms would take 10 s; took {took:?}");
    assert!(result.sent >= 1 && result.sent == result.lost, "{result:?}");
    assert_eq!((result.replied, result.latency.count()), (0, 0));
}
