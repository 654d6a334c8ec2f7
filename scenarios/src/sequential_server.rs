//! `sequential-server`: a one-client-at-a-time server makes the others queue.
//!
//! `clients` clients connect at the same moment to a server listening with
//! `listen(backlog)`; each sends a request line, reads the reply, holds its session for
//! `hold_ms` and closes. The `sequential` server (the tutorials' `while True: conn =
//! accept(); handle(conn)`) serves them one after another, so the k-th served waits
//! about k × `hold_ms` for its first reply; `threaded` (a thread per connection) and
//! `tokio` (a task per connection) answer all of them at once.
//!
//! Per client the case records the connect time, the time to the first reply (from the
//! common start) and the time in the accept queue (from the end of its handshake to the
//! server's `accept()`). When the accept queue is full the kernel drops further SYNs
//! (the client's connect waits for its SYN to be sent again, 1 s later, then 3 s, ...),
//! counted by `ListenOverflows`/`ListenDrops` in `/proc/net/netstat` — exactly, when the
//! case runs in a private network namespace (with `CAP_NET_ADMIN`).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use socklab_harness::check::Check;
use socklab_harness::net::{ListenCounters, NetnsMode, read_listen_counters};
use socklab_harness::params::ParamSpec;
use socklab_harness::peer::Flavour;
use socklab_harness::report::{MetricSpec, Unit, ValueSeries};
use socklab_harness::scenario::{
    BarSource, BarSpec, Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario,
};
use socklab_harness::shared_params;
use thiserror::Error;

use crate::blocking::{self, Stop, WaitError, read_some, tcp_socket, timed_out, wait_readable};
use crate::experiment::EXPERIMENT_THREAD;
use crate::netns_scope::{Scope, run_scoped_blocking};

/// The scenario; see the module docs.
pub struct SequentialServer;

socklab_harness::params! {
    /// Parameters of `sequential-server`.
    pub struct Params {
        /// sequential: one client at a time; threaded: a thread per connection; tokio: a task per
        /// connection
        flavour: Flavour = Flavour::Sequential => shared_params::FLAVOUR,
        /// clients that connect at the same moment
        clients: u64 = 5 => ParamSpec::int(1, 64).unit("clients"),
        /// each client holds its session this long after its first reply, then closes
        hold_ms: u64 = 100 => ParamSpec::int(1, 2000).unit("ms"),
        /// listen() backlog: Linux queues backlog + 1 finished handshakes, then drops SYNs
        backlog: u64 = 16 => ParamSpec::int(0, 4096).unit("connections"),
        /// a client gives up connecting after this long (SYN retransmissions come after 1 s, 3 s, 7 s)
        connect_limit_ms: u64 = 3000 => ParamSpec::int(100, 20_000).unit("ms"),
        /// auto: a private network namespace when CAP_NET_ADMIN is held (exact ListenOverflows); never
        netns: NetnsMode => shared_params::NETNS,
    }
}

/// A connect that took longer than this waited for a SYN to be sent again (the first
/// retransmission comes after 1 s).
const WAITED: Duration = Duration::from_millis(500);
const REQUEST: &[u8] = b"hello\n";
const REPLY: &[u8] = b"HELLO\n";

socklab_harness::model::metrics! {
    /// clients that got their reply
    clients_served: Count, Neither;
    /// the longest any client waited for its first reply, from the common start
    first_reply_max: Millis, Lower;
    /// the longest a finished handshake waited in the accept queue for accept()
    time_in_queue_max: Millis, Lower;
    /// the longest connect() took
    connect_max: Millis, Lower;
    /// connects that took over 500 ms: their first SYN was dropped and sent again
    connects_waited: Count, Neither;
    /// connects that failed or did not finish within connect_limit_ms
    connects_failed: Count, Neither;
    /// TcpExt ListenOverflows delta in /proc/net/netstat (exact in a private namespace)
    listen_overflows: Count, Neither;
    /// TcpExt ListenDrops delta in /proc/net/netstat (exact in a private namespace)
    listen_drops: Count, Neither;
    /// 1 when the case ran in its own network namespace, 0 when the counters are system-wide
    private_netns: Count, Neither;
}

