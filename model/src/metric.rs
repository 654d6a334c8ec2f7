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

impl MetricSpec {
    /// A measured value of this metric, in its declared unit.
    pub fn value(self, value: f64) -> Metric {
        Metric { name: self.name.to_string(), value, unit: self.unit, key: false, samples: Vec::new() }
    }
}

/// A doc comment as one line: `///` lines joined, leading spaces gone. Used by the
/// declaration macros ([`metrics!`](crate::metrics), the harness's `params!`), in
/// constants, so it runs at compile time.
///
/// # Panics
/// Never: trimming ASCII spaces from valid UTF-8 leaves valid UTF-8 (the check is for
/// the compiler).
pub const fn doc_line(doc: &'static str) -> &'static str {
    let mut bytes = doc.as_bytes();
    while let [b' ' | b'\t' | b'\n', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\n'] = bytes {
        bytes = rest;
    }
    match std::str::from_utf8(bytes) {
        Ok(line) => line,
        Err(_) => panic!("a doc comment is valid UTF-8"),
    }
}

/// Declares a scenario's metrics once each: name, unit, which way is better and what it
/// measures. It makes a module `metric` with one [`MetricSpec`] constant per metric
/// (named as the metric) and `METRICS`, the list a scenario declares. A case emits a
/// metric through its constant (`outcome.metric(metric::rtt_p50, 41.0)`), so the unit it
/// is reported in is the declared one; there is no other way to name it.
///
/// ```
/// socklab_model::metrics! {
///     /// Median round trip.
///     rtt_p50: Micros, Lower;
///     /// Messages the client sent.
///     sent: Count, Neither;
/// }
/// assert_eq!(metric::rtt_p50.name, "rtt_p50");
/// assert_eq!(METRICS.len(), 2);
/// assert_eq!(METRICS[1].doc, "Messages the client sent.");
/// ```
#[macro_export]
macro_rules! metrics {
    ($( $(#[doc = $doc:literal])+ $name:ident : $unit:ident, $better:ident; )+) => {
        /// This scenario's metrics, one constant each; see [`METRICS`].
        #[allow(non_upper_case_globals, dead_code)]
        pub mod metric {
            $(
                $(#[doc = $doc])+
                pub const $name: $crate::metric::MetricSpec = $crate::metric::MetricSpec {
                    name: stringify!($name),
                    unit: $crate::metric::Unit::$unit,
                    better: $crate::metric::Better::$better,
                    doc: $crate::metric::doc_line(concat!($($doc),+)),
                };
            )+
        }

        /// Every metric this scenario emits, declared once each in [`metric`].
        pub const METRICS: &[$crate::metric::MetricSpec] = &[$(metric::$name),+];
    };
}
