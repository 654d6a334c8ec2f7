//! The TCP ping-pong client: one message outstanding, on a blocking socket in a thread of
//! its own.
//!
//! Per round trip it makes two system calls when the reply comes in one piece: a `send`
//! of the framed request and a `recv` that sleeps on the socket until the reply arrives,
//! as sockperf's client does. The async clients wait in `epoll_wait` instead, and a
//! round trip through the runtime costs a third system call, the wake-up of the runtime's
//! thread and its scheduling work: about a microsecond per round trip on loopback, where
//! a whole round trip takes 11–70 µs (see the README's "Performance" section).
//!
//! What is timed is what the async clients time: from just before the request's `send`
//! to just after the last byte of its reply was read, decoded and verified. Building the
//! next request and recording the sample happen outside that interval, where the server
//! has nothing to do until the next request comes; no clock is read inside it but its two
//! ends.
//!
//! Every reply is verified as the async clients verify them (`ReplyTracker`: length,
//! sequence number, checksum; raw replies are matched by bytes). A `raw` server echoes
//! each read as it comes, so a large request may fill both directions' buffers while it
//! is still being written: a `send` that makes no progress for [`WRITE_TICK`] reads what
//! has arrived, without blocking, before it tries again. The loop looks at the workload's
//! cancel flag and its reply deadline at least every [`Cancel::CHECK_EVERY`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::PeerError;
use super::payload;
use super::workload::{ReplyTracker, Workload, WorkloadResult};
use crate::cancel::Cancel;
use crate::framing::MessageCodec;
use crate::metrics::{LatencyRecorder, ThroughputMeter, interval_for};

/// How long a `send` may block before the client reads what the server has sent back
/// meanwhile (only a request too large for the socket buffers ever waits this long).
pub const WRITE_TICK: Duration = Duration::from_millis(1);

/// Bytes asked of each `recv`.
const READ_CHUNK: usize = 64 * 1024;

/// Why a wait for the server ended without what it waited for.
enum Wait {
    /// The workload's cancel flag was raised.
    Cancelled,
    /// A failure to report.
    Failed(PeerError),
}

impl From<PeerError> for Wait {
    fn from(error: PeerError) -> Self {
        Wait::Failed(error)
    }
}

impl From<io::Error> for Wait {
    fn from(error: io::Error) -> Self {
        Wait::Failed(error.into())
    }
}

impl From<crate::framing::FramingError> for Wait {
    fn from(error: crate::framing::FramingError) -> Self {
        Wait::Failed(error.into())
    }
}

/// One connection's receiving side: bytes read but not yet decoded, the codec, and how
/// replies are judged. It reads no clock while replies come in (a clock read costs tens
/// of nanoseconds in a virtual machine): received bytes wait in `unmetered` until the
/// round trip is over, and silence is timed from the first read that timed out.
struct Inbox {
    codec: MessageCodec,
    buf: BytesMut,
    chunk: Vec<u8>,
    tracker: ReplyTracker,
    /// Reply bytes and completed requests not yet given to the throughput meter.
    unmetered: (u64, u64),
    addr: SocketAddr,
    reply_timeout: Duration,
    /// The read timeout, so the time of a read that timed out is known without a clock.
    tick: Duration,
}

impl Inbox {
    /// Judges every frame already buffered (all that is left at the end of the stream).
    fn decode(&mut self, eof: bool) -> Result<(), PeerError> {
        loop {
            let frame =
                if eof { self.codec.decode_eof(&mut self.buf)? } else { self.codec.decode(&mut self.buf)? };
            let Some(frame) = frame else { return Ok(()) };
            let completed = self.tracker.on_frame(&frame);
            self.unmetered.0 += frame.len() as u64;
            self.unmetered.1 += completed;
        }
    }

    /// Appends one read's bytes and judges the frames they complete; false at the end of
    /// the stream.
    fn take(&mut self, n: usize) -> Result<bool, PeerError> {
        self.buf.extend_from_slice(&self.chunk[..n]);
        self.decode(n == 0)?;
        Ok(n > 0)
    }

