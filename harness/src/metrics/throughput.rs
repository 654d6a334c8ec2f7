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
}
