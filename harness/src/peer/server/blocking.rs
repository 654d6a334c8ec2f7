//! Serving on blocking sockets, what the threaded and sequential flavours share: an accept
//! loop that wakes every [`POLL`] to see whether the server was stopped, and a connection
//! served on the calling thread until the client leaves, stays silent for the idle
//! timeout, leaves a frame unfinished for the frame timeout, or the server stops. They
//! differ only in which thread serves a connection ([`threaded`](super::threaded),
//! [`sequential`](super::sequential)).
//!
//! A connection blocks in `recv` with its socket timeout set to the nearest deadline, so an
//! idle one costs no wake-up; stopping the server shuts its socket down ([`Stop`]). The
//! timeout is changed only when a deadline needs a shorter one ([`ReadTimeout`]): a system
//! call per message would slow the round trip this flavour is there to measure.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::config::ServerConfig;
use super::session::{READ_CHUNK, Session};
use super::stats::{Backoff, ServerStats, Slot};
use super::stop::Stop;
use super::tokio::serve_stop_and_wait;
use crate::framing::MessageCodec;
use crate::peer::PeerError;
use crate::peer::behaviour::{Behaviour, Flavour};

/// How often the blocking accept loop and UDP loop wake to check whether the server was
/// stopped (connections are woken by [`Stop`] instead).
pub const POLL: Duration = Duration::from_millis(100);

/// An accepted connection, with what serving it needs.
pub(super) struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<Stop>,
    /// Its place among `config.max_connections`, given back when it ends.
    _slot: Slot,
}

