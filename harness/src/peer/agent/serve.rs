//! The agent itself: reads requests from its input, one line each, answers each with one
//! reply line, and runs the roles they ask for on a runtime of its own.
//!
//! The loop is written against `BufRead` and `Write`, so tests drive it with bytes in
//! memory exactly as `socklab agent --stdio` drives it with its stdin and stdout. Every
//! line is parsed in three steps, each with its own error code: JSON at all
//! (`malformed`), a `type` the protocol has (`unknown_type`), then exactly the fields of
//! that type (`bad_request`). A refused line changes nothing and the agent reads on.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::input::Input;
use super::lines::LineEvent;
use super::protocol::{
    CpuRecord, DEFAULT_MAX_LINE, ErrorCode, HostInfo, MAX_READER_BYTES, MAX_ROLES, MAX_WAIT_MS,
    PROTOCOL_VERSION, REQUEST_TYPES, ReadRecord, Reply, Request, RoleObservation, RoleSpec,
    WorkloadObservation, WorkloadSpec,
};
use crate::framing::FramingStrategy;
use crate::metrics::CpuTime;
use crate::peer::bulk::receive_pattern;
use crate::peer::reader::{ReaderConfig, read_one_connection};
use crate::peer::{Behaviour, Flavour, Mode, Server, ServerConfig, Workload, run_workload};

/// The socklab version both ends compare.
pub const SOCKLAB_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A bulk sink gives up after this long without a byte.
const BULK_SILENCE: Duration = Duration::from_secs(10);
/// How long the agent's runtime has to shut down when the agent ends.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

/// How the agent runs. `Default`: lines up to 1 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentConfig {
    /// Longest request line, in bytes.
    pub max_line: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { max_line: DEFAULT_MAX_LINE }
    }
}

/// How the agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// Its input ended at a line boundary, or it was told `bye`: exit 0.
    Finished,
    /// Its input ended in the middle of a line: exit 1.
    Truncated,
    /// The runner's versions differ: exit 2.
    VersionMismatch,
    /// Its output or input failed (the runner is gone), or it could not start: exit 1.
    Failed(String),
}

impl AgentExit {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            AgentExit::Finished => 0,
            AgentExit::Truncated | AgentExit::Failed(_) => 1,
            AgentExit::VersionMismatch => 2,
        }
    }
}

/// This host, as the agent reports it in `hello`.
pub fn this_host() -> HostInfo {
    let addresses = crate::host::interface_addresses()
        .into_iter()
        .filter(|a| !a.ip.is_loopback() && !is_link_local(a.ip))
        .map(|a| format!("{}/{}", a.ip, a.prefix))
        .collect();
    let ssh_server_ip = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| v.split_whitespace().nth(2).and_then(|ip| ip.parse().ok()));
    HostInfo {
        hostname: crate::host::hostname(),
        kernel: crate::host::kernel_release(),
        cpu_count: crate::host::cpu_count(),
        addresses,
        ssh_server_ip,
        netns: crate::host::netns_id(),
    }
}

fn is_link_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Serves requests from `input` until it ends, `bye`, or a version mismatch. The input
/// is read on a thread of its own ([`Input`]): when it ends while a `stop` or a workload
/// is at work, the work is abandoned and the agent ends at once (the runner is gone).
pub fn run_agent(
    input: impl BufRead + Send + 'static,
    mut output: impl Write,
    config: AgentConfig,
) -> AgentExit {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("socklab-agent")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let message = format!("cannot start the agent's runtime: {e}");
            let _ = send(&mut output, &Reply::error(None, ErrorCode::Failed, &message));
            return AgentExit::Failed(message);
        }
    };
    let mut input = match Input::start(input, config.max_line) {
        Ok(input) => input,
        Err(e) => {
            let message = format!("cannot start reading the input: {e}");
            let _ = send(&mut output, &Reply::error(None, ErrorCode::Failed, &message));
            return AgentExit::Failed(message);
        }
    };
    let mut agent =
        Agent { runtime, roles: BTreeMap::new(), next_role: 1, epoch: Instant::now(), greeted: false };
    let exit = loop {
        let event = match input.next_event() {
            Ok(event) => event,
            Err(e) => break AgentExit::Failed(format!("read a request: {e}")),
        };
        let (reply, then) = match event {
            LineEvent::Eof => break AgentExit::Finished,
            LineEvent::Truncated { bytes } => (
                Reply::error(
                    None,
                    ErrorCode::Truncated,
                    format!(
                        "the input ended in the middle of a message ({bytes} bytes without a newline); stopping"
                    ),
                ),
                Then::Exit(AgentExit::Truncated),
            ),
            LineEvent::TooLong { bytes } => (
                Reply::error(
                    None,
                    ErrorCode::LineTooLong,
                    format!(
                        "a line of {bytes} bytes is over the limit of {} bytes (--max-line); dropped",
                        config.max_line
                    ),
                ),
                Then::Continue,
            ),
            LineEvent::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            LineEvent::Line(line) => agent.handle(&line, &mut input),
        };
        if let Err(e) = send(&mut output, &reply) {
            break AgentExit::Failed(format!("write a reply: {e}"));
        }
        if let Then::Exit(exit) = then {
            break exit;
        }
    };
    agent.stop_all();
    // A workload's blocking thread runs to its own deadline (up to a minute) once its
    // future is dropped; the agent does not wait for it.
    agent.runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    exit
}

