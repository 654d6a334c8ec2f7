//! `empty-send`: `send(b"")` sends nothing on TCP; on UDP it sends an empty datagram.
//!
//! Over TCP the client calls `send()` with zero bytes a few times: each returns 0, no
//! segment leaves (the capture shows none), and the server's `recv()` stays blocked
//! until its timeout. Then the client sends a marker, which arrives: the connection was
//! fine, there was simply nothing to send. Over UDP the same calls each send a datagram
//! with no payload, and the receiver's `recv()` returns 0 once per datagram — the same
//! 0 that on TCP means end of file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use socklab_harness::capture::{CaptureConfig, CaseCapture, CaseCaptureResult, stream_segments};
use socklab_harness::check::Check;
use socklab_harness::params::ParamSpec;
use socklab_harness::report::{Direction, IoEvent, MetricSpec, StreamTrace, Transport, WirePacket};
use socklab_harness::scenario::{Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::text::printable;

use crate::blocking::timed_out;
use crate::experiment::{attach_capture, run_captured};

/// The scenario; see the module docs.
pub struct EmptySend;

/// What the client sends after the empty sends, to show the path works.
const MARKER: &[u8] = b"after";

socklab_harness::params! {
    /// Parameters of `empty-send`.
    pub struct Params {
        /// send(b"") calls, on TCP and on UDP each
        empty_sends: u64 = 3 => ParamSpec::int(1, 100).unit("calls"),
        /// how long the TCP receiver's recv() waits for them before giving up
        wait_ms: u64 = 100 => ParamSpec::int(10, 5000).unit("ms"),
    }
}

socklab_harness::model::metrics! {
    /// the largest value an empty TCP send() returned
    tcp_send_returned: Bytes, Neither;
    /// how long the TCP receiver's recv() waited after the empty sends before its timeout
    tcp_recv_blocked: Millis, Neither;
    /// bytes the TCP receiver got before the marker
    tcp_bytes_before_marker: Bytes, Neither;
    /// client-to-server TCP packets between the first empty send and the marker (capture)
    tcp_empty_send_packets: Count, Neither;
    /// empty datagrams sent without error
    udp_empty_sent: Count, Neither;
    /// UDP recv() calls that returned 0: one per empty datagram
    udp_zero_length_reads: Count, Neither;
    /// UDP datagrams with no payload seen on the wire (capture)
    udp_empty_on_wire: Count, Neither;
}

impl Scenario for EmptySend {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "empty-send";
    const SUMMARY: &'static str = "send(b\"\") sends nothing on TCP (the peer's recv() stays blocked); on UDP it delivers an empty datagram";
    const EXPLANATION: &'static str = "\
What you see: over TCP the client calls send() with zero bytes; each call returns 0, the \
capture shows no packet leaving (tcp_empty_send_packets = 0), and the server's recv() \
stays blocked until its timeout (wait_ms). Then the client sends a marker and it arrives: \
the connection was fine. Over UDP the same call sends a datagram with no payload: it is on \
the wire (udp_empty_on_wire) and the receiver's recv() returns 0, once per datagram.

Why the kernel does it: TCP carries a stream of bytes, and a send of no bytes adds nothing \
to it; there is nothing to put in a segment, so none is sent and the peer is not woken. (A \
peer could not tell an empty segment from no segment anyway: TCP has no message \
boundaries.) UDP carries datagrams, and a datagram of length 0 is a valid datagram: the \
kernel sends it and the receiver gets it as a read of 0 bytes. So recv() returning 0 means \
\"the peer closed\" on TCP and \"an empty datagram arrived\" on UDP. A protocol that sends \
\"nothing\" as a signal (\"I am done\", \"keep alive\") gets silence on TCP.

The fix, in code a learner would write: never send an empty message as a signal over TCP. \
Frame every message (a length prefix, where a length of 0 is a real, visible message), or \
end the stream with shutdown(SHUT_WR), which the peer sees as recv() = 0:

    let frame = (payload.len() as u32).to_be_bytes();   // 00 00 00 00 for an empty message
    stream.write_all(&frame)?;
    stream.write_all(payload)?;

On UDP, treat a 0-byte read as a datagram, not as end of file: UDP has no end of file.";
    const METRICS: &'static [MetricSpec] = METRICS;

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0 (TCP)")?;
        let tcp_addr = listener.local_addr().context("read the TCP address")?;
        let receiver = UdpSocket::bind("127.0.0.1:0").context("bind 127.0.0.1:0 (UDP)")?;
        let udp_addr = receiver.local_addr().context("read the UDP address")?;
        let clock = Instant::now();
        let mut config = CaptureConfig::loopback(tcp_addr.port());
        config.server_ports.push(udp_addr.port());
        let capture = CaseCapture::start(config, clock);
        let (p, cancel) = (params.clone(), ctx.cancel.clone());
        let (measured, wire) = run_captured(capture, &ctx.case_id, move || {
            let tcp = tcp_part(listener, tcp_addr, &p, clock, &cancel)?;
            let udp = udp_part(receiver, udp_addr, &p, &cancel)?;
            Ok(Measured { tcp, udp, ports: (tcp_addr.port(), udp_addr.port()), wire: None })
        })
        .await?;
        Ok(Measured { wire: Some(wire), ..measured })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, measured)
    }
}

