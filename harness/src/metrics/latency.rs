//! Latency histograms: HdrHistogram at nanosecond resolution with 3 significant digits,
//! so every percentile is within 0.1 % of the true value from 1 ns to an hour.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use socklab_model::summary::LatencySummary;
use thiserror::Error;

/// Largest value recorded exactly; longer samples are clamped to it (and counted).
const HIGHEST_NS: u64 = 3_600_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Records latency samples.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    clamped: u64,
}

/// A serialised histogram that could not be read back.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum HistogramError {
    /// Not base64.
    #[error("histogram is not valid base64: {0}")]
    Base64(base64::DecodeError),
    /// Not an HdrHistogram V2 encoding.
    #[error("histogram is not a valid HdrHistogram V2 encoding: {0}")]
    Decode(String),
}

impl From<base64::DecodeError> for HistogramError {
    fn from(error: base64::DecodeError) -> Self {
        HistogramError::Base64(error)
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder: 1 ns to 1 hour, 3 significant digits.
    pub fn new() -> Self {
        let histogram =
            Histogram::new_with_bounds(1, HIGHEST_NS, SIGNIFICANT_DIGITS).expect("constant bounds are valid");
        LatencyRecorder { histogram, clamped: 0 }
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, latency: Duration) {
        self.record_ns(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one sample given in nanoseconds; 0 counts as 1 ns, anything above an hour
    /// as an hour.
    #[inline]
    pub fn record_ns(&mut self, nanos: u64) {
        if nanos > HIGHEST_NS {
            self.clamped += 1;
        }
        // In range by construction, so recording cannot fail.
        let _ = self.histogram.record(nanos.clamp(1, HIGHEST_NS));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.clamped += other.clamped;
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Samples longer than an hour, recorded as an hour.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// The value at `quantile` (0.0..=1.0), in nanoseconds; 0 when empty.
    pub fn quantile_ns(&self, quantile: f64) -> u64 {
        if self.histogram.is_empty() { 0 } else { self.histogram.value_at_quantile(quantile) }
    }

    /// Percentiles and moments.
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let h = &self.histogram;
        LatencySummary {
            count: h.len(),
            min_ns: h.min(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            p9999_ns: h.value_at_quantile(0.9999),
            max_ns: h.max(),
            mean_ns: h.mean(),
            stdev_ns: h.stdev(),
        }
    }

    /// The histogram as HdrHistogram V2 encoding in base64, the form other HdrHistogram
    /// tools read, so runs can be merged and re-analysed later.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        // Serialising into a Vec cannot fail for a valid histogram.
        let _ = V2Serializer::new().serialize(&self.histogram, &mut bytes);
        BASE64.encode(bytes)
    }

    /// Reads back what [`LatencyRecorder::to_base64`] wrote.
    ///
    /// # Errors
    /// [`HistogramError`] when the text is not a V2 histogram in base64.
    pub fn from_base64(text: &str) -> Result<Self, HistogramError> {
        let bytes = BASE64.decode(text.trim())?;
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        let mut recorder = LatencyRecorder::new();
        recorder.histogram.add(&decoded).map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        Ok(recorder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_three_significant_digits() {
        let mut recorder = LatencyRecorder::new();
        for micros in 1..=1000u64 {
            recorder.record(Duration::from_micros(micros));
        }
        let s = recorder.summary();
        assert_eq!(s.count, 1000);
        assert!((499_000..=501_000).contains(&s.p50_ns), "{}", s.p50_ns);
        assert!((989_000..=991_000).contains(&s.p99_ns), "{}", s.p99_ns);
        assert!((999_000..=1_001_000).contains(&s.max_ns));
        assert!((s.mean_ns - 500_500.0).abs() < 1_000.0);
    }

    #[test]
    fn base64_round_trip_keeps_every_sample() {
        let mut recorder = LatencyRecorder::new();
        for n in [1, 10, 100, 1_000_000, 40_000_000] {
            recorder.record_ns(n);
        }
        let back = LatencyRecorder::from_base64(&recorder.to_base64()).unwrap();
        assert_eq!(back.summary(), recorder.summary());
        assert!(LatencyRecorder::from_base64("not base64!").is_err());
        assert!(LatencyRecorder::from_base64("aGVsbG8=").is_err());
    }

    #[test]
    fn merge_adds_and_extremes_are_clamped() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        a.record_ns(0);
        b.record_ns(u64::MAX);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.clamped(), 1);
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
    }
}
