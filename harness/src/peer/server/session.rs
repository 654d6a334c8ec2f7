//! What every flavour does with the bytes of a connection, however they move: a
//! [`Session`] decodes frames, hands each message to [`handle_message`] (echo, upper-case,
//! sink or source), queues the replies, counts what it holds for the client (unfinished
//! frames, unwritten replies) against the server-wide cap, gives back buffers grown for
//! large frames, and knows since when a frame has been unfinished (for the frame
//! timeout). UDP decodes each datagram with [`handle_message`] too.

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

/// Replies waiting to be written are counted against the cap only past this many bytes:
/// every connection has buffers of this size anyway (its read chunk), which
/// `--max-connections` bounds, and a ping-pong's replies then cost no shared counter.
const UNCOUNTED_REPLIES: usize = READ_CHUNK;

/// A buffer grown past this for a large frame or reply is given back once that is done,
/// rather than kept by a connection that may send nothing that large again.
const KEPT_CAPACITY: usize = 4 * READ_CHUNK;

/// The part of serving a connection that does not depend on how bytes move: decoding
/// frames from the read buffer, queueing replies in the write buffer, and accounting for
/// what it holds (unfinished frames, replies not yet written) against the server-wide cap.
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
    /// Bytes counted in [`ServerStats::buffered_bytes`] (see [`Session::held`]).
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
    /// then counts what is left (an unfinished frame, the replies to write) against the
    /// server-wide cap. Called after each read that returned bytes, and once at EOF.
    pub(super) fn drain(&mut self, config: &ServerConfig, eof: bool) -> Result<(), PeerError> {
        let mut completed = false;
        let mut large = false;
        loop {
            let frame = if eof {
                self.codec.decode_eof(&mut self.read_buf)?
            } else {
                self.codec.decode(&mut self.read_buf)?
            };
            let Some(frame) = frame else { break };
            completed = true;
            large |= frame.len() > READ_CHUNK;
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
        if large && self.read_buf.len() <= READ_CHUNK {
            // The large frame's buffer would otherwise be reused for every later read and
            // held, uncounted, for as long as the connection lasts.
            let mut fresh = BytesMut::with_capacity(READ_CHUNK);
            fresh.extend_from_slice(&self.read_buf);
            self.read_buf = fresh;
        }
        self.account(config.max_buffered_bytes)
    }

    /// The replies in `write_buf` were written: empties it (giving back a buffer grown for
    /// large replies) and stops counting them.
    pub(super) fn written(&mut self) {
        if self.write_buf.capacity() > KEPT_CAPACITY {
            self.write_buf = BytesMut::new();
        } else {
            self.write_buf.clear();
        }
        if self.held() != self.accounted {
            self.recount();
        }
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

    /// What this connection holds for its client, counted against the cap: its
    /// unfinished frame, and its unwritten replies past [`UNCOUNTED_REPLIES`].
    fn held(&self) -> usize {
        self.read_buf.len() + self.write_buf.len().saturating_sub(UNCOUNTED_REPLIES)
    }

    /// Updates this connection's share of [`ServerStats::buffered_bytes`]; refuses to
    /// grow it past `cap`. Touches the shared counter only when the share changed: not
    /// at all between the small frames of a ping-pong.
    fn account(&mut self, cap: usize) -> Result<(), PeerError> {
        let before = self.accounted;
        if self.held() == before {
            return Ok(());
        }
        let total = self.recount();
        if self.accounted > before && total > cap as u64 {
            return Err(PeerError::LoadShed { buffered: total, cap: cap as u64 });
        }
        Ok(())
    }

    /// Brings this connection's share of [`ServerStats::buffered_bytes`] up to date;
    /// returns the total across connections.
    fn recount(&mut self) -> u64 {
        let held = self.held();
        let counter = &self.stats.buffered_bytes;
        let total = if held >= self.accounted {
            let more = (held - self.accounted) as u64;
            counter.fetch_add(more, Ordering::Relaxed) + more
        } else {
            let less = (self.accounted - held) as u64;
            counter.fetch_sub(less, Ordering::Relaxed) - less
        };
        self.accounted = held;
        total
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
