//! `nagle-delayed-ack`: the ~40 ms write-write-read stall, and the four ways out of it.
//!
//! On a warm loopback connection the client sends each request as two writes — a small
//! header, then the body — and waits for the reply; the server replies once it has read
//! both. With Nagle's algorithm on, the body waits for the ACK of the header, and the
//! server, having nothing to send yet, delays that ACK: every round trip takes the
//! delayed-ACK timer (~40 ms on Linux). The variants each remove one side of the
//! deadlock: `nodelay` (TCP_NODELAY), `writev` (one vectored write), `cork` (TCP_CORK
//! around the two writes), `quickack` (the server sets TCP_QUICKACK before each read).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socklab_harness::capture::{
    CaptureConfig, CaseCapture, CaseCaptureResult, retransmitted_segments, stream_segments,
};
use socklab_harness::check::{Check, format_number};
use socklab_harness::metrics::{LatencyRecorder, LatencySummary};
use socklab_harness::net::{set_cork, set_quickack};
use socklab_harness::params::ParamSpec;
use socklab_harness::report::{
    Direction, IoEvent, LatencyObservation, MetricSpec, RetransmittedSegment, StreamTrace, TraceExcerpt,
    WirePacket,
};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::text::printable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::experiment::attach_capture;

/// The scenario; see the module docs.
pub struct NagleDelayedAck;

/// Round trips before the measured ones, so the server's kernel has left quick-ACK mode
/// and delays its ACKs, as on any long-lived connection.
const WARM_ROUND_TRIPS: usize = 5;
const PING: &[u8; 4] = b"ping";
const PONG: &[u8; 4] = b"pong";
const REPLY: &[u8; 2] = b"ok";
/// Round trips whose writes, segments and reads go into the report's timeline.
const TRACED_ROUND_TRIPS: usize = 3;
/// A gap before the second segment this long or longer is a delayed-ACK stall (the
/// Linux timer is 40 ms; anything without it is well under a millisecond on loopback).
const STALL_GAP: Duration = Duration::from_millis(20);
/// The `default` variant must stall at least this long at the median...
const STALL_P50_MIN: Duration = Duration::from_millis(30);
/// ...and every fix must stay under this.
const FIXED_P50_MAX: Duration = Duration::from_millis(5);

socklab_harness::named_enum!(
    /// How the client sends each header + body, or what the server does about ACKs.
    pub Variant, "variant", {
        /// Two writes, Nagle on, server ACKs as it likes: the stall.
        Default => "default",
        /// Client sets TCP_NODELAY: the body leaves without waiting for the ACK.
        Nodelay => "nodelay",
        /// One `writev` of header and body: one small write, nothing for Nagle to hold.
        Writev => "writev",
        /// TCP_CORK on, two writes, cork off: the kernel sends both as one segment.
        Cork => "cork",
        /// Server sets TCP_QUICKACK before each read: the header's ACK is not delayed.
        Quickack => "quickack",
    }
);

socklab_harness::params! {
    /// Parameters of `nagle-delayed-ack`.
    pub struct Params {
        /// default = two writes with Nagle on; the others are the fixes
        variant: Variant = Variant::Default => ParamSpec::choice::<Variant>(),
        /// measured request/reply round trips (the default variant costs ~40 ms each)
        round_trips: u64 = 20 => ParamSpec::int(1, 10_000),
        /// size of each request's first write
        header_bytes: u64 = 8 => ParamSpec::int(1, 1024).unit("bytes"),
        /// size of each request's second write
        body_bytes: u64 = 100 => ParamSpec::int(1, 1024).unit("bytes"),
    }
}

socklab_harness::model::metrics! {
    /// measured round trips
    round_trips: Count, Neither;
    /// median round trip, first write to reply read
    rtt_p50: Millis, Lower;
    /// 90th percentile round trip
    rtt_p90: Millis, Lower;
    /// 99th percentile round trip
    rtt_p99: Millis, Lower;
    /// slowest round trip
    rtt_max: Millis, Lower;
    /// median time on the wire between a request's first segment and the segment with its last byte
    /// (0 when one segment carried it); from the capture
    second_segment_gap_p50: Millis, Lower;
    /// requests whose last segment left 20 ms or more after the first; from the capture
    stalled_requests: Count, Lower;
    /// data segments per request (2 = header and body apart, 1 = together); from the capture
    segments_per_request: Count, Neither;
    /// TCP segments that repeated sequence space sent before (retransmissions, tail-loss probes),
    /// either direction, warm-up included; from the capture
    retransmitted_segments: Count, Lower;
}