/// How the agent ends when its input ended while a request was at work.
fn exit_of(end: std::io::Result<LineEvent>) -> AgentExit {
    match end {
        Ok(LineEvent::Truncated { .. }) => AgentExit::Truncated,
        Ok(_) => AgentExit::Finished,
        Err(e) => AgentExit::Failed(format!("read a request: {e}")),
    }
}

/// The reply (nobody reads it, most likely) and the end, for a request whose work was
/// abandoned because the input ended.
fn input_ended(id: u64, what: &str, input: &mut Input) -> (Reply, Then) {
    let reply = Reply::error(Some(id), ErrorCode::Failed, format!("the input ended during {what}; stopped"));
    (reply, Then::Exit(exit_of(input.end())))
}

fn send(output: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    output.write_all(&line)?;
    output.flush()
}

/// What the loop does after a reply.
enum Then {
    Continue,
    Exit(AgentExit),
}

/// A role the agent runs.
struct RunningRole {
    /// Raised to make a blocking role give up.
    stop: Arc<AtomicBool>,
    /// Roles that finish on their own (readers, sinks).
    task: Option<JoinHandle<Result<RoleObservation, String>>>,
    /// Reference servers, which run until stopped.
    server: Option<Server>,
    cpu_before: CpuTime,
}

struct Agent {
    runtime: Runtime,
    roles: BTreeMap<u32, RunningRole>,
    next_role: u32,
    /// The agent's clock: every time it reports is µs since this.
    epoch: Instant,
    greeted: bool,
}

