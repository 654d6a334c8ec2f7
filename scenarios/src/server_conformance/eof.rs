//! `eof`: the client closes after its last reply — or, with `half_close`, shuts down its
//! sending side (SHUT_WR) right after sending and reads the replies still owed — and the
//! check times how long the server takes to close its side, up to `eof_timeout_ms`.
//!
//! To close, the client shuts its socket down both ways: on the wire the same FIN a
//! `close()` sends, but the client keeps the descriptor and reads the socket's TCP state
//! (`TCP_INFO`): it waits in FIN_WAIT2 until the server's FIN arrives, then moves to
//! TIME_WAIT. After a half-close, a read returning 0 is the server's FIN.
//!
//! With `--target-cmd` the check also measures the CPU time the server's process group
//! used in that window (`/proc/PID/stat`, ticks of 10 ms), and how much of it the group
//! was runnable (`/proc/PID/schedstat`): a server that loops on recv() returning 0 is
//! runnable all the time and burns all the CPU it gets — a whole core on an idle machine. A source never reads, so it cannot see the client
//! close; the client's close resets the connection (replies were unread), and the check
//! asks that the server then neither spins nor stops serving.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::external::TargetProcess;
use socklab_harness::params::Invalid;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::{CaseContext, CaseOutcome};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::check::{ConformanceCheck, RelayLoad, Seen, refuse_if};
use super::conn::{End, FrameReader, Options, Peer, send_message};
use super::fresh::{Served, fresh_client};
use super::setup::Setup;
use super::source::read_source;
use super::wire::expected_reply;
use super::{metric, ms, secs};

/// How often the socket state is read while waiting for the server's FIN.
const POLL: Duration = Duration::from_millis(2);
/// A window shorter than this says nothing about CPU use (the counters tick every 10 ms).
const CPU_WINDOW_MIN: Duration = Duration::from_millis(200);
/// In the window the server has nothing to do. One that blocks is runnable (running or
/// queued to run, `/proc/PID/schedstat`) next to none of it; one that loops on recv()
/// returning 0 all of it, whatever the load on the machine. More than half is a spin.
const SPIN_RUNNABLE_PERCENT: f64 = 50.0;
/// Where the kernel keeps no schedstat: more than this share of one core is a spin. An
/// idle server uses 0–2%; a spinner all the CPU it gets (a whole core on an idle machine,
/// a third of one at a load of 6 on 2 cores).
const SPIN_CPU_PERCENT: f64 = 15.0;

/// The check; see the module docs.
pub(crate) struct Eof;

/// What the check measured.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    /// Replies owed before (or, half-closed, after) the close.
    owed: usize,
    /// Replies that came, and what went wrong before the close if anything did.
    received: usize,
    before: Option<String>,
    /// Whether the server's close can be seen (not for a source).
    observable: bool,
    /// From the client's close to the server's, when it came in time.
    closed_after: Option<Duration>,
    /// The window the CPU was measured over.
    window: Duration,
    /// The target process's CPU time in the window (`--target-cmd` only).
    cpu: Option<Duration>,
    /// Its time running or waiting to run in the window (`--target-cmd` only).
    runnable: Option<Duration>,
    /// Source: whether a new client was served afterwards.
    after: Option<Served>,
    /// Whether the case got as far as closing.
    closed: bool,
}

impl ConformanceCheck for Eof {
    const NAME: &'static str = "eof";
    type Measure = Measure;

    fn applies(setup: &Setup) -> Result<(), Invalid> {
        let source = setup.params.behaviour == Behaviour::Source;
        refuse_if(setup.params.half_close && source, "half_close", || {
            "eof with half_close does not apply to a source, which never reads and so never sees it".into()
        })
    }

    fn relay(setup: &Setup) -> RelayLoad {
        RelayLoad::Moves { bytes: setup.conversation_bytes(), sized_by: None }
    }

