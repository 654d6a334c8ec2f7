//! Measurement: latency histograms (HdrHistogram), throughput with a per-interval series,
//! and CPU time (of the whole process, or of one thread). Each turns into report metrics
//! with units and, where a later analysis needs the raw data, into an observation
//! (histograms travel as HdrHistogram V2, base64).

mod cpu;
mod latency;
mod thread_cpu;
mod throughput;

pub use cpu::CpuTime;
pub use latency::{HistogramError, LatencyRecorder};
pub use socklab_model::summary::{Interval, IntervalSpread, LatencySummary, ThroughputSummary};
pub use thread_cpu::{ThreadCpu, current_tid, own_cpu, stat_cpu};
pub use throughput::{ThroughputMeter, interval_for};
