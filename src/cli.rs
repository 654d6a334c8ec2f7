//! The command line: subcommands and their arguments (clap derive).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use socklab_harness::external::{CommandTemplate, Target, TargetError, parse_target};
use socklab_harness::framing::FramingStrategy;
use socklab_harness::peer::{Behaviour, Flavour, Transport};

/// socklab — exact experiments about socket behaviour, with reports for people and CI.
///
/// socklab runs scenarios (small experiments such as the TCP "sticky packet" problem)
/// over real loopback sockets, records what the application wrote and read, checks the
/// result and writes a report folder: report.json, report.md and junit.xml.
///
/// Exit codes: 0 every check passed; 1 some check failed or a case did not finish;
/// 2 usage or configuration error; 130, 143, 129 interrupted by SIGINT, SIGTERM, SIGHUP
/// (run and probe first stop every process they started).
#[derive(Debug, Parser)]
#[command(name = "socklab", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every scenario with its parameters (type, default, unit) and metrics.
    List(ListArgs),
    /// Run scenarios or a suite and write a report folder.
    ///
    /// With no arguments, runs the built-in default suite. With scenario names, runs each
    /// once with its defaults (change them with --set). With --suite, runs a suite file.
    Run(RunArgs),
    /// Re-render index.html, report.md and junit.xml from DIR/report.json (cases/ files are kept).
    Report(ReportArgs),
    /// Explain a scenario in plain words: what it shows, why it happens, what fixes it.
    Explain(ExplainArgs),
    /// Compare a new run with a baseline: per case and metric, improved, regressed,
    /// unchanged or noisy (Mann-Whitney on repeats, a plain threshold on single runs).
    ///
    /// Prints Markdown (for a pull-request comment or $GITHUB_STEP_SUMMARY) and one line
    /// per regression on stderr. Exit 1 when --fail-on regression trips, 2 on bad input.
    Compare(CompareArgs),
    /// Run a reference server until Ctrl-C, to point your own clients at.
    ///
    /// Prints the address it bound (port 0 lets the OS choose), serves every client with
    /// the chosen framing and behaviour, logs each connection it closes for bad input, and
    /// prints its counters when stopped.
    Serve(ServeArgs),
    /// Test your own server: run every server-conformance check against it.
    ///
    /// Give the server as TARGET (IP:PORT, already running) or with --target-cmd (a
    /// command socklab starts per check, {port} replaced by a free port), with its framing
    /// and what it does with each message. Runs every check that applies (reassembly,
    /// large-message, concurrency, eof and its half-close variant, slow-reader, reset,
    /// hostile-length) as one suite and writes the usual report folder. Exit codes as for
    /// run: 0 every check passed, 1 one failed, 2 bad input.
    Probe(ProbeArgs),

    /// Run an impairment relay between your own client and server, until Ctrl-C.
    ///
    /// Listens on --listen (port 0 lets the OS choose) and prints the address; connect
    /// your client there instead of to the server. Every connection (UDP: every client
    /// address) gets its own connection to --upstream, and each direction a seeded
    /// schedule that splits, merges, delays, limits, stalls or resets the TCP stream, or
    /// loses, duplicates, reorders, delays or truncates UDP datagrams. The same --seed
    /// and the same input give the same output, so a failure replays. Prints each
    /// connection's counters when it closes, and a summary with the seed on Ctrl-C.
    ///
    /// Items combine: --split 3 --delay 1ms, or the whole spec at once with --impair
    /// 'split=3+delay=1ms'. Without any item the relay passes bytes straight through
    /// (splice), a baseline to compare with.
    ///
    /// Bounded: at most --max-connections at once (more are refused, warned about on
    /// stderr and counted), a TCP connection idle for --idle-timeout is closed, a UDP
    /// flow idle for --udp-flow-timeout is forgotten, and at most --max-queued bytes of
    /// delayed datagrams wait (more are dropped and counted).
    Proxy(ProxyArgs),

    /// Serve a runner over stdin and stdout: the other host's end of `run --peer-cmd`.
    ///
    /// Speaks socklab's control protocol (versioned JSON lines) on stdin and stdout: it
    /// starts server roles on ports of its choice, runs client workloads, reports what
    /// they saw, and stops them. It never runs commands, and answers anything it does not
    /// know with an error line. Start it with whatever places and authenticates processes:
    /// `ssh host socklab agent --stdio`, `kubectl exec -i pod -- socklab agent --stdio`,
    /// `ip netns exec B socklab agent --stdio`. Its servers listen on 0.0.0.0 (IPv4), on
    /// ports the OS chooses: the runner must reach this host directly (behind NAT, give
    /// the runner --peer-addr). It writes only protocol lines to stdout and its own
    /// errors to stderr, and ends when its input ends, within a second even in the middle of
    /// a request, so ending the command ends it. Exit
    /// 0 when its input ends (or `bye`), 1 when it ends mid-message, 2 when the runner's
    /// socklab or protocol version differs (one line naming both versions).
    Agent(AgentArgs),
}

