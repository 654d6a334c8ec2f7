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
//!
//! With `link=veth` client and server sit in two private namespaces joined by a veth
//! pair of a given MTU, and the capture on the veth shows MSS-sized segments: one
//! `large_message` of 4000 bytes leaves as 3 segments at MTU 1500 and as 4 at 1280;
//! `delay_ms` delays each direction through the same relay, run in the client's
//! namespace. With `--peer-cmd` the server side runs in `socklab agent` on another host,
//! and its reads come back into the same report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use socklab_harness::boundary::BoundaryMap;
use socklab_harness::capture::{CaseCaptureResult, retransmitted_segments, stream_segments};
use socklab_harness::check::Check;
use socklab_harness::impair::spec::check_tcp_text;
use socklab_harness::impair::{ProxyObservation, RelayConfig, TcpRelay};
use socklab_harness::link::LinkKind;
use socklab_harness::link::{Link, LinkSpec, PeerPath};
use socklab_harness::net::tcp_maxseg;
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::peer::agent::{RemoteAgent, RoleObservation, RoleSpec};
use socklab_harness::peer::reader::{
    PING, PONG, ReaderConfig, StreamReads, TimedRead, accept_and_warm, read_after_delay,
};
use socklab_harness::report::{Direction, IoEvent, LinkRecord, MetricSpec, StreamTrace};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::shared_params;
use socklab_harness::text::printable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::experiment::{attach_capture, run_blocking};

/// The scenario; see the module docs.
pub struct TcpCoalescing;

/// Round trips a `warm` connection makes before the messages, enough for Linux to leave
/// its quick-ACK mode and start delaying ACKs.
const WARM_ROUND_TRIPS: usize = 5;
/// The bytes a `large_message` repeats.
const LARGE_PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// How long the server side may take to finish after the client closed, beyond its
/// read delay.
const SERVER_FINISH: Duration = Duration::from_secs(10);

/// Largest read size and largest total of message bytes the scenario accepts.
const MAX_BYTES: u64 = 1 << 20;

socklab_harness::params! {
    /// Parameters of `tcp-coalescing`.
    pub struct Params {
        /// messages the client writes back to back, one write() each
        messages: Vec<String> = vec!["1234567".into(), "abcde".into(), "hhhhh".into()] => ParamSpec::list(1, 1000),
        /// buffer size of each server recv()
        read_size: u64 = 5 => ParamSpec::int(1, MAX_BYTES).unit("bytes"),
        /// server waits this long before its first read (with impair: after the relay forwarded the
        /// last byte); 0 reads as data arrives
        read_delay_ms: u64 = 50 => ParamSpec::int(0, 10_000).unit("ms"),
        /// client sets TCP_NODELAY (Nagle's algorithm off)
        nodelay: bool = false => ParamSpec::bool(),
        /// 5 request/reply round trips first, so the connection delays its ACKs
        warm: bool = false => ParamSpec::bool(),
        impair: String = shared_params::NO_IMPAIRMENT.into() => shared_params::IMPAIR,
        /// when above 0, one message of this many bytes (0-9a-z repeated) instead of messages
        large_message: u64 = 0 => ParamSpec::int(0, MAX_BYTES).unit("bytes"),
        link: LinkKind => shared_params::LINK,
        mtu: u64 = shared_params::DEFAULT_MTU => shared_params::MTU,
        rate: String = shared_params::NO_RATE.into() => shared_params::RATE,
        delay_ms: u64 = 0 => shared_params::DELAY_MS,
    }
}

impl Params {
    /// The messages the client writes, one `write` each.
    fn payloads(&self) -> Vec<Vec<u8>> {
        if self.large_message > 0 {
            let large = LARGE_PATTERN.iter().copied().cycle().take(self.large_message as usize).collect();
            return vec![large];
        }
        self.messages.iter().map(|m| m.as_bytes().to_vec()).collect()
    }

    fn link_spec(&self) -> Result<LinkSpec, Invalid> {
        LinkSpec::parse(self.link, self.mtu, &self.rate, self.delay_ms)
    }
}