    /// Blocks until `replied` requests have their whole reply (with `None`: until the
    /// stream ends), the server stays silent for the reply timeout, or the workload is
    /// cancelled.
    fn wait_for(
        &mut self,
        stream: &mut TcpStream,
        replied: Option<u64>,
        cancel: &Cancel,
    ) -> Result<(), Wait> {
        let mut silent_since = None;
        while replied.is_none_or(|n| self.tracker.replied < n) {
            match stream.read(&mut self.chunk) {
                Ok(n) => {
                    if !self.take(n)? {
                        return match replied {
                            Some(n) if self.tracker.replied < n => {
                                let pending = (n - self.tracker.replied) * self.tracker.size;
                                Err(PeerError::Closed { addr: self.addr, pending }.into())
                            }
                            _ => Ok(()),
                        };
                    }
                    silent_since = None;
                }
                Err(e) if timed_out(&e) => {
                    if cancel.is_cancelled() {
                        return Err(Wait::Cancelled);
                    }
                    // The read that timed out waited about a tick.
                    let since = *silent_since.get_or_insert_with(|| Instant::now() - self.tick);
                    if since.elapsed() >= self.reply_timeout {
                        return Err(self.timeout().into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads whatever has arrived, without blocking (while a `send` cannot make progress).
    fn read_ready(&mut self, stream: &mut TcpStream) -> Result<(), PeerError> {
        stream.set_nonblocking(true)?;
        let drained = loop {
            match stream.read(&mut self.chunk) {
                // The server sends only what it was sent, so this ends.
                Ok(n) => match self.take(n) {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e.into()),
            }
        };
        stream.set_nonblocking(false)?;
        drained
    }

    fn timeout(&self) -> PeerError {
        PeerError::Timeout { addr: self.addr, timeout_ms: self.reply_timeout.as_millis() as u64 }
    }
}

/// Whether a socket call ended on its timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`).
fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Writes all of `bytes`; while the socket takes nothing, reads what the server sent.
fn send_all(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    inbox: &mut Inbox,
    cancel: &Cancel,
) -> Result<(), Wait> {
    // When the socket last took bytes, read only once a write has timed out: a clock
    // read per write would sit inside the timed round trip.
    let mut stalled_since = None;
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => {
                bytes = &bytes[n..];
                stalled_since = None;
            }
            Err(e) if timed_out(&e) => {
                // The write that timed out waited about a tick.
                let since = *stalled_since.get_or_insert_with(|| Instant::now() - WRITE_TICK);
                inbox.read_ready(stream)?;
                if cancel.is_cancelled() {
                    return Err(Wait::Cancelled);
                }
                if since.elapsed() >= inbox.reply_timeout {
                    return Err(inbox.timeout().into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs a TCP ping-pong `workload` over `stream`, connected to the echo server at `addr`,
/// blocking the calling thread (`run_workload_on` calls it through `spawn_blocking`) until
/// its duration or message count is reached, then closes its sending side and reads to
/// the end of the stream (a reply that is still due is an error, as in the async
/// clients). A raised cancel flag ends it early with what it measured.
///
/// # Errors
/// [`PeerError::Timeout`] when the server stays silent for `reply_timeout` while a reply
/// is due; [`PeerError::Closed`] when it closes first; [`PeerError::Framing`] for a reply
/// the codec refuses; [`PeerError::Io`] for socket errors.
pub fn run(
    mut stream: TcpStream,
    addr: SocketAddr,
    codec: MessageCodec,
    workload: &Workload,
) -> Result<WorkloadResult, PeerError> {
    let cancel = &workload.cancel;
    stream.set_nonblocking(false)?;
    let tick = workload.reply_timeout.clamp(Duration::from_millis(1), Cancel::CHECK_EVERY);
    stream.set_read_timeout(Some(tick))?;
    stream.set_write_timeout(Some(WRITE_TICK))?;
    let mut send_codec = MessageCodec::new(workload.framing, workload.max_frame_len)
        .ok_or_else(|| PeerError::Unsupported("stop-and-wait has no codec".into()))?;
    let mut inbox = Inbox {
        codec,
        buf: BytesMut::with_capacity(READ_CHUNK),
        chunk: vec![0u8; READ_CHUNK],
        tracker: ReplyTracker::new(workload),
        unmetered: (0, 0),
        addr,
        reply_timeout: workload.reply_timeout,
        tick,
    };
    let mut latency = LatencyRecorder::new();
    let mut message = BytesMut::new();
    payload::write(&mut message, 0, workload.message_size);
    let mut request = BytesMut::with_capacity(message.len() + 64);
    let mut meter = ThroughputMeter::start(interval_for(workload.duration));
    let start = Instant::now();
    let mut last_reply_at = None;
    let mut seq: u64 = 0;
    let mut cancelled = false;
    // The end of the last round trip stands for "now" in the loop's test: one clock read
    // fewer per round trip.
    let mut now = start;
    while seq < workload.max_messages && (seq == 0 || now - start < workload.duration) {
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        payload::renumber(&mut message, seq as u32);
        request.clear();
        send_codec.encode(&message[..], &mut request)?;
        let sent_at = Instant::now();
        let round_trip = send_all(&mut stream, &request, &mut inbox, cancel)
            .and_then(|()| inbox.wait_for(&mut stream, Some(seq + 1), cancel));
        seq += 1;
        match round_trip {
            Ok(()) => {}
            Err(Wait::Cancelled) => {
                cancelled = true;
                break;
            }
            Err(Wait::Failed(e)) => return Err(e),
        }
        now = Instant::now();
        latency.record(now - sent_at);
        last_reply_at = Some(now);
        let (bytes, completed) = std::mem::take(&mut inbox.unmetered);
        meter.record_at(now - start, bytes, completed);
    }
    let sent_for = start.elapsed();
    if !cancelled {
        // The end of the stream after ours: anything the server still sends is judged too.
        stream.shutdown(Shutdown::Write)?;
        match inbox.wait_for(&mut stream, None, cancel) {
            Ok(()) | Err(Wait::Cancelled) => {}
            Err(Wait::Failed(e)) => return Err(e),
        }
        let (bytes, completed) = std::mem::take(&mut inbox.unmetered);
        if bytes > 0 {
            meter.record(bytes, completed);
        }
    }
    Ok(WorkloadResult {
        latency,
        throughput: meter.summary(),
        elapsed: last_reply_at.map_or(Duration::ZERO, |at: Instant| at.saturating_duration_since(start)),
        ..inbox.tracker.tally(seq, sent_for)
    })
}
