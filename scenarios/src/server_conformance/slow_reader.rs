//! `slow-reader`: the client sends `slow_bytes` in 16 KiB messages while it reads the
//! replies slowly — 4 KiB at a time, a pause before each read — through a small
//! SO_RCVBUF. The server's replies then pile up in its send buffer until `send()` can
//! take only part of one, or none; a server that ignores what `send()` returns loses the
//! rest. The check passes when every reply byte arrived, in order.
//!
//! Linux sizes a connection's send buffer from its segment size (about 2 × 10 segments;
//! 2.6 MB for loopback's 64 KiB segments), so the client announces a 1 KiB MSS: the
//! server's buffer stays near 40 KiB and a megabyte of replies must overflow it.
//! A source's messages are read the same slow way and must all verify.

use std::time::{Duration, Instant};

use bytes::Bytes;
use socklab_harness::check::Check;
use socklab_harness::params::Invalid;
use socklab_harness::peer::Behaviour;
use socklab_harness::scenario::{CaseContext, CaseOutcome};
use tokio::net::TcpStream;

use super::check::{ConformanceCheck, RelayLoad, Seen, refuse_if};
use super::conn::{
    Conversation, End, Options, Peer, Replies, recv_stop_and_wait, replies_from_reads, send_message,
    write_and_read,
};
use super::replies::judge;
use super::setup::Setup;
use super::source::{read_source, source_problems};
use super::wire::{bulk_message_size, expected_reply, message};
use super::{metric, ms};

/// Bytes per slow read.
const READ: usize = 4096;
/// The segment size the client announces (TCP_MAXSEG).
const MSS: u32 = 1024;

/// The check; see the module docs.
pub(crate) struct SlowReader;

impl ConformanceCheck for SlowReader {
    const NAME: &'static str = "slow-reader";
    type Measure = Measure;

    fn applies(setup: &Setup) -> Result<(), Invalid> {
        refuse_if(setup.params.behaviour == Behaviour::Sink, "behaviour", || {
            "slow-reader does not apply to a sink, which sends nothing back to read slowly".into()
        })
    }

    fn relay(_setup: &Setup) -> RelayLoad {
        RelayLoad::Hidden(
            "slow-reader does not apply through impair: the relay reads the server's replies as they \
             come and holds them, so the server's send() never meets a full buffer and one that \
             ignores a partial send() would pass; use impair=none",
        )
    }

    async fn run(setup: &Setup, peer: &Peer, _ctx: &CaseContext) -> Measure {
        let params = &setup.params;
        let size = bulk_message_size(setup.wire, setup.message_size);
        let count = (params.slow_bytes as usize).div_ceil(size);
        let messages: Vec<Bytes> = (0..count).map(|i| message(i as u32, size)).collect();
        let owed: Vec<Bytes> = messages.iter().filter_map(|m| expected_reply(peer.behaviour, m)).collect();
        let mut measure = Measure { owed, ..Measure::default() };
        let options =
            Options { rcvbuf: Some(params.slow_rcvbuf as u32), mss: Some(MSS), ..Options::default() };
        let mut stream = match peer.connect(options).await {
            Ok(stream) => stream,
            Err(e) => {
                measure.conversation = Some(Err(format!("cannot connect: {e}")));
                return measure;
            }
        };
        measure.rcvbuf = socket2::SockRef::from(&stream).recv_buffer_size().ok();
        let pause = Duration::from_millis(params.slow_read_pause_ms);
        let started = Instant::now();
        let conversation = match peer.behaviour {
            Behaviour::Source => {
                let replies =
                    read_source(peer, &mut stream, usize::MAX, params.slow_bytes as usize, READ, pause).await;
                Conversation { replies, ..Conversation::default() }
            }
            _ if peer.wire.is_stop_and_wait() => stop_and_wait(peer, &mut stream, &messages, pause).await,
            _ => {
                let frames: Vec<Bytes> = messages.iter().map(|m| peer.wire.frame(m)).collect();
                let expected: usize = measure.owed.iter().map(|r| peer.wire.frame(r).len()).sum();
                let (writes, reads, end) =
                    write_and_read(peer, &mut stream, &frames, Duration::ZERO, expected, Some((READ, pause)))
                        .await;
                Conversation {
                    writes,
                    replies: replies_from_reads(peer.wire, &reads, end),
                    ..Conversation::default()
                }
            }
        };
        measure.took = started.elapsed();
        measure.conversation = Some(Ok(conversation));
        measure
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let params = &setup.params;
        let name = "slow_reader";
        let expected = match params.behaviour {
            Behaviour::Source => format!("{} bytes of intact messages, read slowly", params.slow_bytes),
            _ => format!(
                "every reply byte of {} bytes sent, read slowly through a small receive buffer",
                params.slow_bytes
            ),
        };
        let Some(measure) = seen.measure else {
            return Check::nothing_to_judge(name, expected, "nothing was sent");
        };
        let conversation = match &measure.conversation {
            None => return Check::nothing_to_judge(name, expected, "nothing was sent"),
            Some(Err(why)) => {
                return Check::new(name, expected, why.clone(), false, format!("a client {why}"));
            }
            Some(Ok(conversation)) => conversation,
        };
        let replies = &conversation.replies;
        let received: usize = replies.frames.iter().map(|(_, f)| f.len()).sum();
        outcome.metric(metric::reply_bytes, received as f64).metric(metric::slow_read_ms, ms(measure.took));
        if let Some(rcvbuf) = measure.rcvbuf {
            outcome.metric(metric::rcvbuf_effective, rcvbuf as f64);
        }
        if params.behaviour == Behaviour::Source {
            let (passed, observed, sentence) = source_verdict(setup, replies, received);
            return Check::new(name, expected, observed, passed, sentence);
        }
        let owed: usize = measure.owed.iter().map(Bytes::len).sum();
        if owed == 0 {
            return Check::nothing_to_judge(name, expected, "no reply was owed");
        }
        let lost = owed.saturating_sub(received);
        outcome
            .key_metric(metric::reply_bytes_owed, owed as f64)
            .key_metric(metric::reply_bytes_lost, lost as f64);
        let (passed, observed, sentence) = reply_verdict(setup, &measure.owed, replies, received);
        Check::new(name, expected, observed, passed, sentence)
    }
}

