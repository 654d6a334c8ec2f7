//! `server-conformance`: a server — socklab's reference, or your own (`--target`,
//! `--target-cmd`, `socklab probe`) — under the situations that break hand-written
//! servers: every chunking of its input, a large message, many clients at once, a client
//! that closes, a slow reader, a reset, a hostile length prefix.
//!
//! One scenario, one check per case, chosen by the `check` parameter (`socklab run
//! server-conformance` sweeps the checks that apply to the defaults; `socklab probe` runs
//! every check that applies). Each check is a file of its own implementing the trait
//! `ConformanceCheck` (`check.rs`) — its name, when it applies, what it asks of a relay,
//! how it measures (`run`) and judges (`evaluate`) — and a line in the table `CHECKS`
//! below; this module runs and judges whichever line the case names, and [`Which`] (the
//! `check` parameter) reads its names off the table. `setup` parses the parameters once
//! and refuses what no check can run; `conn` talks to the server (`source` reads a
//! source, `fresh` asks whether a new client is served, `survival` is what `reset` and
//! `hostile-length` share), `wire` frames and cuts what is sent, `replies` maps what came
//! back onto what was sent.
//!
//! With `impair` every client connects through a seeded relay in front of the server
//! (`relay`), so the server meets the relay's cuts and merges whatever it is checked for;
//! checks a relay would hide are refused.

mod check;
mod conn;
mod fresh;
mod relay;
mod replies;
mod setup;
mod source;
mod survival;
mod which;
mod wire;

// The checks, a file each.
mod concurrency;
mod download;
mod eof;
mod hostile_length;
mod large_message;
mod reassembly;
mod reset;
mod slow_reader;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::impair::spec::check_tcp_text;
use socklab_harness::impair::{ProxyObservation, RelayConfig, TcpRelay, start_in_front};
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::peer::{Behaviour, Flavour, Server, ServerConfig};
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, Scenario};
use socklab_harness::shared_params;

use check::{AnyMeasure, DynCheck, Entry, Seen, ServerSide, entry};
use conn::Peer;
use setup::Setup;

pub use which::Which;
pub use wire::ChunkingChoice;

/// The scenario; see the module docs.
pub struct ServerConformance;

/// Every check, one line each, in the order `socklab probe` runs them; the first is the
/// `check` parameter's default. A new check is a file implementing
/// [`check::ConformanceCheck`], its `mod` line above, and a line here.
const CHECKS: &[Entry] = &[
    entry(&reassembly::Reassembly),
    entry(&large_message::LargeMessage),
    entry(&concurrency::Concurrency),
    entry(&eof::Eof),
    entry(&slow_reader::SlowReader),
    entry(&reset::Reset),
    entry(&hostile_length::HostileLength),
    entry(&download::Download),
];

