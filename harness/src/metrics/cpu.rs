//! CPU time of this process (user and system), from `getrusage`, to report what a case
//! cost besides wall-clock time.

use std::time::Duration;

/// User and system CPU time consumed by this process so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time in user space.
    pub user: Duration,
    /// Time in the kernel on this process's behalf (system calls, softirqs charged to it).
    pub system: Duration,
}

impl CpuTime {
    /// CPU time of the whole process so far (all threads); zero if the kernel refuses.
    pub fn now() -> Self {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a rusage into the valid pointer it is given.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return CpuTime::default();
        }
        // SAFETY: rc == 0, so the kernel filled the struct (and it was zeroed before).
        let usage = unsafe { usage.assume_init() };
        let duration = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
        };
        CpuTime { user: duration(usage.ru_utime), system: duration(usage.ru_stime) }
    }

    /// CPU time spent since `earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// User plus system.
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_costs_user_time() {
        let before = CpuTime::now();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = CpuTime::now().since(before);
        assert!(spent.total() >= Duration::from_millis(20), "{spent:?}");
    }
}
