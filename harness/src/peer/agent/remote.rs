//! The runner's end of an agent: starts `--peer-cmd` with `sh -c` (ssh, kubectl exec,
//! docker exec, ip netns exec — whatever places and authenticates it), speaks the
//! protocol over the command's stdin and stdout, and stops it.
//!
//! The command runs in a process group of its own. Its stdout is read on a thread into
//! a channel of replies (lines of at most 64 MiB); its stderr's last lines are kept for
//! the message when it fails. The first line on its stdout that is not a reply (a login
//! banner, a shell start-up file that prints, a command that is not the agent) fails the
//! request waiting then, at once, naming the line, as rsync does with an unclean shell. Every request waits a bounded time for the reply
//! with its id, and gives up early when the case is cancelled. Dropping the agent says
//! `bye`, closes its stdin, and after a grace period signals the group (SIGTERM, then
//! SIGKILL). Until then the group is in the process-wide list of
//! [`groups`], so an interrupted `socklab` stops it too.

use std::io::{BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::lines::{LineEvent, LineReader};
use super::protocol::{
    ErrorCode, HostInfo, PROTOCOL_VERSION, Reply, Request, RoleObservation, RoleSpec, WorkloadObservation,
    WorkloadSpec,
};
use super::serve::SOCKLAB_VERSION;
use crate::cancel::Cancel;
use crate::external::groups;
use crate::external::process::{Tail, describe, keep_tail, lines, signal_group};
use crate::host::interface_addresses;

/// Longest reply line read from an agent.
const MAX_REPLY_LINE: usize = 64 << 20;
/// How long a request may take besides the work it asks for (the round trip through
/// ssh, say).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent has to leave after `bye` before its group is signalled.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why an agent could not be started or used.
///
/// Messages include their cause, so `source()` is `None`.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The command could not be spawned.
    #[error("--peer-cmd `{command}` cannot start: {reason}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// The command ended, or closed its output, while a reply was due.
    #[error("--peer-cmd `{command}` {status} before {waiting}; its stderr ends: {stderr}")]
    Gone {
        /// The command.
        command: String,
        /// How it ended (`exited with status 127`), or `closed its output`.
        status: String,
        /// What was being waited for.
        waiting: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// The command wrote a line that is not a reply of the protocol.
    #[error(
        "--peer-cmd `{command}` wrote `{line}` on its stdout while socklab waited for {waiting}: that is not \
         socklab's agent protocol; the command must start `socklab agent --stdio` and print nothing else there \
         (a login banner, or a shell start-up file that prints?)"
    )]
    NotProtocol {
        /// The command.
        command: String,
        /// The line, cut and with control characters escaped.
        line: String,
        /// What was being waited for.
        waiting: String,
    },
    /// The agent runs another protocol or socklab version.
    #[error("{0}")]
    VersionMismatch(String),
    /// No reply in time.
    #[error("--peer-cmd `{command}`: no reply to {waiting} within {seconds} s")]
    Timeout {
        /// The command.
        command: String,
        /// What was being waited for.
        waiting: String,
        /// How long.
        seconds: u64,
    },
    /// The agent refused or failed the request.
    #[error("the agent refused {waiting}: {message} ({code:?})")]
    Refused {
        /// What was asked.
        waiting: String,
        /// Its error code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The agent answered with a reply of the wrong kind.
    #[error("the agent answered {waiting} with an unexpected {got} reply")]
    UnexpectedReply {
        /// What was asked.
        waiting: String,
        /// The reply's type.
        got: String,
    },
    /// The case was cancelled while waiting.
    #[error("cancelled while waiting for the agent")]
    Cancelled,
}

/// What arrives on the agent's stdout.
enum Incoming {
    Reply(Reply),
    /// A line that is not a reply, as shown in messages.
    NotProtocol(String),
    Closed,
}