/// Arguments of `socklab agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Speak the protocol on stdin and stdout (the only transport there is).
    #[arg(long, required = true)]
    pub stdio: bool,

    /// Longest request line accepted, in bytes (1 KiB..=64 MiB); a longer line gets an
    /// error reply and is dropped without being held.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..=(64 << 20)))]
    pub max_line: u64,
}

/// Arguments of `socklab list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON for machines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `socklab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenarios to run (see `socklab list`); with --suite, only the suite's runs of
    /// these scenarios.
    #[arg(value_name = "SCENARIO")]
    pub scenarios: Vec<String>,

    /// A suite file (TOML) listing runs with parameter matrices and thresholds.
    #[arg(long, value_name = "FILE")]
    pub suite: Option<PathBuf>,

    /// Set a parameter: --set read_size=5. A comma list makes a matrix (read_size=5,1024
    /// runs both); for list parameters separate alternatives with ';'. Repeatable. A
    /// scenario given a --set runs exactly the matrix set, without its built-in sweep.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    /// Keep each scenario's built-in sweep (see `socklab list`) even where --set applies;
    /// the --set values replace only the parameters they name.
    #[arg(long)]
    pub sweep: bool,

    /// Run only the case with this id (as reports and replay commands print it, e.g.
    /// 'tcp-coalescing[read_size=5]'), with its suite's thresholds and timeout. Repeatable.
    #[arg(long = "case", value_name = "ID")]
    pub cases: Vec<String>,

    /// Folder for the report; replaced atomically, never left half-written.
    #[arg(long, value_name = "DIR", default_value = "socklab-report")]
    pub out: PathBuf,

    /// Run seed; every case seed derives from it. Printed with each failure so the case
    /// can be replayed. Default: taken from the clock.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Run against a server that is already running at ADDR (IP:PORT) instead of
    /// socklab's reference peer; socklab connects once first, and stops (exit 2) if
    /// nothing listens there. Only scenarios that talk to a server over the network
    /// take a target (framing-throughput, server-conformance); others are refused.
    #[arg(long, value_name = "ADDR", value_parser = parse_target, conflicts_with = "target_cmd")]
    pub target: Option<Target>,

    /// Run against a server socklab starts for each case with `sh -c CMD`, {port} replaced
    /// by a free port; socklab waits until it listens, stops it afterwards (SIGTERM, then
    /// SIGKILL; also when socklab is interrupted), and reports its exit status, output
    /// tail and CPU time.
    #[arg(long, value_name = "CMD", value_parser = parse_target_cmd)]
    pub target_cmd: Option<Target>,

    /// Run the server side of each case on another host, through `socklab agent --stdio`
    /// started with `sh -c CMD`: 'ssh user@host socklab agent --stdio', 'kubectl exec -i
    /// pod -- socklab agent --stdio', 'ip netns exec B socklab agent --stdio'. The command
    /// does placement and authentication; control goes over its stdin and stdout, data
    /// directly between the hosts. Scenarios that take a peer: tcp-coalescing,
    /// recv-buffer, framing-throughput (others, and link=veth, are refused before any case
    /// runs). Versions are checked first: a different socklab on the other host is one
    /// line and exit 2. The agent only speaks its protocol; it never runs commands. The
    /// report names both hosts (kernel, CPUs, socklab version) and the command.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["target", "target_cmd"])]
    pub peer_cmd: Option<String>,

    /// With --peer-cmd: the address to connect to the agent's servers on, when the
    /// agent's own view of its addresses differs (NAT). An IP address or a host name
    /// (resolved once). Default: 127.0.0.1 when the agent shares this network namespace,
    /// else the address ssh reached it on (SSH_CONNECTION), else its address in one of
    /// this host's networks, else its first.
    #[arg(long, value_name = "ADDR", requires = "peer_cmd", value_parser = parse_peer_addr)]
    pub peer_addr: Option<IpAddr>,

    /// Run every case N times (1..=1000), interleaved with the others; the report keeps
    /// every sample, shows medians and their spread, and `socklab compare` tests
    /// differences against the noise. Overrides the suite's `repeat`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,

    /// Per-case timeout in seconds, overriding the suite's (1..=3600).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
}

