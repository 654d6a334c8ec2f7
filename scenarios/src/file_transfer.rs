//! `file-transfer`: the tutorials' final solution — a length-prefixed JSON header, then
//! the file — and the two mistakes that lose data on the way.
//!
//! The client sends `struct.pack('i', len(header))` (4 bytes, native byte order: little
//! endian on x86), the JSON header `{"file_name", "file_desc", "file_size"}`, then the
//! file's bytes; the server reads the header and then the body. The file is
//! `file_size` seeded pseudo-random bytes; both ends hash what they sent and received
//! (SHA-256), so the report says whether the received file matches.
//!
//! Clients: `sendall` (every byte, blocking), `sendfile` (`sendfile(2)` from a memory
//! file, no copy through user space), and `send-ignored`, which calls `send()` on a
//! non-blocking socket with a small `SO_SNDBUF` and ignores what it returns, losing
//! what the kernel did not take. Receivers: `exact` (reads until `file_size` bytes are
//! in) and `one-recv` (a single `recv(file_size)`, which returns only what is queued).

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use socket2::SockRef;
use socklab_harness::capture::{CaptureConfig, CaseCapture, CaseCaptureResult, stream_segments};
use socklab_harness::check::Check;
use socklab_harness::metrics::own_cpu;
use socklab_harness::params::ParamSpec;
use socklab_harness::report::{Direction, IoEvent, MetricSpec, StreamTrace, TraceExcerpt};
use socklab_harness::scenario::{Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::text::printable;

use crate::blocking::{Stop, WaitError, read_some, write_all};
use crate::experiment::{attach_capture, run_captured};

/// The scenario; see the module docs.
pub struct FileTransfer;

/// Largest file the scenario sends: 100 MiB.
pub const MAX_FILE: u64 = 100 << 20;
/// Transfers larger than this are not captured: the timeline shows 40 events a lane,
/// and the pcap would hold the whole file.
const CAPTURE_MAX: u64 = 4 << 20;
/// Events kept per lane of the trace.
const TRACE_EVENTS: usize = 40;
/// Longest header the receiver accepts (the length prefix is checked against it before
/// anything is allocated).
const MAX_HEADER: usize = 64 << 10;

socklab_harness::named_enum!(
    /// How the client sends.
    pub Client, "client", {
        /// `send()` with its return value ignored, non-blocking, small `SO_SNDBUF`.
        SendIgnored => "send-ignored",
        /// Every byte, blocking (`sendall` / `write_all`).
        Sendall => "sendall",
        /// `sendfile(2)` from a file descriptor.
        Sendfile => "sendfile",
    }
);

socklab_harness::named_enum!(
    /// How the server reads the body.
    pub Receiver, "receiver", {
        /// Until `file_size` bytes are in.
        Exact => "exact",
        /// One `recv(file_size)`.
        OneRecv => "one-recv",
    }
);

socklab_harness::params! {
    /// Parameters of `file-transfer`.
    pub struct Params {
        /// bytes in the file (1 KiB to 100 MiB is the range the tutorials use)
        file_size: u64 = 1 << 20 => ParamSpec::int(1, MAX_FILE).unit("bytes"),
        /// send-ignored: send() on a non-blocking socket, return value ignored; sendall: every byte;
        /// sendfile: sendfile(2)
        client: Client = Client::Sendall => ParamSpec::choice::<Client>(),
        /// exact: read until file_size bytes are in; one-recv: a single recv(file_size)
        receiver: Receiver = Receiver::Exact => ParamSpec::choice::<Receiver>(),
        /// SO_SNDBUF of the send-ignored client (Linux doubles it); 0 keeps the default
        sndbuf: u64 = 4096 => ParamSpec::int(0, 64 << 20).unit("bytes"),
        /// bytes the client reads from the file and sends per call
        chunk_size: u64 = 64 << 10 => ParamSpec::int(1, 16 << 20).unit("bytes"),
    }
}

socklab_harness::model::metrics! {
    /// bytes in the file
    file_size: Bytes, Neither;
    /// body bytes the receiver got
    bytes_received: Bytes, Neither;
    /// file bytes that never reached the receiver's file (file_size - bytes_received)
    bytes_lost: Bytes, Lower;
    /// bytes send() did not take and the send-ignored client skipped anyway
    bytes_not_sent: Bytes, Neither;
    /// 1 when the received file's SHA-256 is the file's
    digest_match: Count, Neither;
    /// body bytes received over the time from the header's first byte to the body's last
    throughput_mib_s: MibPerSec, Higher;
    /// that time
    transfer: Millis, Lower;
    /// CPU time of the sending thread while it sent (CLOCK_THREAD_CPUTIME_ID), the sendfile
    /// client's memory file excluded
    sender_cpu: Millis, Lower;
    /// CPU time of the receiving thread while it read and hashed (CLOCK_THREAD_CPUTIME_ID)
    receiver_cpu: Millis, Lower;
    /// send()/sendfile() calls that took at least one byte
    sends: Count, Neither;
    /// body recv() calls that returned data
    reads: Count, Neither;
}

impl Scenario for FileTransfer {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "file-transfer";
    const SUMMARY: &'static str = "a JSON header + body file transfer, verified by SHA-256: send() with its return ignored and one recv(file_size) lose data";
    const EXPLANATION: &'static str = "\
What you see: the client sends a 4-byte header length (struct.pack('i', n): native byte \
order, little endian on x86), a JSON header {\"file_name\", \"file_desc\", \"file_size\"} and \
the file; the server reads the header, then the body, and both hash what passed (SHA-256). \
With sendall or sendfile and a receiver that reads until file_size bytes are in, the file \
arrives whole (digest_match = 1), at loopback speed; sendfile costs the sender less CPU, \
since the bytes never pass through user space. The send-ignored client loses data: on a \
non-blocking socket with a small SO_SNDBUF, send() takes only what fits and returns that \
count (or fails with EAGAIN); the client moves on to the next chunk anyway, and \
bytes_not_sent of the file are never sent. The receiver gets every byte the kernel \
accepted, in order, and waits for the rest until the client closes. The one-recv receiver \
calls recv(file_size) once and saves what it got: only what was queued at that moment, at \
most the receive buffer (a connection starts with net.ipv4.tcp_rmem's middle value, \
131072 bytes by default), so a large file is cut short.

Why the kernel does it: send() on TCP copies what fits into the socket's send buffer and \
returns how many bytes that was; on a blocking socket it waits for room, on a non-blocking \
one it returns early (a short count, or EAGAIN when full). Only the bytes it took will be \
sent. recv(n) returns as soon as any data is queued, at most n bytes: n is a limit, not a \
promise. TCP is a byte stream; neither call knows about files or messages.

The fix, in code a learner would write: loop until every byte is sent and every byte is \
read, using the length the header announced.

    stream.write_all(&(header.len() as i32).to_ne_bytes())?;  // struct.pack('i', ...)
    stream.write_all(&header)?;
    std::io::copy(&mut file, &mut stream)?;                    // loops over short writes

    let mut body = vec![0; file_size];
    stream.read_exact(&mut body)?;                             // loops over short reads

In Python: sock.sendall(data) (or socket.sendfile(f)), and on the other side a loop of \
recv(min(65536, remaining)) until remaining is 0, treating an empty read as the peer \
leaving early. Check the digest before trusting the file.";
    const METRICS: &'static [MetricSpec] = METRICS;
    const SWEEP: &'static [(&'static str, &'static str)] =
        &[("client", "send-ignored,sendall,sendfile"), ("receiver", "exact,one-recv")];

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr().context("read the bound address")?;
        let clock = Instant::now();
        let capture = if params.file_size <= CAPTURE_MAX {
            CaseCapture::start(CaptureConfig::loopback(addr.port()), clock)
        } else {
            CaseCapture::Unavailable(format!(
                "not run for files over {} MiB (the timeline shows {TRACE_EVENTS} events a lane; the pcap would hold the whole file)",
                CAPTURE_MAX >> 20
            ))
        };
        let (p, cancel, seed) = (params.clone(), ctx.cancel.clone(), ctx.seed);
        let (measured, wire) =
            run_captured(capture, &ctx.case_id, move || experiment(listener, addr, &p, seed, clock, &cancel))
                .await?;
        Ok(Measured { wire: Some(wire), ..measured })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, measured)
    }
}

