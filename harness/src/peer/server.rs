//! Reference servers: TCP or UDP; built with tokio, a thread per connection, or one client
//! at a time; echoing, upper-casing, sinking or sourcing framed messages.
//!
//! A server binds `127.0.0.1:0` unless told otherwise and reports the address it got.
//! A connection that sends garbage or an oversized frame is closed with a logged reason
//! (kept in [`ServerStats::errors`] too) and the server goes on serving others. Stopping
//! the [`Server`] (or dropping it) ends every loop it started; each loop also checks a
//! stop flag at least every [`POLL`] so none outlives it.
//!
//! Everything a client can make it hold is bounded: a frame by
//! [`ServerConfig::max_frame_len`] (at most [`MAX_FRAME_LIMIT`], checked at start-up), the
//! bytes held across all connections by [`ServerConfig::max_buffered_bytes`] (the
//! connection that would exceed it is closed: load shed, logged), and a connection's
//! silence by [`ServerConfig::idle_timeout`], in every flavour and framing. Errors that
//! repeat — accept failing on `EMFILE`, a flood of garbage datagrams — back off (1 ms
//! doubling to 1 s, as tokio's and hyper's accept loops do) instead of spinning, and are
//! logged at most a few times a second with a count of the rest.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use super::PeerError;
use super::behaviour::{Behaviour, Flavour, Transport};
use super::payload::{self, Verdict};
use crate::framing::MessageCodec;
use crate::framing::{FramingError, FramingStrategy, HeaderWidth, stop_and_wait};
use crate::net::MAX_UDP_PAYLOAD_V4 as MAX_DATAGRAM;

/// How often blocking loops wake to check whether the server was stopped.
pub const POLL: Duration = Duration::from_millis(100);

/// The largest `max_frame_len` a server accepts: a frame is held whole in memory, and a
/// limit a machine could not hold is a configuration mistake, not something to try.
pub const MAX_FRAME_LIMIT: usize = 1 << 30;

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

/// Size of each socket read, in bytes.
const READ_CHUNK: usize = 256 * 1024;

/// A reference server's settings. `Default` is a tokio TCP echo server with `u32be`
/// framing on `127.0.0.1:0`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TCP or UDP.
    pub transport: Transport,
    /// How connections are served.
    pub flavour: Flavour,
    /// What happens to each message.
    pub behaviour: Behaviour,
    /// How messages are framed.
    pub framing: FramingStrategy,
    /// Where to listen. Default `127.0.0.1:0`: the OS picks a free port.
    pub listen: SocketAddr,
    /// Largest frame accepted, in bytes (default 8 MiB).
    pub max_frame_len: usize,
    /// `source`: size of each message sent, in bytes (default 1024).
    pub source_message_size: usize,
    /// `source`: most messages sent on one connection (default 10 million).
    pub source_max_messages: u64,
    /// Pause once for this long after this many messages (for tests of latency under a
    /// stall). Default: never.
    pub stall: Option<(u64, Duration)>,
    /// A connection that moves no byte in either direction for this long is closed
    /// (default 60 s). This bounds what one silent client holds: a thread in the
    /// threaded flavour, the whole server in the sequential one.
    pub idle_timeout: Duration,
    /// Most bytes of unfinished frames held across all connections (default 64 MiB); the
    /// connection whose bytes would exceed it is closed with a logged reason.
    pub max_buffered_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            transport: Transport::Tcp,
            flavour: Flavour::Tokio,
            behaviour: Behaviour::Echo,
            framing: FramingStrategy::LengthPrefixed {
                width: crate::framing::HeaderWidth::U32,
                endian: crate::framing::Endian::Big,
                signed: false,
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_frame_len: 8 << 20,
            source_message_size: 1024,
            source_max_messages: 10_000_000,
            stall: None,
            idle_timeout: Duration::from_secs(60),
            max_buffered_bytes: 64 << 20,
        }
    }
}

