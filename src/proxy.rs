//! `socklab proxy`: an impairment relay in the foreground, between a user's own client and
//! server, until Ctrl-C.
//!
//! While it runs it prints each connection's counters as it closes (stdout), and on
//! stderr, at most once a second each, what it refused (over `--max-connections`) and
//! what it dropped for a full `--delay` queue; the summary at the end counts both.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socklab_harness::impair::{
    Impairment, ProxyConnection, ProxyDirection, ProxyObservation, RelayConfig, RelayCounters, TcpRelay,
    UdpRelay,
};
use socklab_harness::peer::Transport;
use socklab_harness::seed::fresh_run_seed;

use socklab::cli::ProxyArgs;

/// How often the relay's counters are read, to print closed connections and warnings.
const POLL: Duration = Duration::from_millis(100);
/// Warnings of one kind (refusals, a full queue) printed at most once per this time, each
/// with the count since the last.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The spec from `--impair` and the item flags, checked for the transport.
///
/// # Errors
/// The spec parser's one-line reason.
pub fn spec(args: &ProxyArgs) -> Result<Impairment> {
    let mut spec = match &args.impair {
        Some(text) => Impairment::parse(text)?,
        None => Impairment::default(),
    };
    let items = [
        ("split", &args.split),
        ("merge", &args.merge),
        ("gap", &args.gap),
        ("hold", &args.hold),
        ("delay", &args.delay),
        ("rate", &args.rate),
        ("reset-after", &args.reset_after),
        ("stall", &args.stall),
        ("dir", &args.dir),
        ("loss", &args.loss),
        ("duplicate", &args.duplicate),
        ("reorder", &args.reorder),
        ("truncate", &args.truncate),
    ];
    if args.random {
        spec.add_item("random")?;
    }
    for (key, value) in items {
        if let Some(value) = value {
            spec.add_item(&format!("{key}={value}"))?;
        }
    }
    match args.transport {
        Transport::Tcp => spec.check_tcp()?,
        Transport::Udp => spec.check_udp()?,
    }
    Ok(spec)
}

/// The relay of either transport, seen the same way.
enum Relay {
    Tcp(TcpRelay),
    Udp(UdpRelay),
}

impl Relay {
    fn observation(&self) -> ProxyObservation {
        match self {
            Relay::Tcp(relay) => relay.observation(),
            Relay::Udp(relay) => relay.observation(),
        }
    }

    fn counters(&self) -> RelayCounters {
        match self {
            Relay::Tcp(relay) => relay.counters(),
            Relay::Udp(relay) => relay.counters(),
        }
    }

    fn closed_connections(&self, skip: &BTreeSet<u64>) -> Vec<ProxyConnection> {
        match self {
            Relay::Tcp(relay) => relay.closed_connections(skip),
            Relay::Udp(relay) => relay.closed_connections(skip),
        }
    }
}

/// The relay's settings from the flags.
fn config(args: &ProxyArgs) -> RelayConfig {
    RelayConfig {
        listen: args.listen,
        max_connections: args.max_connections as usize,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        flow_timeout: Duration::from_secs(args.udp_flow_timeout),
        max_queued_bytes: usize::try_from(args.max_queued).unwrap_or(usize::MAX),
        ..RelayConfig::default()
    }
}

/// What the watch loop printed so far: the connections, and the counts its warnings
/// covered.
struct Watch {
    printed: BTreeSet<u64>,
    finished: u64,
    refused: Warned,
    queue_full: Warned,
}

/// A count that is warned about at most once per [`WARN_EVERY`].
#[derive(Default)]
struct Warned {
    /// The count the last warning covered.
    told: u64,
    last: Option<Instant>,
}

impl Warned {
    /// How many came since the last warning, if there are any and one may be printed now.
    fn due(&mut self, count: u64) -> Option<u64> {
        let quiet = self.last.is_none_or(|last| last.elapsed() >= WARN_EVERY);
        if count <= self.told || !quiet {
            return None;
        }
        let new = count - self.told;
        self.told = count;
        self.last = Some(Instant::now());
        Some(new)
    }
}

impl Watch {
    fn new() -> Self {
        Watch {
            printed: BTreeSet::new(),
            finished: 0,
            refused: Warned::default(),
            queue_full: Warned::default(),
        }
    }

    /// Prints the connections that closed since the last look, and the warnings due.
    /// Reads only counters unless something changed, so an idle relay costs nothing.
    fn look(&mut self, relay: &Relay, args: &ProxyArgs) {
        let counters = relay.counters();
        if counters.finished != self.finished {
            self.finished = counters.finished;
            for connection in relay.closed_connections(&self.printed) {
                self.printed.insert(connection.index);
                println!("{}", connection_line(&connection));
            }
        }
        if let Some(new) = self.refused.due(counters.refused) {
            eprintln!("warning: {}", refused_line(new, &counters, args));
        }
        if let Some(new) = self.queue_full.due(counters.dropped_queue_full) {
            eprintln!(
                "warning: dropped {new} datagrams: the --delay queue held --max-queued {} bytes",
                args.max_queued
            );
        }
    }
}

