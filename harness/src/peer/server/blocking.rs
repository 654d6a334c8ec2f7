//! Serving on blocking sockets, what the threaded and sequential flavours share: an accept
//! loop that wakes every [`POLL`] to see whether the server was stopped, and a connection
//! served on the calling thread until the client leaves, stays silent for the idle
//! timeout, or the server stops. They differ only in which thread serves a connection
//! ([`threaded`](super::threaded), [`sequential`](super::sequential)).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::config::ServerConfig;
use super::session::{READ_CHUNK, Session};
use super::stats::{Backoff, ServerStats};
use super::tokio::serve_stop_and_wait;
use crate::framing::MessageCodec;
use crate::peer::PeerError;
use crate::peer::behaviour::{Behaviour, Flavour};

/// How often blocking loops wake to check whether the server was stopped.
pub const POLL: Duration = Duration::from_millis(100);

/// An accepted connection, with what serving it needs.
pub(super) struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
}

impl Accepted {
    /// The client.
    pub(super) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Serves the connection on this thread to its end; an error that closes it is
    /// counted and logged.
    pub(super) fn serve(self) {
        let Accepted { stream, peer, config, stats, stop } = self;
        if let Err(e) = connection(stream, &config, &stats, &stop) {
            stats.connection_failed(peer, &e);
        }
    }
}

/// Starts the thread that accepts on `listener` (non-blocking already) until `stop` is
/// raised, and hands each connection to the flavour's `dispatch`.
pub(super) fn spawn_acceptor(
    flavour: Flavour,
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    dispatch: fn(Accepted),
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("socklab-{flavour}-accept"))
        .spawn(move || accept_loop(&listener, &config, &stats, &stop, dispatch))?;
    Ok(())
}

fn accept_loop(
    listener: &TcpListener,
    config: &Arc<ServerConfig>,
    stats: &Arc<ServerStats>,
    stop: &Arc<AtomicBool>,
    dispatch: fn(Accepted),
) {
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::Relaxed) {
        // Wait for a client at most POLL, so a stop is noticed without a busy loop.
        let mut ready = [PollFd::new(listener, PollFlags::IN)];
        let poll_timeout = Timespec { tv_sec: 0, tv_nsec: POLL.as_nanos() as i64 };
        if !matches!(poll(&mut ready, Some(&poll_timeout)), Ok(n) if n > 0) {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                sleep_unless_stopped(backoff.failed("accept", &e, stats), stop);
                continue;
            }
        };
        backoff.reset();
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
        dispatch(Accepted { stream, peer, config, stats, stop });
    }
}

/// Sleeps in slices of at most [`POLL`] until `pause` is over or the server stops.
pub(super) fn sleep_unless_stopped(pause: Duration, stop: &AtomicBool) {
    let until = Instant::now() + pause;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// Whether a blocking socket call ended on its timeout rather than an error.
pub(super) fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn connection(
    mut stream: TcpStream,
    config: &ServerConfig,
    stats: &Arc<ServerStats>,
    stop: &AtomicBool,
) -> Result<(), PeerError> {
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    let idle = config.idle_timeout;
    let Some(codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        return stop_and_wait(stream, config, stats, stop);
    };
    stream.set_read_timeout(Some(POLL))?;
    // A client that stops reading blocks a write; after the idle timeout it is closed.
    stream.set_write_timeout(Some(idle))?;
    let idle_error = || PeerError::Idle { idle_s: idle.as_secs_f64() };
    let write = |stream: &mut TcpStream, bytes: &[u8]| {
        stream.write_all(bytes).map_err(|e| if timed_out(&e) { idle_error() } else { e.into() })
    };
    let mut session = Session::new(codec, stats.clone());
    if config.behaviour == Behaviour::Source {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && session.queue_source_batch(config, &mut sent)? {
            write(&mut stream, &session.write_buf)?;
            session.write_buf.clear();
        }
        return Ok(());
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut last_byte_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                if last_byte_at.elapsed() >= idle {
                    return Err(idle_error());
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        last_byte_at = Instant::now();
        session.read_buf.extend_from_slice(&chunk[..n]);
        session.drain(config, n == 0)?;
        if !session.write_buf.is_empty() {
            write(&mut stream, &session.write_buf)?;
            session.write_buf.clear();
        }
        if let Some(pause) = stats.stall_due(config) {
            std::thread::sleep(pause);
        }
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Stop-and-wait on a connection thread: the one async implementation of the protocol,
/// on a runtime of the thread's own, ended by the idle timeout or the server's stop flag.
fn stop_and_wait(
    stream: TcpStream,
    config: &ServerConfig,
    stats: &ServerStats,
    stop: &AtomicBool,
) -> Result<(), PeerError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        stream.set_nonblocking(true)?;
        let mut stream = tokio::net::TcpStream::from_std(stream)?;
        let stopped = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(POLL).await;
            }
        };
        tokio::select! {
            served = serve_stop_and_wait(&mut stream, config, stats) => served,
            () = stopped => Ok(()),
        }
    })
}
