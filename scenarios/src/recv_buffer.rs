//! `recv-buffer`: how the read size and the socket buffer sizes shape TCP throughput.
//!
//! A client writes `bytes` bytes over loopback TCP; the server reads them with
//! `read(read_size)` until EOF and verifies every byte. `rcvbuf` and `sndbuf` optionally
//! set `SO_RCVBUF` (on the listener, so the accepted socket inherits it before the
//! handshake) and `SO_SNDBUF` (on the client). Swept across cases, the metrics draw the
//! curve: throughput and reads per MiB against read size and buffer size.
//!
//! The bytes are a [`pattern`] of 4 KiB blocks (a block number, then a fixed body) that
//! the writer lays out by rewriting 8 bytes per block and the reader verifies with one
//! `memcmp` per block, so checking costs a small fraction of the transfer and the figure
//! measures the socket, not the test pattern.
//!
//! Both ends stop at the case's time limit (the runner's timeout): a transfer that cannot
//! finish does not keep a core busy after its case was given up.
//!
//! With `link=veth` the transfer crosses a veth pair between two private namespaces, of
//! a given MTU and optionally a tbf `rate`: the payload throughput must then land within
//! 10% of the rate, and the client end's byte counters give the same figure a second
//! way. With `--peer-cmd` the receiving side runs in `socklab agent` on another host.
//!
//! [`pattern`]: socklab_harness::peer::bulk::pattern

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::impair::{ProxyObservation, RelayConfig, TcpRelay};
use socklab_harness::link::LinkKind;
use socklab_harness::link::{self, Link, LinkSpec, PeerPath};
use socklab_harness::metrics::CpuTime;
use socklab_harness::net::{
    recv_buffer, rmem_max, send_buffer, set_quickack, set_recv_buffer, set_send_buffer, tcp_maxseg, wmem_max,
};
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::peer::agent::{RemoteAgent, RoleObservation, RoleSpec};
use socklab_harness::peer::bulk::pattern;
use socklab_harness::report::{LinkRecord, MetricSpec};
use socklab_harness::scenario::{
    Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario, TableSpec,
};
use socklab_harness::shared_params;

use crate::experiment::run_blocking;

/// The scenario; see the module docs.
pub struct RecvBuffer;

socklab_harness::params! {
    /// Parameters of `recv-buffer`.
    pub struct Params {
        /// bytes to transfer
        bytes: u64 = 16 << 20 => ParamSpec::int(1, 1 << 32).unit("bytes"),
        /// buffer size of each server read()
        read_size: u64 = 64 * 1024 => ParamSpec::int(1, 16 << 20).unit("bytes"),
        /// buffer size of each client write()
        write_size: u64 = 64 * 1024 => ParamSpec::int(1, 16 << 20).unit("bytes"),
        /// SO_RCVBUF of the server (0: kernel default with autotuning)
        rcvbuf: u64 = 0 => ParamSpec::int(0, 256 << 20).unit("bytes"),
        /// SO_SNDBUF of the client (0: kernel default with autotuning)
        sndbuf: u64 = 0 => ParamSpec::int(0, 256 << 20).unit("bytes"),
        /// the server sets TCP_QUICKACK before every read: no delayed ACKs (shows what a small sndbuf
        /// waits for)
        quickack: bool = false => ParamSpec::bool(),
        link: LinkKind => shared_params::LINK,
        mtu: u64 = shared_params::DEFAULT_MTU => shared_params::MTU,
        rate: String = shared_params::NO_RATE.into() => shared_params::RATE,
        delay_ms: u64 = 0 => shared_params::DELAY_MS,
    }
}

