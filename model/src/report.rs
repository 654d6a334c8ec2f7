//! The report model: the serde types of `report.json`.
//!
//! Every renderer (Markdown, JUnit, HTML) reads only these types, so `socklab report DIR`
//! can re-render a run from its `report.json` alone. The schema is versioned by
//! [`SCHEMA_VERSION`]; a change that renames or removes a field bumps it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::boundary::BoundaryMap;
use crate::check::Check;
pub use crate::metric::{Better, Metric, MetricSpec, Unit};
pub use crate::summary::{LatencySummary, ThroughputSummary};

/// Version of the `report.json` layout. Version 2 added repeats (`CaseResult::repeats`,
/// `Metric::samples`); version 1 files still load (every added field has a default).
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest `report.json` layout this version reads.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// Path of a case's file inside the report folder: `cases/<case>/<name>`, where `<case>`
/// is the case id with every character outside `[A-Za-z0-9._=,+-]` replaced by `_`, and
/// a hash of the id appended so that two ids never share a folder.
pub fn case_file(case_id: &str, name: &str) -> String {
    let safe: String =
        case_id.chars().map(|c| if case_folder_char(c) { c } else { '_' }).take(CASE_FOLDER_STEM).collect();
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = case_id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("cases/{}-{hash:08x}/{name}", safe.trim_matches('_'))
}

/// The files socklab writes into a case's folder (`cases/<case>/`).
pub const CASE_FILE_NAMES: &[&str] = &[CAPTURE_FILE];

/// A case's packet capture, in its folder: `cases/<case>/capture.pcap`.
pub const CAPTURE_FILE: &str = "capture.pcap";

/// Characters of a case id kept in its folder's name, at most.
const CASE_FOLDER_STEM: usize = 100;

fn case_folder_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._=,+-".contains(c)
}

/// Whether `name` has the shape of a case folder's name as [`case_file`] makes them:
/// up to 100 characters of `[A-Za-z0-9._=,+-]` (no `_` first or last), `-`, and eight
/// lowercase hex digits. What a report folder's `cases/` may hold besides nothing.
pub fn is_case_folder(name: &str) -> bool {
    let Some((stem, hash)) = name.rsplit_once('-') else { return false };
    hash.len() == 8
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && stem.len() <= CASE_FOLDER_STEM
        && stem.chars().all(case_folder_char)
        && !stem.starts_with('_')
        && !stem.ends_with('_')
}

/// A file a case produced for the report folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Path inside the report folder, from [`case_file`]:
    /// `cases/<case>/capture.pcap`.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// One run of socklab: metadata, the scenarios involved, and every case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Version of this layout; see [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Where, when and how the run happened.
    pub run: RunInfo,
    /// What each scenario in the run is about, so a report explains itself.
    pub scenarios: BTreeMap<String, ScenarioInfo>,
    /// Every case, in the order it ran.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Counts of cases by status.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for case in &self.cases {
            match case.status {
                CaseStatus::Passed => tally.passed += 1,
                CaseStatus::Failed => tally.failed += 1,
                CaseStatus::Error => tally.errors += 1,
                CaseStatus::TimedOut => tally.timed_out += 1,
                CaseStatus::Skipped => tally.skipped += 1,
            }
        }
        tally
    }

    /// True when every case that ran passed every check (skipped cases neither pass
    /// nor fail).
    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(|c| matches!(c.status, CaseStatus::Passed | CaseStatus::Skipped))
    }
}

/// Numbers of cases by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Cases whose checks all passed.
    pub passed: usize,
    /// Cases with at least one failed check.
    pub failed: usize,
    /// Cases that could not run to the end.
    pub errors: usize,
    /// Cases stopped by their timeout.
    pub timed_out: usize,
    /// Cases not run, each with its reason.
    pub skipped: usize,
}

impl Tally {
    /// `, 2 skipped` when cases were skipped, else nothing: summary lines name skipped
    /// cases only when there are some.
    pub fn skipped_suffix(&self) -> String {
        if self.skipped > 0 { format!(", {} skipped", self.skipped) } else { String::new() }
    }
}

