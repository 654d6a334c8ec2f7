//! The agent's control protocol: JSON objects, one per line, over the agent's stdin
//! (requests) and stdout (replies). Version [`PROTOCOL_VERSION`].
//!
//! Every message has a `type`. The runner speaks first, with `hello`; the agent answers
//! with its own versions and host, and refuses (`version_mismatch`, then exits 2) when
//! either the protocol or the socklab version differs. After that each request carries
//! an `id` its reply repeats:
//!
//! | request | what the agent does | reply |
//! |---|---|---|
//! | `hello {protocol, socklab_version}` | compares versions | `hello {protocol, socklab_version, host}` |
//! | `start {id, role}` | binds a server role on a port of its choice | `started {id, role, addr}` |
//! | `workload {id, addr, workload}` | runs a client workload against `addr` | `workload {id, result}` |
//! | `stop {id, role, wait_ms}` | waits up to `wait_ms` for the role to finish, stops it | `stopped {id, role, observation}` |
//! | `clock {id}` | reads its clock | `clock {id, now_us}` |
//! | `bye {id}` | stops every role | `bye {id}`, then exits 0 |
//!
//! Anything else — a line that is not JSON, an unknown `type`, a field that does not
//! belong, a value out of range, a line over the limit (1 MiB by default) — gets an
//! `error {id, code, message}` reply and the agent keeps serving. The protocol has no
//! message that runs a command, names a file or opens a shell: the agent only binds
//! servers and runs socklab's own workloads.
//!
//! ```text
//! → {"type":"hello","protocol":1,"socklab_version":"0.1.0"}
//! ← {"type":"hello","protocol":1,"socklab_version":"0.1.0","host":{"hostname":"b","kernel":"6.1.0",...}}
//! → {"type":"start","id":1,"role":{"kind":"stream_reader","read_size":5,"read_delay_ms":50,"warm_round_trips":0,"max_bytes":17}}
//! ← {"type":"started","id":1,"role":1,"addr":"0.0.0.0:40312"}
//! → {"type":"stop","id":2,"role":1,"wait_ms":5000}
//! ← {"type":"stopped","id":2,"role":1,"observation":{"kind":"stream_reader","reads":[...],...}}
//! ```

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Version of this protocol; both ends must speak the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the agent reads by default, in bytes (newline excluded).
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Most roles an agent runs at once.
pub const MAX_ROLES: usize = 16;

/// Longest a `stop` may wait, and a workload may run, in milliseconds.
pub const MAX_WAIT_MS: u64 = 600_000;

/// Most bytes a `stream_reader` keeps (its reads come back in the reply).
pub const MAX_READER_BYTES: u64 = 16 << 20;

/// A request, runner to agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The first message: the runner's versions.
    Hello {
        /// The runner's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The runner's socklab version.
        socklab_version: String,
    },
    /// Start a server role.
    Start {
        /// Repeated in the reply.
        id: u64,
        /// What to run.
        role: RoleSpec,
    },
    /// Run a client workload against `addr` and return what it measured.
    Workload {
        /// Repeated in the reply.
        id: u64,
        /// The server to drive.
        addr: SocketAddr,
        /// What to send.
        workload: WorkloadSpec,
    },
    /// Wait for a role to finish (up to `wait_ms`), stop it, return its observations.
    Stop {
        /// Repeated in the reply.
        id: u64,
        /// The role, as `started` named it.
        role: u32,
        /// Longest wait for the role to finish on its own, in ms.
        wait_ms: u64,
    },
    /// Read the agent's clock (to place its times on the runner's).
    Clock {
        /// Repeated in the reply.
        id: u64,
    },
    /// Stop everything and exit.
    Bye {
        /// Repeated in the reply.
        id: u64,
    },
}

/// The names of [`Request`]'s types, for error messages.
pub const REQUEST_TYPES: &[&str] = &["hello", "start", "workload", "stop", "clock", "bye"];

/// A server role the agent can run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoleSpec {
    /// Accept one connection and read it with `recv(read_size)` until EOF, keeping
    /// every read (the server of `tcp-coalescing`).
    StreamReader {
        /// Bytes per `recv` (1..=16 MiB).
        read_size: u64,
        /// Wait before the first read, ms (at most 60 000).
        read_delay_ms: u64,
        /// Ping/pong round trips answered first (at most 100).
        warm_round_trips: u32,
        /// Most bytes the client may send (at most 16 MiB).
        max_bytes: u64,
    },
    /// Accept one connection and read a pattern stream until EOF, verifying every byte
    /// (the server of `recv-buffer`).
    BulkSink {
        /// Bytes per `read` (1..=16 MiB).
        read_size: u64,
        /// `SO_RCVBUF` set on the listener; 0 leaves autotuning on.
        rcvbuf: u64,
        /// Bytes the client sends (at most 2^32).
        expected_bytes: u64,
        /// Set `TCP_QUICKACK` before every read.
        #[serde(default)]
        quickack: bool,
    },
    /// A reference server (the server of `framing-throughput`), until stopped.
    Server {
        /// A framing name `socklab serve --framing` takes.
        framing: String,
        /// `echo`, `echo-upper`, `sink` or `source`.
        behaviour: String,
        /// `tokio`, `threaded` or `sequential`.
        flavour: String,
    },
}

