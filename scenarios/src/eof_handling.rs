//! `eof-handling`: what a server does when `recv()` returns 0.
//!
//! A client sends a few request lines and either closes (after reading each reply) or
//! half-closes with `shutdown(SHUT_WR)` right after sending them all and reads the rest
//! of the replies. Three reference servers, written on purpose the ways tutorials write
//! them, serve it on a thread of their own:
//!
//! - `correct` stops on `recv()` returning 0 and closes at once;
//! - `ignores-eof` treats 0 as "nothing yet" and loops on empty reads, a spinning core,
//!   until socklab stops it (and in any case after [`SPIN_LIMIT`]);
//! - `half-close-aware` stops reading on 0 but answers every request it holds first.
//!
//! The server thread's own CPU time is read from outside it
//! (`/proc/self/task/TID/schedstat`) from the moment it first read 0 for `watch_ms`:
//! what the server burns after EOF, as a share of one core.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use socklab_harness::capture::{CaptureConfig, CaseCapture, CaseCaptureResult, stream_segments};
use socklab_harness::check::Check;
use socklab_harness::metrics::{ThreadCpu, current_tid};
use socklab_harness::params::ParamSpec;
use socklab_harness::report::{Direction, IoEvent, MetricSpec, StreamTrace};
use socklab_harness::scenario::{
    BarSource, BarSpec, Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario,
};
use socklab_harness::text::printable;

use crate::blocking::{Stop, read_some, sleep, timed_out, wait_readable};
use crate::experiment::{attach_capture, run_captured};

/// The scenario; see the module docs.
pub struct EofHandling;

/// The most the `ignores-eof` server loops on empty reads, whatever else happens: the
/// bound the "a few seconds" asks for (socklab stops it after `watch_ms` first).
pub const SPIN_LIMIT: Duration = Duration::from_secs(5);

socklab_harness::named_enum!(
    /// Which reference server answers.
    pub ServerKind, "server", {
        /// Stops on `recv()` returning 0 — and closes at once.
        Correct => "correct",
        /// Loops on empty reads.
        IgnoresEof => "ignores-eof",
        /// Stops reading on 0, answers what it holds, then closes.
        HalfCloseAware => "half-close-aware",
    }
);

socklab_harness::named_enum!(
    /// How the client ends its side.
    pub ClientEnd, "client", {
        /// Request, reply, request, reply, …, then `close()`.
        Close => "close",
        /// Every request at once, `shutdown(SHUT_WR)`, then read replies until the server
        /// closes.
        ShutWr => "shut-wr",
    }
);

socklab_harness::params! {
    /// Parameters of `eof-handling`.
    pub struct Params {
        /// correct: stops on recv() = 0 and closes at once; ignores-eof: loops on empty reads; half-
        /// close-aware: answers what it holds, then closes
        server: ServerKind = ServerKind::Correct => ParamSpec::choice::<ServerKind>(),
        /// close: request/reply then close(); shut-wr: every request, shutdown(SHUT_WR), read replies
        /// until EOF
        client: ClientEnd = ClientEnd::Close => ParamSpec::choice::<ClientEnd>(),
        /// request lines the client sends
        messages: u64 = 5 => ParamSpec::int(1, 1000).unit("requests"),
        /// the server works this long on each request before replying
        work_ms: u64 = 10 => ParamSpec::int(0, 1000).unit("ms"),
        /// socklab watches the server's CPU this long after it first read 0, then stops it
        watch_ms: u64 = 300 => ParamSpec::int(50, 4000).unit("ms"),
    }
}

