//! `socklab probe`: the server-conformance family against a user's server, as one suite
//! built in memory, through the same run and report path as `socklab run`.
//!
//! Every check that applies to the framing, the behaviour and the `--set` values (with
//! `--set impair=...`, those a relay can judge) runs once (eof twice: a close and a
//! half-close); the others are named on stderr with the reason. A failing case prints
//! the `socklab run server-conformance --set ...` command that replays it.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use socklab_harness::params::{ParamError, find_spec, split_set};
use socklab_harness::run::{Overrides, RunPlan};
use socklab_harness::scenario::{ParamMap, Registry};
use socklab_harness::suite::{DEFAULT_CASE_TIMEOUT, Suite, SuiteRun};
use socklab_scenarios::server_conformance::{ServerConformance, Which};

use socklab_harness::scenario::Scenario;

use crate::Outcome;
use crate::run;
use socklab::cli::ProbeArgs;

/// Runs every applicable check against the target of `args`.
pub fn probe(args: &ProbeArgs, registry: &Registry) -> Result<Outcome> {
    let target =
        args.target.clone().or_else(|| args.target_cmd.clone()).context("give a TARGET or --target-cmd")?;
    let scenario = registry.get(ServerConformance::NAME)?;
    let framing = Value::String(args.framing.to_string());
    let behaviour = Value::String(args.behaviour.to_string());
    // The parameters every case starts from: the defaults with each `--set` value (a
    // matrix gives several). Sets the scenario does not know are left to the suite,
    // which names them.
    let mut bases: Vec<ParamMap> = vec![scenario.defaults()];
    for arg in &args.sets {
        let Ok((key, text)) = split_set(arg) else { continue };
        let Ok(spec) = find_spec(scenario.name(), scenario.params(), key) else { continue };
        let Ok(values) = spec.parse_cli(text) else { continue };
        bases = bases
            .iter()
            .flat_map(|base| {
                values.iter().map(move |value| {
                    let mut next = base.clone();
                    next.insert(key.to_string(), value.clone());
                    next
                })
            })
            .take(MAX_SET_COMBINATIONS)
            .collect();
    }
    // The parameters of one case, as the suite sets them, and whether the check applies
    // (with every combination of the `--set` values).
    let applies = |set: &[(&str, Value)]| -> Result<Vec<(String, Vec<Value>)>, String> {
        for base in &bases {
            let mut params = base.clone();
            params.extend(set.iter().map(|(k, v)| (k.to_string(), v.clone())));
            scenario.validate(&params).and_then(|()| scenario.validate_target(&params)).map_err(
                |e| match e {
                    ParamError::Invalid { reason, .. } => reason,
                    other => other.to_string(),
                },
            )?;
        }
        Ok(set.iter().map(|(k, v)| (k.to_string(), vec![v.clone()])).collect())
    };
    let mut checks = Vec::new();
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for check in Which::NAMES {
        let common =
            [("check", Value::from(*check)), ("framing", framing.clone()), ("behaviour", behaviour.clone())];
        match applies(&common) {
            Ok(_) => checks.push(Value::from(*check)),
            Err(reason) => skipped.push(reason),
        }
        if *check == "eof" {
            let half =
                [common[0].clone(), common[1].clone(), common[2].clone(), ("half_close", Value::Bool(true))];
            match applies(&half) {
                Ok(matrix) => runs.push(run_of(matrix)),
                Err(reason) => skipped.push(reason),
            }
        }
    }
    if checks.is_empty() {
        anyhow::bail!("no server-conformance check applies: {}", skipped.first().map_or("", String::as_str));
    }
    for reason in &skipped {
        eprintln!("note: {reason}");
    }
    runs.insert(
        0,
        run_of(vec![
            ("check".to_string(), checks),
            ("framing".to_string(), vec![framing]),
            ("behaviour".to_string(), vec![behaviour]),
        ]),
    );
    let suite = Suite {
        name: "probe".to_string(),
        timeout: DEFAULT_CASE_TIMEOUT,
        runs,
        keep_sweep: false,
        target: target.clone(),
        repeat: 1,
        compare: Default::default(),
    };
    let overrides = Overrides {
        sets: args.sets.clone(),
        timeout: args.timeout.map(Duration::from_secs),
        ..Overrides::default()
    };
    let mut plan = RunPlan::new(suite, &overrides, registry)?;
    plan.seed = args.seed;
    // The `socklab run` that replays each case: the scenario, with the case's parameters.
    let mut tail: Vec<String> = run::target_words(Some(&target)).into_iter().collect();
    if let Some(seconds) = args.timeout {
        tail.push(format!("--timeout {seconds}"));
    }
    run::execute(plan, &args.out, &run::Replay { suite: None, tail }, registry)
}

/// Combinations of `--set` values a check is validated with, at most.
const MAX_SET_COMBINATIONS: usize = 256;

fn run_of(matrix: Vec<(String, Vec<Value>)>) -> SuiteRun {
    SuiteRun {
        scenario: ServerConformance::NAME.to_string(),
        label: None,
        matrix,
        timeout: None,
        expect: Vec::new(),
        sweep: Vec::new(),
        target: None,
        repeat: None,
    }
}