impl Params {
    fn link_spec(&self) -> Result<LinkSpec, Invalid> {
        LinkSpec::parse(self.link, self.mtu, &self.rate, self.delay_ms)
    }
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// A read or write blocked longer than this means a stuck peer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

socklab_harness::model::metrics! {
    /// bytes delivered per second of transfer
    throughput: BytesPerSec, Higher;
    /// the same in MiB/s
    throughput_mib_s: MibPerSec, Higher;
    /// bytes the receiver read (each checked against the pattern)
    received: Bytes, Neither;
    /// read() calls that returned data
    reads: Count, Neither;
    /// read() calls per MiB delivered (syscalls)
    reads_per_mib: Count, Lower;
    /// mean bytes a read returned
    bytes_per_read_mean: Bytes, Neither;
    /// most bytes one read returned
    bytes_per_read_max: Bytes, Neither;
    /// process CPU time (user + system, both ends) per GiB transferred
    cpu_s_per_gib: Seconds, Lower;
    /// from connect to the last byte read
    duration: Millis, Lower;
    /// server SO_RCVBUF after the transfer
    rcvbuf_effective: Bytes, Neither;
    /// client SO_SNDBUF after the transfer
    sndbuf_effective: Bytes, Neither;
    /// net.core.rmem_max, the cap on SO_RCVBUF
    rmem_max: Bytes, Neither;
    /// net.core.wmem_max, the cap on SO_SNDBUF
    wmem_max: Bytes, Neither;
    /// payload throughput in Mbit/s, as link rates are given (cases with a link rate)
    throughput_mbit_s: MbitPerSec, Higher;
    /// payload throughput as a share of the link's rate (at most MSS/(MTU+14): 95.6% at MTU 1500)
    rate_share: Percent, Higher;
    /// link=veth: frames the client's end sent (its /proc/net/dev byte counter, headers included)
    /// per second, over the transfer
    wire_mbit_s: MbitPerSec, Neither;
    /// payload bytes of a full segment on the connection (TCP_MAXSEG), from the client
    mss: Bytes, Neither;
}

impl Scenario for RecvBuffer {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "recv-buffer";
    const SUMMARY: &'static str =
        "read size and SO_RCVBUF/SO_SNDBUF against TCP throughput, syscalls and CPU";
    const EXPLANATION: &'static str = "\
What it shows: a bulk TCP transfer over loopback of a fixed number of bytes, read with \
read(read_size) and verified as it arrives. Across cases the metrics draw a curve in two \
parts. For small reads, throughput grows in proportion to the read size: every read() \
is a system call with a fixed cost, so 1-byte reads move about 2 MiB/s \
(reads_per_mib = 1,048,576) and 16-byte reads about 16 times as much; 1 KiB reads reach \
about 1 GiB/s. From about 16 KiB up the curve is flat: 64 KiB, 256 KiB or 1 MiB reads \
are no faster than 16 KiB ones. \
The fixed cost is then spread over so many bytes that what remains is the work per byte \
(the kernel copies each byte into the socket on write() and out of it on read()) and the \
two ends sharing the machine's CPUs. That plateau, a few GiB/s, is the loopback socket's \
own speed: iperf3 measures the same on the same transfer (ci/compare-peers.sh compares \
them). It moves by tens of percent from run to run with whatever else the machine runs, \
so compare medians of repeated runs, and look at duration: a transfer of a few MiB \
measures connection setup more than the socket. A read returns at most what is queued \
(bytes_per_read_max shows what reads actually got). Small socket buffers lower \
throughput: with a small SO_RCVBUF the sender stops whenever the receiver's window is \
full. A send buffer of a few KiB is worse than it looks: the sender can have only a segment \
or two in flight, and the receiver, with a single segment to acknowledge, delays its ACK \
(up to 40 ms on Linux, as in nagle-delayed-ack) hoping to send it with data of its own. \
Every write waits for that timer (once the connection has left the quick-ACK mode it \
starts in, a few hundred KiB in), so 64 KiB writes crawl at a few MiB/s. The window is \
not what limits it: with quickack = true the server acknowledges at once and the same \
small buffer moves hundreds of MiB/s.

How it is measured: duration runs from connect() to the read that returns end of file. \
Every 4 KiB block of the stream carries its number and a fixed pattern; the reader \
compares each block with memcmp (about 35 ms per GiB), so a lost, repeated, reordered or \
changed chunk is caught without the check weighing on the figure.

Why it happens: each read() is a system call with a fixed cost (about half a microsecond \
here: 1 MiB in 1-byte reads takes about half a second) on top of copying the bytes; the \
fewer bytes per call, the more the fixed cost dominates, which cpu_s_per_gib makes \
visible. The receive buffer bounds TCP's window, and so how much can be in flight. Linux \
doubles the value given to SO_RCVBUF/SO_SNDBUF after capping it at \
net.core.rmem_max/wmem_max (socket(7); the rmem_max, wmem_max and *_effective metrics \
show the values measured), and setting either turns off the kernel's automatic buffer \
tuning for that socket (tcp(7)), which with 0 here (the default) grows the buffers up to \
net.ipv4.tcp_rmem/tcp_wmem's maximum.

What fixes it: read in chunks of 16 KiB or more (or whatever a framing layer buffers); \
past that, bigger reads gain nothing measurable. Leave the buffer sizes to autotuning \
unless a measurement shows otherwise; when setting them, read back the effective value.

Over a link with a rate (link = veth, rate = 100mbit: a tbf qdisc on a veth pair between \
two network namespaces) the link is the limit: the payload runs at 90 to 96% of the rate \
(throughput_at_rate, rate_share), the rest being the 66 bytes of Ethernet, IP and TCP \
headers every 1448-byte segment carries, which the veth's own byte counter shows \
(wire_mbit_s, at the rate).";
    const METRICS: &'static [MetricSpec] = METRICS;
    const TABLE: Option<TableSpec> = Some(TableSpec {
        rows: "read_size",
        columns: "rcvbuf",
        cells: &["throughput_mib_s", "duration", "reads_per_mib", "cpu_s_per_gib"],
    });