socklab_harness::model::metrics! {
    /// application writes (one per message)
    writes: Count, Neither;
    /// server recv() calls that returned data
    reads: Count, Neither;
    /// bytes written by the client
    bytes: Bytes, Neither;
    /// reads holding bytes of more than one message
    sticky_reads: Count, Neither;
    /// messages spread over more than one read
    split_messages: Count, Neither;
    /// bytes waiting in the server's receive buffer just before its first read (FIONREAD)
    queued_at_first_read: Bytes, Neither;
    /// TCP segments that carried the messages' bytes for the first time (from the capture; absent
    /// without it); repeats are in retransmitted_segments
    segments: Count, Neither;
    /// segments divided by writes: below 1 when writes were merged on the wire
    segments_per_write: Count, Neither;
    /// segments carrying bytes of more than one write (Nagle or a late sender merged them)
    coalesced_segments: Count, Neither;
    /// TCP segments that repeated sequence space sent before (retransmissions, tail-loss probes),
    /// either direction, warm-up included; from the capture
    retransmitted_segments: Count, Lower;
    /// payload bytes of a full segment on the connection (TCP_MAXSEG: MSS less TCP options), from
    /// the client
    mss: Bytes, Neither;
    /// most message bytes one segment carried (from the capture)
    largest_segment: Bytes, Neither;
    /// writes the impairment relay made towards the server with the messages' bytes (absent without
    /// impair)
    proxy_writes: Count, Neither;
    /// relay writes carrying bytes of more than one message (absent without impair)
    proxy_coalesced_writes: Count, Neither;
    /// time from the first write call to the last read's return
    last_read_at: Micros, Neither;
}

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
those pieces.

Over a real link (link = veth: client and server in two network namespaces joined by a \
veth pair of a given mtu) a segment carries at most the MSS: the MTU less 40 bytes of IP \
and TCP headers and 12 of TCP timestamps. One write of 4000 bytes (large_message) leaves \
as 1448 + 1448 + 1104 bytes at MTU 1500 and as 1228 + 1228 + 1228 + 316 at MTU 1280; \
loopback's 64 KiB MTU carries it in one. A reader that reads as data arrives sees those \
pieces.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const REMOTE_PEER: bool = true;

    fn validate_peer(params: &Params) -> Result<(), Invalid> {
        socklab_harness::scenario::peer_link(params.link)
    }

    fn validate(params: &Params) -> Result<(), Invalid> {
        check_tcp_text(&params.impair)?;
        let spec = params.link_spec()?;
        spec.relay_impairment(&params.impair)?;
        let total: usize = params.payloads().iter().map(Vec::len).sum();
        if total == 0 {
            return Err(Invalid::new(
                "messages",
                "messages are all empty; give at least one non-empty message",
            ));
        }
        if total as u64 > MAX_BYTES {
            let reason = format!("messages total {total} bytes; the most allowed is {MAX_BYTES}");
            return Err(Invalid::new(
                if params.large_message > 0 { "large_message" } else { "messages" },
                reason,
            ));
        }
        Ok(())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        if let Some(agent) = ctx.peer.clone() {
            return run_with_agent(params, ctx, agent).await;
        }
        let spec = params.link_spec()?;
        let impair = spec.relay_impairment(&params.impair)?;
        // Making a veth link runs `ip` a few times: off the async threads.
        let link = run_blocking("the link set-up", move || Ok(Link::open(spec)?)).await?;
        let listener = link.tcp_listener(|_| Ok(()))?;
        listener.set_nonblocking(true).context("make the listener non-blocking")?;
        let listener = TcpListener::from_std(listener).context("register the listener")?;
        let addr = listener.local_addr().context("read the bound address")?;
        let clock = Instant::now();
        // The relay's choices come from the case seed, so `--seed` replays them; on a veth
        // link it runs in the client's namespace, before the link.
        let config = RelayConfig { clock, ..RelayConfig::default() };
        let relay = link.start_relay(addr, &impair, ctx.seed, config)?.map(Arc::new);
        // Before connect, so the handshake is in; finished after both ends closed. With a
        // relay, the port is the server's: the segments are the relay's, as the reads see them.
        let capture = link.capture(addr.port(), clock);
        let server = tokio::spawn(serve(listener, params.clone(), clock, relay.clone(), ctx.timeout));
        let connect_to = relay.as_ref().map_or(addr, |r| r.addr());
        let socket = link.tcp_client_socket()?;
        let (writes, mss) = drive_client(socket, connect_to, &params, clock).await?;
        let server = server.await.map_err(|e| CaseError::task("the server task", e))??;
        let wire = Some(capture.finish(&ctx.case_id).await);
        let proxy = relay.map(|r| r.observation());
        // Through a relay the client's connection ends at the relay, so its MSS says
        // nothing about the link.
        let mss = mss.filter(|_| proxy.is_none());
        let record = (!matches!(link, Link::Loopback)).then(|| LinkRecord { mss, ..link.record() });
        Ok(Measured { writes, server, wire, proxy, link: record, mss })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        let mut outcome = outcome(params, &measured.writes, &measured.server);
        outcome.observations.link = measured.link;
        if let Some(mss) = measured.mss {
            outcome.metric(metric::mss, f64::from(mss));
        }
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
    /// The link, when not plain loopback.
    link: Option<LinkRecord>,
    /// `TCP_MAXSEG` of the client's socket.
    mss: Option<u32>,
}