/// Arguments of `socklab probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The server to probe: IP:PORT of a server that is already running.
    #[arg(
        value_name = "TARGET",
        value_parser = parse_target,
        required_unless_present = "target_cmd",
        conflicts_with = "target_cmd"
    )]
    pub target: Option<Target>,

    /// Instead of TARGET: a command socklab starts for each check with `sh -c CMD`,
    /// {port} replaced by a free port; socklab waits until it listens, stops it afterwards,
    /// and measures its CPU (the eof check needs that to see a server spin).
    #[arg(long, value_name = "CMD", value_parser = parse_target_cmd)]
    pub target_cmd: Option<Target>,

    /// The server's framing: raw, line, cobs, u8, u16be, u32be, u32le, u64be, i32le, varint,
    /// json-header, fixed:N, stop-and-wait.
    #[arg(long, default_value = "u32be")]
    pub framing: FramingStrategy,

    /// What the server does with each message: echo, echo-upper, sink (reads, replies
    /// nothing), source (sends messages, ignores input).
    #[arg(long, default_value = "echo")]
    pub behaviour: Behaviour,

    /// Set a parameter of the checks: --set clients=4 (see `socklab list`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    /// Folder for the report; replaced atomically, never left half-written.
    #[arg(long, value_name = "DIR", default_value = "socklab-report")]
    pub out: PathBuf,

    /// Run seed (the random cuts of reassembly derive from it). Default: from the clock.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Per-check timeout in seconds (1..=3600; default 30).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
}

/// An IP address, or a host name resolved now.
fn parse_peer_addr(text: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = text.parse() {
        return Ok(ip);
    }
    (text, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| addr.ip())
        .ok_or_else(|| format!("`{text}` is neither an IP address nor a host name that resolves"))
}

fn parse_target_cmd(text: &str) -> Result<Target, TargetError> {
    CommandTemplate::new(text).map(Target::Command)
}

/// A server's address: `IP:PORT` with a port a server can listen on (not 0).
fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(format!(
            "`{text}` has port 0, where no server can be reached: give the port your server listens on, e.g. \
             127.0.0.1:9000"
        )),
        Ok(addr) => Ok(addr),
        Err(_) => Err(format!("cannot parse `{text}`: expected IP:PORT, e.g. 127.0.0.1:9000 or [::1]:9000")),
    }
}

/// A byte count of at least 1.
fn at_least_one_byte(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => {
            Err("0 bytes holds nothing, and every connection with a partial frame would be closed: give at \
                      least 1 (the default is 67108864, 64 MiB)"
                .to_string())
        }
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(format!("`{text}` is not a byte count: {e}")),
    }
}

/// Arguments of `socklab report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report folder written by `socklab run`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Arguments of `socklab serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Framing: raw, line, cobs, u8, u16be, u32be, u32le, u64be, i32le, varint, json-header,
    /// fixed:N, stop-and-wait.
    #[arg(long, default_value = "u32be")]
    pub framing: FramingStrategy,

    /// What to do with each message: echo, echo-upper, sink (count and verify), source
    /// (send messages until the client leaves).
    #[arg(long, default_value = "echo")]
    pub behaviour: Behaviour,

    /// How to serve: tokio (async: many connections on a few threads; every wait for data
    /// goes through epoll_wait, a system call and a runtime wake-up more per message than a
    /// blocking recv), threaded (a thread per connection or, over UDP, one thread, blocking
    /// in recv: the shortest round trip, as sockperf's server; one thread per client),
    /// sequential (one client at a time).
    #[arg(long, default_value = "tokio")]
    pub flavour: Flavour,

    /// tcp, or udp (each datagram holds whole frames).
    #[arg(long, default_value = "tcp")]
    pub transport: Transport,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Largest frame accepted, in bytes (1..=1 GiB), for every framing, fixed:N
    /// included; a bigger one closes that connection.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub max_frame: usize,

    /// Close a connection that moves no byte for this many seconds (a client that sends
    /// half a frame and goes silent, or stops reading).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,

    /// Close a connection whose frame is still unfinished this many seconds after its
    /// first byte (a client trickling a frame a byte at a time, which the idle timeout
    /// never catches); stop-and-wait: from the announcement to the last byte of the body.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub frame_timeout: u64,

    /// Most bytes held for clients across all connections, in every framing: unfinished
    /// frames (stop-and-wait: each announced length, before it is acknowledged) and replies
    /// a client has not read (past 256 KiB a connection); the connection that would exceed
    /// it is closed (load shed, logged). At least 1.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = at_least_one_byte)]
    pub max_buffered: usize,

    /// Most TCP connections served at once (a thread each with --flavour threaded); one
    /// more is accepted and closed at once, logged and counted.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// source: payload bytes per message sent (at least 16).
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(16..=(1 << 20)))]
    pub source_size: u64,
}

