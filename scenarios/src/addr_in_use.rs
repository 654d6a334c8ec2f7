//! `addr-in-use`: restarting a server on a port its last connection holds in TIME_WAIT.
//!
//! A server listens on `127.0.0.1:0`, accepts one connection and closes it first, so
//! its side of the connection goes to `TIME_WAIT`; then it "restarts": closes the
//! listener and binds a new one to the same port. Without `SO_REUSEADDR` that bind
//! fails with `EADDRINUSE` for as long as the `TIME_WAIT` socket lives (60 s on Linux);
//! with it on both the old and the new socket, it succeeds at once. With
//! `SO_REUSEPORT` two listeners share the port and the kernel spreads connections over
//! them. The `TIME_WAIT` socket is read from the kernel's socket table
//! (`/proc/net/tcp`, what `ss -tan` shows), with the time it has left.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use socklab_harness::check::Check;
use socklab_harness::net::{TcpState, errno_name, tcp_sockets};
use socklab_harness::params::ParamSpec;
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario};

use crate::blocking::{Stop, sleep, timed_out};
use crate::experiment::{EXPERIMENT_THREAD, run_blocking};

/// The scenario; see the module docs.
pub struct AddrInUse;

/// How long Linux keeps a socket in `TIME_WAIT` (`TCP_TIMEWAIT_LEN`), a constant of the
/// kernel, not a setting.
pub const TIME_WAIT_LEN: Duration = Duration::from_secs(60);
/// Pause between two attempts of the plain bind.
const RETRY_EVERY: Duration = Duration::from_millis(100);

socklab_harness::params! {
    /// Parameters of `addr-in-use`.
    pub struct Params {
        /// the server sets SO_REUSEADDR before every bind (the first and the restart)
        reuseaddr: bool = false => ParamSpec::bool(),
        /// the server sets SO_REUSEPORT before every bind, and a second listener shares the port
        reuseport: bool = false => ParamSpec::bool(),
        /// how long to retry a refused bind (every 100 ms); TIME_WAIT lasts 60 s
        wait_ms: u64 = 1000 => ParamSpec::int(0, 70_000).unit("ms"),
        /// connections made to the two SO_REUSEPORT listeners
        connections: u64 = 20 => ParamSpec::int(2, 1000).unit("connections"),
    }
}

socklab_harness::model::metrics! {
    /// sockets in TIME_WAIT on the server's port after the close (/proc/net/tcp, as ss -tan)
    time_wait_sockets: Count, Neither;
    /// time the TIME_WAIT socket had left when first seen (its timer in /proc/net/tcp)
    time_wait_left: Seconds, Neither;
    /// 1 when the restarted server's bind to the same port succeeded at once, 0 when refused
    rebind_ok: Count, Neither;
    /// from the first refused bind until one succeeded, or until socklab gave up (wait_ms)
    plain_bind_wait: Millis, Neither;
    /// bind attempts made, the first included
    plain_bind_attempts: Count, Neither;
    /// 1 when a second listener could bind the port while the first listened
    second_listener_ok: Count, Neither;
    /// connections the first SO_REUSEPORT listener accepted
    accepted_first: Count, Neither;
    /// connections the second SO_REUSEPORT listener accepted
    accepted_second: Count, Neither;
}

impl Scenario for AddrInUse {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "addr-in-use";
    const SUMMARY: &'static str = "a restarted server cannot bind its port while its last connection is in TIME_WAIT, unless it set SO_REUSEADDR";
    const EXPLANATION: &'static str = "\
What you see: the server accepts a connection, closes it first, and restarts on the same \
port. Without SO_REUSEADDR the new bind() fails with EADDRINUSE (\"Address already in use\"), \
and keeps failing: socklab retries for wait_ms and reports \"still EADDRINUSE\". The kernel's \
socket table (/proc/net/tcp, what `ss -tan state time-wait` prints) shows why: a socket in \
TIME-WAIT on that port, with about 60 s left on its timer. With reuseaddr = true the bind \
succeeds at once, the TIME-WAIT socket still there. A second listener on the same port is \
refused even with SO_REUSEADDR; with reuseport = true two listeners share the port and the \
kernel spreads connections between them (accepted_first, accepted_second).

Why the kernel does it: the side that closes a TCP connection first keeps a TIME_WAIT \
socket for twice the maximum segment lifetime, 60 s on Linux (TCP_TIMEWAIT_LEN, compiled \
in: net.ipv4.tcp_fin_timeout sets how long FIN_WAIT_2 lasts, not TIME_WAIT), so that a \
late duplicate segment of the old connection cannot be taken for part of a new one, and \
so that it can answer the peer's FIN again if its last ACK was lost. That socket still \
holds the local address and port. bind() refuses an address some socket holds unless both \
sockets set SO_REUSEADDR (the TIME_WAIT socket keeps the flag of the socket it was) and \
neither is listening; SO_REUSEPORT (both sockets, same user) lets even listeners share. \
A server usually closes first when it times out idle clients or ends each reply with a \
close, so it is the server that collects TIME_WAIT sockets on its own port.

The fix, in code a learner would write: set SO_REUSEADDR before bind(), every time the \
server starts.

