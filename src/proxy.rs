//! `socklab proxy`: an impairment relay in the foreground, between a user's own client and
//! server, until Ctrl-C.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use socklab_harness::impair::{
    Impairment, ProxyConnection, ProxyDirection, ProxyObservation, TcpRelay, UdpRelay,
};
use socklab_harness::peer::Transport;
use socklab_harness::seed::fresh_run_seed;

use socklab::cli::ProxyArgs;

/// How often closed connections are looked for, to print their counters.
const POLL: Duration = Duration::from_millis(100);

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
}

/// Starts the relay, prints its address, prints each connection's counters as it
/// closes, and on Ctrl-C (or SIGTERM) a summary with the seed that replays the run.
pub fn proxy(args: &ProxyArgs) -> Result<()> {
    let spec = spec(args)?;
    let seed = args.seed.unwrap_or_else(fresh_run_seed);
    let config = socklab_harness::impair::RelayConfig { listen: args.listen, ..Default::default() };
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
        let mut printed = BTreeSet::new();
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = tick.tick() => {
                    for connection in relay.observation().connections.iter().filter(|c| c.closed) {
                        if printed.insert(connection.index) {
                            println!("{}", connection_line(connection));
                        }
                    }
                }
            }
        }
        let observation = relay.observation();
        for connection in observation.connections.iter().filter(|c| !printed.contains(&c.index)) {
            println!("{}", connection_line(connection));
        }
        println!("{}", summary(&observation, args, seed));
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
    text
}

/// The totals and the command that replays the run.
fn summary(observation: &ProxyObservation, args: &ProxyArgs, seed: u64) -> String {
    let connections = observation.connections.len() as u64 + observation.connections_left_out;
    let sum = |f: fn(&ProxyDirection) -> u64| -> u64 {
        observation.connections.iter().map(|c| f(&c.up) + f(&c.down)).sum()
    };
    let resets = observation.connections.iter().filter(|c| c.reset).count();
    let mut line = format!(
        "stopped: {connections} connections, {} B in / {} B out, {} reads in / {} writes out, {resets} resets",
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
    line += &format!(
        "; replay: socklab proxy --upstream {} --transport {} --impair '{}' --seed {seed}",
        args.upstream, args.transport, observation.spec
    );
    line
}