/// What a case measured.
#[derive(Default)]
pub struct Measured {
    sent: SendRecord,
    received: ReceiveRecord,
    /// SHA-256 of the whole file, as generated.
    file_digest: Option<[u8; 32]>,
    /// SHA-256 of the file's first `bytes received` bytes.
    prefix_digest: Option<[u8; 32]>,
    /// The receive buffer a connection starts with (tcp_rmem's middle value).
    rmem_default: u64,
    wire: Option<CaseCaptureResult>,
}

/// What the client did.
#[derive(Default)]
struct SendRecord {
    /// Body bytes the kernel took.
    accepted: u64,
    /// SHA-256 of the body bytes the kernel took, in order.
    accepted_digest: Option<[u8; 32]>,
    sends: u64,
    cpu: Duration,
    writes: Vec<(Duration, Vec<u8>, usize)>,
    write_count: usize,
    /// Why sending stopped early (the receiver closed).
    error: Option<String>,
}

/// What the server got.
#[derive(Default)]
struct ReceiveRecord {
    header: Option<Header>,
    body: u64,
    digest: Option<[u8; 32]>,
    reads: u64,
    first_byte_at: Option<Duration>,
    last_byte_at: Option<Duration>,
    cpu: Duration,
    events: Vec<(Duration, Vec<u8>, usize)>,
    event_count: usize,
}

