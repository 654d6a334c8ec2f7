//! Client connections to the server under test: connecting with the socket options a
//! check needs, sending messages in a chunking while reading replies, sending one
//! message whole, and reading replies one at a time.
//!
//! Every wait is bounded by the reply timeout (the longest the server may stay silent
//! while something is due) and every loop by a byte or message count, so a server that
//! hangs, trickles or floods ends a conversation instead of holding it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socklab_harness::framing::MessageCodec;
use socklab_harness::impair::TcpRelay;
use socklab_harness::peer::Behaviour;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep, timeout};
use tokio_util::codec::Decoder;

use super::wire::{ACK, Chunking, MAX_REPLY_FRAME, SplitMix, Wire, decode, expected_reply};

/// After the last expected reply byte, how long the client waits for anything extra.
const LINGER: Duration = Duration::from_millis(100);
/// How often a waiting reader looks at the clock and at the writer.
const SLICE: Duration = Duration::from_millis(20);
/// Bytes beyond those expected after which a reply stream is cut off.
const EXTRA_CAP: usize = 1 << 20;

/// The server of a case, as the client talks to it.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Where clients connect: the server, or the relay in front of it.
    pub addr: SocketAddr,
    /// Where the server itself listens.
    pub server: SocketAddr,
    /// The impairment relay every client goes through (`impair`), if any.
    pub relay: Option<Arc<TcpRelay>>,
    /// Its framing.
    pub wire: Wire,
    /// What it should do with each message.
    pub behaviour: Behaviour,
    /// The longest it may stay silent while something is due.
    pub reply_timeout: Duration,
    /// The case clock every event is timed on.
    pub clock: Instant,
}

/// Socket options of a client connection; `None` leaves the kernel's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// SO_RCVBUF, bytes requested.
    pub rcvbuf: Option<u32>,
    /// SO_SNDBUF, bytes requested.
    pub sndbuf: Option<u32>,
    /// TCP_MAXSEG: the segment size the client announces.
    pub mss: Option<u32>,
}

impl Peer {
    /// Connects with `options`, TCP_NODELAY on (so paced writes leave as they are made).
    ///
    /// # Errors
    /// The connect error, or a timeout after the reply timeout.
    ///
    /// A source's client reads only what a check needs, so by default it takes small
    /// buffers (16 KiB SO_RCVBUF, a 1 KiB MSS, which keeps the server's send buffer small
    /// too): the server blocks after some 50 KiB instead of producing megabytes nobody
    /// reads.
    pub(crate) async fn connect(&self, mut options: Options) -> io::Result<TcpStream> {
        if self.behaviour == Behaviour::Source {
            options.rcvbuf = options.rcvbuf.or(Some(16 << 10));
            options.mss = options.mss.or(Some(1024));
        }
        let socket = if self.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(bytes) = options.rcvbuf {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(bytes) = options.sndbuf {
            socket.set_send_buffer_size(bytes)?;
        }
        if let Some(mss) = options.mss {
            socket2::SockRef::from(&socket).set_tcp_mss(mss)?;
        }
        let stream = timeout(self.reply_timeout, socket.connect(self.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Now on the case clock.
    pub(crate) fn now(&self) -> Duration {
        self.clock.elapsed()
    }
}

/// How a conversation ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum End {
    /// Everything expected arrived, and nothing more within a short linger.
    #[default]
    Complete,
    /// The server sent nothing for the reply timeout while something was due.
    Silent,
    /// The server closed the connection (a read returned 0).
    Closed,
    /// The server reset the connection.
    Reset,
    /// The server sent far more than expected; the client stopped reading.
    TooMuch,
    /// Stop-and-wait: the server refused the announced length (NAK).
    Refused,
    /// Anything else: a write that failed, an answer that is not the protocol's.
    Failed(String),
}

impl End {
    /// Why the replies stopped, for sentences: `the server closed the connection`.
    pub(crate) fn words(&self, reply_timeout: Duration) -> String {
        match self {
            End::Complete => "every reply arrived".into(),
            End::Silent => format!("the server went silent for {:.1} s", reply_timeout.as_secs_f64()),
            End::Closed => "the server closed the connection".into(),
            End::Reset => "the server reset the connection".into(),
            End::TooMuch => format!("the server sent over {} MiB more than expected", EXTRA_CAP >> 20),
            End::Refused => "the server refused the length (NAK)".into(),
            End::Failed(why) => why.clone(),
        }
    }

    fn from_error(e: &io::Error) -> End {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                End::Reset
            }
            _ => End::Failed(e.to_string()),
        }
    }
}

/// What came back on one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replies {
    /// Each reply frame's payload and when it was complete.
    pub frames: Vec<(Duration, Bytes)>,
    /// Bytes at the end that did not complete a frame.
    pub trailing: usize,
    /// Why the reply stream could not be decoded further, when it could not.
    pub error: Option<String>,
    /// Bytes read in all, framing included.
    pub bytes: usize,
    /// How the conversation ended.
    pub end: End,
}

