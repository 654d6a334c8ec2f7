//! `reassembly`: the same messages in five chunkings (or the one `chunking` names), one
//! connection each; every reply
//! must come back whole, in order, none missing or extra. A sink must take them all
//! without a reset (the reference sink also counts them intact); a source's messages are
//! read one byte at a time, a few bytes at a time and in large reads, and must all verify.
//!
//! Where capture runs (loopback, CAP_NET_RAW), it confirms that the 1-byte writes left
//! as separate segments, so the server really received them apart.

use std::time::Duration;

use bytes::Bytes;
use socklab_harness::capture::{CaptureConfig, CaseCapture, CaseCaptureResult, stream_segments};
use socklab_harness::check::Check;
use socklab_harness::peer::Behaviour;
use socklab_harness::report::{Direction, StreamTrace};
use socklab_harness::scenario::{CaseContext, CaseOutcome};

use super::Params;
use super::check::{ConformanceCheck, RelayLoad, Seen, ServerSide};
use super::conn::{Conversation, End, Options, Peer, Replies, Script, converse_alone};
use super::metric;
use super::replies::{judge, trace};
use super::setup::Setup;
use super::source::{read_source, source_problems};
use super::wire::{Chunking, SplitMix, expected_reply};

/// The check; see the module docs.
pub(crate) struct Reassembly;

/// What the check measured.
#[derive(Default)]
pub(crate) struct Measure {
    /// The messages sent in every chunking.
    messages: Vec<Bytes>,
    /// One per chunking (echo, echo-upper, sink) or read size (source).
    runs: Vec<Run>,
    /// The capture, when it was attempted.
    capture: Option<CaseCaptureResult>,
    /// Client port of the 1-byte-per-write connection.
    byte_port: Option<u16>,
}

/// One connection of the check.
#[derive(Debug)]
struct Run {
    /// The chunking, or the read size, in words.
    name: String,
    /// What was written and what came back; `None` when the client could not connect.
    conversation: Result<Conversation, String>,
}

/// Read sizes a source's messages are read with.
fn source_read_sizes(seed: u64) -> [usize; 3] {
    [64 << 10, 1, 2 + SplitMix(seed).below(15)]
}

impl ConformanceCheck for Reassembly {
    const NAME: &'static str = "reassembly";
    type Measure = Measure;

    fn relay(setup: &Setup) -> RelayLoad {
        // The chunkings (read sizes, for a source), one connection after another.
        let connections = match setup.params.behaviour {
            Behaviour::Source => source_read_sizes(0).len(),
            _ => Chunking::chosen(setup.params.chunking, 0).len(),
        };
        RelayLoad::Moves { bytes: connections as u64 * setup.conversation_bytes(), sized_by: None }
    }

    async fn run(setup: &Setup, peer: &Peer, ctx: &CaseContext) -> Measure {
        // The server's port: through a relay, what the server got is the relay's writes.
        let capture = peer
            .server
            .ip()
            .is_loopback()
            .then(|| CaseCapture::start(CaptureConfig::loopback(peer.server.port()), peer.clock));
        let mut measure = Measure { messages: setup.messages(), ..Measure::default() };
        if setup.params.behaviour == Behaviour::Source {
            for read_size in source_read_sizes(ctx.seed) {
                let conversation = read_a_source(peer, measure.messages.len(), read_size).await;
                measure.runs.push(Run { name: format!("read {read_size} bytes at a time"), conversation });
            }
        } else {
            for chunking in Chunking::chosen(setup.params.chunking, ctx.seed) {
                let script = Script { messages: &measure.messages, chunking, gap: setup.params.gap() };
                let conversation = converse_alone(peer, script).await.map(|(conversation, port)| {
                    // Through a relay the server gets the relay's cuts, not these writes
                    // (the relay's record in the report says what it wrote).
                    if chunking == Chunking::ByteByByte && peer.relay.is_none() {
                        measure.byte_port = port;
                    }
                    conversation
                });
                measure.runs.push(Run { name: chunking.name(), conversation });
            }
        }
        if let Some(capture) = capture {
            measure.capture = Some(capture.finish(&ctx.case_id).await);
        }
        measure
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let name = "reassembly";
        let expected = expected(setup);
        let Some(measure) = seen.measure.filter(|m| !m.runs.is_empty() && !m.messages.is_empty()) else {
            return Check::nothing_to_judge(name, expected, "no chunking was sent");
        };
        let owed: Vec<Bytes> =
            measure.messages.iter().filter_map(|m| expected_reply(setup.params.behaviour, m)).collect();
        let judged = judge_runs(setup, &measure, &owed);
        outcome.observations.stream = judged.trace;
        let verdicts = judged.verdicts;
        let failed: Vec<&(String, Verdict)> = verdicts.iter().filter(|(_, v)| !v.ok).collect();
        outcome
            .key_metric(metric::chunkings, verdicts.len() as f64)
            .key_metric(metric::chunkings_failed, failed.len() as f64)
            .metric(metric::replies_owed, (owed.len() * verdicts.len()) as f64)
            .metric(metric::replies_received, judged.received as f64)
            .metric(metric::glued_replies, judged.glued as f64)
            .metric(metric::split_replies, judged.split as f64);
        let sink_problem =
            sink_problem(setup, &seen.server, measure.messages.len() * verdicts.len(), outcome);
        add_capture(&measure, outcome);
        let observed =
            verdicts.iter().map(|(name, v)| format!("{name}: {}", v.observed)).collect::<Vec<_>>().join("; ");
        let (passed, sentence) = sentence(setup, &failed, sink_problem);
        Check::new(name, expected, observed, passed, sentence)
    }
}