    let socket = socket2::Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;   // before bind()
    socket.bind(&addr.into())?;
    socket.listen(128)?;

In Python: `s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)` before `s.bind(...)`. \
Rust's std::net::TcpListener::bind already sets SO_REUSEADDR on Unix. Do not shorten \
TIME_WAIT; it protects the next connection. SO_REUSEPORT is for several processes serving \
one port, not for restarts.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const SWEEP: &'static [(&'static str, &'static str)] = &[("reuseaddr", "false,true")];

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let cancel = ctx.cancel.clone();
        run_blocking(EXPERIMENT_THREAD, move || experiment(&params, &cancel)).await
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// Everything a case measured.
#[derive(Default)]
pub struct Measured {
    port: u16,
    /// TIME_WAIT sockets on the port, and the time the first had left.
    time_wait: Option<(usize, Duration)>,
    /// The restarted server's first bind: `Ok` or the errno.
    rebind: Option<Result<(), i32>>,
    /// When a refused bind was retried: attempts, time until success or give-up, success.
    retry: Option<(u32, Duration, bool)>,
    /// TIME_WAIT sockets still on the port after the retries.
    time_wait_after: Option<usize>,
    /// A second listener's bind while the first listened.
    second: Option<Result<(), i32>>,
    /// Connections each `SO_REUSEPORT` listener accepted.
    spread: Option<(u64, u64)>,
}

/// A listening-to-be socket with the server's options, bound to `addr`.
fn server_socket(params: &Params, addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    // socket2 sets neither option by default (unlike std's TcpListener::bind, which sets
    // SO_REUSEADDR), so a plain bind here is the C/Python plain bind.
    socket.set_reuse_address(params.reuseaddr)?;
    socket.set_reuse_port(params.reuseport)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket)
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn time_wait_on(port: u16) -> Result<Vec<Duration>, CaseError> {
    Ok(tcp_sockets()
        .context("read /proc/net/tcp")?
        .into_iter()
        .filter(|e| e.local.port() == port && e.state == TcpState::TimeWait)
        .map(|e| e.timer.1)
        .collect())
}

fn experiment(params: &Params, cancel: &Cancel) -> Result<Measured, CaseError> {
    let stop = Stop { cancel, flag: None };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let first = server_socket(params, any).context("bind the first server to 127.0.0.1:0")?;
    first.listen(16).context("listen")?;
    let listener: TcpListener = first.into();
    let addr = listener.local_addr().context("read the bound address")?;
    let mut m = Measured { port: addr.port(), ..Measured::default() };

    // One connection; the server closes first, so its side goes to TIME_WAIT.
    let mut client = TcpStream::connect(addr).context(format!("connect to {addr}"))?;
    client.set_read_timeout(Some(Cancel::CHECK_EVERY)).context("set a read timeout")?;
    let (mut conn, _) = listener.accept().context("accept")?;
    conn.write_all(b"bye\n").context("write the goodbye")?;
    drop(conn);
    let mut rest = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    // Bounded by the deadline; ends at the server's FIN.
    while Instant::now() < deadline {
        cancel.check()?;
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(CaseError::Io { context: "read until the server's FIN".into(), error: e }),
        }
    }
    drop(client);
    // The restart: the old listener goes away too.
    drop(listener);
    // The client's FIN reaches the server side at once on loopback; look until it shows.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let seen = time_wait_on(addr.port())?;
        if let Some(&left) = seen.iter().max() {
            m.time_wait = Some((seen.len(), left));
            break;
        }
        if Instant::now() >= deadline || !sleep(Duration::from_millis(5), stop) {
            break;
        }
    }

    // The restarted server binds the same port.
    let started = Instant::now();
    let mut restarted = server_socket(params, addr);
    m.rebind = Some(restarted.as_ref().map(|_| ()).map_err(errno));
    if restarted.is_err() {
        let mut attempts = 1;
        let until = started + Duration::from_millis(params.wait_ms);
        // Bounded by wait_ms: one attempt every RETRY_EVERY.
        while restarted.is_err() && Instant::now() < until && sleep(RETRY_EVERY, stop) {
            attempts += 1;
            restarted = server_socket(params, addr);
        }
        m.retry = Some((attempts, started.elapsed(), restarted.is_ok()));
        m.time_wait_after = Some(time_wait_on(addr.port())?.len());
    }
    cancel.check()?;
    let Ok(restarted) = restarted else { return Ok(m) };
    restarted.listen(16).context("listen on the restarted server")?;

    // A second listener on the same port, while the first listens.
    let second = server_socket(params, addr);
    m.second = Some(second.as_ref().map(|_| ()).map_err(errno));
    if let (Ok(second), true) = (second, params.reuseport) {
        second.listen(16).context("listen on the second listener")?;
        m.spread = Some(spread(restarted.into(), second.into(), addr, params.connections, cancel)?);
    }
    Ok(m)
}