/// The JSON header, as the tutorials name its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The file's name.
    pub file_name: String,
    /// A description.
    pub file_desc: String,
    /// The body's length in bytes.
    pub file_size: u64,
}

/// The bytes of the file: seeded, so the receiver can check any prefix of it.
struct FileBytes {
    state: u64,
}

impl FileBytes {
    fn new(seed: u64) -> Self {
        FileBytes { state: seed }
    }

    /// Fills `buf` with the next bytes (splitmix64, 8 bytes a step).
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// The 4-byte length and the JSON header, as one buffer.
pub fn encode_header(header: &Header) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = (json.len() as i32).to_ne_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

/// Reads the 4-byte length and the JSON header.
///
/// # Errors
/// A negative or oversized length, bad JSON, or a short stream.
fn read_header(
    stream: &mut TcpStream,
    deadline: Instant,
    stop: Stop<'_>,
    mut read: impl FnMut(&[u8]),
) -> Result<Header, CaseError> {
    let mut len = [0u8; 4];
    read_exactly(stream, &mut len, deadline, stop, "read the header length")?;
    read(&len);
    let len = i32::from_ne_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_HEADER)
        .ok_or_else(|| CaseError::Protocol(format!("header length {len} is outside 0..={MAX_HEADER}")))?;
    let mut json = vec![0u8; len];
    read_exactly(stream, &mut json, deadline, stop, "read the header")?;
    read(&json);
    serde_json::from_slice(&json)
        .map_err(|e| CaseError::Protocol(format!("the header is not the expected JSON: {e}")))
}

fn read_exactly(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    stop: Stop<'_>,
    what: &str,
) -> Result<(), CaseError> {
    let mut got = 0;
    // Bounded: each read returns at least one byte, or ends the loop.
    while got < buf.len() {
        let n = read_some(stream, &mut buf[got..], deadline, stop)
            .map_err(|e| e.into_case_error(what, Duration::from_secs(30)))?;
        if n == 0 {
            return Err(CaseError::Protocol(format!(
                "{what}: the peer closed after {got} of {} bytes",
                buf.len()
            )));
        }
        got += n;
    }
    Ok(())
}