/// `refused 3 connections (the last from 127.0.0.1:5555): 256 open, ...`
fn refused_line(new: u64, counters: &RelayCounters, args: &ProxyArgs) -> String {
    let from = counters.last_refused.map_or(String::new(), |client| format!(" (the last from {client})"));
    match args.transport {
        Transport::Tcp => format!(
            "refused {new} connections{from}: {} open, as many as --max-connections {} allows; \
             a connection idle for --idle-timeout {} s is closed",
            counters.open, args.max_connections, args.idle_timeout
        ),
        Transport::Udp => format!(
            "dropped {new} datagrams from new client addresses{from}: {} flows open, as many as \
             --max-connections {} allows; a flow idle for --udp-flow-timeout {} s is closed",
            counters.open, args.max_connections, args.udp_flow_timeout
        ),
    }
}

/// Starts the relay, prints its address, prints each connection's counters as it
/// closes, and on Ctrl-C (or SIGTERM) a summary with the seed that replays the run.
pub fn proxy(args: &ProxyArgs) -> Result<()> {
    let spec = spec(args)?;
    let seed = args.seed.unwrap_or_else(fresh_run_seed);
    let config = config(args);
    let relay = match args.transport {
        Transport::Tcp => Relay::Tcp(TcpRelay::start_with(args.upstream, &spec, seed, config)?),
        Transport::Udp => Relay::Udp(UdpRelay::start_with(args.upstream, &spec, seed, config)?),
    };
    let addr = match &relay {
        Relay::Tcp(r) => r.addr(),
        Relay::Udp(r) => r.addr(),
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("start the runtime")?;
    runtime.block_on(async {
        // Registered before the address is printed: a user may stop the relay as soon as
        // they read it.
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listen for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        println!(
            "listening on {addr} ({}, relaying to {}, impair {spec}, seed {seed}); Ctrl-C stops",
            args.transport, args.upstream
        );
        let mut watch = Watch::new();
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = tick.tick() => watch.look(&relay, args),
            }
        }
        let observation = relay.observation();
        for connection in observation.connections.iter().filter(|c| !watch.printed.contains(&c.index)) {
            println!("{}", connection_line(connection));
        }
        println!("{}", summary(&observation, &relay.counters(), args, seed));
        Ok(())
    })
}

/// `connection 0 (127.0.0.1:41000): up 17 B in 3 reads -> 17 B out in 17 writes; down ...`
fn connection_line(c: &ProxyConnection) -> String {
    let mut line = format!(
        "connection {} ({}): up {}; down {}",
        c.index,
        c.client,
        direction_counts(&c.up),
        direction_counts(&c.down)
    );
    if c.reset {
        line += "; reset";
    }
    if let Some(error) = &c.error {
        line += &format!("; {error}");
    }
    line
}

fn direction_counts(d: &ProxyDirection) -> String {
    let mut text = format!(
        "{} B in {} reads -> {} B out in {} writes",
        d.bytes_in, d.reads_in, d.bytes_out, d.writes_out
    );
    for (what, list) in [
        ("dropped", &d.dropped),
        ("duplicated", &d.duplicated),
        ("reordered", &d.reordered),
        ("truncated", &d.truncated),
    ] {
        if list.total > 0 {
            text += &format!(", {} {what}", list.total);
        }
    }
    if d.dropped_queue_full > 0 {
        text += &format!(", {} dropped for a full queue", d.dropped_queue_full);
    }
    text
}

/// The totals and the command that replays the run.
fn summary(observation: &ProxyObservation, counters: &RelayCounters, args: &ProxyArgs, seed: u64) -> String {
    let connections = observation.connections.len() as u64 + observation.connections_left_out;
    let sum = |f: fn(&ProxyDirection) -> u64| -> u64 {
        observation.connections.iter().map(|c| f(&c.up) + f(&c.down)).sum()
    };
    let resets = observation.connections.iter().filter(|c| c.reset).count();
    // Records are kept for the first connections only; say so rather than undercount.
    let counted = match observation.connections_left_out {
        0 => String::new(),
        _ => format!(" (traffic counted for the first {})", observation.connections.len()),
    };
    let mut line = format!(
        "stopped: {connections} connections{counted}, {} B in / {} B out, {} reads in / {} writes out, {resets} resets",
        sum(|d| d.bytes_in),
        sum(|d| d.bytes_out),
        sum(|d| d.reads_in),
        sum(|d| d.writes_out),
    );
    for (what, count) in [
        ("dropped", sum(|d| d.dropped.total)),
        ("duplicated", sum(|d| d.duplicated.total)),
        ("reordered", sum(|d| d.reordered.total)),
        ("truncated", sum(|d| d.truncated.total)),
    ] {
        if count > 0 {
            line += &format!(", {count} {what}");
        }
    }
    let refused = match args.transport {
        Transport::Tcp => "connections refused (--max-connections)",
        Transport::Udp => "datagrams from new clients refused (--max-connections)",
    };
    for (count, what) in [
        (counters.refused, refused),
        (counters.closed_idle, "closed idle"),
        (counters.dropped_queue_full, "dropped for a full queue (--max-queued)"),
    ] {
        if count > 0 {
            line += &format!(", {count} {what}");
        }
    }
    line += &format!(
        "; replay: socklab proxy --upstream {} --transport {} --impair '{}' --seed {seed}",
        args.upstream, args.transport, observation.spec
    );
    line
}
