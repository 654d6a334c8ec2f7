//! How `socklab` ends early: interrupted by SIGINT, SIGTERM or SIGHUP it stops every
//! process group it started (a `--target-cmd` server, a `--peer-cmd` agent) and exits
//! 128 + the signal; printing into a pipe nobody reads any more it ends by SIGPIPE,
//! quietly, never with a panic.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// The socklab binary under test, as a plain process (its pid is signalled).
fn socklab() -> Command {
    let mut command = Command::cargo_bin("socklab").unwrap();
    command.env("NO_COLOR", "1");
    command
}

/// The process ids in `path` (one a line), once it has `count` of them; `None` after
/// `within`.
fn pids_in(path: &Path, count: usize, within: Duration) -> Option<Vec<i32>> {
    let deadline = Instant::now() + within;
    // Each pass reads the file once; the loop ends at the deadline.
    while Instant::now() < deadline {
        let pids: Vec<i32> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        if pids.len() >= count {
            return Some(pids);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Processes of group `pgid` that still run (zombies, dead and waiting to be reaped,
/// do not).
fn live_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split(' ').collect();
            let alive = fields.first() != Some(&"Z") && fields.first() != Some(&"X");
            (alive && fields.get(2)?.parse::<i32>().ok()? == pgid).then_some(pid)
        })
        .collect()
}

/// Waits up to `within` for `child` to exit; kills it (and fails) after that.
fn exit_within(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    // Each pass checks once; the loop ends at the deadline.
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("socklab did not exit within {within:?} of the signal");
}

/// Sends `signal` to socklab, checks its exit status, then that nothing of the groups
/// `pgids` runs 5 s later (stopping what does, so a failure leaves nothing behind).
fn interrupt_and_check(child: &mut Child, signal: i32, pgids: &[i32]) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let status = exit_within(child, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left: Vec<i32> = pgids.iter().flat_map(|&pgid| live_members(pgid)).collect();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = pgids.iter().flat_map(|&pgid| live_members(pgid)).collect();
    }
    let described: Vec<String> = left
        .iter()
        .map(|pid| {
            let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("{pid} {}", String::from_utf8_lossy(&command).replace('\0', " "))
        })
        .collect();
    for &pgid in pgids {
        // SAFETY: kill(2) of a group this test's socklab started; ESRCH when gone.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    assert!(left.is_empty(), "signal {signal}: {described:?} of groups {pgids:?} outlived socklab");
    assert_eq!(status.code(), Some(128 + signal), "exit 128 + signal {signal}: {status:?}");
}

/// A server that accepts connections and never answers: every check waits on it.
const SILENT_SERVER: &str = "import socket,sys,time\ns=socket.socket()\n\
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
    s.bind((\"127.0.0.1\", int(sys.argv[1])))\ns.listen()\ntime.sleep(600)";

#[test]
fn an_interrupted_probe_stops_the_target_command_it_started() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // `$$` is the shell's pid, the group's id; `exec` keeps it for python.
        let command = format!("echo $$ >> {}; exec python3 -c '{SILENT_SERVER}' {{port}}", pids.display());
        let mut child = socklab()
            .args(["probe", "--timeout", "60", "--target-cmd", &command, "--out"])
            .arg(dir.path().join("r"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The preflight's server (started and stopped), then the first check's.
        let Some(groups) = pids_in(&pids, 2, Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the target command was not started twice within 30 s");
        };
        interrupt_and_check(&mut child, signal, &groups);
    }
}

#[test]
fn an_interrupted_run_stops_an_agent_that_outlives_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let binary = socklab().get_program().to_string_lossy().into_owned();
    // An agent command that goes on after its input ends (`sleep` after the agent).
    let peer = format!("echo $$ >> {}; {binary} agent --stdio; sleep 600", pids.display());
    // The reader on the agent waits 10 s before it reads: the case is under way then.
    let mut child = socklab()
        .args(["run", "tcp-coalescing", "--set", "read_delay_ms=10000", "--peer-cmd", &peer, "--out"])
        .arg(dir.path().join("r"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let Some(groups) = pids_in(&pids, 1, Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("the agent was not started within 30 s");
    };
    std::thread::sleep(Duration::from_millis(500));
    interrupt_and_check(&mut child, libc::SIGTERM, &groups);
}

/// A pipe whose reading end is already closed, as after `| head -1` has read its line.
fn closed_pipe() -> Stdio {
    let (writer, reader) = UnixStream::pair().unwrap();
    drop(reader);
    Stdio::from(OwnedFd::from(writer))
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly_by_sigpipe() {
    // stdout closed, stderr read: `list` prints to stdout.
    let output = socklab().arg("list").stdout(closed_pipe()).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "nothing on stderr, no panic: {stderr}");
    // Both closed (`socklab run ... 2>&1 | head -1`): a run's progress goes to stderr.
    let dir = tempfile::tempdir().unwrap();
    let status = socklab()
        .args(["run", "tcp-coalescing", "--out"])
        .arg(dir.path().join("r"))
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .status()
        .unwrap();
    assert_ne!(status.code(), Some(101), "no panic");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
}
