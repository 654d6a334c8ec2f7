//! `framing-throughput`: every framing strategy on the same workload, over real loopback
//! TCP against a reference server — throughput, latency percentiles, CPU time, and
//! whether every message arrived intact and in order — and ping-pong over UDP, where a
//! datagram with no reply in time is counted lost.
//!
//! With `link=veth` the workload crosses a veth pair between two private namespaces (an
//! MTU, optionally a tbf `rate`: bulk mode must then deliver within 10% of it); with
//! `--peer-cmd` the reference server runs in `socklab agent` on another host, and its
//! counters (the sink's verification in bulk mode) and CPU time come back into the report.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use socklab_harness::check::Check;
use socklab_harness::framing::{Endian, FramingStrategy, HeaderWidth, LengthPrefixedCodec};
use socklab_harness::impair::spec::{check_tcp_text, check_udp_text};
use socklab_harness::impair::{
    Impairment, ProxyObservation, RelayConfig, TcpRelay, UdpRelay, start_in_front,
};
use socklab_harness::link::LinkKind;
use socklab_harness::link::{self, Link, LinkSpec, PeerPath};
use socklab_harness::metrics::CpuTime;
use socklab_harness::net::tcp_maxseg;
use socklab_harness::params::{Invalid, Named, ParamSpec, UnknownName};
use socklab_harness::peer::agent::{RemoteAgent, RoleObservation, RoleSpec};
use socklab_harness::peer::udp_client::check_fits_datagram;
use socklab_harness::peer::{
    Behaviour, Flavour, Mode, PeerError, Server, ServerConfig, Transport, Workload, WorkloadResult,
    run_workload, run_workload_on,
};
use socklab_harness::report::{LatencyObservation, LinkRecord, MetricSpec};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario, TableSpec};
use socklab_harness::shared_params;
use tokio::net::{TcpSocket, TcpStream};

use crate::experiment::run_blocking;

/// The scenario; see the module docs.
pub struct FramingThroughput;

/// Framing names this scenario accepts: every name of [`FramingStrategy::NAMES`] (what
/// `socklab serve --framing` takes), then `fixed` for records of exactly `message_size`
/// bytes (`fixed:N` elsewhere). Built from `NAMES` when compiled, so the two cannot drift.
pub const FRAMINGS: &[&str] = &names_and_fixed();

const fn names_and_fixed() -> [&'static str; FramingStrategy::NAMES.len() + 1] {
    let mut names = ["fixed"; FramingStrategy::NAMES.len() + 1];
    let mut i = 0;
    while i < FramingStrategy::NAMES.len() {
        names[i] = FramingStrategy::NAMES[i];
        i += 1;
    }
    names
}

/// The `framing` parameter: one of [`FRAMINGS`], read and written as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A strategy of [`FramingStrategy::NAMES`].
    Strategy(FramingStrategy),
    /// `fixed`: records of exactly `message_size` bytes.
    Fixed,
}

impl Framing {
    /// The strategy that frames messages of `message_size` bytes.
    pub fn strategy(self, message_size: u64) -> FramingStrategy {
        match self {
            Framing::Strategy(strategy) => strategy,
            Framing::Fixed => FramingStrategy::FixedSize(message_size as usize),
        }
    }
}

impl Named for Framing {
    const NAMES: &'static [&'static str] = FRAMINGS;
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Framing::Strategy(strategy) => strategy.fmt(f),
            Framing::Fixed => f.write_str("fixed"),
        }
    }
}

impl FromStr for Framing {
    type Err = UnknownName;

    /// A name of [`FRAMINGS`]; not `fixed:N`, whose size is `message_size` here.
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        let unknown = || UnknownName { what: "framing", input: s.to_string(), valid: FRAMINGS.to_vec() };
        match s {
            "fixed" => Ok(Framing::Fixed),
            _ if FramingStrategy::NAMES.contains(&s) => {
                s.parse().map(Framing::Strategy).map_err(|_| unknown())
            }
            _ => Err(unknown()),
        }
    }
}