    async fn run(setup: &Setup, peer: &Peer, ctx: &CaseContext) -> Measure {
        let process = ctx.target.as_ref().and_then(|t| t.process.as_deref());
        let messages = setup.messages();
        let mut measure = Measure {
            owed: messages.iter().filter(|m| expected_reply(peer.behaviour, m).is_some()).count(),
            observable: peer.behaviour != Behaviour::Source,
            ..Measure::default()
        };
        let mut stream = match peer.connect(Options::default()).await {
            Ok(stream) => stream,
            Err(e) => {
                measure.before = Some(format!("a client cannot connect: {e}"));
                return measure;
            }
        };
        let mut reader = FrameReader::new(peer.wire);
        if let Err(before) = send_all(setup, peer, &mut stream, &mut reader, &mut measure.received).await {
            measure.before = Some(before);
            return measure;
        }
        let cpu_before = process.map(TargetProcess::cpu_since_ready);
        let runnable_before = process.and_then(TargetProcess::runnable_time);
        close(setup, peer, stream, &mut reader, &mut measure).await;
        measure.cpu = process.zip(cpu_before).map(|(p, before)| p.cpu_since_ready().saturating_sub(before));
        measure.runnable = process
            .and_then(TargetProcess::runnable_time)
            .zip(runnable_before)
            .map(|(after, before)| after.saturating_sub(before));
        if !measure.observable {
            measure.after = Some(fresh_client(peer, 1, setup.message_size).await);
        }
        measure
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let name = "eof";
        let timeout = Duration::from_millis(setup.params.eof_timeout_ms);
        let expected = format!(
            "the server closes its side within {} of the client's close, without spinning",
            secs(timeout)
        );
        let Some(m) = seen.measure.filter(|m| m.closed || m.before.is_some()) else {
            return Check::nothing_to_judge(name, expected, "the client never got as far as closing");
        };
        if !m.closed {
            let before = m.before.unwrap_or_default();
            let sentence = format!("before the client closed, {before}");
            return Check::new(name, expected, before, false, sentence);
        }
        outcome
            .metric(metric::replies_owed, m.owed as f64)
            .metric(metric::replies_received, m.received as f64)
            .metric(metric::eof_window_ms, ms(m.window));
        if let Some(after) = m.closed_after {
            outcome.key_metric(metric::close_after_ms, ms(after));
        }
        let cpu = Cpu::of(&m, outcome);
        let (passed, observed, sentence) = if m.observable {
            closed_verdict(setup, &m, &cpu)
        } else {
            source_verdict(setup, m, &cpu, outcome)
        };
        Check::new(name, expected, observed, passed, sentence)
    }
}

/// Sends every message of the conversation; reads each reply at once, unless the replies
/// are to be read after a half-close (stop-and-wait cannot wait: its replies need our
/// ACKs). A source's messages are read instead. Counts the replies in `received`.
///
/// # Errors
/// What went wrong before the close, in words.
async fn send_all(
    setup: &Setup,
    peer: &Peer,
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    received: &mut usize,
) -> Result<(), String> {
    let messages = setup.messages();
    if peer.behaviour == Behaviour::Source {
        let replies = read_source(peer, stream, messages.len(), usize::MAX, 64 << 10, Duration::ZERO).await;
        *received = replies.frames.len();
        return Ok(());
    }
    let read_now = !setup.params.half_close || peer.wire.is_stop_and_wait();
    for sent in &messages {
        send_message(peer, stream, sent)
            .await
            .map_err(|end| format!("while sending, {}", end.words(peer.reply_timeout)))?;
        if read_now && expected_reply(peer.behaviour, sent).is_some() {
            reader
                .next(peer, stream, peer.reply_timeout)
                .await
                .map_err(|end| format!("waiting for reply {received}, {}", end.words(peer.reply_timeout)))?;
            *received += 1;
        }
    }
    Ok(())
}