/// Metadata of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Version of the socklab binary.
    pub socklab_version: String,
    /// Git revision socklab was built from, when known.
    pub git_revision: Option<String>,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Logical CPUs available to the run.
    pub cpu_count: usize,
    /// Start time, RFC 3339 in UTC.
    pub started_at: String,
    /// Wall-clock length of the whole run, in seconds.
    pub duration_s: f64,
    /// The run seed; every case seed derives from it.
    pub seed: u64,
    /// The command line, argument by argument.
    pub command_line: Vec<String>,
    /// The suite that ran: a file path, `default`, or `command line`.
    pub suite: String,
    /// How `socklab compare` judges this run against a baseline (the suite's
    /// `[compare]` table).
    #[serde(default, skip_serializing_if = "CompareSettings::is_default")]
    pub compare: CompareSettings,
    /// The host socklab ran on. Absent in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The other host, when the server side ran through `socklab agent` (`--peer-cmd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerRecord>,
    /// CPUs' worth of work other processes did on this machine during the run
    /// (`host::OtherLoad`): what the figures competed with. Absent where `/proc/stat`
    /// could not be read, and in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_load_cpus: Option<f64>,
}

/// The host of the agent a run used (`--peer-cmd`), as the agent described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The command that started the agent.
    pub command: String,
    /// Where the runner connected to the agent's servers.
    pub addr: String,
    /// Its host name.
    pub hostname: String,
    /// Its kernel release.
    pub kernel: String,
    /// Its logical CPUs.
    pub cpu_count: usize,
    /// Its socklab version (equal to the runner's: the versions are checked first).
    pub socklab_version: String,
}

/// How much a metric must change before `socklab compare` calls it a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareSettings {
    /// The relative change below which a metric is `unchanged`, in percent (default 5).
    pub threshold_pct: f64,
    /// Thresholds for particular metrics, in percent (`rtt_p99 = 25`), overriding it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl Default for CompareSettings {
    fn default() -> Self {
        CompareSettings { threshold_pct: 5.0, metrics: BTreeMap::new() }
    }
}

impl CompareSettings {
    /// The threshold of `metric`, in percent.
    pub fn threshold_of(&self, metric: &str) -> f64 {
        self.metrics.get(metric).copied().unwrap_or(self.threshold_pct)
    }

    fn is_default(&self) -> bool {
        *self == CompareSettings::default()
    }
}

/// What a scenario is about, copied into the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// One line.
    pub summary: String,
    /// What it shows, why it happens, what fixes it.
    pub explanation: String,
    /// How to present a sweep of this scenario as a table, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<SweepTable>,
    /// The unit of each parameter that has one (`read_size`: `bytes`), for chart axes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub param_units: BTreeMap<String, String>,
    /// Which way each metric is better, from the scenario's declarations, so
    /// `socklab compare` judges changes from report files alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub better: BTreeMap<String, Better>,
    /// Bar charts the scenario's section shows, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bars: Vec<BarChart>,
}

/// A bar chart of one value per case or per item of a case, declared by a scenario (see
/// `socklab_harness::scenario::BarSpec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarChart {
    /// What it shows: `Server CPU after EOF`.
    pub title: String,
    /// The metric (for [`BarGroups::Param`]) or the case's [`ValueSeries`] (for
    /// [`BarGroups::Items`]) the bars are drawn from.
    pub values: String,
    /// What the bars along the horizontal axis are.
    pub groups: BarGroups,
}

/// Where the groups of a [`BarChart`] come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BarGroups {
    /// One group per value of this parameter; in each group a bar per case, the cases
    /// told apart by the other parameters that vary.
    Param(String),
    /// One group per item of the case's series (client 0, client 1, …); in each group a
    /// bar per case.
    Items,
}