impl Scenario for SequentialServer {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "sequential-server";
    const SUMMARY: &'static str = "a one-client-at-a-time server makes the others queue: the k-th waits k × hold; a full backlog drops SYNs";
    const EXPLANATION: &'static str = "\
What you see: clients connect at the same moment; each sends a line, reads the reply, holds \
its session for hold_ms and closes. Every connect() succeeds at once — yet with the \
sequential server the k-th client served gets its first reply only after about k × hold_ms: \
the chart of time in queue per client is a staircase. With the threaded and tokio servers \
every client is answered within a millisecond or two. With a small backlog (backlog = 1 and \
6 clients), some connects take a second or more (connects_waited), and ListenOverflows and \
ListenDrops in /proc/net/netstat count the SYNs the kernel dropped.

Why the kernel does it: the kernel, not the server, completes TCP handshakes. A listening \
socket has an accept queue; a connection whose handshake is done waits there until the \
program calls accept(), and the client's connect() has returned long before. A server that \
serves one connection until it closes calls accept() only after that, so everyone else \
waits in the queue, their requests unread. listen(backlog) sizes that queue: Linux keeps up \
to backlog + 1 finished connections (capped at net.core.somaxconn). When it is full, the \
kernel drops incoming SYNs (counting ListenOverflows and ListenDrops); the client's kernel \
sends the SYN again after 1 s, then 3 s, 7 s (net.ipv4.tcp_syn_retries), so connect() \
just takes longer, or fails after its timeout.

The fix, in code a learner would write: serve each connection concurrently — a thread per \
connection,

    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || handle(stream));
    }

or a task per connection with tokio (`tokio::spawn(handle(stream))`), or Python's \
socketserver.ThreadingTCPServer / asyncio.start_server. Size listen()'s backlog for bursts \
(Python's default is small; Rust's std uses 128), and watch `nstat -az TcpExtListenOverflows`.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const SWEEP: &'static [(&'static str, &'static str)] = &[("flavour", "sequential,threaded,tokio")];
    const BARS: &'static [BarSpec] = &[BarSpec {
        title: "Time in the accept queue per client, in the order served (ms)",
        values: "time_in_queue",
        groups: BarSource::Items,
    }];

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let cancel = ctx.cancel.clone();
        run_scoped_blocking(params.netns, EXPERIMENT_THREAD, move |scope| experiment(&params, &cancel, scope))
            .await
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// Everything a case measured.
#[derive(Default)]
pub struct Measured {
    scope: Scope,
    clients: Vec<ClientRecord>,
    /// `accept()` times by the client's port, on the case clock.
    accepted: BTreeMap<u16, Duration>,
    counters: ListenCounters,
}

/// One client, from the common start.
#[derive(Debug, Clone, Default)]
struct ClientRecord {
    port: Option<u16>,
    /// How long connect() took, and whether it completed.
    connect: Duration,
    connected: bool,
    /// When the handshake completed, on the case clock.
    connected_at: Duration,
    /// When the reply arrived, from the common start.
    first_reply: Option<Duration>,
    error: Option<String>,
}

