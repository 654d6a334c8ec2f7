//! `large-message`: one message of `large_size` bytes (1 MiB by default) in one write.
//! An echo must come back as one whole reply; a server that answers after its first
//! recv() is named by the size of that first answer. A sink must take it without a reply
//! or a reset, and then serve a new client.

use bytes::Bytes;
use socklab_harness::check::Check;
use socklab_harness::framing::FramingStrategy;
use socklab_harness::params::Invalid;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::{CaseContext, CaseOutcome};

use super::check::{ConformanceCheck, RelayLoad, Seen, refuse_if};
use super::conn::{Conversation, End, Peer, Script, converse_alone};
use super::fresh::{Served, fresh_client};
use super::replies::{judge, trace};
use super::setup::Setup;
use super::wire::{Chunking, expected_reply, message};
use super::{Params, metric, ms};

/// Most reply frames drawn in the report's boundary map.
const TRACE_FRAMES: usize = 64;

/// The check; see the module docs.
pub(crate) struct LargeMessage;

/// What the check measured.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    sent: Option<Bytes>,
    conversation: Option<Result<Conversation, String>>,
    /// Sink: whether a new client was served afterwards.
    after: Option<Served>,
}

impl ConformanceCheck for LargeMessage {
    const NAME: &'static str = "large-message";
    type Measure = Measure;

    fn applies(setup: &Setup) -> Result<(), Invalid> {
        let (framing, size) = (&setup.params.framing, setup.params.large_size);
        refuse_if(setup.params.behaviour == Behaviour::Source, "behaviour", || {
            "large-message does not apply to a source, which chooses its own message size".into()
        })?;
        refuse_if(matches!(setup.wire.0, FramingStrategy::FixedSize(_)), "framing", || {
            format!("large-message does not apply to {framing}: every record has the same size")
        })?;
        let most = setup.wire.max_payload().unwrap_or(u64::MAX);
        refuse_if(size > most, "large_size", || {
            format!(
                "large-message does not apply to {framing}, which carries at most {most} bytes per frame (large_size is {size})"
            )
        })
    }

    fn relay(setup: &Setup) -> RelayLoad {
        RelayLoad::Moves { bytes: setup.params.large_size, sized_by: Some("large_size") }
    }

    async fn run(setup: &Setup, peer: &Peer, _ctx: &CaseContext) -> Measure {
        let sent = message(0, setup.params.large_size as usize);
        let script = Script {
            messages: std::slice::from_ref(&sent),
            chunking: Chunking::Merged,
            gap: Default::default(),
        };
        let conversation = converse_alone(peer, script).await.map(|(conversation, _)| conversation);
        let after = match peer.behaviour {
            Behaviour::Sink => Some(fresh_client(peer, 1, 64).await),
            _ => None,
        };
        Measure { sent: Some(sent), conversation: Some(conversation), after }
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let name = "large_message";
        let params = &setup.params;
        let size = params.large_size;
        let expected = match params.behaviour {
            Behaviour::Sink => {
                format!("the {size}-byte message taken without a reply or a reset, then a new client served")
            }
            _ => format!("one whole reply to the {size}-byte message"),
        };
        let Some(Measure { sent: Some(sent), conversation: Some(conversation), after }) = seen.measure else {
            return Check::nothing_to_judge(name, expected, "no message was sent");
        };
        let conversation = match conversation {
            Ok(conversation) => conversation,
            Err(why) => return Check::new(name, expected, why.clone(), false, format!("a client {why}")),
        };
        let replies = &conversation.replies;
        let reply_bytes: usize = replies.frames.iter().map(|(_, f)| f.len()).sum();
        outcome
            .key_metric(metric::replies_received, replies.frames.len() as f64)
            .metric(metric::reply_bytes, reply_bytes as f64);
        if let (Some((at, first)), Some(&start)) = (replies.frames.first(), conversation.message_at.first()) {
            outcome
                .key_metric(metric::first_reply_bytes, first.len() as f64)
                .metric(metric::first_reply_ms, ms(at.saturating_sub(start)));
        }
        let Some(owed) = expected_reply(params.behaviour, &sent) else {
            // Raw framing has no boundaries for the reference sink to count messages by.
            let sink = seen.server.sink.filter(|_| !setup.wire.is_raw());
            return sink_check(
                Judged { name, expected, params },
                after.as_ref(),
                &conversation,
                sink,
                outcome,
            );
        };
        let owed = [owed];
        let j = judge(&owed, replies, setup.wire.is_raw(), params.reply_timeout());
        if replies.frames.len() <= TRACE_FRAMES {
            outcome.observations.stream =
                Some(trace(std::slice::from_ref(&sent), &conversation.message_at, replies));
        }
        let first = replies.frames.first().map(|(_, f)| f);
        let answered_early = first.is_some_and(|f| f.len() < owed[0].len() && owed[0].starts_with(f));
        let sentence = match (j.ok, first) {
            (true, _) => format!(
                "the {size}-byte message came back whole in one reply, {:.0} ms after it was sent",
                replies.frames[0].0.saturating_sub(conversation.message_at[0]).as_secs_f64() * 1e3
            ),
            (false, Some(first)) if answered_early => {
                format!("the server answered after {} bytes: it reads one recv() per message", first.len())
            }
            (false, _) => j.sentence.clone(),
        };
        let observed = format!(
            "{} reply frames, {reply_bytes} of {} payload bytes; {}",
            replies.frames.len(),
            owed[0].len(),
            j.observed
        );
        Check::new(name, expected, observed, j.ok, sentence)
    }
}

/// What a verdict is about: the check's name, what it expects, the parameters.
struct Judged<'a> {
    name: &'a str,
    expected: String,
    params: &'a Params,
}

fn sink_check(
    judged: Judged<'_>,
    after: Option<&Served>,
    conversation: &Conversation,
    sink: Option<(u64, u64)>,
    outcome: &mut CaseOutcome,
) -> Check {
    let Judged { name, expected, params } = judged;
    let replies = &conversation.replies;
    if let Some((intact, corrupted)) = sink {
        outcome
            .metric(metric::server_intact, intact as f64)
            .metric(metric::server_corrupted, corrupted as f64);
    }
    let Some(after) = after else {
        return Check::nothing_to_judge(name, expected, "no new client was tried after the message");
    };
    outcome.metric(metric::recovery_ms, ms(after.took));
    // The reference sink counts the large message and the new client's one.
    let counted_ok = sink.is_none_or(|(intact, corrupted)| intact == 2 && corrupted == 0);
    let taken = replies.bytes == 0 && replies.end == End::Complete;
    let passed = taken && after.ok && counted_ok;
    let sentence = if !taken && replies.bytes > 0 {
        format!("a sink sent {} bytes back: is the server's behaviour the one declared?", replies.bytes)
    } else if !taken {
        format!(
            "while taking the {}-byte message, {}",
            params.large_size,
            replies.end.words(params.reply_timeout())
        )
    } else if !after.ok {
        format!(
            "after the {}-byte message a new client was not served: {}",
            params.large_size,
            after.problem.clone().unwrap_or_default()
        )
    } else if !counted_ok {
        "the reference sink did not verify the message intact: it lost track of the message boundary"
            .to_string()
    } else {
        format!("the server took the {}-byte message and then served a new client", params.large_size)
    };
    let observed = format!(
        "{} bytes back, {}; new client {}",
        replies.bytes,
        replies.end.words(params.reply_timeout()),
        if after.ok { "served" } else { "not served" }
    );
    Check::new(name, expected, observed, passed, sentence)
}
