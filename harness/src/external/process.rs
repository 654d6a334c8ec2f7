//! A `--target-cmd` server: started per case, watched, stopped, and recorded.
//!
//! [`TargetProcess::start`] picks a free port (binds `127.0.0.1:0`, reads the port,
//! closes), runs the command with `sh -c` in a process group of its own, and waits until
//! something in the group listens on that port — read from `/proc/net/tcp` and `tcp6`,
//! so no probe connection disturbs a server that serves one client at a time. A command
//! that exits first, or never listens within the timeout, is an error carrying its
//! stderr tail. [`TargetProcess::stop`] sends SIGTERM to the whole group, SIGKILL after a
//! grace period, reaps the command, and returns a [`TargetRecord`]: exit status, the
//! last 50 lines of stdout and stderr, and the CPU time the group used while the case ran
//! (`/proc/PID/stat`, every process of the group, children it reaped included).
//!
//! From start to stop the group is in the process-wide list of [`groups`], so a
//! `socklab` that is interrupted stops it too.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CommandTemplate, TargetError, groups};
use crate::report::TargetRecord;

/// Lines of stdout and stderr a record keeps, the last ones.
pub const TAIL_LINES: usize = 50;
/// Longest line kept, in characters; longer ones are cut.
const MAX_LINE: usize = 1000;
/// How often readiness and exit are checked while starting and stopping.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// The last lines of a stream.
pub(crate) type Tail = Arc<Mutex<VecDeque<String>>>;

/// A running target command.
#[derive(Debug)]
pub struct TargetProcess {
    command: String,
    addr: SocketAddr,
    child: Mutex<Child>,
    pgid: i32,
    stdout: Tail,
    stderr: Tail,
    readers: Mutex<Vec<JoinHandle<()>>>,
    cpu_at_ready: Duration,
}

impl TargetProcess {
    /// Starts `template` on a free loopback port and waits up to `ready_timeout` for it
    /// to listen there.
    ///
    /// # Errors
    /// [`TargetError::Start`] when the command cannot be spawned, exits before it
    /// listens, or does not listen in time; the message ends with its stderr tail.
    pub fn start(template: &CommandTemplate, ready_timeout: Duration) -> Result<TargetProcess, TargetError> {
        let port = free_port().map_err(|e| TargetError::Start(format!("find a free port: {e}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let command = template.with_port(port);
        let starting = groups::starting();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TargetError::Start(format!("cannot start `{command}`: {e}")))?;
        let pgid = child.id() as i32;
        groups::track(pgid);
        drop(starting);
        let (stdout, stderr) = (Tail::default(), Tail::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(keep_tail(out, stdout.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(keep_tail(err, stderr.clone()));
        }
        let mut process = TargetProcess {
            command,
            addr,
            child: Mutex::new(child),
            pgid,
            stdout,
            stderr,
            readers: Mutex::new(readers),
            cpu_at_ready: Duration::ZERO,
        };
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Some(status) = process.try_wait() {
                return Err(
                    process.start_error(&format!("exited ({}) before listening on {addr}", describe(status)))
                );
            }
            if listening(port) {
                break;
            }
            if Instant::now() >= deadline {
                process.kill_group();
                return Err(process.start_error(&format!(
                    "did not listen on {addr} within {} s",
                    ready_timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(CHECK_EVERY);
        }
        process.cpu_at_ready = group_cpu(pgid);
        Ok(process)
    }

    /// Where the command listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// CPU time its process group has used since it started listening.
    pub fn cpu_since_ready(&self) -> Duration {
        group_cpu(self.pgid).saturating_sub(self.cpu_at_ready)
    }

    /// Time the group's live processes have spent running or waiting to run, from
    /// `/proc/PID/schedstat`; `None` where the kernel does not keep it. Unlike CPU time
    /// this does not depend on the machine's load: a process that spins is runnable all
    /// the time (running, or queued behind others), one that blocks is not. Take the
    /// difference of two readings; processes that exit in between drop out of the sum.
    pub fn runnable_time(&self) -> Option<Duration> {
        group_runnable(self.pgid)
    }

    /// Whether the command (the shell it runs in) is still running.
    pub fn is_running(&self) -> bool {
        self.try_wait().is_none()
    }

    /// Stops the whole process group — SIGTERM, then SIGKILL after `grace` — reaps the
    /// command and returns what it did.
    pub fn stop(&self, grace: Duration) -> TargetRecord {
        let cpu = self.cpu_since_ready();
        let status = match self.try_wait() {
            Some(status) => Some(status),
            None => {
                signal_group(self.pgid, libc::SIGTERM);
                self.wait_until(Instant::now() + grace).or_else(|| {
                    self.kill_group();
                    self.wait_until(Instant::now() + Duration::from_secs(5))
                })
            }
        };
        // Whatever else of the group is left gets SIGKILL too, so nothing outlives the case.
        signal_group(self.pgid, libc::SIGKILL);
        groups::forget(self.pgid);
        if let Ok(mut readers) = self.readers.lock() {
            for reader in readers.drain(..) {
                let _ = reader.join();
            }
        }
        TargetRecord {
            command: self.command.clone(),
            addr: self.addr.to_string(),
            exit: status.map_or_else(|| "did not exit after SIGKILL".to_string(), describe),
            cpu_ms: cpu.as_secs_f64() * 1e3,
            stdout_tail: lines(&self.stdout),
            stderr_tail: lines(&self.stderr),
        }
    }

    fn try_wait(&self) -> Option<ExitStatus> {
        self.child.lock().ok().and_then(|mut child| child.try_wait().ok().flatten())
    }

    fn wait_until(&self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(CHECK_EVERY);
        }
    }

    fn kill_group(&self) {
        signal_group(self.pgid, libc::SIGKILL);
        if let Ok(mut child) = self.child.lock() {
            let _ = child.wait();
        }
    }

    /// `` `cmd` WHAT; its stderr ends: …`` on one line.
    fn start_error(&self, what: &str) -> TargetError {
        // Give the readers a moment to take in the last lines the command wrote.
        if let Ok(mut readers) = self.readers.lock() {
            if self.try_wait().is_some() {
                for reader in readers.drain(..) {
                    let _ = reader.join();
                }
            }
        }
        let tail: Vec<String> = lines(&self.stderr).into_iter().rev().take(3).rev().collect();
        let tail = if tail.is_empty() { "(nothing)".to_string() } else { tail.join(" | ") };
        TargetError::Start(format!("--target-cmd `{}` {what}; its stderr ends: {tail}", self.command))
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.kill_group();
        }
        groups::forget(self.pgid);
    }
}

/// A port nobody holds right now.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether some socket of this network namespace listens on TCP `port` (any address).
fn listening(port: u16) -> bool {
    const LISTEN: &str = "0A";
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|path| {
        std::fs::read_to_string(path).is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1).and_then(|a| a.rsplit(':').next());
                fields.get(3) == Some(&LISTEN)
                    && local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
            })
        })
    })
}

