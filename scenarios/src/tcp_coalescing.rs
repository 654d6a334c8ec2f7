//! `tcp-coalescing`: the sticky-packet demonstration.
//!
//! A client writes a few small messages back to back over loopback TCP; a reference
//! server reads them with `recv(read_size)`. TCP delivers a byte stream, not messages, so
//! the reads cut the stream wherever the buffer and the timing say: with the defaults,
//! `1234567`, `abcde`, `hhhhh` come back as `12345`, `67abc`, `dehhh`, `hh`.
//!
//! Where packet capture is permitted the case also records the segments between them,
//! so the report joins three layers: which writes each segment carried (a warm
//! connection with Nagle on merges the last two writes into one segment; a cold one
//! sends three) and which segments each read returned.
//!
//! With `impair` set, the client talks to the server through an impairment relay
//! (`socklab_harness::impair`) that cuts or glues the stream by seed, so the sticky-packet
//! outcome no longer depends on the kernel and the timing: `split=1` makes a reader that
//! keeps up see one byte per read, `merge=50ms` one read for all three messages. The
//! relay's writes are a fourth layer, "proxy out", between the writes and the segments.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socklab_harness::boundary::BoundaryMap;
use socklab_harness::capture::{
    CaptureConfig, CaseCapture, CaseCaptureResult, retransmitted_segments, stream_segments,
};
use socklab_harness::check::Check;
use socklab_harness::impair::{ProxyObservation, RelayConfig, TcpRelay, in_front};
use socklab_harness::metric::Better;
use socklab_harness::net::bytes_queued;
use socklab_harness::params::{ParamKind, ParamSpec};
use socklab_harness::report::{Direction, IoEvent, MetricSpec, StreamTrace, Unit};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::text::printable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The scenario; see the module docs.
pub struct TcpCoalescing;

/// Round trips a `warm` connection makes before the messages, enough for Linux to leave
/// its quick-ACK mode and start delaying ACKs.
const WARM_ROUND_TRIPS: usize = 5;
const PING: &[u8; 4] = b"ping";
const PONG: &[u8; 4] = b"pong";

/// Largest read size and largest total of message bytes the scenario accepts.
const MAX_BYTES: u64 = 1 << 20;

/// Parameters of `tcp-coalescing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Messages the client writes back to back, one `write` each.
    pub messages: Vec<String>,
    /// Buffer size of each server `recv`, in bytes.
    pub read_size: u64,
    /// How long the server waits before its first read, in milliseconds; 0 reads as
    /// data arrives.
    pub read_delay_ms: u64,
    /// Client sets `TCP_NODELAY` (Nagle's algorithm off).
    pub nodelay: bool,
    /// Make request/reply round trips first, so the connection is in delayed-ACK mode.
    pub warm: bool,
    /// An impairment relay between client and server (`none`, `split=3`, `merge=50ms`,
    /// ...; see `socklab_harness::impair::spec`).
    pub impair: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            messages: vec!["1234567".into(), "abcde".into(), "hhhhh".into()],
            read_size: 5,
            read_delay_ms: 50,
            nodelay: false,
            warm: false,
            impair: "none".into(),
        }
    }
}

/// The `impair` parameter of a TCP scenario. Shared by every scenario that takes one, so
/// the syntax and the words are the same everywhere; each checks the value in its
/// `validate` with [`check_impair`].
pub const IMPAIR_PARAM: ParamSpec = ParamSpec {
    name: "impair",
    kind: ParamKind::Text {
        expected: "an impairment spec: none, or items joined with + (split=3, split=1..7, merge=20ms, merge=4096B, random, gap=1ms, hold=5ms, delay=5ms, delay=2ms..8ms, rate=1MiB/s, reset-after=N, stall=200ms@1KiB, dir=up|down)",
    },
    unit: None,
    doc: "a seeded relay between client and server that splits, merges, delays, limits, stalls or resets the stream (socklab proxy's --split, --merge, ...); the case seed replays it",
};

