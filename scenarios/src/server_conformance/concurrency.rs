//! `concurrency`: `clients` clients connect at once, and each holds a session of five
//! round trips with a pause after each (`session_ms` in all). Each client's wait is the
//! time from its connect call to its first reply. A server that serves clients together
//! answers every one within milliseconds; one that serves them one at a time makes the
//! k-th wait about k - 1 sessions. The check passes when every client was served and
//! the longest wait is under half a session — a margin of hundreds of milliseconds
//! against a difference of whole sessions.
//!
//! What counts as a reply: an echo's reply frame; for a sink, the end of a 256 KiB write
//! through a 4 KiB send buffer (the kernel cannot hold it until the server reads); for a
//! source, its first message.

use std::time::{Duration, Instant};

use bytes::Bytes;
use socklab_harness::check::Check;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::{CaseContext, CaseOutcome};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use super::check::{ConformanceCheck, RelayLoad, Seen};
use super::conn::{End, FrameReader, Options, Peer, send_message};
use super::setup::Setup;
use super::wire::{bulk_message_size, expected_reply, message};
use super::{metric, ms, secs};

/// Round trips per session.
const ROUND_TRIPS: usize = 5;
/// A sink's "round trip": bytes written per turn through a 4 KiB send buffer. The
/// kernel holds some 80 KiB for a connection the server does not read yet (Linux 6.x,
/// loopback), so a write of 256 KiB cannot end before the server reads it.
const SINK_TURN: usize = 256 << 10;

/// The check; see the module docs.
pub(crate) struct Concurrency;

/// What the check measured.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    sessions: Vec<Session>,
    /// The session each client was asked to hold.
    planned: Duration,
    /// How long the check waited for a first reply at most.
    bound: Duration,
}

/// One client's session, timed from the moment all clients started connecting.
#[derive(Debug, Clone, Default)]
struct Session {
    /// Its number in connect order, from 1.
    client: usize,
    /// When its first reply came.
    first_reply: Option<Duration>,
    /// When it closed.
    closed: Duration,
    /// Round trips completed.
    round_trips: usize,
    /// What went wrong, if anything.
    problem: Option<String>,
    /// Whether a reply came that was not the one owed (a server that answers each
    /// recv(), met with a message in pieces): served, but wrongly.
    wrong_reply: bool,
}

/// Why a turn of a session failed.
enum TurnError {
    /// A reply came, but not the message owed.
    WrongReply,
    /// No reply in time, or the connection failed, in words.
    Failed(String),
}

impl ConformanceCheck for Concurrency {
    const NAME: &'static str = "concurrency";
    type Measure = Measure;

    fn relay(setup: &Setup) -> RelayLoad {
        match setup.params.behaviour {
            Behaviour::Sink => RelayLoad::Hidden(
                "concurrency with a sink does not apply through impair: the relay takes a client's bytes \
                 whether or not the server reads them, so a write's end no longer shows the server \
                 reading; use impair=none",
            ),
            // Each client's session, on connections of their own.
            _ => RelayLoad::Moves { bytes: ROUND_TRIPS as u64 * setup.message_size as u64, sized_by: None },
        }
    }