/// What the check measured.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    /// Replies owed (payloads), in order; empty for a source.
    owed: Vec<Bytes>,
    conversation: Option<Result<Conversation, String>>,
    /// From the first write (or read) to the last read.
    took: Duration,
    /// The client's receive buffer as the kernel set it.
    rcvbuf: Option<usize>,
}

/// Stop-and-wait: each message sent, then its reply read slowly (the body `READ` bytes at
/// a time, after `pause`), until one fails.
async fn stop_and_wait(
    peer: &Peer,
    stream: &mut TcpStream,
    messages: &[Bytes],
    pause: Duration,
) -> Conversation {
    let mut frames = Vec::new();
    let mut end = End::Complete;
    for sent in messages {
        let result = match send_message(peer, stream, sent).await {
            Ok(()) => recv_stop_and_wait(peer, stream, Some((READ, pause))).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(reply) => frames.push((peer.clock.elapsed(), reply)),
            Err(e) => {
                end = e;
                break;
            }
        }
    }
    let bytes = frames.iter().map(|(_, f): &(Duration, Bytes)| f.len() + 4).sum();
    Conversation { replies: Replies { frames, bytes, end, ..Replies::default() }, ..Conversation::default() }
}

/// A source's verdict: every message read slowly arrived intact; passed, observed, sentence.
fn source_verdict(setup: &Setup, replies: &Replies, received: usize) -> (bool, String, String) {
    let params = &setup.params;
    let problems = source_problems(replies);
    let passed = received >= params.slow_bytes as usize && problems.is_none();
    let sentence = match problems {
        Some((_, why, bad)) => format!(
            "{why} ({bad} of {} messages damaged): the server ignores a partial send()",
            replies.frames.len()
        ),
        None if !passed => format!(
            "only {received} of {} bytes of messages came: {}",
            params.slow_bytes,
            replies.end.words(params.reply_timeout())
        ),
        None => format!("all {} messages read slowly arrived intact", replies.frames.len()),
    };
    (passed, format!("{} messages, {received} payload bytes", replies.frames.len()), sentence)
}

/// An echo's verdict: every reply byte `owed` arrived, in order; passed, observed,
/// sentence.
fn reply_verdict(
    setup: &Setup,
    owed: &[Bytes],
    replies: &Replies,
    received: usize,
) -> (bool, String, String) {
    let timeout = setup.params.reply_timeout();
    let j = judge(owed, replies, setup.wire.is_raw(), timeout);
    let owed_cat: Vec<u8> = owed.concat();
    let got_cat: Vec<u8> = replies.frames.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    let (total, lost) = (owed_cat.len(), owed_cat.len().saturating_sub(received));
    let passed = owed_cat == got_cat;
    let first_gap = owed_cat.iter().zip(&got_cat).position(|(a, b)| a != b).unwrap_or(got_cat.len());
    let gap_reply = first_gap / owed.first().map_or(1, |r| r.len().max(1));
    let sentence = if passed && j.ok {
        format!("all {total} reply bytes arrived in order while the client read slowly")
    } else if passed {
        format!("all {total} reply bytes arrived, though not in the replies' boundaries ({})", j.sentence)
    } else if lost > 0 && matches!(replies.end, End::Closed | End::Reset) {
        format!(
            "{lost} of {total} reply bytes never came: {} with them still owed",
            replies.end.words(timeout)
        )
    } else if lost > 0 {
        // The server is still there, read to the end, and owes bytes it will not send:
        // it dropped what send() did not take.
        format!(
            "{lost} of {total} reply bytes were lost, the first in reply {gap_reply}: the server ignores a partial send()"
        )
    } else {
        format!("the reply bytes differ from what was owed from reply {gap_reply} on: {}", j.sentence)
    };
    (passed, format!("{received} of {total} reply bytes; {}", j.observed), sentence)
}
