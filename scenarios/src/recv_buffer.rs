//! `recv-buffer`: how the read size and the socket buffer sizes shape TCP throughput.
//!
//! A client writes `bytes` bytes over loopback TCP; the server reads them with
//! `read(read_size)` until EOF and verifies every byte. `rcvbuf` and `sndbuf` optionally
//! set `SO_RCVBUF` (on the listener, so the accepted socket inherits it before the
//! handshake) and `SO_SNDBUF` (on the client). Swept across cases, the metrics draw the
//! curve: throughput and reads per MiB against read size and buffer size.
//!
//! With `link=veth` the transfer crosses a veth pair between two private namespaces, of
//! a given MTU and optionally a tbf `rate`: the payload throughput must then land within
//! 10% of the rate, and the client end's byte counters give the same figure a second
//! way. With `--peer-cmd` the receiving side runs in `socklab agent` on another host.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socklab_harness::check::Check;
use socklab_harness::link::{self, Link, LinkSpec, PeerPath};
use socklab_harness::metric::Better;
use socklab_harness::metrics::CpuTime;
use socklab_harness::net::{rmem_max, send_buffer, set_recv_buffer, set_send_buffer, tcp_maxseg, wmem_max};
use socklab_harness::params::{ParamError, ParamKind, ParamSpec};
use socklab_harness::peer::agent::{RemoteAgent, RoleObservation, RoleSpec};
use socklab_harness::peer::bulk::{BulkReceived, fill, receive_pattern};
use socklab_harness::report::{LinkRecord, MetricSpec, Unit};
use socklab_harness::scenario::{
    Cancel, CaseContext, CaseError, CaseOutcome, IoContext, Scenario, TableSpec,
};

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
    /// `loopback` or `veth`.
    pub link: String,
    /// `link=veth`: MTU, bytes.
    pub mtu: u64,
    /// `link=veth`: tbf rate (`100mbit`), or `none`.
    pub rate: String,
    /// `link=veth`: one-way delay, ms (unavailable: only 0).
    pub delay_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bytes: 16 << 20,
            read_size: 64 * 1024,
            write_size: 64 * 1024,
            rcvbuf: 0,
            sndbuf: 0,
            link: link::DEFAULT_LINK.into(),
            mtu: link::DEFAULT_MTU,
            rate: link::DEFAULT_RATE.into(),
            delay_ms: 0,
        }
    }
}

impl Params {
    fn link_spec(&self) -> Result<LinkSpec, String> {
        LinkSpec::parse(&self.link, self.mtu, &self.rate, self.delay_ms)
    }
}