socklab_harness::model::metrics! {
    /// the server thread's CPU time over watch_ms from its first recv() = 0 (ignores-eof: the first
    /// with nothing left to answer), as % of one core (schedstat)
    server_cpu_after_eof_pct: Percent, Lower;
    /// the server thread's CPU time in that window (on a CPU, user and kernel)
    server_cpu_after_eof: Millis, Lower;
    /// share of the window the server thread was on a CPU or waiting for one: what it asked for
    runnable_after_eof_pct: Percent, Neither;
    /// server recv() calls that returned 0
    empty_reads: Count, Neither;
    /// from the client's close()/shutdown() call to the server's close
    server_closed_after_eof: Millis, Neither;
    /// 1 when the server closed the connection itself, 0 when socklab had to stop it
    closed_on_its_own: Count, Neither;
    /// reply lines the client received
    replies_received: Count, Neither;
    /// reply lines received after shutdown(SHUT_WR) (client = shut-wr)
    replies_after_shut_wr: Count, Neither;
    /// requests the server had read but not answered when it closed
    replies_dropped: Count, Neither;
}

impl Scenario for EofHandling {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "eof-handling";
    const SUMMARY: &'static str = "recv() returning 0 means the peer closed: a server that ignores it spins a core; one that closes at once drops replies a half-closing client still waits for";
    const EXPLANATION: &'static str = "\
What you see: a client sends a few request lines and ends its side. With the correct server, \
recv() returns 0 once, the server closes, and its thread uses next to no CPU afterwards \
(server_cpu_after_eof_pct well under 5%). With the ignores-eof server, recv() returns 0 again \
and again, hundreds of thousands of times a second (empty_reads), and the thread burns a \
whole core until socklab stops it: the chart shows one tall bar. With client = shut-wr the \
client sends every request, calls shutdown(SHUT_WR) and keeps reading: the correct server, \
which closes as soon as it reads 0, never sends the replies it still owed \
(replies_after_shut_wr below messages, replies_dropped above 0); the half-close-aware server \
answers them all and then closes.

Why the kernel does it: for a TCP socket, recv() returning 0 is end of file: the peer sent a \
FIN, and no byte will ever follow. The kernel does not block a read at end of file; it \
returns 0 at once, every time, forever. A loop that only asks \"did I get data?\" never \
waits again, so it spins. EOF ends only the peer's sending direction: shutdown(SHUT_WR) sends \
the FIN while the client's socket still receives, so a peer that reads 0 may still be \
listening. close() instead ends both directions; replies arriving at a closed socket are \
answered with a reset.

The fix, in code a learner would write:

    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 { break; }          // the peer finished sending
        handle(&buf[..n], &mut pending);
    }
    for reply in pending.drain(..) {  // it may still be reading: answer first
        stream.write_all(&reply)?;
    }
    stream.shutdown(Shutdown::Write)?; // then say so, and close

In Python: `data = conn.recv(4096)` then `if not data: break`. A client that wants the \
remaining replies after sending everything calls shutdown(SHUT_WR), not close(), and reads \
until it gets 0 itself.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const SWEEP: &'static [(&'static str, &'static str)] =
        &[("server", "correct,ignores-eof,half-close-aware"), ("client", "close,shut-wr")];
    const BARS: &'static [BarSpec] = &[BarSpec {
        title: "Server CPU after EOF (% of one core, over watch_ms from its first recv() = 0)",
        values: "server_cpu_after_eof_pct",
        groups: BarSource::Param("server"),
    }];

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr().context("read the bound address")?;
        let clock = Instant::now();
        let capture = CaseCapture::start(CaptureConfig::loopback(addr.port()), clock);
        let (p, cancel) = (params.clone(), ctx.cancel.clone());
        let (measured, wire) =
            run_captured(capture, &ctx.case_id, move || experiment(listener, addr, &p, clock, &cancel))
                .await?;
        Ok(Measured { wire: Some(wire), ..measured })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, measured)
    }
}

/// What a case measured.
#[derive(Default)]
pub struct Measured {
    client: ClientRecord,
    server: ServerRecord,
    /// CPU of the server thread over the window, and the window's length.
    window: Option<(ThreadCpu, Duration)>,
    wire: Option<CaseCaptureResult>,
}

