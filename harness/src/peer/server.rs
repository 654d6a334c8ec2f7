//! Reference servers: TCP or UDP; built with tokio, a thread per connection, or one client
//! at a time; echoing, upper-casing, sinking or sourcing framed messages.
//!
//! A server binds `127.0.0.1:0` unless told otherwise and reports the address it got.
//! A connection that sends garbage or an oversized frame is closed with a logged reason
//! (kept in [`ServerStats::errors`] too) and the server goes on serving others. Stopping
//! the [`Server`] (or dropping it) ends every loop it started; each loop also checks a
//! stop flag at least every [`POLL`] so none outlives it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::io::AllowStdIo;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::PeerError;
use super::behaviour::{Behaviour, Flavour, Transport};
use super::codec::MessageCodec;
use super::payload::{self, Verdict};
use crate::framing::{FramingError, FramingStrategy, stop_and_wait};

/// How often blocking loops wake to check whether the server was stopped.
pub const POLL: Duration = Duration::from_millis(100);

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
        }
    }
}

/// Counters a server keeps while it runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted (TCP) or peers seen (UDP: datagrams are counted instead).
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
    /// Connections closed because of an error (garbage, oversized frame, reset).
    pub closed_with_error: AtomicU64,
    stalled: AtomicBool,
    errors: Mutex<Vec<String>>,
}

