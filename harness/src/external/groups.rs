//! Every process group socklab started and has not stopped yet, in one process-wide
//! list, so whoever ends the process early (the `socklab` binary on SIGINT, SIGTERM or
//! SIGHUP, or when its output is closed) stops them all in one place.
//!
//! A `--target-cmd` server and a `--peer-cmd` agent run in process groups of their own
//! (so a signal for their group reaches whatever they start, and none meant for socklab's
//! terminal reaches them): Ctrl-C on the terminal signals socklab only. Without this
//! list, socklab ended and its servers ran on. The runner starts target commands from
//! case threads on runtimes of their own and once in preflight; each start [`track`]s its
//! group here and each stop [`forget`]s it, so [`stop_all`] never needs to know where a
//! group came from.
//!
//! Once [`stop_all`] has begun, a group tracked afterwards (a case thread that spawned a
//! command just then) is killed at once: nothing started during the shutdown outlives it.
//! A start holds a [`Starting`] from before its spawn until its group is tracked, and
//! [`stop_all`] waits for those (briefly) before it reads the list, so a command spawned
//! a moment before the signal, and not yet in the list, is not missed either.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::process::signal_group;

/// How often [`stop_all`] looks whether the groups are gone.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long [`stop_all`] waits for SIGKILL to take effect before it reaps.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// The groups, and whether the process is shutting down.
struct Groups {
    pgids: Vec<i32>,
    closing: bool,
}

static GROUPS: Mutex<Groups> = Mutex::new(Groups { pgids: Vec::new(), closing: false });

/// Starts under way: spawned or spawning, not yet tracked.
static STARTING: AtomicUsize = AtomicUsize::new(0);

/// How long [`stop_all`] waits for starts under way to track their groups.
const STARTS_WAIT: Duration = Duration::from_secs(1);

/// A start under way, from before its spawn until its group is [`track`]ed (drop it
/// after that, or when the spawn failed).
#[must_use = "hold it across the spawn and the track"]
pub struct Starting(());

/// Announces a start: call before spawning a command in a group of its own.
pub fn starting() -> Starting {
    STARTING.fetch_add(1, Ordering::SeqCst);
    Starting(())
}

impl Drop for Starting {
    fn drop(&mut self) {
        STARTING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn groups() -> std::sync::MutexGuard<'static, Groups> {
    // A thread that panicked while holding the lock left the list as it was: still valid.
    GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records a process group socklab just started. During [`stop_all`] the group is
/// killed at once instead.
pub fn track(pgid: i32) {
    let mut groups = groups();
    if groups.closing {
        signal_group(pgid, libc::SIGKILL);
    }
    if !groups.pgids.contains(&pgid) {
        groups.pgids.push(pgid);
    }
}

/// Removes a group that was stopped (its leader reaped): its number may be reused.
pub fn forget(pgid: i32) {
    groups().pgids.retain(|&p| p != pgid);
}

/// The groups tracked now.
pub fn tracked() -> Vec<i32> {
    groups().pgids.clone()
}

/// Stops every tracked group: SIGTERM to each, up to `grace` for all of them to end,
/// then SIGKILL to what is left, and reaps the leaders (children of this process). From
/// now on a newly tracked group is killed at once. Returns how many groups there were.
/// Takes at most `grace` plus two seconds.
pub fn stop_all(grace: Duration) -> usize {
    groups().closing = true;
    // A start that spawned before `closing` was set tracks its group within moments.
    let deadline = Instant::now() + STARTS_WAIT;
    while STARTING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let pgids = groups().pgids.clone();
    for &pgid in &pgids {
        signal_group(pgid, libc::SIGTERM);
    }
    wait_until_gone(&pgids, Instant::now() + grace);
    for &pgid in &pgids {
        signal_group(pgid, libc::SIGKILL);
    }
    wait_until_gone(&pgids, Instant::now() + KILL_WAIT);
    for &pgid in &pgids {
        reap(pgid);
    }
    pgids.len()
}

/// Waits until no process of `pgids` runs, or `deadline`.
fn wait_until_gone(pgids: &[i32], deadline: Instant) {
    // Each pass reads /proc once per group; the loop ends at the deadline.
    while pgids.iter().any(|&pgid| group_alive(pgid)) && Instant::now() < deadline {
        std::thread::sleep(CHECK_EVERY);
    }
}

/// Collects the exit status of this process's children in group `pgid` that have ended,
/// so none is left a zombie for an init that does not reap (some containers' PID 1).
fn reap(pgid: i32) {
    // Each pass reaps one child; WNOHANG returns 0 when none has ended, -1 when none is
    // left. A group has at most a few children of ours: the leader.
    for _ in 0..64 {
        // SAFETY: waitpid(2) with a null status pointer writes nothing.
        if unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) } <= 0 {
            break;
        }
    }
}

/// Whether a process of group `pgid` still runs (a zombie, dead and not yet reaped, does
/// not count: `kill(-pgid, 0)` would still find it).
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { return false };
        // "(name) S ppid pgrp ...": the state, then the group, after the name's last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return false };
        let mut fields = rest.split(' ');
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn a_group_is_alive_until_its_processes_end() {
        let mut child = Command::new("sh").args(["-c", "sleep 30"]).process_group(0).spawn().unwrap();
        let pgid = child.id() as i32;
        assert!(group_alive(pgid));
        signal_group(pgid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(pgid) && Instant::now() < deadline {
            std::thread::sleep(CHECK_EVERY);
        }
        assert!(!group_alive(pgid), "a killed group (its leader a zombie until reaped) is gone");
        child.wait().unwrap();
    }

    #[test]
    fn tracking_twice_keeps_one_entry_and_forget_removes_it() {
        // A pgid no process can have (pid_max is at most 2^22).
        let pgid = i32::MAX - 7;
        track(pgid);
        track(pgid);
        assert_eq!(tracked().iter().filter(|&&p| p == pgid).count(), 1);
        forget(pgid);
        assert!(!tracked().contains(&pgid));
    }
}