/// One value per item of a case — per client, say — in item order: what a
/// [`BarChart`] with [`BarGroups::Items`] draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueSeries {
    /// Name, as a [`BarChart::values`] names it: `time_in_queue`.
    pub name: String,
    /// Unit of every value.
    pub unit: Unit,
    /// What an item is, singular: `client`.
    pub item: String,
    /// One value per item.
    pub values: Vec<f64>,
}

/// A sweep presented as a table: one row per value of parameter `rows`, one column per
/// value of parameter `columns`, each cell the `cells` metrics of the matching case.
/// Cases that differ in other parameters get a table each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepTable {
    /// Parameter whose values label the rows.
    pub rows: String,
    /// Parameter whose values label the columns.
    pub columns: String,
    /// Metrics shown in each cell, in order.
    pub cells: Vec<String>,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Ran to the end; every check passed.
    Passed,
    /// Ran to the end; at least one check failed.
    Failed,
    /// Could not run to the end (an I/O error, a refused connection, a panic).
    Error,
    /// Stopped by its timeout.
    TimedOut,
    /// Not run, for a reason the case states (a veth link without `CAP_NET_ADMIN`); it
    /// neither passes nor fails the run.
    Skipped,
}

impl CaseStatus {
    /// Upper-case word for logs: `PASS`, `FAIL`, `ERROR`, `TIMEOUT`.
    pub fn word(self) -> &'static str {
        match self {
            CaseStatus::Passed => "PASS",
            CaseStatus::Failed => "FAIL",
            CaseStatus::Error => "ERROR",
            CaseStatus::TimedOut => "TIMEOUT",
            CaseStatus::Skipped => "SKIP",
        }
    }
}

/// The result of one case: one point of a suite's parameter matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Unique within the run: scenario and the parameters set for it.
    pub id: String,
    /// Scenario name.
    pub scenario: String,
    /// Every parameter, defaults included.
    pub params: BTreeMap<String, Value>,
    /// Parameters set explicitly by the suite or `--set` (a subset of `params`).
    pub set_params: BTreeMap<String, Value>,
    /// The case seed.
    pub seed: u64,
    /// How it ended.
    pub status: CaseStatus,
    /// Wall-clock length, in milliseconds.
    pub duration_ms: f64,
    /// Measured values, each with its unit.
    pub metrics: Vec<Metric>,
    /// What happened, event by event.
    pub observations: Observations,
    /// Pass/fail verdicts, the scenario's own and the suite's thresholds.
    pub checks: Vec<Check>,
    /// Why the case did not run to the end, when it did not.
    pub error: Option<String>,
    /// What played the server, when it was not socklab's reference peer in process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<CaseTarget>,
    /// How many times the case ran (`--repeat`); metrics then hold medians and samples.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub repeats: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// The external server a case ran against (`--target`, `--target-cmd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTarget {
    /// Where the client connected.
    pub addr: String,
    /// The command socklab started for the case, and what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<TargetRecord>,
}

impl CaseResult {
    /// The metric called `name`, if the case produced it.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// What happened during a case, event by event. Each kind of observation is optional, so
/// scenarios fill in what applies to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Application writes and reads of a stream, and how they line up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamTrace>,
    /// A latency distribution, with the histogram for later merging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObservation>,
    /// Throughput of a transfer, with its per-interval series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputSummary>,
    /// Packets on the wire, or why they could not be captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureObservation>,
    /// The link the case ran over, when it was not plain loopback (a veth link, a peer
    /// on another host). Absent in reports written before links existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkRecord>,
    /// Values per item of the case (per client), for bar charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<ValueSeries>,
    /// What an impairment relay between client and server did (`impair`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyObservation>,
}

/// What an impairment relay (`socklab_harness::impair`) did during a case, per
/// connection (a UDP flow counts as one) and direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyObservation {
    /// The spec in its canonical text (`split=3+delay=1ms`).
    pub spec: String,
    /// The seed every choice derived from, with the connection index and direction.
    pub seed: u64,
    /// `tcp` or `udp`.
    pub transport: Transport,
    /// Each connection, in accept order (the first [`ProxyObservation::MAX_CONNECTIONS`]).
    pub connections: Vec<ProxyConnection>,
    /// Connections accepted past the listed ones.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub connections_left_out: u64,
}

