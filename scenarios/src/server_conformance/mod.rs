//! `server-conformance`: a server — socklab's reference, or your own (`--target`,
//! `--target-cmd`, `socklab probe`) — under the situations that break hand-written
//! servers: every chunking of its input, a large message, many clients at once, a client
//! that closes, a slow reader, a reset, a hostile length prefix.
//!
//! One scenario, one check per case, chosen by the `check` parameter (a suite sweeps it;
//! `socklab probe` runs every check that applies). Each check is a module of its own that
//! measures (`run`) and judges (`evaluate`); [`conn`] talks to the server ([`source`]
//! reads a source, [`fresh`] asks whether a new client is served), [`wire`] frames and
//! cuts what is sent, [`replies`] maps what came back onto what was sent.
//!
//! With `impair` every client connects through a seeded relay in front of the server
//! ([`relay`]), so the server meets the relay's cuts and merges whatever it is checked
//! for; checks a relay would hide are refused.

mod concurrency;
mod conn;
mod download;
mod eof;
mod fresh;
mod large_message;
mod reassembly;
mod relay;
mod replies;
mod slow_reader;
mod source;
mod survival;
mod wire;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::framing::FramingStrategy;
use socklab_harness::impair::{Impairment, ProxyObservation, RelayConfig, TcpRelay, in_front};
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::peer::{Behaviour, Flavour, Server, ServerConfig};
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, Scenario};
use socklab_harness::shared_params;

use conn::Peer;
pub use wire::ChunkingChoice;
use wire::Wire;

use socklab_harness::impair::spec::check_tcp_text;

/// The scenario; see the module docs.
pub struct ServerConformance;

/// Every check, as the `check` parameter names it, in the order `socklab probe` runs them.
pub const CHECKS: &[&str] = &[
    "reassembly",
    "large-message",
    "concurrency",
    "eof",
    "slow-reader",
    "reset",
    "hostile-length",
    "download",
];

/// A check of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Reassembly,
    LargeMessage,
    Concurrency,
    Eof,
    SlowReader,
    Reset,
    HostileLength,
    Download,
}

impl Which {
    fn parse(name: &str) -> Result<Which, String> {
        Ok(match name {
            "reassembly" => Which::Reassembly,
            "large-message" => Which::LargeMessage,
            "concurrency" => Which::Concurrency,
            "eof" => Which::Eof,
            "slow-reader" => Which::SlowReader,
            "reset" => Which::Reset,
            "hostile-length" => Which::HostileLength,
            "download" => Which::Download,
            other => return Err(format!("unknown check `{other}`; valid: {}", CHECKS.join(", "))),
        })
    }
}

socklab_harness::params! {
    /// Parameters of `server-conformance`.
    pub struct Params {
        /// which check the case runs (socklab probe runs every one that applies)
        check: String = "reassembly".into() => ParamSpec::one_of(CHECKS),
        /// the server's framing, as socklab serve --framing names it
        framing: String = "u32be".into() => ParamSpec::text("a framing strategy: raw, line, cobs, u8, u16be, u32be, u32le, u64be, i32le, …, varint, json-header, fixed:N, stop-and-wait"),
        behaviour: Behaviour => shared_params::BEHAVIOUR,
        /// reference server only: tokio, threaded, sequential (fails concurrency by design)
        flavour: Flavour => shared_params::FLAVOUR,
        /// messages per conversation (reassembly sends them in every chunking)
        messages: u64 = 3 => ParamSpec::int(1, 1000),
        /// payload bytes per message (self-checking: sequence number, checksum, printable filler);
        /// fixed:N uses N
        message_size: u64 = 64 => ParamSpec::int(16, 65_535).unit("bytes"),
        /// large-message: payload bytes of the one large message
        large_size: u64 = 1 << 20 => ParamSpec::int(16, 64 << 20).unit("bytes"),
        /// concurrency: clients connecting at once
        clients: u64 = 8 => ParamSpec::int(2, 64),
        /// concurrency: each client's session, 5 round trips with pauses between
        session_ms: u64 = 1000 => ParamSpec::int(100, 10_000).unit("ms"),
        /// reassembly: pause between paced writes, so the server reads them apart
        gap_ms: u64 = 2 => ParamSpec::int(0, 100).unit("ms"),
        /// reassembly (echo, echo-upper, sink): all five chunkings, or one: per-message (a write per
        /// message, paced, as tutorial clients send), merged, byte-by-byte, header-cut, random
        chunking: ChunkingChoice => ParamSpec::choice::<ChunkingChoice>(),
        /// eof: shut down writing (SHUT_WR) right after sending, then read the replies, instead of
        /// closing after the last reply
        half_close: bool = false => ParamSpec::bool(),
        /// eof: how long the server has to close its side after the client's close
        eof_timeout_ms: u64 = 2000 => ParamSpec::int(100, 60_000).unit("ms"),
        /// how long the server may stay silent while a reply is due
        reply_timeout_ms: u64 = 2000 => ParamSpec::int(100, 60_000).unit("ms"),
        /// slow-reader: payload bytes sent in 16 KiB messages, and owed back
        slow_bytes: u64 = 1 << 20 => ParamSpec::int(1024, 64 << 20).unit("bytes"),
        /// slow-reader: the client's SO_RCVBUF (Linux doubles it); the client also announces a 1 KiB
        /// MSS
        slow_rcvbuf: u64 = 4096 => ParamSpec::int(1024, 1 << 20).unit("bytes"),
        /// slow-reader: pause before each 4 KiB read
        slow_read_pause_ms: u64 = 1 => ParamSpec::int(0, 100).unit("ms"),
        impair: String = shared_params::NO_IMPAIRMENT.into() => shared_params::IMPAIR,
    }
}

