//! CPU time of one thread of this process, read from outside it, so a scenario can say
//! what its server thread alone cost (a server spinning on `recv()` returning 0) rather
//! than the whole process ([`CpuTime`](super::CpuTime)).
//!
//! Two instruments, independent of each other:
//!
//! - [`ThreadCpu::read`]: `/proc/self/task/TID/schedstat`, the scheduler's own
//!   nanosecond accounting: time on a CPU, time waiting on a run queue (runnable but
//!   not running, because other work held the CPUs), and timeslices.
//! - [`stat_cpu`]: `utime + stime` from `/proc/self/task/TID/stat`, in clock ticks
//!   (1/100 s on Linux), what `top -H` and `ps -L` show.
//!
//! The two must agree to within a couple of ticks; the tests check it on a busy thread.
//! schedstat is brought up to date when the thread is switched and at every scheduler
//! tick, so a running thread's figure lags by at most a tick; a thread timing itself uses
//! [`own_cpu`] instead.

use std::io;
use std::time::Duration;

/// The kernel's id of the calling thread (`gettid()`), for [`ThreadCpu::read`].
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`), exact to the
/// moment of the call: for a thread timing itself, where schedstat would lag by up to a
/// scheduler tick. Zero if the clock cannot be read.
pub fn own_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// What the scheduler recorded for one thread (`/proc/self/task/TID/schedstat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Time the thread ran on a CPU, user and kernel together.
    pub on_cpu: Duration,
    /// Time it was runnable but waited for a CPU.
    pub waiting: Duration,
    /// Times it was put on a CPU.
    pub timeslices: u64,
}

impl ThreadCpu {
    /// Reads thread `tid` of this process.
    ///
    /// # Errors
    /// When the thread has ended (its `/proc` entry is gone) or the kernel has no
    /// schedstat (built without `CONFIG_SCHED_INFO`).
    pub fn read(tid: i32) -> io::Result<ThreadCpu> {
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))?;
        parse_schedstat(&text).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("unexpected schedstat line {text:?}"))
        })
    }

    /// Field by field, `self - earlier` (saturating).
    pub fn since(&self, earlier: &ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            waiting: self.waiting.saturating_sub(earlier.waiting),
            timeslices: self.timeslices.saturating_sub(earlier.timeslices),
        }
    }
}

/// `on_cpu_ns waiting_ns timeslices`.
fn parse_schedstat(text: &str) -> Option<ThreadCpu> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let on_cpu = fields.next()?.ok()?;
    let waiting = fields.next()?.ok()?;
    let timeslices = fields.next()?.ok()?;
    Some(ThreadCpu {
        on_cpu: Duration::from_nanos(on_cpu),
        waiting: Duration::from_nanos(waiting),
        timeslices,
    })
}

/// `utime + stime` of thread `tid` from `/proc/self/task/TID/stat`, converted from clock
/// ticks: the coarse instrument `top -H` reads, to cross-check [`ThreadCpu::on_cpu`].
///
/// # Errors
/// When the thread has ended or the line is not in the expected layout.
pub fn stat_cpu(tid: i32) -> io::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("unexpected stat line {text:?}"))
    })?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second))
}

/// `utime + stime` in ticks: fields 14 and 15 of `stat`, counted after the command name,
/// which is in parentheses and may hold spaces.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; utime is field 14, stime 15.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    #[test]
    fn fixed_lines_parse() {
        assert_eq!(
            parse_schedstat("68719869 86582905 261\n"),
            Some(ThreadCpu {
                on_cpu: Duration::from_nanos(68_719_869),
                waiting: Duration::from_nanos(86_582_905),
                timeslices: 261
            })
        );
        assert_eq!(parse_schedstat("12 x 3"), None);
        let stat = "17191 (ba sh) S 17190 17191 17191 0 -1 4194560 8428 4116310 0 736 7 6 15100 1544 20 0";
        assert_eq!(parse_stat_ticks(stat), Some(13));
    }

    #[test]
    fn a_spinning_thread_is_seen_by_both_instruments_and_a_sleeping_one_by_neither() {
        let (tid_tx, tid_rx) = mpsc::channel();
        let spinner = std::thread::spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let until = Instant::now() + Duration::from_millis(400);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            x
        });
        let (sleeper_tx, sleeper_rx) = mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            sleeper_tx.send(current_tid()).unwrap();
            std::thread::sleep(Duration::from_millis(400));
        });
        let (tid, sleeper_tid) = (tid_rx.recv().unwrap(), sleeper_rx.recv().unwrap());
        let before =
            (ThreadCpu::read(tid).unwrap(), stat_cpu(tid).unwrap(), ThreadCpu::read(sleeper_tid).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        let after =
            (ThreadCpu::read(tid).unwrap(), stat_cpu(tid).unwrap(), ThreadCpu::read(sleeper_tid).unwrap());
        let busy = after.0.since(&before.0);
        // Runnable the whole time: on a CPU or waiting for one, whatever else the
        // machine runs.
        assert!(busy.on_cpu + busy.waiting >= Duration::from_millis(250), "{busy:?}");
        // The tick-based count agrees with the nanosecond one to within a few ticks.
        let ticks = after.1.saturating_sub(before.1);
        let diff = ticks.abs_diff(busy.on_cpu);
        assert!(diff <= Duration::from_millis(40), "stat {ticks:?} vs schedstat {:?}", busy.on_cpu);
        let idle = after.2.since(&before.2);
        assert!(idle.on_cpu < Duration::from_millis(15), "{idle:?}");
        spinner.join().unwrap();
        sleeper.join().unwrap();
        assert!(ThreadCpu::read(tid).is_err(), "an ended thread has no /proc entry");
    }
}
