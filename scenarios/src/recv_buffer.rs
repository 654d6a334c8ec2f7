//! `recv-buffer`: how the read size and the socket buffer sizes shape TCP throughput.
//!
//! A client writes `bytes` bytes over loopback TCP; the server reads them with
//! `read(read_size)` until EOF and verifies every byte. `rcvbuf` and `sndbuf` optionally
//! set `SO_RCVBUF` (on the listener, so the accepted socket inherits it before the
//! handshake) and `SO_SNDBUF` (on the client). Swept across cases, the metrics draw the
//! curve: throughput and reads per MiB against read size and buffer size.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use socklab_harness::check::Check;
use socklab_harness::metric::Better;
use socklab_harness::metrics::CpuTime;
use socklab_harness::net::{recv_buffer, rmem_max, send_buffer, set_recv_buffer, set_send_buffer, wmem_max};
use socklab_harness::params::{ParamKind, ParamSpec};
use socklab_harness::report::{MetricSpec, Unit};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario, TableSpec};

/// The scenario; see the module docs.
pub struct RecvBuffer;

/// Parameters of `recv-buffer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Bytes to transfer.
    pub bytes: u64,
    /// Buffer size of each server `read`, in bytes.
    pub read_size: u64,
    /// Buffer size of each client `write`, in bytes.
    pub write_size: u64,
    /// `SO_RCVBUF` for the server, in bytes; 0 leaves the kernel's autotuning on.
    pub rcvbuf: u64,
    /// `SO_SNDBUF` for the client, in bytes; 0 leaves the kernel's autotuning on.
    pub sndbuf: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { bytes: 16 << 20, read_size: 64 * 1024, write_size: 64 * 1024, rcvbuf: 0, sndbuf: 0 }
    }
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// A read or write blocked longer than this means a stuck peer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "bytes",
        kind: ParamKind::Integer { min: 1, max: 1 << 32 },
        unit: Some("bytes"),
        doc: "bytes to transfer",
    },
    ParamSpec {
        name: "read_size",
        kind: ParamKind::Integer { min: 1, max: 16 << 20 },
        unit: Some("bytes"),
        doc: "buffer size of each server read()",
    },
    ParamSpec {
        name: "write_size",
        kind: ParamKind::Integer { min: 1, max: 16 << 20 },
        unit: Some("bytes"),
        doc: "buffer size of each client write()",
    },
    ParamSpec {
        name: "rcvbuf",
        kind: ParamKind::Integer { min: 0, max: 256 << 20 },
        unit: Some("bytes"),
        doc: "SO_RCVBUF of the server (0: kernel default with autotuning)",
    },
    ParamSpec {
        name: "sndbuf",
        kind: ParamKind::Integer { min: 0, max: 256 << 20 },
        unit: Some("bytes"),
        doc: "SO_SNDBUF of the client (0: kernel default with autotuning)",
    },
];

const METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "throughput",
        unit: Unit::BytesPerSec,
        better: Better::Higher,
        doc: "bytes delivered per second of transfer",
    },
    MetricSpec {
        name: "throughput_mib_s",
        unit: Unit::MibPerSec,
        better: Better::Higher,
        doc: "the same in MiB/s",
    },
    MetricSpec {
        name: "reads",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "read() calls that returned data",
    },
    MetricSpec {
        name: "reads_per_mib",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "read() calls per MiB delivered (syscalls)",
    },
    MetricSpec {
        name: "bytes_per_read_mean",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "mean bytes a read returned",
    },
    MetricSpec {
        name: "bytes_per_read_max",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "most bytes one read returned",
    },
    MetricSpec {
        name: "cpu_s_per_gib",
        unit: Unit::Seconds,
        better: Better::Lower,
        doc: "process CPU time (user + system, both ends) per GiB transferred",
    },
    MetricSpec {
        name: "duration",
        unit: Unit::Millis,
        better: Better::Lower,
        doc: "from connect to the last byte read",
    },
    MetricSpec {
        name: "rcvbuf_effective",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "server SO_RCVBUF after the transfer",
    },
    MetricSpec {
        name: "sndbuf_effective",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "client SO_SNDBUF after the transfer",
    },
    MetricSpec {
        name: "rmem_max",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "net.core.rmem_max, the cap on SO_RCVBUF",
    },
    MetricSpec {
        name: "wmem_max",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "net.core.wmem_max, the cap on SO_SNDBUF",
    },
];