impl ProxyObservation {
    /// Connections listed at most.
    pub const MAX_CONNECTIONS: usize = 256;
}

/// One relayed connection (or UDP flow).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyConnection {
    /// 0 for the first accepted.
    pub index: u64,
    /// The client's address.
    pub client: String,
    /// Client to server.
    pub up: ProxyDirection,
    /// Server to client.
    pub down: ProxyDirection,
    /// The relay reset both sides (`reset-after`), or passed a reset on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// Both directions ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// Why the connection ended early (an upstream that refused, a socket error, the
    /// relay's idle timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one direction of a relayed connection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyDirection {
    /// Whether the spec applied to this direction (`dir`); if not, bytes passed as read.
    pub impaired: bool,
    /// Bytes (datagram payload bytes) read from the sender.
    pub bytes_in: u64,
    /// Bytes written to the receiver.
    pub bytes_out: u64,
    /// Reads that returned data (datagrams received).
    pub reads_in: u64,
    /// Writes made (datagrams sent).
    pub writes_out: u64,
    /// The size of each read, from the first.
    #[serde(default, skip_serializing_if = "Listed::is_empty")]
    pub input_chunks: Listed<usize>,
    /// Each write, from the first.
    #[serde(default, skip_serializing_if = "Listed::is_empty")]
    pub output_writes: Listed<ProxyWrite>,
    /// UDP: indexes (0 = the first datagram of the direction) of the datagrams dropped.
    #[serde(default, skip_serializing_if = "Listed::is_empty")]
    pub dropped: Listed<u64>,
    /// UDP: indexes of the datagrams sent twice.
    #[serde(default, skip_serializing_if = "Listed::is_empty")]
    pub duplicated: Listed<u64>,
    /// UDP: indexes of the datagrams held back behind later ones.
    #[serde(default, skip_serializing_if = "Listed::is_empty")]
    pub reordered: Listed<u64>,
    /// UDP: indexes of the datagrams cut short.
    #[serde(default, skip_serializing_if = "Listed::is_empty")]
    pub truncated: Listed<u64>,
    /// UDP: datagrams the relay could not keep because its queue of datagrams waiting
    /// for their time was full (its memory bound), besides the seeded `dropped`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_queue_full: u64,
}

/// One write of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProxyWrite {
    /// When the write call was made, in microseconds on the clock the relay was given
    /// (a case's clock, so it lines up with the case's writes and reads).
    pub at_us: f64,
    /// Bytes written.
    pub len: usize,
    /// How long the oldest of its bytes waited in the relay, in microseconds: the delay
    /// the relay added (split gaps, merge windows, `delay`, `rate`, `stall`).
    pub delay_us: f64,
    /// UDP: the datagram the write sent, by its index in the direction (0 = the first the
    /// relay received), so a reader can tell which datagram left when (a duplicate
    /// repeats its index, a reordered one comes late). Absent for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagram: Option<u64>,
    /// UDP: how long the send call took, in microseconds: it returned at `at_us +
    /// took_us`. Absent for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_us: Option<f64>,
}

/// The first items of a record, and how many there were in all: records are bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed<T> {
    /// How many there were.
    pub total: u64,
    /// The first of them, at most the limit the recorder was given.
    pub first: Vec<T>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed { total: 0, first: Vec::new() }
    }
}

impl<T> Listed<T> {
    /// Counts `item`, and keeps it while fewer than `limit` are kept.
    pub fn push(&mut self, item: T, limit: usize) {
        self.total += 1;
        if self.first.len() < limit {
            self.first.push(item);
        }
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many were counted but not kept.
    pub fn left_out(&self) -> u64 {
        self.total - self.first.len() as u64
    }
}

/// The link a case ran over (see `socklab_harness::link`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// `loopback`, `veth`, or `peer` (an agent on another host).
    pub kind: String,
    /// MTU of the link, in bytes, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The rate socklab shaped it to (tbf), in bits per second; absent when unshaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bit_s: Option<u64>,
    /// Payload bytes of a full segment on the case's connection (`TCP_MAXSEG`: the MSS
    /// less TCP options), where the case read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mss: Option<u32>,
    /// One-way delay each way, in ms, added by the impairment relay; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The client's end: address and interface.
    pub client: String,
    /// The server's end.
    pub server: String,
    /// How the link was made, in words.
    pub detail: String,
}

