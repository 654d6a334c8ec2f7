//! What `reset` and `hostile-length` share: something a server must survive, then a new
//! client must be served (and a `--target-cmd` process must still be running). Each
//! check does its own harm ([`super::reset`], [`super::hostile_length`]); this is the
//! client that does it, the new client after, and the verdict.

use std::time::Duration;

use socklab_harness::check::Check;
use socklab_harness::scenario::CaseOutcome;
use tokio::net::TcpStream;

use super::check::{RelayLoad, Seen};
use super::conn::{Options, Peer};
use super::fresh::{Served, fresh_client};
use super::setup::Setup;
use super::{metric, ms, secs};

/// What a survival check measured.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    /// Whether the harm was done, or why not.
    pub attack: Option<Result<(), String>>,
    /// Hostile-length: the length announced.
    pub announced: u64,
    /// Hostile-length: how long until the server closed the hostile connection.
    pub closed_after: Option<Duration>,
    /// The new client.
    pub after: Option<Served>,
}

/// The client that does the harm, connected; `None` when it cannot connect, which
/// `measure` then says.
pub(crate) async fn attacker(peer: &Peer, measure: &mut Measure) -> Option<TcpStream> {
    match peer.connect(Options::default()).await {
        Ok(stream) => Some(stream),
        Err(e) => {
            measure.attack = Some(Err(format!("cannot connect: {e}")));
            None
        }
    }
}

/// Whether a new client is served after the harm: a whole conversation of its own.
pub(crate) async fn new_client(setup: &Setup, peer: &Peer) -> Served {
    fresh_client(peer, setup.params.messages as usize, setup.message_size).await
}

/// What a relay must carry: half a message, or the hostile prefix, then a new client's
/// conversation.
pub(crate) fn relay_load(setup: &Setup) -> RelayLoad {
    RelayLoad::Moves { bytes: setup.message_size as u64 + setup.conversation_bytes(), sized_by: None }
}

/// The harm a check does, as its verdict tells it.
pub(crate) struct Harm {
    /// The check's name in reports.
    pub name: &'static str,
    /// What it does, for the expectation: `a client reset mid-message`.
    pub what: &'static str,
    /// What it did once it happened, for the sentence, and how the server reacted
    /// (`, which it kept open,`); it adds the check's own metrics.
    pub told: fn(&Measure, &mut CaseOutcome) -> (String, String),
}

/// The verdict: after the harm, a new client served and the process still running.
pub(crate) fn evaluate(harm: Harm, setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
    let server = seen.server;
    let name = harm.name;
    let expected =
        format!("after {}, a new client served within {}", harm.what, secs(setup.params.reply_timeout()));
    let Some(m) = seen.measure else {
        return Check::nothing_to_judge(name, expected, "nothing was sent");
    };
    let Some(attack) = &m.attack else {
        return Check::nothing_to_judge(name, expected, "nothing was sent");
    };
    if let Err(why) = attack {
        return Check::new(name, expected, why.clone(), false, format!("the check could not start: {why}"));
    }
    let Some(after) = &m.after else {
        return Check::nothing_to_judge(name, expected, "no new client was tried");
    };
    outcome.metric(metric::recovery_ms, ms(after.took));
    let (what, reaction) = (harm.told)(&m, outcome);
    let alive = server.target_running != Some(false);
    let passed = after.ok && alive;
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
        match server.target_running {
            Some(true) => "; process running",
            Some(false) => "; process gone",
            None => "",
        }
    );
    Check::new(name, expected, observed, passed, sentence)
}