/// Connects `count` clients to `addr` and counts what each listener accepted.
fn spread(
    a: TcpListener,
    b: TcpListener,
    addr: SocketAddr,
    count: u64,
    cancel: &Cancel,
) -> Result<(u64, u64), CaseError> {
    a.set_nonblocking(true).context("make the first listener non-blocking")?;
    b.set_nonblocking(true).context("make the second listener non-blocking")?;
    let mut clients = Vec::new();
    let (mut on_a, mut on_b) = (0, 0);
    for _ in 0..count {
        // From a fresh port each time: the kernel picks the listener by hashing the
        // connection's addresses and ports.
        clients.push(TcpStream::connect(addr).context(format!("connect to {addr}"))?);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    // Bounded by the deadline and by count.
    while on_a + on_b < count && Instant::now() < deadline {
        cancel.check()?;
        let mut progress = false;
        if a.accept().is_ok() {
            on_a += 1;
            progress = true;
        }
        if b.accept().is_ok() {
            on_b += 1;
            progress = true;
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok((on_a, on_b))
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let mut outcome = CaseOutcome::default();
    if let Some((count, left)) = m.time_wait {
        outcome
            .key_metric(metric::time_wait_sockets, count as f64)
            .metric(metric::time_wait_left, left.as_secs_f64());
    } else if m.rebind.is_some() {
        outcome.key_metric(metric::time_wait_sockets, 0.0);
    }
    if let Some(rebind) = m.rebind {
        outcome.key_metric(metric::rebind_ok, if rebind.is_ok() { 1.0 } else { 0.0 });
    }
    if let Some((attempts, waited, _)) = m.retry {
        outcome
            .key_metric(metric::plain_bind_wait, waited.as_secs_f64() * 1e3)
            .metric(metric::plain_bind_attempts, f64::from(attempts));
    }
    if let Some(second) = m.second {
        outcome.metric(metric::second_listener_ok, if second.is_ok() { 1.0 } else { 0.0 });
    }
    if let Some((a, b)) = m.spread {
        outcome.metric(metric::accepted_first, a as f64).metric(metric::accepted_second, b as f64);
    }

    outcome.checks.push(time_wait_check(m));
    outcome.checks.push(rebind_check(params, m));
    if !params.reuseaddr && !params.reuseport {
        outcome.checks.push(retry_check(params, m));
    }
    // Without either option the restart stays refused (unless wait_ms outlasts
    // TIME_WAIT), and then there is no listener to share the port with.
    if params.reuseaddr || params.reuseport || m.second.is_some() {
        outcome.checks.push(second_listener_check(params, m));
    }
    outcome
}

/// The server's side of the connection it closed first is in TIME_WAIT, for up to 60 s.
fn time_wait_check(m: &Measured) -> Check {
    let expected = "a TIME-WAIT socket on the server's port, with at most 60 s left";
    let Some((count, left)) = m.time_wait else {
        return Check::nothing_to_judge(
            "time_wait_seen",
            expected,
            "no TIME-WAIT socket was seen on the port",
        );
    };
    Check::new(
        "time_wait_seen",
        expected,
        format!("{count} on port {}, {:.1} s left", m.port, left.as_secs_f64()),
        count >= 1 && left <= TIME_WAIT_LEN,
        "the side that closes first keeps the connection's address in TIME_WAIT for 60 s",
    )
}

/// Refused with EADDRINUSE without either option; accepted with either.
fn rebind_check(params: &Params, m: &Measured) -> Check {
    let reuse = params.reuseaddr || params.reuseport;
    let (expected, explanation) = if reuse {
        ("bind() succeeds at once", "both sockets set the option, and the TIME_WAIT socket is not listening")
    } else {
        (
            "bind() fails with EADDRINUSE",
            "the TIME_WAIT socket holds the address, and neither socket allows sharing it",
        )
    };
    let Some(rebind) = m.rebind else {
        return Check::nothing_to_judge("restart_bind", expected, "the restarted server never tried to bind");
    };
    let observed = match rebind {
        Ok(()) => "bind() succeeded".to_string(),
        Err(e) => format!("bind() failed with {}", errno_name(e)),
    };
    let passed = if reuse { rebind.is_ok() } else { rebind == Err(libc::EADDRINUSE) };
    Check::new("restart_bind", expected, observed, passed, explanation)
}

/// While the TIME_WAIT socket is there, the plain bind stays refused; once it is gone,
/// the bind succeeds: the two instruments (bind and the socket table) agree.
fn retry_check(params: &Params, m: &Measured) -> Check {
    let expected = format!(
        "refused while the TIME-WAIT socket lives (60 s): still EADDRINUSE after {} ms, or bound once it was gone",
        params.wait_ms
    );
    let (Some((attempts, waited, succeeded)), Some(after)) = (m.retry, m.time_wait_after) else {
        return Check::nothing_to_judge("plain_bind_retried", expected, "no refused bind was retried");
    };
    let observed = if succeeded {
        format!(
            "bound after {:.1} s ({attempts} attempts); {after} TIME-WAIT sockets left",
            waited.as_secs_f64()
        )
    } else {
        format!(
            "still EADDRINUSE after {:.1} s ({attempts} attempts); {after} TIME-WAIT socket(s) still on the port (TIME_WAIT lasts 60 s; net.ipv4.tcp_fin_timeout does not shorten it)",
            waited.as_secs_f64()
        )
    };
    Check::new(
        "plain_bind_retried",
        expected,
        observed,
        if succeeded { after == 0 } else { after >= 1 },
        "a plain bind waits out TIME_WAIT; nothing short of the 60 s frees the port",
    )
}

/// Two listeners on one port only with SO_REUSEPORT; then the kernel spreads
/// connections over both.
fn second_listener_check(params: &Params, m: &Measured) -> Check {
    let name = "second_listener";
    if params.reuseport {
        let expected =
            format!("a second listener binds; {} connections spread over both", params.connections);
        return match (m.second, m.spread) {
            (Some(Ok(())), Some((a, b))) => Check::new(
                name,
                expected,
                format!("bound; first accepted {a}, second {b}"),
                a >= 1 && b >= 1 && a + b == params.connections,
                "SO_REUSEPORT lets listeners of one user share a port; the kernel picks one per connection by a hash of its addresses",
            ),
            (Some(Err(e)), _) => Check::new(
                name,
                expected,
                format!("the second bind failed with {}", errno_name(e)),
                false,
                "both sockets set SO_REUSEPORT, so the second bind should have succeeded",
            ),
            _ => Check::nothing_to_judge(name, expected, "no second listener was tried"),
        };
    }
    let expected = "a second listener's bind fails with EADDRINUSE";
    match m.second {
        Some(second) => Check::new(
            name,
            expected,
            match second {
                Ok(()) => "the second bind succeeded".to_string(),
                Err(e) => format!("the second bind failed with {}", errno_name(e)),
            },
            second == Err(libc::EADDRINUSE),
            "SO_REUSEADDR never lets two sockets listen on one address; that takes SO_REUSEPORT",
        ),
        None => Check::nothing_to_judge(name, expected, "no second listener was tried"),
    }
}