impl Agent {
    fn handle(&mut self, line: &[u8], input: &mut Input) -> (Reply, Then) {
        let reply = |r| (r, Then::Continue);
        let Ok(text) = std::str::from_utf8(line) else {
            return reply(Reply::error(
                None,
                ErrorCode::Malformed,
                "not UTF-8 text: every message is a line of JSON",
            ));
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => return reply(Reply::error(None, ErrorCode::Malformed, format!("not JSON: {e}"))),
        };
        let id = value.get("id").and_then(Value::as_u64);
        let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_string) else {
            return reply(Reply::error(
                id,
                ErrorCode::Malformed,
                "a message is a JSON object with a string \"type\"",
            ));
        };
        if !REQUEST_TYPES.contains(&kind.as_str()) {
            let shown: String = kind.chars().take(40).collect();
            return reply(Reply::error(
                id,
                ErrorCode::UnknownType,
                format!(
                    "unknown message type `{shown}`; the agent knows {} (it runs no commands)",
                    REQUEST_TYPES.join(", ")
                ),
            ));
        }
        let request: Request = match serde_json::from_value(value) {
            Ok(request) => request,
            Err(e) => {
                return reply(Reply::error(id, ErrorCode::BadRequest, format!("bad `{kind}` message: {e}")));
            }
        };
        match request {
            Request::Hello { protocol, socklab_version } => self.hello(protocol, &socklab_version),
            _ if !self.greeted => reply(Reply::error(
                id,
                ErrorCode::HelloFirst,
                "send hello first: the versions are compared before anything runs",
            )),
            Request::Start { id, role } => reply(self.start(id, role)),
            Request::Workload { id, addr, workload } => self.workload(id, addr, &workload, input),
            Request::Stop { id, role, wait_ms } => self.stop(id, role, wait_ms, input),
            Request::Clock { id } => {
                reply(Reply::Clock { id, now_us: self.epoch.elapsed().as_micros() as u64 })
            }
            Request::Bye { id } => {
                self.stop_all();
                (Reply::Bye { id }, Then::Exit(AgentExit::Finished))
            }
        }
    }

    fn hello(&mut self, protocol: u32, socklab_version: &str) -> (Reply, Then) {
        if protocol != PROTOCOL_VERSION || socklab_version != SOCKLAB_VERSION {
            let message = format!(
                "version skew: the agent is socklab {SOCKLAB_VERSION} (protocol {PROTOCOL_VERSION}), the runner socklab \
                 {socklab_version} (protocol {protocol}); install the same socklab on both hosts"
            );
            return (
                Reply::error(None, ErrorCode::VersionMismatch, message),
                Then::Exit(AgentExit::VersionMismatch),
            );
        }
        self.greeted = true;
        let reply = Reply::Hello {
            protocol: PROTOCOL_VERSION,
            socklab_version: SOCKLAB_VERSION.into(),
            host: this_host(),
        };
        (reply, Then::Continue)
    }

    fn start(&mut self, id: u64, role: RoleSpec) -> Reply {
        if self.roles.len() >= MAX_ROLES {
            return Reply::error(
                Some(id),
                ErrorCode::TooManyRoles,
                format!("{MAX_ROLES} roles are running; stop one first"),
            );
        }
        if let Err(reason) = check_role(&role) {
            return Reply::error(Some(id), ErrorCode::BadRequest, reason);
        }
        match self.spawn_role(role) {
            Ok((addr, running)) => {
                let number = self.next_role;
                self.next_role += 1;
                self.roles.insert(number, running);
                Reply::Started { id, role: number, addr }
            }
            Err(reason) => Reply::error(Some(id), ErrorCode::Failed, reason),
        }
    }

    fn spawn_role(&mut self, role: RoleSpec) -> Result<(SocketAddr, RunningRole), String> {
        let cpu_before = CpuTime::now();
        let stop = Arc::new(AtomicBool::new(false));
        let any: SocketAddr = ([0, 0, 0, 0], 0).into();
        let _entered = self.runtime.enter();
        match role {
            RoleSpec::StreamReader { read_size, read_delay_ms, warm_round_trips, max_bytes } => {
                let listener = tokio_listener(bind(any, 0)?)?;
                let addr = listener.local_addr().map_err(|e| format!("read the bound address: {e}"))?;
                let config = ReaderConfig {
                    read_size: read_size as usize,
                    read_delay: Duration::from_millis(read_delay_ms),
                    warm_round_trips: warm_round_trips as usize,
                    max_bytes: max_bytes as usize,
                };
                let epoch = self.epoch;
                let task = self.runtime.spawn(async move {
                    let reads =
                        read_one_connection(listener, config, epoch).await.map_err(|e| e.to_string())?;
                    Ok(RoleObservation::StreamReader {
                        reads: reads
                            .reads
                            .iter()
                            .map(|r| ReadRecord::new(r.at.as_micros() as u64, &r.bytes))
                            .collect(),
                        queued_at_first_read: reads.queued_at_first_read as u64,
                        peer: reads.peer.to_string(),
                        cpu: CpuRecord::default(),
                    })
                });
                Ok((addr, RunningRole { stop, task: Some(task), server: None, cpu_before }))
            }
            RoleSpec::BulkSink { read_size, rcvbuf, expected_bytes, quickack } => {
                let listener = tokio_listener(bind(any, rcvbuf)?)?;
                let addr = listener.local_addr().map_err(|e| format!("read the bound address: {e}"))?;
                let flag = stop.clone();
                let task = self.runtime.spawn(async move {
                    let (stream, _) =
                        listener.accept().await.map_err(|e| format!("accept the client: {e}"))?;
                    let started = Instant::now();
                    let stream = stream.into_std().map_err(|e| format!("take the connection: {e}"))?;
                    stream
                        .set_nonblocking(false)
                        .map_err(|e| format!("make the connection blocking: {e}"))?;
                    let got = tokio::task::spawn_blocking(move || {
                        receive_pattern(
                            stream,
                            expected_bytes,
                            read_size as usize,
                            quickack,
                            started,
                            BULK_SILENCE,
                            &|| flag.load(Ordering::Relaxed),
                        )
                    })
                    .await
                    .map_err(|e| format!("the receiving thread failed: {e}"))?
                    .map_err(|e| e.to_string())?;
                    Ok(RoleObservation::BulkSink {
                        received: got.received,
                        reads: got.reads,
                        max_read: got.max_read as u64,
                        first_mismatch: got.first_mismatch,
                        rcvbuf_effective: got.rcvbuf_effective as u64,
                        rmem_max: crate::net::rmem_max().unwrap_or(0),
                        elapsed_us: got.elapsed.as_micros() as u64,
                        cpu: CpuRecord::default(),
                    })
                });
                Ok((addr, RunningRole { stop, task: Some(task), server: None, cpu_before }))
            }
            RoleSpec::Server { framing, behaviour, flavour } => {
                let config = ServerConfig {
                    framing: FramingStrategy::from_str(&framing).map_err(|e| e.to_string())?,
                    behaviour: behaviour.parse::<Behaviour>().map_err(|e| e.to_string())?,
                    flavour: flavour.parse::<Flavour>().map_err(|e| e.to_string())?,
                    listen: any,
                    ..ServerConfig::default()
                };
                let server = Server::start(config).map_err(|e| e.to_string())?;
                Ok((server.addr(), RunningRole { stop, task: None, server: Some(server), cpu_before }))
            }
        }
    }

    fn stop(&mut self, id: u64, number: u32, wait_ms: u64, input: &mut Input) -> (Reply, Then) {
        if wait_ms > MAX_WAIT_MS {
            let message = format!("wait_ms {wait_ms} is over {MAX_WAIT_MS}");
            return (Reply::error(Some(id), ErrorCode::BadRequest, message), Then::Continue);
        }
        let Some(role) = self.roles.remove(&number) else {
            let running: Vec<String> = self.roles.keys().map(u32::to_string).collect();
            let reply = Reply::error(
                Some(id),
                ErrorCode::NoSuchRole,
                format!(
                    "no role {number}; running: {}",
                    if running.is_empty() { "none".into() } else { running.join(", ") }
                ),
            );
            return (reply, Then::Continue);
        };
        let RunningRole { stop, task, server, cpu_before } = role;
        let observation = if let Some(server) = server {
            server.stop();
            Ok(server_observation(&server))
        } else if let Some(mut task) = task {
            let wait = Duration::from_millis(wait_ms);
            // The timer is made inside the runtime, which owns the time driver.
            let waited = self.runtime.block_on(async {
                tokio::select! {
                    waited = tokio::time::timeout(wait, &mut task) => Some(waited),
                    () = input.ended() => None,
                }
            });
            let Some(waited) = waited else {
                stop.store(true, Ordering::Relaxed);
                task.abort();
                return input_ended(id, "a stop", input);
            };
            match waited {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(format!("the role's task failed: {e}")),
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    task.abort();
                    Err(format!("the role did not finish within {wait_ms} ms; stopped"))
                }
            }
        } else {
            Err("the role has nothing to stop".to_string())
        };
        match observation {
            Ok(mut observation) => {
                let cpu = cpu_record(CpuTime::now().since(cpu_before));
                match &mut observation {
                    RoleObservation::StreamReader { cpu: c, .. }
                    | RoleObservation::BulkSink { cpu: c, .. }
                    | RoleObservation::Server { cpu: c, .. } => *c = cpu,
                }
                (Reply::Stopped { id, role: number, observation }, Then::Continue)
            }
            Err(reason) => (
                Reply::error(Some(id), ErrorCode::Failed, format!("role {number}: {reason}")),
                Then::Continue,
            ),
        }
    }

    fn workload(
        &mut self,
        id: u64,
        addr: SocketAddr,
        spec: &WorkloadSpec,
        input: &mut Input,
    ) -> (Reply, Then) {
        let workload = match workload_of(spec) {
            Ok(workload) => workload,
            Err(reason) => return (Reply::error(Some(id), ErrorCode::BadRequest, reason), Then::Continue),
        };
        let cpu_before = CpuTime::now();
        let bound = workload.duration + workload.reply_timeout * 2 + Duration::from_secs(5);
        let result = self.runtime.block_on(async {
            tokio::select! {
                result = tokio::time::timeout(bound, run_workload(addr, &workload)) => Some(result),
                () = input.ended() => None,
            }
        });
        let Some(result) = result else {
            return input_ended(id, "a workload", input);
        };
        let reply = match result {
            Ok(Ok(result)) => Reply::Workload {
                id,
                result: WorkloadObservation {
                    sent: result.sent,
                    replied: result.replied,
                    intact: result.intact,
                    corrupted: result.corrupted,
                    out_of_order: result.out_of_order,
                    bytes: result.throughput.bytes,
                    elapsed_us: result.elapsed.as_micros() as u64,
                    achieved_rate: result.achieved_rate,
                    latency_histogram: result.latency.to_base64(),
                    cpu: cpu_record(CpuTime::now().since(cpu_before)),
                },
            },
            Ok(Err(e)) => Reply::error(Some(id), ErrorCode::Failed, format!("workload against {addr}: {e}")),
            Err(_) => Reply::error(
                Some(id),
                ErrorCode::Failed,
                format!("workload against {addr} did not end within {} s", bound.as_secs()),
            ),
        };
        (reply, Then::Continue)
    }

    fn stop_all(&mut self) {
        for (_, role) in std::mem::take(&mut self.roles) {
            role.stop.store(true, Ordering::Relaxed);
            if let Some(server) = role.server {
                server.stop();
            }
            if let Some(task) = role.task {
                task.abort();
            }
        }
    }
}