/// The server, the clients, the counters, in the calling thread's namespace (threads
/// started here inherit it).
fn experiment(params: &Params, cancel: &Cancel, scope: Scope) -> Result<Measured, CaseError> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).context("make the listening socket")?;
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&SockAddr::from(any)).context("bind 127.0.0.1:0")?;
    socket.listen(params.backlog as i32).context(format!("listen({})", params.backlog))?;
    let listener: TcpListener = socket.into();
    listener.set_nonblocking(true).context("make the listener non-blocking")?;
    let addr = listener.local_addr().context("read the bound address")?;
    let clock = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(BTreeMap::new()));
    let before = read_listen_counters()?;

    let server = {
        let (stop, accepted, cancel, flavour) =
            (stop.clone(), accepted.clone(), cancel.clone(), params.flavour);
        std::thread::Builder::new()
            .name("socklab-seq-server".into())
            .spawn(move || {
                let stop = Stop { cancel: &cancel, flag: Some(&stop) };
                match flavour {
                    Flavour::Sequential => sequential(&listener, clock, stop, &accepted),
                    Flavour::Threaded => threaded(&listener, clock, stop, &accepted),
                    Flavour::Tokio => tokio_flavour(listener, clock, stop, &accepted),
                }
            })
            .context("start the server thread")?
    };

    let barrier = Arc::new(Barrier::new(params.clients as usize));
    let mut handles = Vec::new();
    for _ in 0..params.clients {
        let socket = tcp_socket().context("make a client socket")?;
        let (barrier, cancel, stop, p) = (barrier.clone(), cancel.clone(), stop.clone(), params.clone());
        let handle = std::thread::Builder::new()
            .name("socklab-seq-client".into())
            .spawn(move || {
                barrier.wait();
                client(socket, addr, &p, clock, Stop { cancel: &cancel, flag: Some(&stop) })
            })
            .context("start a client thread")?;
        handles.push(handle);
    }
    let clients: Vec<ClientRecord> = handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| ClientRecord {
                error: Some("panicked".into()),
                ..ClientRecord::default()
            })
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    server
        .join()
        .map_err(|_| CaseError::Task { task: "the server thread", what: "panicked".into() })?
        .context("run the server")?;
    cancel.check()?;
    let counters = read_listen_counters()?.since(&before);
    let accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    Ok(Measured { scope, clients, accepted, counters })
}

/// Why a client got no reply: what its record says.
#[derive(Debug, Error)]
enum ClientError {
    /// The handshake did not finish within `connect_limit_ms`.
    #[error("connect did not finish in {0} ms")]
    ConnectDeadline(u64),
    /// The connect failed.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The case was cancelled or is over.
    #[error("stopped")]
    Stopped,
    /// The socket refused a read timeout.
    #[error("{0}")]
    SetTimeout(io::Error),
    /// Sending the request failed.
    #[error("write: {0}")]
    Write(io::Error),
    /// The server closed before the reply line was in.
    #[error("the server closed before replying")]
    Closed,
    /// No reply line within this long.
    #[error("no reply within {} ms", .0.as_millis())]
    NoReply(Duration),
    /// Reading the reply failed.
    #[error("read: {0}")]
    Read(io::Error),
}

/// One client: connect, send a line, read the reply, hold, close.
fn client(socket: Socket, addr: SocketAddr, params: &Params, clock: Instant, stop: Stop<'_>) -> ClientRecord {
    let start = clock.elapsed();
    let deadline = Instant::now() + Duration::from_millis(params.connect_limit_ms);
    let connected = blocking::connect(socket, addr, deadline, stop);
    let mut record = ClientRecord { connect: connected.took, ..ClientRecord::default() };
    let mut stream = match connected.stream {
        Ok(stream) => stream,
        Err(e) => {
            let e = match e {
                WaitError::Deadline => ClientError::ConnectDeadline(params.connect_limit_ms),
                WaitError::Stopped => ClientError::Stopped,
                WaitError::Io(e) => ClientError::Connect(e),
            };
            record.error = Some(e.to_string());
            return record;
        }
    };
    record.connected = true;
    record.connected_at = clock.elapsed();
    record.port = stream.local_addr().ok().map(|a| a.port());
    match exchange(&mut stream, params, stop) {
        Ok(()) => {
            record.first_reply = Some(clock.elapsed().saturating_sub(start));
            blocking::sleep(Duration::from_millis(params.hold_ms), stop);
        }
        Err(e) => record.error = Some(e.to_string()),
    }
    record
}