/// A running agent; see the module docs.
pub struct RemoteAgent {
    command: String,
    host: HostInfo,
    peer_ip: IpAddr,
    stdin: Mutex<Option<ChildStdin>>,
    replies: Mutex<mpsc::Receiver<Incoming>>,
    child: Mutex<Child>,
    pgid: i32,
    stderr: Tail,
    readers: Vec<JoinHandle<()>>,
    next_id: AtomicU64,
    /// Roles started and not yet stopped: a case that fails or times out between the
    /// two leaves its role here, and [`RemoteAgent::stop_open_roles`] ends it.
    open_roles: Mutex<Vec<u32>>,
}

/// A role the agent started: its number and where to connect to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteRole {
    /// For `stop`.
    pub number: u32,
    /// The agent's address (see [`RemoteAgent::peer_ip`]) and the role's port.
    pub addr: SocketAddr,
}

/// How the agent's clock maps onto a case clock, from the best of a few `clock` round
/// trips (Cristian's method): `case time = agent time - offset`, give or take
/// `uncertainty` (half the fastest round trip).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockMapping {
    /// Agent µs minus case µs.
    pub offset_us: f64,
    /// ± this many µs.
    pub uncertainty_us: f64,
}

impl ClockMapping {
    /// An agent time in µs as a case time in µs (never below 0).
    pub fn case_us(&self, agent_us: u64) -> f64 {
        (agent_us as f64 - self.offset_us).max(0.0)
    }
}

