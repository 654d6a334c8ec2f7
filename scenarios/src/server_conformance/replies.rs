//! Judging what came back against what was owed: every reply, in order, none missing or
//! extra — and when not, which replies were glued, split, lost or changed, mapped back
//! onto the messages sent, in one plain sentence.

use std::time::Duration;

use bytes::Bytes;
use socklab_harness::boundary::BoundaryMap;
use socklab_harness::report::{IoEvent, StreamTrace};
use socklab_harness::text::printable;

use super::conn::{End, Replies};

/// What the replies to one conversation show.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judgement {
    /// Every reply came back whole, in order, none missing or extra.
    pub ok: bool,
    /// In words, for the check's observed value: `2 of 3 replies; 0–1 as one`.
    pub observed: String,
    /// One plain sentence: what went wrong and what it means, or that nothing did.
    pub sentence: String,
    /// Reply frames that held bytes of more than one message.
    pub glued: usize,
    /// Messages whose reply came back in more than one frame.
    pub split: usize,
    /// Reply payload bytes owed but not received (0 when more came).
    pub missing_bytes: usize,
}

/// Judges `replies` against the `expected` replies (payloads, in order). `raw`: the
/// framing has no boundaries, so only the bytes are compared.
pub(crate) fn judge(expected: &[Bytes], replies: &Replies, raw: bool, reply_timeout: Duration) -> Judgement {
    let got: Vec<&Bytes> = replies.frames.iter().map(|(_, frame)| frame).collect();
    let expected_cat: Vec<u8> = expected.concat();
    let got_cat: Vec<u8> = got.iter().flat_map(|f| f.iter().copied()).collect();
    let map = BoundaryMap::compute(
        &expected.iter().map(Bytes::len).collect::<Vec<_>>(),
        &got.iter().map(|f| f.len()).collect::<Vec<_>>(),
    );
    let mut judgement = Judgement {
        ok: false,
        observed: format!("{} replies for {} messages", got.len(), expected.len()),
        sentence: String::new(),
        glued: map.sticky_targets(),
        split: map.split_sources(),
        missing_bytes: expected_cat.len().saturating_sub(got_cat.len()),
    };
    let same_bytes = expected_cat == got_cat;
    let whole = raw || (got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| *g == e));
    let tail = trailing_words(replies, reply_timeout);
    if expected.is_empty() {
        judgement.sentence = "nothing was sent, so no reply can be judged".into();
    } else if same_bytes && whole && replies.trailing == 0 && replies.error.is_none() {
        judgement.ok = true;
        judgement.sentence = if raw {
            format!(
                "all {} reply bytes came back in order (raw framing has no boundaries to check)",
                got_cat.len()
            )
        } else {
            format!("all {} replies came back whole and in order", expected.len())
        };
    } else if same_bytes && whole {
        judgement.sentence = format!("all {} replies came back, then {tail}", expected.len());
    } else if same_bytes && !raw {
        judgement.sentence = boundary_sentence(&map, expected);
        judgement.observed = format!("{}; {}", judgement.observed, boundary_words(&map));
    } else if expected_cat.starts_with(&got_cat) {
        let complete = whole_replies(expected, got_cat.len());
        judgement.sentence = format!(
            "only {complete} of {} replies came back whole ({} of {} bytes), then {tail}",
            expected.len(),
            got_cat.len(),
            expected_cat.len()
        );
        judgement.observed = format!("{}; {} bytes missing", judgement.observed, judgement.missing_bytes);
    } else if got_cat.starts_with(&expected_cat) {
        judgement.sentence = format!(
            "{} bytes more than the {} replies came back: the server answers more than it is asked",
            got_cat.len() - expected_cat.len(),
            expected.len()
        );
        judgement.observed =
            format!("{}; {} bytes extra", judgement.observed, got_cat.len() - expected_cat.len());
    } else {
        let at = expected_cat.iter().zip(&got_cat).position(|(a, b)| a != b).unwrap_or(0);
        let (reply, offset) = locate(expected, at);
        let sample = |bytes: &[u8]| printable(&bytes[at..(at + 16).min(bytes.len())]);
        let changed_case = expected_cat.len() == got_cat.len()
            && expected_cat.eq_ignore_ascii_case(&got_cat)
            && got_cat != expected_cat;
        judgement.sentence = if changed_case {
            format!(
                "reply {reply} differs from what the behaviour owes only in letter case (byte {offset}: expected `{}`, got `{}`): is the server's behaviour the one declared?",
                sample(&expected_cat),
                sample(&got_cat)
            )
        } else {
            format!(
                "reply {reply} differs from what was owed at byte {offset} (expected `{}`, got `{}`)",
                sample(&expected_cat),
                sample(&got_cat)
            )
        };
        judgement.observed =
            format!("{}; first difference in reply {reply} at byte {offset}", judgement.observed);
    }
    if !judgement.ok && (replies.trailing > 0 || replies.error.is_some()) {
        judgement.observed = format!("{}; {tail}", judgement.observed);
    }
    judgement
}

/// The first place the replies' boundaries are wrong, as a sentence.
fn boundary_sentence(map: &BoundaryMap, expected: &[Bytes]) -> String {
    for pieces in &map.targets {
        let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { continue };
        if pieces.len() > 1 {
            return format!(
                "replies {}–{} came back as one: the server treats each recv() as one message",
                first.unit, last.unit
            );
        }
        if first.len() < expected[first.unit].len() {
            let parts = map.targets.iter().flatten().filter(|p| p.unit == first.unit).count();
            return format!(
                "reply {} came back in {parts} pieces: the server treats each recv() as one message",
                first.unit
            );
        }
    }
    "the replies' boundaries differ from the messages'".into()
}