/// Sends the request and reads until the reply line is in.
fn exchange(stream: &mut TcpStream, params: &Params, stop: Stop<'_>) -> Result<(), ClientError> {
    stream.set_read_timeout(Some(Cancel::CHECK_EVERY)).map_err(ClientError::SetTimeout)?;
    stream.write_all(REQUEST).map_err(ClientError::Write)?;
    // Every other client's session may come first: wait for all of them, and more.
    let wait = Duration::from_millis(params.hold_ms * params.clients * 2 + params.connect_limit_ms)
        + Duration::from_secs(2);
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\n") {
        match read_some(stream, &mut buf, deadline, stop) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(WaitError::Deadline) => return Err(ClientError::NoReply(wait)),
            Err(WaitError::Stopped) => return Err(ClientError::Stopped),
            Err(WaitError::Io(e)) => return Err(ClientError::Read(e)),
        }
    }
    Ok(())
}

/// Reads the request line, replies, then reads until the client closes (bounded).
fn session(mut stream: TcpStream, stop: Stop<'_>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Cancel::CHECK_EVERY))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    let io = |e: WaitError| match e {
        WaitError::Io(e) => e,
        _ => std::io::Error::from(std::io::ErrorKind::TimedOut),
    };
    while !got.ends_with(b"\n") {
        let n = read_some(&mut stream, &mut buf, deadline, stop).map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        got.extend_from_slice(&buf[..n]);
    }
    stream.write_all(REPLY)?;
    // Until EOF: the client holds its session.
    while read_some(&mut stream, &mut buf, deadline, stop).map_err(io)? > 0 {}
    Ok(())
}

/// Waits (in slices) for a connection and accepts it, recording when, by client port.
fn accept_one(
    listener: &TcpListener,
    clock: Instant,
    stop: Stop<'_>,
    accepted: &Mutex<BTreeMap<u16, Duration>>,
) -> Option<TcpStream> {
    // Bounded by the stop flag: each pass waits at most CHECK_EVERY.
    while !stop.now() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Ok(mut a) = accepted.lock() {
                    a.insert(peer.port(), clock.elapsed());
                }
                return Some(stream);
            }
            Err(e) if timed_out(&e) => {
                wait_readable(listener, Cancel::CHECK_EVERY);
            }
            Err(_) => std::thread::sleep(Cancel::CHECK_EVERY),
        }
    }
    None
}

/// The tutorials' server: `while True: conn, _ = s.accept(); handle(conn)`. The mistake:
/// it serves one connection until that client leaves, and only then calls `accept()`
/// again, so every other client — connected already, as far as its `connect()` knows —
/// waits in the accept queue, and once that is full, its SYNs are dropped.
fn sequential(
    listener: &TcpListener,
    clock: Instant,
    stop: Stop<'_>,
    accepted: &Mutex<BTreeMap<u16, Duration>>,
) -> std::io::Result<()> {
    while let Some(stream) = accept_one(listener, clock, stop, accepted) {
        let _ = session(stream, stop);
    }
    Ok(())
}

/// A thread per connection: `accept()` is called again at once.
fn threaded(
    listener: &TcpListener,
    clock: Instant,
    stop: Stop<'_>,
    accepted: &Mutex<BTreeMap<u16, Duration>>,
) -> std::io::Result<()> {
    std::thread::scope(|scope| {
        while let Some(stream) = accept_one(listener, clock, stop, accepted) {
            scope.spawn(move || session(stream, stop));
        }
    });
    Ok(())
}

/// A tokio task per connection, on a runtime of the server thread's own.
fn tokio_flavour(
    listener: TcpListener,
    clock: Instant,
    stop: Stop<'_>,
    accepted: &Mutex<BTreeMap<u16, Duration>>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        // Bounded by the stop flag, looked at every CHECK_EVERY.
        while !stop.now() {
            let Ok(result) = tokio::time::timeout(Cancel::CHECK_EVERY, listener.accept()).await else {
                continue;
            };
            let Ok((mut stream, peer)) = result else { continue };
            if let Ok(mut a) = accepted.lock() {
                a.insert(peer.port(), clock.elapsed());
            }
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 64];
                let mut got = Vec::new();
                let session = async {
                    while !got.ends_with(b"\n") {
                        let n = stream.read(&mut buf).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    stream.write_all(REPLY).await?;
                    while stream.read(&mut buf).await? > 0 {}
                    Ok::<(), std::io::Error>(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), session).await;
            });
        }
        Ok(())
    })
}