impl Scenario for NagleDelayedAck {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "nagle-delayed-ack";
    const SUMMARY: &'static str = "the ~40 ms write-write-read stall (Nagle + delayed ACK), and TCP_NODELAY, writev, TCP_CORK, TCP_QUICKACK";
    const EXPLANATION: &'static str = "\
What it shows: a client sends each request as two writes, a small header and then the body, \
and waits for the reply; the server replies once it has both. On a warm connection with \
default settings every round trip takes about 40 ms, although loopback moves the bytes in \
microseconds. The capture shows why: the header leaves at once as one segment; the body \
does not follow. The next thing on the wire is the server's bare ACK of the header, about \
40 ms later, and the body's segment leaves right after it. The gap before the second \
segment is the whole stall.

Why it happens: two good rules meet. Nagle's algorithm (on by default) holds back a small \
write while earlier data is unacknowledged, hoping to send it together with more. The \
receiver's delayed ACK holds back the acknowledgement, hoping to send it with a reply \
(Linux waits up to 40 ms once a connection looks interactive, which is why the scenario \
warms the connection first). The server cannot reply before it has the body; the client \
will not send the body before the header is acknowledged. Each waits for the other until \
the delayed-ACK timer fires.

What fixes it: give Nagle nothing to hold or take the ACK delay away. writev (or building \
the request in one buffer) sends header and body in one write and usually one segment; \
TCP_CORK around the two writes does the same inside the kernel; TCP_NODELAY lets the small \
body leave at once (two segments, no wait); TCP_QUICKACK on the server acknowledges the \
header at once (it is not sticky: set it before each read). The first two also save a \
segment per request; TCP_NODELAY with many tiny writes sends many tiny segments.";
    const METRICS: &'static [MetricSpec] = METRICS;

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr().context("read the bound address")?;
        let clock = Instant::now();
        let capture = CaseCapture::start(CaptureConfig::loopback(addr.port()), clock);
        let server = tokio::spawn(serve(listener, params.clone(), clock));
        let client = drive_client(addr, &params, clock).await?;
        let reads = server.await.map_err(|e| CaseError::task("the server task", e))??;
        let wire = Some(capture.finish(&ctx.case_id).await);
        Ok(Measured { client, reads, wire })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        let Measured { client, reads, wire } = measured;
        let mut outcome = CaseOutcome::default();
        let summary = client.latency.summary();
        outcome.metric(metric::round_trips, summary.count as f64);
        if summary.count > 0 {
            outcome
                .key_metric(metric::rtt_p50, ms(summary.p50_ns))
                .metric(metric::rtt_p90, ms(summary.p90_ns))
                .key_metric(metric::rtt_p99, ms(summary.p99_ns))
                .metric(metric::rtt_max, ms(summary.max_ns));
        }
        outcome.checks.push(p50_check(params, &summary));
        outcome.observations.latency = Some(LatencyObservation {
            of: "round trip: first write of the request to the reply read, per request".into(),
            summary,
            histogram: client.latency.to_base64(),
        });
        let request_len = (params.header_bytes + params.body_bytes) as usize;
        let mut trace = StreamTrace {
            excerpt: TraceExcerpt::first(TRACED_ROUND_TRIPS, params.round_trips as usize, "requests"),
            ..StreamTrace::new(client.writes, reads)
        };
        if let Some(packets) = wire.and_then(|wire| attach_capture(&mut outcome, wire)) {
            wire_metrics(&mut outcome, &packets, params.round_trips as usize, request_len);
            outcome.metric(metric::retransmitted_segments, retransmitted_segments(&packets) as f64);
            let skip = WARM_ROUND_TRIPS * PING.len();
            let client_stream = stream_segments(&packets, Direction::ClientToServer, None, skip);
            let traced_bytes = TRACED_ROUND_TRIPS.min(params.round_trips as usize) * request_len;
            let mut segments = client_stream.segments;
            cut_to(&mut segments, traced_bytes);
            trace
                .join_segments(segments, retransmissions_within(client_stream.retransmissions, traced_bytes));
        }
        outcome.observations.stream = Some(trace);
        outcome
    }
}