impl RemoteAgent {
    /// Starts `command` with `sh -c`, exchanges versions, and picks the address to
    /// connect to: `peer_addr` when given, else [`choose_peer_ip`].
    ///
    /// # Errors
    /// [`AgentError::Spawn`], [`AgentError::Gone`] (the command failed, e.g. ssh could
    /// not connect), [`AgentError::Timeout`], [`AgentError::VersionMismatch`].
    pub fn start(
        command: &str,
        peer_addr: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<RemoteAgent, AgentError> {
        let starting = groups::starting();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| AgentError::Spawn { command: command.to_string(), reason: e.to_string() })?;
        let pgid = child.id() as i32;
        groups::track(pgid);
        drop(starting);
        let stderr = Tail::default();
        let mut readers = Vec::new();
        if let Some(err) = child.stderr.take() {
            readers.push(keep_tail(err, stderr.clone()));
        }
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            readers.push(std::thread::spawn(move || read_replies(out, &tx)));
        }
        let stdin = child.stdin.take();
        let mut agent = RemoteAgent {
            command: command.to_string(),
            host: HostInfo::default(),
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            stdin: Mutex::new(stdin),
            replies: Mutex::new(rx),
            child: Mutex::new(child),
            pgid,
            stderr,
            readers,
            next_id: AtomicU64::new(1),
            open_roles: Mutex::new(Vec::new()),
        };
        let hello =
            Request::Hello { protocol: PROTOCOL_VERSION, socklab_version: SOCKLAB_VERSION.to_string() };
        let waiting = "hello (the version check)";
        match agent.exchange(&hello, None, waiting, timeout, None)? {
            Reply::Hello { protocol, socklab_version, host } => {
                if protocol != PROTOCOL_VERSION || socklab_version != SOCKLAB_VERSION {
                    return Err(AgentError::VersionMismatch(format!(
                        "version skew: this socklab is {SOCKLAB_VERSION} (protocol {PROTOCOL_VERSION}), the agent started \
                         by --peer-cmd is {socklab_version} (protocol {protocol}); install the same socklab on both hosts"
                    )));
                }
                agent.peer_ip = peer_addr.unwrap_or_else(|| choose_peer_ip(&host));
                agent.host = host;
                Ok(agent)
            }
            Reply::Error { code: ErrorCode::VersionMismatch, message, .. } => {
                Err(AgentError::VersionMismatch(message))
            }
            other => Err(unexpected(waiting, &other)),
        }
    }

    /// The command as given.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The agent's host, as it described itself.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// The address the runner connects to.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer_ip
    }

    /// Starts a server role and returns where to connect to it.
    ///
    /// # Errors
    /// As [`RemoteAgent::start`], and [`AgentError::Refused`].
    pub fn start_role(&self, role: RoleSpec) -> Result<RemoteRole, AgentError> {
        let id = self.next_id();
        let waiting = "start";
        match self.exchange(&Request::Start { id, role }, Some(id), waiting, CONTROL_TIMEOUT, None)? {
            Reply::Started { role, addr, .. } => {
                self.open_roles.lock().unwrap_or_else(PoisonError::into_inner).push(role);
                Ok(RemoteRole { number: role, addr: SocketAddr::new(self.peer_ip, addr.port()) })
            }
            other => Err(refused_or_unexpected(waiting, other)),
        }
    }

    /// Waits up to `wait` for the role to finish, stops it, and returns what it saw.
    ///
    /// # Errors
    /// As [`RemoteAgent::start_role`]; [`AgentError::Cancelled`] when `cancel` is raised.
    pub fn stop_role(
        &self,
        role: u32,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<RoleObservation, AgentError> {
        self.open_roles.lock().unwrap_or_else(PoisonError::into_inner).retain(|&open| open != role);
        let id = self.next_id();
        let waiting = "stop";
        let request = Request::Stop { id, role, wait_ms: wait.as_millis() as u64 };
        match self.exchange(&request, Some(id), waiting, wait + CONTROL_TIMEOUT, Some(cancel))? {
            Reply::Stopped { observation, .. } => Ok(observation),
            other => Err(refused_or_unexpected(waiting, other)),
        }
    }

    /// Stops every role a case started and did not stop (it failed or timed out in
    /// between), so the agent's servers and listeners do not outlive their case; the
    /// runner calls it after each case. Returns how many there were.
    pub fn stop_open_roles(&self) -> usize {
        let open = std::mem::take(&mut *self.open_roles.lock().unwrap_or_else(PoisonError::into_inner));
        for &role in &open {
            if let Err(error) = self.stop_role(role, Duration::ZERO, &Cancel::new()) {
                tracing::warn!("could not stop the agent's role {role} that its case left running: {error}");
            }
        }
        open.len()
    }

    /// Runs a client workload on the agent against `addr`.
    ///
    /// # Errors
    /// As [`RemoteAgent::stop_role`].
    pub fn run_workload(
        &self,
        addr: SocketAddr,
        workload: WorkloadSpec,
        cancel: &Cancel,
    ) -> Result<WorkloadObservation, AgentError> {
        let id = self.next_id();
        let waiting = "workload";
        let timeout = Duration::from_millis(workload.duration_ms) + Duration::from_secs(20) + CONTROL_TIMEOUT;
        match self.exchange(
            &Request::Workload { id, addr, workload },
            Some(id),
            waiting,
            timeout,
            Some(cancel),
        )? {
            Reply::Workload { result, .. } => Ok(result),
            other => Err(refused_or_unexpected(waiting, other)),
        }
    }

    /// Maps the agent's clock onto `clock` from the fastest of `samples` round trips.
    ///
    /// # Errors
    /// As [`RemoteAgent::start_role`].
    pub fn clock_mapping(&self, clock: Instant, samples: usize) -> Result<ClockMapping, AgentError> {
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..samples.max(1) {
            let id = self.next_id();
            let before = clock.elapsed().as_secs_f64() * 1e6;
            let reply = self.exchange(&Request::Clock { id }, Some(id), "clock", CONTROL_TIMEOUT, None)?;
            let after = clock.elapsed().as_secs_f64() * 1e6;
            let Reply::Clock { now_us, .. } = reply else {
                return Err(refused_or_unexpected("clock", reply));
            };
            let round_trip = after - before;
            if best.is_none_or(|(rt, _)| round_trip < rt) {
                best = Some((round_trip, now_us as f64 - (before + after) / 2.0));
            }
        }
        let (round_trip, offset_us) = best.unwrap_or((0.0, 0.0));
        Ok(ClockMapping { offset_us, uncertainty_us: round_trip / 2.0 })
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `request` and waits for the reply with id `id` (`None`: the next reply with
    /// no id, for hello), skipping replies to earlier requests that timed out.
    fn exchange(
        &self,
        request: &Request,
        id: Option<u64>,
        waiting: &str,
        timeout: Duration,
        cancel: Option<&Cancel>,
    ) -> Result<Reply, AgentError> {
        let mut line = serde_json::to_vec(request).unwrap_or_default();
        line.push(b'\n');
        let sent = match self.stdin.lock().ok().as_deref_mut().and_then(Option::as_mut) {
            Some(stdin) => stdin.write_all(&line).and_then(|()| stdin.flush()).is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.gone(waiting));
        }
        let replies = self.replies.lock().map_err(|_| self.gone(waiting))?;
        let deadline = Instant::now() + timeout;
        // Each pass takes one reply or waits at most Cancel::CHECK_EVERY; the loop ends
        // at the deadline.
        loop {
            if cancel.is_some_and(Cancel::is_cancelled) {
                return Err(AgentError::Cancelled);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AgentError::Timeout {
                    command: self.command.clone(),
                    waiting: waiting.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            match replies.recv_timeout(left.min(Cancel::CHECK_EVERY)) {
                Ok(Incoming::Reply(reply)) => {
                    // Errors about a line as a whole (too long, malformed) carry no id.
                    let matches =
                        reply.id() == id || (id.is_some() && matches!(reply, Reply::Error { id: None, .. }));
                    if matches || matches!(reply, Reply::Error { code: ErrorCode::VersionMismatch, .. }) {
                        return Ok(reply);
                    }
                }
                Ok(Incoming::NotProtocol(line)) => {
                    return Err(AgentError::NotProtocol {
                        command: self.command.clone(),
                        line,
                        waiting: waiting.to_string(),
                    });
                }
                Ok(Incoming::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.gone(waiting));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The error for an agent that stopped answering: how it ended and its stderr tail.
    fn gone(&self, waiting: &str) -> AgentError {
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            match self.child.lock().ok().and_then(|mut c| c.try_wait().ok().flatten()) {
                Some(status) => break describe(status),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => break "closed its output".to_string(),
            }
        };
        // Give the stderr reader a moment to take in the last lines.
        std::thread::sleep(Duration::from_millis(50));
        let tail: Vec<String> = lines(&self.stderr).into_iter().rev().take(3).rev().collect();
        AgentError::Gone {
            command: self.command.clone(),
            status,
            waiting: waiting.to_string(),
            stderr: if tail.is_empty() { "(nothing)".to_string() } else { tail.join(" | ") },
        }
    }
}

impl std::fmt::Debug for RemoteAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAgent")
            .field("command", &self.command)
            .field("host", &self.host)
            .field("peer_ip", &self.peer_ip)
            .finish_non_exhaustive()
    }
}

impl Drop for RemoteAgent {
    fn drop(&mut self) {
        let id = self.next_id();
        if let Ok(mut stdin) = self.stdin.lock() {
            if let Some(mut pipe) = stdin.take() {
                let mut line = serde_json::to_vec(&Request::Bye { id }).unwrap_or_default();
                line.push(b'\n');
                let _ = pipe.write_all(&line);
                // Dropping the pipe closes it: the agent sees EOF even if it missed bye.
            }
        }
        let exited =
            |child: &Mutex<Child>| child.lock().ok().and_then(|mut c| c.try_wait().ok().flatten()).is_some();
        let deadline = Instant::now() + STOP_GRACE;
        while !exited(&self.child) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited(&self.child) {
            signal_group(self.pgid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(1);
            while !exited(&self.child) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !exited(&self.child) {
                signal_group(self.pgid, libc::SIGKILL);
                if let Ok(mut child) = self.child.lock() {
                    let _ = child.wait();
                }
            }
        }
        groups::forget(self.pgid);
        // The readers end when the agent's pipes close. A process outside its group can
        // still hold them (an ssh master connection, a container runtime): wait a moment,
        // then leave such a reader to end with this process rather than hang here.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for reader in self.readers.drain(..).filter(JoinHandle::is_finished) {
            let _ = reader.join();
        }
    }
}

/// Reads reply lines until the agent's stdout closes.
fn read_replies(out: impl std::io::Read, tx: &mpsc::Sender<Incoming>) {
    let mut lines = LineReader::new(BufReader::new(out), MAX_REPLY_LINE);
    // Each pass consumes one line or ends the loop at EOF, an error, or when nobody
    // takes the replies any more.
    loop {
        let incoming = match lines.next_line() {
            Ok(LineEvent::Line(line)) => match serde_json::from_slice::<Reply>(&line) {
                Ok(reply) => Incoming::Reply(reply),
                Err(_) => Incoming::NotProtocol(shown(&String::from_utf8_lossy(&line))),
            },
            Ok(LineEvent::TooLong { bytes }) => Incoming::NotProtocol(format!("(a line of {bytes} bytes)")),
            Ok(LineEvent::Eof | LineEvent::Truncated { .. }) | Err(_) => {
                let _ = tx.send(Incoming::Closed);
                return;
            }
        };
        if tx.send(incoming).is_err() {
            return;
        }
    }
}

/// A line as an error message shows it: at most 200 characters, control characters
/// escaped so none reaches the terminal raw.
fn shown(line: &str) -> String {
    const MAX: usize = 200;
    let mut text = String::new();
    for c in line.chars().take(MAX) {
        if c.is_control() {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    if line.chars().count() > MAX {
        text.push('…');
    }
    text
}

fn unexpected(waiting: &str, reply: &Reply) -> AgentError {
    let got = serde_json::to_value(reply)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
        .unwrap_or_default();
    AgentError::UnexpectedReply { waiting: waiting.to_string(), got }
}

fn refused_or_unexpected(waiting: &str, reply: Reply) -> AgentError {
    match reply {
        Reply::Error { code: ErrorCode::VersionMismatch, message, .. } => {
            AgentError::VersionMismatch(message)
        }
        Reply::Error { code, message, .. } => {
            AgentError::Refused { waiting: waiting.to_string(), code, message }
        }
        other => unexpected(waiting, &other),
    }
}

/// Where to reach an agent that described itself as `host`, when `--peer-addr` does not
/// say: `127.0.0.1` when it shares this process's network namespace; the address ssh
/// reached it on; an address of it in one of this host's networks; else its first
/// address (and `--peer-addr` is the way to say otherwise, behind NAT).
pub fn choose_peer_ip(host: &HostInfo) -> IpAddr {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if host.netns.is_some() && host.netns == crate::host::netns_id() {
        return localhost;
    }
    if let Some(ip) = host.ssh_server_ip {
        return ip;
    }
    let theirs: Vec<IpAddr> =
        host.addresses.iter().filter_map(|a| a.split('/').next().and_then(|ip| ip.parse().ok())).collect();
    let ours: Vec<_> = interface_addresses().into_iter().filter(|a| !a.ip.is_loopback()).collect();
    let shared = theirs.iter().copied().filter(|ip| ours.iter().any(|a| a.same_network(*ip)));
    let mut shared: Vec<IpAddr> = shared.collect();
    shared.sort_by_key(|ip| !ip.is_ipv4());
    if let Some(ip) = shared.first() {
        return *ip;
    }
    theirs.iter().copied().find(IpAddr::is_ipv4).or(theirs.first().copied()).unwrap_or(localhost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_messages_are_cut_and_escaped() {
        assert_eq!(shown("hello world"), "hello world");
        assert_eq!(shown("a\u{1b}[31mred\u{7}"), "a\\u{1b}[31mred\\u{7}");
        let long = "x".repeat(300);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(200)));
    }
}
