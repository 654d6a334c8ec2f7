//! Clients that drive a server and measure it: ping-pong, pipelined, bulk and open-loop
//! workloads over TCP, for every framing strategy, and ping-pong over UDP
//! ([`udp_client`](super::udp_client)).
//!
//! Every message is a self-checking [`payload`]: the client verifies each
//! reply (length, sequence number, checksum) and counts intact, corrupted and
//! out-of-order ones. Replies are matched to requests by bytes, not by frames, so raw
//! (unframed) streams — where a "message" is whatever one read returns — are measured too,
//! and show how many reads held something other than exactly one message.
//!
//! TCP ping-pong runs on a blocking socket in a thread of its own
//! ([`ping_pong`](super::ping_pong)) unless [`Workload::blocking_ping_pong`] is off, the
//! other TCP workloads on the runtime.
//!
//! Every workload is bounded by a duration and a message count, and every wait for the
//! server by `reply_timeout`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{Decoder, Encoder};

use super::PeerError;
use super::behaviour::{Behaviour, Mode, Transport};
use super::payload;
use super::workload::{ReplyTracker, rate};
pub use super::workload::{Workload, WorkloadResult};
use crate::framing::{MessageCodec, stop_and_wait};
use crate::metrics::{LatencyRecorder, ThroughputMeter, interval_for};

/// Bytes of messages a writer batches into one `write`.
const WRITE_BATCH: usize = 256 * 1024;

/// Runs `workload` against the server at `addr`.
///
/// # Errors
/// [`PeerError`] when connecting fails, the server goes silent for `reply_timeout`,
/// closes while replies are due, or sends a frame the codec refuses.
pub async fn run_workload(addr: SocketAddr, workload: &Workload) -> Result<WorkloadResult, PeerError> {
    if workload.transport == Transport::Udp {
        let workload = workload.clone();
        return tokio::task::spawn_blocking(move || super::udp_client::ping_pong(addr, &workload))
            .await
            .map_err(|e| PeerError::Task(e.to_string()))?;
    }
    let stream = TcpStream::connect(addr).await.map_err(|error| PeerError::Connect { addr, error })?;
    run_workload_on(stream, addr, workload).await
}

/// [`run_workload`] on a connection made elsewhere (from another network namespace,
/// say) to the server at `addr`.
///
/// # Errors
/// As [`run_workload`], but for connecting.
pub async fn run_workload_on(
    stream: TcpStream,
    addr: SocketAddr,
    workload: &Workload,
) -> Result<WorkloadResult, PeerError> {
    stream.set_nodelay(workload.nodelay)?;
    let replies = workload.server != Behaviour::Sink;
    if workload.mode == Mode::Bulk && replies {
        return Err(PeerError::Unsupported(format!(
            "bulk mode sends one way, into a sink, not to {}",
            workload.server
        )));
    }
    if workload.mode != Mode::Bulk && !replies {
        return Err(PeerError::Unsupported(format!(
            "{} mode needs replies; a sink sends none",
            workload.mode
        )));
    }
    match MessageCodec::new(workload.framing, workload.max_frame_len) {
        None => stop_and_wait_workload(stream, addr, workload).await,
        Some(codec) if workload.mode == Mode::Bulk => bulk(stream, addr, codec, workload).await,
        Some(codec) if workload.mode == Mode::PingPong && workload.blocking_ping_pong => {
            // One message outstanding: a thread of its own blocking in `recv`, two system
            // calls per round trip instead of the runtime's three (see `ping_pong`).
            let stream = stream.into_std()?;
            let workload = workload.clone();
            tokio::task::spawn_blocking(move || super::ping_pong::run(stream, addr, codec, &workload))
                .await
                .map_err(|e| PeerError::Task(e.to_string()))?
        }
        Some(codec) => request_reply(stream, addr, codec, workload).await,
    }
}

/// Reads until the codec yields a frame; `None` at a clean end of stream.
async fn next_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    codec: &mut MessageCodec,
    buf: &mut BytesMut,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Option<Bytes>, PeerError> {
    loop {
        if let Some(frame) = codec.decode(buf)? {
            return Ok(Some(frame));
        }
        let read = tokio::time::timeout(timeout, reader.read_buf(buf))
            .await
            .map_err(|_| PeerError::Timeout { addr, timeout_ms: timeout.as_millis() as u64 })??;
        if read == 0 {
            return Ok(codec.decode_eof(buf)?);
        }
    }
}