/// Checks an `impair` value for a TCP scenario: the spec parser's reason in one line.
///
/// # Errors
/// `impair: <what is wrong and what is valid>`.
pub fn check_impair(text: &str) -> Result<(), String> {
    socklab_harness::impair::spec::check_tcp_text(text).map_err(|reason| format!("impair: {reason}"))
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "messages",
        kind: ParamKind::StringList { min_items: 1, max_items: 1000 },
        unit: None,
        doc: "messages the client writes back to back, one write() each",
    },
    ParamSpec {
        name: "read_size",
        kind: ParamKind::Integer { min: 1, max: MAX_BYTES },
        unit: Some("bytes"),
        doc: "buffer size of each server recv()",
    },
    ParamSpec {
        name: "read_delay_ms",
        kind: ParamKind::Integer { min: 0, max: 10_000 },
        unit: Some("ms"),
        doc: "server waits this long before its first read (with impair: after the relay forwarded the last byte); 0 reads as data arrives",
    },
    ParamSpec {
        name: "nodelay",
        kind: ParamKind::Bool,
        unit: None,
        doc: "client sets TCP_NODELAY (Nagle's algorithm off)",
    },
    ParamSpec {
        name: "warm",
        kind: ParamKind::Bool,
        unit: None,
        doc: "5 request/reply round trips first, so the connection delays its ACKs",
    },
    IMPAIR_PARAM,
];

const METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "writes",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "application writes (one per message)",
    },
    MetricSpec {
        name: "reads",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "server recv() calls that returned data",
    },
    MetricSpec {
        name: "bytes",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "bytes written by the client",
    },
    MetricSpec {
        name: "sticky_reads",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "reads holding bytes of more than one message",
    },
    MetricSpec {
        name: "split_messages",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "messages spread over more than one read",
    },
    MetricSpec {
        name: "queued_at_first_read",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "bytes waiting in the server's receive buffer just before its first read (FIONREAD)",
    },
    MetricSpec {
        name: "segments",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "TCP segments that carried the messages' bytes for the first time (from the capture; absent without it); repeats are in retransmitted_segments",
    },
    MetricSpec {
        name: "segments_per_write",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "segments divided by writes: below 1 when writes were merged on the wire",
    },
    MetricSpec {
        name: "coalesced_segments",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "segments carrying bytes of more than one write (Nagle or a late sender merged them)",
    },
    MetricSpec {
        name: "retransmitted_segments",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "TCP segments that repeated sequence space sent before (retransmissions, tail-loss probes), either direction, warm-up included; from the capture",
    },
    MetricSpec {
        name: "proxy_writes",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "writes the impairment relay made towards the server with the messages' bytes (absent without impair)",
    },
    MetricSpec {
        name: "proxy_coalesced_writes",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "relay writes carrying bytes of more than one message (absent without impair)",
    },
    MetricSpec {
        name: "last_read_at",
        unit: Unit::Micros,
        better: Better::Neither,
        doc: "time from the first write call to the last read's return",
    },
];

