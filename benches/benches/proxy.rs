//! What the impairment relay costs, and whether its shaping is accurate, measured in one
//! run with the baseline beside each figure:
//!
//! - bulk throughput: a direct loopback connection, the relay passing through with
//!   `splice(2)`, and with a plain `read`/`write` copy (target: splice ≥ 0.8× direct);
//! - 64-byte ping-pong p50 round trip, direct and through the relay (target: at most
//!   30 µs added);
//! - `rate`: bytes received in the 2 s after the first, against the rate (target: within
//!   5%);
//! - `delay=5ms` on the client-to-server direction: p50 round trip minus the direct p50
//!   (target: 5 ms ± 1 ms), and the relay's own record of the delay it added.
//!
//! Not criterion: the targets are a ratio of two medians, percentiles of single round
//! trips and a rate over a fixed window, which criterion's per-iteration means do not
//! give. Rounds alternate direct and relayed runs so that a change in machine load hits
//! both; every figure is printed as the median with the spread (min..max) of the rounds.
//!
//! `cargo bench -p socklab-benches --bench proxy` (`ROUNDS=5` by default; `QUICK=1` for a
//! short pass). Run it when `uptime` shows a low load; `bash ci/compare-proxy.sh` does,
//! and cross-checks the rate with an independent receiver.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socklab_harness::impair::{Impairment, PassThrough, RelayConfig, TcpRelay};

const MIB: f64 = 1024.0 * 1024.0;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Whether part `name` runs: all by default, or those `ONLY` lists (`ONLY=bulk,rate`).
fn runs(name: &str) -> bool {
    std::env::var("ONLY").map_or(true, |only| only.split(',').any(|o| o.trim() == name))
}

fn quick() -> bool {
    std::env::var_os("QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Where a run connects: straight to the server, or through a relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Direct,
    Splice,
    Copy,
}

fn relay(path: Path, upstream: SocketAddr, spec: &str) -> Option<TcpRelay> {
    let pass_through = match path {
        Path::Direct => return None,
        Path::Splice => PassThrough::Splice,
        Path::Copy => PassThrough::Copy,
    };
    let spec = Impairment::parse(spec).expect("a valid spec");
    let config = RelayConfig { pass_through, ..RelayConfig::default() };
    Some(TcpRelay::start_with(upstream, &spec, 1, config).expect("start the relay"))
}

/// A sink that reads its one client to EOF; returns the bytes and when EOF came.
fn sink() -> (SocketAddr, thread::JoinHandle<(u64, Instant)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return (total, Instant::now()),
                Ok(n) => total += n as u64,
            }
        }
    });
    (addr, handle)
}

/// MiB/s of `bytes` written in 256 KiB writes, from connect to the server's EOF.
fn bulk(path: Path, bytes: u64) -> f64 {
    let (server, done) = sink();
    let relay = relay(path, server, "none");
    let target = relay.as_ref().map_or(server, TcpRelay::addr);
    let chunk = vec![7u8; 256 << 10];
    let started = Instant::now();
    let mut stream = TcpStream::connect(target).unwrap();
    let mut sent = 0u64;
    while sent < bytes {
        stream.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let (received, at) = done.join().unwrap();
    assert_eq!(received, sent, "{path:?}: every byte arrives");
    received as f64 / MIB / at.duration_since(started).as_secs_f64()
}

/// An echo server for one client.
fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    addr
}

/// Round trips of 64-byte messages, in nanoseconds, sorted; after 200 unmeasured.
fn ping_pong(path: Path, spec: &str, count: usize) -> (Vec<u64>, Option<TcpRelay>) {
    let server = echo();
    let relay = relay(path, server, spec);
    let target = relay.as_ref().map_or(server, TcpRelay::addr);
    let mut stream = TcpStream::connect(target).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (message, mut reply) = ([1u8; 64], [0u8; 64]);
    let mut samples = Vec::with_capacity(count);
    for i in 0..count + 200 {
        let sent = Instant::now();
        stream.write_all(&message).unwrap();
        stream.read_exact(&mut reply).unwrap();
        if i >= 200 {
            samples.push(sent.elapsed().as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    (samples, relay)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

/// Bytes per second received in the `window` after the first byte, through `rate=SPEC`.
fn rate(spec: &str, window: Duration) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let receiver = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut first = None;
        let mut counted = 0u64;
        let deadline = Instant::now() + window + Duration::from_secs(10);
        while Instant::now() < deadline {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => continue,
            };
            let now = Instant::now();
            let start = *first.get_or_insert(now);
            if now.duration_since(start) > window {
                break;
            }
            counted += n as u64;
        }
        counted as f64 / window.as_secs_f64()
    });
    let relay = relay(Path::Splice, server, &format!("rate={spec}")).unwrap();
    let mut stream = TcpStream::connect(relay.addr()).unwrap();
    stream.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
    let chunk = vec![1u8; 64 << 10];
    while !receiver.is_finished() {
        let _ = stream.write(&chunk); // times out while the bucket holds the relay back
    }
    receiver.join().unwrap()
}

struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    Spread { median: values[values.len() / 2], min: values[0], max: values[values.len() - 1] }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} ({:.1}..{:.1})", self.median, self.min, self.max)
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let rounds = env_number("ROUNDS", if quick() { 2 } else { 5 }).max(1);
    let bulk_bytes: u64 = if quick() { 128 << 20 } else { 1 << 30 };
    let pings = if quick() { 2_000 } else { 20_000 };
    println!("socklab proxy benchmark: {rounds} rounds, load average before: {}", load());

    if runs("bulk") {
        bulk_section(rounds, bulk_bytes);
    }
    if runs("latency") {
        latency_section(rounds, pings);
    }
    if runs("rate") {
        rate_section(rounds);
    }
    if runs("delay") {
        delay_section(rounds);
    }
    println!("\nload average after: {}", load());
}

fn bulk_section(rounds: usize, bulk_bytes: u64) {
    // Alternating paths each round.
    let mut mib_s: [Vec<f64>; 3] = Default::default();
    let mut ratio_splice = Vec::new();
    let mut ratio_copy = Vec::new();
    for _ in 0..rounds {
        let direct = bulk(Path::Direct, bulk_bytes);
        let splice = bulk(Path::Splice, bulk_bytes);
        let copy = bulk(Path::Copy, bulk_bytes);
        mib_s[0].push(direct);
        mib_s[1].push(splice);
        mib_s[2].push(copy);
        ratio_splice.push(splice / direct);
        ratio_copy.push(copy / direct);
    }
    println!("\nbulk throughput, {} MiB per run, MiB/s: median (min..max over rounds)", bulk_bytes >> 20);
    println!("  direct               {}", spread(mib_s[0].clone()));
    println!(
        "  relay, splice        {}   ratio to direct {:.2} (per-round ratios {})",
        spread(mib_s[1].clone()),
        spread(ratio_splice.clone()).median,
        fmt_all(&ratio_splice)
    );
    println!(
        "  relay, read/write    {}   ratio to direct {:.2} (per-round ratios {})",
        spread(mib_s[2].clone()),
        spread(ratio_copy.clone()).median,
        fmt_all(&ratio_copy)
    );
    println!("  target: splice ratio >= 0.80: {}", verdict(spread(ratio_splice).median >= 0.8));
}

fn latency_section(rounds: usize, pings: usize) {
    let mut p50 = [Vec::new(), Vec::new()];
    let mut p99 = [Vec::new(), Vec::new()];
    let mut added = Vec::new();
    for _ in 0..rounds {
        let (direct, _) = ping_pong(Path::Direct, "none", pings);
        let (relayed, _) = ping_pong(Path::Splice, "none", pings);
        p50[0].push(percentile(&direct, 0.5) / 1e3);
        p50[1].push(percentile(&relayed, 0.5) / 1e3);
        p99[0].push(percentile(&direct, 0.99) / 1e3);
        p99[1].push(percentile(&relayed, 0.99) / 1e3);
        added.push((percentile(&relayed, 0.5) - percentile(&direct, 0.5)) / 1e3);
    }
    println!("\n64-byte ping-pong round trip, {pings} per run, µs: median (min..max over rounds)");
    println!("  direct        p50 {}   p99 {}", spread(p50[0].clone()), spread(p99[0].clone()));
    println!("  relay         p50 {}   p99 {}", spread(p50[1].clone()), spread(p99[1].clone()));
    let added = spread(added);
    println!("  added p50     {added} µs; target <= 30 µs: {}", verdict(added.median <= 30.0));
}

/// Rate accuracy over 2 s.
fn rate_section(rounds: usize) {
    let window = Duration::from_secs(2);
    for (spec, bytes_per_s) in [("1MiB/s", MIB), ("20MiB/s", 20.0 * MIB)] {
        let errors: Vec<f64> =
            (0..rounds.min(3)).map(|_| (rate(spec, window) / bytes_per_s - 1.0) * 100.0).collect();
        let e = spread(errors.clone());
        println!(
            "\nrate={spec}: received in the 2 s after the first byte, error against the rate, %: {e}; every round within 5%: {}",
            verdict(errors.iter().all(|e| e.abs() <= 5.0))
        );
    }
}

/// `delay=5ms`, client to server only: the round trip grows by 5 ms.
fn delay_section(rounds: usize) {
    let delays = if quick() { 100 } else { 400 };
    let mut extra = Vec::new();
    let mut recorded = Vec::new();
    for _ in 0..rounds.min(3) {
        let (direct, _) = ping_pong(Path::Direct, "none", delays);
        let (delayed, relay) = ping_pong(Path::Splice, "delay=5ms+dir=up", delays);
        extra.push((percentile(&delayed, 0.5) - percentile(&direct, 0.5)) / 1e6);
        if let Some(relay) = relay {
            let mut own: Vec<u64> = relay
                .observation()
                .connections
                .iter()
                .flat_map(|c| c.up.output_writes.first.iter().map(|w| w.delay_us as u64))
                .collect();
            own.sort_unstable();
            recorded.push(percentile(&own, 0.5) / 1e3);
        }
    }
    let extra = spread(extra);
    println!(
        "\ndelay=5ms (client to server), {delays} round trips per run: p50 round trip minus direct p50, ms: {extra}; target 5 ± 1 ms: {}",
        verdict((extra.median - 5.0).abs() <= 1.0)
    );
    println!("  the relay's own record of the delay it added, p50 per write, ms: {}", spread(recorded));
}

fn fmt_all(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" ")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
