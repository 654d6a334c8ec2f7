//! Whether a new client is served: what `reset`, `hostile-length`, a sink's
//! `large-message` and a source's `eof` ask after the event they test.

use std::time::{Duration, Instant};

use socklab_harness::peer::Behaviour;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::{FrameReader, Options, Peer, io_within, send_message};
use super::source::{read_source, source_problems};
use super::wire::{expected_reply, message};

/// Whether a new client is served, and how long that took.
#[derive(Debug, Clone, Default)]
pub(crate) struct Served {
    /// Whether it was: correct replies (echo), a clean close after its half-close (sink),
    /// or intact messages (source).
    pub ok: bool,
    /// From the connect call to the last thing it needed.
    pub took: Duration,
    /// What went wrong, in words, when it was not served.
    pub problem: Option<String>,
}

/// A new client: connects, and sends `count` messages one at a time, each answered
/// before the next (echo); sends them and half-closes, expecting a clean close (sink);
/// or reads `count` messages (source).
pub(crate) async fn fresh_client(peer: &Peer, count: usize, size: usize) -> Served {
    let started = Instant::now();
    let mut stream = match peer.connect(Options::default()).await {
        Ok(stream) => stream,
        Err(e) => {
            return Served {
                ok: false,
                took: started.elapsed(),
                problem: Some(format!("cannot connect: {e}")),
            };
        }
    };
    let mut reader = FrameReader::new(peer.wire);
    let problem = match peer.behaviour {
        Behaviour::Echo | Behaviour::EchoUpper => {
            let mut problem = None;
            for seq in 0..count {
                let sent = message(seq as u32, size);
                let owed = expected_reply(peer.behaviour, &sent).unwrap_or_default();
                if let Err(end) = send_message(peer, &mut stream, &sent).await {
                    problem = Some(format!("while sending message {seq}, {}", end.words(peer.reply_timeout)));
                    break;
                }
                match reader.reply(peer, &mut stream, owed.len()).await {
                    Ok(reply) if reply == owed => {}
                    Ok(_) => problem = Some(format!("a wrong reply to message {seq}")),
                    Err(end) => {
                        problem =
                            Some(format!("no reply to message {seq}: {}", end.words(peer.reply_timeout)))
                    }
                }
                if problem.is_some() {
                    break;
                }
            }
            problem
        }
        Behaviour::Sink => {
            let mut problem = None;
            for seq in 0..count {
                if let Err(end) = send_message(peer, &mut stream, &message(seq as u32, size)).await {
                    problem = Some(format!("while sending message {seq}, {}", end.words(peer.reply_timeout)));
                    break;
                }
            }
            if problem.is_none() {
                let _ = stream.shutdown().await;
                let mut byte = [0u8; 1];
                problem = match io_within(peer, stream.read(&mut byte)).await {
                    Ok(0) => None,
                    Ok(_) => Some("a sink sent bytes back".to_string()),
                    Err(end) => {
                        Some(format!("no close after its half-close: {}", end.words(peer.reply_timeout)))
                    }
                };
            }
            problem
        }
        Behaviour::Source => {
            let replies = read_source(peer, &mut stream, count, usize::MAX, 64 << 10, Duration::ZERO).await;
            if replies.frames.len() < count {
                Some(format!(
                    "{} of {count} messages: {}",
                    replies.frames.len(),
                    replies.end.words(peer.reply_timeout)
                ))
            } else {
                source_problems(&replies).map(|(_, why, _)| why)
            }
        }
    };
    Served { ok: problem.is_none(), took: started.elapsed(), problem }
}