/// One connection's conversation: what the client wrote (when, how many bytes), and
/// what came back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conversation {
    /// Each write: when its call was made, and its length.
    pub writes: Vec<(Duration, usize)>,
    /// For each message, when its first byte was written.
    pub message_at: Vec<Duration>,
    /// The replies.
    pub replies: Replies,
}

/// What a conversation sends: its messages, cut into writes by a chunking, with a pause
/// between paced writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Script<'a> {
    /// The messages (payloads), in order.
    pub messages: &'a [Bytes],
    /// Where the writes are cut.
    pub chunking: Chunking,
    /// The pause between paced writes.
    pub gap: Duration,
}

impl Script<'_> {
    /// The pause between writes: the gap when the chunking is paced, else none.
    fn pause(&self) -> Duration {
        if self.chunking.paced() { self.gap } else { Duration::ZERO }
    }
}

/// A conversation on a connection of its own: `script` sent, the replies read. A sink's
/// connection is then half-closed and its close awaited, so the server has read
/// everything (and its counters are final) before whatever comes next. With the
/// conversation, the client's port.
///
/// # Errors
/// `cannot connect: …` when the client could not connect.
pub(crate) async fn converse_alone(
    peer: &Peer,
    script: Script<'_>,
) -> Result<(Conversation, Option<u16>), String> {
    let mut stream = peer.connect(Options::default()).await.map_err(|e| format!("cannot connect: {e}"))?;
    let port = stream.local_addr().ok().map(|a| a.port());
    let conversation = converse(peer, &mut stream, script).await;
    if peer.behaviour == Behaviour::Sink {
        let _ = stream.shutdown().await;
        let mut byte = [0u8; 1];
        let _ = timeout(peer.reply_timeout, stream.read(&mut byte)).await;
    }
    Ok((conversation, port))
}

/// Sends `script` on `stream` and collects the replies a server of the peer's behaviour
/// owes.
pub(crate) async fn converse(peer: &Peer, stream: &mut TcpStream, script: Script<'_>) -> Conversation {
    if peer.wire.is_stop_and_wait() {
        return converse_stop_and_wait(peer, stream, script).await;
    }
    let Script { messages, chunking, .. } = script;
    let frames: Vec<Bytes> = messages.iter().map(|m| peer.wire.frame(m)).collect();
    let lens: Vec<usize> = messages.iter().map(Bytes::len).collect();
    let chunks = chunking.cut_stream(peer.wire, &frames, &lens);
    let expected: usize = messages
        .iter()
        .filter_map(|m| expected_reply(peer.behaviour, m))
        .map(|reply| peer.wire.frame(&reply).len())
        .sum();
    let (writes, reads, end) = write_and_read(peer, stream, &chunks, script.pause(), expected, None).await;
    // A message starts at the write holding its first byte.
    let mut message_at = Vec::with_capacity(frames.len());
    let mut frame_start = 0;
    for frame in &frames {
        let mut write_start = 0;
        if let Some(&(at, _)) = writes.iter().find(|(_, len)| {
            write_start += len;
            write_start > frame_start
        }) {
            message_at.push(at);
        }
        frame_start += frame.len();
    }
    let replies = replies_from_reads(peer.wire, &reads, end);
    Conversation { writes, message_at, replies }
}