/// Clients in the order the server accepted them (those never accepted last, in the
/// order they started), with their time in the accept queue.
fn served_order(m: &Measured) -> Vec<(&ClientRecord, Option<Duration>)> {
    let mut order: Vec<(&ClientRecord, Option<Duration>)> = m
        .clients
        .iter()
        .map(|c| (c, c.port.and_then(|p| m.accepted.get(&p)).map(|at| at.saturating_sub(c.connected_at))))
        .collect();
    let accepted_at =
        |c: &ClientRecord| c.port.and_then(|p| m.accepted.get(&p)).copied().unwrap_or(Duration::MAX);
    order.sort_by_key(|(c, _)| accepted_at(c));
    order
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let mut outcome = CaseOutcome::default();
    let order = served_order(m);
    let served = m.clients.iter().filter(|c| c.first_reply.is_some()).count();
    let waited = m.clients.iter().filter(|c| c.connected && c.connect >= WAITED).count();
    let failed = m.clients.iter().filter(|c| !c.connected).count();
    let private = matches!(m.scope, Scope::Private);
    outcome.key_metric(metric::clients_served, served as f64);
    if let Some(max) = m.clients.iter().filter_map(|c| c.first_reply).max() {
        outcome.key_metric(metric::first_reply_max, ms(max));
    }
    if let Some(max) = order.iter().filter_map(|(_, q)| *q).max() {
        outcome.key_metric(metric::time_in_queue_max, ms(max));
    }
    if let Some(max) = m.clients.iter().filter(|c| c.connected).map(|c| c.connect).max() {
        outcome.metric(metric::connect_max, ms(max));
    }
    outcome
        .key_metric(metric::connects_waited, waited as f64)
        .metric(metric::connects_failed, failed as f64)
        .key_metric(metric::listen_overflows, m.counters.overflows as f64)
        .metric(metric::listen_drops, m.counters.drops as f64)
        .metric(metric::private_netns, if private { 1.0 } else { 0.0 });
    if !order.is_empty() {
        outcome.observations.series.push(ValueSeries {
            name: "time_in_queue".into(),
            unit: Unit::Millis,
            item: "client".into(),
            values: order.iter().map(|(_, q)| q.map(ms).unwrap_or(0.0)).collect(),
        });
    }

    outcome.checks.push(served_check(params, served, failed, m));
    outcome.checks.push(match params.flavour {
        Flavour::Sequential => staircase_check(params, &order, m.counters.overflows > 0 || waited > 0),
        Flavour::Threaded | Flavour::Tokio => concurrent_check(params, &order),
    });
    outcome.checks.push(counters_check(m, waited));
    outcome
}

/// Every client that connected got its reply.
fn served_check(params: &Params, served: usize, failed: usize, m: &Measured) -> Check {
    let errors: Vec<String> =
        m.clients.iter().filter(|c| c.connected).filter_map(|c| c.error.clone()).take(3).collect();
    let connected = m.clients.len() - failed;
    Check::new(
        "every_connected_client_served",
        format!("each of the {} clients that connected gets its reply", params.clients),
        format!(
            "{served} of {connected} connected clients served ({failed} connects failed){}",
            if errors.is_empty() { String::new() } else { format!("; {}", errors.join("; ")) }
        ),
        m.clients.len() == params.clients as usize && connected > 0 && served == connected,
        "a slow server delays clients; it should not lose one that got through",
    )
}