/// Closes (or half-closes) the client's side and waits, up to `eof_timeout_ms`, for the
/// server's close: after a half-close by reading what is still owed and then its FIN,
/// after a close by watching the socket's state, and for a source (which never sees the
/// close) just for the timeout.
async fn close(
    setup: &Setup,
    peer: &Peer,
    mut stream: TcpStream,
    reader: &mut FrameReader,
    measure: &mut Measure,
) {
    let timeout = Duration::from_millis(setup.params.eof_timeout_ms);
    let closed_at = Instant::now();
    measure.closed = true;
    if setup.params.half_close {
        let _ = stream.shutdown().await;
        let deadline = closed_at + timeout;
        loop {
            match reader.next(peer, &mut stream, deadline.saturating_duration_since(Instant::now())).await {
                Ok(_) => measure.received += 1,
                Err(End::Closed) => {
                    measure.closed_after = Some(closed_at.elapsed());
                    break;
                }
                Err(End::Reset) => {
                    measure.closed_after = Some(closed_at.elapsed());
                    measure.before = Some("the server reset the connection after the half-close".into());
                    break;
                }
                Err(_) => break,
            }
        }
        measure.window = closed_at.elapsed().min(timeout);
    } else if measure.observable {
        // On the wire a shutdown both ways is the FIN a close sends; keeping the
        // descriptor lets the client watch its socket's state for the server's FIN.
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Both);
        measure.closed_after = wait_for_server_close(&stream, closed_at, timeout).await;
        measure.window = measure.closed_after.unwrap_or_else(|| closed_at.elapsed());
    } else {
        drop(stream);
        tokio::time::sleep(timeout).await;
        measure.window = closed_at.elapsed();
    }
}