/// What the client did.
#[derive(Default)]
struct ClientRecord {
    writes: Vec<(Duration, Vec<u8>)>,
    replies: u64,
    replies_after_shut_wr: u64,
    /// When it called close() or shutdown(), on the case clock.
    eof_at: Option<Duration>,
}

/// What the server did, written by its thread.
#[derive(Default, Clone)]
struct ServerRecord {
    reads: Vec<(Duration, Vec<u8>)>,
    empty_reads: u64,
    first_eof_at: Option<Duration>,
    closed_at: Option<Duration>,
    closed_on_its_own: bool,
    replies_sent: u64,
    replies_dropped: u64,
    error: Option<String>,
}

/// Runs server and client on threads of their own and watches the server's CPU.
fn experiment(
    listener: TcpListener,
    addr: SocketAddr,
    params: &Params,
    clock: Instant,
    cancel: &Cancel,
) -> Result<Measured, CaseError> {
    listener.set_nonblocking(true).context("make the listener non-blocking")?;
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(ServerRecord::default()));
    let (tid_tx, tid_rx) = mpsc::channel();
    let (eof_tx, eof_rx) = mpsc::channel();
    let server = {
        let (stop, record, params, cancel) = (stop.clone(), record.clone(), params.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("socklab-eof-server".into())
            .spawn(move || {
                let _ = tid_tx.send(current_tid());
                serve(
                    &listener,
                    &params,
                    clock,
                    Stop { cancel: &cancel, flag: Some(&stop) },
                    &record,
                    &eof_tx,
                );
            })
            .context("start the server thread")?
    };
    let tid =
        tid_rx.recv().map_err(|_| CaseError::Task { task: "the server thread", what: "ended".into() })?;
    let client = {
        let (stop, params, cancel) = (stop.clone(), params.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("socklab-eof-client".into())
            .spawn(move || drive_client(addr, &params, clock, Stop { cancel: &cancel, flag: Some(&stop) }))
            .context("start the client thread")?
    };
    // The window opens when the server first reads 0 (it reads its own CPU then).
    let requests = Duration::from_millis(params.work_ms * params.messages);
    let window = match eof_rx.recv_timeout(requests + Duration::from_secs(5)) {
        Ok((opened, at_eof)) => {
            let watch = Duration::from_millis(params.watch_ms);
            sleep(watch.saturating_sub(opened.elapsed()), Stop { cancel, flag: None });
            let after = ThreadCpu::read(tid).context("read the server thread's schedstat")?;
            Some((after.since(&at_eof), opened.elapsed()))
        }
        Err(_) => None,
    };
    // The spinning server is stopped now (it would never close); the others get time
    // to answer what they hold and close, which ends the client.
    if params.server != ServerKind::IgnoresEof {
        let until = Instant::now() + requests + Duration::from_secs(2);
        while !client.is_finished() && Instant::now() < until && !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let client =
        client.join().map_err(|_| CaseError::Task { task: "the client thread", what: "panicked".into() })?;
    server.join().map_err(|_| CaseError::Task { task: "the server thread", what: "panicked".into() })?;
    cancel.check()?;
    let server = record.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Measured { client: client?, server, window, wire: None })
}

fn request(i: u64) -> Vec<u8> {
    format!("msg{i}\n").into_bytes()
}

/// The client: request/reply then close, or everything, SHUT_WR, then read to EOF.
fn drive_client(
    addr: SocketAddr,
    params: &Params,
    clock: Instant,
    stop: Stop<'_>,
) -> Result<ClientRecord, CaseError> {
    let mut stream = TcpStream::connect(addr).context(format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Cancel::CHECK_EVERY)).context("set a read timeout")?;
    let deadline = Instant::now()
        + Duration::from_millis(params.work_ms * params.messages + params.watch_ms)
        + Duration::from_secs(5);
    let mut record = ClientRecord::default();
    let mut buf = [0u8; 4096];
    match params.client {
        ClientEnd::Close => {
            for i in 0..params.messages {
                let line = request(i);
                record.writes.push((clock.elapsed(), line.clone()));
                stream.write_all(&line).context("write a request")?;
                // Read until this request's reply line is in.
                let mut got = 0;
                while got == 0 {
                    let n = read_some(&mut stream, &mut buf, deadline, stop)
                        .map_err(|e| e.into_case_error("read a reply", Duration::from_secs(5)))?;
                    if n == 0 {
                        return Err(CaseError::Protocol(format!(
                            "the server closed before replying to request {i}"
                        )));
                    }
                    got = buf[..n].iter().filter(|&&b| b == b'\n').count();
                    record.replies += got as u64;
                }
            }
            record.eof_at = Some(clock.elapsed());
            drop(stream);
        }
        ClientEnd::ShutWr => {
            // One write: every request is queued at the server before the FIN.
            let lines: Vec<u8> = (0..params.messages).flat_map(request).collect();
            record.writes.push((clock.elapsed(), lines.clone()));
            stream.write_all(&lines).context("write the requests")?;
            record.eof_at = Some(clock.elapsed());
            stream.shutdown(Shutdown::Write).context("shutdown(SHUT_WR)")?;
            // Bounded by the deadline (and the server's stop at the end of the watch).
            loop {
                match read_some(&mut stream, &mut buf, deadline, stop) {
                    Ok(0) => break,
                    Ok(n) => {
                        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                        record.replies += lines;
                        record.replies_after_shut_wr += lines;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    Ok(record)
}

/// The accept loop every server shares: serve a connection, then wait for the next one
/// (in slices, so a stop is seen), as a real server would.
fn serve(
    listener: &TcpListener,
    params: &Params,
    clock: Instant,
    stop: Stop<'_>,
    record: &Mutex<ServerRecord>,
    eof: &mpsc::Sender<(Instant, ThreadCpu)>,
) {
    let mut served = false;
    while !stop.now() {
        match listener.accept() {
            Ok((stream, _)) if !served => {
                served = true;
                let connection = Connection::new(stream, params, clock, record, eof);
                let result = connection.and_then(|conn| match params.server {
                    ServerKind::Correct => correct(conn, stop),
                    ServerKind::IgnoresEof => ignores_eof(conn, stop),
                    ServerKind::HalfCloseAware => half_close_aware(conn, stop),
                });
                if let (Err(e), Ok(mut r)) = (result, record.lock()) {
                    r.error = Some(e.to_string());
                }
            }
            Ok(_) => {} // one client per case; a stray connection is closed
            Err(e) if timed_out(&e) => {
                wait_readable(listener, Cancel::CHECK_EVERY);
            }
            Err(_) => std::thread::sleep(Cancel::CHECK_EVERY),
        }
    }
}

/// The part every server shares: requests read but not answered yet, reads recorded.
struct Connection<'a> {
    stream: TcpStream,
    queue: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
    clock: Instant,
    record: &'a Mutex<ServerRecord>,
    eof: &'a mpsc::Sender<(Instant, ThreadCpu)>,
    work: Duration,
    /// Open the CPU window only at an end-of-file read with nothing left to answer: the
    /// server that ignores EOF keeps answering what it holds (sleeping `work_ms` each)
    /// before it only spins, and that work is not the spin being measured.
    window_when_idle: bool,
    window_opened: bool,
}

/// What one read returned.
enum Got {
    Data,
    Eof,
    Nothing,
}

impl<'a> Connection<'a> {
    fn new(
        stream: TcpStream,
        params: &Params,
        clock: Instant,
        record: &'a Mutex<ServerRecord>,
        eof: &'a mpsc::Sender<(Instant, ThreadCpu)>,
    ) -> std::io::Result<Self> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Cancel::CHECK_EVERY))?;
        Ok(Connection {
            stream,
            queue: VecDeque::new(),
            partial: Vec::new(),
            clock,
            record,
            eof,
            work: Duration::from_millis(params.work_ms),
            window_when_idle: params.server == ServerKind::IgnoresEof,
            window_opened: false,
        })
    }

    /// One `recv()`: blocking (up to the read timeout) when nothing is waiting to be
    /// answered, else `MSG_DONTWAIT`, so queued requests are answered while more come.
    fn read(&mut self) -> std::io::Result<Got> {
        let mut buf = [0u8; 4096];
        let flags = if self.queue.is_empty() { 0 } else { libc::MSG_DONTWAIT };
        let n = match socket2::SockRef::from(&self.stream).recv_with_flags(uninit(&mut buf), flags) {
            Ok(n) => n,
            Err(e) if timed_out(&e) || e.kind() == std::io::ErrorKind::Interrupted => {
                return Ok(Got::Nothing);
            }
            Err(e) => return Err(e),
        };
        let at = self.clock.elapsed();
        let mut r = self.record.lock().map_err(|_| std::io::Error::other("record poisoned"))?;
        if n == 0 {
            r.empty_reads += 1;
            if r.first_eof_at.is_none() {
                r.first_eof_at = Some(at);
                r.reads.push((at, Vec::new()));
            }
            // The window of CPU watching opens here, read by the thread itself.
            if !self.window_opened && (self.queue.is_empty() || !self.window_when_idle) {
                self.window_opened = true;
                if let Ok(cpu) = ThreadCpu::read(current_tid()) {
                    let _ = self.eof.send((Instant::now(), cpu));
                }
            }
            return Ok(Got::Eof);
        }
        r.reads.push((at, buf[..n].to_vec()));
        drop(r);
        self.partial.extend_from_slice(&buf[..n]);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.queue.push_back(line);
        }
        Ok(Got::Data)
    }

    /// Works on the oldest request and replies to it (upper case).
    fn answer_one(&mut self, stop: Stop<'_>) -> std::io::Result<bool> {
        let Some(line) = self.queue.pop_front() else { return Ok(false) };
        sleep(self.work, stop);
        self.stream.write_all(&line.to_ascii_uppercase())?;
        if let Ok(mut r) = self.record.lock() {
            r.replies_sent += 1;
        }
        Ok(true)
    }

    fn close(self, on_its_own: bool) {
        let dropped = self.queue.len() as u64;
        let at = self.clock.elapsed();
        drop(self.stream);
        if let Ok(mut r) = self.record.lock() {
            r.closed_at = Some(at);
            r.closed_on_its_own = on_its_own;
            r.replies_dropped = dropped;
        }
    }
}