fn experiment(
    listener: TcpListener,
    addr: SocketAddr,
    params: &Params,
    seed: u64,
    clock: Instant,
    cancel: &Cancel,
) -> Result<Measured, CaseError> {
    let rmem_default = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    // The file: a memory file every client reads from (no disk), hashed as it is made.
    let (file, file_digest) = memory_file(params, seed)?;
    let (done_tx, done_rx) = mpsc::channel();
    let receiver = {
        let (p, cancel) = (params.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("socklab-ft-receiver".into())
            .spawn(move || {
                let result = receive(&listener, &p, clock, Stop { cancel: &cancel, flag: None });
                let _ = done_tx.send(());
                result
            })
            .context("start the receiver thread")?
    };
    let sent = send(addr, params, &file, clock, cancel);
    // The receiver ends at EOF or when it has the whole file; bounded by its deadline.
    let _ = done_rx.recv_timeout(Duration::from_secs(120));
    let received = receiver
        .join()
        .map_err(|_| CaseError::Task { task: "the receiver thread", what: "panicked".into() })??;
    cancel.check()?;
    // The file's first bytes, as many as arrived: what the received bytes must be.
    let mut prefix = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    let end = received.body.min(params.file_size);
    while offset < end {
        let n = ((end - offset) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], offset).context("read the memory file")?;
        prefix.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(Measured {
        sent: sent?,
        received,
        file_digest: Some(file_digest),
        prefix_digest: Some(prefix.finalize().into()),
        rmem_default,
        wire: None,
    })
}

fn header_for(params: &Params) -> Header {
    Header {
        file_name: "socklab-file.bin".into(),
        file_desc: format!("{} seeded random bytes", params.file_size),
        file_size: params.file_size,
    }
}

/// The client: connect, header, body in the chosen way, close.
fn send(
    addr: SocketAddr,
    params: &Params,
    file: &File,
    clock: Instant,
    cancel: &Cancel,
) -> Result<SendRecord, CaseError> {
    let mut stream = TcpStream::connect(addr).context(format!("connect to {addr}"))?;
    let header = encode_header(&header_for(params));
    let cpu_before = own_cpu();
    let mut sending = Sending {
        record: SendRecord::default(),
        accepted: Sha256::new(),
        clock,
        stop: Stop { cancel, flag: None },
        deadline: Instant::now() + Duration::from_secs(60),
        chunk: vec![0u8; (params.chunk_size as usize).min(params.file_size as usize).max(1)],
    };
    let result = match params.client {
        Client::SendIgnored => sending.send_ignored(&mut stream, &header, file, params),
        Client::Sendall => sending.sendall(&mut stream, &header, file, params.file_size),
        Client::Sendfile => sending.sendfile(&mut stream, &header, file, params.file_size),
    };
    let Sending { mut record, accepted, .. } = sending;
    record.cpu = own_cpu().saturating_sub(cpu_before);
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Err(CaseError::Cancelled);
        }
        record.error = Some(e.to_string());
    }
    // Only the naive client needs to know which bytes went: the others sent the file.
    if params.client == Client::SendIgnored {
        record.accepted_digest = Some(accepted.finalize().into());
    }
    // close(): what the kernel took is still delivered.
    drop(stream);
    Ok(record)
}

impl SendRecord {
    /// Counts a write the kernel took `len` bytes of, keeping the first few for the trace.
    fn note(&mut self, at: Duration, bytes: &[u8], len: usize) {
        self.write_count += 1;
        if self.writes.len() < TRACE_EVENTS {
            self.writes.push((at, bytes[..bytes.len().min(8)].to_vec(), len));
        }
    }
}

/// The client while it sends: its record, and the clock, stop and deadline it keeps to.
/// Each way of sending ends with an I/O error; `Interrupted` when the case was cancelled.
struct Sending<'a> {
    record: SendRecord,
    /// SHA-256 of the body bytes the kernel took, in order.
    accepted: Sha256,
    clock: Instant,
    stop: Stop<'a>,
    deadline: Instant,
    /// The bytes of one send, read from the file.
    chunk: Vec<u8>,
}