impl LinkRecord {
    /// A short label for headers: `veth, MTU 1280, rate 100mbit, delay 20 ms each way`.
    pub fn label(&self) -> String {
        let mut label = self.kind.clone();
        if let Some(mtu) = self.mtu {
            label += &format!(", MTU {mtu}");
        }
        if let Some(rate) = self.rate_bit_s {
            label += &format!(", rate {}", crate::rate::Rate::from_bits_per_s(rate));
        }
        if let Some(delay) = self.delay_ms {
            label += &format!(", delay {delay} ms each way");
        }
        if let Some(mss) = self.mss {
            label += &format!(", segments of {mss} bytes");
        }
        label
    }
}

/// Whether a case's packets were captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureStatus {
    /// Packets were captured; see [`CaptureObservation::packets`].
    Captured,
    /// Capture could not run; [`CaptureObservation::detail`] says why.
    Unavailable,
}

/// What packet capture saw during a case (see `socklab_harness::capture`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureObservation {
    /// Whether capture ran.
    pub status: CaptureStatus,
    /// How it was captured (`lo, port 40312, outgoing copies ignored`), or why it was not
    /// (`needs CAP_NET_RAW (run as root or setcap ...)`).
    pub detail: String,
    /// Every TCP/UDP packet of the case, in capture order, one per packet (loopback's
    /// second copy of each frame removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packets: Vec<WirePacket>,
    /// Packets seen but not listed in `packets` (the list is capped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub packets_left_out: u64,
    /// Packets the kernel dropped because the capture socket's buffer was full.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kernel_drops: u64,
    /// The pcap file of the case, relative to the report folder
    /// (`cases/<case>/capture.pcap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
}

impl CaptureObservation {
    /// Capture did not run, for `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        CaptureObservation {
            status: CaptureStatus::Unavailable,
            detail: reason.into(),
            packets: Vec::new(),
            packets_left_out: 0,
            kernel_drops: 0,
            pcap: None,
        }
    }

    /// One line for reports: `capture: lo, port 40312, 14 packets` or
    /// `capture: unavailable — needs CAP_NET_RAW (...)`.
    pub fn line(&self) -> String {
        match self.status {
            CaptureStatus::Captured => format!("capture: {}", self.detail),
            CaptureStatus::Unavailable => format!("capture: unavailable — {}", self.detail),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which way a packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the side that connected (or sent first) to the listening side.
    ClientToServer,
    /// From the listening side back.
    ServerToClient,
}

/// Transport protocol of a captured packet (or of a relay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP segment.
    #[default]
    Tcp,
    /// UDP datagram.
    Udp,
}

/// One captured TCP segment or UDP datagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WirePacket {
    /// The kernel's receive time of the frame (as tcpdump records it), placed on the
    /// case clock: microseconds since the case started.
    pub at_us: f64,
    /// Which way it went.
    pub dir: Direction,
    /// TCP or UDP.
    pub proto: Transport,
    /// Port of the client end, which tells the connections (or UDP flows) apart.
    pub client_port: u16,
    /// TCP flags as in tcpdump (`S`, `S.`, `.`, `P.`, `F.`, `R`); empty for UDP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flags: String,
    /// Sequence number relative to the sender's initial one (0 for the SYN, so the first
    /// payload byte is 1), as Wireshark shows it; 0 for UDP.
    #[serde(default)]
    pub seq: u32,
    /// Acknowledgement number relative to the other side's initial sequence number.
    #[serde(default)]
    pub ack: u32,
    /// Advertised window as sent (not scaled).
    #[serde(default)]
    pub window: u16,
    /// Payload bytes.
    pub len: usize,
    /// The payload in printable form (see [`crate::text::printable`]) when it is short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// A latency distribution as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyObservation {
    /// What was timed, e.g. `round trip, from intended send time`.
    pub of: String,
    /// Percentiles and moments.
    pub summary: LatencySummary,
    /// The HdrHistogram V2 encoding in base64 (the harness's `LatencyRecorder::from_base64` reads it back).
    pub histogram: String,
}

