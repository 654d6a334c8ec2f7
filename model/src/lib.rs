//! socklab's plain data: what a run produced and what people and CI read, with no I/O.
//!
//! - [`report`]: the versioned report model (`report.json`): the run, every case, its
//!   metrics, observations and checks, and the files beside it ([`report::Artifact`]).
//! - [`metric`]: a measured value with its unit, and the spec a scenario declares for it.
//! - [`check`]: a verdict with expected, observed and a sentence a person acts on; suite
//!   thresholds.
//! - [`boundary`]: the boundary map that lines writes, segments and reads up.
//! - [`summary`]: latency percentiles and throughput with its interval series.
//! - [`rate`]: link rates as `tc` writes them (`10mbit`).
//! - [`analysis`]: pure analysis of recorded packets (stream segments, retransmissions).
//! - [`text`]: printable payloads and parameter values.
//!
//! It depends on serde and serde_json only, so renderers (`socklab-reports`) and a user's
//! own tools can read a report without the engine, its runtime or packet capture.

pub mod analysis;
pub mod boundary;
pub mod check;
pub mod metric;
pub mod rate;
pub mod report;
pub mod summary;
pub mod text;