fn cpu_record(cpu: CpuTime) -> CpuRecord {
    CpuRecord { user_ms: cpu.user.as_secs_f64() * 1e3, system_ms: cpu.system.as_secs_f64() * 1e3 }
}

fn server_observation(server: &Server) -> RoleObservation {
    let stats = server.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    RoleObservation::Server {
        connections: load(&stats.connections),
        messages: load(&stats.messages),
        bytes: load(&stats.bytes),
        intact: load(&stats.intact),
        corrupted: load(&stats.corrupted),
        out_of_order: load(&stats.out_of_order),
        closed_with_error: load(&stats.closed_with_error),
        errors: stats.errors(),
        cpu: CpuRecord::default(),
    }
}

/// A blocking listener on `addr`, `SO_RCVBUF` set first when `rcvbuf` is not 0.
fn bind(addr: SocketAddr, rcvbuf: u64) -> Result<TcpListener, String> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| format!("create a socket: {e}"))?;
    if rcvbuf > 0 {
        crate::net::set_recv_buffer(&socket, rcvbuf as usize).map_err(|e| format!("set SO_RCVBUF: {e}"))?;
    }
    socket.bind(&addr.into()).map_err(|e| format!("bind {addr}: {e}"))?;
    socket.listen(16).map_err(|e| format!("listen on {addr}: {e}"))?;
    Ok(socket.into())
}

