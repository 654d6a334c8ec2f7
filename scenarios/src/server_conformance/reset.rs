//! `reset`: a client sends half a message, then closes with SO_LINGER 0, so its kernel
//! sends a RST instead of a FIN (a source's client resets mid-stream instead); then a new
//! client must be served ([`super::survival`]).

use std::time::Duration;

use bytes::Bytes;
use socklab_harness::check::Check;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::{CaseContext, CaseOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::check::{ConformanceCheck, RelayLoad, Seen};
use super::conn::Peer;
use super::setup::Setup;
use super::survival::{self, Harm, Measure};
use super::wire::message;

/// How long after the reset the new client connects, so the server has seen it.
const SETTLE: Duration = Duration::from_millis(50);

/// The check; see the module docs.
pub(crate) struct Reset;

impl ConformanceCheck for Reset {
    const NAME: &'static str = "reset";
    type Measure = Measure;

    fn relay(setup: &Setup) -> RelayLoad {
        survival::relay_load(setup)
    }

    async fn run(setup: &Setup, peer: &Peer, _ctx: &CaseContext) -> Measure {
        let mut measure = Measure::default();
        let Some(mut first) = survival::attacker(peer, &mut measure).await else { return measure };
        measure.attack = Some(reset_mid_message(peer, setup, &mut first).await);
        // SO_LINGER 0: closing sends a RST.
        let _ = socket2::SockRef::from(&first).set_linger(Some(Duration::ZERO));
        drop(first);
        tokio::time::sleep(SETTLE).await;
        measure.after = Some(survival::new_client(setup, peer).await);
        measure
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        const WHAT: &str = "a client reset mid-message";
        let harm = Harm { name: "reset", what: WHAT, told: |_, _| (WHAT.to_string(), String::new()) };
        survival::evaluate(harm, setup, seen, outcome)
    }
}

/// Sends half a message (header and half the payload; for stop-and-wait the header, the
/// ACK, half the body). A source's client reads a little of the stream instead.
async fn reset_mid_message(peer: &Peer, setup: &Setup, stream: &mut TcpStream) -> Result<(), String> {
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