/// A server configuration that cannot work, found before anything is bound.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `max_frame_len` is 0 or above [`MAX_FRAME_LIMIT`].
    #[error("--max-frame {max} is out of range: valid is 1..={MAX_FRAME_LIMIT} bytes (1 GiB)")]
    MaxFrame {
        /// The value given.
        max: usize,
    },
    /// `fixed:N` records larger than the frame limit.
    #[error(
        "fixed:{size} records are larger than --max-frame {max}; raise --max-frame or use smaller records"
    )]
    FixedOverMaxFrame {
        /// N.
        size: usize,
        /// The frame limit.
        max: usize,
    },
    /// A framing that needs a byte stream, over UDP.
    #[error("{0} needs a byte stream (it waits for an ACK between header and body); use --transport tcp")]
    NeedsStream(FramingStrategy),
    /// UDP datagrams cannot hold frames as large as asked.
    #[error("over UDP a frame must fit one datagram ({MAX_DATAGRAM} bytes); fixed:{0} does not")]
    TooLargeForUdp(usize),
    /// `source` messages that the framing's length field cannot announce.
    #[error("--source-size {size} does not fit {framing}, which carries at most {most} bytes per frame")]
    SourceTooLarge {
        /// The message size.
        size: usize,
        /// The framing.
        framing: FramingStrategy,
        /// Its largest payload.
        most: usize,
    },
    /// Idle timeout of zero.
    #[error("--idle-timeout must be at least 1 second")]
    IdleTimeout,
}

impl ServerConfig {
    /// Checks the settings against each other and against what a machine can hold.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_len == 0 || self.max_frame_len > MAX_FRAME_LIMIT {
            return Err(ConfigError::MaxFrame { max: self.max_frame_len });
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::IdleTimeout);
        }
        if let FramingStrategy::FixedSize(size) = self.framing {
            if size > self.max_frame_len {
                return Err(ConfigError::FixedOverMaxFrame { size, max: self.max_frame_len });
            }
            if self.transport == Transport::Udp && size > MAX_DATAGRAM {
                return Err(ConfigError::TooLargeForUdp(size));
            }
        }
        if self.transport == Transport::Udp && self.framing == FramingStrategy::StopAndWait {
            return Err(ConfigError::NeedsStream(self.framing));
        }
        if self.behaviour == Behaviour::Source {
            let most = match self.framing {
                FramingStrategy::LengthPrefixed { width: HeaderWidth::U8, signed, .. } => {
                    if signed {
                        127
                    } else {
                        255
                    }
                }
                FramingStrategy::LengthPrefixed { width: HeaderWidth::U16, signed, .. } => {
                    if signed {
                        32_767
                    } else {
                        65_535
                    }
                }
                FramingStrategy::FixedSize(n) => n,
                _ => self.max_frame_len,
            };
            let size = self.source_message_size;
            if size > most || size > self.max_frame_len {
                return Err(ConfigError::SourceTooLarge {
                    size,
                    framing: self.framing,
                    most: most.min(self.max_frame_len),
                });
            }
        }
        Ok(())
    }
}

/// Counters a server keeps while it runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted (TCP), or distinct peers seen (UDP, at least: counting stops
    /// at 65,536 peers).
    pub connections: AtomicU64,
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
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::ZERO)
    }

    /// The pause before the next attempt: 1 ms, doubling to 1 s.
    fn next(&mut self) -> Duration {
        self.0 = (self.0 * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.0
    }

    fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }
}

impl ServerStats {
    /// The last errors that closed connections, oldest first (at most 100).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn connection_failed(&self, peer: SocketAddr, error: &PeerError) {
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