impl Scenario for RecvBuffer {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "recv-buffer";
    const SUMMARY: &'static str =
        "read size and SO_RCVBUF/SO_SNDBUF against TCP throughput, syscalls and CPU";
    const EXPLANATION: &'static str = "\
What it shows: a bulk TCP transfer over loopback of a fixed number of bytes, read with \
read(read_size) and verified byte for byte. Across cases the metrics draw a curve: with a \
1-byte read every byte costs a system call (reads_per_mib = 1,048,576) and throughput is a \
few MiB/s; at 16 KiB and above the per-call cost is spread over many bytes and throughput \
climbs towards memory speed, until a read can no longer be filled from what is queued \
(bytes_per_read_max shows how much a read actually got). Small socket buffers lower \
throughput further: the sender must stop whenever the receiver's window is full.

Why it happens: each read() is a system call with a fixed cost (a few hundred nanoseconds \
to a microsecond) on top of copying the bytes; the fewer bytes per call, the more the fixed \
cost dominates, which cpu_s_per_gib makes visible. The receive buffer bounds TCP's window, \
and so how much can be in flight. Linux doubles the value given to SO_RCVBUF/SO_SNDBUF \
after capping it at net.core.rmem_max/wmem_max (socket(7); the rmem_max, wmem_max and \
*_effective metrics show the values measured), and setting either turns off the kernel's \
automatic buffer tuning for that socket (tcp(7)), which with 0 here (the default) grows the \
buffers up to net.ipv4.tcp_rmem/tcp_wmem's maximum.

What fixes it: read in large chunks (16–64 KiB, or whatever a framing layer buffers), and \
leave the buffer sizes to autotuning unless a measurement shows otherwise; when setting \
them, read back the effective value.";
    const PARAMS: &'static [ParamSpec] = PARAMS;
    const METRICS: &'static [MetricSpec] = METRICS;
    const TABLE: Option<TableSpec> = Some(TableSpec {
        rows: "read_size",
        columns: "rcvbuf",
        cells: &["throughput_mib_s", "reads_per_mib", "cpu_s_per_gib"],
    });

    async fn run(params: Params, _ctx: CaseContext) -> Result<Measured, CaseError> {
        tokio::task::spawn_blocking(move || experiment(&params))
            .await
            .map_err(|e| CaseError::task("the transfer threads", e))?
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// Byte `i` of the transfer: a pattern with a long period, so a lost, repeated or
/// reordered chunk shows.
fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8 ^ ((i >> 12) % 253) as u8
}

fn fill(buf: &mut [u8], offset: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(offset + k as u64);
    }
}

/// What the server saw.
#[derive(Default)]
struct ServerSide {
    received: u64,
    reads: u64,
    max_read: usize,
    first_mismatch: Option<u64>,
    rcvbuf_effective: usize,
    elapsed_at_eof: Duration,
}

/// What a case measured at both ends.
#[derive(Default)]
pub struct Measured {
    server: ServerSide,
    sndbuf_effective: usize,
    cpu: Duration,
    rmem_max: u64,
    wmem_max: u64,
}

fn experiment(params: &Params) -> Result<Measured, CaseError> {
    let listener =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).context("create a TCP socket")?;
    if params.rcvbuf > 0 {
        // On the listener, so the window scale negotiated in the handshake fits it.
        set_recv_buffer(&listener, params.rcvbuf as usize).context("set SO_RCVBUF on the listener")?;
    }
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    listener.bind(&any.into()).context("bind 127.0.0.1:0")?;
    listener.listen(1).context("listen")?;
    let addr = listener
        .local_addr()
        .context("read the bound address")?
        .as_socket()
        .ok_or_else(|| CaseError::Protocol("the listener has no IP address".into()))?;
    let listener: std::net::TcpListener = listener.into();

    let client =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).context("create a TCP socket")?;
    if params.sndbuf > 0 {
        set_send_buffer(&client, params.sndbuf as usize).context("set SO_SNDBUF on the client")?;
    }
    let cpu_before = CpuTime::now();
    let started = Instant::now();
    client.connect(&addr.into()).context(format!("connect to {addr}"))?;
    let mut client: TcpStream = client.into();
    client.set_write_timeout(Some(IO_TIMEOUT)).context("set a write timeout")?;
    let (server, _) = listener.accept().context("accept the client")?;
    let (bytes, read_size) = (params.bytes, params.read_size as usize);
    let reader = std::thread::Builder::new()
        .name("socklab-recv-buffer".into())
        .spawn(move || serve(server, bytes, read_size, started))
        .context("start the server thread")?;

    let mut chunk = vec![0u8; params.write_size as usize];
    let mut offset = 0u64;
    while offset < params.bytes {
        let n = chunk.len().min((params.bytes - offset) as usize);
        fill(&mut chunk[..n], offset);
        client.write_all(&chunk[..n]).context(format!("write at byte {offset}"))?;
        offset += n as u64;
    }
    client.shutdown(std::net::Shutdown::Write).context("shut down the client's sending side")?;
    let server = reader
        .join()
        .map_err(|_| CaseError::Task { task: "the server thread", what: "panicked".into() })??;
    let cpu = CpuTime::now().since(cpu_before).total();
    let sndbuf_effective = send_buffer(&client).context("read SO_SNDBUF")?;
    Ok(Measured {
        server,
        sndbuf_effective,
        cpu,
        rmem_max: rmem_max().context("read net.core.rmem_max")?,
        wmem_max: wmem_max().context("read net.core.wmem_max")?,
    })
}

