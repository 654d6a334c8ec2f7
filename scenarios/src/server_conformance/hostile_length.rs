//! `hostile-length`: a client sends a length prefix announcing the largest frame the
//! field holds (4 GiB for u32) and keeps its connection open while a new client tries
//! ([`super::survival`]): a server that allocates that much, or waits for the body while
//! others queue, does not serve it.

use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::params::Invalid;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::{CaseContext, CaseOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::check::{ConformanceCheck, RelayLoad, Seen, refuse_if};
use super::conn::Peer;
use super::setup::Setup;
use super::survival::{self, Harm, Measure};
use super::{metric, ms};

/// How long the hostile client watches for the server to close its connection.
const WATCH: Duration = Duration::from_millis(500);

/// The check; see the module docs.
pub(crate) struct HostileLength;

impl ConformanceCheck for HostileLength {
    const NAME: &'static str = "hostile-length";
    type Measure = Measure;

    fn applies(setup: &Setup) -> Result<(), Invalid> {
        let (wire, framing) = (setup.wire, &setup.params.framing);
        refuse_if(setup.params.behaviour == Behaviour::Source, "behaviour", || {
            "hostile-length does not apply to a source, which never reads what the client sends".into()
        })?;
        refuse_if(!wire.is_length_framing(), "framing", || {
            format!("hostile-length does not apply to {framing}: it has no length prefix")
        })?;
        refuse_if(wire.is_narrow_length(), "framing", || {
            let most = wire.max_payload().unwrap_or(0);
            format!(
                "hostile-length does not apply to {framing}: its largest length ({most} bytes) is a sane frame"
            )
        })
    }

    fn relay(setup: &Setup) -> RelayLoad {
        survival::relay_load(setup)
    }

    async fn run(setup: &Setup, peer: &Peer, _ctx: &CaseContext) -> Measure {
        let mut measure = Measure::default();
        let Some(mut first) = survival::attacker(peer, &mut measure).await else { return measure };
        let Some((prefix, announced)) = peer.wire.hostile_prefix() else {
            measure.attack = Some(Err(format!("{} has no length prefix to attack", peer.wire.0)));
            return measure;
        };
        measure.announced = announced;
        measure.attack =
            Some(first.write_all(&prefix).await.map_err(|e| format!("cannot send the prefix: {e}")));
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
        measure.after = Some(survival::new_client(setup, peer).await);
        drop(first);
        measure
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let what = "a length prefix far above any sane frame";
        survival::evaluate(Harm { name: "hostile_length", what, told }, setup, seen, outcome)
    }
}

/// The length announced and how the server reacted, as metrics and in words.
fn told(m: &Measure, outcome: &mut CaseOutcome) -> (String, String) {
    outcome.key_metric(metric::hostile_length, m.announced as f64);
    if let Some(closed) = m.closed_after {
        outcome.metric(metric::hostile_closed_ms, ms(closed));
    }
    let reaction = match m.closed_after {
        Some(closed) => format!(", which it closed after {:.0} ms,", closed.as_secs_f64() * 1e3),
        None => ", which it kept open,".to_string(),
    };
    (format!("a length prefix of {} bytes", m.announced), reaction)
}