/// Decodes the reads of a stream framing into reply frames, each timed by the read
/// that completed it.
pub(crate) fn replies_from_reads(wire: Wire, reads: &[(Duration, Bytes)], end: End) -> Replies {
    let bytes: Vec<Bytes> = reads.iter().map(|(_, b)| b.clone()).collect();
    let decoded = decode(wire, &bytes);
    Replies {
        frames: decoded.frames.into_iter().map(|(frame, read)| (reads[read].0, frame)).collect(),
        trailing: decoded.trailing,
        error: decoded.error,
        bytes: bytes.iter().map(Bytes::len).sum(),
        end,
    }
}

type Reads = Vec<(Duration, Bytes)>;

/// Writes `chunks` (a pause of `gap` between them) while reading, until `expected`
/// reply bytes came and nothing more for [`LINGER`], or the server closes, resets,
/// floods, or stays silent for the reply timeout (counted from the last write or read).
/// With `pace = Some((n, pause))` the reader is slow: it reads at most `n` bytes at a
/// time, after a pause.
pub(crate) async fn write_and_read(
    peer: &Peer,
    stream: &mut TcpStream,
    chunks: &[Bytes],
    gap: Duration,
    expected: usize,
    pace: Option<(usize, Duration)>,
) -> (Vec<(Duration, usize)>, Reads, End) {
    let (mut reader, mut writer) = stream.split();
    let done_writing = AtomicBool::new(false);
    let stop_writing = AtomicBool::new(false);
    let last_write_us = AtomicU64::new(peer.now().as_micros() as u64);
    let write_side = async {
        let mut writes = Vec::with_capacity(chunks.len());
        let mut failure = None;
        for (i, chunk) in chunks.iter().enumerate() {
            if stop_writing.load(Ordering::Relaxed) {
                break;
            }
            if i > 0 && !gap.is_zero() {
                sleep(gap).await;
            }
            let at = peer.now();
            // One application write; its progress is noted every 64 KiB, so a large
            // write to a slow server is not taken for silence.
            for piece in chunk.chunks(64 << 10) {
                match timeout(peer.reply_timeout, writer.write_all(piece)).await {
                    Ok(Ok(())) => last_write_us.store(peer.now().as_micros() as u64, Ordering::Relaxed),
                    Ok(Err(e)) => failure = Some(End::from_error(&e)),
                    Err(_) => {
                        failure = Some(End::Failed(format!(
                            "the server stopped reading: a write waited {:.1} s",
                            peer.reply_timeout.as_secs_f64()
                        )))
                    }
                }
                if failure.is_some() {
                    break;
                }
            }
            if failure.is_some() {
                break;
            }
            writes.push((at, chunk.len()));
        }
        done_writing.store(true, Ordering::Relaxed);
        (writes, failure)
    };
    let read_side = async {
        let mut reads = Vec::new();
        let mut total = 0usize;
        let mut last_read = peer.now();
        let (step, pause) = pace.unwrap_or((64 << 10, Duration::ZERO));
        let mut buf = vec![0u8; step.max(1)];
        let end = loop {
            if !pause.is_zero() {
                sleep(pause).await;
            }
            match timeout(SLICE, reader.read(&mut buf)).await {
                Ok(Ok(0)) => break End::Closed,
                Ok(Ok(n)) => {
                    last_read = peer.now();
                    total += n;
                    reads.push((last_read, Bytes::copy_from_slice(&buf[..n])));
                    if total > expected + EXTRA_CAP {
                        break End::TooMuch;
                    }
                }
                Ok(Err(e)) => break End::from_error(&e),
                Err(_) => {
                    let now = peer.now();
                    let last_write = Duration::from_micros(last_write_us.load(Ordering::Relaxed));
                    let written = done_writing.load(Ordering::Relaxed);
                    if written && total >= expected && now.saturating_sub(last_read.max(last_write)) >= LINGER
                    {
                        break End::Complete;
                    }
                    if now.saturating_sub(last_read.max(last_write)) >= peer.reply_timeout {
                        break End::Silent;
                    }
                }
            }
        };
        stop_writing.store(true, Ordering::Relaxed);
        (reads, end)
    };
    let ((writes, failure), (reads, end)) = tokio::join!(write_side, read_side);
    // A failed write explains a silence that followed it better than the silence does.
    let end = match (failure, end) {
        (Some(failure), End::Silent | End::Complete) => failure,
        (_, end) => end,
    };
    (writes, reads, end)
}