/// What a case recorded: the client's round trips and writes, the server's reads, the
/// capture.
#[derive(Default)]
pub struct Measured {
    client: ClientRun,
    reads: Vec<IoEvent>,
    wire: Option<CaseCaptureResult>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// What the client measured, and its first requests' writes for the timeline.
#[derive(Default)]
struct ClientRun {
    latency: LatencyRecorder,
    writes: Vec<IoEvent>,
}

/// The event of a write whose call was made at `at` (on the case clock), or of a read
/// that returned at `at`; see `IoEvent::at_us`.
fn event(at: Duration, bytes: &[u8]) -> IoEvent {
    IoEvent { at_us: at.as_secs_f64() * 1e6, len: bytes.len(), text: printable(bytes) }
}

/// Header `H` + index, padded with `h`; body `b`s. Printable, so the timeline shows it.
fn request(index: usize, params: &Params) -> (Vec<u8>, Vec<u8>) {
    let mut header = format!("H{index}:").into_bytes();
    header.resize(params.header_bytes as usize, b'h');
    (header, vec![b'b'; params.body_bytes as usize])
}

async fn drive_client(addr: SocketAddr, params: &Params, clock: Instant) -> Result<ClientRun, CaseError> {
    let mut stream = TcpStream::connect(addr).await.context(format!("connect to {addr}"))?;
    let mut pong = [0u8; PONG.len()];
    for _ in 0..WARM_ROUND_TRIPS {
        stream.write_all(PING).await.context("write warm-up ping")?;
        stream.read_exact(&mut pong).await.context("read warm-up pong")?;
    }
    if params.variant == Variant::Nodelay {
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
    }
    let mut latency = LatencyRecorder::new();
    let mut writes = Vec::new();
    let mut reply = [0u8; REPLY.len()];
    for index in 0..params.round_trips as usize {
        let (header, body) = request(index, params);
        let started = Instant::now();
        // Each write is timed when its call is made: on loopback a segment leaves inside
        // the call that sends it.
        let mut timed = Vec::with_capacity(2);
        match params.variant {
            Variant::Writev => {
                let total = header.len() + body.len();
                let slices = [IoSlice::new(&header), IoSlice::new(&body)];
                timed.push((clock.elapsed(), [header.as_slice(), body.as_slice()].concat()));
                let written = stream.write_vectored(&slices).await.context("writev the request")?;
                if written != total {
                    return Err(CaseError::Protocol(format!("writev took {written} of {total} bytes")));
                }
            }
            Variant::Cork => {
                set_cork(&stream, true).context("set TCP_CORK")?;
                timed.push((clock.elapsed(), header.clone()));
                stream.write_all(&header).await.context("write the header")?;
                timed.push((clock.elapsed(), body.clone()));
                stream.write_all(&body).await.context("write the body")?;
                set_cork(&stream, false).context("clear TCP_CORK")?;
            }
            Variant::Default | Variant::Nodelay | Variant::Quickack => {
                timed.push((clock.elapsed(), header.clone()));
                stream.write_all(&header).await.context("write the header")?;
                timed.push((clock.elapsed(), body.clone()));
                stream.write_all(&body).await.context("write the body")?;
            }
        }
        if index < TRACED_ROUND_TRIPS {
            writes.extend(timed.iter().map(|(at, bytes)| event(*at, bytes)));
        }
        stream.read_exact(&mut reply).await.context("read the reply")?;
        latency.record(started.elapsed());
    }
    stream.shutdown().await.context("shut down the client's sending side")?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.context("wait for the server to close")?;
    Ok(ClientRun { latency, writes })
}

/// The reference server: answers warm-up pings, then for each request reads until it
/// has header and body, and replies.
async fn serve(listener: TcpListener, params: Params, clock: Instant) -> Result<Vec<IoEvent>, CaseError> {
    let (mut stream, peer) = listener.accept().await.context("accept the client")?;
    let mut ping = [0u8; PING.len()];
    for _ in 0..WARM_ROUND_TRIPS {
        stream.read_exact(&mut ping).await.context(format!("read warm-up ping from {peer}"))?;
        stream.write_all(PONG).await.context(format!("write warm-up pong to {peer}"))?;
    }
    let request_len = (params.header_bytes + params.body_bytes) as usize;
    let mut buf = vec![0u8; request_len];
    let mut reads = Vec::new();
    for index in 0..params.round_trips as usize {
        let mut have = 0;
        // Each read returns at least one byte, so this ends after request_len reads.
        while have < request_len {
            if params.variant == Variant::Quickack {
                set_quickack(&stream, true).context("set TCP_QUICKACK")?;
            }
            let n = stream.read(&mut buf[have..]).await.context(format!("read a request from {peer}"))?;
            if n == 0 {
                return Err(CaseError::Protocol(format!(
                    "{peer} closed after {index} requests and {have} bytes"
                )));
            }
            if index < TRACED_ROUND_TRIPS {
                reads.push(event(clock.elapsed(), &buf[have..have + n]));
            }
            have += n;
        }
        stream.write_all(REPLY).await.context(format!("write the reply to {peer}"))?;
    }
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.context(format!("wait for {peer} to close"))?;
    Ok(reads)
}

/// Shortens `segments` to the first `limit` stream bytes.
fn cut_to(segments: &mut Vec<IoEvent>, limit: usize) {
    let mut total = 0;
    segments.retain_mut(|segment| {
        if total >= limit {
            return false;
        }
        if total + segment.len > limit {
            segment.len = limit - total;
            segment.text.clear();
        }
        total += segment.len;
        true
    });
}

/// The retransmissions that repeated bytes of the first `limit` stream bytes.
fn retransmissions_within(
    retransmissions: Vec<RetransmittedSegment>,
    limit: usize,
) -> Vec<RetransmittedSegment> {
    retransmissions.into_iter().filter(|r| r.start < limit).collect()
}

/// The wire evidence: per request, the gap between its first segment and the segment
/// carrying its last byte.
fn wire_metrics(outcome: &mut CaseOutcome, packets: &[WirePacket], round_trips: usize, request_len: usize) {
    let skip = WARM_ROUND_TRIPS * PING.len();
    let segments = stream_segments(packets, Direction::ClientToServer, None, skip).segments;
    let mut offset = 0usize;
    let mut per_request: Vec<(f64, f64, usize)> = vec![(f64::NAN, f64::NAN, 0); round_trips];
    for segment in &segments {
        let (first, last) = (offset / request_len, (offset + segment.len - 1) / request_len);
        for slot in per_request.iter_mut().take(last + 1).skip(first) {
            if slot.0.is_nan() {
                slot.0 = segment.at_us;
            }
            slot.1 = segment.at_us;
            slot.2 += 1;
        }
        offset += segment.len;
    }
    let mut gaps = LatencyRecorder::new();
    let mut stalled = 0;
    let mut counted = 0;
    let mut segment_count = 0;
    for &(first, last, count) in per_request.iter().filter(|r| !r.0.is_nan()) {
        let gap = Duration::from_secs_f64(((last - first) / 1e6).max(0.0));
        gaps.record(gap);
        stalled += usize::from(gap >= STALL_GAP);
        counted += 1;
        segment_count += count;
    }
    if counted == 0 {
        return;
    }
    outcome
        .key_metric(metric::second_segment_gap_p50, ms(gaps.summary().p50_ns))
        .metric(metric::stalled_requests, stalled as f64)
        .metric(metric::segments_per_request, segment_count as f64 / counted as f64);
}

/// The stall shows for `default` and is gone for every fix, judged over every round trip
/// the parameters asked for.
fn p50_check(params: &Params, summary: &LatencySummary) -> Check {
    let p50 = Duration::from_nanos(summary.p50_ns);
    let observed = format!("p50 {} ms over {} round trips", format_number(ms(summary.p50_ns)), summary.count);
    let all_measured = summary.count == params.round_trips;
    let (name, expected, holds, explanation) = if params.variant == Variant::Default {
        (
            "stall_shows",
            format!("p50 >= {} ms over {} round trips", STALL_P50_MIN.as_millis(), params.round_trips),
            p50 >= STALL_P50_MIN,
            "with Nagle on and delayed ACKs, each request waits for the delayed-ACK timer (~40 ms on Linux)",
        )
    } else {
        (
            "stall_fixed",
            format!("p50 < {} ms over {} round trips", FIXED_P50_MAX.as_millis(), params.round_trips),
            p50 < FIXED_P50_MAX,
            "without the write-write-read deadlock a loopback round trip takes well under a millisecond",
        )
    };
    if summary.count == 0 {
        return Check::nothing_to_judge(name, expected, "no round trip was measured");
    }
    Check::new(name, expected, observed, holds && all_measured, explanation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_the_first_bytes() {
        let mut segments = vec![
            IoEvent { at_us: 0.0, len: 8, text: "H0:hhhhh".into() },
            IoEvent { at_us: 1.0, len: 10, text: "bbbbbbbbbb".into() },
        ];
        cut_to(&mut segments, 12);
        assert_eq!(segments.iter().map(|s| s.len).collect::<Vec<_>>(), [8, 4]);
        assert!(segments[1].text.is_empty());
    }

    #[test]
    fn requests_are_printable_and_sized() {
        let (header, body) = request(12, &Params::default());
        assert_eq!(header, b"H12:hhhh");
        assert_eq!(body.len(), 100);
    }
}