fn uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: u8 and MaybeUninit<u8> have the same layout, and recv only writes.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

/// The tutorial server: `if not data: break`. It stops on `recv()` returning 0 — and
/// closes at once, treating EOF as "the client is gone", so requests it has read but not
/// yet answered are never answered. Harmless for a client that `close()`s after its last
/// reply; a client that half-closed with `shutdown(SHUT_WR)` and is still reading loses
/// those replies.
fn correct(mut conn: Connection<'_>, stop: Stop<'_>) -> std::io::Result<()> {
    while !stop.now() {
        match conn.read()? {
            Got::Eof => break,
            Got::Data | Got::Nothing => {
                conn.answer_one(stop)?;
            }
        }
    }
    conn.close(!stop.now());
    Ok(())
}

/// The mistake: `while True: data = conn.recv(1024); if data: handle(data)`. A read of 0
/// bytes is taken for "nothing yet", but at end of file the kernel returns 0 at once,
/// every time, so the loop never blocks again and spins a core. Bounded here by
/// socklab's stop at the end of `watch_ms` and by [`SPIN_LIMIT`].
fn ignores_eof(mut conn: Connection<'_>, stop: Stop<'_>) -> std::io::Result<()> {
    let started = Instant::now();
    // Bounded by the stop flag and SPIN_LIMIT.
    while !stop.now() && started.elapsed() < SPIN_LIMIT {
        match conn.read()? {
            Got::Data | Got::Eof | Got::Nothing => {
                conn.answer_one(stop)?;
            }
        }
    }
    conn.close(false);
    Ok(())
}

