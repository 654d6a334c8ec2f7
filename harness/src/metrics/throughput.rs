//! Throughput: bytes and messages per second over a whole transfer, and per interval
//! (like iperf3's interval lines), so a stall in the middle shows.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Counts bytes and messages as they are delivered, per interval.
#[derive(Debug, Clone)]
pub struct ThroughputMeter {
    start: Instant,
    interval: Duration,
    intervals: Vec<Interval>,
    last_at: Duration,
}

/// Totals of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Start of the interval, in seconds since the meter started.
    pub start_s: f64,
    /// Bytes delivered in it.
    pub bytes: u64,
    /// Messages delivered in it.
    pub messages: u64,
}

/// Throughput of a whole transfer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSummary {
    /// Bytes delivered.
    pub bytes: u64,
    /// Messages delivered.
    pub messages: u64,
    /// From the meter's start to the last delivery, in seconds.
    pub seconds: f64,
    /// Bytes per second.
    pub bytes_per_s: f64,
    /// Messages per second.
    pub messages_per_s: f64,
    /// Per-interval totals; the last interval may be partial.
    pub intervals: Vec<Interval>,
    /// Length of each interval, in seconds.
    pub interval_s: f64,
}

/// How much the rate varied from interval to interval within one transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalSpread {
    /// Full intervals judged (the last, partial one is left out).
    pub intervals: usize,
    /// Mean bytes per second over those intervals.
    pub mean_bytes_per_s: f64,
    /// Their sample standard deviation, as a fraction of the mean.
    pub relative_stdev: f64,
    /// Half width of the 95% confidence interval of the mean (Student's t), as a
    /// fraction of the mean. It treats intervals as independent samples, which
    /// neighbouring intervals are not quite, so read it as a lower bound on the noise.
    pub ci95_relative: f64,
}

impl ThroughputSummary {
    /// The spread of the per-interval byte rates; `None` with fewer than 3 full
    /// intervals or nothing delivered, where there is no spread to speak of.
    pub fn interval_spread(&self) -> Option<IntervalSpread> {
        let full = self.intervals.len().checked_sub(1)?;
        if full < 3 || self.interval_s <= 0.0 {
            return None;
        }
        let rates: Vec<f64> =
            self.intervals[..full].iter().map(|i| i.bytes as f64 / self.interval_s).collect();
        let n = rates.len() as f64;
        let mean = rates.iter().sum::<f64>() / n;
        if mean <= 0.0 {
            return None;
        }
        let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let stdev = variance.sqrt();
        Some(IntervalSpread {
            intervals: full,
            mean_bytes_per_s: mean,
            relative_stdev: stdev / mean,
            ci95_relative: student_t95(full - 1) * stdev / n.sqrt() / mean,
        })
    }
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom (`df` ≥ 1).
fn student_t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
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