/// Sequential: in the order served, client k's first reply comes after k × hold (each
/// session before it lasted at least that) and, when the accept queue never overflowed,
/// not much later. After an overflow TCP's retransmission timers (a dropped SYN: 1 s; a
/// dropped handshake ACK: the data sent again after 200 ms and more) add waits of their
/// own, so only the lower bound is judged.
fn staircase_check(params: &Params, order: &[(&ClientRecord, Option<Duration>)], overflowed: bool) -> Check {
    let hold = Duration::from_millis(params.hold_ms);
    let expected = if overflowed {
        format!(
            "client k (in the order served) gets its first reply after k × {} ms (≥ 0.95 × k × hold); no upper bound: the accept queue overflowed, and retransmission timers add their own waits",
            params.hold_ms
        )
    } else {
        format!(
            "client k (in the order served) gets its first reply after k × {} ms: ≥ 0.95 × k × hold, ≤ 1.5 × k × hold + 250 ms + its connect wait",
            params.hold_ms
        )
    };
    let replies: Vec<(usize, Duration, Duration)> =
        order.iter().enumerate().filter_map(|(k, (c, _))| c.first_reply.map(|r| (k, r, c.connect))).collect();
    if replies.len() < 2 {
        return Check::nothing_to_judge(
            "first_reply_waits_k_times_hold",
            expected,
            "fewer than two clients got a reply",
        );
    }
    let mut worst_connect = Duration::ZERO;
    let mut bad = Vec::new();
    for &(k, reply, connect) in &replies {
        worst_connect = worst_connect.max(connect);
        let low = hold.mul_f64(0.95 * k as f64);
        let high = hold.mul_f64(1.5 * k as f64) + Duration::from_millis(250) + worst_connect;
        if reply < low || (!overflowed && reply > high) {
            bad.push(format!("client {k}: {:.0} ms (expected {:.0}..{:.0})", ms(reply), ms(low), ms(high)));
        }
    }
    let shown: Vec<String> = replies.iter().map(|(k, r, _)| format!("{k}: {:.0}", ms(*r))).collect();
    let mut observed = format!("first reply, ms: {}", shown.join(", "));
    if !bad.is_empty() {
        observed += &format!("; off: {}", bad.join("; "));
    }
    Check::new(
        "first_reply_waits_k_times_hold",
        expected,
        observed,
        bad.is_empty() && replies.len() == order.len(),
        "a server that serves one connection to its end accepts the next only afterwards",
    )
}

/// Threaded and tokio: no client waits for another's session.
fn concurrent_check(params: &Params, order: &[(&ClientRecord, Option<Duration>)]) -> Check {
    let hold = Duration::from_millis(params.hold_ms);
    let expected = format!("every first reply within {} ms (hold_ms) of its connect", params.hold_ms);
    let waits: Vec<Duration> =
        order.iter().filter_map(|(c, _)| c.first_reply.map(|r| r.saturating_sub(c.connect))).collect();
    if waits.is_empty() {
        return Check::nothing_to_judge("no_client_waits_for_another", expected, "no client got a reply");
    }
    let worst = waits.iter().max().copied().unwrap_or_default();
    Check::new(
        "no_client_waits_for_another",
        expected,
        format!("the slowest first reply came {:.1} ms after its connect", ms(worst)),
        worst < hold && waits.len() == order.len(),
        "a server that accepts again at once answers every client while the others hold their sessions",
    )
}

/// Connects that waited were waiting for a dropped SYN to be sent again: in a private
/// namespace ListenDrops counts at least one per such connect, and nothing else adds to it.
fn counters_check(m: &Measured, waited: usize) -> Check {
    let name = "dropped_syns_counted";
    let expected_private = "ListenDrops ≥ connects that waited (exact: private network namespace)";
    let observed = format!(
        "{waited} connects waited; ListenOverflows {}, ListenDrops {}",
        m.counters.overflows, m.counters.drops
    );
    if m.clients.is_empty() {
        return Check::nothing_to_judge(name, expected_private, "no client ran");
    }
    match &m.scope {
        Scope::Private => Check::new(
            name,
            expected_private,
            observed,
            m.counters.drops >= waited as u64,
            "each SYN the kernel drops at a full accept queue is counted; a connect that waited had one dropped",
        ),
        Scope::SystemWide(reason) => Check::new(
            name,
            "ListenDrops ≥ connects that waited (system-wide, approximate)",
            format!("{observed}; system-wide, approximate: {reason}"),
            m.counters.drops >= waited as u64,
            "the host's counters also count other programs' listeners, so they can only be larger",
        ),
    }
}