impl ServerStats {
    /// The last errors that closed connections, oldest first (at most 100).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn connection_failed(&self, peer: SocketAddr, error: &PeerError) {
        self.closed_with_error.fetch_add(1, Ordering::Relaxed);
        let line = format!("closed connection from {peer}: {error}");
        tracing::warn!("{line}");
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() == KEPT_ERRORS {
                errors.remove(0);
            }
            errors.push(line);
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
    /// [`PeerError::Bind`] when the address cannot be bound (e.g. the port is in use).
    pub fn start(config: ServerConfig) -> Result<Server, PeerError> {
        let listen = config.listen;
        let bind_error = |error| PeerError::Bind { addr: listen, error };
        let stats = Arc::new(ServerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let config = Arc::new(config);
        let mut tokio_tasks = Vec::new();
        let addr = match (config.transport, config.flavour) {
            (Transport::Tcp, Flavour::Tokio) => {
                let listener = TcpListener::bind(config.listen).map_err(bind_error)?;
                listener.set_nonblocking(true).map_err(bind_error)?;
                let addr = listener.local_addr().map_err(bind_error)?;
                let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
                let task = tokio::spawn(tokio_accept_loop(listener, config.clone(), stats.clone()));
                tokio_tasks.push(task.abort_handle());
                addr
            }
            (Transport::Tcp, flavour) => {
                let listener = TcpListener::bind(config.listen).map_err(bind_error)?;
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
/// frames from the read buffer and queueing replies in the write buffer.
struct Session {
    codec: MessageCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    expected_seq: u32,
}

impl Session {
    fn new(codec: MessageCodec) -> Self {
        Session {
            codec,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            expected_seq: 0,
        }
    }

    /// Handles every complete frame in the read buffer (every remaining byte at EOF).
    fn drain(&mut self, config: &ServerConfig, stats: &ServerStats, eof: bool) -> Result<(), FramingError> {
        loop {
            let frame = if eof {
                self.codec.decode_eof(&mut self.read_buf)?
            } else {
                self.codec.decode(&mut self.read_buf)?
            };
            let Some(frame) = frame else { return Ok(()) };
            if let Some(reply) = handle_message(frame, config, stats, &mut self.expected_seq) {
                self.codec.encode(&reply[..], &mut self.write_buf)?;
            }
        }
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
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (config, stats) = (config.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = tokio_connection(stream, &config, &stats).await {
                stats.connection_failed(peer, &e);
            }
        });
    }
}

async fn tokio_connection(
    mut stream: tokio::net::TcpStream,
    config: &ServerConfig,
    stats: &ServerStats,
) -> Result<(), PeerError> {
    let _ = stream.set_nodelay(true);
    let Some(codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        return serve_stop_and_wait(&mut stream, config, stats).await;
    };
    let mut session = Session::new(codec);
    if config.behaviour == Behaviour::Source {
        let mut sent = 0;
        while session.queue_source_batch(config, &mut sent)? {
            stream.write_all(&session.write_buf).await?;
            session.write_buf.clear();
        }
        return Ok(());
    }
    loop {
        let eof = stream.read_buf(&mut session.read_buf).await? == 0;
        session.drain(config, stats, eof)?;
        if !session.write_buf.is_empty() {
            stream.write_all(&session.write_buf).await?;
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

/// Serves one stop-and-wait connection over any async stream until the peer leaves.
async fn serve_stop_and_wait<S>(
    stream: &mut S,
    config: &ServerConfig,
    stats: &ServerStats,
) -> Result<(), PeerError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut expected_seq = 0;
    while let Some(message) = stop_and_wait::recv(stream, config.max_frame_len).await? {
        if let Some(reply) = handle_message(message, config, stats, &mut expected_seq) {
            stop_and_wait::send(stream, &reply).await?;
        }
    }
    Ok(())
}

fn blocking_accept_loop(
    listener: TcpListener,
    flavour: Flavour,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        // Wait for a client at most POLL, so a stop is noticed without a busy loop.
        let mut ready = [PollFd::new(&listener, PollFlags::IN)];
        let poll_timeout = Timespec { tv_sec: 0, tv_nsec: POLL.as_nanos() as i64 };
        if !matches!(poll(&mut ready, Some(&poll_timeout)), Ok(n) if n > 0) {
            continue;
        }
        let Ok((stream, peer)) = listener.accept() else { continue };
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

fn blocking_connection(
    mut stream: TcpStream,
    config: &ServerConfig,
    stats: &ServerStats,
    stop: &AtomicBool,
) -> Result<(), PeerError> {
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    let Some(codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        // The stop-and-wait helpers are async; AllowStdIo runs them over the blocking
        // socket without a runtime, so there is one implementation of the protocol.
        let mut stream = AllowStdIo::new(stream).compat();
        return futures_executor::block_on(serve_stop_and_wait(&mut stream, config, stats));
    };
    stream.set_read_timeout(Some(POLL))?;
    let mut session = Session::new(codec);
    if config.behaviour == Behaviour::Source {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && session.queue_source_batch(config, &mut sent)? {
            stream.write_all(&session.write_buf)?;
            session.write_buf.clear();
        }
        return Ok(());
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    while !stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e.into()),
        };
        session.read_buf.extend_from_slice(&chunk[..n]);
        session.drain(config, stats, n == 0)?;
        if !session.write_buf.is_empty() {
            stream.write_all(&session.write_buf)?;
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

/// Decodes one datagram's frames and returns the reply datagram, if any.
fn udp_reply(
    datagram: &[u8],
    config: &ServerConfig,
    stats: &ServerStats,
    expected_seq: &mut u32,
) -> Result<Option<BytesMut>, PeerError> {
    let Some(mut codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
        return Err(PeerError::Unsupported("stop-and-wait over UDP (it needs a stream)".into()));
    };
    let mut input = BytesMut::from(datagram);
    let mut reply = BytesMut::new();
    while let Some(frame) = codec.decode_eof(&mut input)? {
        if let Some(answer) = handle_message(frame, config, stats, expected_seq) {
            codec.encode(&answer[..], &mut reply)?;
        }
        if input.is_empty() {
            break;
        }
    }
    Ok((!reply.is_empty()).then_some(reply))
}

async fn tokio_udp_loop(socket: tokio::net::UdpSocket, config: Arc<ServerConfig>, stats: Arc<ServerStats>) {
    let mut buf = vec![0u8; 65_536];
    let mut expected_seq = 0;
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        match udp_reply(&buf[..n], &config, &stats, &mut expected_seq) {
            Ok(Some(reply)) => {
                let _ = socket.send_to(&reply, peer).await;
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
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
        match udp_reply(&buf[..n], &config, &stats, &mut expected_seq) {
            Ok(Some(reply)) => {
                let _ = socket.send_to(&reply, peer);
            }
            Ok(None) => {}
            Err(e) => stats.connection_failed(peer, &e),
        }
    }
}