fn tokio_listener(listener: TcpListener) -> Result<tokio::net::TcpListener, String> {
    listener.set_nonblocking(true).map_err(|e| format!("make the listener non-blocking: {e}"))?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| format!("register the listener: {e}"))
}

/// `value` of the request's field `name` within `min..=max`, or why not.
fn within(name: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} {value} is outside {min}..={max}"))
    }
}

/// Every number of a role within the limits the agent accepts, so no request can make
/// it hold more than a few MiB or wait for ever.
fn check_role(role: &RoleSpec) -> Result<(), String> {
    match role {
        RoleSpec::StreamReader { read_size, read_delay_ms, warm_round_trips, max_bytes } => {
            within("read_size", *read_size, 1, 16 << 20)?;
            within("read_delay_ms", *read_delay_ms, 0, 60_000)?;
            within("warm_round_trips", u64::from(*warm_round_trips), 0, 100)?;
            within("max_bytes", *max_bytes, 1, MAX_READER_BYTES)
        }
        RoleSpec::BulkSink { read_size, rcvbuf, expected_bytes, .. } => {
            within("read_size", *read_size, 1, 16 << 20)?;
            within("rcvbuf", *rcvbuf, 0, 256 << 20)?;
            within("expected_bytes", *expected_bytes, 1, 1 << 32)
        }
        RoleSpec::Server { .. } => Ok(()),
    }
}

fn workload_of(spec: &WorkloadSpec) -> Result<Workload, String> {
    within("message_size", spec.message_size, 16, 1 << 20)?;
    within("duration_ms", spec.duration_ms, 1, 60_000)?;
    within("max_messages", spec.max_messages, 1, 100_000_000)?;
    within("window", spec.window, 1, 4096)?;
    if !(spec.rate_per_s.is_finite() && spec.rate_per_s > 0.0 && spec.rate_per_s <= 1e6) {
        return Err(format!("rate_per_s {} is outside (0, 1000000]", spec.rate_per_s));
    }
    Ok(Workload {
        mode: spec.mode.parse::<Mode>().map_err(|e| e.to_string())?,
        framing: FramingStrategy::from_str(&spec.framing).map_err(|e| e.to_string())?,
        message_size: spec.message_size as usize,
        duration: Duration::from_millis(spec.duration_ms),
        max_messages: spec.max_messages,
        window: spec.window as usize,
        rate_per_s: spec.rate_per_s,
        server: spec.server_behaviour.parse::<Behaviour>().map_err(|e| e.to_string())?,
        nodelay: spec.nodelay,
        ..Workload::default()
    })
}