    const REMOTE_PEER: bool = true;

    fn validate(params: &Params) -> Result<(), Invalid> {
        params.link_spec().map(|_| ())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        // The runner cancels the case at its timeout; a call blocked then wakes by this
        // deadline a moment later, so the case's own time limit is always the runner's.
        let stop = Stop { at: Instant::now() + ctx.timeout + STOP_MARGIN, cancel: ctx.cancel.clone() };
        run_blocking("the transfer threads", move || match ctx.peer.clone() {
            Some(agent) => experiment_with_agent(&params, &agent, stop),
            None => experiment(&params, stop, ctx.seed),
        })
        .await
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// What the server saw.
#[derive(Default)]
struct ServerSide {
    received: u64,
    reads: u64,
    max_read: usize,
    first_mismatch: Option<u64>,
    rcvbuf_effective: usize,
    elapsed_at_eof: Duration,
}

/// What a case measured at both ends.
#[derive(Default)]
pub struct Measured {
    server: ServerSide,
    sndbuf_effective: usize,
    /// CPU time of both ends (this process, and the agent's when there is one).
    cpu: Duration,
    rmem_max: u64,
    wmem_max: u64,
    /// The link, when not plain loopback.
    link: Option<LinkRecord>,
    /// Bytes of frames the client's veth end sent during the transfer.
    wire_bytes: Option<u64>,
    /// `TCP_MAXSEG` of the client's connection.
    mss: Option<u32>,
    /// What the impairment relay did (`link=veth` with `delay_ms`).
    proxy: Option<ProxyObservation>,
}

fn experiment(params: &Params, stop: Stop, seed: u64) -> Result<Measured, CaseError> {
    let spec = params.link_spec()?;
    let impair = spec.relay_impairment("none")?;
    let link = Link::open(spec)?;
    let rcvbuf = params.rcvbuf as usize;
    // On the listener, so the window scale negotiated in the handshake fits it.
    let listener = link.tcp_listener(move |socket| {
        if rcvbuf > 0 {
            set_recv_buffer(socket, rcvbuf)?;
        }
        Ok(())
    })?;
    let addr = listener.local_addr().context("read the bound address")?;
    // `delay_ms`: a relay in the client's namespace holds every byte that long each way;
    // its own connection to the server crosses the link.
    let relay = link.start_relay(addr, &impair, seed, RelayConfig::default())?;
    let connect_to = relay.as_ref().map_or(addr, TcpRelay::addr);
    let client = link.tcp_client_socket()?;
    if params.sndbuf > 0 {
        set_send_buffer(&client, params.sndbuf as usize).context("set SO_SNDBUF on the client")?;
    }
    // Built before the clock starts: laying out the pattern is not part of the transfer.
    let mut source = pattern::Source::new(params.write_size as usize);
    let verifier = pattern::Verifier::new();
    let counters_before = link.client_counters()?;
    let cpu_before = CpuTime::now();
    let started = Instant::now();
    client.connect(&connect_to.into()).context(format!("connect to {connect_to}"))?;
    let mut client: TcpStream = client.into();
    // Through a relay the client's connection ends at the relay, so its MSS says
    // nothing about the link.
    let mss = tcp_maxseg(&client).ok().filter(|_| relay.is_none());
    let (server, _) = listener.accept().context("accept the client")?;
    let (bytes, read_size) = (params.bytes, params.read_size as usize);
    let reader = std::thread::Builder::new()
        .name("socklab-recv-buffer".into())
        .spawn({
            let stop = stop.clone();
            let quickack = params.quickack;
            move || serve(server, bytes, read_size, quickack, verifier, started, stop)
        })
        .context("start the server thread")?;

    send_pattern(&mut client, &mut source, params, stop)?;
    let server = reader
        .join()
        .map_err(|_| CaseError::Task { task: "the server thread", what: "panicked".into() })??;
    let cpu = CpuTime::now().since(cpu_before).total();
    let sndbuf_effective = send_buffer(&client).context("read SO_SNDBUF")?;
    let wire_bytes = match (counters_before, link.client_counters()?) {
        (Some(before), Some(after)) => Some(after.since(&before).tx_bytes),
        _ => None,
    };
    let record = (!matches!(link, Link::Loopback)).then(|| LinkRecord { mss, ..link.record() });
    Ok(Measured {
        server,
        sndbuf_effective,
        cpu,
        rmem_max: rmem_max().context("read net.core.rmem_max")?,
        wmem_max: wmem_max().context("read net.core.wmem_max")?,
        link: record,
        wire_bytes,
        mss,
        proxy: relay.map(|relay| relay.observation()),
    })
}

/// The same transfer into `socklab agent`'s bulk sink on another host, which verifies
/// the same pattern and counts its reads the same way.
fn experiment_with_agent(
    params: &Params,
    agent: &Arc<RemoteAgent>,
    stop: Stop,
) -> Result<Measured, CaseError> {
    params.link_spec()?;
    let role = agent.start_role(RoleSpec::BulkSink {
        read_size: params.read_size,
        rcvbuf: params.rcvbuf,
        expected_bytes: params.bytes,
        quickack: params.quickack,
    })?;
    let link = Link::Peer(PeerPath::toward(role.addr.ip()));
    let client = link.tcp_client_socket()?;
    if params.sndbuf > 0 {
        set_send_buffer(&client, params.sndbuf as usize).context("set SO_SNDBUF on the client")?;
    }
    let mut source = pattern::Source::new(params.write_size as usize);
    let cpu_before = CpuTime::now();
    // Another host may not answer at all: wait no longer than the case may.
    let connect_wait =
        stop.at.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), IO_TIMEOUT);
    client.connect_timeout(&role.addr.into(), connect_wait).context(format!("connect to {}", role.addr))?;
    let mut client: TcpStream = client.into();
    let mss = tcp_maxseg(&client).ok();
    send_pattern(&mut client, &mut source, params, stop.clone())?;
    let wait = stop.at.saturating_duration_since(Instant::now()).min(IO_TIMEOUT);
    let observation = agent.stop_role(role.number, wait, &stop.cancel)?;
    let local_cpu = CpuTime::now().since(cpu_before).total();
    let RoleObservation::BulkSink {
        received,
        reads,
        max_read,
        first_mismatch,
        rcvbuf_effective,
        rmem_max,
        elapsed_us,
        cpu,
    } = observation
    else {
        return Err(CaseError::Protocol("the agent answered with another role's observations".into()));
    };
    let server = ServerSide {
        received,
        reads,
        max_read: max_read as usize,
        first_mismatch,
        rcvbuf_effective: rcvbuf_effective as usize,
        elapsed_at_eof: Duration::from_micros(elapsed_us),
    };
    let remote_cpu = cpu.total();
    Ok(Measured {
        server,
        sndbuf_effective: send_buffer(&client).context("read SO_SNDBUF")?,
        cpu: local_cpu + remote_cpu,
        rmem_max,
        wmem_max: wmem_max().context("read net.core.wmem_max")?,
        link: Some(LinkRecord { mss, ..link.record() }),
        wire_bytes: None,
        mss,
        proxy: None,
    })
}

/// How long after the case's timeout a blocked call gives up on its own, so the runner's
/// timeout (which raises the cancel flag) always comes first.
const STOP_MARGIN: Duration = Duration::from_millis(250);

/// When the transfer must stop: the runner's cancel flag, checked before every call, and
/// a deadline for calls blocked when it is raised.
#[derive(Clone)]
struct Stop {
    at: Instant,
    cancel: Cancel,
}

/// The case's time limit, applied to one socket as its read or write timeout.
///
/// A blocking call waits at most [`IO_TIMEOUT`], or until the deadline when that is
/// nearer, and no call starts after the case was cancelled or the deadline passed. The
/// socket option is refreshed when the time left changes by a whole second, not before
/// every call: with 1-byte reads an extra `setsockopt` per read would double the system
/// calls being measured (the cancel flag is one atomic load).
struct Deadline {
    stop: Stop,
    armed_secs: Option<u64>,
}

impl Deadline {
    fn new(stop: Stop) -> Self {
        Deadline { stop, armed_secs: None }
    }