socklab_harness::params! {
    /// Parameters of `server-conformance`.
    pub struct Params {
        /// which check the case runs (socklab probe runs every one that applies)
        check: Which => ParamSpec::choice::<Which>(),
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

impl Params {
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
    const SWEEP: &'static [(&'static str, &'static str)] = &[("check", which::DEFAULT_SWEEP)];
    const EXTERNAL_TARGET: bool = true;

    fn validate(params: &Params) -> Result<(), Invalid> {
        check_tcp_text(&params.impair)?;
        let setup = Setup::new(params)?;
        setup.refusal()?;
        let check = setup.params.check.entry().check;
        check.applies(&setup)?;
        relay::refusal(&setup, check.relay(&setup))
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let setup = Setup::new(&params)?;
        let check = setup.params.check.entry().check;
        let server = match &ctx.target {
            Some(_) => None,
            None => Some(Server::start(reference(&setup, check))?),
        };
        let addr = match (&server, &ctx.target) {
            (Some(server), _) => server.addr(),
            (None, Some(target)) => target.addr,
            (None, None) => return Err(CaseError::Protocol("no server to run against".into())),
        };
        // The relay in front of whichever server it is, seeded by the case, on its clock.
        let clock = Instant::now();
        let config = RelayConfig { clock, record_limit: relay::RECORD_LIMIT, ..RelayConfig::default() };
        let relay = start_in_front::<TcpRelay>(addr, &setup.impair, ctx.seed, config)?.map(Arc::new);
        let peer = Peer {
            addr: relay.as_ref().map_or(addr, |r| r.addr()),
            server: addr,
            relay: relay.clone(),
            wire: setup.wire,
            behaviour: params.behaviour,
            reply_timeout: params.reply_timeout(),
            clock,
        };
        let measure = check.run(&setup, &peer, &ctx).await;
        let sink = server.as_ref().filter(|_| params.behaviour == Behaviour::Sink).map(|server| {
            let stats = server.stats();
            (stats.intact.load(Ordering::Relaxed), stats.corrupted.load(Ordering::Relaxed))
        });
        let process = ctx.target.as_ref().and_then(|t| t.process.as_ref());
        Ok(Measured {
            check: Some(measure),
            server: ServerSide { sink, target_running: process.map(|p| p.is_running()) },
            proxy: relay.map(|r| r.observation()),
        })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        let mut outcome = CaseOutcome::default();
        let setup = match Setup::new(params) {
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
        let seen = Seen { measure: measured.check, server: measured.server };
        let verdict = setup.params.check.entry().check.evaluate(&setup, seen, &mut outcome);
        outcome.checks.insert(0, verdict);
        if let Some(running) = measured.server.target_running {
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

/// The reference server for `check`: the case's framing and behaviour, frames large
/// enough for `large_size`, and what the check adjusts.
fn reference(setup: &Setup, check: &dyn DynCheck) -> ServerConfig {
    let mut config = ServerConfig {
        flavour: setup.params.flavour,
        behaviour: setup.params.behaviour,
        framing: setup.wire.0,
        source_message_size: setup.message_size,
        max_frame_len: (8usize << 20).max(setup.params.large_size as usize + 1024),
        ..ServerConfig::default()
    };
    check.reference(setup, &mut config);
    config
}

/// What one case measured: the measure of the check it ran, and what it saw of the
/// server and the relay. `Default` is a case that measured nothing.
#[derive(Default)]
pub struct Measured {
    /// The check's own measure, which only that check reads back.
    check: Option<AnyMeasure>,
    /// What the reference sink counted, and whether the `--target-cmd` process still ran.
    server: ServerSide,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in sweep (`socklab run server-conformance`) must run: a check the
    /// default parameters refuse says so with `IN_DEFAULT_SWEEP = false`.
    #[test]
    fn a_check_is_in_the_default_sweep_when_it_applies_to_the_defaults() {
        for which in Which::all() {
            let applies = ServerConformance::validate(&Params { check: which, ..Params::default() });
            assert_eq!(
                which.entry().in_default_sweep,
                applies.is_ok(),
                "{which}: IN_DEFAULT_SWEEP must say whether it applies to the default parameters ({applies:?})"
            );
        }
        assert_eq!(
            which::DEFAULT_SWEEP,
            "reassembly,large-message,concurrency,eof,slow-reader,reset,hostile-length"
        );
    }

    #[test]
    fn refusals_name_the_parameter_to_change() {
        let refused = |check: &str, set: fn(&mut Params)| {
            let mut params = Params { check: check.parse().unwrap(), ..Params::default() };
            set(&mut params);
            ServerConformance::validate(&params).unwrap_err().param
        };
        assert_eq!(refused("download", |_| {}), "behaviour");
        assert_eq!(refused("hostile-length", |p| p.framing = "line".into()), "framing");
        assert_eq!(
            refused("large-message", |p| (p.framing, p.large_size) = ("u16be".into(), 70_000)),
            "large_size"
        );
        assert_eq!(refused("eof", |p| (p.half_close, p.behaviour) = (true, Behaviour::Source)), "half_close");
        assert_eq!(refused("slow-reader", |p| p.impair = "merge=20ms".into()), "impair");
        assert_eq!(refused("eof", |p| p.impair = "delay=1s".into()), "reply_timeout_ms");
        assert_eq!(refused("reassembly", |p| p.framing = "fixed:8".into()), "framing");
        assert_eq!(
            refused("reassembly", |p| (p.framing, p.message_size) = ("u8".into(), 300)),
            "message_size"
        );
        assert_eq!(refused("reassembly", |p| p.framing = "u24be".into()), "framing");
    }
}