/// Reads until EOF, checking every byte against the pattern.
fn serve(
    mut stream: TcpStream,
    expected: u64,
    read_size: usize,
    started: Instant,
) -> Result<ServerSide, CaseError> {
    stream.set_read_timeout(Some(IO_TIMEOUT)).context("set a read timeout")?;
    let mut buf = vec![0u8; read_size];
    let (mut received, mut reads, mut max_read) = (0u64, 0u64, 0usize);
    let mut first_mismatch = None;
    // Every read returns at least one byte or EOF; more than `expected` bytes is an error.
    loop {
        let n = stream.read(&mut buf).context(format!("read at byte {received}"))?;
        if n == 0 {
            break;
        }
        if first_mismatch.is_none()
            && let Some(k) =
                buf[..n].iter().enumerate().position(|(k, b)| *b != pattern_byte(received + k as u64))
        {
            first_mismatch = Some(received + k as u64);
        }
        received += n as u64;
        reads += 1;
        max_read = max_read.max(n);
        if received > expected {
            return Err(CaseError::Protocol(format!(
                "received {received} bytes, more than the {expected} sent"
            )));
        }
    }
    let elapsed_at_eof = started.elapsed();
    let rcvbuf_effective = recv_buffer(&stream).context("read SO_RCVBUF")?;
    Ok(ServerSide { received, reads, max_read, first_mismatch, rcvbuf_effective, elapsed_at_eof })
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let s = &m.server;
    let secs = s.elapsed_at_eof.as_secs_f64().max(1e-9);
    let throughput = s.received as f64 / secs;
    let mib = (s.received as f64 / MIB).max(1e-12);
    let mut outcome = CaseOutcome::default();
    outcome
        .metric("throughput", throughput.round(), Unit::BytesPerSec)
        .key_metric("throughput_mib_s", (throughput / MIB * 10.0).round() / 10.0, Unit::MibPerSec)
        .metric("reads", s.reads as f64, Unit::Count)
        .key_metric("reads_per_mib", (s.reads as f64 / mib).round(), Unit::Count)
        .key_metric("bytes_per_read_mean", (s.received as f64 / s.reads.max(1) as f64).round(), Unit::Bytes)
        .metric("bytes_per_read_max", s.max_read as f64, Unit::Bytes)
        .key_metric(
            "cpu_s_per_gib",
            m.cpu.as_secs_f64() / (s.received as f64 / GIB).max(1e-12),
            Unit::Seconds,
        )
        .metric("duration", secs * 1e3, Unit::Millis)
        .metric("rcvbuf_effective", s.rcvbuf_effective as f64, Unit::Bytes)
        .metric("sndbuf_effective", m.sndbuf_effective as f64, Unit::Bytes)
        .metric("rmem_max", m.rmem_max as f64, Unit::Bytes)
        .metric("wmem_max", m.wmem_max as f64, Unit::Bytes);
    let intact = s.received == params.bytes && s.first_mismatch.is_none();
    let observed = match s.first_mismatch {
        Some(at) => format!("{} bytes; first wrong byte at {at}", s.received),
        None => format!("{} bytes, all as written", s.received),
    };
    outcome.checks.push(Check::new(
        "bytes_intact",
        format!("{} bytes, identical to what was written", params.bytes),
        observed,
        intact,
        "TCP delivers every byte in order whatever the read size and buffer sizes",
    ));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_does_not_repeat_within_a_mebibyte_chunk_boundary() {
        let a: Vec<u8> = (0..4096).map(pattern_byte).collect();
        let b: Vec<u8> = (251 * 4096..251 * 4096 + 4096).map(pattern_byte).collect();
        assert_ne!(a, b);
        let mut buf = [0u8; 8];
        fill(&mut buf, 10);
        assert_eq!(buf[0], pattern_byte(10));
    }
}
