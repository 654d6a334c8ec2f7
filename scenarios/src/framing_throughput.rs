//! `framing-throughput`: every framing strategy on the same workload, over real loopback
//! TCP against a reference server — throughput, latency percentiles, CPU time, and
//! whether every message arrived intact and in order — and ping-pong over UDP, where a
//! datagram with no reply in time is counted lost.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use socklab_harness::check::Check;
use socklab_harness::framing::{FramingStrategy, LengthPrefixedCodec};
use socklab_harness::impair::{Impairment, ProxyObservation, RelayConfig, TcpRelay, UdpRelay};
use socklab_harness::metric::Better;
use socklab_harness::metrics::CpuTime;
use socklab_harness::params::{ParamError, ParamKind, ParamSpec};
use socklab_harness::peer::{
    Behaviour, Flavour, MessageCodec, Mode, Server, ServerConfig, Transport, Workload, WorkloadResult,
    run_workload,
};
use socklab_harness::report::{LatencyObservation, MetricSpec, Unit};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, Scenario, TableSpec};

use tokio_util::codec::Encoder;

use crate::tcp_coalescing::{IMPAIR_PARAM, check_impair};

/// The scenario; see the module docs.
pub struct FramingThroughput;

/// Framing names this scenario accepts: every name of [`FramingStrategy::NAMES`] (what
/// `socklab serve --framing` takes; a test keeps the two in step), and `fixed` for records
/// of exactly `message_size` bytes (`fixed:N` elsewhere).
pub const FRAMINGS: &[&str] = &[
    "raw",
    "line",
    "cobs",
    "u8",
    "i8",
    "u16be",
    "u16le",
    "i16be",
    "i16le",
    "u32be",
    "u32le",
    "i32be",
    "i32le",
    "u64be",
    "u64le",
    "i64be",
    "i64le",
    "varint",
    "json-header",
    "stop-and-wait",
    "fixed",
];
const MIB: f64 = 1024.0 * 1024.0;

/// Parameters of `framing-throughput`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Framing strategy.
    pub framing: String,
    /// Payload bytes per message.
    pub message_size: u64,
    /// `ping-pong`, `pipelined`, `bulk` or `open-loop`.
    pub mode: String,
    /// Server flavour: `tokio`, `threaded` or `sequential`.
    pub flavour: String,
    /// How long the client sends, in milliseconds.
    pub duration_ms: u64,
    /// Most messages the client sends.
    pub max_messages: u64,
    /// `pipelined`: messages outstanding.
    pub window: u64,
    /// `open-loop`: messages per second.
    pub rate: u64,
    /// See the `nodelay` entry of [`PARAMS`] (the one place that says what it does).
    pub nodelay: bool,
    /// An impairment relay between client and server; see [`IMPAIR_PARAM`].
    pub impair: String,
    /// `tcp`, or `udp` (ping-pong only).
    pub transport: String,
    /// `udp`: how long each request waits for its reply before it counts as lost, in ms.
    pub udp_timeout_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            framing: "u32be".into(),
            message_size: 256,
            mode: "pipelined".into(),
            flavour: "tokio".into(),
            duration_ms: 100,
            max_messages: 1_000_000,
            window: 16,
            rate: 5_000,
            nodelay: true,
            impair: "none".into(),
            transport: "tcp".into(),
            udp_timeout_ms: 200,
        }
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "framing",
        kind: ParamKind::Choice { options: FRAMINGS },
        unit: None,
        doc: "framing strategy (fixed = records of exactly message_size bytes)",
    },
    ParamSpec {
        name: "message_size",
        kind: ParamKind::Integer { min: 16, max: 1 << 20 },
        unit: Some("bytes"),
        doc: "payload bytes per message (16 carry the sequence number and checksum)",
    },
    ParamSpec {
        name: "mode",
        kind: ParamKind::Choice { options: Mode::NAMES },
        unit: None,
        doc: "ping-pong (1 outstanding), pipelined (window), bulk (one-way into a sink), open-loop (fixed rate)",
    },
    ParamSpec {
        name: "flavour",
        kind: ParamKind::Choice { options: Flavour::NAMES },
        unit: None,
        doc: "reference server: tokio, threaded (thread per connection), sequential",
    },
    ParamSpec {
        name: "duration_ms",
        kind: ParamKind::Integer { min: 10, max: 60_000 },
        unit: Some("ms"),
        doc: "how long the client sends",
    },
    ParamSpec {
        name: "max_messages",
        kind: ParamKind::Integer { min: 1, max: 100_000_000 },
        unit: None,
        doc: "most messages the client sends",
    },
    ParamSpec {
        name: "window",
        kind: ParamKind::Integer { min: 1, max: 4096 },
        unit: None,
        doc: "pipelined: messages outstanding at once",
    },
    ParamSpec {
        name: "rate",
        kind: ParamKind::Integer { min: 1, max: 1_000_000 },
        unit: Some("messages/s"),
        doc: "open-loop: messages per second; latency counts from each intended send time",
    },
    ParamSpec {
        name: "nodelay",
        kind: ParamKind::Bool,
        unit: None,
        doc: "TCP_NODELAY on the client socket (the reference server always sets it on its own)",
    },
    ParamSpec {
        name: IMPAIR_PARAM.name,
        kind: IMPAIR_PARAM.kind,
        unit: None,
        doc: "a seeded relay between client and server; over TCP it splits, merges, delays, limits, stalls or resets the stream (socklab proxy's --split, --merge, ...), over UDP it loses, duplicates, reorders, delays or truncates datagrams (loss=0.1, ...); the case seed replays it",
    },
    ParamSpec {
        name: "transport",
        kind: ParamKind::Choice { options: Transport::NAMES },
        unit: None,
        doc: "tcp, or udp: one framed message per datagram, ping-pong mode only, a request with no reply within udp_timeout_ms counted lost",
    },
    ParamSpec {
        name: "udp_timeout_ms",
        kind: ParamKind::Integer { min: 1, max: 60_000 },
        unit: Some("ms"),
        doc: "udp: how long each request waits for its reply before it counts as lost",
    },
];

const METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "throughput_mib_s",
        unit: Unit::MibPerSec,
        better: Better::Higher,
        doc: "payload delivered per second",
    },
    MetricSpec {
        name: "messages_per_s",
        unit: Unit::PerSec,
        better: Better::Higher,
        doc: "messages delivered per second",
    },
    MetricSpec { name: "sent", unit: Unit::Count, better: Better::Neither, doc: "messages the client sent" },
    MetricSpec {
        name: "delivered",
        unit: Unit::Count,
        better: Better::Higher,
        doc: "messages whose bytes all arrived",
    },
    MetricSpec {
        name: "corrupted",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "received frames that failed verification",
    },
    MetricSpec {
        name: "out_of_order",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "intact frames out of sequence (udp: replies that came after their request was counted lost, or twice)",
    },
    MetricSpec {
        name: "lost",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "udp: requests with no intact reply within udp_timeout_ms",
    },
    MetricSpec {
        name: "throughput_ci95",
        unit: Unit::Percent,
        better: Better::Neither,
        doc: "± half width of the 95% interval of the mean throughput, from the case's ~10 intervals (absent under 3)",
    },
    MetricSpec {
        name: "rtt_p50",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "ping-pong: median round trip, one message outstanding",
    },
    MetricSpec {
        name: "rtt_p90",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "ping-pong: 90th percentile round trip",
    },
    MetricSpec {
        name: "rtt_p99",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "ping-pong: 99th percentile round trip",
    },
    MetricSpec {
        name: "rtt_p999",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "ping-pong: 99.9th percentile round trip",
    },
    MetricSpec {
        name: "rtt_max",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "ping-pong: slowest round trip",
    },
    MetricSpec {
        name: "reply_p50",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "pipelined: median time from a message's write to its reply with `window` outstanding (round trip + queueing)",
    },
    MetricSpec {
        name: "reply_p90",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "pipelined: 90th percentile write-to-reply time",
    },
    MetricSpec {
        name: "reply_p99",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "pipelined: 99th percentile write-to-reply time",
    },
    MetricSpec {
        name: "reply_p999",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "pipelined: 99.9th percentile write-to-reply time",
    },
    MetricSpec {
        name: "reply_max",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "pipelined: slowest write-to-reply time",
    },
    MetricSpec {
        name: "response_p50",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "open-loop: median time from a message's intended send time to its reply (coordinated omission corrected)",
    },
    MetricSpec {
        name: "response_p90",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "open-loop: 90th percentile response time",
    },
    MetricSpec {
        name: "response_p99",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "open-loop: 99th percentile response time",
    },
    MetricSpec {
        name: "response_p999",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "open-loop: 99.9th percentile response time",
    },
    MetricSpec {
        name: "response_max",
        unit: Unit::Micros,
        better: Better::Lower,
        doc: "open-loop: slowest response time",
    },
    MetricSpec {
        name: "achieved_rate",
        unit: Unit::PerSec,
        better: Better::Higher,
        doc: "messages sent per second of sending",
    },
    MetricSpec {
        name: "cpu_user_ms",
        unit: Unit::Millis,
        better: Better::Lower,
        doc: "user CPU time of the whole socklab process during the workload: this case's client and server (earlier cases' work is stopped first)",
    },
    MetricSpec {
        name: "target_cpu_ms",
        unit: Unit::Millis,
        better: Better::Lower,
        doc: "CPU time (user + system) of a --target-cmd server's processes during the workload; absent otherwise",
    },
    MetricSpec {
        name: "proxy_reads",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "reads the impairment relay made, both directions (absent without impair)",
    },
    MetricSpec {
        name: "proxy_writes",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "writes the impairment relay made, both directions: more than proxy_reads when it split, fewer when it merged",
    },
    MetricSpec {
        name: "cpu_sys_ms",
        unit: Unit::Millis,
        better: Better::Lower,
        doc: "system CPU time of the whole socklab process during the workload, as cpu_user_ms",
    },
];

