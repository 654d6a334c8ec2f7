//! Packet times on the case clock.
//!
//! The kernel stamps frames with the wall clock (`CLOCK_REALTIME`); a case times its
//! writes and reads with [`Instant`] (`CLOCK_MONOTONIC`) from its case clock. The two
//! clocks run at the same rate — NTP slews both alike — and differ by an offset that
//! changes only when the wall clock is stepped. A [`ClockLink`] reads both clocks back to
//! back, keeping the tightest of a few tries, and so places any wall-clock time on the
//! case clock to within about a microsecond. Linking again at the end of a capture
//! ([`ClockLink::step_us`]) tells whether the wall clock was stepped in between.

use std::time::{Duration, Instant, SystemTime};

/// Reads of the two clocks taken at most this far apart are good enough; beyond it the
/// link tries again (the thread was interrupted between the reads).
const TIGHT: Duration = Duration::from_micros(2);
/// Tries at most.
const TRIES: usize = 16;

/// One moment read on both clocks: a wall-clock time and the case-clock time of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClockLink {
    wall: SystemTime,
    case_us: f64,
}

impl ClockLink {
    /// Reads the wall clock and the case clock (started at `clock`) together.
    pub fn now(clock: Instant) -> Self {
        let read = || {
            let before = Instant::now();
            let wall = SystemTime::now();
            let after = Instant::now();
            let width = after - before;
            (width, ClockLink { wall, case_us: signed_us(before + width / 2, clock) })
        };
        let mut best = read();
        for _ in 1..TRIES {
            if best.0 <= TIGHT {
                break;
            }
            let next = read();
            if next.0 < best.0 {
                best = next;
            }
        }
        best.1
    }

    /// Microseconds since the case clock started at wall-clock time `wall`.
    pub fn case_us(&self, wall: SystemTime) -> f64 {
        self.case_us + wall_delta_us(self.wall, wall)
    }

    /// How far the wall clock moved against the case clock between this link and
    /// `later`, in microseconds: about 0 unless the wall clock was stepped.
    pub fn step_us(&self, later: &ClockLink) -> f64 {
        wall_delta_us(self.wall, later.wall) - (later.case_us - self.case_us)
    }
}

/// `to - from` in microseconds, negative when `to` is earlier.
fn wall_delta_us(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(later) => later.as_secs_f64() * 1e6,
        Err(earlier) => -earlier.duration().as_secs_f64() * 1e6,
    }
}

/// `at - clock` in microseconds, negative when `at` is earlier.
fn signed_us(at: Instant, clock: Instant) -> f64 {
    match at.checked_duration_since(clock) {
        Some(later) => later.as_secs_f64() * 1e6,
        None => -(clock - at).as_secs_f64() * 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_land_where_the_case_clock_says() {
        let clock = Instant::now();
        let link = ClockLink::now(clock);
        // Now, read on both clocks, must agree through the link within the reads' gap.
        let before = clock.elapsed().as_secs_f64() * 1e6;
        let wall = SystemTime::now();
        let after = clock.elapsed().as_secs_f64() * 1e6;
        let placed = link.case_us(wall);
        assert!(placed >= before - 50.0 && placed <= after + 50.0, "{before} <= {placed} <= {after}");
        // A millisecond later on the wall clock is a millisecond later on the case clock.
        let later = link.case_us(wall + Duration::from_millis(1));
        assert!((later - placed - 1000.0).abs() < 1e-6);
        let earlier = link.case_us(wall - Duration::from_millis(1));
        assert!((placed - earlier - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn no_step_between_two_links_without_a_clock_change() {
        let clock = Instant::now();
        let first = ClockLink::now(clock);
        std::thread::sleep(Duration::from_millis(2));
        let second = ClockLink::now(clock);
        // The reads are microseconds apart; a wall-clock step would be far larger.
        assert!(first.step_us(&second).abs() < 1_000.0, "{}", first.step_us(&second));
    }
}
