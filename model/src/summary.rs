//! Summaries of measurements as reports keep them: a latency distribution's percentiles
//! and a transfer's throughput with its per-interval series. The recorders that produce
//! them (HdrHistogram, the throughput meter) live in the harness; these are plain data.

use serde::{Deserialize, Serialize};

/// Percentiles and moments of a latency distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Arithmetic mean.
    pub mean_ns: f64,
    /// Standard deviation.
    pub stdev_ns: f64,
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