/// Pipelined, open-loop, and ping-pong without `blocking_ping_pong` (a window of one): a
/// writer sends paced messages, a reader matches replies to their send times.
async fn request_reply(
    stream: TcpStream,
    addr: SocketAddr,
    mut codec: MessageCodec,
    workload: &Workload,
) -> Result<WorkloadResult, PeerError> {
    let (mut reader, writer) = stream.into_split();
    let window = match workload.mode {
        Mode::PingPong => Some(1),
        Mode::Pipelined => Some(workload.window.max(1)),
        _ => None,
    };
    let permits = window.map(|n| Arc::new(Semaphore::new(n)));
    let (times_tx, mut times_rx) = mpsc::unbounded_channel::<Instant>();

    let send_codec = MessageCodec::new(workload.framing, workload.max_frame_len)
        .ok_or_else(|| PeerError::Unsupported("stop-and-wait has no codec".into()))?;
    let sender = tokio::spawn(send_paced(writer, send_codec, workload.clone(), permits.clone(), times_tx));

    let mut tracker = ReplyTracker::new(workload);
    let mut latency = LatencyRecorder::new();
    let mut meter = ThroughputMeter::start(interval_for(workload.duration));
    let mut send_times = VecDeque::new();
    let mut buf = BytesMut::with_capacity(WRITE_BATCH);
    let timeout = workload.reply_timeout;
    let mut last_reply_at = None;
    let read_result = async {
        while let Some(frame) = next_frame(&mut reader, &mut codec, &mut buf, addr, timeout).await? {
            let now = Instant::now();
            last_reply_at = Some(now);
            let completed = tracker.on_frame(&frame);
            meter.record(frame.len() as u64, completed);
            for _ in 0..completed {
                while send_times.is_empty() {
                    match times_rx.recv().await {
                        Some(t) => send_times.push_back(t),
                        None => break,
                    }
                }
                if let Some(sent_at) = send_times.pop_front() {
                    latency.record(now.saturating_duration_since(sent_at));
                }
                if let Some(permits) = &permits {
                    permits.add_permits(1);
                }
            }
        }
        Ok::<_, PeerError>(())
    }
    .await;
    if let Err(e) = read_result {
        sender.abort(); // it may be waiting for a window slot that will never free
        return Err(e);
    }
    let (sent, start, sent_for) = sender.await.map_err(|e| PeerError::Task(e.to_string()))??;
    let elapsed = last_reply_at.map_or(Duration::ZERO, |at| at.saturating_duration_since(start));
    if tracker.replied < sent {
        let pending = (sent - tracker.replied) * tracker.size;
        return Err(PeerError::Closed { addr, pending });
    }
    Ok(WorkloadResult {
        latency,
        throughput: meter.summary(),
        elapsed,
        target_rate: (workload.mode == Mode::OpenLoop).then_some(workload.rate_per_s),
        ..tracker.tally(sent, sent_for)
    })
}

/// The writer of [`request_reply`]: sends `w`'s messages, each when a window slot frees
/// (`permits`) or at its intended time (open-loop), batching what may go at once; sends
/// each message's send time on `times`. Returns the messages sent, when sending started
/// and how long it took.
async fn send_paced(
    mut writer: OwnedWriteHalf,
    mut send_codec: MessageCodec,
    w: Workload,
    writer_permits: Option<Arc<Semaphore>>,
    times_tx: mpsc::UnboundedSender<Instant>,
) -> Result<(u64, Instant, Duration), PeerError> {
    let mut batch = BytesMut::with_capacity(WRITE_BATCH);
    let mut message = BytesMut::new();
    payload::write(&mut message, 0, w.message_size);
    // The sending window starts when this task does, however late the runtime
    // schedules it, and always holds at least one message.
    let start = Instant::now();
    let mut seq: u64 = 0;
    while seq < w.max_messages && (seq == 0 || start.elapsed() < w.duration) {
        // Wait for the first message of the batch: a window slot, or its intended time.
        let stamp = match &writer_permits {
            Some(permits) => {
                let Ok(permit) = permits.acquire().await else { break };
                permit.forget();
                Instant::now()
            }
            None => {
                let intended = start + Duration::from_secs_f64(seq as f64 / w.rate_per_s);
                tokio::time::sleep_until(intended.into()).await;
                intended
            }
        };
        loop {
            payload::renumber(&mut message, seq as u32);
            send_codec.encode(&message[..], &mut batch)?;
            let _ = times_tx.send(stamp);
            seq += 1;
            // Batch further messages that may go now: more free window slots, or
            // (open-loop, running behind) messages whose intended time has passed.
            let more = seq < w.max_messages
                && batch.len() < WRITE_BATCH
                && match &writer_permits {
                    Some(permits) => permits.try_acquire().map(|p| p.forget()).is_ok(),
                    None => start + Duration::from_secs_f64(seq as f64 / w.rate_per_s) <= Instant::now(),
                };
            if !more {
                break;
            }
        }
        writer.write_all(&batch).await?;
        batch.clear();
    }
    let sent_for = start.elapsed();
    writer.shutdown().await?;
    Ok((seq, start, sent_for))
}

