//! Reference peers: servers and clients that speak every framing strategy over TCP (and
//! servers over UDP), to run scenarios against and to measure with.
//!
//! - [`server`]: echo / echo-upper / sink / source servers, built with tokio, a thread per
//!   connection, or one client at a time ([`Flavour`]).
//! - [`client`]: workloads — ping-pong, pipelined, bulk, open-loop — that record latency
//!   in an HdrHistogram and throughput per interval; [`ping_pong`]: TCP ping-pong on a
//!   blocking socket; [`udp_client`]: ping-pong over UDP, lost datagrams counted;
//!   [`workload`]: what they share (the [`Workload`], its [`WorkloadResult`], the reply
//!   tracker), so that `client`, which picks one of the others, is imported by none.
//! - [`payload`]: self-checking messages (sequence number + checksum), so every receiver
//!   verifies order and integrity.
//! - [`reader`] and [`bulk`]: the server sides of `tcp-coalescing` (a connection read
//!   with `recv(read_size)`, every read kept) and `recv-buffer` (a verified bulk sink).
//! - [`agent`]: `socklab agent --stdio`, which runs these on another host under the
//!   control of a runner, and the runner's end of it.
//! - [`MessageCodec`]: one codec type for every framing strategy (from `socklab-framing`).

pub mod agent;
pub mod behaviour;
pub mod bulk;
pub mod client;
pub mod payload;
pub mod ping_pong;
pub mod reader;
pub mod server;
pub mod udp_client;
pub mod workload;

use std::io;
use std::net::SocketAddr;

use thiserror::Error;

pub use crate::params::UnknownName;
pub use behaviour::{Behaviour, Flavour, Mode, Transport};
pub use client::{run_workload, run_workload_on};
pub use server::{ConfigError, MAX_FRAME_LIMIT, Server, ServerConfig, ServerStats};
pub use socklab_framing::MessageCodec;
pub use workload::{Workload, WorkloadResult};

use crate::framing::FramingError;

/// What can go wrong between peers.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum PeerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (e.g. address in use).
        error: io::Error,
    },
    /// Connecting to a server failed.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// The server.
        addr: SocketAddr,
        /// Why.
        error: io::Error,
    },
    /// A frame could not be decoded or encoded.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The peer did not answer in time.
    #[error("no reply from {addr} within {timeout_ms} ms")]
    Timeout {
        /// The silent peer.
        addr: SocketAddr,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// The peer closed the connection while a reply was due.
    #[error("{addr} closed the connection with {pending} bytes of replies still due")]
    Closed {
        /// The peer.
        addr: SocketAddr,
        /// Bytes of replies not received.
        pending: u64,
    },
    /// The connection moved no byte for the server's idle timeout.
    #[error("idle for {idle_s} s (--idle-timeout)")]
    Idle {
        /// The idle timeout, in seconds.
        idle_s: f64,
    },
    /// A frame was still unfinished this long after its first byte (a client trickling it,
    /// slowloris): the connection is closed.
    #[error("frame not complete {frame_s} s after its first byte (--frame-timeout)")]
    FrameTimeout {
        /// The frame timeout, in seconds.
        frame_s: f64,
    },
    /// Holding this connection's unfinished frame (or unread replies) would take the bytes
    /// held across all connections past the cap: the connection is closed to shed load.
    #[error(
        "load shed: {buffered} bytes of unfinished frames and unread replies held across connections, over the cap of {cap} (--max-buffered)"
    )]
    LoadShed {
        /// Bytes held with this connection's.
        buffered: u64,
        /// The cap.
        cap: u64,
    },
    /// The server's settings cannot work.
    #[error(transparent)]
    Config(#[from] server::ConfigError),
    /// A task of the workload panicked or was cancelled.
    #[error("the writer task failed: {0}")]
    Task(String),
    /// A combination the peers do not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Any other socket error.
    #[error("socket error: {0}")]
    Io(io::Error),
    /// A step of a server role failed.
    #[error("{context}: {error}")]
    Stream {
        /// What was being done (`read from 198.18.0.1:40312`).
        context: String,
        /// Why.
        error: io::Error,
    },
    /// A client sent more bytes than the role was told to expect.
    #[error("{peer} sent {received} bytes, more than the {expected} expected")]
    TooManyBytes {
        /// The client.
        peer: SocketAddr,
        /// Bytes received so far.
        received: u64,
        /// The most expected.
        expected: u64,
    },
    /// The role was told to stop before it finished.
    #[error("stopped before the transfer finished")]
    Stopped,
}

impl PeerError {
    /// Wraps an I/O error with what was being done: `.map_err(PeerError::stream("accept"))`.
    pub fn stream(context: impl Into<String>) -> impl FnOnce(io::Error) -> PeerError {
        let context = context.into();
        move |error| PeerError::Stream { context, error }
    }
}

impl From<io::Error> for PeerError {
    fn from(error: io::Error) -> Self {
        PeerError::Io(error)
    }
}
