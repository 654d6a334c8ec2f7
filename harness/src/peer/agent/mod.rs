//! `socklab agent --stdio`: the server (or client) side of a case on another host, and
//! the runner's end of it.
//!
//! socklab builds no orchestrator. Whatever already places and authenticates processes
//! starts the agent — `ssh host socklab agent --stdio`, `kubectl exec -i pod -- …`,
//! `docker exec -i …`, `ip netns exec B …` — and the runner ([`RemoteAgent`]) talks to it
//! over that command's stdin and stdout ([`protocol`]: versioned JSON lines). Only control
//! goes that way; the case's data travels directly between the hosts over TCP.
//!
//! The agent is not a remote shell: its protocol has no message that runs a command or
//! names a file, it refuses anything it does not know with an error reply and keeps
//! serving, and it bounds every line and every number it is given ([`serve`]).

pub mod input;
pub mod lines;
pub mod protocol;
pub mod remote;
pub mod serve;

pub use protocol::{
    PROTOCOL_VERSION, Reply, Request, RoleObservation, RoleSpec, WorkloadObservation, WorkloadSpec,
};
pub use remote::{AgentError, ClockMapping, RemoteAgent, RemoteRole, choose_peer_ip};
pub use serve::{AgentConfig, AgentExit, SOCKLAB_VERSION, run_agent};