/// Reads until `recv()` returns 0, then answers every request it still holds — the
/// client may have only shut down its sending side and still be reading — and closes.
fn half_close_aware(mut conn: Connection<'_>, stop: Stop<'_>) -> std::io::Result<()> {
    let mut at_eof = false;
    while !stop.now() && !at_eof {
        match conn.read()? {
            Got::Eof => at_eof = true,
            Got::Data | Got::Nothing => {
                conn.answer_one(stop)?;
            }
        }
    }
    while !stop.now() && conn.answer_one(stop)? {}
    conn.stream.shutdown(Shutdown::Write)?;
    conn.close(!stop.now());
    Ok(())
}

fn outcome(params: &Params, m: Measured) -> CaseOutcome {
    let mut outcome = CaseOutcome::default();
    let s = &m.server;
    let cpu = m.window.map(|(cpu, window)| {
        let secs = window.as_secs_f64().max(1e-9);
        let on = cpu.on_cpu.as_secs_f64() / secs * 100.0;
        let runnable = (cpu.on_cpu + cpu.waiting).as_secs_f64() / secs * 100.0;
        (cpu, on, runnable)
    });
    if let Some((c, on, runnable)) = cpu {
        outcome
            .key_metric(metric::server_cpu_after_eof_pct, on)
            .metric(metric::server_cpu_after_eof, c.on_cpu.as_secs_f64() * 1e3)
            .metric(metric::runnable_after_eof_pct, runnable);
    }
    outcome.key_metric(metric::empty_reads, s.empty_reads as f64);
    if let (Some(eof), Some(closed)) = (m.client.eof_at, s.closed_at) {
        outcome.metric(metric::server_closed_after_eof, closed.saturating_sub(eof).as_secs_f64() * 1e3);
    }
    outcome
        .metric(metric::closed_on_its_own, if s.closed_on_its_own { 1.0 } else { 0.0 })
        .metric(metric::replies_received, m.client.replies as f64)
        .metric(metric::replies_dropped, s.replies_dropped as f64);
    if params.client == ClientEnd::ShutWr {
        outcome.key_metric(metric::replies_after_shut_wr, m.client.replies_after_shut_wr as f64);
    }

    outcome.checks.push(cpu_check(params, cpu.map(|(_, on, runnable)| (on, runnable)), s));
    if params.client == ClientEnd::ShutWr {
        outcome.checks.push(replies_check(params, &m.client, s));
    }
    outcome.checks.push(closing_check(params, s));
    outcome.observations.stream = Some(trace(&m.client, s));
    if let Some(wire) = m.wire {
        add_wire_layer(&mut outcome, wire);
    }
    outcome
}

