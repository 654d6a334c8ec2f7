//! `impair`: every client of a check connects through a seeded relay placed in front of
//! the server, so the server meets the relay's cuts, merges and delays on whatever it
//! is tested for; and which checks cannot be judged that way, refused before they run.
//!
//! A relay is a reader and a writer of its own between client and server. Some checks
//! test what only the client's own socket can make the server meet, and a relay hides
//! it: `slow-reader` (the relay reads the replies as fast as they come, so the server's
//! `send()` never meets a full buffer), `concurrency` with a sink (the relay takes a
//! client's bytes whether or not the server reads them). `reset-after` resets every
//! connection, which the checks would blame on the server. And a relay that passes a
//! few bytes per millisecond (`split=1`) cannot move a check's megabyte in the time a
//! check has. Those combinations get a one-line reason instead of a wrong verdict.
//!
//! What a relay would hide, and the bytes a check moves, each check says itself
//! ([`RelayLoad`]); this module weighs them against the relay's spec.

use std::time::Duration;

use socklab_harness::impair::Impairment;
use socklab_harness::impair::spec::Pieces;
use socklab_harness::params::Invalid;
use tokio::net::TcpStream;

use super::check::RelayLoad;
use super::conn::Peer;
use super::secs;
use super::setup::Setup;

/// The longest a check may spend moving its bytes at the relay's pace alone: a check
/// that needs more would end by the case timeout (30 s by default), not by a verdict.
pub(crate) const BUDGET: Duration = Duration::from_secs(20);
/// How often a check waiting for the relay to pass bytes on looks at its record.
const POLL: Duration = Duration::from_millis(1);
/// Bytes a `random` piece carries on average: a split of 1..=8 or a merge of 9..=1024,
/// by a coin toss.
const RANDOM_MEAN_PIECE: f64 = (4.5 + 516.5) / 2.0;

/// Why the check of `setup`, which asks `load` of a relay, cannot be judged through the
/// relay `setup.impair` makes, in one line, naming the parameter to change; `Ok` when it
/// can (or there is no relay).
///
/// # Errors
/// [`Invalid`] naming `impair` or `reply_timeout_ms`.
pub(crate) fn refusal(setup: &Setup, load: RelayLoad) -> Result<(), Invalid> {
    let spec = &setup.impair;
    if spec.is_none() {
        return Ok(());
    }
    if spec.reset_after.is_some() {
        return Err(Invalid::new(
            "impair",
            "impair: reset-after does not apply to server-conformance: the relay would reset every \
             connection and the checks would blame the server (check=reset resets one itself)",
        ));
    }
    let (bytes, sized_by) = match load {
        RelayLoad::Hidden(why) => return Err(Invalid::new("impair", why)),
        RelayLoad::Moves { bytes, sized_by } => (bytes, sized_by),
    };
    let hold = longest_hold(spec);
    let reply_timeout = setup.params.reply_timeout();
    if hold * 2 >= reply_timeout {
        return Err(Invalid::new(
            "reply_timeout_ms",
            format!(
                "impair={spec} may hold bytes for {} each way, too close to reply_timeout_ms ({}) to tell a \
                 silent server from a slow relay; raise reply_timeout_ms above {} ms",
                secs(hold),
                secs(reply_timeout),
                (hold * 2).as_millis() + 1
            ),
        ));
    }
    if let Some(pace) = fastest_pace(spec) {
        let least = Duration::from_secs_f64(bytes as f64 / pace);
        if least > BUDGET {
            let fewer = match sized_by {
                Some(param) => format!("{param} at most {}", (pace * BUDGET.as_secs_f64()) as u64),
                None => "fewer messages or smaller ones".to_string(),
            };
            return Err(Invalid::new(
                "impair",
                format!(
                    "{} moves {bytes} bytes each way through impair={spec}, which passes at most {} bytes/s: \
                     {} at least, above the {} a check may spend; send {fewer}, or impair less",
                    setup.params.check,
                    pace.round(),
                    secs(least),
                    secs(BUDGET)
                ),
            ));
        }
    }
    Ok(())
}

/// The longest the relay may hold a byte each way: `delay`, a `merge` window, a piece's
/// `hold`, a `stall`.
fn longest_hold(spec: &Impairment) -> Duration {
    spec.delay.map_or(Duration::ZERO, |d| d.max)
        + spec.window.unwrap_or_default()
        + if spec.pieces.is_some() { spec.hold() } else { Duration::ZERO }
        + spec.stall.map_or(Duration::ZERO, |s| s.pause)
}

