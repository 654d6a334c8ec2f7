//! The UDP ping-pong client: one datagram outstanding, each round trip timed, a request
//! with no reply within the timeout counted lost.
//!
//! Each request is one datagram holding one framed, self-checking
//! [`payload`], as socklab's UDP servers expect (a datagram holds whole
//! frames). The reply must carry the request's sequence number: an intact reply to an
//! earlier request (one already counted lost, or a duplicate) is counted out of order
//! and not timed, so a late datagram never passes for the current request's answer.
//!
//! The socket is blocking, connected to the server, and read with a short timeout: the
//! cheapest round trip a UDP client can make (one `send`, one `recv` that sleeps on the
//! socket), like the reference tools, and the loop looks at the stop flag and its
//! deadline at least every [`Cancel::CHECK_EVERY`]. Bounded by the workload's duration
//! and message count; each request by `reply_timeout`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::PeerError;
use super::behaviour::{Behaviour, Mode};
use super::payload::{self, Verdict};
use super::workload::{Workload, WorkloadResult, rate};
use crate::cancel::Cancel;
use crate::framing::{FramingStrategy, MessageCodec};
use crate::metrics::{LatencyRecorder, ThroughputMeter, interval_for};

use crate::net::MAX_UDP_PAYLOAD_V4 as MAX_DATAGRAM;

/// Refuses a ping-pong message of `message_size` bytes (at least the payload's own
/// header) that, framed as `framing`, would not fit one datagram; stop-and-wait too.
///
/// # Errors
/// [`PeerError::Unsupported`] saying which, and how many bytes the frame takes.
pub fn check_fits_datagram(framing: FramingStrategy, message_size: usize) -> Result<(), PeerError> {
    let mut codec = MessageCodec::new(framing, usize::MAX)
        .ok_or_else(|| PeerError::Unsupported("stop-and-wait over UDP (it needs a stream)".into()))?;
    let size = message_size.max(payload::MIN_PAYLOAD);
    let mut message = BytesMut::new();
    payload::write(&mut message, 0, size);
    let mut datagram = BytesMut::with_capacity(size + 64);
    codec.encode(&message[..], &mut datagram)?;
    if datagram.len() > MAX_DATAGRAM {
        return Err(PeerError::Unsupported(format!(
            "a {size}-byte message framed as {framing} takes {} bytes, more than one datagram holds ({MAX_DATAGRAM})",
            datagram.len()
        )));
    }
    Ok(())
}

/// Runs a UDP ping-pong `workload` against the echo server at `addr`, blocking the
/// calling thread (`run_workload` calls it through `spawn_blocking`), until its duration
/// or message count is reached or its `cancel` flag is raised.
///
/// # Errors
/// [`PeerError::Unsupported`] for a mode other than ping-pong, a server that sends no
/// replies, stop-and-wait framing, or a message that does not fit one datagram;
/// [`PeerError::Connect`] when nothing listens at `addr` (the kernel reports the ICMP
/// port unreachable as a refused `send` or `recv`); [`PeerError::Io`] for other socket
/// errors. Lost and damaged datagrams are counted, not errors.
pub fn ping_pong(addr: SocketAddr, workload: &Workload) -> Result<WorkloadResult, PeerError> {
    let cancel = &workload.cancel;
    check_workload(workload)?;
    let mut codec = MessageCodec::new(workload.framing, workload.max_frame_len)
        .ok_or_else(|| PeerError::Unsupported("stop-and-wait over UDP (it needs a stream)".into()))?;
    let size = workload.message_size.max(payload::MIN_PAYLOAD);
    let mut message = BytesMut::new();
    payload::write(&mut message, 0, size);
    let mut datagram = BytesMut::with_capacity(size + 64);
    let socket = connect(addr, workload)?;
    let refused = |error: io::Error| match error.kind() {
        io::ErrorKind::ConnectionRefused => PeerError::Connect { addr, error },
        _ => PeerError::Io(error),
    };

    let mut judge = Judge::new(workload);
    let mut result = WorkloadResult::default();
    let mut latency = LatencyRecorder::new();
    let mut meter = ThroughputMeter::start(interval_for(workload.duration));
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let start = Instant::now();
    let mut last_reply_at = None;
    let mut seq: u64 = 0;
    // When the last round trip ended: "now" for the loop's test, one clock read fewer.
    let mut now = start;
    while seq < workload.max_messages && (seq == 0 || now - start < workload.duration) {
        if cancel.is_cancelled() {
            break;
        }
        payload::renumber(&mut message, seq as u32);
        datagram.clear();
        codec.encode(&message[..], &mut datagram)?;
        let sent_at = Instant::now();
        socket.send(&datagram).map_err(refused)?;
        let due = sent_at + workload.reply_timeout;
        let want = seq as u32;
        seq += 1;
        let answered = loop {
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if Instant::now() >= due || cancel.is_cancelled() {
                        break false;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(refused(e)),
            };
            let this_one = judge.datagram(&buf[..n], want, &mut result)?;
            // The round trip ends once its reply is read and verified.
            now = Instant::now();
            if this_one {
                latency.record(now - sent_at);
                meter.record_at(now - start, size as u64, 1);
                last_reply_at = Some(now);
                break true;
            }
            if now >= due {
                break false;
            }
        };
        if answered {
            result.replied += 1;
            result.intact += 1;
            continue;
        }
        now = Instant::now();
        if cancel.is_cancelled() && now < due {
            // Cut short by the case's end before its timeout: not lost, and not counted
            // as sent either, so every request sent is answered or lost.
            seq -= 1;
            break;
        }
        result.lost += 1;
    }
    let sent_for = start.elapsed();
    result.sent = seq;
    result.latency = latency;
    result.throughput = meter.summary();
    result.elapsed = last_reply_at.map_or(Duration::ZERO, |at| at.saturating_duration_since(start));
    result.achieved_rate = rate(seq, sent_for);
    Ok(result)
}