    /// Logs `line` as a warning, unless more than [`LOG_BURST`] came in this window:
    /// then counts it, and the next line logged says how many were left out.
    fn warn(&self, line: &str) {
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
    fn saw_udp_peer(&self, peer: SocketAddr) {
        if let Ok(mut peers) = self.udp_peers.lock()
            && peers.len() < MAX_UDP_PEERS
            && peers.insert(peer)
        {
            self.connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The stall to take now, once, when the configured message count is reached.
    fn stall_due(&self, config: &ServerConfig) -> Option<Duration> {
        let (after, pause) = config.stall?;
        let due = self.messages.load(Ordering::Relaxed) >= after;
        (due && !self.stalled.swap(true, Ordering::Relaxed)).then_some(pause)
    }
}

/// A running server. Dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    tokio_tasks: Vec<tokio::task::AbortHandle>,
}

impl Server {
    /// Starts a server. The tokio flavour needs to be called inside a tokio runtime; the
    /// others start threads of their own.
    ///
    /// # Errors
    /// [`PeerError::Config`] for settings that cannot work (see
    /// [`ServerConfig::validate`]); [`PeerError::Bind`] when the address cannot be bound
    /// (e.g. the port is in use).
    pub fn start(config: ServerConfig) -> Result<Server, PeerError> {
        Server::start_with(config, None)
    }

    /// [`Server::start`] on a TCP listener made elsewhere (in another network namespace,
    /// say) instead of binding `config.listen`.
    ///
    /// # Errors
    /// As [`Server::start`]; [`PeerError::Unsupported`] for a UDP config.
    pub fn start_on(config: ServerConfig, listener: TcpListener) -> Result<Server, PeerError> {
        if config.transport != Transport::Tcp {
            return Err(PeerError::Unsupported("a listener given to the server must be TCP".into()));
        }
        Server::start_with(config, Some(listener))
    }

    fn start_with(config: ServerConfig, listener: Option<TcpListener>) -> Result<Server, PeerError> {
        config.validate()?;
        let listen = config.listen;
        let bind_error = |error| PeerError::Bind { addr: listen, error };
        let mut given = listener;
        let mut tcp_listener = || match given.take() {
            Some(listener) => Ok(listener),
            None => TcpListener::bind(listen),
        };
        let stats = Arc::new(ServerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let config = Arc::new(config);
        let mut tokio_tasks = Vec::new();
        let addr = match (config.transport, config.flavour) {
            (Transport::Tcp, Flavour::Tokio) => {
                let listener = tcp_listener().map_err(bind_error)?;
                listener.set_nonblocking(true).map_err(bind_error)?;
                let addr = listener.local_addr().map_err(bind_error)?;
                let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
                let task = tokio::spawn(tokio_accept_loop(listener, config.clone(), stats.clone()));
                tokio_tasks.push(task.abort_handle());
                addr
            }
            (Transport::Tcp, flavour) => {
                let listener = tcp_listener().map_err(bind_error)?;
                listener.set_nonblocking(true).map_err(bind_error)?;
                let addr = listener.local_addr().map_err(bind_error)?;
                let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("socklab-{flavour}-accept"))
                    .spawn(move || blocking_accept_loop(listener, flavour, config, stats, stop))
                    .map_err(bind_error)?;
                addr
            }
            (Transport::Udp, flavour) => {
                let socket = UdpSocket::bind(config.listen).map_err(bind_error)?;
                let addr = socket.local_addr().map_err(bind_error)?;
                if flavour == Flavour::Tokio {
                    socket.set_nonblocking(true).map_err(bind_error)?;
                    let socket = tokio::net::UdpSocket::from_std(socket).map_err(bind_error)?;
                    let task = tokio::spawn(tokio_udp_loop(socket, config.clone(), stats.clone()));
                    tokio_tasks.push(task.abort_handle());
                } else {
                    socket.set_read_timeout(Some(POLL)).map_err(bind_error)?;
                    let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
                    std::thread::Builder::new()
                        .name("socklab-udp".into())
                        .spawn(move || blocking_udp_loop(socket, config, stats, stop))
                        .map_err(bind_error)?;
                }
                addr
            }
        };
        Ok(Server { addr, stats, stop, tokio_tasks })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }

    /// Stops accepting and ends every connection loop (within [`POLL`] for threads).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tokio_tasks {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The part of serving a connection that does not depend on how bytes move: decoding
/// frames from the read buffer, queueing replies in the write buffer, and accounting for
/// the bytes of unfinished frames it holds against the server-wide cap.
struct Session {
    codec: MessageCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    expected_seq: u32,
    stats: Arc<ServerStats>,
    /// Bytes of `read_buf` counted in [`ServerStats::buffered_bytes`].
    accounted: usize,
}

impl Session {
    fn new(codec: MessageCodec, stats: Arc<ServerStats>) -> Self {
        Session {
            codec,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            expected_seq: 0,
            stats,
            accounted: 0,
        }
    }

    /// Handles every complete frame in the read buffer (every remaining byte at EOF),
    /// then counts what is left (an unfinished frame) against the server-wide cap.
    fn drain(&mut self, config: &ServerConfig, eof: bool) -> Result<(), PeerError> {
        loop {
            let frame = if eof {
                self.codec.decode_eof(&mut self.read_buf)?
            } else {
                self.codec.decode(&mut self.read_buf)?
            };
            let Some(frame) = frame else { break };
            if let Some(reply) = handle_message(frame, config, &self.stats, &mut self.expected_seq) {
                self.codec.encode(&reply[..], &mut self.write_buf)?;
            }
        }
        self.account(config.max_buffered_bytes)
    }

    /// Updates this connection's share of [`ServerStats::buffered_bytes`]; refuses to
    /// grow it past `cap`.
    fn account(&mut self, cap: usize) -> Result<(), PeerError> {
        let held = self.read_buf.len();
        let total = if held >= self.accounted {
            self.stats.buffered_bytes.fetch_add((held - self.accounted) as u64, Ordering::Relaxed)
                + (held - self.accounted) as u64
        } else {
            self.stats.buffered_bytes.fetch_sub((self.accounted - held) as u64, Ordering::Relaxed)
                - (self.accounted - held) as u64
        };
        let grew = held > self.accounted;
        self.accounted = held;
        if grew && total > cap as u64 {
            return Err(PeerError::LoadShed { buffered: total, cap: cap as u64 });
        }
        Ok(())
    }

    /// `source`: queues the next batch of messages, up to about one read chunk; false
    /// once the connection's quota is used up.
    fn queue_source_batch(&mut self, config: &ServerConfig, sent: &mut u64) -> Result<bool, FramingError> {
        let mut message = BytesMut::new();
        while self.write_buf.len() < READ_CHUNK && *sent < config.source_max_messages {
            message.clear();
            payload::write(&mut message, *sent as u32, config.source_message_size);
            self.codec.encode(&message[..], &mut self.write_buf)?;
            *sent += 1;
        }
        Ok(!self.write_buf.is_empty())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stats.buffered_bytes.fetch_sub(self.accounted as u64, Ordering::Relaxed);
    }
}

/// What to do with one received message; returns the reply, if any.
fn handle_message(
    frame: Bytes,
    config: &ServerConfig,
    stats: &ServerStats,
    expected_seq: &mut u32,
) -> Option<Bytes> {
    stats.messages.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
    match config.behaviour {
        Behaviour::Echo => Some(frame),
        Behaviour::EchoUpper => Some(Bytes::from(frame.to_ascii_uppercase())),
        Behaviour::Sink => {
            match payload::verify(&frame, frame.len()) {
                Verdict::Intact(seq) => {
                    stats.intact.fetch_add(1, Ordering::Relaxed);
                    if seq != *expected_seq {
                        stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    *expected_seq = seq.wrapping_add(1);
                }
                Verdict::Corrupted => {
                    stats.corrupted.fetch_add(1, Ordering::Relaxed);
                }
            }
            None
        }
        Behaviour::Source => None,
    }
}

async fn tokio_accept_loop(
    listener: tokio::net::TcpListener,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
) {
    let mut backoff = Backoff::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends repeat at once while the backlog is full: pause.
                let pause = backoff.next();
                stats.warn(&format!("accept failed: {e}; retrying in {} ms", pause.as_millis()));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        backoff.reset();
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (config, stats) = (config.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = tokio_connection(stream, &config, &stats).await {
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

async fn tokio_connection(
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
async fn serve_stop_and_wait(
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

/// Sleeps in slices of at most [`POLL`] until `pause` is over or the server stops.
fn sleep_unless_stopped(pause: Duration, stop: &AtomicBool) {
    let until = Instant::now() + pause;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(POLL));
    }
}

fn blocking_accept_loop(
    listener: TcpListener,
    flavour: Flavour,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::Relaxed) {
        // Wait for a client at most POLL, so a stop is noticed without a busy loop.
        let mut ready = [PollFd::new(&listener, PollFlags::IN)];
        let poll_timeout = Timespec { tv_sec: 0, tv_nsec: POLL.as_nanos() as i64 };
        if !matches!(poll(&mut ready, Some(&poll_timeout)), Ok(n) if n > 0) {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                let pause = backoff.next();
                stats.warn(&format!("accept failed: {e}; retrying in {} ms", pause.as_millis()));
                sleep_unless_stopped(pause, &stop);
                continue;
            }
        };
        backoff.reset();
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
        let serve = move || {
            if let Err(e) = blocking_connection(stream, &config, &stats, &stop) {
                stats.connection_failed(peer, &e);
            }
        };
        if flavour == Flavour::Sequential {
            serve(); // the next client waits in the listen backlog meanwhile
        } else if std::thread::Builder::new().name("socklab-conn".into()).spawn(serve).is_err() {
            tracing::warn!("could not start a thread for {peer}; connection dropped");
        }
    }
}

/// Whether a blocking socket call ended on its timeout rather than an error.
fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn blocking_connection(
    mut stream: TcpStream,
    config: &ServerConfig,
    stats: &Arc<ServerStats>,
    stop: &AtomicBool,
) -> Result<(), PeerError> {
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    let idle = config.idle_timeout;
    let Some(codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        return blocking_stop_and_wait(stream, config, stats, stop);
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
fn blocking_stop_and_wait(
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

/// The buffers a UDP loop decodes datagrams and builds replies in, kept from one
/// datagram to the next so that a datagram costs no allocation.
#[derive(Default)]
struct UdpScratch {
    input: BytesMut,
    reply: BytesMut,
}

/// Decodes one datagram's frames and returns the reply datagram, if any.
fn udp_reply<'a>(
    datagram: &[u8],
    scratch: &'a mut UdpScratch,
    config: &ServerConfig,
    stats: &ServerStats,
    expected_seq: &mut u32,
) -> Result<Option<&'a [u8]>, PeerError> {
    // A fresh codec per datagram: a damaged datagram leaves no state behind for the next.
    let Some(mut codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        return Err(PeerError::Unsupported("stop-and-wait over UDP (it needs a stream)".into()));
    };
    let UdpScratch { input, reply } = scratch;
    input.clear();
    input.extend_from_slice(datagram);
    reply.clear();
    while let Some(frame) = codec.decode_eof(input)? {
        if let Some(answer) = handle_message(frame, config, stats, expected_seq) {
            codec.encode(&answer[..], reply)?;
        }
        if input.is_empty() {
            break;
        }
    }
    Ok((!reply.is_empty()).then_some(&reply[..]))
}

async fn tokio_udp_loop(socket: tokio::net::UdpSocket, config: Arc<ServerConfig>, stats: Arc<ServerStats>) {
    let mut buf = vec![0u8; 65_536];
    let mut expected_seq = 0;
    let mut backoff = Backoff::new();
    let mut last_peer = None;
    let mut scratch = UdpScratch::default();
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                let pause = backoff.next();
                stats.warn(&format!("receive failed: {e}; retrying in {} ms", pause.as_millis()));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        backoff.reset();
        // A ping-pong sends every datagram from the same peer: no lock, no hash for it.
        if last_peer != Some(peer) {
            stats.saw_udp_peer(peer);
            last_peer = Some(peer);
        }
        match udp_reply(&buf[..n], &mut scratch, &config, &stats, &mut expected_seq) {
            Ok(Some(reply)) => {
                let _ = socket.send_to(reply, peer).await;
            }
            Ok(None) => {}
            Err(e) => stats.connection_failed(peer, &e),
        }
    }
}

fn blocking_udp_loop(
    socket: UdpSocket,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut expected_seq = 0;
    let mut backoff = Backoff::new();
    let mut last_peer = None;
    let mut scratch = UdpScratch::default();
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if timed_out(&e) => continue,
            Err(e) => {
                let pause = backoff.next();
                stats.warn(&format!("receive failed: {e}; retrying in {} ms", pause.as_millis()));
                sleep_unless_stopped(pause, &stop);
                continue;
            }
        };
        backoff.reset();
        // A ping-pong sends every datagram from the same peer: no lock, no hash for it.
        if last_peer != Some(peer) {
            stats.saw_udp_peer(peer);
            last_peer = Some(peer);
        }
        match udp_reply(&buf[..n], &mut scratch, &config, &stats, &mut expected_seq) {
            Ok(Some(reply)) => {
                let _ = socket.send_to(reply, peer);
            }
            Ok(None) => {}
            Err(e) => stats.connection_failed(peer, &e),
        }
    }
}
