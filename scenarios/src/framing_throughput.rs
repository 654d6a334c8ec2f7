//! `framing-throughput`: every framing strategy on the same workload, over real loopback
//! TCP against a reference server — throughput, latency percentiles, CPU time, and
//! whether every message arrived intact and in order.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use socklab_harness::check::Check;
use socklab_harness::framing::{FramingStrategy, LengthPrefixedCodec};
use socklab_harness::metrics::CpuTime;
use socklab_harness::params::{ParamKind, ParamSpec};
use socklab_harness::peer::{
    Behaviour, Flavour, Mode, Server, ServerConfig, Workload, WorkloadResult, run_workload,
};
use socklab_harness::report::{LatencyObservation, MetricSpec, Unit};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, Scenario, TableSpec};

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
    /// TCP_NODELAY on both ends.
    pub nodelay: bool,
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
    ParamSpec { name: "nodelay", kind: ParamKind::Bool, unit: None, doc: "TCP_NODELAY on the client" },
];

const METRICS: &[MetricSpec] = &[
    MetricSpec { name: "throughput_mib_s", unit: Unit::MibPerSec, doc: "payload delivered per second" },
    MetricSpec { name: "messages_per_s", unit: Unit::PerSec, doc: "messages delivered per second" },
    MetricSpec { name: "sent", unit: Unit::Count, doc: "messages the client sent" },
    MetricSpec { name: "delivered", unit: Unit::Count, doc: "messages whose bytes all arrived" },
    MetricSpec { name: "corrupted", unit: Unit::Count, doc: "received frames that failed verification" },
    MetricSpec { name: "out_of_order", unit: Unit::Count, doc: "intact frames out of sequence" },
    MetricSpec { name: "rtt_p50", unit: Unit::Micros, doc: "median round trip (not for bulk)" },
    MetricSpec { name: "rtt_p90", unit: Unit::Micros, doc: "90th percentile round trip" },
    MetricSpec { name: "rtt_p99", unit: Unit::Micros, doc: "99th percentile round trip" },
    MetricSpec { name: "rtt_p999", unit: Unit::Micros, doc: "99.9th percentile round trip" },
    MetricSpec { name: "rtt_max", unit: Unit::Micros, doc: "slowest round trip" },
    MetricSpec { name: "achieved_rate", unit: Unit::PerSec, doc: "messages sent per second of sending" },
    MetricSpec { name: "cpu_user_ms", unit: Unit::Millis, doc: "user CPU time of client and server" },
    MetricSpec { name: "cpu_sys_ms", unit: Unit::Millis, doc: "system CPU time of client and server" },
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
}

impl Scenario for FramingThroughput {
    type Params = Params;

    const NAME: &'static str = "framing-throughput";
    const SUMMARY: &'static str =
        "every framing strategy on one workload: throughput, latency percentiles, CPU, integrity";
    const EXPLANATION: &'static str = "\
What it shows: the same stream of self-checking messages (each carries a sequence number \
and a checksum) sent over loopback TCP with each framing strategy, against a reference \
server, in one of four modes: ping-pong (one message outstanding: latency), pipelined (a \
window outstanding), bulk (one way into a sink: throughput) and open-loop (a fixed rate; \
latency counted from each message's intended send time, so a stall shows in every message \
it delayed instead of in one sample — the coordinated-omission correction wrk2 makes).

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
server together.";
    const PARAMS: &'static [ParamSpec] = PARAMS;
    const METRICS: &'static [MetricSpec] = METRICS;
    const TABLE: Option<TableSpec> = Some(TableSpec {
        rows: "framing",
        columns: "message_size",
        cells: &["throughput_mib_s", "rtt_p50", "rtt_p99"],
    });
    const SWEEP: &'static [(&'static str, &'static str)] = &[
        ("framing", "raw,line,cobs,u32be,u32le,varint,json-header,fixed,stop-and-wait"),
        ("message_size", "16,256,4096,65536"),
    ];

    fn validate(params: &Params) -> Result<(), String> {
        let (strategy, _, _) = params.parsed()?;
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

    async fn run(params: Params, ctx: CaseContext) -> Result<CaseOutcome, CaseError> {
        let (framing, mode, flavour) = params.parsed().map_err(CaseError::Protocol)?;
        let behaviour = if mode == Mode::Bulk { Behaviour::Sink } else { Behaviour::Echo };
        let server = Server::start(ServerConfig { flavour, behaviour, framing, ..ServerConfig::default() })
            .map_err(|e| CaseError::Protocol(e.to_string()))?;
        let workload = Workload {
            mode,
            framing,
            message_size: params.message_size as usize,
            duration: Duration::from_millis(params.duration_ms),
            max_messages: params.max_messages,
            window: params.window as usize,
            rate_per_s: params.rate as f64,
            server: behaviour,
            reply_timeout: Duration::from_secs(5).min(ctx.timeout),
            nodelay: params.nodelay,
            ..Workload::default()
        };
        let cpu_before = CpuTime::now();
        let result =
            run_workload(server.addr(), &workload).await.map_err(|e| CaseError::Protocol(e.to_string()))?;
        let cpu = CpuTime::now().since(cpu_before);
        let stats = server.stats();
        let load =
            |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        // Bulk is verified by the sink; the other modes by the client, reply by reply.
        let delivery = if mode == Mode::Bulk {
            Delivery {
                delivered: load(&stats.bytes) / params.message_size,
                intact: load(&stats.intact),
                corrupted: load(&stats.corrupted),
                out_of_order: load(&stats.out_of_order),
                bytes: load(&stats.bytes),
            }
        } else {
            Delivery {
                delivered: result.replied,
                intact: result.intact,
                corrupted: result.corrupted,
                out_of_order: result.out_of_order,
                bytes: result.throughput.bytes,
            }
        };
        Ok(outcome(&params, framing, mode, &result, &delivery, cpu))
    }
}