/// `correct` and `half-close-aware` go quiet after EOF (< 5% of a core); `ignores-eof`
/// asks for a whole core (> 50%).
fn cpu_check(params: &Params, cpu: Option<(f64, f64)>, s: &ServerRecord) -> Check {
    let spins = params.server == ServerKind::IgnoresEof;
    let expected = if spins {
        "> 50% of one core after EOF (on a CPU, or runnable and waiting for one)".to_string()
    } else {
        "< 5% of one core after EOF".to_string()
    };
    let Some((on, runnable)) = cpu.filter(|_| s.first_eof_at.is_some()) else {
        return Check::nothing_to_judge(
            "cpu_after_eof",
            expected,
            "the server never read 0, so no window was watched",
        );
    };
    let observed =
        format!("on a CPU {on:.2}% of the window, runnable {runnable:.2}%; {} empty reads", s.empty_reads);
    if spins {
        // Runnable counts too: on a machine busy with other work a spinning thread waits
        // for a CPU part of the time, but it never blocks.
        let passed = on > 50.0 || runnable > 50.0;
        Check::new(
            "cpu_after_eof",
            expected,
            observed,
            passed,
            "at end of file recv() returns 0 at once, every time: a loop that ignores it never blocks again",
        )
    } else {
        // Judged on time on a CPU only: on a busy machine a thread that has work to do
        // (closing, returning to accept()) waits for a CPU, and that wait is not its cost.
        Check::new(
            "cpu_after_eof",
            expected,
            observed,
            on < 5.0,
            "a server that stops on recv() = 0 blocks in accept() afterwards, using no CPU",
        )
    }
}