/// A source's messages read `read_size` bytes at a time on a connection of their own.
async fn read_a_source(peer: &Peer, count: usize, read_size: usize) -> Result<Conversation, String> {
    let mut stream = peer.connect(Options::default()).await.map_err(|e| format!("cannot connect: {e}"))?;
    let replies = read_source(peer, &mut stream, count, usize::MAX, read_size, Duration::ZERO).await;
    Ok(Conversation { replies, ..Conversation::default() })
}

/// What the check expects of the server, in words.
fn expected(setup: &Setup) -> String {
    let params = &setup.params;
    match params.behaviour {
        Behaviour::Echo | Behaviour::EchoUpper => format!(
            "{} replies, whole and in order, none missing or extra, in {}",
            params.messages,
            match Chunking::chosen(params.chunking, 0).as_slice() {
                [one] => format!("the chunking \"{}\"", one.choice()),
                all => format!("each of {} chunkings", all.len()),
            }
        ),
        Behaviour::Sink => "every chunking taken without a reply or a reset".to_string(),
        Behaviour::Source => {
            format!("{} intact messages in sequence, whatever the read size", params.messages)
        }
    }
}

/// A run's verdict: passed, what it showed in a few words, and a sentence.
struct Verdict {
    ok: bool,
    observed: String,
    sentence: String,
}

/// Every run judged, with the counts over them and the boundary map to show.
struct Judged {
    /// Each run's name and verdict, in order.
    verdicts: Vec<(String, Verdict)>,
    received: usize,
    glued: usize,
    split: usize,
    /// The first failing echo run's boundary map, else the last run's.
    trace: Option<StreamTrace>,
}

/// Judges each run against the replies `owed` to one conversation.
fn judge_runs(setup: &Setup, measure: &Measure, owed: &[Bytes]) -> Judged {
    let params = &setup.params;
    let mut judged = Judged { verdicts: Vec::new(), received: 0, glued: 0, split: 0, trace: None };
    for run in &measure.runs {
        let verdict = match &run.conversation {
            Err(why) => Verdict { ok: false, observed: why.clone(), sentence: format!("a client {why}") },
            Ok(conversation) => {
                let replies = &conversation.replies;
                judged.received += replies.frames.len();
                match params.behaviour {
                    Behaviour::Echo | Behaviour::EchoUpper => {
                        let j = judge(owed, replies, setup.wire.is_raw(), params.reply_timeout());
                        judged.glued += j.glued;
                        judged.split += j.split;
                        if judged.trace.is_none() && !j.ok {
                            judged.trace = Some(trace(&measure.messages, &conversation.message_at, replies));
                        }
                        Verdict { ok: j.ok, observed: j.observed, sentence: j.sentence }
                    }
                    Behaviour::Sink => sink_verdict(replies, params),
                    Behaviour::Source => source_verdict(replies, measure.messages.len(), params),
                }
            }
        };
        judged.verdicts.push((run.name.clone(), verdict));
    }
    if let (None, Some(Ok(last))) = (&judged.trace, measure.runs.last().map(|r| &r.conversation))
        && !owed.is_empty()
    {
        judged.trace = Some(trace(&measure.messages, &last.message_at, &last.replies));
    }
    judged
}

/// The reference sink's counts as metrics, and what is wrong with them when they are not
/// the `sent` messages all intact.
fn sink_problem(
    setup: &Setup,
    server: &ServerSide,
    sent: usize,
    outcome: &mut CaseOutcome,
) -> Option<String> {
    // Raw framing has no boundaries for the reference sink to verify messages by.
    let (intact, corrupted) = server.sink.filter(|_| !setup.wire.is_raw())?;
    outcome.metric(metric::server_intact, intact as f64).metric(metric::server_corrupted, corrupted as f64);
    (intact != sent as u64 || corrupted != 0).then(|| {
        format!("the reference sink verified {intact} of {sent} messages intact and {corrupted} damaged")
    })
}