impl Sending<'_> {
    fn check_cancel(&self) -> std::io::Result<()> {
        self.stop.cancel.check().map_err(|_| std::io::Error::from(std::io::ErrorKind::Interrupted))
    }

    /// The mistake: `sock.send(chunk)` on a non-blocking socket with a small send buffer,
    /// with the count it returns thrown away.
    fn send_ignored(
        &mut self,
        stream: &mut TcpStream,
        header: &[u8],
        file: &File,
        params: &Params,
    ) -> std::io::Result<()> {
        if params.sndbuf > 0 {
            SockRef::from(&*stream).set_send_buffer_size(params.sndbuf as usize)?;
        }
        stream.set_nonblocking(true)?;
        let at = self.clock.elapsed();
        let n = stream.write(header)?;
        if n != header.len() {
            return Err(std::io::Error::other(format!(
                "send() took {n} of the {}-byte header",
                header.len()
            )));
        }
        self.record.note(at, header, n);
        let mut offset = 0u64;
        while offset < params.file_size {
            self.check_cancel()?;
            let n = ((params.file_size - offset) as usize).min(self.chunk.len());
            file.read_exact_at(&mut self.chunk[..n], offset)?;
            let at = self.clock.elapsed();
            if let Ok(took) = stream.write(&self.chunk[..n])
                && took > 0
            {
                self.record.accepted += took as u64;
                self.record.sends += 1;
                self.accepted.update(&self.chunk[..took]);
                self.record.note(at, &self.chunk[..took], took);
            }
            offset += n as u64;
        }
        Ok(())
    }

    /// The header, every byte, on a blocking socket whose writes wait at most
    /// [`Cancel::CHECK_EVERY`] at a time.
    fn write_header(&mut self, stream: &mut TcpStream, header: &[u8]) -> std::io::Result<()> {
        stream.set_write_timeout(Some(Cancel::CHECK_EVERY))?;
        let at = self.clock.elapsed();
        write_all(stream, header, self.deadline, self.stop).map_err(io_error)?;
        self.record.note(at, header, header.len());
        Ok(())
    }

    /// Every byte, blocking: `sendall` / `write_all`, a chunk at a time.
    fn sendall(
        &mut self,
        stream: &mut TcpStream,
        header: &[u8],
        file: &File,
        size: u64,
    ) -> std::io::Result<()> {
        self.write_header(stream, header)?;
        let mut offset = 0u64;
        while offset < size {
            self.check_cancel()?;
            let n = ((size - offset) as usize).min(self.chunk.len());
            file.read_exact_at(&mut self.chunk[..n], offset)?;
            let at = self.clock.elapsed();
            write_all(stream, &self.chunk[..n], self.deadline, self.stop).map_err(io_error)?;
            self.record.accepted += n as u64;
            self.record.sends += 1;
            self.record.note(at, &self.chunk[..n], n);
            offset += n as u64;
        }
        Ok(())
    }

    /// `sendfile(2)` from the memory file: the bytes never pass through user space.
    fn sendfile(
        &mut self,
        stream: &mut TcpStream,
        header: &[u8],
        file: &File,
        size: u64,
    ) -> std::io::Result<()> {
        self.write_header(stream, header)?;
        let mut file_offset = 0u64;
        // Bounded: each call sends at least one byte or ends the loop.
        while file_offset < size {
            self.check_cancel()?;
            let want = ((size - file_offset) as usize).min(self.chunk.len());
            let at = self.clock.elapsed();
            if Instant::now() >= self.deadline {
                return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
            }
            // SO_SNDTIMEO bounds sendfile() too: EAGAIN after CHECK_EVERY, retried.
            let n = match rustix::fs::sendfile(stream.as_fd(), file.as_fd(), Some(&mut file_offset), want) {
                Ok(n) => n,
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break;
            }
            self.record.accepted += n as u64;
            self.record.sends += 1;
            self.record.note(at, &[], n);
        }
        Ok(())
    }
}

/// A bounded wait's end as the I/O error the sending loops end with.
fn io_error(e: WaitError) -> std::io::Error {
    match e {
        WaitError::Io(e) => e,
        WaitError::Stopped => std::io::Error::from(std::io::ErrorKind::Interrupted),
        WaitError::Deadline => std::io::Error::from(std::io::ErrorKind::TimedOut),
    }
}

/// A memory file (`memfd_create`) holding the file's bytes, so no client reads a disk,
/// and the file's SHA-256.
fn memory_file(params: &Params, seed: u64) -> Result<(File, [u8; 32]), CaseError> {
    let fd = rustix::fs::memfd_create("socklab-file-transfer", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| CaseError::Io { context: "memfd_create".into(), error: e.into() })?;
    let mut file = File::from(fd);
    let mut digest = Sha256::new();
    let mut bytes = FileBytes::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = params.file_size;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        bytes.fill(&mut buf[..n]);
        digest.update(&buf[..n]);
        file.write_all(&buf[..n]).context("fill the memory file")?;
        left -= n as u64;
    }
    Ok((file, digest.finalize().into()))
}

