//! The report of a run from its finished cases: what ran where and when ([`RunInfo`]),
//! the cases' results, and what the report says about each scenario that ran.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use super::plan::RunPlan;
use crate::host;
use crate::peer::agent::{RemoteAgent, SOCKLAB_VERSION};
use crate::report::{CaseResult, PeerRecord, Report, RunInfo, SCHEMA_VERSION, ScenarioInfo};
use crate::runner::FinishedCase;
use crate::scenario::{Artifact, Registry};

/// When and beside what a run's cases ran, taken as the first case starts.
pub struct Started {
    at: SystemTime,
    clock: Instant,
    other_load: host::OtherLoad,
}

impl Started {
    /// Now: the start time, and the other processes' load from now on.
    pub fn now() -> Self {
        Started { at: SystemTime::now(), clock: Instant::now(), other_load: host::OtherLoad::start() }
    }
}

/// The report of `plan`'s run, and the files its cases made, from its finished cases.
pub fn report(
    plan: &RunPlan,
    registry: &Registry,
    started: Started,
    seed: u64,
    peer: Option<&RemoteAgent>,
    finished: Vec<FinishedCase>,
) -> (Report, Vec<Artifact>) {
    let mut artifacts = Vec::new();
    let mut results = Vec::with_capacity(finished.len());
    for case in finished {
        artifacts.extend(case.artifacts);
        results.push(case.result);
    }
    let report = Report {
        schema_version: SCHEMA_VERSION,
        run: RunInfo {
            socklab_version: SOCKLAB_VERSION.to_string(),
            git_revision: plan.git_revision.clone(),
            kernel: host::kernel_release(),
            cpu_count: host::cpu_count(),
            started_at: host::rfc3339(started.at),
            duration_s: started.clock.elapsed().as_secs_f64(),
            seed,
            command_line: plan.command_line.clone(),
            suite: plan.suite.name.clone(),
            compare: plan.suite.compare.clone(),
            hostname: Some(host::hostname()),
            peer: peer.map(peer_record),
            other_load_cpus: started.other_load.cpus(),
        },
        scenarios: scenario_infos(&results, registry),
        cases: results,
    };
    (report, artifacts)
}

fn peer_record(agent: &RemoteAgent) -> PeerRecord {
    let host = agent.host();
    PeerRecord {
        command: agent.command().to_string(),
        addr: agent.peer_ip().to_string(),
        hostname: host.hostname.clone(),
        kernel: host.kernel.clone(),
        cpu_count: host.cpu_count,
        socklab_version: SOCKLAB_VERSION.to_string(),
    }
}

/// What the report says about each scenario that ran.
fn scenario_infos(results: &[CaseResult], registry: &Registry) -> BTreeMap<String, ScenarioInfo> {
    results
        .iter()
        .filter_map(|case| registry.get(&case.scenario).ok())
        .map(|s| (s.name().to_string(), s.info()))
        .collect()
}