/// What arrived, as verified by whichever end received it.
struct Delivery {
    delivered: u64,
    intact: u64,
    corrupted: u64,
    out_of_order: u64,
    bytes: u64,
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
    if mode != Mode::Bulk {
        let s = result.latency.summary();
        outcome
            .key_metric("rtt_p50", micros(s.p50_ns), Unit::Micros)
            .metric("rtt_p90", micros(s.p90_ns), Unit::Micros)
            .key_metric("rtt_p99", micros(s.p99_ns), Unit::Micros)
            .metric("rtt_p999", micros(s.p999_ns), Unit::Micros)
            .metric("rtt_max", micros(s.max_ns), Unit::Micros);
        outcome.observations.latency = Some(LatencyObservation {
            of: latency_meaning(mode).to_string(),
            summary: s,
            histogram: result.latency.to_base64(),
        });
    }
    outcome
        .metric("achieved_rate", result.achieved_rate.round(), Unit::PerSec)
        .metric("cpu_user_ms", round1(cpu.user.as_secs_f64() * 1e3), Unit::Millis)
        .metric("cpu_sys_ms", round1(cpu.system.as_secs_f64() * 1e3), Unit::Millis);
    outcome.observations.throughput = Some(result.throughput.clone());
    outcome.checks.push(if framing == FramingStrategy::Raw {
        bytes_intact(params, result, delivery)
    } else {
        messages_intact(result, delivery)
    });
    outcome
}

/// Every real framing: every message delivered, intact, in order.
fn messages_intact(result: &WorkloadResult, d: &Delivery) -> Check {
    let passed =
        d.delivered == result.sent && d.intact == result.sent && d.corrupted == 0 && d.out_of_order == 0;
    Check::new(
        "every_message_intact_in_order",
        format!("{} of {} intact, 0 corrupted, 0 out of order", result.sent, result.sent),
        format!("{} intact, {} corrupted, {} out of order", d.intact, d.corrupted, d.out_of_order),
        passed,
        if passed {
            "the framing found every message boundary again, whatever the reads"
        } else {
            "messages were lost, damaged or reordered: the framing or a peer is broken"
        },
    )
}

/// Raw: the bytes all arrive; how many "messages" (reads) were not whole messages is
/// reported in `corrupted`.
fn bytes_intact(params: &Params, result: &WorkloadResult, d: &Delivery) -> Check {
    let expected = result.sent * params.message_size;
    Check::new(
        "stream_bytes_intact",
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

fn latency_meaning(mode: Mode) -> &'static str {
    match mode {
        Mode::OpenLoop => {
            "round trip from each message's intended send time (coordinated omission corrected)"
        }
        _ => "round trip from the write of a message to the read completing its reply",
    }
}

fn micros(nanos: u64) -> f64 {
    round1(nanos as f64 / 1e3)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