impl Serialize for Framing {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Framing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

const MIB: f64 = 1024.0 * 1024.0;

socklab_harness::params! {
    /// Parameters of `framing-throughput`.
    pub struct Params {
        /// framing strategy (fixed = records of exactly message_size bytes)
        framing: Framing = Framing::Strategy(U32BE) => ParamSpec::choice::<Framing>(),
        /// payload bytes per message (16 carry the sequence number and checksum)
        message_size: u64 = 256 => ParamSpec::int(16, 1 << 20).unit("bytes"),
        /// ping-pong (1 outstanding), pipelined (window), bulk (one-way into a sink), open-loop (fixed
        /// rate)
        mode: Mode = Mode::Pipelined => ParamSpec::choice::<Mode>(),
        /// reference server: tokio, threaded (thread per connection), sequential
        flavour: Flavour => shared_params::FLAVOUR,
        /// how long the client sends
        duration_ms: u64 = 100 => ParamSpec::int(10, 60_000).unit("ms"),
        /// most messages the client sends
        max_messages: u64 = 1_000_000 => ParamSpec::int(1, 100_000_000),
        /// pipelined: messages outstanding at once
        window: u64 = 16 => ParamSpec::int(1, 4096),
        /// open-loop: messages per second; latency counts from each intended send time
        rate: u64 = 5_000 => ParamSpec::int(1, 1_000_000).unit("messages/s"),
        /// TCP_NODELAY on the client socket (the reference server always sets it on its own)
        nodelay: bool = true => ParamSpec::bool(),
        /// a seeded relay between client and server; over TCP it splits, merges, delays, limits, stalls
        /// or resets the stream (socklab proxy's --split, --merge, ...), over UDP it loses, duplicates,
        /// reorders or delays datagrams (loss=0.1, ...); the case seed replays it
        impair: String = shared_params::NO_IMPAIRMENT.into() => shared_params::IMPAIR,
        link: LinkKind => shared_params::LINK,
        mtu: u64 = shared_params::DEFAULT_MTU => shared_params::MTU,
        /// link=veth: a tbf qdisc on both ends' egress at this rate; none for no limit (`rate` is
        /// this scenario's open-loop message rate, so the link's rate has its own name)
        link_rate: String = shared_params::NO_RATE.into() => shared_params::RATE,
        delay_ms: u64 = 0 => shared_params::DELAY_MS,
        /// tcp, or udp: one framed message per datagram, ping-pong mode only, a request with no reply
        /// within udp_timeout_ms counted lost
        transport: Transport => ParamSpec::choice::<Transport>(),
        /// udp: how long each request waits for its reply before it counts as lost
        udp_timeout_ms: u64 = 200 => ParamSpec::int(1, 60_000).unit("ms"),
    }
}

socklab_harness::model::metrics! {
    /// payload delivered per second in Mbit/s, as link rates are given (cases with a link_rate)
    throughput_mbit_s: MbitPerSec, Higher;
    /// payload delivered as a share of the link's rate (cases with a link_rate; bulk mode is
    /// checked against it)
    rate_share: Percent, Higher;
    /// link=veth: frames the client's end sent per second (its /proc/net/dev byte counter, headers
    /// included)
    wire_mbit_s: MbitPerSec, Neither;
    /// CPU time (user + system) of the socklab agent on the other host while the server ran
    /// (--peer-cmd); absent otherwise
    peer_cpu_ms: Millis, Lower;
    /// payload bytes of a full segment on the connection (TCP_MAXSEG), from the client
    mss: Bytes, Neither;
    /// payload delivered per second
    throughput_mib_s: MibPerSec, Higher;
    /// messages delivered per second
    messages_per_s: PerSec, Higher;
    /// messages the client sent
    sent: Count, Neither;
    /// messages whose bytes all arrived
    delivered: Count, Higher;
    /// received frames that failed verification
    corrupted: Count, Lower;
    /// intact frames out of sequence (udp: replies that came after their request was counted lost,
    /// or twice)
    out_of_order: Count, Lower;
    /// udp: requests with no intact reply within udp_timeout_ms
    lost: Count, Lower;
    /// ± half width of the 95% interval of the mean throughput, from the case's ~10 intervals
    /// (absent under 3)
    throughput_ci95: Percent, Neither;
    /// ping-pong: median round trip, one message outstanding
    rtt_p50: Micros, Lower;
    /// ping-pong: 90th percentile round trip
    rtt_p90: Micros, Lower;
    /// ping-pong: 99th percentile round trip
    rtt_p99: Micros, Lower;
    /// ping-pong: 99.9th percentile round trip
    rtt_p999: Micros, Lower;
    /// ping-pong: slowest round trip
    rtt_max: Micros, Lower;
    /// pipelined: median time from a message's write to its reply with `window` outstanding (round
    /// trip + queueing)
    reply_p50: Micros, Lower;
    /// pipelined: 90th percentile write-to-reply time
    reply_p90: Micros, Lower;
    /// pipelined: 99th percentile write-to-reply time
    reply_p99: Micros, Lower;
    /// pipelined: 99.9th percentile write-to-reply time
    reply_p999: Micros, Lower;
    /// pipelined: slowest write-to-reply time
    reply_max: Micros, Lower;
    /// open-loop: median time from a message's intended send time to its reply (coordinated
    /// omission corrected)
    response_p50: Micros, Lower;
    /// open-loop: 90th percentile response time
    response_p90: Micros, Lower;
    /// open-loop: 99th percentile response time
    response_p99: Micros, Lower;
    /// open-loop: 99.9th percentile response time
    response_p999: Micros, Lower;
    /// open-loop: slowest response time
    response_max: Micros, Lower;
    /// messages sent per second of sending
    achieved_rate: PerSec, Higher;
    /// user CPU time of the whole socklab process during the workload: this case's client and
    /// server (earlier cases' work is stopped first)
    cpu_user_ms: Millis, Lower;
    /// CPU time (user + system) of a --target-cmd server's processes during the workload; absent
    /// otherwise
    target_cpu_ms: Millis, Lower;
    /// reads the impairment relay made, both directions (absent without impair)
    proxy_reads: Count, Neither;
    /// writes the impairment relay made, both directions: more than proxy_reads when it split,
    /// fewer when it merged
    proxy_writes: Count, Neither;
    /// system CPU time of the whole socklab process during the workload, as cpu_user_ms
    cpu_sys_ms: Millis, Lower;
}

/// The default framing: a 4-byte big-endian length.
const U32BE: FramingStrategy =
    FramingStrategy::LengthPrefixed { width: HeaderWidth::U32, endian: Endian::Big, signed: false };

impl Params {
    fn strategy(&self) -> FramingStrategy {
        self.framing.strategy(self.message_size)
    }
}

impl Scenario for FramingThroughput {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "framing-throughput";
    const SUMMARY: &'static str =
        "every framing strategy on one workload: throughput, latency percentiles, CPU, integrity";
    const EXPLANATION: &'static str = "\
What it shows: the same stream of self-checking messages (each carries a sequence number \
and a checksum) sent over loopback TCP with each framing strategy, against a reference \
server, in one of four modes: ping-pong (one message outstanding: latency), pipelined (a \
window outstanding), bulk (one way into a sink: throughput) and open-loop (a fixed rate; \
latency counted from each message's intended send time, so a stall shows in every message \
it delayed instead of in one sample — the coordinated-omission correction wrk2 makes). \
Latency is named by what it measures: rtt_* is a true round trip (ping-pong, one message \
outstanding); reply_* in pipelined mode is the time from a write to its reply with a window \
of messages outstanding, so it is mostly queueing behind the window, not a round trip; \
response_* in open loop counts from the intended send time. The ping-pong client blocks in \
recv on a thread of its own (one send and one recv per round trip), except against the \
in-process tokio server, whose runtime threads it shares as tasks. throughput_ci95 is the ± half \
width of the 95% interval of the mean throughput over the case's intervals (a tenth of the \
duration each): a ranking of strategies whose figures differ by less than it is noise.

Why the strategies differ: a length prefix (u32be, varint) lets the receiver cut a frame \
without looking at its bytes, and decode it zero-copy; a delimiter (line, COBS) must scan \
every byte, and COBS also copies to unstuff; a JSON header parses text per message; fixed \
records need nothing but a fixed size. Stop-and-wait announces each length and waits for \
an ACK before the body, so every message costs a round trip: its rate is bound by latency, \
not bandwidth. Raw (no framing) keeps every byte but not the messages: a read returns \
whatever is buffered, so under load most \"messages\" it yields are glued or cut — the \
sticky-packet problem, counted in `corrupted`.

What to take from it: any real framing delivers every message intact; pick by payload \
(delimiters need a byte that never occurs), by cost per message at your size, and never \
by 'it worked on my machine' with raw reads. CPU time is the whole process — client and \
server together.

Under impair (a seeded relay that splits and merges the stream, e.g. impair=random) every \
decoder sees frames cut at every place and glued to their neighbours over real sockets: \
every framing but raw must still deliver every message intact. Throughput and latency \
then measure the relay's holds and gaps, not the framing.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const TABLE: Option<TableSpec> = Some(TableSpec {
        rows: "framing",
        columns: "message_size",
        cells: &[
            "throughput_mib_s",
            "throughput_ci95",
            "rtt_p50",
            "rtt_p99",
            "reply_p50",
            "reply_p99",
            "response_p50",
            "response_p99",
        ],
    });
    const SWEEP: &'static [(&'static str, &'static str)] = &[
        ("framing", "raw,line,cobs,u32be,u32le,varint,json-header,fixed,stop-and-wait"),
        ("message_size", "16,256,4096,65536"),
    ];

    const EXTERNAL_TARGET: bool = true;

    fn validate_target(params: &Params) -> Result<(), Invalid> {
        if params.link != LinkKind::Loopback {
            return Err(Invalid::new(
                "link",
                "link=veth runs both ends in namespaces of its own; a target is reached from this one \
                 (use link=loopback with --target)",
            ));
        }
        Ok(())
    }

    const REMOTE_PEER: bool = true;

    fn target_transport(params: &Params) -> Transport {
        params.transport
    }

    fn validate_peer(params: &Params) -> Result<(), Invalid> {
        socklab_harness::scenario::peer_link(params.link)?;
        match params.transport {
            Transport::Tcp => Ok(()),
            other => Err(Invalid::new(
                "transport",
                format!(
                    "transport={other} runs against a server on this host; --peer-cmd runs TCP workloads"
                ),
            )),
        }
    }

    fn validate(params: &Params) -> Result<(), Invalid> {
        let strategy = params.strategy();
        match params.transport {
            Transport::Tcp => {
                check_tcp_text(&params.impair)?;
                params.link_spec()?.relay_impairment(&params.impair)?;
            }
            Transport::Udp => check_udp(params, strategy)?,
        }
        if let FramingStrategy::LengthPrefixed { width, endian, signed } = strategy {
            // What the length field can hold (u8: 255, i16: 32767, ...).
            let most = LengthPrefixedCodec::new(width, endian).signed(signed).effective_max_frame_len();
            if params.message_size > most {
                return Err(Invalid::new(
                    "message_size",
                    format!(
                        "{} carries at most {most} bytes per frame; message_size is {}",
                        params.framing, params.message_size
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let (framing, mode, flavour, transport) =
            (params.strategy(), params.mode, params.flavour, params.transport);
        let spec = params.link_spec()?;
        let impair = spec.relay_impairment(&params.impair)?;
        let workload = workload(&params, &ctx);
        let behaviour = workload.server;
        if let Some(agent) = ctx.peer.clone() {
            if transport == Transport::Udp {
                return Err(CaseError::Invalid(Invalid::new(
                    "transport",
                    "transport=udp runs against a server on this host; --peer-cmd runs TCP workloads",
                )));
            }
            return run_with_agent(&params, workload, flavour, &impair, agent, &ctx).await;
        }
        // Making a veth link runs `ip` a few times: off the async threads.
        let link = run_blocking("the link set-up", move || Ok(Link::open(spec)?)).await?;
        // The reference server, unless the case runs against a target (which must echo).
        let config = ServerConfig { transport, flavour, behaviour, framing, ..ServerConfig::default() };
        let server = match (&ctx.target, &link) {
            (Some(_), _) => None,
            (None, Link::Loopback) => Some(Server::start(config)?),
            (None, _) => Some(Server::start_on(config, link.tcp_listener(|_| Ok(()))?)?),
        };
        let addr = match (&server, &ctx.target) {
            (Some(server), _) => server.addr(),
            (None, Some(target)) => target.addr,
            (None, None) => return Err(CaseError::Protocol("no server to run against".into())),
        };
        // An impairment relay in front of whichever server it is, seeded by the case; on a
        // veth link in the client's namespace, so its own connection crosses the link.
        let config = RelayConfig { record_limit: PROXY_RECORD_LIMIT, ..RelayConfig::default() };
        let relay = match transport {
            Transport::Tcp => link.start_relay(addr, &impair, ctx.seed, config)?.map(CaseRelay::Tcp),
            Transport::Udp => {
                start_in_front::<UdpRelay>(addr, &impair, ctx.seed, config)?.map(CaseRelay::Udp)
            }
        };
        let addr = relay.as_ref().map_or(addr, CaseRelay::addr);
        let target_process = ctx.target.as_ref().and_then(|t| t.process.clone());
        let target_cpu_before = target_process.as_ref().map(|p| p.cpu_since_ready());
        let counters_before = link.client_counters()?;
        let cpu_before = CpuTime::now();
        let (result, mss) = match transport {
            Transport::Tcp => {
                let (stream, mss) = connect(&link, addr).await?;
                (run_workload_on(stream, addr, &workload).await?, mss)
            }
            Transport::Udp => (run_workload(addr, &workload).await?, None),
        };
        let cpu = CpuTime::now().since(cpu_before);
        let target_cpu =
            target_process.zip(target_cpu_before).map(|(p, before)| p.cpu_since_ready() - before);
        let wire_bytes = match (counters_before, link.client_counters()?) {
            (Some(before), Some(after)) => Some(after.since(&before).tx_bytes),
            _ => None,
        };
        let delivery = Delivery::of(mode, server.as_ref(), &result, params.message_size);
        let proxy = relay.map(|relay| relay.observation());
        // Through a relay the client's connection ends at the relay, so its MSS says
        // nothing about the link.
        let mss = mss.filter(|_| proxy.is_none());
        let record = (!matches!(link, Link::Loopback)).then(|| LinkRecord { mss, ..link.record() });
        Ok(Measured {
            result,
            delivery,
            cpu,
            target_cpu,
            peer_cpu: None,
            wire_bytes,
            link: record,
            mss,
            proxy,
        })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        let mode = params.mode;
        let mut outcome =
            outcome(params, params.strategy(), mode, &measured.result, &measured.delivery, measured.cpu);
        if let Some(cpu) = measured.target_cpu {
            outcome.metric(metric::target_cpu_ms, round1(cpu.as_secs_f64() * 1e3));
        }
        add_link_layer(&mut outcome, params, mode, &measured);
        if let Some(proxy) = measured.proxy {
            let both = |f: fn(&socklab_harness::impair::ProxyDirection) -> u64| {
                proxy.connections.iter().map(|c| f(&c.up) + f(&c.down)).sum::<u64>() as f64
            };
            outcome
                .metric(metric::proxy_reads, both(|d| d.reads_in))
                .metric(metric::proxy_writes, both(|d| d.writes_out));
            outcome.observations.proxy = Some(proxy);
        }
        outcome
    }
}

/// What a case measured: the client's workload result, what the receiving end verified,
/// the process's CPU time.
#[derive(Default)]
pub struct Measured {
    result: WorkloadResult,
    delivery: Delivery,
    cpu: CpuTime,
    /// CPU time of a `--target-cmd` server's processes during the workload.
    target_cpu: Option<Duration>,
    /// CPU time of the agent that ran the server (`--peer-cmd`).
    peer_cpu: Option<Duration>,
    /// Bytes of frames the client's veth end sent during the workload.
    wire_bytes: Option<u64>,
    /// The link, when not plain loopback.
    link: Option<LinkRecord>,
    /// `TCP_MAXSEG` of the client's connection.
    mss: Option<u32>,
    /// What the impairment relay did, when there was one.
    proxy: Option<ProxyObservation>,
}

/// The impairment relay of either transport.
enum CaseRelay {
    Tcp(TcpRelay),
    Udp(UdpRelay),
}

impl CaseRelay {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            CaseRelay::Tcp(relay) => relay.addr(),
            CaseRelay::Udp(relay) => relay.addr(),
        }
    }

    fn observation(&self) -> ProxyObservation {
        match self {
            CaseRelay::Tcp(relay) => relay.observation(),
            CaseRelay::Udp(relay) => relay.observation(),
        }
    }
}

/// The client's workload: the parameters, with a sink behind bulk and an echo otherwise.
fn workload(params: &Params, ctx: &CaseContext) -> Workload {
    let reply_timeout = match params.transport {
        Transport::Tcp => Duration::from_secs(5),
        Transport::Udp => Duration::from_millis(params.udp_timeout_ms),
    };
    Workload {
        transport: params.transport,
        mode: params.mode,
        framing: params.strategy(),
        message_size: params.message_size as usize,
        duration: Duration::from_millis(params.duration_ms),
        max_messages: params.max_messages,
        window: params.window as usize,
        rate_per_s: params.rate as f64,
        server: if params.mode == Mode::Bulk { Behaviour::Sink } else { Behaviour::Echo },
        reply_timeout: reply_timeout.min(ctx.timeout),
        nodelay: params.nodelay,
        // Against the in-process tokio server, an async client shares the runtime's
        // threads with it (fewer wake-ups); against any other server it blocks in recv.
        blocking_ping_pong: ctx.target.is_some() || ctx.peer.is_some() || params.flavour != Flavour::Tokio,
        cancel: ctx.cancel.clone(),
        ..Workload::default()
    }
}

/// What UDP cases take: ping-pong, a framing that fits a datagram, UDP impairments.
fn check_udp(params: &Params, strategy: FramingStrategy) -> Result<(), Invalid> {
    if params.mode != Mode::PingPong {
        return Err(Invalid::new(
            "mode",
            format!(
                "transport=udp runs mode=ping-pong only (one datagram outstanding, each lost one timed out); mode is {}",
                params.mode
            ),
        ));
    }
    if params.link != LinkKind::Loopback {
        return Err(Invalid::new(
            "link",
            "transport=udp runs on link=loopback; link=veth carries the TCP workloads",
        ));
    }
    if strategy == FramingStrategy::StopAndWait {
        return Err(Invalid::new("framing", "stop-and-wait needs a stream: use transport=tcp"));
    }
    // The framed message must fit one datagram, header and escaping included.
    check_fits_datagram(strategy, params.message_size as usize)
        .map_err(|e| Invalid::new("message_size", e.to_string()))?;
    check_udp_text(&params.impair)?;
    // A cut reply cannot be told from one the peer damaged, and the check fails on those.
    if Impairment::parse(&params.impair).is_ok_and(|spec| spec.truncate.is_some()) {
        return Err(Invalid::new(
            "impair",
            "impair: truncate cuts replies, which ping-pong counts as damaged; over udp use loss, \
             duplicate, reorder or delay (udp-truncation shows what truncation does)",
        ));
    }
    Ok(())
}

impl Params {
    /// The link; a refused rate names `link_rate`, this scenario's name for the link's `rate`.
    fn link_spec(&self) -> Result<LinkSpec, Invalid> {
        LinkSpec::parse(self.link, self.mtu, &self.link_rate, self.delay_ms).map_err(|e| match e.param {
            "rate" => Invalid { param: "link_rate", ..e },
            _ => e,
        })
    }
}

/// A connection to `addr` from where the link puts the client; with its `TCP_MAXSEG`.
async fn connect(link: &Link, addr: SocketAddr) -> Result<(TcpStream, Option<u32>), CaseError> {
    let stream = match link {
        Link::Veth(_) => {
            let socket = link.tcp_client_socket()?;
            socket.set_nonblocking(true).context("make the client socket non-blocking")?;
            TcpSocket::from_std_stream(socket.into()).connect(addr).await
        }
        Link::Loopback | Link::Peer(_) => TcpStream::connect(addr).await,
    }
    .map_err(|error| CaseError::Peer(PeerError::Connect { addr, error }))?;
    let mss = tcp_maxseg(&stream).ok();
    Ok((stream, mss))
}

/// The same workload against a reference server in `socklab agent` on another host.
async fn run_with_agent(
    params: &Params,
    workload: Workload,
    flavour: Flavour,
    impair: &Impairment,
    agent: Arc<RemoteAgent>,
    ctx: &CaseContext,
) -> Result<Measured, CaseError> {
    let role = RoleSpec::Server {
        framing: workload.framing.to_string(),
        behaviour: workload.server.name().to_string(),
        flavour: flavour.name().to_string(),
    };
    let starter = agent.clone();
    let role = run_blocking("the agent", move || Ok(starter.start_role(role)?)).await?;
    let link = Link::Peer(PeerPath::toward(role.addr.ip()));
    let config = RelayConfig { record_limit: PROXY_RECORD_LIMIT, ..RelayConfig::default() };
    let relay = link.start_relay(role.addr, impair, ctx.seed, config)?;
    let addr = relay.as_ref().map_or(role.addr, TcpRelay::addr);
    let cpu_before = CpuTime::now();
    let (stream, mss) = connect(&link, addr).await?;
    // Through a relay the connection ends at the relay: its MSS says nothing of the path.
    let mss = mss.filter(|_| relay.is_none());
    let result = run_workload_on(stream, addr, &workload).await;
    let cpu = CpuTime::now().since(cpu_before);
    // Stopped whatever the workload did, so the agent does not keep the server.
    let cancel = ctx.cancel.clone();
    // The agent's answer is looked at after the workload's result: that error comes first.
    let stopped =
        run_blocking("the agent", move || Ok(agent.stop_role(role.number, Duration::ZERO, &cancel))).await?;
    let result = result?;
    let RoleObservation::Server { bytes, intact, corrupted, out_of_order, cpu: peer_cpu, .. } = stopped?
    else {
        return Err(CaseError::Protocol("the agent answered with another role's observations".into()));
    };
    let delivery = if workload.mode == Mode::Bulk {
        Delivery {
            delivered: bytes / params.message_size,
            intact,
            corrupted,
            out_of_order,
            bytes,
            verified: true,
        }
    } else {
        Delivery::from_client(&result)
    };
    Ok(Measured {
        result,
        delivery,
        cpu,
        target_cpu: None,
        peer_cpu: Some(peer_cpu.total()),
        wire_bytes: None,
        link: Some(LinkRecord { mss, ..link.record() }),
        mss,
        proxy: relay.map(|relay| relay.observation()),
    })
}

/// The link's figures: its rate, and the check that bulk mode reached it.
fn add_link_layer(outcome: &mut CaseOutcome, params: &Params, mode: Mode, measured: &Measured) {
    outcome.observations.link = measured.link.clone();
    if let Some(mss) = measured.mss {
        outcome.metric(metric::mss, f64::from(mss));
    }
    if let Some(cpu) = measured.peer_cpu {
        outcome.metric(metric::peer_cpu_ms, round1(cpu.as_secs_f64() * 1e3));
    }
    let elapsed = measured.result.elapsed;
    let mbit = |bytes: u64| round1(bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6);
    if let Some(wire) = measured.wire_bytes {
        outcome.metric(metric::wire_mbit_s, mbit(wire));
    }
    // Judged against the rate the parameters asked for, so a case that sent nothing fails.
    if let Some(rate) = params.link_spec().ok().and_then(|spec| spec.rate()) {
        let bytes = measured.delivery.bytes;
        outcome
            .key_metric(metric::throughput_mbit_s, mbit(bytes))
            .key_metric(metric::rate_share, round1(link::rate_share_pct(bytes, elapsed, rate)));
        // Only bulk keeps the link full; the other modes wait for replies.
        if mode == Mode::Bulk {
            outcome.checks.push(link::rate_check(rate, bytes, measured.wire_bytes, elapsed));
        }
    }
}

/// Relay writes and reads listed per direction in the report (the rest are counted).
const PROXY_RECORD_LIMIT: usize = 200;

/// What arrived, as verified by whichever end received it.
#[derive(Default)]
struct Delivery {
    delivered: u64,
    intact: u64,
    corrupted: u64,
    out_of_order: u64,
    bytes: u64,
    /// Whether each message was checked (by the client, or socklab's own sink); not for
    /// bulk against a target, which only shows the target read every byte.
    verified: bool,
}

impl Delivery {
    /// Bulk as the sink verified it (against a target, as the client sent it); the other
    /// modes as the client verified the replies.
    fn of(mode: Mode, sink: Option<&Server>, result: &WorkloadResult, message_size: u64) -> Self {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        match (mode, sink) {
            (Mode::Bulk, Some(server)) => {
                let stats = server.stats();
                Delivery {
                    delivered: load(&stats.bytes) / message_size,
                    intact: load(&stats.intact),
                    corrupted: load(&stats.corrupted),
                    out_of_order: load(&stats.out_of_order),
                    bytes: load(&stats.bytes),
                    verified: true,
                }
            }
            // A target sink took every byte (it closed only after reading to the end),
            // but what it found in them only it knows.
            (Mode::Bulk, None) => Delivery {
                delivered: result.sent,
                bytes: result.throughput.bytes,
                verified: false,
                ..Delivery::default()
            },
            _ => Delivery::from_client(result),
        }
    }

    /// As the client verified the replies.
    fn from_client(result: &WorkloadResult) -> Self {
        Delivery {
            delivered: result.replied,
            intact: result.intact,
            corrupted: result.corrupted,
            out_of_order: result.out_of_order,
            bytes: result.throughput.bytes,
            verified: true,
        }
    }
}

fn outcome(
    params: &Params,
    framing: FramingStrategy,
    mode: Mode,
    result: &WorkloadResult,
    delivery: &Delivery,
    cpu: CpuTime,
) -> CaseOutcome {
    let seconds = result.elapsed.as_secs_f64().max(1e-9);
    let mut outcome = CaseOutcome::default();
    outcome
        .key_metric(metric::throughput_mib_s, round1(delivery.bytes as f64 / MIB / seconds))
        .metric(metric::messages_per_s, (delivery.delivered as f64 / seconds).round())
        .metric(metric::sent, result.sent as f64)
        .metric(metric::delivered, delivery.delivered as f64)
        .key_metric(metric::corrupted, delivery.corrupted as f64)
        .metric(metric::out_of_order, delivery.out_of_order as f64);
    if let Some(spread) = result.throughput.interval_spread() {
        outcome.metric(metric::throughput_ci95, round1(spread.ci95_relative * 100.0));
    }
    if let Some(kind) = LatencyKind::of(framing, mode, params.window)
        && result.latency.count() > 0
    {
        let s = result.latency.summary();
        let [p50, p90, p99, p999, max] = kind.percentiles;
        outcome
            .key_metric(p50, micros(s.p50_ns))
            .metric(p90, micros(s.p90_ns))
            .key_metric(p99, micros(s.p99_ns))
            .metric(p999, micros(s.p999_ns))
            .metric(max, micros(s.max_ns));
        outcome.observations.latency =
            Some(LatencyObservation { of: kind.meaning, summary: s, histogram: result.latency.to_base64() });
    }
    outcome
        .metric(metric::achieved_rate, result.achieved_rate.round())
        .metric(metric::cpu_user_ms, round1(cpu.user.as_secs_f64() * 1e3))
        .metric(metric::cpu_sys_ms, round1(cpu.system.as_secs_f64() * 1e3));
    outcome.observations.throughput = Some(result.throughput.clone());
    let udp = params.transport == Transport::Udp;
    if udp {
        outcome.key_metric(metric::lost, result.lost as f64);
    }
    outcome.checks.push(if udp {
        udp_requests_answered(params, result, delivery)
    } else if !delivery.verified {
        target_took_everything(result, delivery)
    } else if framing == FramingStrategy::Raw {
        bytes_intact(params, result, delivery)
    } else {
        messages_intact(result, delivery)
    });
    outcome
}

/// UDP ping-pong: every request was answered by an intact reply or counted lost after the
/// timeout, none damaged, and at least one answered. Loss is counted, not failed: a
/// datagram may be lost (an impairment relay, a full buffer), and the case says how many.
fn udp_requests_answered(params: &Params, result: &WorkloadResult, d: &Delivery) -> Check {
    let name = "every_request_answered_or_counted_lost";
    if result.sent == 0 {
        return Check::nothing_to_judge(
            name,
            "at least one request sent, each answered intact or counted lost",
            "0 requests sent",
        );
    }
    let passed = d.intact >= 1 && d.intact + result.lost == result.sent && d.corrupted == 0;
    Check::new(
        name,
        format!(
            "{} requests: each answered intact or counted lost after {} ms, at least one answered, 0 corrupted",
            result.sent, params.udp_timeout_ms
        ),
        format!(
            "{} answered intact, {} lost, {} corrupted, {} late or duplicate",
            d.intact, result.lost, d.corrupted, d.out_of_order
        ),
        passed,
        if passed {
            "every round trip was timed or its loss counted; lost requests are not in the percentiles"
        } else if d.intact == 0 {
            "no request was answered: nothing echoes at that address, or every datagram was lost"
        } else {
            "replies came back damaged: the framing or a peer is broken"
        },
    )
}

/// Bulk against a target: every message sent was read, since the target closed only at
/// the end of the stream. What was in them the target's own counters say (`socklab serve
/// --behaviour sink` verifies each message and prints its counts when stopped).
fn target_took_everything(result: &WorkloadResult, d: &Delivery) -> Check {
    let name = "target_read_every_byte";
    if result.sent == 0 {
        return Check::nothing_to_judge(
            name,
            "at least one message sent, all read by the target",
            "0 messages sent",
        );
    }
    Check::new(
        name,
        format!("the target read all {} messages ({} bytes) and closed", result.sent, d.bytes),
        format!("{} messages sent, the target closed after reading to the end", d.delivered),
        d.delivered == result.sent,
        "not verified here: the target's own counters say what arrived intact",
    )
}

/// Every real framing: messages were sent, and every one was delivered, intact, in order.
fn messages_intact(result: &WorkloadResult, d: &Delivery) -> Check {
    let name = "every_message_intact_in_order";
    let expected = format!("{} of {} intact, 0 corrupted, 0 out of order", result.sent, result.sent);
    if result.sent == 0 {
        return Check::nothing_to_judge(name, "at least one message sent, all intact", "0 messages sent");
    }
    let passed =
        d.delivered == result.sent && d.intact == result.sent && d.corrupted == 0 && d.out_of_order == 0;
    Check::new(
        name,
        expected,
        format!("{} intact, {} corrupted, {} out of order", d.intact, d.corrupted, d.out_of_order),
        passed,
        if passed {
            "the framing found every message boundary again, whatever the reads"
        } else {
            "messages were lost, damaged or reordered: the framing or a peer is broken"
        },
    )
}

/// Raw: bytes were sent and all arrived; how many "messages" (reads) were not whole
/// messages is reported in `corrupted`.
fn bytes_intact(params: &Params, result: &WorkloadResult, d: &Delivery) -> Check {
    let name = "stream_bytes_intact";
    if result.sent == 0 {
        return Check::nothing_to_judge(
            name,
            "at least one message sent, every byte delivered",
            "0 messages sent",
        );
    }
    let expected = result.sent * params.message_size;
    Check::new(
        name,
        format!("{expected} bytes"),
        format!(
            "{} bytes; {} of {} reads were not exactly one message",
            d.bytes,
            d.corrupted,
            d.corrupted + d.intact
        ),
        d.bytes == expected,
        "without framing TCP still delivers every byte in order; only the message boundaries are lost",
    )
}

/// What a mode's latency samples measure, and the metric names they go under.
struct LatencyKind {
    /// Its percentiles: p50, p90, p99, p99.9 and max (`rtt_*`, `reply_*` or `response_*`).
    percentiles: [MetricSpec; 5],
    /// In words, for the report.
    meaning: String,
}

impl LatencyKind {
    /// `None` for bulk, which has no replies.
    fn of(framing: FramingStrategy, mode: Mode, window: u64) -> Option<Self> {
        // Stop-and-wait sends one message at a time whatever the mode asks.
        let one_at_a_time =
            mode == Mode::PingPong || (framing == FramingStrategy::StopAndWait && mode == Mode::Pipelined);
        use metric::*;
        let (percentiles, meaning) = match mode {
            Mode::Bulk => return None,
            Mode::OpenLoop => (
                [response_p50, response_p90, response_p99, response_p999, response_max],
                "response time: from each message's intended send time to its reply (coordinated omission corrected)"
                    .to_string(),
            ),
            _ if one_at_a_time => {
                ([rtt_p50, rtt_p90, rtt_p99, rtt_p999, rtt_max], "round trip: from the write of a message to its reply, one message outstanding".to_string())
            }
            _ => (
                [reply_p50, reply_p90, reply_p99, reply_p999, reply_max],
                format!(
                    "write-to-reply time with up to {window} messages outstanding: a round trip plus the wait \
                     behind the window (queueing), not a round trip"
                ),
            ),
        };
        Some(LatencyKind { percentiles, meaning })
    }
}

fn micros(nanos: u64) -> f64 {
    round1(nanos as f64 / 1e3)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_framing_name_parses_and_prints_back() {
        for name in FRAMINGS {
            let framing: Framing = name.parse().unwrap();
            assert_eq!(framing.to_string(), *name);
            assert_eq!(serde_json::to_value(framing).unwrap(), *name);
        }
        assert_eq!(FRAMINGS.len(), FramingStrategy::NAMES.len() + 1);
        assert_eq!(FRAMINGS.last(), Some(&"fixed"));
        assert_eq!(Params::default().framing.to_string(), "u32be");
        let fixed: Framing = serde_json::from_str("\"fixed\"").unwrap();
        assert_eq!(fixed.strategy(100), FramingStrategy::FixedSize(100));
        let refused = "fixed:64".parse::<Framing>().unwrap_err();
        assert_eq!(refused.valid, FRAMINGS, "fixed:N is not a name here: message_size sets N");
    }
}