/// Arguments of `socklab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report folder or its report.json.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// The new run: a report folder or its report.json.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// Relative change below which a metric is unchanged, e.g. 5% (default: the new
    /// run's suite [compare] threshold, else 5%). Per-metric thresholds of the suite stay.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub threshold: Option<f64>,

    /// Exit 1 when a metric regressed or a check that passed now fails.
    #[arg(long, value_name = "WHAT", default_value = "never")]
    pub fail_on: FailOn,

    /// Also write compare.md and compare.json into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// When `socklab compare` exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Never: report only.
    Never,
    /// When a metric regressed or a check broke.
    Regression,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    socklab_harness::suite::percent_from(&toml::Value::String(text.to_string()))
}

/// Arguments of `socklab proxy`. Impairment values are parsed by socklab's spec parser,
/// so a bad one is a one-line error naming what is valid (exit 2).
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The server to relay to (IP:PORT, not port 0).
    #[arg(long, value_name = "ADDR", value_parser = parse_upstream)]
    pub upstream: SocketAddr,

    /// tcp, or udp.
    #[arg(long, default_value = "tcp")]
    pub transport: Transport,

    /// Seed of every random choice (with the connection index and direction). Default:
    /// taken from the clock, and printed so the run can be replayed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// A whole spec: items joined with +, e.g. 'split=1..7+delay=1ms'; the flags below
    /// add to it.
    #[arg(long, value_name = "SPEC")]
    pub impair: Option<String>,

    /// TCP: cut the stream into pieces of N bytes (1 = byte by byte), or of a seeded size
    /// in A..B; each piece its own write, TCP_NODELAY, --gap apart.
    #[arg(long, value_name = "N|A..B")]
    pub split: Option<String>,

    /// TCP: hold writes for a time window (20ms) and write them as one, or write in
    /// pieces of a size (4096B); a held byte never waits longer than --hold.
    #[arg(long, value_name = "DUR|SIZE")]
    pub merge: Option<String>,

    /// TCP: a seeded mix of splits (1..=8 bytes) and merges (9..=1024).
    #[arg(long)]
    pub random: bool,

    /// TCP: pause between pieces (default 1ms for --split, 200us for --random).
    #[arg(long, value_name = "DUR")]
    pub gap: Option<String>,

    /// TCP: longest a piece waits for its bytes before it is written short (default 5ms).
    #[arg(long, value_name = "DUR")]
    pub hold: Option<String>,

    /// Delay every byte (datagram) by DUR, or by a seeded time in A..B; TCP jitter never
    /// reorders bytes.
    #[arg(long, value_name = "DUR|A..B")]
    pub delay: Option<String>,

    /// TCP: a token bucket: 1MiB/s, 100KB/s, 10mbit.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,

    /// TCP: forward N bytes per direction, then reset both connections (RST).
    #[arg(long, value_name = "N")]
    pub reset_after: Option<String>,

    /// TCP: after N bytes, forward nothing for T (once): T@N, e.g. 200ms@1KiB.
    #[arg(long, value_name = "T@N")]
    pub stall: Option<String>,

    /// Impair only one direction: up (client to server) or down; default both.
    #[arg(long, value_name = "both|up|down")]
    pub dir: Option<String>,

    /// UDP: drop each datagram with probability P (0..=1).
    #[arg(long, value_name = "P")]
    pub loss: Option<String>,

    /// UDP: send each datagram twice with probability P.
    #[arg(long, value_name = "P")]
    pub duplicate: Option<String>,

    /// UDP: hold a datagram back behind the next one (or next K: P/K) with probability P.
    #[arg(long, value_name = "P[/K]")]
    pub reorder: Option<String>,

    /// UDP: cut datagrams to N bytes (all, or with a probability: N@P).
    #[arg(long, value_name = "N[@P]")]
    pub truncate: Option<String>,

    /// Connections (UDP: client addresses) served at once; more are refused (a TCP
    /// client is closed at once, a UDP datagram from a new address dropped), logged and
    /// counted.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_connections: u64,

    /// TCP: close a connection that moves no byte either way for this many seconds (a
    /// client that went silent, a peer that stopped reading), freeing its slot.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,

    /// UDP: forget a client address that sent and received nothing for this many seconds
    /// (its next datagram starts a new flow), freeing its slot.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub udp_flow_timeout: u64,

    /// UDP: most bytes of datagrams waiting for their time (--delay), across all flows,
    /// each counted with 128 bytes of bookkeeping; past it a datagram is dropped and
    /// counted.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range((1 << 20)..=(1 << 34)))]
    pub max_queued: u64,
}

/// Arguments of `socklab explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The scenario (see `socklab list`).
    #[arg(value_name = "SCENARIO")]
    pub scenario: String,
}
