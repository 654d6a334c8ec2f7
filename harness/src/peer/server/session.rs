//! What every flavour does with the bytes of a connection, however they move: a
//! [`Session`] decodes frames, hands each message to [`handle_message`] (echo, upper-case,
//! sink or source), queues the replies, counts the bytes of unfinished frames it holds
//! against the server-wide cap, and knows since when a frame has been unfinished (for the
//! frame timeout). UDP decodes each datagram with [`handle_message`] too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::config::ServerConfig;
use super::stats::ServerStats;
use crate::framing::{FramingError, MessageCodec};
use crate::peer::PeerError;
use crate::peer::behaviour::Behaviour;
use crate::peer::payload::{self, Verdict};

/// Size of each socket read, in bytes.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// The part of serving a connection that does not depend on how bytes move: decoding
/// frames from the read buffer, queueing replies in the write buffer, and accounting for
/// the bytes of unfinished frames it holds against the server-wide cap.
pub(super) struct Session {
    /// When the first byte of the frame not yet complete arrived; `None` between frames.
    /// Kept here rather than read off the buffer: a codec may have consumed a frame's
    /// header and wait for its body with the buffer empty.
    frame_started: Option<Instant>,
    codec: MessageCodec,
    pub(super) read_buf: BytesMut,
    pub(super) write_buf: BytesMut,
    expected_seq: u32,
    stats: Arc<ServerStats>,
    /// Bytes of `read_buf` counted in [`ServerStats::buffered_bytes`].
    accounted: usize,
}

impl Session {
    pub(super) fn new(codec: MessageCodec, stats: Arc<ServerStats>) -> Self {
        Session {
            frame_started: None,
            codec,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            expected_seq: 0,
            stats,
            accounted: 0,
        }
    }

    /// Handles every complete frame in the read buffer (every remaining byte at EOF),
    /// then counts what is left (an unfinished frame) against the server-wide cap.
    /// Called after each read that returned bytes, and once at EOF.
    pub(super) fn drain(&mut self, config: &ServerConfig, eof: bool) -> Result<(), PeerError> {
        let mut completed = false;
        loop {
            let frame = if eof {
                self.codec.decode_eof(&mut self.read_buf)?
            } else {
                self.codec.decode(&mut self.read_buf)?
            };
            let Some(frame) = frame else { break };
            completed = true;
            if let Some(reply) = handle_message(frame, config, &self.stats, &mut self.expected_seq) {
                self.codec.encode(&reply[..], &mut self.write_buf)?;
            }
        }
        if completed {
            // What is left, if anything, is a frame that started in this read.
            self.frame_started = (!self.read_buf.is_empty()).then(Instant::now);
        } else if self.frame_started.is_none() && !eof {
            self.frame_started = Some(Instant::now());
        }
        self.account(config.max_buffered_bytes)
    }

    /// Whether a frame has started and not completed.
    pub(super) fn in_frame(&self) -> bool {
        self.frame_started.is_some()
    }

    /// How long the next read may wait before a deadline is due, `since_last_byte` after
    /// the last byte came: the rest of the idle timeout, or of the frame timeout if an
    /// unfinished frame's comes first.
    pub(super) fn read_wait(&self, config: &ServerConfig, since_last_byte: Duration) -> Duration {
        let idle_left = config.idle_timeout.saturating_sub(since_last_byte);
        match self.frame_started {
            None => idle_left,
            Some(started) => config.frame_timeout.saturating_sub(started.elapsed()).min(idle_left),
        }
    }

    /// The error that closes the connection now that no byte came for `waited` (the frame
    /// timeout if the unfinished frame's is due, else the idle timeout), or `None` when
    /// neither is due yet.
    pub(super) fn overdue(&self, config: &ServerConfig, waited: Duration) -> Option<PeerError> {
        if let Some(error) = self.frame_overdue(config) {
            return Some(error);
        }
        (waited >= config.idle_timeout)
            .then_some(PeerError::Idle { idle_s: config.idle_timeout.as_secs_f64() })
    }

    /// [`PeerError::FrameTimeout`] when the unfinished frame started longer than the frame
    /// timeout ago: checked after every read, so bytes trickling in do not keep it alive.
    pub(super) fn frame_overdue(&self, config: &ServerConfig) -> Option<PeerError> {
        let started = self.frame_started?;
        (started.elapsed() >= config.frame_timeout)
            .then_some(PeerError::FrameTimeout { frame_s: config.frame_timeout.as_secs_f64() })
    }

    /// Updates this connection's share of [`ServerStats::buffered_bytes`]; refuses to
    /// grow it past `cap`.
    fn account(&mut self, cap: usize) -> Result<(), PeerError> {
        let held = self.read_buf.len();
        let total = if held >= self.accounted {
            self.stats.buffered_bytes.fetch_add((held - self.accounted) as u64, Ordering::Relaxed)
                + (held - self.accounted) as u64
        } else {
            self.stats.buffered_bytes.fetch_sub((self.accounted - held) as u64, Ordering::Relaxed)
                - (self.accounted - held) as u64
        };
        let grew = held > self.accounted;
        self.accounted = held;
        if grew && total > cap as u64 {
            return Err(PeerError::LoadShed { buffered: total, cap: cap as u64 });
        }
        Ok(())
    }

    /// `source`: queues the next batch of messages, up to about one read chunk; false
    /// once the connection's quota is used up.
    pub(super) fn queue_source_batch(
        &mut self,
        config: &ServerConfig,
        sent: &mut u64,
    ) -> Result<bool, FramingError> {
        let mut message = BytesMut::new();
        while self.write_buf.len() < READ_CHUNK && *sent < config.source_max_messages {
            message.clear();
            payload::write(&mut message, *sent as u32, config.source_message_size);
            self.codec.encode(&message[..], &mut self.write_buf)?;
            *sent += 1;
        }
        Ok(!self.write_buf.is_empty())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stats.buffered_bytes.fetch_sub(self.accounted as u64, Ordering::Relaxed);
    }
}

/// What to do with one received message; returns the reply, if any.
pub(super) fn handle_message(
    frame: Bytes,
    config: &ServerConfig,
    stats: &ServerStats,
    expected_seq: &mut u32,
) -> Option<Bytes> {
    stats.messages.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
    match config.behaviour {
        Behaviour::Echo => Some(frame),
        Behaviour::EchoUpper => Some(Bytes::from(frame.to_ascii_uppercase())),
        Behaviour::Sink => {
            match payload::verify(&frame, frame.len()) {
                Verdict::Intact(seq) => {
                    stats.intact.fetch_add(1, Ordering::Relaxed);
                    if seq != *expected_seq {
                        stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    *expected_seq = seq.wrapping_add(1);
                }
                Verdict::Corrupted => {
                    stats.corrupted.fetch_add(1, Ordering::Relaxed);
                }
            }
            None
        }
        Behaviour::Source => None,
    }
}