socklab_harness::model::metrics! {
    /// download: frames read to the server's close
    files: Count, Neither;
    /// download: body bytes of those frames
    download_bytes: Bytes, Neither;
    /// download: from connect to the server's close
    download_ms: Millis, Lower;
    /// reassembly: chunkings sent, one connection each
    chunkings: Count, Neither;
    /// reassembly: chunkings whose replies were not all whole and in order
    chunkings_failed: Count, Lower;
    /// replies the server owed, over the check
    replies_owed: Count, Neither;
    /// reply frames decoded, over the check
    replies_received: Count, Neither;
    /// reply frames holding bytes of more than one message
    glued_replies: Count, Lower;
    /// messages whose reply came back in pieces
    split_replies: Count, Lower;
    /// reassembly: writes of the 1-byte-per-write chunking
    one_byte_writes: Count, Neither;
    /// reassembly: TCP segments that carried them, from the capture (absent without it)
    one_byte_segments: Count, Neither;
    /// reference sink only: messages the server verified intact
    server_intact: Count, Neither;
    /// reference sink only: messages the server found damaged
    server_corrupted: Count, Lower;
    /// large-message: payload bytes of the first reply frame
    first_reply_bytes: Bytes, Neither;
    /// reply payload bytes received
    reply_bytes: Bytes, Neither;
    /// large-message: from the first byte written to the first reply frame
    first_reply_ms: Millis, Lower;
    /// concurrency: clients that connected
    clients: Count, Neither;
    /// concurrency: clients that got their first reply
    clients_served: Count, Neither;
    /// concurrency: longest wait from connecting to the first reply
    max_wait_ms: Millis, Lower;
    /// concurrency: median wait for the first reply
    median_wait_ms: Millis, Lower;
    /// concurrency: mean session length, first reply to close
    mean_session_ms: Millis, Neither;
    /// eof: from the client's close (or SHUT_WR) to the server's close; absent when it did not
    /// close in time
    close_after_ms: Millis, Lower;
    /// eof: the window the server's CPU was measured over
    eof_window_ms: Millis, Neither;
    /// eof: CPU time (user + system) of the --target-cmd process group in the window; absent
    /// otherwise
    server_cpu_ms: Millis, Lower;
    /// eof: server_cpu_ms over the window (of 200 ms or more), in % of one core
    server_cpu_percent: Percent, Lower;
    /// eof: share of the window the --target-cmd processes were running or waiting to run
    /// (/proc/PID/schedstat); above 50% the server spins, whatever the machine's load
    server_runnable_percent: Percent, Lower;
    /// slow-reader: reply payload bytes owed
    reply_bytes_owed: Bytes, Neither;
    /// slow-reader: reply payload bytes owed that never arrived
    reply_bytes_lost: Bytes, Lower;
    /// slow-reader: how long the slow reading took
    slow_read_ms: Millis, Neither;
    /// slow-reader: the client's SO_RCVBUF as the kernel set it
    rcvbuf_effective: Bytes, Neither;
    /// reset, hostile-length, eof (source): how long the new client took to be served
    recovery_ms: Millis, Lower;
    /// hostile-length: the length the prefix announced
    hostile_length: Bytes, Neither;
    /// hostile-length: how long until the server closed that connection; absent when it kept it
    /// open
    hostile_closed_ms: Millis, Neither;
    /// connections the impairment relay carried (absent without impair)
    proxy_connections: Count, Neither;
    /// reads the impairment relay made, both directions of every connection (absent without impair)
    proxy_reads: Count, Neither;
    /// writes the impairment relay made: more than proxy_reads when it split, fewer when it merged
    proxy_writes: Count, Neither;
    /// 1 when the --target-cmd process was still running at the end of the check, 0 when not;
    /// absent otherwise
    target_running: Count, Neither;
}