/// A client workload the agent runs (see [`crate::peer::Workload`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// `ping-pong`, `pipelined`, `bulk` or `open-loop`.
    pub mode: String,
    /// A framing name.
    pub framing: String,
    /// Payload bytes per message (16..=1 MiB).
    pub message_size: u64,
    /// How long to send, ms (at most 60 000).
    pub duration_ms: u64,
    /// Most messages.
    pub max_messages: u64,
    /// Messages outstanding (pipelined), 1..=4096.
    pub window: u64,
    /// Messages per second (open-loop).
    pub rate_per_s: f64,
    /// `TCP_NODELAY` on the client socket.
    pub nodelay: bool,
    /// What the server does with each message: `echo`, `echo-upper` or `sink`.
    pub server_behaviour: String,
}

/// A reply, agent to runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// The agent's versions and host.
    Hello {
        /// The agent's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The agent's socklab version.
        socklab_version: String,
        /// The host it runs on.
        host: HostInfo,
    },
    /// A role is listening.
    Started {
        /// The request's id.
        id: u64,
        /// The role's number, for `stop`.
        role: u32,
        /// Where it listens (`0.0.0.0:PORT`: every address of the host).
        addr: SocketAddr,
    },
    /// A role's observations.
    Stopped {
        /// The request's id.
        id: u64,
        /// The role.
        role: u32,
        /// What it saw.
        observation: RoleObservation,
    },
    /// A workload's result.
    Workload {
        /// The request's id.
        id: u64,
        /// What it measured.
        result: WorkloadObservation,
    },
    /// The agent's clock.
    Clock {
        /// The request's id.
        id: u64,
        /// Microseconds since the agent started (monotonic).
        now_us: u64,
    },
    /// The agent is leaving.
    Bye {
        /// The request's id.
        id: u64,
    },
    /// A request the agent refused or could not carry out; it keeps serving (except
    /// after `version_mismatch` and `truncated`).
    Error {
        /// The request's id, when it had a readable one.
        id: Option<u64>,
        /// What kind of error.
        code: ErrorCode,
        /// What went wrong, in one line.
        message: String,
    },
}

/// Why the agent refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a JSON object (or not UTF-8).
    Malformed,
    /// A `type` the protocol does not have.
    UnknownType,
    /// A known type with missing, extra or out-of-range fields.
    BadRequest,
    /// A line longer than the limit; it was read to its end and dropped.
    LineTooLong,
    /// The input ended in the middle of a line; the agent exits.
    Truncated,
    /// A request before `hello`.
    HelloFirst,
    /// The runner's versions differ from the agent's; the agent exits 2.
    VersionMismatch,
    /// `stop` of a role that does not exist.
    NoSuchRole,
    /// More than [`MAX_ROLES`] roles at once.
    TooManyRoles,
    /// The request was valid but carrying it out failed (a bind, a workload error).
    Failed,
}

/// The host an agent (or a runner) runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name (`/proc/sys/kernel/hostname`).
    pub hostname: String,
    /// Kernel release.
    pub kernel: String,
    /// Logical CPUs available.
    pub cpu_count: usize,
    /// Its non-loopback interface addresses with prefix length (`198.18.0.2/30`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The address an ssh client reached it on (`SSH_CONNECTION`), when started by ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_server_ip: Option<IpAddr>,
    /// Its network namespace (boot id and namespace inode): equal on both ends when the
    /// agent shares the runner's namespace, which is then reached over loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// CPU time a role or workload used (the agent's whole process, user and system).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuRecord {
    /// User time, ms.
    pub user_ms: f64,
    /// System time, ms.
    pub system_ms: f64,
}

impl CpuRecord {
    /// User and system time together; a negative, infinite or not-a-number figure from a
    /// hostile agent counts as 0 rather than panicking.
    pub fn total(&self) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64((self.user_ms + self.system_ms).max(0.0) / 1e3)
            .unwrap_or_default()
    }
}

/// One read of a `stream_reader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    /// When the read returned, µs on the agent's clock (see `clock`).
    pub at_us: u64,
    /// The bytes, base64.
    pub data: String,
}