/// The same case with the server side in `socklab agent` on another host: the agent
/// reads the connection exactly as [`serve`] does and sends its reads back; their times
/// are placed on this case's clock through the agent's clock.
async fn run_with_agent(
    params: Params,
    ctx: CaseContext,
    agent: Arc<RemoteAgent>,
) -> Result<Measured, CaseError> {
    params.link_spec()?;
    let max_bytes: usize = params.payloads().iter().map(Vec::len).sum();
    let role = RoleSpec::StreamReader {
        read_size: params.read_size,
        read_delay_ms: params.read_delay_ms,
        warm_round_trips: if params.warm { WARM_ROUND_TRIPS as u32 } else { 0 },
        max_bytes: max_bytes as u64,
    };
    let clock = Instant::now();
    let (role, mapping) = {
        let agent = agent.clone();
        run_blocking("the agent", move || {
            let role = agent.start_role(role)?;
            Ok((role, agent.clock_mapping(clock, 5)?))
        })
        .await?
    };
    let path = PeerPath::toward(role.addr.ip());
    let link = Link::Peer(path);
    let impair = LinkSpec::Loopback.relay_impairment(&params.impair)?;
    let config = RelayConfig { clock, ..RelayConfig::default() };
    let relay = link.start_relay(role.addr, &impair, ctx.seed, config)?;
    let capture = link.capture(role.addr.port(), clock);
    let socket = link.tcp_client_socket()?;
    let connect_to = relay.as_ref().map_or(role.addr, TcpRelay::addr);
    let (writes, mss) = drive_client(socket, connect_to, &params, clock).await?;
    let wait = Duration::from_millis(params.read_delay_ms) + SERVER_FINISH;
    let cancel = ctx.cancel.clone();
    let observation =
        run_blocking("the agent", move || Ok(agent.stop_role(role.number, wait, &cancel)?)).await?;
    let RoleObservation::StreamReader { reads, queued_at_first_read, .. } = observation else {
        return Err(CaseError::Protocol("the agent answered with another role's observations".into()));
    };
    let reads = reads
        .iter()
        .map(|r| {
            let bytes = r.bytes().map_err(|e| CaseError::Protocol(format!("the agent sent {e}")))?;
            let at = Duration::from_secs_f64(mapping.case_us(r.at_us) / 1e6);
            Ok(Recorded { at, bytes })
        })
        .collect::<Result<Vec<_>, CaseError>>()?;
    let server = ServerReads { reads, queued_at_first_read: queued_at_first_read as usize };
    let wire = Some(capture.finish(&ctx.case_id).await);
    let mut record = LinkRecord { mss, ..link.record() };
    record.detail += &format!(
        "; the agent's read times are placed on this clock to within ±{:.0} µs (half the fastest of 5 control round trips)",
        mapping.uncertainty_us
    );
    let proxy = relay.map(|r| r.observation());
    let mss = mss.filter(|_| proxy.is_none());
    Ok(Measured { writes, server, wire, proxy, link: Some(LinkRecord { mss, ..record }), mss })
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

/// The client: connects `socket` (made where the client runs) to `addr`, makes optional
/// warm-up round trips, then one write per message, then EOF. Returns the writes and the
/// connection's `TCP_MAXSEG`.
async fn drive_client(
    socket: socket2::Socket,
    addr: std::net::SocketAddr,
    params: &Params,
    clock: Instant,
) -> Result<(Vec<Recorded>, Option<u32>), CaseError> {
    socket.set_nonblocking(true).context("make the client socket non-blocking")?;
    let socket = TcpSocket::from_std_stream(socket.into());
    let mut stream: TcpStream = socket.connect(addr).await.context(format!("connect to {addr}"))?;
    stream.set_nodelay(params.nodelay).context("set TCP_NODELAY")?;
    if params.warm {
        let mut reply = [0u8; PONG.len()];
        for _ in 0..WARM_ROUND_TRIPS {
            stream.write_all(PING).await.context("write warm-up ping")?;
            stream.read_exact(&mut reply).await.context("read warm-up pong")?;
        }
    }
    let payloads = params.payloads();
    let mut writes = Vec::with_capacity(payloads.len());
    for message in payloads {
        // Timed when the call is made: on loopback the segment leaves inside it.
        let at = clock.elapsed();
        // One write() per message: a short write would make two application writes.
        let written = stream.write(&message).await.context("write a message")?;
        if written != message.len() {
            return Err(CaseError::Protocol(format!(
                "write() took {written} of {} bytes; the messages must fit the send buffer",
                message.len()
            )));
        }
        writes.push(Recorded { at, bytes: message });
    }
    let mss = tcp_maxseg(&stream).ok();
    stream.shutdown().await.context("shut down the client's sending side")?;
    // Wait for the server to finish reading and close, so timings are not cut short.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.context("wait for the server to close")?;
    Ok((writes, mss))
}

/// The reference server: answers warm-up pings, waits `read_delay_ms` (with a relay:
/// after the relay forwarded the last byte), then reads with `recv(read_size)` until EOF
/// (the same code `socklab agent` runs on another host).
async fn serve(
    listener: TcpListener,
    params: Params,
    clock: Instant,
    relay: Option<Arc<TcpRelay>>,
    timeout: Duration,
) -> Result<ServerReads, CaseError> {
    let all = params.payloads().iter().map(Vec::len).sum::<usize>();
    let config = ReaderConfig {
        read_size: params.read_size as usize,
        read_delay: Duration::from_millis(params.read_delay_ms),
        warm_round_trips: if params.warm { WARM_ROUND_TRIPS } else { 0 },
        max_bytes: all,
    };
    let (stream, peer) = accept_and_warm(&listener, config.warm_round_trips).await?;
    if let Some(relay) = relay.filter(|_| params.read_delay_ms > 0) {
        // A relay that holds bytes (merge, delay, stall) would otherwise make "every byte
        // queued before the first read" a race: wait until it wrote them all (or gave up).
        let all = (warm_up_bytes(&params) + all) as u64;
        let started = Instant::now();
        while started.elapsed() < timeout {
            match relay.connection(0) {
                Some(c) if c.up.bytes_out >= all || c.closed || c.reset => break,
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    let StreamReads { reads, queued_at_first_read, .. } =
        read_after_delay(stream, peer, config, clock).await?;
    let reads = reads.into_iter().map(|TimedRead { at, bytes }| Recorded { at, bytes }).collect();
    Ok(ServerReads { reads, queued_at_first_read })
}

/// Metrics, observations and checks from what both ends recorded.
fn outcome(params: &Params, writes: &[Recorded], server: &ServerReads) -> CaseOutcome {
    let write_lens: Vec<usize> = writes.iter().map(|w| w.bytes.len()).collect();
    let read_lens: Vec<usize> = server.reads.iter().map(|r| r.bytes.len()).collect();
    let map = BoundaryMap::compute(&write_lens, &read_lens);
    // Judged against what the parameters asked to send, so a case that wrote nothing fails.
    let sent: Vec<u8> = params.payloads().concat();
    let received: Vec<u8> = server.reads.iter().flat_map(|r| r.bytes.iter().copied()).collect();

    let mut outcome = CaseOutcome::default();
    outcome
        .key_metric(metric::writes, writes.len() as f64)
        .key_metric(metric::reads, server.reads.len() as f64)
        .metric(metric::bytes, write_lens.iter().sum::<usize>() as f64)
        .key_metric(metric::sticky_reads, map.sticky_targets() as f64)
        .key_metric(metric::split_messages, map.split_sources() as f64)
        .metric(metric::queued_at_first_read, server.queued_at_first_read as f64);
    if let (Some(first), Some(last)) = (writes.first(), server.reads.last()) {
        outcome.metric(metric::last_read_at, last.at.saturating_sub(first.at).as_micros() as f64);
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
        let sent: Vec<u8> = params.payloads().concat();
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
        outcome
            .key_metric(metric::proxy_writes, proxy_lens.len() as f64)
            .metric(metric::proxy_coalesced_writes, coalesced as f64);
    }
    outcome.observations.proxy = Some(proxy);
}

/// The third layer: which writes each segment carried and which segments each read
/// returned, from the capture; or the reason there is no capture.
fn add_wire_layer(outcome: &mut CaseOutcome, params: &Params, wire: CaseCaptureResult) {
    let (Some(packets), Some(stream)) = (attach_capture(outcome, wire), outcome.observations.stream.as_mut())
    else {
        return;
    };
    let wire = stream_segments(&packets, Direction::ClientToServer, None, warm_up_bytes(params));
    stream.join_segments(wire.segments, wire.retransmissions);
    let coalesced = stream.segment_map.as_ref().map_or(0, |m| m.sticky_targets());
    let (segments, writes) = (stream.segments.len() as f64, stream.writes.len().max(1) as f64);
    if let Some(largest) = stream.segments.iter().map(|s| s.len).max() {
        outcome.metric(metric::largest_segment, largest as f64);
    }
    outcome
        .key_metric(metric::segments, segments)
        .metric(metric::segments_per_write, segments / writes)
        .key_metric(metric::coalesced_segments, coalesced as f64)
        .metric(metric::retransmitted_segments, retransmitted_segments(&packets) as f64);
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