/// A byte stream seen from the application on both ends and, where capture ran, on the
/// wire between them: the three layers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamTrace {
    /// Each application write (a message), in order.
    pub writes: Vec<IoEvent>,
    /// Each application read, in order.
    pub reads: Vec<IoEvent>,
    /// For each read, which byte ranges of which writes it returned.
    pub boundary_map: BoundaryMap,
    /// Each TCP segment that carried bytes of the writes for the first time, in stream
    /// order, `len` counting those new bytes; empty when capture did not run. Segments
    /// that repeated bytes are in `retransmissions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<IoEvent>,
    /// Each TCP segment that carried bytes of the writes sent before (a retransmission
    /// or a tail-loss probe), in capture order. Absent in reports written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retransmissions: Vec<RetransmittedSegment>,
    /// Each write an impairment relay between client and server made towards the
    /// server (`impair`), in order: the "proxy out" lane. Absent without a relay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_out: Vec<IoEvent>,
    /// For each relay write, which byte ranges of which writes it carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_map: Option<BoundaryMap>,
    /// For each segment, which byte ranges of which writes it carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_map: Option<BoundaryMap>,
    /// For each read, which byte ranges of which segments it returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_segment_map: Option<BoundaryMap>,
    /// Set when the trace holds only the start of what the case did (the first 3 of 20
    /// requests); absent when it holds everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<TraceExcerpt>,
}

/// How much of a case a [`StreamTrace`] holds, so no report shows part of a run as the
/// whole of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceExcerpt {
    /// How many the trace holds, counted from the first.
    pub shown: usize,
    /// How many the case did.
    pub total: usize,
    /// What was counted, plural: `requests`.
    pub unit: String,
}

impl TraceExcerpt {
    /// `Some` when `shown` is less than `total`.
    pub fn first(shown: usize, total: usize, unit: &str) -> Option<Self> {
        (shown < total).then(|| TraceExcerpt { shown, total, unit: unit.to_string() })
    }

    /// `first 3 of 20 requests`.
    pub fn describe(&self) -> String {
        format!("first {} of {} {}", self.shown, self.total, self.unit)
    }
}

impl StreamTrace {
    /// The two application layers of a stream and the boundary map between them: which
    /// bytes of which write each read returned.
    pub fn new(writes: Vec<IoEvent>, reads: Vec<IoEvent>) -> Self {
        let boundary_map = BoundaryMap::compute(&lens(&writes), &lens(&reads));
        StreamTrace { writes, reads, boundary_map, ..StreamTrace::default() }
    }

    /// Joins the wire layer: `segments` (the segments that carried the writes' bytes, in
    /// stream order) and `retransmissions`, with which writes each segment carried and
    /// which segments each read returned.
    pub fn join_segments(&mut self, segments: Vec<IoEvent>, retransmissions: Vec<RetransmittedSegment>) {
        let segment_lens = lens(&segments);
        self.segment_map = Some(BoundaryMap::compute(&lens(&self.writes), &segment_lens));
        self.read_segment_map = Some(BoundaryMap::compute(&segment_lens, &lens(&self.reads)));
        self.segments = segments;
        self.retransmissions = retransmissions;
    }
}

fn lens(events: &[IoEvent]) -> Vec<usize> {
    events.iter().map(|e| e.len).collect()
}