impl ReadRecord {
    /// A read of `bytes` at `at_us`.
    pub fn new(at_us: u64, bytes: &[u8]) -> Self {
        use base64::Engine;
        ReadRecord { at_us, data: base64::engine::general_purpose::STANDARD.encode(bytes) }
    }

    /// The bytes of the read.
    ///
    /// # Errors
    /// When `data` is not base64 (the message says so).
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| format!("a read that is not base64: {e}"))
    }
}

/// What a role saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoleObservation {
    /// See [`RoleSpec::StreamReader`].
    StreamReader {
        /// Every read that returned data.
        reads: Vec<ReadRecord>,
        /// Bytes queued just before the first read (`FIONREAD`).
        queued_at_first_read: u64,
        /// The client's address as the agent saw it.
        peer: String,
        /// CPU time while the role ran.
        cpu: CpuRecord,
    },
    /// See [`RoleSpec::BulkSink`].
    BulkSink {
        /// Bytes received.
        received: u64,
        /// Reads that returned data.
        reads: u64,
        /// Most bytes one read returned.
        max_read: u64,
        /// First byte that was not the pattern's.
        first_mismatch: Option<u64>,
        /// `SO_RCVBUF` after the transfer.
        rcvbuf_effective: u64,
        /// `net.core.rmem_max` on the agent's host.
        rmem_max: u64,
        /// From accepting the client to EOF, µs.
        elapsed_us: u64,
        /// CPU time while the role ran.
        cpu: CpuRecord,
    },
    /// See [`RoleSpec::Server`].
    Server {
        /// Connections accepted.
        connections: u64,
        /// Messages received.
        messages: u64,
        /// Payload bytes received.
        bytes: u64,
        /// `sink`: messages that verified.
        intact: u64,
        /// `sink`: messages that did not verify.
        corrupted: u64,
        /// `sink`: intact messages out of sequence.
        out_of_order: u64,
        /// Connections closed for an error.
        closed_with_error: u64,
        /// The last errors that closed connections.
        errors: Vec<String>,
        /// CPU time while the role ran.
        cpu: CpuRecord,
    },
}

/// What a workload measured (see [`crate::peer::WorkloadResult`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadObservation {
    /// Messages sent.
    pub sent: u64,
    /// Messages whose replies all arrived.
    pub replied: u64,
    /// Replies that verified.
    pub intact: u64,
    /// Replies that did not.
    pub corrupted: u64,
    /// Intact replies out of sequence.
    pub out_of_order: u64,
    /// Payload bytes counted by the throughput meter.
    pub bytes: u64,
    /// From the first send to the last reply, µs.
    pub elapsed_us: u64,
    /// Messages sent per second.
    pub achieved_rate: f64,
    /// Latency samples, HdrHistogram V2 in base64.
    pub latency_histogram: String,
    /// CPU time while it ran.
    pub cpu: CpuRecord,
}

impl Reply {
    /// The id the reply answers, if any.
    pub fn id(&self) -> Option<u64> {
        match self {
            Reply::Hello { .. } => None,
            Reply::Started { id, .. }
            | Reply::Stopped { id, .. }
            | Reply::Workload { id, .. }
            | Reply::Clock { id, .. }
            | Reply::Bye { id } => Some(*id),
            Reply::Error { id, .. } => *id,
        }
    }

    /// An error reply.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Error { id, code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_per_line_with_a_type() {
        let hello = Request::Hello { protocol: 1, socklab_version: "0.1.0".into() };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"type":"hello","protocol":1,"socklab_version":"0.1.0"}"#
        );
        let start: Request = serde_json::from_str(
            r#"{"type":"start","id":1,"role":{"kind":"stream_reader","read_size":5,"read_delay_ms":50,"warm_round_trips":0,"max_bytes":17}}"#,
        )
        .unwrap();
        assert!(matches!(start, Request::Start { id: 1, role: RoleSpec::StreamReader { read_size: 5, .. } }));
    }

    #[test]
    fn extra_fields_are_refused() {
        let extra = serde_json::from_str::<Request>(r#"{"type":"clock","id":1,"cmd":"ls"}"#);
        assert!(extra.unwrap_err().to_string().contains("unknown field `cmd`"));
        let nested = serde_json::from_str::<Request>(
            r#"{"type":"start","id":1,"role":{"kind":"server","framing":"u32be","behaviour":"echo","flavour":"tokio","exec":"sh"}}"#,
        );
        assert!(nested.is_err());
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Started { id: 3, role: 1, addr: "0.0.0.0:4000".parse().unwrap() },
            Reply::error(Some(4), ErrorCode::NoSuchRole, "no role 9"),
            Reply::error(None, ErrorCode::LineTooLong, "line of 2000000 bytes"),
            Reply::Clock { id: 5, now_us: 17 },
        ];
        for reply in replies {
            let text = serde_json::to_string(&reply).unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), reply);
        }
    }
}