/// What a case measured.
#[derive(Default)]
pub struct Measured {
    tcp: TcpRecord,
    udp: UdpRecord,
    /// The TCP listener's and the UDP receiver's ports.
    ports: (u16, u16),
    wire: Option<CaseCaptureResult>,
}

#[derive(Default)]
struct TcpRecord {
    /// Each empty send: when it was called and what it returned.
    empty: Vec<(Duration, usize)>,
    /// How long the receiver's recv() waited before its timeout, if it timed out.
    blocked: Option<Duration>,
    /// Bytes read before the marker.
    early_bytes: usize,
    marker_at: Option<Duration>,
    /// The reads that brought the marker: when, and the bytes.
    reads: Vec<(Duration, Vec<u8>)>,
}

#[derive(Default)]
struct UdpRecord {
    sent: u64,
    zero_length_reads: u64,
    /// Where the zero-length datagrams came from, as recv_from reported.
    from: Option<SocketAddr>,
    marker: bool,
}

fn tcp_part(
    listener: TcpListener,
    addr: SocketAddr,
    params: &Params,
    clock: Instant,
    cancel: &Cancel,
) -> Result<TcpRecord, CaseError> {
    let mut client = TcpStream::connect(addr).context(format!("connect to {addr}"))?;
    let (mut server, _) = listener.accept().context("accept")?;
    server.set_read_timeout(Some(Cancel::CHECK_EVERY)).context("set a read timeout")?;
    let mut record = TcpRecord::default();
    for _ in 0..params.empty_sends {
        let at = clock.elapsed();
        let n = client.write(b"").context("send(b\"\")")?;
        record.empty.push((at, n));
    }
    // The receiver waits wait_ms, in slices, for anything.
    let waited = Instant::now();
    let wait = Duration::from_millis(params.wait_ms);
    let mut buf = [0u8; 64];
    // Bounded by wait_ms.
    while waited.elapsed() < wait {
        cancel.check()?;
        match server.read(&mut buf) {
            Ok(n) => {
                record.early_bytes += n;
                if n == 0 {
                    break;
                }
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(CaseError::Io { context: "recv on the server".into(), error: e }),
        }
    }
    if record.early_bytes == 0 {
        record.blocked = Some(waited.elapsed());
    }
    record.marker_at = Some(clock.elapsed());
    client.write_all(MARKER).context("send the marker")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    // Bounded by the deadline and by the marker's length.
    while got < MARKER.len() && Instant::now() < deadline {
        cancel.check()?;
        match server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                record.reads.push((clock.elapsed(), buf[..n].to_vec()));
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(CaseError::Io { context: "recv the marker".into(), error: e }),
        }
    }
    Ok(record)
}

fn udp_part(
    receiver: UdpSocket,
    addr: SocketAddr,
    params: &Params,
    cancel: &Cancel,
) -> Result<UdpRecord, CaseError> {
    let sender = UdpSocket::bind("127.0.0.1:0").context("bind the UDP sender")?;
    sender.connect(addr).context(format!("connect the UDP sender to {addr}"))?;
    receiver.set_read_timeout(Some(Cancel::CHECK_EVERY)).context("set a read timeout")?;
    let mut record = UdpRecord::default();
    for _ in 0..params.empty_sends {
        if sender.send(b"").is_ok() {
            record.sent += 1;
        }
    }
    sender.send(MARKER).context("send the UDP marker")?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 64];
    // Bounded by the deadline and by the datagrams sent.
    while Instant::now() < deadline && record.zero_length_reads <= params.empty_sends {
        cancel.check()?;
        match receiver.recv_from(&mut buf) {
            Ok((0, from)) => {
                record.zero_length_reads += 1;
                record.from = Some(from);
            }
            Ok((n, _)) => {
                record.marker = &buf[..n] == MARKER;
                break;
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => {
                return Err(CaseError::Io { context: "recv_from on the UDP receiver".into(), error: e });
            }
        }
    }
    Ok(record)
}