fn invalid(reason: String) -> CaseError {
    CaseError::Params(ParamError::Invalid { scenario: RecvBuffer::NAME.to_string(), reason })
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
    link::LINK_PARAM,
    link::MTU_PARAM,
    link::RATE_PARAM,
    link::DELAY_PARAM,
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
    MetricSpec {
        name: "throughput_mbit_s",
        unit: Unit::MbitPerSec,
        better: Better::Higher,
        doc: "payload throughput in Mbit/s, as link rates are given (cases with a link rate)",
    },
    MetricSpec {
        name: "rate_share",
        unit: Unit::Percent,
        better: Better::Higher,
        doc: "payload throughput as a share of the link's rate (at most MSS/(MTU+14): 95.6% at MTU 1500)",
    },
    MetricSpec {
        name: "wire_mbit_s",
        unit: Unit::MbitPerSec,
        better: Better::Neither,
        doc: "link=veth: frames the client's end sent (its /proc/net/dev byte counter, headers included) per second, over the transfer",
    },
    MetricSpec {
        name: "mss",
        unit: Unit::Bytes,
        better: Better::Neither,
        doc: "payload bytes of a full segment on the connection (TCP_MAXSEG), from the client",
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

    const REMOTE_PEER: bool = true;

    fn validate(params: &Params) -> Result<(), String> {
        params.link_spec().map(|_| ())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        tokio::task::spawn_blocking(move || match ctx.peer.clone() {
            Some(agent) => experiment_with_agent(&params, &agent, &ctx.cancel),
            None => experiment(&params, &ctx.cancel),
        })
        .await
        .map_err(|e| CaseError::task("the transfer threads", e))?
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// How long the receiver waits without a byte before giving up.
const SILENCE: Duration = IO_TIMEOUT;

/// What a case measured at both ends.
#[derive(Default)]
pub struct Measured {
    server: BulkReceived,
    sndbuf_effective: usize,
    /// CPU time of both ends (this process, and the agent's when there is one).
    cpu: Duration,
    rmem_max: u64,
    wmem_max: u64,
    /// The link, when not plain loopback.
    link: Option<LinkRecord>,
    /// Bytes of frames the client's veth end sent during the transfer.
    wire_bytes: Option<u64>,
    mss: Option<u32>,
}

fn experiment(params: &Params, cancel: &Cancel) -> Result<Measured, CaseError> {
    let spec = params.link_spec().map_err(invalid)?;
    let link = Link::open(spec)?;
    let rcvbuf = params.rcvbuf as usize;
    // On the listener, so the window scale negotiated in the handshake fits it.
    let listener = link.tcp_listener(move |socket| {
        if rcvbuf > 0 {
            set_recv_buffer(socket, rcvbuf)?;
        }
        Ok(())
    })?;
    let addr = listener.local_addr().context("read the bound address")?;
    let client = link.tcp_client_socket()?;
    if params.sndbuf > 0 {
        set_send_buffer(&client, params.sndbuf as usize).context("set SO_SNDBUF on the client")?;
    }
    let counters_before = link.client_counters()?;
    let cpu_before = CpuTime::now();
    let started = Instant::now();
    client.connect(&addr.into()).context(format!("connect to {addr}"))?;
    let client: TcpStream = client.into();
    let (server, _) = listener.accept().context("accept the client")?;
    let (bytes, read_size) = (params.bytes, params.read_size as usize);
    let stop = cancel.clone();
    let reader = std::thread::Builder::new()
        .name("socklab-recv-buffer".into())
        .spawn(move || receive_pattern(server, bytes, read_size, started, SILENCE, &|| stop.is_cancelled()))
        .context("start the server thread")?;
    let (sndbuf_effective, mss) = send_pattern(client, params, cancel)?;
    let server = reader
        .join()
        .map_err(|_| CaseError::Task { task: "the server thread", what: "panicked".into() })??;
    let cpu = CpuTime::now().since(cpu_before).total();
    let wire_bytes = match (counters_before, link.client_counters()?) {
        (Some(before), Some(after)) => Some(after.since(&before).tx_bytes),
        _ => None,
    };
    let record = (!matches!(link, Link::Loopback)).then(|| LinkRecord { mss, ..link.record() });
    Ok(Measured {
        server,
        sndbuf_effective,
        cpu,
        rmem_max: rmem_max().context("read net.core.rmem_max")?,
        wmem_max: wmem_max().context("read net.core.wmem_max")?,
        link: record,
        wire_bytes,
        mss,
    })
}

/// Writes the pattern, `write_size` bytes per call, then shuts the sending side; returns
/// the effective `SO_SNDBUF` and `TCP_MAXSEG`.
fn send_pattern(
    mut client: TcpStream,
    params: &Params,
    cancel: &Cancel,
) -> Result<(usize, Option<u32>), CaseError> {
    client.set_write_timeout(Some(IO_TIMEOUT)).context("set a write timeout")?;
    let mut chunk = vec![0u8; params.write_size as usize];
    let mut offset = 0u64;
    while offset < params.bytes {
        cancel.check()?;
        let n = chunk.len().min((params.bytes - offset) as usize);
        fill(&mut chunk[..n], offset);
        client.write_all(&chunk[..n]).context(format!("write at byte {offset}"))?;
        offset += n as u64;
    }
    let mss = tcp_maxseg(&client).ok();
    client.shutdown(std::net::Shutdown::Write).context("shut down the client's sending side")?;
    Ok((send_buffer(&client).context("read SO_SNDBUF")?, mss))
}

/// The same transfer into `socklab agent`'s bulk sink on another host.
fn experiment_with_agent(
    params: &Params,
    agent: &Arc<RemoteAgent>,
    cancel: &Cancel,
) -> Result<Measured, CaseError> {
    params.link_spec().map_err(invalid)?;
    let role = agent.start_role(RoleSpec::BulkSink {
        read_size: params.read_size,
        rcvbuf: params.rcvbuf,
        expected_bytes: params.bytes,
    })?;
    let link = Link::Peer(PeerPath::toward(role.addr.ip()));
    let client = link.tcp_client_socket()?;
    if params.sndbuf > 0 {
        set_send_buffer(&client, params.sndbuf as usize).context("set SO_SNDBUF on the client")?;
    }
    let cpu_before = CpuTime::now();
    client.connect(&role.addr.into()).context(format!("connect to {}", role.addr))?;
    let (sndbuf_effective, mss) = send_pattern(client.into(), params, cancel)?;
    let observation = agent.stop_role(role.number, SILENCE * 2, cancel)?;
    let local_cpu = CpuTime::now().since(cpu_before).total();
    let RoleObservation::BulkSink {
        received,
        reads,
        max_read,
        first_mismatch,
        rcvbuf_effective,
        rmem_max,
        elapsed_us,
        cpu,
    } = observation
    else {
        return Err(CaseError::Protocol("the agent answered with another role's observations".into()));
    };
    let server = BulkReceived {
        received,
        reads,
        max_read: max_read as usize,
        first_mismatch,
        rcvbuf_effective: rcvbuf_effective as usize,
        elapsed: Duration::from_micros(elapsed_us),
    };
    let remote_cpu = Duration::from_secs_f64((cpu.user_ms + cpu.system_ms).max(0.0) / 1e3);
    Ok(Measured {
        server,
        sndbuf_effective,
        cpu: local_cpu + remote_cpu,
        rmem_max,
        wmem_max: wmem_max().context("read net.core.wmem_max")?,
        link: Some(LinkRecord { mss, ..link.record() }),
        wire_bytes: None,
        mss,
    })
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let s = &m.server;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
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
    if let Some(mss) = m.mss {
        outcome.metric("mss", f64::from(mss), Unit::Bytes);
    }
    let mbit = |bytes: u64| (bytes as f64 * 8.0 / secs / 1e6 * 10.0).round() / 10.0;
    if let Some(wire) = m.wire_bytes {
        outcome.metric("wire_mbit_s", mbit(wire), Unit::MbitPerSec);
    }
    // Judged against the rate the parameters asked for, so a case that sent nothing fails.
    if let Some(rate) = params.link_spec().ok().and_then(|spec| spec.rate()) {
        let share = link::rate_share_pct(s.received, s.elapsed, rate);
        outcome.key_metric("throughput_mbit_s", mbit(s.received), Unit::MbitPerSec).key_metric(
            "rate_share",
            (share * 10.0).round() / 10.0,
            Unit::Percent,
        );
        outcome.checks.push(link::rate_check(rate, s.received, m.wire_bytes, s.elapsed));
    }
    outcome.observations.link = m.link.clone();
    outcome
}