/// The server: header, then the body as `receiver` says, hashing it.
fn receive(
    listener: &TcpListener,
    params: &Params,
    clock: Instant,
    stop: Stop<'_>,
) -> Result<ReceiveRecord, CaseError> {
    let (mut stream, _) = listener.accept().context("accept the client")?;
    stream.set_read_timeout(Some(Cancel::CHECK_EVERY)).context("set a read timeout")?;
    let cpu_before = own_cpu();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut record = ReceiveRecord::default();
    let note = |record: &mut ReceiveRecord, at: Duration, data: &[u8]| {
        record.event_count += 1;
        if record.events.len() < TRACE_EVENTS {
            record.events.push((at, data[..data.len().min(8)].to_vec(), data.len()));
        }
    };
    let mut header_reads = Vec::new();
    let header =
        read_header(&mut stream, deadline, stop, |data| header_reads.push((clock.elapsed(), data.to_vec())))?;
    for (at, data) in &header_reads {
        note(&mut record, *at, data);
    }
    record.first_byte_at = header_reads.first().map(|(at, _)| *at);
    let size = header.file_size.min(MAX_FILE);
    record.header = Some(header);
    let mut digest = Sha256::new();
    let mut take = |record: &mut ReceiveRecord, at: Duration, data: &[u8]| {
        record.body += data.len() as u64;
        record.reads += 1;
        record.last_byte_at = Some(at);
        digest.update(data);
        note(record, at, data);
    };
    match params.receiver {
        Receiver::Exact => {
            let mut buf = vec![0u8; 256 << 10];
            // Bounded: each read returns at least one byte, or ends the loop.
            while record.body < size {
                let want = ((size - record.body) as usize).min(buf.len());
                match read_some(&mut stream, &mut buf[..want], deadline, stop) {
                    Ok(0) => break,
                    Ok(n) => take(&mut record, clock.elapsed(), &buf[..n]),
                    Err(e) => return Err(e.into_case_error("read the body", Duration::from_secs(60))),
                }
            }
        }
        Receiver::OneRecv => {
            // The mistake: `data = conn.recv(file_size)`, once.
            let mut buf = vec![0u8; size as usize];
            match read_some(&mut stream, &mut buf, deadline, stop) {
                Ok(n) if n > 0 => take(&mut record, clock.elapsed(), &buf[..n]),
                Ok(_) => {}
                Err(e) => return Err(e.into_case_error("read the body", Duration::from_secs(60))),
            }
        }
    }
    record.digest = Some(digest.finalize().into());
    record.cpu = own_cpu().saturating_sub(cpu_before);
    Ok(record)
}

fn outcome(params: &Params, m: Measured) -> CaseOutcome {
    let mut outcome = CaseOutcome::default();
    let (s, r) = (&m.sent, &m.received);
    let intact = r.body == params.file_size && r.digest.is_some() && r.digest == m.file_digest;
    outcome
        .metric(metric::file_size, params.file_size as f64)
        .key_metric(metric::bytes_received, r.body as f64)
        .key_metric(metric::bytes_lost, params.file_size.saturating_sub(r.body) as f64)
        .key_metric(metric::digest_match, if intact { 1.0 } else { 0.0 })
        .metric(metric::sends, s.sends as f64)
        .metric(metric::reads, r.reads as f64)
        .metric(metric::sender_cpu, s.cpu.as_secs_f64() * 1e3)
        .metric(metric::receiver_cpu, r.cpu.as_secs_f64() * 1e3);
    if params.client == Client::SendIgnored {
        outcome.key_metric(metric::bytes_not_sent, params.file_size.saturating_sub(s.accepted) as f64);
    }
    if let (Some(first), Some(last)) = (r.first_byte_at, r.last_byte_at) {
        let took = last.saturating_sub(first).as_secs_f64();
        outcome.metric(metric::transfer, took * 1e3);
        if took > 0.0 {
            outcome.key_metric(metric::throughput_mib_s, r.body as f64 / took / f64::from(1 << 20));
        }
    }

    outcome.checks.push(header_check(params, r));
    outcome.checks.push(match (params.client, params.receiver) {
        (Client::Sendall | Client::Sendfile, Receiver::Exact) => Check::new(
            "file_intact",
            format!("{} bytes, SHA-256 equal to the file's", params.file_size),
            format!("{} bytes, SHA-256 {}", r.body, if intact { "equal" } else { "different" }),
            intact,
            "every byte sent and every byte read: the file arrives whole",
        ),
        (Client::SendIgnored, Receiver::Exact) => {
            let same = r.digest.is_some() && r.digest == s.accepted_digest;
            Check::new(
                "loss_is_what_send_dropped",
                "the receiver gets exactly the bytes send() took, in order; the rest of the file is lost",
                format!(
                    "send() took {} of {} bytes ({} skipped); received {}, SHA-256 {} the bytes send() took",
                    s.accepted,
                    params.file_size,
                    params.file_size.saturating_sub(s.accepted),
                    r.body,
                    if same { "equal to" } else { "different from" }
                ),
                s.sends > 0 && r.body == s.accepted && same,
                "TCP delivers every byte the kernel accepted; the bytes send() did not take were never sent",
            )
        }
        (client, Receiver::OneRecv) => one_recv_check(params, &m, client),
    });
    outcome.observations.stream = Some(trace(s, r));
    if let Some(wire) = m.wire {
        add_wire_layer(&mut outcome, wire);
    }
    outcome
}