/// With `shut-wr`, the half-close-aware server answers every request; the correct one,
/// closing at once, answers fewer (when there was work still queued).
fn replies_check(params: &Params, c: &ClientRecord, s: &ServerRecord) -> Check {
    let n = params.messages;
    let observed = format!(
        "{} of {n} replies after SHUT_WR; the server dropped {}",
        c.replies_after_shut_wr, s.replies_dropped
    );
    match params.server {
        ServerKind::HalfCloseAware | ServerKind::IgnoresEof => Check::new(
            "replies_after_shut_wr",
            format!("all {n} replies after SHUT_WR"),
            observed,
            c.replies_after_shut_wr == n,
            "after shutdown(SHUT_WR) the client's socket still receives: a server that keeps answering reaches it",
        ),
        ServerKind::Correct if n >= 2 && params.work_ms > 0 => Check::new(
            "replies_after_shut_wr",
            format!("fewer than {n} replies: the server closes on EOF with requests unanswered"),
            observed,
            s.first_eof_at.is_some() && c.replies_after_shut_wr < n && s.replies_dropped > 0,
            "the server read every request and the FIN before answering them all, and took EOF for \"client gone\"",
        ),
        ServerKind::Correct => Check::new(
            "replies_after_shut_wr",
            format!("at most {n} replies after SHUT_WR"),
            observed,
            s.first_eof_at.is_some() && c.replies_after_shut_wr <= n,
            "with one request or no work the server answers before it reads EOF; nothing to drop",
        ),
    }
}

/// `correct` and `half-close-aware` close on their own; `ignores-eof` never does.
fn closing_check(params: &Params, s: &ServerRecord) -> Check {
    let spins = params.server == ServerKind::IgnoresEof;
    let expected = if spins {
        "still open when socklab stopped it".to_string()
    } else {
        "closed by the server after it read 0".to_string()
    };
    if s.first_eof_at.is_none() || s.closed_at.is_none() {
        return Check::nothing_to_judge("server_closed", expected, "the server never read 0 and closed");
    }
    let observed = if s.closed_on_its_own { "closed on its own" } else { "socklab had to stop it" };
    Check::new(
        "server_closed",
        expected,
        observed,
        s.closed_on_its_own != spins,
        "only a server that treats 0 as end of file ever reaches its close()",
    )
}

/// Client writes and server reads (the first read of 0 as an empty read) as a stream.
fn trace(c: &ClientRecord, s: &ServerRecord) -> StreamTrace {
    let event = |(at, bytes): &(Duration, Vec<u8>)| IoEvent {
        at_us: at.as_secs_f64() * 1e6,
        len: bytes.len(),
        text: printable(bytes),
    };
    let writes: Vec<IoEvent> = c.writes.iter().map(event).collect();
    let reads: Vec<IoEvent> = s.reads.iter().map(event).collect();
    StreamTrace::new(writes, reads)
}

fn add_wire_layer(outcome: &mut CaseOutcome, wire: CaseCaptureResult) {
    let (Some(packets), Some(stream)) = (attach_capture(outcome, wire), outcome.observations.stream.as_mut())
    else {
        return;
    };
    let wire = stream_segments(&packets, Direction::ClientToServer, None, 0);
    stream.join_segments(wire.segments, wire.retransmissions);
}
