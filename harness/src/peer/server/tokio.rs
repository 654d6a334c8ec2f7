//! The tokio flavour: a task per connection on the caller's runtime, many connections on
//! a few threads. Stop-and-wait is served here too, for every flavour: it is the one
//! async implementation of the protocol ([`serve_stop_and_wait`]).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::AbortHandle;

use super::config::ServerConfig;
use super::session::{Session, handle_message};
use super::stats::{Backoff, Reserved, ServerStats};
use crate::framing::{MessageCodec, stop_and_wait};
use crate::peer::PeerError;
use crate::peer::behaviour::Behaviour;

/// Serves `listener` (non-blocking already) from a task of the current runtime; aborting
/// the returned handle stops it.
pub(super) fn start(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
) -> std::io::Result<AbortHandle> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(accept_loop(listener, config, stats)).abort_handle())
}

async fn accept_loop(listener: tokio::net::TcpListener, config: Arc<ServerConfig>, stats: Arc<ServerStats>) {
    let mut backoff = Backoff::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tokio::time::sleep(backoff.failed("accept", &e, &stats)).await;
                continue;
            }
        };
        backoff.reset();
        // Over the cap the connection is closed at once (dropped here): refused, logged.
        let Some(slot) = stats.admit(peer, &config) else { continue };
        let (config, stats) = (config.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &config, &stats).await {
                stats.connection_failed(peer, &e);
            }
            drop(slot);
        });
    }
}

/// Runs `io` unless the connection stays silent for the idle timeout.
async fn within_idle<T>(
    idle: Duration,
    io: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(idle, io).await.map_err(|_| PeerError::Idle { idle_s: idle.as_secs_f64() })?
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    config: &ServerConfig,
    stats: &Arc<ServerStats>,
) -> Result<(), PeerError> {
    let _ = stream.set_nodelay(true);
    let Some(codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        return serve_stop_and_wait(&mut stream, config, stats).await;
    };
    let idle = config.idle_timeout;
    let mut session = Session::new(codec, stats.clone());
    if config.behaviour == Behaviour::Source {
        let mut sent = 0;
        while session.queue_source_batch(config, &mut sent)? {
            within_idle(idle, async { Ok(stream.write_all(&session.write_buf).await?) }).await?;
            session.write_buf.clear();
        }
        return Ok(());
    }
    loop {
        let wait = session.read_wait(config, Duration::ZERO);
        let read = match tokio::time::timeout(wait, stream.read_buf(&mut session.read_buf)).await {
            Ok(read) => read?,
            Err(_) => match session.overdue(config, wait) {
                Some(overdue) => return Err(overdue),
                None => continue,
            },
        };
        let eof = read == 0;
        session.drain(config, eof)?;
        if let Some(overdue) = session.frame_overdue(config) {
            return Err(overdue);
        }
        if !session.write_buf.is_empty() {
            within_idle(idle, async { Ok(stream.write_all(&session.write_buf).await?) }).await?;
            session.written();
        }
        if let Some(pause) = stats.stall_due(config) {
            tokio::time::sleep(pause).await;
        }
        if eof {
            return Ok(());
        }
    }
}

/// Serves one stop-and-wait connection until the peer leaves, stays silent for the idle
/// timeout between messages, or takes longer than the frame timeout over one message
/// (from the first byte of its announcement to the last of its body; the idle timeout
/// instead, if that is shorter: the message is read as one wait).
///
/// An announced length counts against [`ServerConfig::max_buffered_bytes`] from before
/// the ACK until the message has been answered: one that would pass the cap closes the
/// connection unacknowledged (load shed), so no body is ever invited that the server
/// cannot hold.
pub(super) async fn serve_stop_and_wait(
    stream: &mut tokio::net::TcpStream,
    config: &ServerConfig,
    stats: &ServerStats,
) -> Result<(), PeerError> {
    let idle = config.idle_timeout;
    let (limit, overdue) = if config.frame_timeout <= idle {
        (config.frame_timeout, PeerError::FrameTimeout { frame_s: config.frame_timeout.as_secs_f64() })
    } else {
        (idle, PeerError::Idle { idle_s: idle.as_secs_f64() })
    };
    let mut expected_seq = 0;
    let mut first = [0u8; 1];
    loop {
        // Between messages only the idle timeout runs; the first byte starts the frame's.
        if within_idle(idle, async { Ok(stream.peek(&mut first).await?) }).await? == 0 {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + limit;
        let received = tokio::time::timeout_at(deadline, receive(stream, config, stats)).await;
        let Ok(received) = received else { return Err(overdue) };
        let Some((message, _held)) = received? else { return Ok(()) };
        if let Some(reply) = handle_message(message, config, stats, &mut expected_seq) {
            within_idle(idle, async { Ok(stop_and_wait::send(stream, &reply).await?) }).await?;
        }
    }
}

/// Receives one stop-and-wait message, its announced length counted against the cap
/// before it is acknowledged; `None` at a clean end of stream.
async fn receive<'s>(
    stream: &mut tokio::net::TcpStream,
    config: &ServerConfig,
    stats: &'s ServerStats,
) -> Result<Option<(bytes::Bytes, Option<Reserved<'s>>)>, PeerError> {
    let Some(len) = stop_and_wait::recv_announcement(stream).await? else { return Ok(None) };
    // A length over the frame limit is refused by `recv_body` (NAK) and holds nothing.
    let held = if len as usize <= config.max_frame_len {
        Some(stats.reserve(u64::from(len), config.max_buffered_bytes)?)
    } else {
        None
    };
    let message = stop_and_wait::recv_body(stream, len, config.max_frame_len).await?;
    Ok(Some((message, held)))
}