fn outcome(params: &Params, m: Measured) -> CaseOutcome {
    let mut outcome = CaseOutcome::default();
    let (t, u) = (&m.tcp, &m.udp);
    let marker_bytes: usize = t.reads.iter().map(|(_, b)| b.len()).sum();
    if let Some(largest) = t.empty.iter().map(|(_, n)| *n).max() {
        outcome.key_metric(metric::tcp_send_returned, largest as f64);
    }
    if let Some(blocked) = t.blocked {
        outcome.key_metric(metric::tcp_recv_blocked, blocked.as_secs_f64() * 1e3);
    }
    outcome
        .metric(metric::tcp_bytes_before_marker, t.early_bytes as f64)
        .metric(metric::udp_empty_sent, u.sent as f64)
        .key_metric(metric::udp_zero_length_reads, u.zero_length_reads as f64);

    let n = params.empty_sends;
    outcome.checks.push(Check::new(
        "tcp_empty_send_sends_nothing",
        format!(
            "each of {n} send(b\"\") returns 0; recv() stays blocked for {} ms; the marker then arrives",
            params.wait_ms
        ),
        format!(
            "{} sends returned {:?}; recv() {}; marker: {marker_bytes} of {} bytes",
            t.empty.len(),
            t.empty.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            match t.blocked {
                Some(b) => format!("blocked {:.0} ms with nothing", b.as_secs_f64() * 1e3),
                None => format!("returned {} bytes early", t.early_bytes),
            },
            MARKER.len()
        ),
        t.empty.len() as u64 == n
            && t.empty.iter().all(|(_, r)| *r == 0)
            && t.blocked.is_some()
            && marker_bytes == MARKER.len(),
        "a TCP send of zero bytes adds nothing to the stream, so the peer has nothing to read",
    ));
    outcome.checks.push(Check::new(
        "udp_empty_datagrams_delivered",
        format!("{n} reads of 0 bytes, then the marker"),
        format!(
            "{} of {} empty datagrams read as 0-byte reads{}; marker {}",
            u.zero_length_reads,
            u.sent,
            u.from.map(|f| format!(" from {f}")).unwrap_or_default(),
            if u.marker { "received" } else { "missing" }
        ),
        u.sent == n && u.zero_length_reads == n && u.marker,
        "a UDP datagram of length 0 is a datagram: sent, delivered, read as 0 bytes",
    ));

    outcome.observations.stream = Some(tcp_trace(t));
    if let Some(wire) = m.wire {
        add_wire_layer(&mut outcome, params, t, m.ports, wire);
    }
    outcome
}

fn tcp_trace(t: &TcpRecord) -> StreamTrace {
    let mut writes: Vec<IoEvent> = t
        .empty
        .iter()
        .map(|(at, _)| IoEvent { at_us: at.as_secs_f64() * 1e6, len: 0, text: String::new() })
        .collect();
    if let Some(at) = t.marker_at {
        writes.push(IoEvent { at_us: at.as_secs_f64() * 1e6, len: MARKER.len(), text: printable(MARKER) });
    }
    let reads: Vec<IoEvent> = t
        .reads
        .iter()
        .map(|(at, b)| IoEvent { at_us: at.as_secs_f64() * 1e6, len: b.len(), text: printable(b) })
        .collect();
    StreamTrace::new(writes, reads)
}

/// The wire: no TCP packet between the first empty send and the marker, one empty UDP
/// datagram per empty send.
fn add_wire_layer(
    outcome: &mut CaseOutcome,
    params: &Params,
    t: &TcpRecord,
    (tcp_port, udp_port): (u16, u16),
    wire: CaseCaptureResult,
) {
    let Some(packets) = attach_capture(outcome, wire) else { return };
    let tcp: Vec<&WirePacket> = packets.iter().filter(|p| p.proto == Transport::Tcp).collect();
    let (Some(first), Some(marker)) = (t.empty.first(), t.marker_at) else { return };
    let (from, to) = (first.0.as_secs_f64() * 1e6, marker.as_secs_f64() * 1e6);
    let between =
        tcp.iter().filter(|p| p.dir == Direction::ClientToServer && p.at_us >= from && p.at_us < to).count();
    let tcp_only: Vec<WirePacket> = tcp.iter().map(|p| (*p).clone()).collect();
    let segments = stream_segments(&tcp_only, Direction::ClientToServer, None, 0);
    let marker_on_wire = segments.segments.iter().map(|s| s.len).sum::<usize>() == MARKER.len();
    let udp_empty = packets
        .iter()
        .filter(|p| p.proto == Transport::Udp && p.dir == Direction::ClientToServer && p.len == 0)
        .count();
    outcome
        .key_metric(metric::tcp_empty_send_packets, between as f64)
        .metric(metric::udp_empty_on_wire, udp_empty as f64);
    outcome.checks.push(Check::new(
        "nothing_on_the_wire",
        format!(
            "no TCP packet from the client between its first empty send and the marker; {} empty UDP datagrams on the wire",
            params.empty_sends
        ),
        format!(
            "{between} TCP packets in that time (capture on lo, ports {tcp_port} and {udp_port}); marker segment {}; {udp_empty} empty UDP datagrams",
            if marker_on_wire { "seen" } else { "not seen" }
        ),
        between == 0 && marker_on_wire && udp_empty as u64 == params.empty_sends,
        "the capture sees the marker's segment, so it would have seen any segment an empty send made",
    ));
    if let Some(stream) = outcome.observations.stream.as_mut() {
        stream.join_segments(segments.segments, segments.retransmissions);
    }
}
