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

use bytes::Bytes;
use socklab_harness::check::Check;
use socklab_harness::external::TargetProcess;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::CaseOutcome;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::conn::{End, FrameReader, Options, Peer, send_message};
use super::fresh::{Served, fresh_client};
use super::metric;
use super::source::read_source;
use super::wire::{expected_reply, message};
use super::{Params, Setup, ms, secs};

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

pub(crate) async fn run(
    params: &Params,
    setup: &Setup,
    peer: &Peer,
    process: Option<&TargetProcess>,
) -> Measure {
    let timeout = Duration::from_millis(params.eof_timeout_ms);
    let messages: Vec<Bytes> = (0..params.messages).map(|i| message(i as u32, setup.message_size)).collect();
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
    if peer.behaviour == Behaviour::Source {
        let replies =
            read_source(peer, &mut stream, messages.len(), usize::MAX, 64 << 10, Duration::ZERO).await;
        measure.received = replies.frames.len();
    } else {
        // Send every message; read each reply at once, unless the replies are to be read
        // after a half-close (stop-and-wait cannot wait: its replies need our ACKs).
        let read_now = !params.half_close || peer.wire.is_stop_and_wait();
        for sent in &messages {
            if let Err(end) = send_message(peer, &mut stream, sent).await {
                measure.before = Some(format!("while sending, {}", end.words(peer.reply_timeout)));
                return measure;
            }
            if read_now && expected_reply(peer.behaviour, sent).is_some() {
                match reader.next(peer, &mut stream, peer.reply_timeout).await {
                    Ok(_) => measure.received += 1,
                    Err(end) => {
                        measure.before = Some(format!(
                            "waiting for reply {}, {}",
                            measure.received,
                            end.words(peer.reply_timeout)
                        ));
                        return measure;
                    }
                }
            }
        }
    }
    let cpu_before = process.map(TargetProcess::cpu_since_ready);
    let runnable_before = process.and_then(TargetProcess::runnable_time);
    let closed_at = Instant::now();
    measure.closed = true;
    if params.half_close {
        let _ = stream.shutdown().await;
        // Read what is still owed, then the server's FIN; all within the timeout.
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

pub(crate) fn evaluate(params: &Params, measure: Option<Measure>, outcome: &mut CaseOutcome) -> Check {
    let name = "eof";
    let timeout = Duration::from_millis(params.eof_timeout_ms);
    let client_did = if params.half_close { "half-closed" } else { "closed" };
    let expected = format!(
        "the server closes its side within {} of the client's close, without spinning",
        secs(timeout)
    );
    let Some(m) = measure.filter(|m| m.closed || m.before.is_some()) else {
        return Check::nothing_to_judge(name, expected, "the client never got as far as closing");
    };
    if !m.closed {
        let before = m.before.unwrap_or_default();
        return Check::new(
            name,
            expected,
            before.clone(),
            false,
            format!("before the client closed, {before}"),
        );
    }
    outcome
        .metric(metric::replies_owed, m.owed as f64)
        .metric(metric::replies_received, m.received as f64)
        .metric(metric::eof_window_ms, ms(m.window));
    if let Some(after) = m.closed_after {
        outcome.key_metric(metric::close_after_ms, ms(after));
    }
    // A share of a window shorter than a few ticks of the CPU counters means nothing.
    let share = |time: Option<Duration>| {
        time.filter(|_| m.window >= CPU_WINDOW_MIN).map(|t| t.as_secs_f64() / m.window.as_secs_f64() * 100.0)
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
    let cpu_words = match (m.cpu, percent, runnable) {
        (Some(cpu), Some(p), Some(r)) => {
            format!(
                "{:.0} ms of CPU, {p:.0}% of a core; runnable {r:.0}% of the time",
                cpu.as_secs_f64() * 1e3
            )
        }
        (Some(cpu), Some(p), None) => format!("{:.0} ms of CPU, {p:.0}% of a core", cpu.as_secs_f64() * 1e3),
        (Some(cpu), None, _) => format!("{:.0} ms of CPU", cpu.as_secs_f64() * 1e3),
        _ => "CPU not measured: only with --target-cmd".to_string(),
    };
    let window = format!("{:.1} s", m.window.as_secs_f64());
    let p = percent.unwrap_or_default();

    if !m.observable {
        if let Some(took) = m.after.as_ref().map(|a| a.took) {
            outcome.metric(metric::recovery_ms, ms(took));
        }
        let after = m.after.unwrap_or_default();
        let passed = !spun && after.ok && m.received >= params.messages as usize;
        let sentence = if m.received < params.messages as usize {
            format!("only {} of {} messages came before the client closed", m.received, params.messages)
        } else if spun {
            format!(
                "the server spun for {window} at {p:.0}% CPU after the client left: it ignores send() failing"
            )
        } else if !after.ok {
            format!("after a client left, a new one was not served: {}", after.problem.unwrap_or_default())
        } else {
            format!(
                "after the client left, the server served a new client ({cpu_words} in the {window} after)"
            )
        };
        let observed =
            format!("{cpu_words} in {window}; new client {}", if after.ok { "served" } else { "not served" });
        return Check::new(name, expected, observed, passed, sentence);
    }

    let missing = m.owed.saturating_sub(m.received);
    let passed = m.closed_after.is_some() && !spun && missing == 0 && m.before.is_none();
    let sentence = match m.closed_after {
        Some(_) if m.before.is_some() => m.before.clone().unwrap_or_default(),
        Some(after) if missing > 0 => format!(
            "after the client half-closed the server closed in {} having sent {} of {} replies: it stops at recv() returning 0 without sending what it owes",
            secs(after),
            m.received,
            m.owed
        ),
        Some(after) if spun => format!(
            "the server closed its side {} after the client {client_did}, but spun at {p:.0}% CPU meanwhile: it loops on recv() returning 0",
            secs(after)
        ),
        Some(after) => format!(
            "the server closed its side {:.0} ms after the client {client_did} ({cpu_words})",
            after.as_secs_f64() * 1e3
        ),
        None if spun => format!(
            "the server spun for {window} at {p:.0}% CPU after the client {client_did}: it ignores recv() returning 0"
        ),
        None => format!(
            "the server had not closed its side {window} after the client {client_did} ({cpu_words}): it does not close when recv() returns 0"
        ),
    };
    let observed = format!(
        "{}; {cpu_words}; {} of {} replies",
        match m.closed_after {
            Some(after) => format!("closed after {:.0} ms", after.as_secs_f64() * 1e3),
            None => format!("not closed after {}", secs(timeout)),
        },
        m.received,
        m.owed
    );
    Check::new(name, expected, observed, passed, sentence)
}