impl Scenario for TcpCoalescing {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "tcp-coalescing";
    const SUMMARY: &'static str =
        "small writes glued together or split apart by the reads: the sticky-packet problem";
    const EXPLANATION: &'static str = "\
What it shows: a client writes a few small messages back to back over TCP, and the server \
reads them with recv(read_size). The reads do not come back one per message. With the \
defaults, the writes 1234567, abcde, hhhhh come back as 12345, 67abc, dehhh, hh: one read \
holds the end of one message and the start of the next (a \"sticky\" read), and messages are \
split across reads.

Why it happens: TCP carries a byte stream, not messages. The kernel keeps no record of where \
one write ended and the next began; a recv() returns whatever bytes are queued, up to the \
buffer size. When the server reads late (read_delay_ms), every byte is already queued, so \
the reads are exactly the read_size chunking of the stream. When it reads as data arrives \
(read_delay_ms = 0), the cuts depend on timing and on how the sender's kernel grouped the \
bytes into segments: Nagle's algorithm holds a small write back while earlier data is \
unacknowledged, then sends it together with whatever followed. On a fresh loopback \
connection Linux acknowledges at once (quick-ACK mode), so Nagle rarely merges anything; \
after a few request/reply round trips (warm = true) the receiver delays its ACKs by up to \
40 ms and Nagle merges the held writes into one segment. The capture shows it: cold, \
three writes leave as three segments; warm, as two, the second carrying bytes of two writes \
(coalesced_segments = 1). Either way the late reader's chunks are the same. A warm \
connection often shows one more packet: while the receiver holds its ACK back, the sender \
sends its last segment (or its FIN) again a few milliseconds later, a tail-loss probe, not \
a loss. The capture counts it (retransmitted_segments) and the timeline marks it.

What fixes it: never assume one recv() per send(). Frame the messages: a length prefix \
(u32 big-endian length, then the bytes), a delimiter that cannot occur in the payload, or \
fixed-size records, and read until a whole frame is buffered. TCP_NODELAY changes when \
segments leave, not where the reads cut: it is no substitute for framing.

Making it happen on purpose: on a quiet machine loopback rarely cuts a message in two, so \
a reader that assumes one recv() per send() can pass every test. impair puts a seeded \
relay between client and server that cuts the stream into pieces (split=1 writes byte by \
byte, split=1..7 pieces of a seeded size) or glues writes together (merge=50ms writes \
what arrived within 50 ms as one). The relay cuts at stream offsets drawn from the case \
seed, so the same seed gives the same relay writes (the \"proxy out\" layer) on every \
run and every kernel; a reader that keeps up (read_delay_ms = 0) then reads exactly \
those pieces.";
    const PARAMS: &'static [ParamSpec] = PARAMS;
    const METRICS: &'static [MetricSpec] = METRICS;

    fn validate(params: &Params) -> Result<(), String> {
        check_impair(&params.impair)?;
        let total: usize = params.messages.iter().map(String::len).sum();
        if total == 0 {
            return Err("messages are all empty; give at least one non-empty message".into());
        }
        if total as u64 > MAX_BYTES {
            return Err(format!("messages total {total} bytes; the most allowed is {MAX_BYTES}"));
        }
        Ok(())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr().context("read the bound address")?;
        let clock = Instant::now();
        // The relay's choices come from the case seed, so `--seed` replays them.
        let config = RelayConfig { clock, ..RelayConfig::default() };
        let relay = in_front::<TcpRelay>(addr, &params.impair, ctx.seed, config)?.map(std::sync::Arc::new);
        // Before connect, so the handshake is in; finished after both ends closed. With a
        // relay, the port is the server's: the segments are the relay's, as the reads see them.
        let capture = CaseCapture::start(CaptureConfig::loopback(addr.port()), clock);
        let server = tokio::spawn(serve(listener, params.clone(), clock, relay.clone(), ctx.timeout));
        let connect_to = relay.as_ref().map_or(addr, |r| r.addr());
        let writes = drive_client(connect_to, &params, clock).await?;
        let server = server.await.map_err(|e| CaseError::task("the server task", e))??;
        let wire = Some(capture.finish(&ctx.case_id).await);
        let proxy = relay.map(|r| r.observation());
        Ok(Measured { writes, server, wire, proxy })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        let mut outcome = outcome(params, &measured.writes, &measured.server);
        if let Some(proxy) = measured.proxy {
            add_proxy_layer(&mut outcome, params, proxy);
        }
        if let Some(wire) = measured.wire {
            add_wire_layer(&mut outcome, params, wire);
        }
        outcome
    }
}

/// What a case recorded: the client's writes, the server's reads, the capture, the
/// relay's record.
#[derive(Default)]
pub struct Measured {
    writes: Vec<Recorded>,
    server: ServerReads,
    wire: Option<CaseCaptureResult>,
    proxy: Option<ProxyObservation>,
}

/// One write or read as recorded: when (a write when its call was made, a read when its
/// call returned; see `IoEvent::at_us`), and the bytes.
struct Recorded {
    at: Duration,
    bytes: Vec<u8>,
}

impl Recorded {
    fn event(&self) -> IoEvent {
        IoEvent { at_us: self.at.as_secs_f64() * 1e6, len: self.bytes.len(), text: printable(&self.bytes) }
    }
}

/// What the server saw.
#[derive(Default)]
struct ServerReads {
    reads: Vec<Recorded>,
    queued_at_first_read: usize,
}

/// The client: optional warm-up round trips, then one write per message, then EOF.
async fn drive_client(
    addr: std::net::SocketAddr,
    params: &Params,
    clock: Instant,
) -> Result<Vec<Recorded>, CaseError> {
    let mut stream = TcpStream::connect(addr).await.context(format!("connect to {addr}"))?;
    stream.set_nodelay(params.nodelay).context("set TCP_NODELAY")?;
    if params.warm {
        let mut reply = [0u8; PONG.len()];
        for _ in 0..WARM_ROUND_TRIPS {
            stream.write_all(PING).await.context("write warm-up ping")?;
            stream.read_exact(&mut reply).await.context("read warm-up pong")?;
        }
    }
    let mut writes = Vec::with_capacity(params.messages.len());
    for message in &params.messages {
        // Timed when the call is made: on loopback the segment leaves inside it.
        let at = clock.elapsed();
        // One write() per message: a short write would make two application writes.
        let written = stream.write(message.as_bytes()).await.context("write a message")?;
        if written != message.len() {
            return Err(CaseError::Protocol(format!(
                "write() took {written} of {} bytes; the messages must fit the send buffer",
                message.len()
            )));
        }
        writes.push(Recorded { at, bytes: message.as_bytes().to_vec() });
    }
    stream.shutdown().await.context("shut down the client's sending side")?;
    // Wait for the server to finish reading and close, so timings are not cut short.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.context("wait for the server to close")?;
    Ok(writes)
}

/// The reference server: answers warm-up pings, waits `read_delay_ms` (with a relay:
/// after the relay forwarded the last byte), then reads with `recv(read_size)` until EOF.
async fn serve(
    listener: TcpListener,
    params: Params,
    clock: Instant,
    relay: Option<std::sync::Arc<TcpRelay>>,
    timeout: Duration,
) -> Result<ServerReads, CaseError> {
    let (mut stream, peer) = listener.accept().await.context("accept the client")?;
    if params.warm {
        let mut ping = [0u8; PING.len()];
        for _ in 0..WARM_ROUND_TRIPS {
            stream.read_exact(&mut ping).await.context(format!("read warm-up ping from {peer}"))?;
            stream.write_all(PONG).await.context(format!("write warm-up pong to {peer}"))?;
        }
    }
    if let Some(relay) = relay.filter(|_| params.read_delay_ms > 0) {
        // A relay that holds bytes (merge, delay, stall) would otherwise make "every byte
        // queued before the first read" a race: wait until it wrote them all (or gave up).
        let all = warm_up_bytes(&params) as u64 + params.messages.iter().map(|m| m.len() as u64).sum::<u64>();
        let started = Instant::now();
        while started.elapsed() < timeout {
            match relay.connection(0) {
                Some(c) if c.up.bytes_out >= all || c.closed || c.reset => break,
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(params.read_delay_ms)).await;
    let queued_at_first_read = bytes_queued(&stream).context("FIONREAD on the server socket")?;
    let expected: usize = params.messages.iter().map(String::len).sum();
    let mut buf = vec![0u8; params.read_size as usize];
    let mut reads = Vec::new();
    let mut received = 0;
    // Each read returns at least one byte, so the loop ends after `expected` reads at
    // most, plus the read that sees EOF; anything more is a misbehaving peer.
    loop {
        let n = stream.read(&mut buf).await.context(format!("read from {peer}"))?;
        if n == 0 {
            break;
        }
        received += n;
        if received > expected {
            return Err(CaseError::Protocol(format!(
                "{peer} sent {received} bytes, more than the {expected} the messages hold"
            )));
        }
        reads.push(Recorded { at: clock.elapsed(), bytes: buf[..n].to_vec() });
    }
    Ok(ServerReads { reads, queued_at_first_read })
}

/// Metrics, observations and checks from what both ends recorded.
fn outcome(params: &Params, writes: &[Recorded], server: &ServerReads) -> CaseOutcome {
    let write_lens: Vec<usize> = writes.iter().map(|w| w.bytes.len()).collect();
    let read_lens: Vec<usize> = server.reads.iter().map(|r| r.bytes.len()).collect();
    let map = BoundaryMap::compute(&write_lens, &read_lens);
    // Judged against what the parameters asked to send, so a case that wrote nothing fails.
    let sent: Vec<u8> = params.messages.concat().into_bytes();
    let received: Vec<u8> = server.reads.iter().flat_map(|r| r.bytes.iter().copied()).collect();

    let mut outcome = CaseOutcome::default();
    outcome
        .key_metric("writes", writes.len() as f64, Unit::Count)
        .key_metric("reads", server.reads.len() as f64, Unit::Count)
        .metric("bytes", write_lens.iter().sum::<usize>() as f64, Unit::Bytes)
        .key_metric("sticky_reads", map.sticky_targets() as f64, Unit::Count)
        .key_metric("split_messages", map.split_sources() as f64, Unit::Count)
        .metric("queued_at_first_read", server.queued_at_first_read as f64, Unit::Bytes);
    if let (Some(first), Some(last)) = (writes.first(), server.reads.last()) {
        outcome.metric("last_read_at", last.at.saturating_sub(first.at).as_micros() as f64, Unit::Micros);
    }

    outcome.checks.push(stream_intact(&sent, &received));
    if params.read_delay_ms > 0 {
        outcome.checks.push(read_size_chunking(params, &sent, server));
    }
    outcome.observations.stream = Some(StreamTrace {
        writes: writes.iter().map(Recorded::event).collect(),
        reads: server.reads.iter().map(Recorded::event).collect(),
        boundary_map: map,
        ..StreamTrace::default()
    });
    outcome
}

/// Bytes of warm-up pings the client sends before the messages.
fn warm_up_bytes(params: &Params) -> usize {
    if params.warm { WARM_ROUND_TRIPS * PING.len() } else { 0 }
}

/// The relay's layer: its writes towards the server (the messages' bytes only, warm-up
/// pings left out), which writes each carried, and its record.
fn add_proxy_layer(outcome: &mut CaseOutcome, params: &Params, proxy: ProxyObservation) {
    if let Some(stream) = outcome.observations.stream.as_mut()
        && let Some(connection) = proxy.connections.first()
    {
        let sent: Vec<u8> = params.messages.concat().into_bytes();
        let skip = warm_up_bytes(params);
        let mut offset = 0;
        for write in &connection.up.output_writes.first {
            let (start, end) = (offset.max(skip), (offset + write.len).min(skip + sent.len()));
            offset += write.len;
            if start < end {
                let text = printable(&sent[start - skip..end - skip]);
                stream.proxy_out.push(IoEvent { at_us: write.at_us, len: end - start, text });
            }
        }
        let write_lens: Vec<usize> = stream.writes.iter().map(|w| w.len).collect();
        let proxy_lens: Vec<usize> = stream.proxy_out.iter().map(|w| w.len).collect();
        let map = BoundaryMap::compute(&write_lens, &proxy_lens);
        let coalesced = map.sticky_targets();
        stream.proxy_map = Some(map);
        outcome.key_metric("proxy_writes", proxy_lens.len() as f64, Unit::Count).metric(
            "proxy_coalesced_writes",
            coalesced as f64,
            Unit::Count,
        );
    }
    outcome.observations.proxy = Some(proxy);
}

/// The third layer: which writes each segment carried and which segments each read
/// returned, from the capture; or the reason there is no capture.
fn add_wire_layer(outcome: &mut CaseOutcome, params: &Params, wire: CaseCaptureResult) {
    outcome.artifacts.extend(wire.artifact);
    outcome.observations.capture = Some(wire.observation);
    let (Some(packets), Some(stream)) = (wire.packets, outcome.observations.stream.as_mut()) else {
        return;
    };
    let wire = stream_segments(&packets, Direction::ClientToServer, None, warm_up_bytes(params));
    stream.join_segments(wire.segments, wire.retransmissions);
    let coalesced = stream.segment_map.as_ref().map_or(0, |m| m.sticky_targets());
    let (segments, writes) = (stream.segments.len() as f64, stream.writes.len().max(1) as f64);
    outcome
        .key_metric("segments", segments, Unit::Count)
        .metric("segments_per_write", segments / writes, Unit::Count)
        .key_metric("coalesced_segments", coalesced as f64, Unit::Count)
        .metric("retransmitted_segments", retransmitted_segments(&packets) as f64, Unit::Count);
}

/// The bytes read, in order, are the bytes written.
fn stream_intact(sent: &[u8], received: &[u8]) -> Check {
    let observed = if sent == received {
        format!("{} bytes, identical", received.len())
    } else {
        let first_difference =
            sent.iter().zip(received).position(|(a, b)| a != b).unwrap_or(sent.len().min(received.len()));
        format!("{} of {} bytes; first difference at byte {first_difference}", received.len(), sent.len())
    };
    Check::new(
        "stream_intact",
        format!("{} bytes, identical to what was written", sent.len()),
        observed,
        sent == received,
        "TCP keeps the bytes and their order; only the boundaries between messages are lost",
    )
}

/// With every byte queued before the first read, the reads are exactly the `read_size`
/// chunking of the stream.
fn read_size_chunking(params: &Params, sent: &[u8], server: &ServerReads) -> Check {
    let expected: Vec<String> = sent.chunks(params.read_size as usize).map(printable).collect();
    let observed: Vec<String> = server.reads.iter().map(|r| printable(&r.bytes)).collect();
    let passed = expected == observed;
    let explanation = if passed {
        format!(
            "all {} bytes were queued before the first read, so each recv({}) returned a full buffer \
             regardless of where the messages began and ended",
            sent.len(),
            params.read_size
        )
    } else {
        format!(
            "only {} of {} bytes were queued {} ms in, so recv() returned what had arrived; \
             a larger read_delay_ms waits for the rest",
            server.queued_at_first_read,
            sent.len(),
            params.read_delay_ms
        )
    };
    Check::new("read_size_chunking", expected.join(" | "), observed.join(" | "), passed, explanation)
}