/// Refuses what the UDP client cannot run: a mode other than ping-pong, a server that
/// sends no replies, a message that does not fit one datagram.
fn check_workload(workload: &Workload) -> Result<(), PeerError> {
    if workload.mode != Mode::PingPong {
        return Err(PeerError::Unsupported(format!(
            "{} over UDP: the UDP client runs ping-pong only (one datagram outstanding)",
            workload.mode
        )));
    }
    if !matches!(workload.server, Behaviour::Echo | Behaviour::EchoUpper) {
        return Err(PeerError::Unsupported(format!(
            "ping-pong needs replies; {} sends none",
            workload.server
        )));
    }
    check_fits_datagram(workload.framing, workload.message_size)
}

/// A socket connected to `addr`, whose `recv` wakes at least every
/// [`Cancel::CHECK_EVERY`].
fn connect(addr: SocketAddr, workload: &Workload) -> Result<UdpSocket, PeerError> {
    let local: SocketAddr = match addr {
        _ if addr.ip().is_loopback() => SocketAddr::new(addr.ip(), 0),
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(addr)?;
    // Set once: a `recv` wakes at least this often to look at the deadline and the flag.
    socket.set_read_timeout(Some(
        workload.reply_timeout.clamp(Duration::from_millis(1), Cancel::CHECK_EVERY),
    ))?;
    Ok(socket)
}

/// Judges reply datagrams: each decodes on its own, as the server decodes them (a fresh
/// codec, so one damaged datagram is one damaged reply, not a stream lost for good).
struct Judge {
    framing: FramingStrategy,
    max_frame_len: usize,
    /// The payload size of every message.
    size: usize,
    /// Replies come upper-cased.
    upper: bool,
    input: BytesMut,
}

impl Judge {
    fn new(workload: &Workload) -> Self {
        Judge {
            framing: workload.framing,
            max_frame_len: workload.max_frame_len,
            size: workload.message_size.max(payload::MIN_PAYLOAD),
            upper: workload.server == Behaviour::EchoUpper,
            input: BytesMut::with_capacity(MAX_DATAGRAM + 1),
        }
    }

    /// Counts the corrupted and out-of-order frames of `datagram` in `result`; true when
    /// it holds the intact reply to request `want`.
    fn datagram(
        &mut self,
        datagram: &[u8],
        want: u32,
        result: &mut WorkloadResult,
    ) -> Result<bool, PeerError> {
        self.input.clear();
        self.input.extend_from_slice(datagram);
        let mut this_one = false;
        let mut decoder = MessageCodec::new(self.framing, self.max_frame_len)
            .ok_or_else(|| PeerError::Unsupported("stop-and-wait over UDP".into()))?;
        let mut frames = 0;
        loop {
            let frame = match decoder.decode_eof(&mut self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) if frames > 0 => break,
                // No frame at all, or one that does not decode: a damaged reply.
                Ok(None) | Err(_) => {
                    result.corrupted += 1;
                    break;
                }
            };
            frames += 1;
            let size = self.size;
            let verdict =
                if self.upper { payload::verify_upper(&frame, size) } else { payload::verify(&frame, size) };
            match verdict {
                Verdict::Intact(got) if got == want && !this_one => this_one = true,
                Verdict::Intact(_) => result.out_of_order += 1,
                Verdict::Corrupted => result.corrupted += 1,
            }
            if self.input.is_empty() {
                break;
            }
        }
        Ok(this_one)
    }
}