/// The most bytes per second the relay's pieces, gaps and `rate` let through one way;
/// `None` when nothing but the sockets limits it.
fn fastest_pace(spec: &Impairment) -> Option<f64> {
    let gap = spec.gap().as_secs_f64();
    let by_pieces = match spec.pieces {
        _ if gap <= 0.0 => None,
        Some(Pieces::Split { max, .. }) => Some(max as f64 / gap),
        Some(Pieces::Merge(size)) => Some(size as f64 / gap),
        // Without a gap of its own, `random` pauses after its splits only: every other
        // piece, on average.
        Some(Pieces::Random) if spec.gap.is_none() => Some(2.0 * RANDOM_MEAN_PIECE / gap),
        Some(Pieces::Random) => Some(RANDOM_MEAN_PIECE / gap),
        None => None,
    };
    let by_rate = spec.rate.map(|rate| rate as f64);
    match (by_pieces, by_rate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Relay reads and writes listed per direction in the report (the rest are counted).
pub(crate) const RECORD_LIMIT: usize = 200;

/// With a relay: waits until it has written `bytes` of what the client of `stream` sent
/// on to the server (at most the reply timeout), so that what a check does next — reset
/// the connection, watch for the server's close — comes after the server had them.
/// Without a relay, returns at once. Returns whether the bytes were passed on.
pub(crate) async fn passed_on(peer: &Peer, stream: &TcpStream, bytes: u64) -> bool {
    let (Some(relay), Ok(client)) = (&peer.relay, stream.local_addr()) else { return true };
    let client = client.to_string();
    let deadline = tokio::time::Instant::now() + peer.reply_timeout;
    // Bounded by the deadline; each pass sleeps POLL.
    loop {
        let written =
            relay.observation().connections.iter().find(|c| c.client == client).map_or(0, |c| c.up.bytes_out);
        if written >= bytes {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_conformance::Params;
    use socklab_harness::peer::Behaviour;

    fn refused(check: &str, impair: &str, set: impl FnOnce(&mut Params)) -> Option<String> {
        let mut params = Params { check: check.parse().unwrap(), impair: impair.into(), ..Params::default() };
        set(&mut params);
        let setup = Setup::new(&params).unwrap();
        refusal(&setup, setup.params.check.entry().check.relay(&setup)).err().map(|invalid| invalid.reason)
    }

    #[test]
    fn checks_a_relay_cannot_judge_are_refused_with_the_reason() {
        assert_eq!(refused("slow-reader", "none", |_| {}), None, "no relay, nothing refused");
        assert!(
            refused("slow-reader", "merge=20ms", |_| {})
                .unwrap()
                .starts_with("slow-reader does not apply through impair")
        );
        assert!(
            refused("concurrency", "random", |p| p.behaviour = Behaviour::Sink).unwrap().contains("a sink")
        );
        assert_eq!(refused("concurrency", "random", |_| {}), None);
        assert!(refused("eof", "reset-after=100", |_| {}).unwrap().contains("would blame the server"));
        let slow = refused("eof", "delay=1s", |_| {}).unwrap();
        assert!(slow.contains("raise reply_timeout_ms above 2001 ms"), "{slow}");
        assert_eq!(refused("eof", "delay=1s", |p| p.reply_timeout_ms = 3000), None);
    }

    #[test]
    fn a_check_the_relay_cannot_carry_in_time_is_refused_with_the_numbers() {
        // 1 MiB at one byte per millisecond: some 17 minutes.
        let large = refused("large-message", "split=1", |_| {}).unwrap();
        assert!(
            large.starts_with("large-message moves 1048576 bytes each way through impair=split=1"),
            "{large}"
        );
        assert!(large.contains("send large_size at most 20000"), "{large}");
        assert_eq!(refused("large-message", "split=1", |p| p.large_size = 10_000), None);
        // The default conversation is small enough byte by byte.
        for check in ["reassembly", "eof", "reset", "concurrency", "hostile-length"] {
            assert_eq!(refused(check, "split=1", |_| {}), None, "{check}");
            assert_eq!(refused(check, "merge=20ms", |_| {}), None, "{check}");
        }
        assert_eq!(refused("large-message", "random", |_| {}), None, "random passes ~2.6 MB/s");
        assert_eq!(refused("large-message", "merge=20ms", |_| {}), None);
        assert!(refused("large-message", "rate=10KB/s", |_| {}).unwrap().contains("at most 10000 bytes/s"));
    }
}