/// The parameters a case uses, parsed once: validate, run and evaluate each build it
/// with [`Params::setup`].
#[derive(Debug, Clone)]
struct Setup {
    which: Which,
    wire: Wire,
    behaviour: Behaviour,
    flavour: Flavour,
    /// Payload bytes per message: `message_size`, or N for `fixed:N`.
    message_size: usize,
    /// What the relay in front of the server does (`impair`).
    impair: Impairment,
}

impl Params {
    /// The parameters parsed: the framing as a [`Wire`], the impairment, the check.
    ///
    /// # Errors
    /// [`Invalid`] naming `framing`, `impair` or `check` when it does not parse.
    fn setup(&self) -> Result<Setup, Invalid> {
        let strategy: FramingStrategy =
            self.framing.parse().map_err(|e| Invalid::new("framing", format!("{e}")))?;
        let message_size = match strategy {
            FramingStrategy::FixedSize(n) => n,
            _ => self.message_size as usize,
        };
        Ok(Setup {
            which: Which::parse(&self.check).map_err(|e| Invalid::new("check", e))?,
            wire: Wire(strategy),
            behaviour: self.behaviour,
            flavour: self.flavour,
            message_size,
            impair: Impairment::parse(&self.impair)
                .map_err(|e| Invalid::new("impair", format!("impair: {e}")))?,
        })
    }

    fn reply_timeout(&self) -> Duration {
        Duration::from_millis(self.reply_timeout_ms)
    }

    fn gap(&self) -> Duration {
        Duration::from_millis(self.gap_ms)
    }
}

