//! What every client shares: the [`Workload`] it is told to run, the [`WorkloadResult`]
//! it measured, and the `ReplyTracker` that judges replies. The clients
//! ([`client`](super::client), [`ping_pong`](super::ping_pong),
//! [`udp_client`](super::udp_client)) import these from here, so `client`, which picks
//! one of the others, is imported by none of them.

use std::time::Duration;

use super::behaviour::{Behaviour, Mode, Transport};
use super::payload::{self, Verdict};
use super::server::ServerConfig;
use crate::cancel::Cancel;
use crate::framing::FramingStrategy;
use crate::metrics::{LatencyRecorder, ThroughputSummary};

/// What a client does. `Default`: ping-pong with 64-byte `u32be` messages for 1 s.
#[derive(Debug, Clone)]
pub struct Workload {
    /// TCP, or UDP (ping-pong only: one datagram outstanding).
    pub transport: Transport,
    /// How the client drives the server.
    pub mode: Mode,
    /// How messages are framed.
    pub framing: FramingStrategy,
    /// Payload size of every message, in bytes (at least 16: sequence number and checksum).
    pub message_size: usize,
    /// How long to send for.
    pub duration: Duration,
    /// Most messages to send.
    pub max_messages: u64,
    /// `pipelined`: most messages outstanding.
    pub window: usize,
    /// `open-loop`: messages per second.
    pub rate_per_s: f64,
    /// What the server does: `echo` or `echo-upper` (replies verified), `sink` (no replies).
    pub server: Behaviour,
    /// Longest wait for the server at any point. Over UDP, how long each request waits
    /// for its reply before it counts as lost.
    pub reply_timeout: Duration,
    /// Set TCP_NODELAY on the client socket.
    pub nodelay: bool,
    /// TCP ping-pong on a blocking socket in a thread of its own
    /// ([`ping_pong`](super::ping_pong): a `send` and a `recv` per round trip) rather than
    /// as tasks on the runtime (default `true`). Set it to `false` when the server's tasks
    /// run on the same tokio runtime, as the in-process reference server's do: then an
    /// async client's and the server's tasks share the runtime's threads, and a round trip
    /// often ends without waking another thread, which a blocking client cannot avoid.
    pub blocking_ping_pong: bool,
    /// Largest frame accepted from the server, in bytes.
    pub max_frame_len: usize,
    /// Raised when the case's time is up: the UDP client, which blocks a thread, looks at
    /// it between requests (the TCP clients are async and stop when dropped).
    pub cancel: Cancel,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            transport: Transport::Tcp,
            mode: Mode::PingPong,
            framing: ServerConfig::default().framing,
            message_size: 64,
            duration: Duration::from_secs(1),
            max_messages: 10_000_000,
            window: 16,
            rate_per_s: 1000.0,
            server: Behaviour::Echo,
            reply_timeout: Duration::from_secs(5),
            nodelay: true,
            blocking_ping_pong: true,
            max_frame_len: 8 << 20,
            cancel: Cancel::new(),
        }
    }
}

/// What a workload measured.
#[derive(Debug, Clone, Default)]
pub struct WorkloadResult {
    /// Messages sent.
    pub sent: u64,
    /// Messages whose reply bytes all arrived.
    pub replied: u64,
    /// Received frames that verified.
    pub intact: u64,
    /// Received frames that did not verify (for `raw`: reads that were not exactly one
    /// message).
    pub corrupted: u64,
    /// Intact frames that arrived out of sequence (over UDP: replies to an earlier
    /// request, which arrived after it was counted lost, or twice).
    pub out_of_order: u64,
    /// UDP: requests with no intact reply within `reply_timeout` (0 over TCP, where a
    /// silent server is an error).
    pub lost: u64,
    /// Round trips (from the intended send time, for open-loop).
    pub latency: LatencyRecorder,
    /// Reply bytes per interval (sent bytes for bulk).
    pub throughput: ThroughputSummary,
    /// From the first send to the last reply (or, for bulk, to the server's close).
    pub elapsed: Duration,
    /// `open-loop`: the rate asked for, messages per second.
    pub target_rate: Option<f64>,
    /// Messages sent per second of sending.
    pub achieved_rate: f64,
}

/// Tells intact from corrupted replies and completed requests from pending ones.
pub(super) struct ReplyTracker {
    pub(super) size: u64,
    upper: bool,
    bytes: u64,
    pub(super) replied: u64,
    pub(super) intact: u64,
    pub(super) corrupted: u64,
    pub(super) out_of_order: u64,
    next_seq: u32,
}

impl ReplyTracker {
    pub(super) fn new(workload: &Workload) -> Self {
        ReplyTracker {
            size: workload.message_size.max(payload::MIN_PAYLOAD) as u64,
            upper: workload.server == Behaviour::EchoUpper,
            bytes: 0,
            replied: 0,
            intact: 0,
            corrupted: 0,
            out_of_order: 0,
            next_seq: 0,
        }
    }

    /// The counts of a TCP workload that sent `sent` requests over `sent_for`: what the
    /// tracker judged, no losses (a silent TCP server is an error), and the sending
    /// rate. The caller adds latency, throughput, elapsed time and any target rate.
    pub(super) fn tally(&self, sent: u64, sent_for: Duration) -> WorkloadResult {
        WorkloadResult {
            sent,
            replied: self.replied,
            intact: self.intact,
            corrupted: self.corrupted,
            out_of_order: self.out_of_order,
            lost: 0,
            achieved_rate: rate(sent, sent_for),
            ..WorkloadResult::default()
        }
    }

    /// Judges one received frame; returns how many requests it completed.
    pub(super) fn on_frame(&mut self, frame: &[u8]) -> u64 {
        let size = self.size as usize;
        let verdict =
            if self.upper { payload::verify_upper(frame, size) } else { payload::verify(frame, size) };
        match verdict {
            Verdict::Intact(seq) => {
                self.intact += 1;
                if seq != self.next_seq {
                    self.out_of_order += 1;
                }
                self.next_seq = seq.wrapping_add(1);
            }
            Verdict::Corrupted => self.corrupted += 1,
        }
        self.bytes += frame.len() as u64;
        let completed = self.bytes / self.size - self.replied;
        self.replied += completed;
        completed
    }
}

/// Events per second: `count` over `over` (0 over no time).
pub(super) fn rate(count: u64, over: Duration) -> f64 {
    if over.is_zero() { 0.0 } else { count as f64 / over.as_secs_f64() }
}