impl Params {
    fn strategy(&self) -> Result<FramingStrategy, String> {
        if self.framing == "fixed" {
            return Ok(FramingStrategy::FixedSize(self.message_size as usize));
        }
        self.framing.parse().map_err(|e| format!("{e}"))
    }

    fn parsed(&self) -> Result<(FramingStrategy, Mode, Flavour), String> {
        let strategy = self.strategy()?;
        let mode = self.mode.parse().map_err(|e| format!("{e}"))?;
        let flavour = self.flavour.parse().map_err(|e| format!("{e}"))?;
        Ok((strategy, mode, flavour))
    }

    fn transport(&self) -> Result<Transport, String> {
        self.transport.parse().map_err(|e| format!("{e}"))
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
response_* in open loop counts from the intended send time. throughput_ci95 is the ± half \
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
    const PARAMS: &'static [ParamSpec] = PARAMS;
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

    fn validate(params: &Params) -> Result<(), String> {
        let (strategy, mode, _) = params.parsed()?;
        match params.transport()? {
            Transport::Tcp => check_impair(&params.impair)?,
            Transport::Udp => check_udp(params, strategy, mode)?,
        }
        if let FramingStrategy::LengthPrefixed { width, endian, signed } = strategy {
            // What the length field can hold (u8: 255, i16: 32767, ...).
            let most = LengthPrefixedCodec::new(width, endian).signed(signed).effective_max_frame_len();
            if params.message_size > most {
                return Err(format!(
                    "{} carries at most {most} bytes per frame; message_size is {}",
                    params.framing, params.message_size
                ));
            }
        }
        Ok(())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let (framing, mode, flavour) = params
            .parsed()
            .map_err(|reason| ParamError::Invalid { scenario: Self::NAME.to_string(), reason })?;
        let transport = params
            .transport()
            .map_err(|reason| ParamError::Invalid { scenario: Self::NAME.to_string(), reason })?;
        let behaviour = if mode == Mode::Bulk { Behaviour::Sink } else { Behaviour::Echo };
        // The reference server, unless the case runs against a target (which must echo).
        let server = match &ctx.target {
            Some(_) => None,
            None => Some(Server::start(ServerConfig {
                transport,
                flavour,
                behaviour,
                framing,
                ..ServerConfig::default()
            })?),
        };
        let addr = match (&server, &ctx.target) {
            (Some(server), _) => server.addr(),
            (None, Some(target)) => target.addr,
            (None, None) => return Err(CaseError::Protocol("no server to run against".into())),
        };
        // An impairment relay in front of whichever server it is, seeded by the case.
        let impair = Impairment::parse(&params.impair).map_err(|e| CaseError::Protocol(e.to_string()))?;
        let relay = if impair.is_none() {
            None
        } else {
            let config = RelayConfig { record_limit: PROXY_RECORD_LIMIT, ..RelayConfig::default() };
            let relay = match transport {
                Transport::Tcp => TcpRelay::start_with(addr, &impair, ctx.seed, config).map(Relay::Tcp),
                Transport::Udp => UdpRelay::start_with(addr, &impair, ctx.seed, config).map(Relay::Udp),
            };
            Some(relay.map_err(|e| CaseError::Protocol(format!("start the impairment relay: {e}")))?)
        };
        let addr = relay.as_ref().map_or(addr, Relay::addr);
        let reply_timeout = match transport {
            Transport::Tcp => Duration::from_secs(5),
            Transport::Udp => Duration::from_millis(params.udp_timeout_ms),
        };
        let workload = Workload {
            transport,
            mode,
            framing,
            message_size: params.message_size as usize,
            duration: Duration::from_millis(params.duration_ms),
            max_messages: params.max_messages,
            window: params.window as usize,
            rate_per_s: params.rate as f64,
            server: behaviour,
            reply_timeout: reply_timeout.min(ctx.timeout),
            nodelay: params.nodelay,
            cancel: ctx.cancel.clone(),
            ..Workload::default()
        };
        let target_process = ctx.target.as_ref().and_then(|t| t.process.clone());
        let target_cpu_before = target_process.as_ref().map(|p| p.cpu_since_ready());
        let cpu_before = CpuTime::now();
        let result = run_workload(addr, &workload).await?;
        let cpu = CpuTime::now().since(cpu_before);
        let target_cpu =
            target_process.zip(target_cpu_before).map(|(p, before)| p.cpu_since_ready() - before);
        let load =
            |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        // Bulk is verified by the sink; the other modes by the client, reply by reply.
        let delivery = match (mode, &server) {
            (Mode::Bulk, Some(server)) => {
                let stats = server.stats();
                Delivery {
                    delivered: load(&stats.bytes) / params.message_size,
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
            _ => Delivery {
                delivered: result.replied,
                intact: result.intact,
                corrupted: result.corrupted,
                out_of_order: result.out_of_order,
                bytes: result.throughput.bytes,
                verified: true,
            },
        };
        let proxy = relay.map(|relay| relay.observation());
        Ok(Measured { result, delivery, cpu, target_cpu, proxy })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        match params.parsed() {
            Ok((framing, mode, _)) => {
                let mut outcome =
                    outcome(params, framing, mode, &measured.result, &measured.delivery, measured.cpu);
                if let Some(cpu) = measured.target_cpu {
                    outcome.metric("target_cpu_ms", round1(cpu.as_secs_f64() * 1e3), Unit::Millis);
                }
                if let Some(proxy) = measured.proxy {
                    let both = |f: fn(&socklab_harness::impair::ProxyDirection) -> u64| {
                        proxy.connections.iter().map(|c| f(&c.up) + f(&c.down)).sum::<u64>() as f64
                    };
                    outcome.metric("proxy_reads", both(|d| d.reads_in), Unit::Count).metric(
                        "proxy_writes",
                        both(|d| d.writes_out),
                        Unit::Count,
                    );
                    outcome.observations.proxy = Some(proxy);
                }
                outcome
            }
            // Parameters passed validation before the case ran, so this is a bug; say so.
            Err(reason) => {
                let mut outcome = CaseOutcome::default();
                outcome.checks.push(Check::nothing_to_judge("params_parse", "valid parameters", &reason));
                outcome
            }
        }
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
    /// What the impairment relay did, when there was one.
    proxy: Option<ProxyObservation>,
}

/// The impairment relay of either transport.
enum Relay {
    Tcp(TcpRelay),
    Udp(UdpRelay),
}

impl Relay {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Relay::Tcp(relay) => relay.addr(),
            Relay::Udp(relay) => relay.addr(),
        }
    }

    fn observation(&self) -> ProxyObservation {
        match self {
            Relay::Tcp(relay) => relay.observation(),
            Relay::Udp(relay) => relay.observation(),
        }
    }
}

/// What UDP cases take: ping-pong, a framing that fits a datagram, UDP impairments.
fn check_udp(params: &Params, strategy: FramingStrategy, mode: Mode) -> Result<(), String> {
    if mode != Mode::PingPong {
        return Err(format!(
            "transport=udp runs mode=ping-pong only (one datagram outstanding, each lost one timed out); mode is {mode}"
        ));
    }
    if strategy == FramingStrategy::StopAndWait {
        return Err("stop-and-wait needs a stream: use transport=tcp".into());
    }
    // The framed message must fit one datagram, header and escaping included.
    if let Some(mut codec) = MessageCodec::new(strategy, usize::MAX) {
        let mut framed = bytes::BytesMut::new();
        let payload = vec![b'a'; params.message_size as usize];
        if codec.encode(&payload[..], &mut framed).is_ok() && framed.len() > MAX_DATAGRAM {
            return Err(format!(
                "over udp a framed message must fit one datagram ({MAX_DATAGRAM} bytes); {} bytes framed as {} take {}",
                params.message_size,
                params.framing,
                framed.len()
            ));
        }
    }
    socklab_harness::impair::spec::check_udp_text(&params.impair)
        .map_err(|reason| format!("impair: {reason}"))
}

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

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
        .key_metric("throughput_mib_s", round1(delivery.bytes as f64 / MIB / seconds), Unit::MibPerSec)
        .metric("messages_per_s", (delivery.delivered as f64 / seconds).round(), Unit::PerSec)
        .metric("sent", result.sent as f64, Unit::Count)
        .metric("delivered", delivery.delivered as f64, Unit::Count)
        .key_metric("corrupted", delivery.corrupted as f64, Unit::Count)
        .metric("out_of_order", delivery.out_of_order as f64, Unit::Count);
    let udp = params.transport.parse() == Ok(Transport::Udp);
    if udp {
        outcome.key_metric("lost", result.lost as f64, Unit::Count);
    }
    if let Some(spread) = result.throughput.interval_spread() {
        outcome.metric("throughput_ci95", round1(spread.ci95_relative * 100.0), Unit::Percent);
    }
    if let Some(kind) = LatencyKind::of(framing, mode, params.window)
        && result.latency.count() > 0
    {
        let s = result.latency.summary();
        let name = |suffix: &str| format!("{}_{suffix}", kind.prefix);
        outcome
            .key_metric(&name("p50"), micros(s.p50_ns), Unit::Micros)
            .metric(&name("p90"), micros(s.p90_ns), Unit::Micros)
            .key_metric(&name("p99"), micros(s.p99_ns), Unit::Micros)
            .metric(&name("p999"), micros(s.p999_ns), Unit::Micros)
            .metric(&name("max"), micros(s.max_ns), Unit::Micros);
        outcome.observations.latency =
            Some(LatencyObservation { of: kind.meaning, summary: s, histogram: result.latency.to_base64() });
    }
    outcome
        .metric("achieved_rate", result.achieved_rate.round(), Unit::PerSec)
        .metric("cpu_user_ms", round1(cpu.user.as_secs_f64() * 1e3), Unit::Millis)
        .metric("cpu_sys_ms", round1(cpu.system.as_secs_f64() * 1e3), Unit::Millis);
    outcome.observations.throughput = Some(result.throughput.clone());
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
    /// `rtt`, `reply` or `response`.
    prefix: &'static str,
    /// In words, for the report.
    meaning: String,
}

impl LatencyKind {
    /// `None` for bulk, which has no replies.
    fn of(framing: FramingStrategy, mode: Mode, window: u64) -> Option<Self> {
        // Stop-and-wait sends one message at a time whatever the mode asks.
        let one_at_a_time =
            mode == Mode::PingPong || (framing == FramingStrategy::StopAndWait && mode == Mode::Pipelined);
        let (prefix, meaning) = match mode {
            Mode::Bulk => return None,
            Mode::OpenLoop => (
                "response",
                "response time: from each message's intended send time to its reply (coordinated omission corrected)"
                    .to_string(),
            ),
            _ if one_at_a_time => {
                ("rtt", "round trip: from the write of a message to its reply, one message outstanding".to_string())
            }
            _ => (
                "reply",
                format!(
                    "write-to-reply time with up to {window} messages outstanding: a round trip plus the wait \
                     behind the window (queueing), not a round trip"
                ),
            ),
        };
        Some(LatencyKind { prefix, meaning })
    }
}

fn micros(nanos: u64) -> f64 {
    round1(nanos as f64 / 1e3)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
