//! The server side of the sticky-packet experiment: one connection read the way a first
//! socket program reads it — optional ping/pong warm-up round trips, a pause, then
//! `recv(read_size)` until EOF — with every read timed and kept.
//!
//! `tcp-coalescing` runs it in process; `socklab agent` runs the same code on another
//! host, so both report the same reads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::PeerError;
use crate::net::bytes_queued;

/// What a warm-up round trip sends.
pub const PING: &[u8; 4] = b"ping";
/// What a warm-up round trip answers.
pub const PONG: &[u8; 4] = b"pong";

/// How the connection is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Buffer size of each `recv`, in bytes.
    pub read_size: usize,
    /// Wait before the first read.
    pub read_delay: Duration,
    /// Ping/pong round trips answered first.
    pub warm_round_trips: usize,
    /// Most bytes the client may send; more is an error (a misbehaving peer).
    pub max_bytes: usize,
}

/// One read as recorded: when its call returned (on the reader's clock) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedRead {
    /// Since the reader's clock started.
    pub at: Duration,
    /// What the read returned.
    pub bytes: Vec<u8>,
}

/// What the reader saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReads {
    /// Every read that returned data, in order.
    pub reads: Vec<TimedRead>,
    /// Bytes queued just before the first read (`FIONREAD`).
    pub queued_at_first_read: usize,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Accepts one client on `listener` and reads it as `config` says until EOF; times are
/// measured from `clock`.
///
/// # Errors
/// [`PeerError::Stream`] naming the step that failed; [`PeerError::TooManyBytes`] when
/// the client sends more than `max_bytes`.
pub async fn read_one_connection(
    listener: TcpListener,
    config: ReaderConfig,
    clock: Instant,
) -> Result<StreamReads, PeerError> {
    let (stream, peer) = accept_and_warm(&listener, config.warm_round_trips).await?;
    read_after_delay(stream, peer, config, clock).await
}

/// The first half of [`read_one_connection`]: accepts one client and answers its
/// warm-up round trips.
///
/// # Errors
/// [`PeerError::Stream`] naming the step that failed.
pub async fn accept_and_warm(
    listener: &TcpListener,
    warm_round_trips: usize,
) -> Result<(TcpStream, SocketAddr), PeerError> {
    let (mut stream, peer) = listener.accept().await.map_err(PeerError::stream("accept the client"))?;
    let mut ping = [0u8; PING.len()];
    for _ in 0..warm_round_trips {
        stream
            .read_exact(&mut ping)
            .await
            .map_err(PeerError::stream(format!("read warm-up ping from {peer}")))?;
        stream.write_all(PONG).await.map_err(PeerError::stream(format!("write warm-up pong to {peer}")))?;
    }
    Ok((stream, peer))
}

/// The second half: waits `read_delay`, then reads with `recv(read_size)` until EOF.
///
/// # Errors
/// As [`read_one_connection`].
pub async fn read_after_delay(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: ReaderConfig,
    clock: Instant,
) -> Result<StreamReads, PeerError> {
    tokio::time::sleep(config.read_delay).await;
    let queued_at_first_read =
        bytes_queued(&stream).map_err(PeerError::stream("FIONREAD on the server socket"))?;
    let mut buf = vec![0u8; config.read_size.max(1)];
    let mut reads = Vec::new();
    let mut received = 0;
    // Each read returns at least one byte, so the loop ends after `max_bytes` reads at
    // most, plus the read that sees EOF; anything more is a misbehaving peer.
    loop {
        let n = stream.read(&mut buf).await.map_err(PeerError::stream(format!("read from {peer}")))?;
        if n == 0 {
            break;
        }
        received += n;
        if received > config.max_bytes {
            return Err(PeerError::TooManyBytes {
                peer,
                received: received as u64,
                expected: config.max_bytes as u64,
            });
        }
        reads.push(TimedRead { at: clock.elapsed(), bytes: buf[..n].to_vec() });
    }
    Ok(StreamReads { reads, queued_at_first_read, peer })
}