/// One write, segment or read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoEvent {
    /// When it happened, in microseconds since the case started, on the case clock
    /// (`CLOCK_MONOTONIC`):
    ///
    /// - a **write**: when the call was made. On loopback the kernel sends and delivers
    ///   the segment inside the `write()` call, so a write timed at its return would come
    ///   after its own segment.
    /// - a **read**: when the call returned with the bytes.
    /// - a **segment**: the kernel's receive time of its frame (see
    ///   [`WirePacket::at_us`]).
    ///
    /// So a segment never comes before a write whose bytes it carries, nor a read before
    /// a segment whose bytes it returns.
    pub at_us: f64,
    /// Bytes written or read.
    pub len: usize,
    /// The bytes in printable form (see [`crate::text::printable`]).
    pub text: String,
}

/// A TCP segment that carried stream bytes sent before: a retransmission (after a
/// timeout or duplicate ACKs) or a tail-loss probe (the last segment sent again when no
/// ACK came within about two round trips).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetransmittedSegment {
    /// The kernel's receive time of its frame, in microseconds since the case started
    /// (as [`WirePacket::at_us`]).
    pub at_us: f64,
    /// Stream offset of its first byte, counted like the writes' bytes (0 is the first
    /// byte of the first write).
    pub start: usize,
    /// Stream bytes it carried, from `start`.
    pub len: usize,
    /// How many of them were sent before; less than `len` when it also carried new
    /// bytes, which are then in [`StreamTrace::segments`] too.
    pub repeated: usize,
    /// The bytes in printable form, when short.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// What a target command did during one case, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The command as run (`{port}` replaced).
    pub command: String,
    /// Where it listened.
    pub addr: String,
    /// How it ended: `exited with status 0`, `killed by signal 15 (SIGTERM)`, …
    pub exit: String,
    /// CPU time (user + system) of its process group while the case ran, in ms.
    pub cpu_ms: f64,
    /// Its last lines of standard output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdout_tail: Vec<String>,
    /// Its last lines of standard error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::BoundaryMap;

    fn sample() -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            run: RunInfo {
                socklab_version: "0.1.0".into(),
                git_revision: Some("abc123".into()),
                kernel: "6.1.0".into(),
                cpu_count: 2,
                started_at: "2026-11-21T22:00:00Z".into(),
                duration_s: 1.5,
                seed: 42,
                command_line: vec!["socklab".into(), "run".into()],
                suite: "default".into(),
                compare: Default::default(),
                hostname: Some("a".into()),
                peer: Some(PeerRecord {
                    command: "ip netns exec B socklab agent --stdio".into(),
                    addr: "10.0.0.2".into(),
                    hostname: "b".into(),
                    kernel: "6.1.0".into(),
                    cpu_count: 4,
                    socklab_version: "0.1.0".into(),
                }),
                other_load_cpus: Some(0.25),
            },
            scenarios: BTreeMap::from([(
                "tcp-coalescing".to_string(),
                ScenarioInfo { summary: "s".into(), explanation: "e".into(), ..ScenarioInfo::default() },
            )]),
            cases: vec![CaseResult {
                id: "tcp-coalescing[read_size=5]".into(),
                scenario: "tcp-coalescing".into(),
                params: BTreeMap::from([("read_size".to_string(), Value::from(5))]),
                set_params: BTreeMap::new(),
                seed: 7,
                status: CaseStatus::Passed,
                duration_ms: 52.25,
                metrics: vec![Metric {
                    name: "reads".into(),
                    value: 4.0,
                    unit: Unit::Count,
                    key: true,
                    samples: Vec::new(),
                }],
                observations: Observations {
                    stream: Some(StreamTrace {
                        writes: vec![IoEvent { at_us: 1.5, len: 7, text: "1234567".into() }],
                        reads: vec![IoEvent { at_us: 50_001.0, len: 5, text: "12345".into() }],
                        boundary_map: BoundaryMap::compute(&[7], &[5]),
                        ..StreamTrace::default()
                    }),
                    ..Observations::default()
                },
                checks: vec![Check::new("stream_intact", "identical", "identical", true, "ok")],
                error: None,
                target: None,
                repeats: 1,
            }],
        }
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let report = sample();
        let text = serde_json::to_string_pretty(&report).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["schema_version"], 2);
        assert_eq!(value["cases"][0]["metrics"][0]["unit"], "count");
        assert_eq!(value["cases"][0]["status"], "passed");
    }

    #[test]
    fn a_trace_written_before_retransmissions_were_recorded_still_loads() {
        let old = r#"{"writes":[{"at_us":1.5,"len":2,"text":"ab"}],"reads":[{"at_us":9.0,"len":2,"text":"ab"}],
            "boundary_map":{"targets":[[{"unit":0,"start":0,"end":2}]]},
            "segments":[{"at_us":2.0,"len":2,"text":"ab"}]}"#;
        let trace: StreamTrace = serde_json::from_str(old).unwrap();
        assert!(trace.retransmissions.is_empty());
        assert_eq!(trace.segments.len(), 1);
        // And a trace without retransmissions writes no such field.
        assert!(!serde_json::to_string(&trace).unwrap().contains("retransmissions"));
        let with = StreamTrace {
            retransmissions: vec![RetransmittedSegment {
                at_us: 3.0,
                start: 0,
                len: 2,
                repeated: 2,
                text: "ab".into(),
            }],
            ..trace
        };
        let back: StreamTrace = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn a_trace_without_a_proxy_lane_loads_and_writes_none() {
        let old = r#"{"writes":[],"reads":[],"boundary_map":{"targets":[]}}"#;
        let trace: StreamTrace = serde_json::from_str(old).unwrap();
        assert!(trace.proxy_out.is_empty() && trace.proxy_map.is_none());
        assert!(!serde_json::to_string(&trace).unwrap().contains("proxy"));
        let old_observations: Observations = serde_json::from_str("{}").unwrap();
        assert!(old_observations.proxy.is_none());
        let with = StreamTrace {
            proxy_out: vec![IoEvent { at_us: 2.0, len: 1, text: "a".into() }],
            proxy_map: Some(BoundaryMap::compute(&[1], &[1])),
            ..trace
        };
        let back: StreamTrace = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn listed_keeps_the_first_and_counts_the_rest() {
        let mut listed = Listed::default();
        for i in 0..10u64 {
            listed.push(i, 3);
        }
        assert_eq!((listed.total, listed.first.as_slice(), listed.left_out()), (10, &[0, 1, 2][..], 7));
    }

    #[test]
    fn case_files_have_safe_distinct_names() {
        let a = case_file("tcp-coalescing[read_size=5,nodelay=true]", "capture.pcap");
        assert!(a.starts_with("cases/tcp-coalescing_read_size=5,nodelay=true-"), "{a}");
        assert!(a.ends_with("/capture.pcap"));
        assert_ne!(case_file("a[x]", "f"), case_file("a(x)", "f"));
        let hostile = case_file("../../etc", "f");
        assert_eq!(hostile.split('/').count(), 3, "{hostile}");
        assert!(hostile.split('/').all(|part| part != ".." && part != "."), "{hostile}");
    }

    #[test]
    fn every_case_folder_is_recognised_and_little_else() {
        let long = "x".repeat(300);
        for id in ["tcp-coalescing[read_size=5]", "", "_", "..", "../../etc", "a\x1b[2J", "ü", &long] {
            let path = case_file(id, CAPTURE_FILE);
            let folder = path.split('/').nth(1).unwrap();
            assert!(is_case_folder(folder), "{id:?} → {folder}");
        }
        for name in ["notes", "my-notes.txt", "x-0123abc", "x-0123ABCD", "_x-0123abcd", "a b-0123abcd", "."] {
            assert!(!is_case_folder(name), "{name}");
        }
    }

    #[test]
    fn tally_counts_statuses() {
        let mut report = sample();
        let mut failed = report.cases[0].clone();
        failed.status = CaseStatus::Failed;
        report.cases.push(failed);
        assert_eq!(report.tally(), Tally { passed: 1, failed: 1, errors: 0, timed_out: 0, skipped: 0 });
        assert!(!report.all_passed());
    }
}
