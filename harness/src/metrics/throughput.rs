//! Throughput: bytes and messages per second over a whole transfer, and per interval
//! (like iperf3's interval lines), so a stall in the middle shows.

use std::time::{Duration, Instant};

use socklab_model::summary::{Interval, ThroughputSummary};

/// Counts bytes and messages as they are delivered, per interval.
#[derive(Debug, Clone)]
pub struct ThroughputMeter {
    start: Instant,
    interval: Duration,
    intervals: Vec<Interval>,
    last_at: Duration,
}

/// Interval length for a meter over a transfer of about `duration`: a tenth of it, so
/// the spread has ten samples, between 5 ms and 100 ms.
pub fn interval_for(duration: Duration) -> Duration {
    (duration / 10).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

impl ThroughputMeter {
    /// A meter starting now, with intervals of `interval` (at least 1 ms).
    pub fn start(interval: Duration) -> Self {
        ThroughputMeter {
            start: Instant::now(),
            interval: interval.max(Duration::from_millis(1)),
            intervals: Vec::new(),
            last_at: Duration::ZERO,
        }
    }

    /// Counts a delivery of `bytes` bytes holding `messages` messages, now.
    pub fn record(&mut self, bytes: u64, messages: u64) {
        self.record_at(self.start.elapsed(), bytes, messages);
    }

    /// Counts a delivery at `at` since the meter started.
    pub fn record_at(&mut self, at: Duration, bytes: u64, messages: u64) {
        let index = (at.as_nanos() / self.interval.as_nanos()) as usize;
        while self.intervals.len() <= index {
            let start_s = self.intervals.len() as f64 * self.interval.as_secs_f64();
            self.intervals.push(Interval { start_s, bytes: 0, messages: 0 });
        }
        self.intervals[index].bytes += bytes;
        self.intervals[index].messages += messages;
        self.last_at = self.last_at.max(at);
    }

    /// Totals and rates so far.
    pub fn summary(&self) -> ThroughputSummary {
        let bytes = self.intervals.iter().map(|i| i.bytes).sum();
        let messages = self.intervals.iter().map(|i| i.messages).sum();
        let seconds = self.last_at.as_secs_f64();
        let rate = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        ThroughputSummary {
            bytes,
            messages,
            seconds,
            bytes_per_s: rate(bytes),
            messages_per_s: rate(messages),
            intervals: self.intervals.clone(),
            interval_s: self.interval.as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_land_in_their_intervals() {
        let mut meter = ThroughputMeter::start(Duration::from_millis(100));
        meter.record_at(Duration::from_millis(10), 1000, 1);
        meter.record_at(Duration::from_millis(350), 3000, 3);
        meter.record_at(Duration::from_millis(500), 1000, 1);
        let s = meter.summary();
        assert_eq!((s.bytes, s.messages), (5000, 5));
        assert_eq!(s.intervals.len(), 6);
        assert_eq!(s.intervals[3].bytes, 3000);
        assert_eq!(s.intervals[1].bytes, 0, "a stall shows as an empty interval");
        assert!((s.bytes_per_s - 10_000.0).abs() < 1e-6);
        assert!((s.intervals[5].start_s - 0.5).abs() < 1e-9);
    }

    #[test]
    fn spread_comes_from_full_intervals_only() {
        let mut meter = ThroughputMeter::start(Duration::from_millis(10));
        for (k, bytes) in [1000, 1200, 800, 1000, 5].into_iter().enumerate() {
            meter.record_at(Duration::from_millis(10 * k as u64 + 1), bytes, 1);
        }
        let spread = meter.summary().interval_spread().unwrap();
        assert_eq!(spread.intervals, 4, "the partial last interval is left out");
        assert!((spread.mean_bytes_per_s - 100_000.0).abs() < 1e-6);
        // Sample stdev of 1000, 1200, 800, 1000 is 163.3; t(3) = 3.182; / sqrt(4) / 1000.
        assert!((spread.relative_stdev - 0.1633).abs() < 1e-3, "{spread:?}");
        assert!((spread.ci95_relative - 3.182 * 0.1633 / 2.0).abs() < 1e-3, "{spread:?}");
    }

    #[test]
    fn no_spread_without_enough_intervals_or_bytes() {
        let mut meter = ThroughputMeter::start(Duration::from_millis(10));
        meter.record_at(Duration::from_millis(15), 100, 1);
        assert_eq!(meter.summary().interval_spread(), None);
        assert_eq!(ThroughputSummary::default().interval_spread(), None);
    }

    #[test]
    fn intervals_are_a_tenth_of_the_transfer_within_bounds() {
        assert_eq!(interval_for(Duration::from_millis(500)), Duration::from_millis(50));
        assert_eq!(interval_for(Duration::from_millis(10)), Duration::from_millis(5));
        assert_eq!(interval_for(Duration::from_secs(30)), Duration::from_millis(100));
    }
}