/// `0–2 as one, 1 in 3 pieces` for the observed value.
fn boundary_words(map: &BoundaryMap) -> String {
    let glued = map.sticky_targets();
    let split = map.split_sources();
    let mut parts = Vec::new();
    if glued > 0 {
        parts.push(format!("{glued} replies held more than one message"));
    }
    if split > 0 {
        parts.push(format!("{split} messages came back in pieces"));
    }
    parts.join(", ")
}

/// How the reply stream ended, in words.
fn trailing_words(replies: &Replies, reply_timeout: Duration) -> String {
    let mut words = replies.end.words(reply_timeout);
    if replies.end == End::Complete {
        words = "nothing more came".into();
    }
    if let Some(error) = &replies.error {
        words = format!("the reply stream could not be decoded further ({error})");
    }
    if replies.trailing > 0 {
        words = format!("{words}; {} bytes never completed a frame", replies.trailing);
    }
    words
}

/// How many replies lie whole within the first `bytes` bytes.
fn whole_replies(expected: &[Bytes], bytes: usize) -> usize {
    let mut end = 0;
    expected
        .iter()
        .take_while(|e| {
            end += e.len();
            end <= bytes
        })
        .count()
}

/// Which reply byte `at` of the concatenated replies falls in, and where in it.
fn locate(expected: &[Bytes], at: usize) -> (usize, usize) {
    let mut start = 0;
    for (i, e) in expected.iter().enumerate() {
        if at < start + e.len() {
            return (i, at - start);
        }
        start += e.len();
    }
    (expected.len(), at - start)
}

/// The boundary map of what came back: the messages sent (each timed when its first byte
/// was written) against the reply frames received. An echo's replies are as long as its
/// messages, so the map says which bytes of which messages each reply holds.
pub(crate) fn trace(sent: &[Bytes], message_at: &[Duration], replies: &Replies) -> StreamTrace {
    let event = |at: Duration, bytes: &Bytes| IoEvent {
        at_us: at.as_secs_f64() * 1e6,
        len: bytes.len(),
        text: printable(bytes),
    };
    let writes: Vec<IoEvent> = sent
        .iter()
        .enumerate()
        .map(|(i, e)| event(message_at.get(i).copied().unwrap_or_default(), e))
        .collect();
    let reads: Vec<IoEvent> = replies.frames.iter().map(|(at, frame)| event(*at, frame)).collect();
    let boundary_map = BoundaryMap::compute(
        &writes.iter().map(|w| w.len).collect::<Vec<_>>(),
        &reads.iter().map(|r| r.len).collect::<Vec<_>>(),
    );
    StreamTrace { writes, reads, boundary_map, ..StreamTrace::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(frames: &[&'static [u8]], end: End) -> Replies {
        Replies {
            frames: frames.iter().map(|f| (Duration::ZERO, Bytes::from_static(f))).collect(),
            end,
            ..Replies::default()
        }
    }

    fn owed(items: &[&'static [u8]]) -> Vec<Bytes> {
        items.iter().map(|i| Bytes::from_static(i)).collect()
    }

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn whole_replies_pass() {
        let j = judge(&owed(&[b"AB", b"CD"]), &replies(&[b"AB", b"CD"], End::Complete), false, T);
        assert!(j.ok, "{j:?}");
        assert_eq!(j.sentence, "all 2 replies came back whole and in order");
    }

    #[test]
    fn glued_replies_name_the_messages_they_hold() {
        let j = judge(&owed(&[b"AB", b"CD", b"EF"]), &replies(&[b"ABCDEF"], End::Silent), false, T);
        assert!(!j.ok);
        assert_eq!(j.sentence, "replies 0–2 came back as one: the server treats each recv() as one message");
        assert_eq!((j.glued, j.split), (1, 0));
    }

    #[test]
    fn split_replies_count_their_pieces() {
        let j = judge(&owed(&[b"ABC"]), &replies(&[b"A", b"B", b"C"], End::Complete), false, T);
        assert_eq!(j.sentence, "reply 0 came back in 3 pieces: the server treats each recv() as one message");
    }

    #[test]
    fn missing_extra_and_changed_bytes_are_told_apart() {
        let missing = judge(&owed(&[b"AB", b"CD"]), &replies(&[b"AB"], End::Closed), false, T);
        assert_eq!(
            missing.sentence,
            "only 1 of 2 replies came back whole (2 of 4 bytes), then the server closed the connection"
        );
        assert_eq!(missing.missing_bytes, 2);
        let extra = judge(&owed(&[b"AB"]), &replies(&[b"AB", b"X"], End::Complete), false, T);
        assert!(extra.sentence.starts_with("1 bytes more than the 1 replies"), "{}", extra.sentence);
        let case = judge(&owed(&[b"AB"]), &replies(&[b"ab"], End::Complete), false, T);
        assert!(case.sentence.contains("only in letter case"), "{}", case.sentence);
        let raw = judge(&owed(&[b"AB", b"CD"]), &replies(&[b"ABC", b"D"], End::Complete), true, T);
        assert!(raw.ok, "raw framing has no boundaries: {raw:?}");
    }

    #[test]
    fn the_trace_maps_replies_onto_messages() {
        let t = trace(&owed(&[b"AB", b"CD"]), &[], &replies(&[b"ABC", b"D"], End::Complete));
        assert_eq!(t.boundary_map.describe(0, "msg"), "msg0[0..2] + msg1[0..1]");
    }
}
