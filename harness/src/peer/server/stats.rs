//! What a server counts while it runs ([`ServerStats`]), the errors it keeps and logs
//! (at most a few lines a second, with a count of the rest), and the pause after an error
//! that may repeat at once ([`Backoff`]).

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::ServerConfig;
use crate::peer::PeerError;

/// Distinct UDP peers remembered for [`ServerStats::connections`]; past this, new peers
/// are no longer counted (the count says "at least").
const MAX_UDP_PEERS: usize = 65_536;

/// Log lines of one kind allowed per [`LOG_WINDOW`] before the rest are counted instead.
const LOG_BURST: u32 = 5;
/// The window of [`LOG_BURST`].
const LOG_WINDOW: Duration = Duration::from_secs(1);
/// First and longest pause after an error that may repeat at once (accept, receive).
const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Most errors [`ServerStats::errors`] keeps.
const KEPT_ERRORS: usize = 100;

/// Counters a server keeps while it runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted and served (TCP), or distinct peers seen (UDP, at least:
    /// counting stops at 65,536 peers).
    pub connections: AtomicU64,
    /// TCP connections being served right now.
    pub open_connections: AtomicU64,
    /// TCP connections closed as soon as accepted because
    /// [`ServerConfig::max_connections`] were open already.
    pub refused: AtomicU64,
    /// Messages received.
    pub messages: AtomicU64,
    /// Payload bytes received.
    pub bytes: AtomicU64,
    /// `sink`: messages that verified (length, header, checksum).
    pub intact: AtomicU64,
    /// `sink`: messages that did not verify.
    pub corrupted: AtomicU64,
    /// `sink`: intact messages whose sequence number was not the next expected one.
    pub out_of_order: AtomicU64,
    /// Connections closed because of an error (garbage, oversized frame, reset, idle,
    /// load shed).
    pub closed_with_error: AtomicU64,
    /// Bytes of unfinished frames held across all connections right now.
    pub buffered_bytes: AtomicU64,
    /// Errors that were not logged one by one because they came too fast (counted in
    /// the next line that is logged).
    pub warnings_suppressed: AtomicU64,
    stalled: AtomicBool,
    errors: Mutex<Vec<String>>,
    log: Mutex<LogThrottle>,
    udp_peers: Mutex<HashSet<SocketAddr>>,
}

/// A connection's place among [`ServerConfig::max_connections`], given back when dropped.
pub(super) struct Slot(Arc<ServerStats>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes counted in [`ServerStats::buffered_bytes`] for as long as this lives.
pub(super) struct Reserved<'a> {
    stats: &'a ServerStats,
    bytes: u64,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.stats.buffered_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// At most [`LOG_BURST`] lines per [`LOG_WINDOW`]; the rest are counted and reported
/// with the first line of the next window.
#[derive(Debug)]
struct LogThrottle {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle { window_start: Instant::now(), logged: 0, suppressed: 0 }
    }
}

/// Pauses between attempts of an operation that failed and may fail again at once.
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff(Duration::ZERO)
    }

    /// The pause before the next attempt: 1 ms, doubling to 1 s.
    fn next(&mut self) -> Duration {
        self.0 = (self.0 * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.0
    }

    /// `what` failed with `error`: logs it (throttled) with the pause to take before the
    /// next attempt, and returns that pause. EMFILE and friends repeat at once while the
    /// backlog is full; without the pause the loop would spin a core.
    pub(super) fn failed(&mut self, what: &str, error: &io::Error, stats: &ServerStats) -> Duration {
        let pause = self.next();
        stats.warn(&format!("{what} failed: {error}; retrying in {} ms", pause.as_millis()));
        pause
    }

    /// The operation succeeded: the next failure pauses 1 ms again.
    pub(super) fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }
}

impl ServerStats {
    /// The last errors that closed connections, oldest first (at most 100).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub(super) fn connection_failed(&self, peer: SocketAddr, error: &PeerError) {
        self.closed_with_error.fetch_add(1, Ordering::Relaxed);
        let line = format!("closed connection from {peer}: {error}");
        self.warn(&line);
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() == KEPT_ERRORS {
                errors.remove(0);
            }
            errors.push(line);
        }
    }

    /// Admits a connection from `peer` if fewer than `config.max_connections` are open:
    /// the slot it returns counts it in [`ServerStats::open_connections`] until dropped.
    /// Otherwise the refusal is counted and logged, and the caller closes the connection.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr, config: &ServerConfig) -> Option<Slot> {
        let cap = config.max_connections as u64;
        // The one accept loop is the only one to add, so no other admission races this one.
        if self.open_connections.load(Ordering::Relaxed) >= cap {
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.warn(&format!(
                "refused connection from {peer}: {cap} connections open already (--max-connections)"
            ));
            return None;
        }
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        Some(Slot(self.clone()))
    }

    /// Counts `bytes` in [`ServerStats::buffered_bytes`] until the returned guard is
    /// dropped, unless that would take the total past `cap`.
    ///
    /// # Errors
    /// [`PeerError::LoadShed`] when it would; nothing is counted then.
    pub(super) fn reserve(&self, bytes: u64, cap: usize) -> Result<Reserved<'_>, PeerError> {
        let total = self.buffered_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total > cap as u64 {
            self.buffered_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(PeerError::LoadShed { buffered: total, cap: cap as u64 });
        }
        Ok(Reserved { stats: self, bytes })
    }

    /// Logs `line` as a warning, unless more than [`LOG_BURST`] came in this window:
    /// then counts it, and the next line logged says how many were left out.
    pub(super) fn warn(&self, line: &str) {
        let Ok(mut log) = self.log.lock() else { return };
        if log.window_start.elapsed() >= LOG_WINDOW {
            log.window_start = Instant::now();
            log.logged = 0;
        }
        if log.logged >= LOG_BURST {
            log.suppressed += 1;
            self.warnings_suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        log.logged += 1;
        match std::mem::take(&mut log.suppressed) {
            0 => tracing::warn!("{line}"),
            n => tracing::warn!("{line} (and {n} more warnings left out since the last one logged)"),
        }
    }

    /// Counts a UDP peer the first time it is seen.
    pub(super) fn saw_udp_peer(&self, peer: SocketAddr) {
        if let Ok(mut peers) = self.udp_peers.lock()
            && peers.len() < MAX_UDP_PEERS
            && peers.insert(peer)
        {
            self.connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The stall to take now, once, when the configured message count is reached.
    pub(super) fn stall_due(&self, config: &ServerConfig) -> Option<Duration> {
        let (after, pause) = config.stall?;
        let due = self.messages.load(Ordering::Relaxed) >= after;
        (due && !self.stalled.swap(true, Ordering::Relaxed)).then_some(pause)
    }
}
