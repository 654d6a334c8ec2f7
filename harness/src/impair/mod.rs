//! User-space impairment relays: socklab's way to impair a link where the kernel has no
//! `netem`, and to do what netem cannot — cut and glue a TCP byte stream.
//!
//! A relay listens on loopback, and for each client that connects (or, for UDP, each
//! client address that sends) opens its own connection to the upstream server and
//! forwards both directions. A seeded schedule per direction decides what happens to
//! what passes ([`Impairment`], parsed from text such as `split=3+delay=1ms`):
//!
//! - [`TcpRelay`]: `split` (pieces of a fixed or seeded size, each its own write with
//!   TCP_NODELAY and a gap), `merge` (a time window or a piece size), `random` (a
//!   seeded mix), `delay` (fixed or jittered, never reordering), `rate` (token bucket),
//!   `reset-after` (RST via SO_LINGER 0), `stall`.
//! - [`UdpRelay`]: `loss`, `duplicate`, `reorder`, `delay`, `truncate`, each seeded.
//!
//! Every random choice derives from (seed, connection index, direction)
//! ([`connection_seed`]), and a TCP schedule cuts at stream offsets rather than where its
//! reads happened to end, so the same seed and the same bytes give the same writes:
//! a sticky-packet outcome that loopback shows only by chance becomes a fixed one.
//!
//! **Holding never deadlocks**: a piece waiting for more bytes (`split`, `merge=SIZE`,
//! `random`) is written with what it has after `hold` (default 5 ms), and a `merge`
//! window ends by the clock, so a request/reply protocol through the relay is slowed,
//! never stuck. End of input flushes everything at once.
//!
//! Without impairment (`none`, or a direction `dir` leaves out) a TCP direction passes
//! bytes with `splice(2)` through a pipe: they never enter user space.
//!
//! The relay records what it did, per connection and direction — input read sizes,
//! output writes with their time and the delay added, datagrams dropped, duplicated,
//! reordered or cut — as a [`ProxyObservation`] for the case report. Records are
//! bounded: the first [`RelayConfig::record_limit`] events of each kind are listed, the
//! rest counted.
//!
//! A scenario with an `impair` parameter starts its relay with [`in_front`] (nothing
//! for `none`) and reads it through [`Relay`], whatever the transport.
//!
//! Relays run on their own threads and stop when dropped (the accepting or UDP thread
//! looks at its stop flag every [`TICK`]; a TCP connection's blocked reads are woken by
//! the stop, so an idle one costs no wake-ups); they can sit in front of any address,
//! from a scenario or from `socklab proxy`. What a client can make a relay hold is
//! bounded: [`RelayConfig::max_connections`], [`RelayConfig::idle_timeout`] (TCP),
//! [`RelayConfig::flow_timeout`] and [`RelayConfig::max_queued_bytes`] (UDP); what it
//! refused or dropped is in [`RelayCounters`].

mod front;
mod schedule;
mod shell;
pub mod spec;
mod tcp;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use crate::report::{ProxyConnection, ProxyDirection, ProxyObservation, ProxyWrite};
pub use front::{Relay, in_front, start_in_front};
pub use schedule::{Out, TcpSchedule};
pub use shell::RelayCounters;
pub use spec::{Impairment, SpecError, Way};
pub use tcp::{PassThrough, TcpRelay};
pub use udp::{REORDER_FLUSH, UdpRelay, UdpSchedule, UdpSend, UdpVerdict};

/// How often relay threads look at their stop flag, at the longest.
pub const TICK: Duration = Duration::from_millis(50);
/// Indexes of dropped (duplicated, reordered, truncated) datagrams listed per direction.
pub const MAX_INDEXES: usize = 65_536;
/// What a UDP relay's bookkeeping costs per waiting datagram, counted with its payload
/// against [`RelayConfig::max_queued_bytes`] (so a flood of tiny datagrams is bounded
/// too).
pub const QUEUED_OVERHEAD: usize = 128;

/// The seed of one direction of one connection: every choice the relay makes there
/// comes from it.
pub fn connection_seed(seed: u64, connection: u64, way: Way) -> u64 {
    crate::seed::stream_seed(seed, connection.wrapping_mul(2).wrapping_add(way.index()))
}

/// Settings of a relay besides its spec and seed. `Default`: listen on `127.0.0.1:0`,
/// times from now, 256 connections at once, 1,000 events listed per direction, splice,
/// a TCP connection closed after 60 s without a byte, a UDP flow after 30 s without a
/// datagram, 64 MiB of UDP datagrams waiting for their time.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where the relay listens (port 0: the OS picks).
    pub listen: SocketAddr,
    /// The clock record times count from: a case passes its own, so the relay's writes
    /// line up with the case's.
    pub clock: Instant,
    /// Connections (UDP flows) served at once; more are refused (closed at once; for UDP
    /// the datagram is dropped) and counted ([`RelayCounters::refused`]).
    pub max_connections: usize,
    /// Input chunks and output writes listed per direction; the rest are counted.
    pub record_limit: usize,
    /// How an unimpaired TCP direction moves bytes.
    pub pass_through: PassThrough,
    /// How long connecting to the upstream server may take.
    pub connect_timeout: Duration,
    /// TCP: a connection that moves no byte either way for this long is closed (both
    /// sides get a FIN) and its slot freed: a client that went silent, or a peer that
    /// stopped reading, cannot hold a slot for ever.
    pub idle_timeout: Duration,
    /// UDP: a flow that moves no datagram either way for this long, with none waiting in
    /// the relay, is closed (its socket towards the server too) and its slot freed; the
    /// client's next datagram opens a new flow, with a new index and seed.
    pub flow_timeout: Duration,
    /// UDP: bytes of datagrams waiting for their time (`delay`, a reordered datagram let
    /// go) across all flows, each counted as its payload plus [`QUEUED_OVERHEAD`]; a
    /// datagram that would pass it is dropped and counted
    /// ([`ProxyDirection::dropped_queue_full`]).
    pub max_queued_bytes: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Instant::now(),
            max_connections: 256,
            record_limit: 1_000,
            pass_through: PassThrough::Splice,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            flow_timeout: Duration::from_secs(30),
            max_queued_bytes: 64 << 20,
        }
    }
}

/// Why a relay could not start.
///
/// Messages include their cause, so `source()` is `None`.
#[derive(Debug, Error)]
pub enum ImpairError {
    /// The spec has an item the relay's transport cannot apply.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: io::Error,
    },
    /// A socket or thread could not be set up.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// Why.
        error: io::Error,
    },
}

/// Microseconds from `clock` to `at`.
fn micros_since(clock: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(clock).as_secs_f64() * 1e6
}