/// Stop-and-wait: per message, the header and then (after the server's ACK) the body,
/// each cut by `chunking`; then the reply, when one is owed.
async fn converse_stop_and_wait(peer: &Peer, stream: &mut TcpStream, script: Script<'_>) -> Conversation {
    let Script { messages, chunking, .. } = script;
    let mut rng = SplitMix(match chunking {
        Chunking::Random(seed) => seed,
        _ => 0,
    });
    let gap = script.pause();
    let mut conversation = Conversation::default();
    let mut frames = Vec::new();
    let mut bytes = 0;
    let end = 'messages: {
        for message in messages {
            let header = Bytes::copy_from_slice(&(message.len() as u32).to_be_bytes());
            conversation.message_at.push(peer.now());
            for (part, is_header) in [(&header, true), (message, false)] {
                for (i, chunk) in chunking.cut_part(part, is_header, &mut rng).iter().enumerate() {
                    if i > 0 && !gap.is_zero() {
                        sleep(gap).await;
                    }
                    conversation.writes.push((peer.now(), chunk.len()));
                    if let Err(end) = io_within(peer, stream.write_all(chunk)).await {
                        break 'messages end;
                    }
                }
                if is_header {
                    let mut answer = [0u8; 1];
                    match io_within(peer, stream.read_exact(&mut answer)).await {
                        Ok(_) if answer[0] == ACK => {}
                        Ok(_) if answer[0] == socklab_harness::framing::stop_and_wait::NAK => {
                            break 'messages End::Refused;
                        }
                        Ok(_) => {
                            break 'messages End::Failed(format!(
                                "the server answered a length with {:#04x}, not ACK (0x06) or NAK (0x15)",
                                answer[0]
                            ));
                        }
                        Err(end) => break 'messages end,
                    }
                }
            }
            if expected_reply(peer.behaviour, message).is_some() {
                match recv_stop_and_wait(peer, stream, None).await {
                    Ok(reply) => {
                        bytes += reply.len() + 4;
                        frames.push((peer.now(), reply));
                    }
                    Err(end) => break 'messages end,
                }
            }
        }
        End::Complete
    };
    conversation.replies = Replies { frames, trailing: 0, error: None, bytes, end };
    conversation
}

/// Receives one stop-and-wait message: the length, our ACK, the body. With `pace`, the
/// body is read `pace.0` bytes at a time with a pause of `pace.1` between reads.
pub(crate) async fn recv_stop_and_wait(
    peer: &Peer,
    stream: &mut TcpStream,
    pace: Option<(usize, Duration)>,
) -> Result<Bytes, End> {
    let mut header = [0u8; 4];
    io_within(peer, stream.read_exact(&mut header)).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_REPLY_FRAME {
        return Err(End::Failed(format!("the server announced a {len}-byte reply")));
    }
    io_within(peer, stream.write_all(&[ACK])).await?;
    let mut body = vec![0u8; len];
    match pace {
        None => {
            io_within(peer, stream.read_exact(&mut body)).await?;
        }
        Some((step, pause)) => {
            let mut got = 0;
            while got < len {
                sleep(pause).await;
                let end = (got + step.max(1)).min(len);
                match io_within(peer, stream.read(&mut body[got..end])).await? {
                    0 => return Err(End::Closed),
                    n => got += n,
                }
            }
        }
    }
    Ok(body.into())
}

