//! The sample report model the renderer tests share: a run, an empty report, a case and
//! a metric with plain values, and a report folder written from them, which each test changes where its assertions look.
//! (Each test file uses part of it, hence the `dead_code` allowance.)
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use socklab_model::report::{
    CaseResult, CaseStatus, Metric, Observations, Report, RunInfo, SCHEMA_VERSION, Unit,
};

/// A run of the default suite with `seed`: socklab 0.1.0 on kernel 6.1, 2 CPUs, 0.1 s.
pub fn run_info(seed: u64) -> RunInfo {
    RunInfo {
        socklab_version: "0.1.0".into(),
        git_revision: None,
        kernel: "6.1".into(),
        cpu_count: 2,
        started_at: "2026-11-21T00:00:00Z".into(),
        duration_s: 0.1,
        seed,
        command_line: vec!["socklab".into()],
        suite: "default".into(),
        compare: Default::default(),
        hostname: None,
        peer: None,
        other_load_cpus: None,
    }
}

/// A report of [`run_info`]`(seed)` with no scenario and no case.
pub fn report(seed: u64) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        run: run_info(seed),
        scenarios: BTreeMap::new(),
        cases: Vec::new(),
    }
}

/// A temporary folder holding `r`, a report folder written from [`report`]`(seed)`; the
/// folder goes when the returned `TempDir` is dropped.
pub fn written(seed: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab_reports::write_report(&out, &report(seed)).unwrap();
    (dir, out)
}

/// Parameters from `(name, value)` pairs.
pub fn params(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
}

/// A case of `scenario` with `params` (all of them set), seed 1, passed in 1 ms, with no
/// metric, observation or check.
pub fn case(id: impl Into<String>, scenario: &str, params: BTreeMap<String, Value>) -> CaseResult {
    CaseResult {
        id: id.into(),
        scenario: scenario.into(),
        set_params: params.clone(),
        params,
        seed: 1,
        status: CaseStatus::Passed,
        duration_ms: 1.0,
        metrics: Vec::new(),
        observations: Observations::default(),
        checks: Vec::new(),
        error: None,
        target: None,
        repeats: 1,
    }
}

/// A key metric of one sample.
pub fn metric(name: &str, value: f64, unit: Unit) -> Metric {
    Metric { name: name.into(), value, unit, key: true, samples: Vec::new() }
}
