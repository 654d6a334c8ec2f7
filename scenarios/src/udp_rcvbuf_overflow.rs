//! `udp-rcvbuf-overflow`: a burst into a small receive buffer is dropped silently.
//!
//! The receiver sets `SO_RCVBUF` and reads nothing for `pause_ms`, while the sender bursts
//! `count` numbered datagrams of `size` bytes over loopback. What does not fit is dropped
//! with no error to either side. The drops are counted three independent ways: sequence
//! gaps seen by the receiver, the socket's `SO_RXQ_OVFL` counter, and the kernel's
//! `Udp: RcvbufErrors` counter. When socklab may create network namespaces the case runs
//! in a private one, so the kernel counter sees only this case's traffic.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::net::{
    BufferSize, MAX_UDP_PAYLOAD_V4, NetnsMode, UdpCounters, enable_rxq_ovfl, read_udp_counters,
    recv_datagram, rmem_max, set_recv_buffer,
};
use socklab_harness::params::ParamSpec;
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario, TableSpec};
use socklab_harness::shared_params;

use crate::experiment::EXPERIMENT_THREAD;
use crate::netns_scope::{Scope, run_scoped_blocking};

/// The scenario; see the module docs.
pub struct UdpRcvbufOverflow;

socklab_harness::params! {
    /// Parameters of `udp-rcvbuf-overflow`.
    pub struct Params {
        /// SO_RCVBUF the receiver asks for (Linux doubles it and caps it at net.core.rmem_max)
        rcvbuf: u64 = 64 * 1024 => ParamSpec::int(1, 64 << 20).unit("bytes"),
        /// datagrams in the burst
        count: u64 = 1000 => ParamSpec::int(1, 100_000).unit("datagrams"),
        /// bytes per datagram (8 for the sequence number .. 65507)
        size: u64 = 1024 => ParamSpec::int(8, MAX_UDP_PAYLOAD_V4 as u64).unit("bytes"),
        /// the receiver reads nothing for this long from the start of the burst
        pause_ms: u64 = 20 => ParamSpec::int(0, 10_000).unit("ms"),
        /// auto: a private network namespace when CAP_NET_ADMIN is held (exact kernel count); never
        netns: NetnsMode => shared_params::NETNS,
    }
}

/// The marker's sequence number; burst datagrams are numbered from 0.
const MARKER: u64 = u64::MAX;
/// Longest the receiver waits for any one datagram once the burst is over.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Markers sent at most (one is enough on loopback once the queue is empty).
const MARKER_TRIES: u32 = 3;

socklab_harness::model::metrics! {
    /// SO_RCVBUF asked for
    rcvbuf_requested: Bytes, Neither;
    /// SO_RCVBUF the kernel applied (getsockopt)
    rcvbuf_effective: Bytes, Neither;
    /// net.core.rmem_max, the cap on requests
    rmem_max: Bytes, Neither;
    /// datagrams of the burst sent without error
    sent: Count, Neither;
    /// distinct datagrams of the burst received
    delivered: Count, Neither;
    /// sent but never received (sequence gaps)
    drops_seq_gaps: Count, Lower;
    /// the socket's drop counter, from SO_RXQ_OVFL on the marker after the burst
    drops_rxq_ovfl: Count, Lower;
    /// Udp: RcvbufErrors delta in /proc/net/snmp (exact in a private namespace)
    drops_snmp: Count, Lower;
    /// 1 when the case ran in its own network namespace, 0 when the kernel count is system-wide
    private_netns: Count, Neither;
    /// how long the burst took to send
    burst: Millis, Neither;
}

impl Scenario for UdpRcvbufOverflow {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "udp-rcvbuf-overflow";
    const SUMMARY: &'static str =
        "a UDP burst into a small receive buffer is dropped silently, counted three independent ways";
    const EXPLANATION: &'static str = "\
What it shows: the receiver sets SO_RCVBUF and reads nothing for pause_ms while the sender \
bursts count datagrams at it over loopback. Every send succeeds; the receiver gets only what \
fitted in its buffer, and nobody is told about the rest. The drops are counted three \
independent ways, and they agree: sequence numbers missing at the receiver; the socket's own \
drop counter, which Linux attaches to received datagrams as SO_RXQ_OVFL ancillary data \
(socket(7)) — only when it is not zero, so a marker datagram after the burst carries the \
final count; and the kernel's Udp: RcvbufErrors counter in /proc/net/snmp. That counter \
belongs to a network namespace: when socklab holds CAP_NET_ADMIN the case runs in a private \
namespace and the count is exact, otherwise it includes every other process's drops and is \
reported as system-wide, approximate. The report's drops_* metrics fall as rcvbuf grows.

Why it happens: UDP has no flow control. A datagram arrives whether or not the application \
is reading; the kernel queues it only while the socket's queued memory is within its receive \
buffer, and drops it otherwise (counting RcvbufErrors and InErrors). The memory charged is \
the packet's whole kernel buffer (its truesize: data plus sk_buff overhead), not just the \
payload, so fewer datagrams fit than rcvbuf / size suggests. Linux doubles the SO_RCVBUF \
value it is given, to leave room for that overhead, after capping it at net.core.rmem_max \
(socket(7)); the rcvbuf_requested, rcvbuf_effective and rmem_max metrics show the rule as \
measured, and the rcvbuf_doubled_and_capped check tests it.

What fixes it: read promptly (a dedicated receive thread, recvmmsg for batches); size the \
buffer for the largest burst the protocol allows (raise net.core.rmem_max, or use \
SO_RCVBUFFORCE with CAP_NET_ADMIN); pace the sender or add flow control and \
acknowledgements; and watch the counters (SO_RXQ_OVFL per socket, RcvbufErrors per host) so \
drops are seen rather than guessed.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const TABLE: Option<TableSpec> = Some(TableSpec {
        rows: "rcvbuf",
        columns: "size",
        cells: &["rcvbuf_effective", "delivered", "drops_seq_gaps", "drops_rxq_ovfl", "drops_snmp"],
    });