/// User + system CPU of every process in group `pgid`, with the children they reaped.
fn group_cpu(pgid: i32) -> Duration {
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let ticks_per_s = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    let mut ticks = 0u64;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the command name, which may hold spaces: "(name) S ppid pgrp ...".
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.get(2).and_then(|p| p.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        // utime, stime, cutime, cstime are fields 14..=17 of stat: 11..=14 here.
        ticks += fields.iter().skip(11).take(4).filter_map(|f| f.parse::<u64>().ok()).sum::<u64>();
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_s)
}

/// Run + wait-on-runqueue time (the first two fields of `/proc/PID/schedstat`, in ns) of
/// every live process in group `pgid`; `None` when no such file can be read.
fn group_runnable(pgid: i32) -> Option<Duration> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut nanos = None;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        if rest.split(' ').nth(2).and_then(|p| p.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        let Ok(schedstat) = std::fs::read_to_string(entry.path().join("schedstat")) else { continue };
        let fields: Vec<u64> = schedstat.split_whitespace().take(2).filter_map(|f| f.parse().ok()).collect();
        if fields.len() == 2 {
            *nanos.get_or_insert(0u64) += fields[0] + fields[1];
        }
    }
    nanos.map(Duration::from_nanos)
}

pub(crate) fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Reads `stream` to its end on a thread, keeping its last [`TAIL_LINES`] lines.
pub(crate) fn keep_tail(stream: impl Read + Send + 'static, tail: Tail) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        // Each pass reads one line or ends at EOF; a line is cut to MAX_LINE characters.
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text: String = String::from_utf8_lossy(&line).trim_end().chars().take(MAX_LINE).collect();
            if let Ok(mut tail) = tail.lock() {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
            line.clear();
        }
    })
}

pub(crate) fn lines(tail: &Tail) -> Vec<String> {
    tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default()
}

/// `exited with status 3`, `killed by signal 15 (SIGTERM)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal} ({})", signal_name(signal)),
        _ => "ended".to_string(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(command: &str) -> CommandTemplate {
        CommandTemplate::new(command).unwrap()
    }

    #[test]
    fn a_command_that_exits_at_once_is_an_error_with_its_stderr() {
        let err = TargetProcess::start(&template("echo oops {port} >&2; exit 3"), Duration::from_secs(5))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exited (exited with status 3) before listening"), "{text}");
        assert!(text.contains("its stderr ends: oops "), "{text}");
    }

    #[test]
    fn a_command_that_never_listens_times_out_and_is_killed() {
        let started = Instant::now();
        let err =
            TargetProcess::start(&template("sleep 30 # {port}"), Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("did not listen on 127.0.0.1:"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "the sleep was killed, not waited for");
    }

    #[test]
    fn a_listening_command_is_ready_then_stopped_and_recorded() {
        let python = "exec python3 -c 'import socket,sys,time\n\
                      s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                      s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); print(\"ready\", flush=True)\n\
                      time.sleep(60)' {port}";
        let process = TargetProcess::start(&template(python), Duration::from_secs(10)).unwrap();
        assert!(std::net::TcpStream::connect(process.addr()).is_ok());
        assert!(process.runnable_time().is_some(), "the group's schedstat is readable");
        let record = process.stop(Duration::from_secs(2));
        assert_eq!(record.exit, "killed by signal 15 (SIGTERM)");
        assert_eq!(record.stdout_tail, ["ready"]);
        assert!(record.cpu_ms >= 0.0);
        assert_eq!(process.runnable_time(), None, "nothing of the group is left to read");
        assert!(!process.is_running());
    }
}