fn header_check(params: &Params, r: &ReceiveRecord) -> Check {
    let expected = format!("a header with file_size {} and a file_name", params.file_size);
    let Some(header) = &r.header else {
        return Check::nothing_to_judge("header_parsed", expected, "no header was read");
    };
    Check::new(
        "header_parsed",
        expected,
        format!("file_name {:?}, file_size {}", header.file_name, header.file_size),
        header.file_size == params.file_size && !header.file_name.is_empty(),
        "the 4-byte length tells the reader where the JSON ends and the body begins",
    )
}

/// One `recv(file_size)` returns what was queued: the file's first bytes, and fewer
/// than all of them when the file is larger than the buffer a connection starts with.
fn one_recv_check(params: &Params, m: &Measured, client: Client) -> Check {
    let r = &m.received;
    let must_be_short = params.file_size > m.rmem_default;
    let expected = if must_be_short {
        format!(
            "fewer than {} bytes: one recv() returns at most what is queued, within the {} bytes a connection's receive buffer starts with (tcp_rmem)",
            params.file_size, m.rmem_default
        )
    } else {
        format!("at most {} bytes, the file's first", params.file_size)
    };
    if r.reads == 0 {
        return Check::nothing_to_judge("one_recv_short", expected, "the one recv() returned nothing");
    }
    // Sent in order from the file's start (sendall, sendfile): the bytes are its prefix.
    let prefix = match client {
        Client::SendIgnored => true,
        Client::Sendall | Client::Sendfile => r.digest.is_some() && r.digest == m.prefix_digest,
    };
    Check::new(
        "one_recv_short",
        expected,
        format!(
            "recv({}) returned {} bytes{}",
            params.file_size,
            r.body,
            if prefix { "" } else { ", not the file's first bytes" }
        ),
        prefix && r.body <= params.file_size && (!must_be_short || r.body < params.file_size),
        "recv(n) returns as soon as any data is queued: n is a limit, not a promise",
    )
}

/// Client writes and server reads, the first few dozen of each, as a stream.
fn trace(s: &SendRecord, r: &ReceiveRecord) -> StreamTrace {
    let event = |(at, bytes, len): &(Duration, Vec<u8>, usize)| IoEvent {
        at_us: at.as_secs_f64() * 1e6,
        len: *len,
        text: if bytes.is_empty() { String::new() } else { printable(bytes) },
    };
    let writes: Vec<IoEvent> = s.writes.iter().map(event).collect();
    let reads: Vec<IoEvent> = r.events.iter().map(event).collect();
    let excerpt = TraceExcerpt::first(writes.len(), s.write_count, "writes")
        .or_else(|| TraceExcerpt::first(reads.len(), r.event_count, "reads"));
    StreamTrace { excerpt, ..StreamTrace::new(writes, reads) }
}

fn add_wire_layer(outcome: &mut CaseOutcome, wire: CaseCaptureResult) {
    let (Some(packets), Some(stream)) = (attach_capture(outcome, wire), outcome.observations.stream.as_mut())
    else {
        return;
    };
    let mut wire = stream_segments(&packets, Direction::ClientToServer, None, 0);
    // Keep the segments that carry the bytes the trace's writes hold.
    let shown: usize = stream.writes.iter().map(|w| w.len).sum();
    let mut covered = 0;
    wire.segments.retain(|seg| {
        let keep = covered < shown;
        covered += seg.len;
        keep
    });
    wire.retransmissions.retain(|r| r.start < shown);
    stream.join_segments(wire.segments, wire.retransmissions);
}
