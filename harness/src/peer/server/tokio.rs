//! The tokio flavour: a task per connection on the caller's runtime, many connections on
//! a few threads. Stop-and-wait is served here too, for every flavour: it is the one
//! async implementation of the protocol ([`serve_stop_and_wait`]).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::AbortHandle;

use super::config::ServerConfig;
use super::session::{Session, handle_message};
use super::stats::{Backoff, ServerStats};
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
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (config, stats) = (config.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &config, &stats).await {
                stats.connection_failed(peer, &e);
            }
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
        let read = within_idle(idle, async { Ok(stream.read_buf(&mut session.read_buf).await?) }).await?;
        let eof = read == 0;
        session.drain(config, eof)?;
        if !session.write_buf.is_empty() {
            within_idle(idle, async { Ok(stream.write_all(&session.write_buf).await?) }).await?;
            session.write_buf.clear();
        }
        if let Some(pause) = stats.stall_due(config) {
            tokio::time::sleep(pause).await;
        }
        if eof {
            return Ok(());
        }
    }
}

/// Serves one stop-and-wait connection until the peer leaves or stays silent for the
/// idle timeout (a header sent, then nothing, is silence too).
pub(super) async fn serve_stop_and_wait(
    stream: &mut tokio::net::TcpStream,
    config: &ServerConfig,
    stats: &ServerStats,
) -> Result<(), PeerError> {
    let idle = config.idle_timeout;
    let mut expected_seq = 0;
    loop {
        let received =
            within_idle(idle, async { Ok(stop_and_wait::recv(stream, config.max_frame_len).await?) });
        let Some(message) = received.await? else { return Ok(()) };
        if let Some(reply) = handle_message(message, config, stats, &mut expected_seq) {
            within_idle(idle, async { Ok(stop_and_wait::send(stream, &reply).await?) }).await?;
        }
    }
}