/// Watches the client's socket (shut down both ways) every [`POLL`] until the server's
/// FIN has come, or `timeout` passes.
async fn wait_for_server_close(stream: &TcpStream, since: Instant, timeout: Duration) -> Option<Duration> {
    // Bounded: one pass per POLL until the timeout.
    loop {
        if tcp_state(stream).is_some_and(|state| !WAITING_FOR_PEER_FIN.contains(&state)) {
            return Some(since.elapsed());
        }
        if since.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// TCP states (`tcpi_state`, Linux's `enum tcp_state`) of a socket that has sent its
/// FIN and waits for the peer's: FIN_WAIT1 (4) and FIN_WAIT2 (5). Anything else after
/// the shutdown — TIME_WAIT, CLOSING, CLOSE — means the peer's FIN came (or a reset).
const WAITING_FOR_PEER_FIN: [u8; 2] = [4, 5];

/// The kernel's TCP state of `stream` (`TCP_INFO`), or `None` when it cannot be read.
fn tcp_state(stream: &TcpStream) -> Option<u8> {
    // SAFETY: a zeroed tcp_info is a valid value; getsockopt writes at most `len` bytes
    // into it and sets `len`; the descriptor is the stream's own, open for this call.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let result = libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (result == 0 && len > 0).then_some(info.tcpi_state)
    }
}

/// The server's CPU use in the window, as the verdicts tell it.
struct Cpu {
    /// Whether it spun: runnable most of the window, or (without schedstat) busy.
    spun: bool,
    /// Its share of one core, in %; 0 when not measured.
    percent: f64,
    /// What was measured, in words.
    words: String,
    /// The window, in words: `2.0 s`.
    window: String,
}

impl Cpu {
    /// The CPU figures of `m`, also as metrics.
    fn of(m: &Measure, outcome: &mut CaseOutcome) -> Cpu {
        // A share of a window shorter than a few ticks of the CPU counters means nothing.
        let share = |time: Option<Duration>| {
            time.filter(|_| m.window >= CPU_WINDOW_MIN)
                .map(|t| t.as_secs_f64() / m.window.as_secs_f64() * 100.0)
        };
        let (percent, runnable) = (share(m.cpu), share(m.runnable));
        if let Some(cpu) = m.cpu {
            outcome.metric(metric::server_cpu_ms, ms(cpu));
        }
        if let Some(percent) = percent {
            outcome.key_metric(metric::server_cpu_percent, percent.round());
        }
        if let Some(runnable) = runnable {
            outcome.metric(metric::server_runnable_percent, runnable.round());
        }
        let spun = match (runnable, percent) {
            (Some(runnable), _) => runnable > SPIN_RUNNABLE_PERCENT,
            (None, Some(percent)) => percent > SPIN_CPU_PERCENT,
            (None, None) => false,
        };
        let words = match (m.cpu, percent, runnable) {
            (Some(cpu), Some(p), Some(r)) => {
                format!(
                    "{:.0} ms of CPU, {p:.0}% of a core; runnable {r:.0}% of the time",
                    cpu.as_secs_f64() * 1e3
                )
            }
            (Some(cpu), Some(p), None) => {
                format!("{:.0} ms of CPU, {p:.0}% of a core", cpu.as_secs_f64() * 1e3)
            }
            (Some(cpu), None, _) => format!("{:.0} ms of CPU", cpu.as_secs_f64() * 1e3),
            _ => "CPU not measured: only with --target-cmd".to_string(),
        };
        let window = format!("{:.1} s", m.window.as_secs_f64());
        Cpu { spun, percent: percent.unwrap_or_default(), words, window }
    }
}

/// A source's verdict: it never sees the close, so it must neither spin nor stop serving.
fn source_verdict(setup: &Setup, m: Measure, cpu: &Cpu, outcome: &mut CaseOutcome) -> (bool, String, String) {
    let messages = setup.params.messages;
    let (window, words, p) = (&cpu.window, &cpu.words, cpu.percent);
    if let Some(took) = m.after.as_ref().map(|a| a.took) {
        outcome.metric(metric::recovery_ms, ms(took));
    }
    let after = m.after.unwrap_or_default();
    let passed = !cpu.spun && after.ok && m.received >= messages as usize;
    let sentence = if m.received < messages as usize {
        format!("only {} of {messages} messages came before the client closed", m.received)
    } else if cpu.spun {
        format!(
            "the server spun for {window} at {p:.0}% CPU after the client left: it ignores send() failing"
        )
    } else if !after.ok {
        format!("after a client left, a new one was not served: {}", after.problem.unwrap_or_default())
    } else {
        format!("after the client left, the server served a new client ({words} in the {window} after)")
    };
    let observed =
        format!("{words} in {window}; new client {}", if after.ok { "served" } else { "not served" });
    (passed, observed, sentence)
}

/// The verdict on a server that can see the close: it closes its side in time, without
/// spinning, having sent every reply owed.
fn closed_verdict(setup: &Setup, m: &Measure, cpu: &Cpu) -> (bool, String, String) {
    let timeout = Duration::from_millis(setup.params.eof_timeout_ms);
    let client_did = if setup.params.half_close { "half-closed" } else { "closed" };
    let (window, words, p) = (&cpu.window, &cpu.words, cpu.percent);
    let missing = m.owed.saturating_sub(m.received);
    let passed = m.closed_after.is_some() && !cpu.spun && missing == 0 && m.before.is_none();
    let sentence = match m.closed_after {
        Some(_) if m.before.is_some() => m.before.clone().unwrap_or_default(),
        Some(after) if missing > 0 => format!(
            "after the client half-closed the server closed in {} having sent {} of {} replies: it stops at recv() returning 0 without sending what it owes",
            secs(after),
            m.received,
            m.owed
        ),
        Some(after) if cpu.spun => format!(
            "the server closed its side {} after the client {client_did}, but spun at {p:.0}% CPU meanwhile: it loops on recv() returning 0",
            secs(after)
        ),
        Some(after) => format!(
            "the server closed its side {:.0} ms after the client {client_did} ({words})",
            after.as_secs_f64() * 1e3
        ),
        None if cpu.spun => format!(
            "the server spun for {window} at {p:.0}% CPU after the client {client_did}: it ignores recv() returning 0"
        ),
        None => format!(
            "the server had not closed its side {window} after the client {client_did} ({words}): it does not close when recv() returns 0"
        ),
    };
    let observed = format!(
        "{}; {words}; {} of {} replies",
        match m.closed_after {
            Some(after) => format!("closed after {:.0} ms", after.as_secs_f64() * 1e3),
            None => format!("not closed after {}", secs(timeout)),
        },
        m.received,
        m.owed
    );
    (passed, observed, sentence)
}