/// Whether the check passed, and its sentence.
fn sentence(setup: &Setup, failed: &[&(String, Verdict)], sink_problem: Option<String>) -> (bool, String) {
    let params = &setup.params;
    // The sentence comes from the failing chunking whose outcome depends least on timing:
    // everything in one write reaches a server in one recv() whatever the load, while
    // paced writes may be read together by a server that falls behind.
    let headline = [Chunking::Merged, Chunking::ByteByByte, Chunking::HeaderCut]
        .iter()
        .find_map(|chunking| failed.iter().find(|(name, _)| *name == chunking.name()))
        .or(failed.first());
    // Through a relay the server met the relay's cuts of what was sent.
    let through =
        if params.impair == "none" { String::new() } else { format!(" through impair={}", params.impair) };
    // One chunking shows the server copes with it, not that it frames its input.
    let only = match Chunking::chosen(params.chunking, 0).as_slice() {
        [one] if params.behaviour != Behaviour::Source => Some(one.name()),
        _ => None,
    };
    match (headline, sink_problem) {
        (Some((name, verdict)), _) => (false, format!("{} (when sent as {name}{through})", verdict.sentence)),
        (None, Some(problem)) => (false, format!("{problem}: it lost track of message boundaries")),
        (None, None) => (
            true,
            match (params.behaviour, only) {
                (Behaviour::Source, _) => {
                    "every message decoded and verified, whatever the read size".to_string()
                }
                (_, Some(one)) => format!(
                    "every message was handled whole and in order when sent as {one}{through}; chunking=all \
                     tries the other chunkings too"
                ),
                (Behaviour::Sink, None) => {
                    format!(
                        "the server took every chunking{through} without replying or resetting: it frames its input"
                    )
                }
                (_, None) => format!(
                    "every reply came back whole and in order in every chunking{through}: the server frames its input"
                ),
            },
        ),
    }
}

fn sink_verdict(replies: &Replies, params: &Params) -> Verdict {
    let ok = replies.bytes == 0 && replies.end == End::Complete;
    let observed = if ok {
        "no reply, no reset".to_string()
    } else if replies.bytes > 0 {
        format!("{} bytes came back from a sink", replies.bytes)
    } else {
        replies.end.words(params.reply_timeout())
    };
    let sentence = if replies.bytes > 0 {
        format!("a sink sent {} bytes back: is the server's behaviour the one declared?", replies.bytes)
    } else {
        format!("while taking messages, {}", replies.end.words(params.reply_timeout()))
    };
    Verdict { ok, observed, sentence }
}

fn source_verdict(replies: &Replies, count: usize, params: &Params) -> Verdict {
    if replies.frames.len() < count {
        let why = replies.error.clone().unwrap_or_else(|| replies.end.words(params.reply_timeout()));
        return Verdict {
            ok: false,
            observed: format!("{} of {count} messages", replies.frames.len()),
            sentence: format!("only {} of {count} messages arrived: {why}", replies.frames.len()),
        };
    }
    match source_problems(replies) {
        None => Verdict { ok: true, observed: format!("{count} intact messages"), sentence: String::new() },
        Some((_, why, bad)) => Verdict {
            ok: false,
            observed: format!("{bad} of {count} messages damaged or out of sequence"),
            sentence: format!("{why}: the server's frames do not carry its messages whole"),
        },
    }
}

/// The capture's observation and pcap, and whether the 1-byte writes left as separate
/// segments.
fn add_capture(measure: &Measure, outcome: &mut CaseOutcome) {
    let Some(capture) = &measure.capture else { return };
    outcome.observations.capture = Some(capture.observation.clone());
    outcome.artifacts.extend(capture.artifact.clone());
    let byte_writes = measure
        .runs
        .iter()
        .find(|r| r.name == Chunking::ByteByByte.name())
        .and_then(|r| r.conversation.as_ref().ok())
        .map(|c| c.writes.len());
    let (Some(packets), Some(port), Some(writes)) = (&capture.packets, measure.byte_port, byte_writes) else {
        return;
    };
    let segments = stream_segments(packets, Direction::ClientToServer, Some(port), 0).segments;
    let one_byte = segments.iter().filter(|s| s.len == 1).count();
    outcome.metric(metric::one_byte_writes, writes as f64).metric(metric::one_byte_segments, one_byte as f64);
    // Every segment carried one byte: none merged two writes. (Fewer segments than
    // writes means the capture missed some, which its observation counts.)
    let passed = !segments.is_empty() && one_byte == segments.len();
    let missed = if segments.len() < writes {
        format!("; the capture missed {} (see its kernel drops)", writes - segments.len())
    } else {
        String::new()
    };
    outcome.checks.push(Check::new(
        "one_byte_writes_left_apart",
        format!("one byte per segment for the {writes} one-byte writes"),
        format!("{} segments, {one_byte} of them one byte{missed}", segments.len()),
        passed,
        if passed {
            "the capture confirms the server received the 1-byte writes as separate segments".to_string()
        } else {
            "the 1-byte writes were merged on the wire, so that chunking did not test what it says: raise gap_ms"
                .to_string()
        },
    ));
}
