//! Reading a source: frames decoded as they come, with whatever read size and pace a
//! check asks for, and verified as self-checking payloads in sequence from 0.

use std::time::Duration;

use bytes::BytesMut;
use socklab_harness::peer::payload::{self, Verdict};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::sleep;
use tokio_util::codec::Decoder;

use super::conn::{End, Peer, Replies, io_within, recv_stop_and_wait};

/// Reads `count` frames from a source server (or fewer, once their payloads reach
/// `max_bytes`), each read at most `read_size` bytes, with `pause` before each read.
pub(crate) async fn read_source(
    peer: &Peer,
    stream: &mut TcpStream,
    count: usize,
    max_bytes: usize,
    read_size: usize,
    pause: Duration,
) -> Replies {
    let enough = |replies: &Replies| {
        replies.frames.len() >= count
            || replies.frames.iter().map(|(_, f)| f.len()).sum::<usize>() >= max_bytes
    };
    if peer.wire.is_stop_and_wait() {
        let mut frames = Vec::new();
        let mut bytes = 0;
        let pace = (!pause.is_zero()).then_some((read_size, pause));
        let mut end = End::Complete;
        let mut payload = 0;
        while frames.len() < count && payload < max_bytes {
            match recv_stop_and_wait(peer, stream, pace).await {
                Ok(frame) => {
                    bytes += frame.len() + 4;
                    payload += frame.len();
                    frames.push((peer.now(), frame));
                }
                Err(e) => {
                    end = e;
                    break;
                }
            }
        }
        return Replies { frames, trailing: 0, error: None, bytes, end };
    }
    let Some(mut codec) = peer.wire.codec() else { return Replies::default() };
    let mut buffer = BytesMut::new();
    let mut replies = Replies::default();
    let mut buf = vec![0u8; read_size.max(1)];
    // Each pass reads at least one byte or ends; frames are capped at MAX_REPLY_FRAME,
    // so `count` frames take a bounded number of reads.
    while !enough(&replies) {
        if !pause.is_zero() {
            sleep(pause).await;
        }
        let n = match io_within(peer, stream.read(&mut buf)).await {
            Ok(0) => {
                replies.end = End::Closed;
                break;
            }
            Ok(n) => n,
            Err(end) => {
                replies.end = end;
                break;
            }
        };
        replies.bytes += n;
        buffer.extend_from_slice(&buf[..n]);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => replies.frames.push((peer.now(), frame)),
                Ok(None) => break,
                Err(e) => {
                    replies.error = Some(e.to_string());
                    replies.trailing = buffer.len();
                    return replies;
                }
            }
        }
    }
    replies.trailing = buffer.len();
    replies
}

/// Source frames that are not intact payloads in sequence from 0: `(index, why)` of the
/// first, and how many there are.
pub(crate) fn source_problems(replies: &Replies) -> Option<(usize, String, usize)> {
    let mut first = None;
    let mut count = 0;
    for (i, (_, frame)) in replies.frames.iter().enumerate() {
        let why = match payload::verify(frame, frame.len()) {
            Verdict::Intact(seq) if seq as usize == i => continue,
            Verdict::Intact(seq) => format!("message {i} carries sequence number {seq}"),
            Verdict::Corrupted => format!("message {i} ({} bytes) fails its checksum", frame.len()),
        };
        count += 1;
        first.get_or_insert((i, why));
    }
    first.map(|(i, why)| (i, why, count))
}