    /// Sets the socket timeout with `set` if it is due; fails once the case was cancelled
    /// or the deadline passed.
    fn arm(&mut self, set: impl FnOnce(Option<Duration>) -> io::Result<()>) -> io::Result<()> {
        let left = self.stop.at.saturating_duration_since(Instant::now());
        if left.is_zero() || self.stop.cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the case's time limit passed"));
        }
        let left = left.min(IO_TIMEOUT);
        if self.armed_secs != Some(left.as_secs()) {
            set(Some(left))?;
            self.armed_secs = Some(left.as_secs());
        }
        Ok(())
    }
}

/// Writes the pattern's `params.bytes` in `params.write_size` writes, then shuts down
/// the sending side. Bounded by the byte count and by the case's deadline.
fn send_pattern(
    client: &mut TcpStream,
    source: &mut pattern::Source,
    params: &Params,
    stop: Stop,
) -> Result<(), CaseError> {
    let mut offset = 0u64;
    let mut deadline = Deadline::new(stop);
    while offset < params.bytes {
        let n = (params.write_size).min(params.bytes - offset) as usize;
        deadline
            .arm(|t| client.set_write_timeout(t))
            .and_then(|()| client.write_all(source.chunk(offset, n)))
            .map_err(|source| at_byte("write", offset, source))?;
        offset += n as u64;
    }
    client.shutdown(std::net::Shutdown::Write).context("shut down the client's sending side")
}