/// Bulk: one-way batches into a sink for the duration, then waits for the sink to close.
async fn bulk(
    mut stream: TcpStream,
    addr: SocketAddr,
    mut codec: MessageCodec,
    workload: &Workload,
) -> Result<WorkloadResult, PeerError> {
    let start = Instant::now();
    let mut meter = ThroughputMeter::start(interval_for(workload.duration));
    let mut batch = BytesMut::with_capacity(WRITE_BATCH + workload.message_size + 16);
    let mut message = BytesMut::new();
    payload::write(&mut message, 0, workload.message_size);
    let mut seq: u64 = 0;
    while seq < workload.max_messages && (seq == 0 || start.elapsed() < workload.duration) {
        let mut in_batch = 0;
        while batch.len() < WRITE_BATCH && seq < workload.max_messages {
            payload::renumber(&mut message, seq as u32);
            codec.encode(&message[..], &mut batch)?;
            seq += 1;
            in_batch += 1;
        }
        stream.write_all(&batch).await?;
        meter.record((message.len() * in_batch) as u64, in_batch as u64);
        batch.clear();
    }
    let sent_for = start.elapsed();
    finish_one_way(&mut stream, addr, workload.reply_timeout).await?;
    Ok(WorkloadResult {
        sent: seq,
        replied: 0,
        intact: 0,
        corrupted: 0,
        out_of_order: 0,
        lost: 0,
        latency: LatencyRecorder::new(),
        throughput: meter.summary(),
        elapsed: start.elapsed(),
        target_rate: None,
        achieved_rate: rate(seq, sent_for),
    })
}

/// Stop-and-wait: every message waits for the receiver's ACK before its body, so
/// windows and rates collapse to one message at a time; open-loop still times from the
/// intended send time.
async fn stop_and_wait_workload(
    mut stream: TcpStream,
    addr: SocketAddr,
    workload: &Workload,
) -> Result<WorkloadResult, PeerError> {
    let timeout_error = || PeerError::Timeout { addr, timeout_ms: workload.reply_timeout.as_millis() as u64 };
    let mut tracker = ReplyTracker::new(workload);
    let mut latency = LatencyRecorder::new();
    let mut meter = ThroughputMeter::start(interval_for(workload.duration));
    let mut message = BytesMut::new();
    payload::write(&mut message, 0, workload.message_size);
    let start = Instant::now();
    let mut seq: u64 = 0;
    while seq < workload.max_messages && (seq == 0 || start.elapsed() < workload.duration) {
        let sent_at = if workload.mode == Mode::OpenLoop {
            let intended = start + Duration::from_secs_f64(seq as f64 / workload.rate_per_s);
            tokio::time::sleep_until(intended.into()).await;
            intended
        } else {
            Instant::now()
        };
        payload::renumber(&mut message, seq as u32);
        tokio::time::timeout(workload.reply_timeout, stop_and_wait::send(&mut stream, &message))
            .await
            .map_err(|_| timeout_error())??;
        seq += 1;
        if workload.mode == Mode::Bulk {
            meter.record(message.len() as u64, 1);
            continue;
        }
        let reply = tokio::time::timeout(
            workload.reply_timeout,
            stop_and_wait::recv(&mut stream, workload.max_frame_len),
        )
        .await
        .map_err(|_| timeout_error())??
        .ok_or(PeerError::Closed { addr, pending: message.len() as u64 })?;
        let completed = tracker.on_frame(&reply);
        meter.record(reply.len() as u64, completed);
        latency.record(sent_at.elapsed());
    }
    let sent_for = start.elapsed();
    if workload.mode == Mode::Bulk {
        finish_one_way(&mut stream, addr, workload.reply_timeout).await?;
    } else {
        stream.shutdown().await?;
    }
    Ok(WorkloadResult {
        latency,
        throughput: meter.summary(),
        elapsed: start.elapsed(),
        target_rate: (workload.mode == Mode::OpenLoop).then_some(workload.rate_per_s),
        ..tracker.tally(seq, sent_for)
    })
}

/// Ends a one-way transfer: shuts down the sending side, then waits for the sink to
/// close, which it does once it has read everything — the moment the transfer is done.
async fn finish_one_way(
    stream: &mut TcpStream,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), PeerError> {
    stream.shutdown().await?;
    let mut rest = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(timeout, stream.read(&mut rest))
            .await
            .map_err(|_| PeerError::Timeout { addr, timeout_ms: timeout.as_millis() as u64 })??;
        if read == 0 {
            return Ok(());
        }
    }
}