impl Accepted {
    /// The client.
    pub(super) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Serves the connection on this thread to its end; an error that closes it is
    /// counted and logged.
    pub(super) fn serve(self) {
        let Accepted { stream, peer, config, stats, stop, _slot } = self;
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
    stop: Arc<Stop>,
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
    stop: &Arc<Stop>,
    dispatch: fn(Accepted),
) {
    let mut backoff = Backoff::new();
    while !stop.is_raised() {
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
        // Over the cap the connection is closed at once (dropped here): refused, logged.
        let Some(slot) = stats.admit(peer, config) else { continue };
        let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
        dispatch(Accepted { stream, peer, config, stats, stop, _slot: slot });
    }
}

/// Sleeps in slices of at most [`POLL`] until `pause` is over or the server stops.
pub(super) fn sleep_unless_stopped(pause: Duration, stop: &Stop) {
    let until = Instant::now() + pause;
    while !stop.is_raised() {
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

/// Serves one connection to its end. Its socket is registered with `stop`, so stopping the
/// server wakes a read or write blocked on it; what that wake-up looks like (an early EOF,
/// a broken pipe) is then no error of the client's.
fn connection(
    stream: TcpStream,
    config: &ServerConfig,
    stats: &Arc<ServerStats>,
    stop: &Arc<Stop>,
) -> Result<(), PeerError> {
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    let served = match MessageCodec::new(config.framing, config.max_frame_len) {
        Some(codec) => {
            let stream = Arc::new(stream);
            let Some(_registered) = stop.register(stream.clone()) else { return Ok(()) };
            let session = Session::new(codec, stats.clone());
            if config.behaviour == Behaviour::Source {
                source(&stream, session, config, stop)
            } else {
                serve(&stream, session, config, stats, stop)
            }
        }
        None => stop_and_wait(stream, config, stats, stop),
    };
    if stop.is_raised() {
        return Ok(());
    }
    served
}

/// Writes `bytes`; a write blocked for the idle timeout (a client that stopped reading)
/// is the idle error.
fn write(mut stream: &TcpStream, bytes: &[u8], config: &ServerConfig) -> Result<(), PeerError> {
    stream.write_all(bytes).map_err(|e| {
        if timed_out(&e) { PeerError::Idle { idle_s: config.idle_timeout.as_secs_f64() } } else { e.into() }
    })
}

/// `source`: sends messages until the quota is sent, the client leaves or the server stops.
fn source(
    stream: &TcpStream,
    mut session: Session,
    config: &ServerConfig,
    stop: &Stop,
) -> Result<(), PeerError> {
    stream.set_write_timeout(Some(config.idle_timeout))?;
    let mut sent = 0;
    while !stop.is_raised() && session.queue_source_batch(config, &mut sent)? {
        write(stream, &session.write_buf, config)?;
        session.write_buf.clear();
    }
    Ok(())
}

/// Reads frames and answers them until the client leaves, a deadline passes, or the
/// server stops.
fn serve(
    stream: &TcpStream,
    mut session: Session,
    config: &ServerConfig,
    stats: &ServerStats,
    stop: &Stop,
) -> Result<(), PeerError> {
    // A client that stops reading blocks a write; after the idle timeout it is closed.
    stream.set_write_timeout(Some(config.idle_timeout))?;
    let mut timeout = ReadTimeout::new(stream, config.idle_timeout)?;
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut last_byte_at = Instant::now();
    while !stop.is_raised() {
        if session.in_frame() {
            timeout.at_most(stream, session.read_wait(config, last_byte_at.elapsed()))?;
        }
        let n = match (&*stream).read(&mut chunk) {
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                let waited = last_byte_at.elapsed();
                if let Some(overdue) = session.overdue(config, waited) {
                    return Err(overdue);
                }
                // Woken before any deadline (the timeout was shortened for a frame that
                // has since completed): wait exactly what is left.
                timeout.set(stream, session.read_wait(config, waited))?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        last_byte_at = Instant::now();
        session.read_buf.extend_from_slice(&chunk[..n]);
        session.drain(config, n == 0)?;
        if let Some(overdue) = session.frame_overdue(config) {
            return Err(overdue);
        }
        if !session.write_buf.is_empty() {
            write(stream, &session.write_buf, config)?;
            session.written();
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

/// A blocking socket's read timeout, set as seldom as the deadlines allow.
///
/// Each read waits at most the current timeout, so it must never be much longer than the
/// time to the nearest deadline; but setting it is a system call, so it is shortened only
/// when a deadline needs at least an eighth less (a deadline is then met within an eighth
/// of its length), and lengthened only after it ran out with no deadline due.
struct ReadTimeout {
    current: Duration,
}

/// The shortest socket timeout set: zero would mean "no timeout" to the kernel.
const MIN_READ_TIMEOUT: Duration = Duration::from_millis(1);

impl ReadTimeout {
    fn new(stream: &TcpStream, initial: Duration) -> io::Result<Self> {
        let mut timeout = ReadTimeout { current: Duration::ZERO };
        timeout.set(stream, initial)?;
        Ok(timeout)
    }

    /// Sets the timeout to `wait` (at least [`MIN_READ_TIMEOUT`]).
    fn set(&mut self, stream: &TcpStream, wait: Duration) -> io::Result<()> {
        let wait = wait.max(MIN_READ_TIMEOUT);
        if wait != self.current {
            stream.set_read_timeout(Some(wait))?;
            self.current = wait;
        }
        Ok(())
    }

    /// Shortens the timeout to `wait` if the current one is more than an eighth longer.
    fn at_most(&mut self, stream: &TcpStream, wait: Duration) -> io::Result<()> {
        if wait < self.current - self.current / 8 {
            self.set(stream, wait)?;
        }
        Ok(())
    }
}

/// Stop-and-wait on a connection thread: the one async implementation of the protocol, on
/// a runtime of the thread's own. The runtime takes the socket; a second handle on it,
/// registered with `stop`, lets stopping the server shut it down.
fn stop_and_wait(
    stream: TcpStream,
    config: &ServerConfig,
    stats: &ServerStats,
    stop: &Arc<Stop>,
) -> Result<(), PeerError> {
    let Some(_registered) = stop.register(Arc::new(stream.try_clone()?)) else { return Ok(()) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        stream.set_nonblocking(true)?;
        let mut stream = tokio::net::TcpStream::from_std(stream)?;
        serve_stop_and_wait(&mut stream, config, stats).await
    })
}