impl Scenario for ServerConformance {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "server-conformance";
    const SUMMARY: &'static str = "a server under every chunking, a large message, many clients, EOF, a slow reader, a reset, a hostile length";
    const EXPLANATION: &'static str = "\
What it shows: whether a server — socklab's reference, or your own with --target, --target-cmd \
or socklab probe — copes with what TCP and clients really do. Each case runs one check, \
with the server's framing and declared behaviour (echo, echo-upper, sink, source): \
reassembly sends the messages in five chunkings (one write per message; all in one write; \
one byte per write with TCP_NODELAY and a pause, confirmed as separate segments by the \
capture where it runs; a cut inside each header; seeded random cuts that split and merge; chunking picks one) \
and checks every reply, in order, none missing or extra; large-message sends one large \
message; concurrency connects several clients at once, each holding a session of five \
round trips; eof closes (or half-closes) and times how long the server takes to close its \
side, and with --target-cmd how much CPU it burns meanwhile; slow-reader reads the replies \
slowly through a small receive buffer; reset resets a connection mid-message; \
hostile-length announces a frame far above any sane size. After reset and hostile-length a \
new client must be served.

Why servers fail them: TCP delivers bytes, not messages. A server that treats each recv() \
as one message answers glued or cut replies as soon as the chunking changes, and answers a \
large message piece by piece. A server that serves one client at a time makes the others \
wait a whole session each (socklab's sequential flavour does so on purpose, and fails \
concurrency). recv() returning 0 means the client closed; a server that loops on it spins \
a core. send() may take only part of a reply when the client reads slowly; a server that \
ignores its return value loses the rest. A length prefix is input like any other: a server \
that trusts it allocates gigabytes or waits forever.

What to take from it: frame the stream and read until a whole frame is buffered; serve \
clients concurrently; close on recv() returning 0; loop until send() has taken every byte; \
check every length against a limit before allocating. Each failed check says in one \
sentence what the server did, with the evidence beside it (the boundary map of what came \
back, timings, CPU).

With impair (impair=split=1, merge=20ms, random) every client of a check connects through \
a seeded relay in front of the server, which cuts, glues or delays what passes: a server \
that happens to get one message per recv() on loopback meets the chunkings real networks \
make, on every check, replayably by seed. Checks a relay would hide are refused: \
slow-reader (the relay reads the replies as they come) and a sink's concurrency.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const SWEEP: &'static [(&'static str, &'static str)] =
        &[("check", "reassembly,large-message,concurrency,eof,slow-reader,reset,hostile-length,download")];
    const EXTERNAL_TARGET: bool = true;

    fn validate(params: &Params) -> Result<(), Invalid> {
        check_tcp_text(&params.impair)?;
        refusal(params)
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let setup = params.setup()?;
        let server = match &ctx.target {
            Some(_) => None,
            None => Some(Server::start(ServerConfig {
                flavour: setup.flavour,
                behaviour: setup.behaviour,
                framing: setup.wire.0,
                source_message_size: setup.message_size,
                // A download reads to the server's close: the reference source sends
                // `messages` frames, then closes.
                source_max_messages: if setup.which == Which::Download {
                    params.messages
                } else {
                    ServerConfig::default().source_max_messages
                },
                max_frame_len: (8usize << 20).max(params.large_size as usize + 1024),
                ..ServerConfig::default()
            })?),
        };
        let addr = match (&server, &ctx.target) {
            (Some(server), _) => server.addr(),
            (None, Some(target)) => target.addr,
            (None, None) => return Err(CaseError::Protocol("no server to run against".into())),
        };
        // The relay in front of whichever server it is, seeded by the case, on its clock.
        let clock = Instant::now();
        let config = RelayConfig { clock, record_limit: relay::RECORD_LIMIT, ..RelayConfig::default() };
        let relay = in_front::<TcpRelay>(addr, &params.impair, ctx.seed, config)?.map(Arc::new);
        let peer = Peer {
            addr: relay.as_ref().map_or(addr, |r| r.addr()),
            server: addr,
            relay: relay.clone(),
            wire: setup.wire,
            behaviour: setup.behaviour,
            reply_timeout: params.reply_timeout(),
            clock,
        };
        let process = ctx.target.as_ref().and_then(|t| t.process.clone());
        let mut measured = Measured::default();
        match setup.which {
            Which::Reassembly => {
                measured.reassembly =
                    Some(reassembly::run(&params, &setup, &peer, ctx.seed, &ctx.case_id).await)
            }
            Which::LargeMessage => measured.large = Some(large_message::run(&params, &peer).await),
            Which::Concurrency => measured.concurrency = Some(concurrency::run(&params, &setup, &peer).await),
            Which::Eof => measured.eof = Some(eof::run(&params, &setup, &peer, process.as_deref()).await),
            Which::SlowReader => measured.slow = Some(slow_reader::run(&params, &setup, &peer).await),
            Which::Reset | Which::HostileLength => {
                measured.survival = Some(survival::run(setup.which, &params, &setup, &peer).await)
            }
            Which::Download => measured.download = Some(download::run(&peer).await),
        }
        if let Some(server) = &server
            && setup.behaviour == Behaviour::Sink
        {
            let stats = server.stats();
            measured.sink =
                Some((stats.intact.load(Ordering::Relaxed), stats.corrupted.load(Ordering::Relaxed)));
        }
        measured.target_running = process.map(|p| p.is_running());
        measured.proxy = relay.map(|r| r.observation());
        Ok(measured)
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        let mut outcome = CaseOutcome::default();
        let setup = match params.setup() {
            Ok(setup) => setup,
            // Parameters passed validation before the case ran, so this is a bug; say so.
            Err(invalid) => {
                outcome.checks.push(Check::nothing_to_judge(
                    "params_parse",
                    "valid parameters",
                    &invalid.reason,
                ));
                return outcome;
            }
        };
        let check = match setup.which {
            Which::Reassembly => {
                reassembly::evaluate(params, &setup, measured.reassembly, measured.sink, &mut outcome)
            }
            Which::LargeMessage => {
                large_message::evaluate(params, &setup, measured.large, measured.sink, &mut outcome)
            }
            Which::Concurrency => concurrency::evaluate(params, measured.concurrency, &mut outcome),
            Which::Eof => eof::evaluate(params, measured.eof, &mut outcome),
            Which::SlowReader => slow_reader::evaluate(params, &setup, measured.slow, &mut outcome),
            Which::Download => download::evaluate(params, measured.download, &mut outcome),
            Which::Reset | Which::HostileLength => survival::evaluate(
                setup.which,
                params,
                &setup,
                measured.survival,
                measured.target_running,
                &mut outcome,
            ),
        };
        outcome.checks.insert(0, check);
        if let Some(running) = measured.target_running {
            outcome.metric(metric::target_running, f64::from(u8::from(running)));
        }
        if let Some(proxy) = measured.proxy {
            let both = |f: fn(&socklab_harness::impair::ProxyDirection) -> u64| {
                proxy.connections.iter().map(|c| f(&c.up) + f(&c.down)).sum::<u64>() as f64
            };
            outcome
                .metric(
                    metric::proxy_connections,
                    (proxy.connections.len() as u64 + proxy.connections_left_out) as f64,
                )
                .metric(metric::proxy_reads, both(|d| d.reads_in))
                .metric(metric::proxy_writes, both(|d| d.writes_out));
            outcome.observations.proxy = Some(proxy);
        }
        outcome
    }
}

/// Why the check does not apply to these parameters, in one line, naming the parameter
/// to change; `Ok` when it does.
fn refusal(params: &Params) -> Result<(), Invalid> {
    let setup = params.setup()?;
    let (wire, framing) = (setup.wire, &params.framing);
    if setup.message_size < 16 {
        return Err(Invalid::new(
            "framing",
            format!(
                "{framing} records are {} bytes; messages carry a sequence number and a checksum, so they need 16 at least",
                setup.message_size
            ),
        ));
    }
    if let Some(most) = wire.max_payload()
        && setup.message_size as u64 > most
        && !matches!(wire.0, FramingStrategy::FixedSize(_))
    {
        return Err(Invalid::new(
            "message_size",
            format!(
                "{framing} carries at most {most} bytes per frame; message_size is {}",
                setup.message_size
            ),
        ));
    }
    if wire.is_stop_and_wait() && setup.behaviour == Behaviour::Source {
        return Err(Invalid::new(
            "framing",
            "stop-and-wait is request and reply: a source has no request to answer, so use a stream framing",
        ));
    }
    if wire.is_raw() && setup.behaviour == Behaviour::Source {
        return Err(Invalid::new(
            "framing",
            "a source over raw framing has no boundaries to verify its messages by; use a framing",
        ));
    }
    match setup.which {
        Which::LargeMessage if setup.behaviour == Behaviour::Source => Err(Invalid::new(
            "behaviour",
            "large-message does not apply to a source, which chooses its own message size",
        )),
        Which::LargeMessage if matches!(wire.0, FramingStrategy::FixedSize(_)) => Err(Invalid::new(
            "framing",
            format!("large-message does not apply to {framing}: every record has the same size"),
        )),
        Which::LargeMessage => match wire.max_payload() {
            Some(most) if params.large_size > most => Err(Invalid::new(
                "large_size",
                format!(
                    "large-message does not apply to {framing}, which carries at most {most} bytes per frame (large_size is {})",
                    params.large_size
                ),
            )),
            _ => Ok(()),
        },
        Which::HostileLength if setup.behaviour == Behaviour::Source => Err(Invalid::new(
            "behaviour",
            "hostile-length does not apply to a source, which never reads what the client sends",
        )),
        Which::HostileLength if !wire.is_length_framing() => Err(Invalid::new(
            "framing",
            format!("hostile-length does not apply to {framing}: it has no length prefix"),
        )),
        Which::HostileLength if wire.is_narrow_length() => Err(Invalid::new(
            "framing",
            format!(
                "hostile-length does not apply to {framing}: its largest length ({} bytes) is a sane frame",
                wire.max_payload().unwrap_or(0)
            ),
        )),
        Which::SlowReader if setup.behaviour == Behaviour::Sink => Err(Invalid::new(
            "behaviour",
            "slow-reader does not apply to a sink, which sends nothing back to read slowly",
        )),
        Which::Download if setup.behaviour != Behaviour::Source => Err(Invalid::new(
            "behaviour",
            format!(
                "download applies to a source, which sends frames until it closes; this server is {}",
                setup.behaviour
            ),
        )),
        Which::Eof if params.half_close && setup.behaviour == Behaviour::Source => Err(Invalid::new(
            "half_close",
            "eof with half_close does not apply to a source, which never reads and so never sees it",
        )),
        _ => Ok(()),
    }?;
    relay::refusal(params, &setup)
}

/// What one case measured: the measure of the check it ran, and what the reference sink
/// counted.
#[derive(Default)]
pub struct Measured {
    reassembly: Option<reassembly::Measure>,
    large: Option<large_message::Measure>,
    concurrency: Option<concurrency::Measure>,
    eof: Option<eof::Measure>,
    slow: Option<slow_reader::Measure>,
    survival: Option<survival::Measure>,
    download: Option<download::Measure>,
    /// Reference sink only: messages it verified intact, and damaged.
    sink: Option<(u64, u64)>,
    /// Whether the `--target-cmd` process was running at the end.
    target_running: Option<bool>,
    /// What the impairment relay did, with `impair`.
    proxy: Option<ProxyObservation>,
}

/// Milliseconds, rounded to 0.1, for metrics.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e4).round() / 10.0
}

/// Seconds in words: `1.02 s`.
fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}