    async fn run(params: Params, _ctx: CaseContext) -> Result<Measured, CaseError> {
        run_scoped_blocking(params.netns, EXPERIMENT_THREAD, move |scope| experiment(&params, scope)).await
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// Everything the experiment measured.
#[derive(Default)]
pub struct Measured {
    scope: Scope,
    rcvbuf: BufferSize,
    rmem_max: u64,
    sent: u64,
    send_errors: u64,
    delivered: u64,
    ovfl: u64,
    snmp: UdpCounters,
    burst: Duration,
}

/// The burst, the pause, the drain and the marker, on the calling thread's namespace.
fn experiment(params: &Params, scope: Scope) -> Result<Measured, CaseError> {
    let rmem_max = rmem_max().context("read net.core.rmem_max")?;
    let receiver = UdpSocket::bind("127.0.0.1:0").context("bind the receiver to 127.0.0.1:0")?;
    let addr = receiver.local_addr().context("read the receiver's address")?;
    let rcvbuf = set_recv_buffer(&receiver, params.rcvbuf as usize).context("set SO_RCVBUF")?;
    enable_rxq_ovfl(&receiver).context("enable SO_RXQ_OVFL")?;
    receiver.set_read_timeout(Some(RECV_TIMEOUT)).context("set a receive timeout")?;
    let sender = UdpSocket::bind("127.0.0.1:0").context("bind the sender to 127.0.0.1:0")?;
    sender.connect(addr).context(format!("connect the sender to {addr}"))?;
    let snmp_before = read_udp_counters()?;

    let burst_done = Arc::new(AtomicBool::new(false));
    let (drained_tx, drained_rx) = mpsc::channel();
    let reader = {
        let burst_done = Arc::clone(&burst_done);
        let (count, size, pause) =
            (params.count, params.size as usize, Duration::from_millis(params.pause_ms));
        std::thread::Builder::new()
            .name("socklab-udp-reader".into())
            .spawn(move || read_all(&receiver, count, size, pause, &burst_done, &drained_tx))
            .context("start the reader thread")?
    };

    let started = Instant::now();
    let mut payload = vec![0u8; params.size as usize];
    let (mut sent, mut send_errors) = (0u64, 0u64);
    for seq in 0..params.count {
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        match sender.send(&payload) {
            Ok(_) => sent += 1,
            Err(_) => send_errors += 1,
        }
    }
    let burst = started.elapsed();
    burst_done.store(true, Ordering::Release);
    // The marker goes out once the reader has emptied the queue, so it is never dropped
    // itself; it carries the socket's final drop count.
    let drained = drained_rx.recv_timeout(Duration::from_millis(params.pause_ms) + RECV_TIMEOUT * 2).is_ok();
    if drained {
        payload[..8].copy_from_slice(&MARKER.to_be_bytes());
        for _ in 0..MARKER_TRIES {
            sender.send(&payload).context("send the marker")?;
            if drained_rx.recv_timeout(RECV_TIMEOUT).is_ok() {
                break;
            }
        }
    }
    let read = reader
        .join()
        .map_err(|_| CaseError::Task { task: "the reader thread", what: "panicked".into() })??;
    let snmp = read_udp_counters()?.since(&snmp_before);
    let ovfl = read.marker_drops.ok_or_else(|| {
        CaseError::Protocol("the marker datagram never arrived, so SO_RXQ_OVFL could not be read".into())
    })?;
    Ok(Measured { scope, rcvbuf, rmem_max, sent, send_errors, delivered: read.delivered, ovfl, snmp, burst })
}

/// What the reader got.
struct Read {
    delivered: u64,
    /// The marker's SO_RXQ_OVFL value (0 when the kernel attached none).
    marker_drops: Option<u64>,
}

/// Sleeps `pause`, then reads until the burst is over and the queue is empty (says so on
/// `drained`), then waits for the marker (says so again).
fn read_all(
    socket: &UdpSocket,
    count: u64,
    size: usize,
    pause: Duration,
    burst_done: &AtomicBool,
    drained: &mpsc::Sender<()>,
) -> Result<Read, CaseError> {
    std::thread::sleep(pause);
    let mut seen = BTreeSet::new();
    let mut buf = vec![0u8; size.max(8)];
    let deadline = Instant::now() + pause + RECV_TIMEOUT * 4;
    let mut marker_drops = None;
    let mut announced = false;
    // Bounded by the deadline; every pass receives, or waits at most 1 ms.
    while Instant::now() < deadline {
        match recv_datagram(socket, &mut buf, libc::MSG_DONTWAIT) {
            Ok(d) if d.copied >= 8 => {
                let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                if seq == MARKER {
                    marker_drops = Some(u64::from(d.drops.unwrap_or(0)));
                    let _ = drained.send(());
                    break;
                }
                if seq < count {
                    seen.insert(seq);
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if burst_done.load(Ordering::Acquire) && !announced {
                    announced = true;
                    let _ = drained.send(());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(CaseError::Io { context: "receive a datagram".into(), error: e }),
        }
    }
    Ok(Read { delivered: seen.len() as u64, marker_drops })
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let gaps = m.sent.saturating_sub(m.delivered);
    let snmp = m.snmp.rcvbuf_errors;
    let private = matches!(m.scope, Scope::Private);
    let mut outcome = CaseOutcome::default();
    outcome
        .key_metric(metric::rcvbuf_requested, params.rcvbuf as f64)
        .key_metric(metric::rcvbuf_effective, m.rcvbuf.effective as f64)
        .metric(metric::rmem_max, m.rmem_max as f64)
        .metric(metric::sent, m.sent as f64)
        .key_metric(metric::delivered, m.delivered as f64)
        .key_metric(metric::drops_seq_gaps, gaps as f64)
        .key_metric(metric::drops_rxq_ovfl, m.ovfl as f64)
        .key_metric(metric::drops_snmp, snmp as f64)
        .metric(metric::private_netns, if private { 1.0 } else { 0.0 })
        .metric(metric::burst, m.burst.as_secs_f64() * 1e3);

    let counts = format!("gaps {gaps}, SO_RXQ_OVFL {}, RcvbufErrors {snmp}", m.ovfl);
    let send_note =
        if m.send_errors > 0 { format!("; {} sends failed", m.send_errors) } else { String::new() };
    // The burst must have gone out and something must have been read, or there is
    // nothing for three counters to agree about.
    let burst = format!("{} of {} sent, {} delivered", m.sent, params.count, m.delivered);
    let judged = m.sent == params.count && m.delivered >= 1;
    let check = match &m.scope {
        Scope::Private => Check::new(
            "counts_agree",
            format!(
                "all {} sent; gaps = SO_RXQ_OVFL = RcvbufErrors (exact: private network namespace)",
                params.count
            ),
            format!("{burst}; {counts}{send_note}"),
            judged && gaps == m.ovfl && m.ovfl == snmp,
            "three independent counters of the same drops; in its own namespace nothing else adds to RcvbufErrors",
        ),
        Scope::SystemWide(reason) => Check::new(
            "counts_agree",
            format!(
                "all {} sent; gaps = SO_RXQ_OVFL; RcvbufErrors >= them (system-wide, approximate)",
                params.count
            ),
            format!("{burst}; {counts}{send_note}; RcvbufErrors is system-wide, approximate: {reason}"),
            judged && gaps == m.ovfl && snmp >= gaps,
            "the socket's counters agree exactly; the kernel counter also counts other processes' drops",
        ),
    };
    outcome.checks.push(check);

    let predicted = BufferSize::predicted(params.rcvbuf as usize, m.rmem_max);
    // Below a few KiB the kernel's floor (SOCK_MIN_RCVBUF) wins over the doubling rule.
    let ok = m.rmem_max > 0
        && m.rcvbuf.effective > 0
        && (m.rcvbuf.effective as u64 == predicted
            || (predicted < 8192 && m.rcvbuf.effective as u64 >= predicted));
    outcome.checks.push(Check::new(
        "rcvbuf_doubled_and_capped",
        format!("effective = 2 × min({}, rmem_max {}) = {predicted}", params.rcvbuf, m.rmem_max),
        format!("effective {}", m.rcvbuf.effective),
        ok,
        "Linux doubles SO_RCVBUF for bookkeeping overhead after capping the request at net.core.rmem_max",
    ));
    outcome
}