/// Runs a read or write within the reply timeout, mapping EOF, reset and silence to an
/// [`End`].
pub(crate) async fn io_within<T>(peer: &Peer, io: impl Future<Output = io::Result<T>>) -> Result<T, End> {
    match timeout(peer.reply_timeout, io).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Err(End::Closed),
        Ok(Err(e)) => Err(End::from_error(&e)),
        Err(_) => Err(End::Silent),
    }
}

/// Sends one message whole: its frame in one write, or for stop-and-wait its header, the
/// server's ACK, its body.
pub(crate) async fn send_message(peer: &Peer, stream: &mut TcpStream, message: &Bytes) -> Result<(), End> {
    if !peer.wire.is_stop_and_wait() {
        return io_within(peer, stream.write_all(&peer.wire.frame(message))).await;
    }
    io_within(peer, stream.write_all(&(message.len() as u32).to_be_bytes())).await?;
    let mut answer = [0u8; 1];
    io_within(peer, stream.read_exact(&mut answer)).await?;
    match answer[0] {
        ACK => io_within(peer, stream.write_all(message)).await,
        socklab_harness::framing::stop_and_wait::NAK => Err(End::Refused),
        other => Err(End::Failed(format!("the server answered a length with {other:#04x}, not ACK or NAK"))),
    }
}

/// Reads reply frames one at a time off a connection, keeping what follows a frame for
/// the next.
pub(crate) struct FrameReader {
    codec: Option<MessageCodec>,
    buffer: BytesMut,
    chunk: Vec<u8>,
    raw: bool,
}

impl FrameReader {
    pub(crate) fn new(wire: Wire) -> Self {
        FrameReader {
            codec: wire.codec(),
            buffer: BytesMut::new(),
            chunk: vec![0; 64 << 10],
            raw: wire.is_raw(),
        }
    }

    /// The reply to one message, `len` payload bytes long: one frame, or for raw
    /// framing (no boundaries) reads until `len` bytes came. Waits at most the reply
    /// timeout for each read.
    pub(crate) async fn reply(
        &mut self,
        peer: &Peer,
        stream: &mut TcpStream,
        len: usize,
    ) -> Result<Bytes, End> {
        let first = self.next(peer, stream, peer.reply_timeout).await?;
        if !self.raw || first.len() >= len {
            return Ok(first);
        }
        let mut whole = BytesMut::from(&first[..]);
        // Each read adds at least one byte.
        while whole.len() < len {
            whole.extend_from_slice(&self.next(peer, stream, peer.reply_timeout).await?);
        }
        Ok(whole.freeze())
    }

    /// The next frame (for raw framing, the next read), waiting at most `wait` in all.
    pub(crate) async fn next(
        &mut self,
        peer: &Peer,
        stream: &mut TcpStream,
        wait: Duration,
    ) -> Result<Bytes, End> {
        let Some(codec) = &mut self.codec else {
            let peer = Peer { reply_timeout: wait, ..peer.clone() };
            return recv_stop_and_wait(&peer, stream, None).await;
        };
        let deadline = tokio::time::Instant::now() + wait;
        // Each pass reads at least one byte or ends; a frame is at most MAX_REPLY_FRAME.
        loop {
            if !self.raw || !self.buffer.is_empty() {
                match codec.decode(&mut self.buffer) {
                    Ok(Some(frame)) => return Ok(frame),
                    Ok(None) => {}
                    Err(e) => return Err(End::Failed(format!("a reply could not be decoded: {e}"))),
                }
            }
            match tokio::time::timeout_at(deadline, stream.read(&mut self.chunk)).await {
                Ok(Ok(0)) => return Err(End::Closed),
                Ok(Ok(n)) => self.buffer.extend_from_slice(&self.chunk[..n]),
                Ok(Err(e)) => return Err(End::from_error(&e)),
                Err(_) => return Err(End::Silent),
            }
        }
    }
}
