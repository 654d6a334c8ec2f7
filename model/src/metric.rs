//! Metrics: a measured value with its unit, and what a scenario declares about the
//! metrics it emits. Checks judge metrics and the report model holds them; both use this
//! module, which uses neither.

use serde::{Deserialize, Serialize};

/// A measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name, `snake_case`, unique within a case.
    pub name: String,
    /// The value, in `unit`.
    pub value: f64,
    /// The unit.
    pub unit: Unit,
    /// True for the few metrics that summarise a case in tables.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
    /// With `--repeat`: the value of every repeat, in run order (`value` is their
    /// median). Empty for a case that ran once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

/// Units of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A number of things (reads, messages).
    Count,
    /// Bytes.
    Bytes,
    /// Microseconds.
    #[serde(rename = "us")]
    Micros,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Millis,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Bytes per second.
    #[serde(rename = "bytes/s")]
    BytesPerSec,
    /// Messages (or other events) per second.
    #[serde(rename = "1/s")]
    PerSec,
    /// Mebibytes (2^20 bytes) per second.
    #[serde(rename = "MiB/s")]
    MibPerSec,
    /// Percent (of a value the metric's doc names).
    #[serde(rename = "%")]
    Percent,
    /// Megabits (10^6 bits) per second, as link rates are given.
    #[serde(rename = "Mbit/s")]
    MbitPerSec,
}

impl Unit {
    /// The unit as written after a number; empty for counts.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Count => "",
            Unit::Bytes => "B",
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::Seconds => "s",
            Unit::BytesPerSec => "B/s",
            Unit::PerSec => "/s",
            Unit::MibPerSec => "MiB/s",
            Unit::Percent => "%",
            Unit::MbitPerSec => "Mbit/s",
        }
    }
}

/// Which way a metric gets better, for `socklab compare`: throughput up, latency and
/// drops down; counts that describe what happened (reads, segments) neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// More is better (throughput, messages per second).
    Higher,
    /// Less is better (latency, CPU, drops, errors).
    Lower,
    /// Neither: a change is reported, never judged.
    Neither,
}

/// Declared metric of a scenario, shown by `socklab list` and checked against suite
/// thresholds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MetricSpec {
    /// Name, as in [`Metric::name`].
    pub name: &'static str,
    /// Unit of its value.
    pub unit: Unit,
    /// Which way is better, for comparisons between runs.
    pub better: Better,
    /// What it counts or measures, in one line.
    pub doc: &'static str,
}
