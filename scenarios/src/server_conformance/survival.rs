//! `reset` and `hostile-length`: something a server must survive, then a new client must
//! be served (and a `--target-cmd` process must still be running).
//!
//! - `reset`: a client sends half a message, then closes with SO_LINGER 0, so its kernel
//!   sends a RST instead of a FIN (a source's client resets mid-stream instead).
//! - `hostile-length`: a client sends a length prefix announcing the largest frame the
//!   field holds (4 GiB for u32) and keeps its connection open while the new client
//!   tries: a server that allocates that much, or waits for the body while others queue,
//!   does not serve it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use socklab_harness::check::Check;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::CaseOutcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::{Options, Peer};
use super::fresh::{Served, fresh_client};
use super::metric;
use super::wire::message;
use super::{Params, Setup, Which, ms, secs};

/// How long the hostile client watches for the server to close its connection.
const WATCH: Duration = Duration::from_millis(500);
/// How long after the reset the new client connects, so the server has seen it.
const SETTLE: Duration = Duration::from_millis(50);

/// What the check measured.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    /// Whether the reset or hostile prefix was delivered, or why not.
    attack: Option<Result<(), String>>,
    /// Hostile-length: the length announced, and how long until the server closed.
    announced: u64,
    closed_after: Option<Duration>,
    /// The new client.
    after: Option<Served>,
}

pub(crate) async fn run(which: Which, params: &Params, setup: &Setup, peer: &Peer) -> Measure {
    let mut measure = Measure::default();
    let mut first = match peer.connect(Options::default()).await {
        Ok(stream) => stream,
        Err(e) => {
            measure.attack = Some(Err(format!("cannot connect: {e}")));
            return measure;
        }
    };
    if which == Which::Reset {
        measure.attack = Some(reset_mid_message(peer, setup, &mut first).await);
        // SO_LINGER 0: closing sends a RST.
        let _ = socket2::SockRef::from(&first).set_linger(Some(Duration::ZERO));
        drop(first);
        tokio::time::sleep(SETTLE).await;
        measure.after = Some(fresh_client(peer, params.messages as usize, setup.message_size).await);
        return measure;
    }
    let Some((prefix, announced)) = peer.wire.hostile_prefix() else {
        measure.attack = Some(Err(format!("{} has no length prefix to attack", peer.wire.0)));
        return measure;
    };
    measure.announced = announced;
    measure.attack = Some(first.write_all(&prefix).await.map_err(|e| format!("cannot send the prefix: {e}")));
    // Through a relay, the watch starts once the server has the prefix.
    if !super::relay::passed_on(peer, &first, prefix.len() as u64).await {
        measure.attack = Some(Err("the impairment relay did not pass the prefix on in time".into()));
    }
    // Watch whether the server closes (or, for stop-and-wait, refuses) the connection.
    let started = Instant::now();
    let mut buf = [0u8; 64];
    while started.elapsed() < WATCH {
        match tokio::time::timeout(WATCH.saturating_sub(started.elapsed()), first.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                measure.closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => {} // a NAK, or a source's messages: keep watching
            Err(_) => break,
        }
    }
    // The hostile connection stays open while the new client tries.
    measure.after = Some(fresh_client(peer, params.messages as usize, setup.message_size).await);
    drop(first);
    measure
}

/// Sends half a message (header and half the payload; for stop-and-wait the header, the
/// ACK, half the body). A source's client reads a little of the stream instead.
async fn reset_mid_message(
    peer: &Peer,
    setup: &Setup,
    stream: &mut tokio::net::TcpStream,
) -> Result<(), String> {
    let sent: Bytes = message(0, setup.message_size);
    if peer.behaviour == Behaviour::Source {
        let mut buf = [0u8; 100];
        return match tokio::time::timeout(peer.reply_timeout, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            _ => Err("the source sent nothing to reset in the middle of".into()),
        };
    }
    let frame = peer.wire.frame(&sent);
    let half = if peer.wire.is_stop_and_wait() {
        stream.write_all(&frame[..4]).await.map_err(|e| e.to_string())?;
        let mut ack = [0u8; 1];
        tokio::time::timeout(peer.reply_timeout, stream.read_exact(&mut ack))
            .await
            .map_err(|_| "no ACK to the length".to_string())?
            .map_err(|e| e.to_string())?;
        frame.slice(4..4 + sent.len() / 2)
    } else {
        let (head, _) = peer.wire.overhead(frame.len(), sent.len());
        frame.slice(..head + sent.len() / 2)
    };
    stream.write_all(&half).await.map_err(|e| format!("cannot send half a message: {e}"))?;
    // Through a relay, the reset follows once the server has the half message: the relay
    // would otherwise drop what it still held and the server would meet a reset alone.
    let before = if peer.wire.is_stop_and_wait() { 4 } else { 0 };
    match super::relay::passed_on(peer, stream, (before + half.len()) as u64).await {
        true => Ok(()),
        false => Err("the impairment relay did not pass half a message on in time".into()),
    }
}

pub(crate) fn evaluate(
    which: Which,
    params: &Params,
    _setup: &Setup,
    measure: Option<Measure>,
    target_running: Option<bool>,
    outcome: &mut CaseOutcome,
) -> Check {
    let (name, what) = match which {
        Which::Reset => ("reset", "a client reset mid-message".to_string()),
        _ => ("hostile_length", "a length prefix far above any sane frame".to_string()),
    };
    let expected = format!("after {what}, a new client served within {}", secs(params.reply_timeout()));
    let Some(m) = measure else {
        return Check::nothing_to_judge(name, expected, "nothing was sent");
    };
    let (Some(attack), after) = (m.attack, m.after) else {
        return Check::nothing_to_judge(name, expected, "nothing was sent");
    };
    if let Err(why) = attack {
        return Check::new(name, expected, why.clone(), false, format!("the check could not start: {why}"));
    }
    let Some(after) = after else {
        return Check::nothing_to_judge(name, expected, "no new client was tried");
    };
    outcome.metric(metric::recovery_ms, ms(after.took));
    let mut what = what;
    if which == Which::HostileLength {
        outcome.key_metric(metric::hostile_length, m.announced as f64);
        if let Some(closed) = m.closed_after {
            outcome.metric(metric::hostile_closed_ms, ms(closed));
        }
        what = format!("a length prefix of {} bytes", m.announced);
    }
    let alive = target_running != Some(false);
    let passed = after.ok && alive;
    let reaction = match (which, m.closed_after) {
        (Which::HostileLength, Some(closed)) => {
            format!(", which it closed after {:.0} ms,", closed.as_secs_f64() * 1e3)
        }
        (Which::HostileLength, None) => ", which it kept open,".to_string(),
        _ => String::new(),
    };
    let sentence = if passed {
        format!(
            "after {what}{reaction} the server served a new client in {:.0} ms",
            after.took.as_secs_f64() * 1e3
        )
    } else if !alive {
        format!("after {what} the server process was no longer running: the server must survive")
    } else {
        format!(
            "after {what}{reaction} a new client was not served ({}): the server must survive",
            after.problem.clone().unwrap_or_default()
        )
    };
    let observed = format!(
        "new client {} in {:.0} ms{}",
        if after.ok { "served" } else { "not served" },
        after.took.as_secs_f64() * 1e3,
        match target_running {
            Some(true) => "; process running",
            Some(false) => "; process gone",
            None => "",
        }
    );
    Check::new(name, expected, observed, passed, sentence)
}