/// A failed read or write, saying where in the stream. Built only on failure: the
/// transfer loops run once per read, a million times for 1-byte reads, and formatting the
/// context up front would cost more than the system call being measured.
fn at_byte(what: &str, offset: u64, source: io::Error) -> CaseError {
    CaseError::Io { context: format!("{what} at byte {offset}"), error: source }
}

/// Reads until EOF, checking every byte against the pattern.
fn serve(
    mut stream: TcpStream,
    expected: u64,
    read_size: usize,
    quickack: bool,
    mut verifier: pattern::Verifier,
    started: Instant,
    stop: Stop,
) -> Result<ServerSide, CaseError> {
    let mut buf = vec![0u8; read_size];
    let (mut reads, mut max_read) = (0u64, 0usize);
    let mut deadline = Deadline::new(stop);
    // Every read returns at least one byte or EOF; more than `expected` bytes is an
    // error, and so is the deadline.
    loop {
        let n = deadline
            .arm(|t| stream.set_read_timeout(t))
            .and_then(|()| if quickack { set_quickack(&stream, true) } else { Ok(()) })
            .and_then(|()| stream.read(&mut buf))
            .map_err(|source| at_byte("read", verifier.position(), source))?;
        if n == 0 {
            break;
        }
        verifier.check(&buf[..n]);
        reads += 1;
        max_read = max_read.max(n);
        if verifier.position() > expected {
            return Err(CaseError::Protocol(format!(
                "received {} bytes, more than the {expected} sent",
                verifier.position()
            )));
        }
    }
    let elapsed_at_eof = started.elapsed();
    let rcvbuf_effective = recv_buffer(&stream).context("read SO_RCVBUF")?;
    Ok(ServerSide {
        received: verifier.position(),
        reads,
        max_read,
        first_mismatch: verifier.first_mismatch(),
        rcvbuf_effective,
        elapsed_at_eof,
    })
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let s = &m.server;
    let secs = s.elapsed_at_eof.as_secs_f64().max(1e-9);
    let throughput = s.received as f64 / secs;
    let mib = (s.received as f64 / MIB).max(1e-12);
    let mut outcome = CaseOutcome::default();
    outcome
        .metric(metric::throughput, throughput.round())
        .key_metric(metric::throughput_mib_s, (throughput / MIB * 10.0).round() / 10.0)
        .metric(metric::received, s.received as f64)
        .metric(metric::reads, s.reads as f64)
        .key_metric(metric::reads_per_mib, (s.reads as f64 / mib).round())
        .key_metric(metric::bytes_per_read_mean, (s.received as f64 / s.reads.max(1) as f64).round())
        .metric(metric::bytes_per_read_max, s.max_read as f64)
        .key_metric(metric::cpu_s_per_gib, m.cpu.as_secs_f64() / (s.received as f64 / GIB).max(1e-12))
        // Key, so every summary row says how long the figure was measured over.
        .key_metric(metric::duration, (secs * 1e4).round() / 10.0)
        .metric(metric::rcvbuf_effective, s.rcvbuf_effective as f64)
        .metric(metric::sndbuf_effective, m.sndbuf_effective as f64)
        .metric(metric::rmem_max, m.rmem_max as f64)
        .metric(metric::wmem_max, m.wmem_max as f64);
    let intact = s.received == params.bytes && s.first_mismatch.is_none();
    let observed = match s.first_mismatch {
        Some(at) => format!("{} bytes; first wrong byte at {at}", s.received),
        None => format!("{} bytes, all as written", s.received),
    };
    outcome.checks.push(Check::new(
        "bytes_intact",
        format!("{} bytes, identical to what was written", params.bytes),
        observed,
        intact,
        "TCP delivers every byte in order whatever the read size and buffer sizes",
    ));
    if let Some(mss) = m.mss {
        outcome.metric(metric::mss, f64::from(mss));
    }
    let mbit = |bytes: u64| (bytes as f64 * 8.0 / secs / 1e6 * 10.0).round() / 10.0;
    if let Some(wire) = m.wire_bytes {
        outcome.metric(metric::wire_mbit_s, mbit(wire));
    }
    // Judged against the rate the parameters asked for, so a case that sent nothing fails.
    if let Some(rate) = params.link_spec().ok().and_then(|spec| spec.rate()) {
        let share = link::rate_share_pct(s.received, s.elapsed_at_eof, rate);
        outcome
            .key_metric(metric::throughput_mbit_s, mbit(s.received))
            .key_metric(metric::rate_share, (share * 10.0).round() / 10.0);
        outcome.checks.push(link::rate_check(rate, s.received, m.wire_bytes, s.elapsed_at_eof));
    }
    outcome.observations.link = m.link.clone();
    outcome.observations.proxy = m.proxy.clone();
    outcome
}