    async fn run(setup: &Setup, peer: &Peer, _ctx: &CaseContext) -> Measure {
        let params = &setup.params;
        let planned = Duration::from_millis(params.session_ms);
        let clients = params.clients as usize;
        // Long enough for a server that serves one client at a time to reach the last.
        let bound = planned * (clients as u32 + 1) + peer.reply_timeout;
        let mut tasks = JoinSet::new();
        // A sink's turn, built before the clock starts (the same bytes every turn).
        let sink_turn = (params.behaviour == Behaviour::Sink && !peer.wire.is_stop_and_wait()).then(|| {
            let size = bulk_message_size(peer.wire, setup.message_size);
            let frames: Vec<Bytes> = (0..SINK_TURN.div_ceil(size))
                .map(|seq| peer.wire.frame(&message(seq as u32, size)))
                .collect();
            Bytes::from(frames.concat())
        });
        let start = Instant::now();
        for client in 1..=clients {
            let (peer, size, turn) = (peer.clone(), setup.message_size, sink_turn.clone());
            tasks.spawn(async move { session(&peer, client, size, turn, planned, start, bound).await });
        }
        let mut sessions = Vec::with_capacity(clients);
        while let Some(done) = tasks.join_next().await {
            sessions.push(done.unwrap_or_else(|e| Session {
                problem: Some(format!("the client task failed: {e}")),
                closed: start.elapsed(),
                ..Session::default()
            }));
        }
        sessions.sort_by_key(|s| s.client);
        Measure { sessions, planned, bound }
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let params = &setup.params;
        let name = "concurrency";
        let half = Duration::from_millis(params.session_ms) / 2;
        let expected = format!(
            "{} clients at once, each answered within {} (half a session)",
            params.clients,
            secs(half)
        );
        let Some(measure) = seen.measure.filter(|m| !m.sessions.is_empty()) else {
            return Check::nothing_to_judge(name, expected, "no client connected");
        };
        let mut served: Vec<&Session> = measure.sessions.iter().filter(|s| s.first_reply.is_some()).collect();
        served.sort_by_key(|s| s.first_reply);
        let waits: Vec<Duration> = served.iter().filter_map(|s| s.first_reply).collect();
        let total = measure.sessions.len();
        outcome.metric(metric::clients, total as f64).key_metric(metric::clients_served, served.len() as f64);
        if let (Some(max), Some(median)) = (waits.last(), waits.get(waits.len() / 2)) {
            outcome.key_metric(metric::max_wait_ms, ms(*max)).metric(metric::median_wait_ms, ms(*median));
        }
        let lengths: Vec<Duration> =
            served.iter().filter_map(|s| s.first_reply.map(|first| s.closed.saturating_sub(first))).collect();
        if !lengths.is_empty() {
            outcome
                .metric(metric::mean_session_ms, ms(lengths.iter().sum::<Duration>() / lengths.len() as u32));
        }
        let problems: Vec<String> = measure
            .sessions
            .iter()
            .filter_map(|s| s.problem.as_ref().map(|p| format!("client {}: {p}", s.client)))
            .collect();
        let max_wait = waits.last().copied().unwrap_or_default();
        let passed = served.len() == total && max_wait < half;
        let mut observed = format!(
            "{} of {total} served, sessions of {}; waits {}",
            served.len(),
            secs(measure.planned),
            waits.iter().map(|w| format!("{:.0}", w.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ")
        );
        observed += " ms";
        if let Some(first) = problems.first() {
            observed = format!("{observed}; {} problems, first: {first}", problems.len());
        }
        let sentence = if passed {
            format!(
                "all {total} clients were served at once: the longest wait for a first reply was {:.0} ms",
                max_wait.as_secs_f64() * 1e3
            )
        } else {
            why_not(&measure, &served, half, max_wait)
        };
        Check::new(name, expected, observed, passed, sentence)
    }
}

/// Why the check failed, in one sentence: clients answered wrongly, not served at all,
/// served one at a time, or one kept waiting.
fn why_not(measure: &Measure, served: &[&Session], half: Duration, max_wait: Duration) -> String {
    let total = measure.sessions.len();
    if let wrong @ 1.. = measure.sessions.iter().filter(|s| s.wrong_reply).count() {
        format!(
            "{wrong} of {total} clients got a reply that was not the message they sent: the server answers \
             wrongly, not late (it treats each recv() as one message? see reassembly)"
        )
    } else if served.len() < 2 {
        format!(
            "only {} of {total} clients were served within {}: the server does not serve clients at once",
            served.len(),
            secs(measure.bound)
        )
    } else {
        // Clients numbered in the order they were served.
        let (first, second) = (served[0], served[1]);
        let first_session = first.closed.saturating_sub(first.first_reply.unwrap_or_default());
        let second_wait = second.first_reply.unwrap_or_default();
        // One at a time: the second waited about as long again as the first's session.
        let extra = second_wait.saturating_sub(first.first_reply.unwrap_or_default());
        if extra >= first_session.mul_f64(0.75) && first_session >= half {
            format!(
                "clients were served one at a time: client 2 waited {}, the length of client 1's session ({})",
                secs(second_wait),
                secs(first_session)
            )
        } else {
            let slowest = served.len();
            format!(
                "client {slowest} (in the order served) waited {} for its first reply, more than half a session: the server keeps clients waiting",
                secs(max_wait)
            )
        }
    }
}

async fn session(
    peer: &Peer,
    client: usize,
    size: usize,
    sink_turn: Option<Bytes>,
    planned: Duration,
    start: Instant,
    bound: Duration,
) -> Session {
    let mut record = Session { client, ..Session::default() };
    let options = match peer.behaviour {
        Behaviour::Sink => Options { sndbuf: Some(4096), ..Options::default() },
        _ => Options::default(),
    };
    let pause = planned / ROUND_TRIPS as u32;
    let mut stream = match peer.connect(options).await {
        Ok(stream) => stream,
        Err(e) => {
            record.problem = Some(format!("cannot connect: {e}"));
            record.closed = start.elapsed();
            return record;
        }
    };
    let mut reader = FrameReader::new(peer.wire);
    for turn in 0..ROUND_TRIPS {
        // The first reply may wait for every session before it; later ones may not.
        let wait = if turn == 0 { bound.saturating_sub(start.elapsed()) } else { peer.reply_timeout };
        let result = round_trip(peer, &mut stream, &mut reader, turn, size, sink_turn.as_ref(), wait).await;
        match result {
            Ok(()) => {
                record.round_trips += 1;
                record.first_reply.get_or_insert(start.elapsed());
            }
            Err(TurnError::WrongReply) => {
                record.wrong_reply = true;
                record.problem = Some(format!("reply {turn} was not the message it owed"));
                break;
            }
            Err(TurnError::Failed(problem)) => {
                record.problem = Some(problem);
                break;
            }
        }
        tokio::time::sleep(pause).await;
    }
    let _ = stream.shutdown().await;
    drop(stream);
    record.closed = start.elapsed();
    record
}

/// One turn of a session, waiting at most `wait` for the server.
async fn round_trip(
    peer: &Peer,
    stream: &mut tokio::net::TcpStream,
    reader: &mut FrameReader,
    turn: usize,
    size: usize,
    sink_turn: Option<&Bytes>,
    wait: Duration,
) -> Result<(), TurnError> {
    let waiting = Peer { reply_timeout: wait.max(Duration::from_millis(1)), ..peer.clone() };
    let words = |end: End| TurnError::Failed(end.words(wait));
    match peer.behaviour {
        Behaviour::Echo | Behaviour::EchoUpper => {
            let sent = message(turn as u32, size);
            let owed = expected_reply(peer.behaviour, &sent).unwrap_or_default();
            send_message(&waiting, stream, &sent).await.map_err(words)?;
            let reply = reader.reply(&waiting, stream, owed.len()).await.map_err(words)?;
            if reply != owed {
                return Err(TurnError::WrongReply);
            }
            Ok(())
        }
        Behaviour::Sink => match sink_turn {
            // One write of a turn's messages: it ends only once the server reads.
            Some(bytes) => match tokio::time::timeout(wait, stream.write_all(bytes)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(TurnError::Failed(e.to_string())),
                Err(_) => Err(words(End::Silent)),
            },
            // Stop-and-wait: the server's ACK to a message is its answer.
            None => send_message(&waiting, stream, &message(turn as u32, size)).await.map_err(words),
        },
        Behaviour::Source => reader.next(peer, stream, wait).await.map(|_| ()).map_err(words),
    }
}
