//! `socklab run`: builds the suite, runs its cases, writes the report folder, and prints
//! a summary with a replay command for each case that did not pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use socklab_harness::external::{Target, TargetProcess};
use socklab_harness::host;
use socklab_harness::params::ParamError;
use socklab_harness::peer::agent::remote::CONTROL_TIMEOUT;
use socklab_harness::peer::agent::{RemoteAgent, SOCKLAB_VERSION};
use socklab_harness::report::{
    CaseResult, CaseStatus, PeerRecord, Report, RunInfo, SCHEMA_VERSION, ScenarioInfo,
};
use socklab_harness::runner::{RunOptions, TARGET_READY_TIMEOUT, TARGET_STOP_GRACE, run_cases};
use socklab_harness::scenario::Registry;
use socklab_harness::seed::fresh_run_seed;
use socklab_harness::suite::{CaseSpec, Suite, select_cases, value_text};

use crate::Outcome;
use crate::progress::CaseProgress;
use socklab::cli::RunArgs;

/// Runs what `args` asks for. Configuration errors return `Err` (exit code 2).
pub fn run(args: &RunArgs, registry: &Registry) -> Result<Outcome> {
    let mut suite = build_suite(args, registry)?;
    suite.keep_sweep = args.sweep;
    let swept: Vec<Vec<String>> = suite.runs.iter().map(|run| run.sweep.clone()).collect();
    suite.apply_sets(&args.sets, registry)?;
    for (run, before) in suite.runs.iter().zip(&swept) {
        if !args.sweep && !before.is_empty() && run.sweep.is_empty() {
            eprintln!(
                "note: {}: --set given, so its built-in sweep of {} is off (--sweep keeps it)",
                run.scenario,
                before.join(", ")
            );
        }
    }
    if let Some(seconds) = args.timeout {
        suite.override_timeout(Duration::from_secs(seconds));
    }
    if let Some(repeat) = args.repeat {
        suite.override_repeat(repeat);
    }
    if let Some(target) = args.target.clone().or_else(|| args.target_cmd.clone()) {
        suite.override_target(target);
    }
    execute(&suite, args, registry)
}

/// Expands `suite` into cases, runs them, writes the report folder and prints the
/// summary: everything of `socklab run` after the suite is built, which `socklab probe`
/// shares. `args` gives `--case`, `--out` and `--seed`, and how a failing case is
/// replayed (`socklab run` with these arguments). Configuration errors return `Err`
/// (exit code 2).
pub fn execute(suite: &Suite, args: &RunArgs, registry: &Registry) -> Result<Outcome> {
    let mut cases = suite.expand(registry)?;
    if !args.cases.is_empty() {
        cases = select_cases(cases, &args.cases)?;
    }
    // Before any case runs: a run must never end in a report it cannot write.
    socklab_reports::check_out(&args.out)?;
    try_target_commands(&cases)?;
    let peer = match &args.peer_cmd {
        Some(command) => {
            check_peer_cases(&cases, registry)?;
            // A command that cannot start, or an agent of another version, is one line and
            // exit 2 before any case runs.
            Some(Arc::new(RemoteAgent::start(command, args.peer_addr, CONTROL_TIMEOUT)?))
        }
        None => None,
    };
    let seed = args.seed.unwrap_or_else(fresh_run_seed);

    let started_at = SystemTime::now();
    let clock = Instant::now();
    let other_load = host::OtherLoad::start();
    let progress = CaseProgress::for_stderr();
    let finished = run_cases(registry, &cases, &RunOptions { seed, peer: peer.clone() }, &progress)
        .context("start the case runtime")?;
    progress.finish();
    let mut artifacts = Vec::new();
    let mut results = Vec::with_capacity(finished.len());
    for case in finished {
        artifacts.extend(case.artifacts);
        results.push(case.result);
    }

    let report = Report {
        schema_version: SCHEMA_VERSION,
        run: RunInfo {
            socklab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: option_env!("SOCKLAB_GIT_REVISION").map(String::from),
            kernel: host::kernel_release(),
            cpu_count: host::cpu_count(),
            started_at: host::rfc3339(started_at),
            duration_s: clock.elapsed().as_secs_f64(),
            seed,
            command_line: std::env::args().collect(),
            suite: suite.name.clone(),
            compare: suite.compare.clone(),
            hostname: Some(host::hostname()),
            peer: peer.as_deref().map(peer_record),
            other_load_cpus: other_load.cpus(),
        },
        scenarios: scenario_infos(&results, registry),
        cases: results,
    };
    // Every FolderError names the path it failed on; a context would name it twice.
    socklab_reports::write_report_with(&args.out, &report, &artifacts)?;
    print_summary(&report, args, artifacts.len());
    Ok(if report.all_passed() { Outcome::Passed } else { Outcome::Failed })
}

/// Every case of a run with `--peer-cmd` must be able to run its server side through the
/// agent, and must not make a link of its own.
fn check_peer_cases(cases: &[CaseSpec], registry: &Registry) -> Result<()> {
    for case in cases {
        let scenario = registry.get(&case.scenario)?;
        if !scenario.remote_peer() {
            let able: Vec<&str> = registry.iter().filter(|s| s.remote_peer()).map(|s| s.name()).collect();
            anyhow::bail!(
                "{} cannot run its server side through an agent (--peer-cmd); scenarios that can: {}",
                case.scenario,
                able.join(", ")
            );
        }
        match scenario.validate_peer(&case.params) {
            Ok(()) => {}
            Err(ParamError::Invalid { reason, .. }) => anyhow::bail!("{}: {reason}", case.id),
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
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

/// Starts each `--target-cmd` of the run once, before any case: a command that exits at
/// once or never listens is a configuration error (exit 2), not a failure per case.
fn try_target_commands(cases: &[CaseSpec]) -> Result<()> {
    let mut tried = Vec::new();
    for case in cases {
        if let Target::Command(command) = &case.target
            && !tried.contains(&command)
        {
            let process = TargetProcess::start(command, TARGET_READY_TIMEOUT)?;
            process.stop(TARGET_STOP_GRACE);
            tried.push(command);
        }
    }
    Ok(())
}

fn build_suite(args: &RunArgs, registry: &Registry) -> Result<Suite> {
    let Some(path) = &args.suite else {
        if args.scenarios.is_empty() {
            return Ok(Suite::parse(socklab_scenarios::DEFAULT_SUITE, "default", registry)?);
        }
        return Ok(Suite::from_scenarios(&args.scenarios, registry)?);
    };
    let mut suite = Suite::load(path, registry)?;
    if !args.scenarios.is_empty() {
        for name in &args.scenarios {
            registry.get(name)?;
        }
        suite.runs.retain(|run| args.scenarios.contains(&run.scenario));
        anyhow::ensure!(
            !suite.runs.is_empty(),
            "{} has no runs of {}; its scenarios: {}",
            path.display(),
            args.scenarios.join(", "),
            suite.runs.iter().map(|r| r.scenario.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(suite)
}

fn scenario_infos(results: &[CaseResult], registry: &Registry) -> BTreeMap<String, ScenarioInfo> {
    results
        .iter()
        .filter_map(|case| registry.get(&case.scenario).ok())
        .map(|s| (s.name().to_string(), s.info()))
        .collect()
}

fn print_summary(report: &Report, args: &RunArgs, artifacts: usize) {
    let tally = report.tally();
    println!(
        "{} {}: {} passed, {} failed, {} errors, {} timed out{} (seed {})",
        report.cases.len(),
        if report.cases.len() == 1 { "case" } else { "cases" },
        tally.passed,
        tally.failed,
        tally.errors,
        tally.timed_out,
        tally.skipped_suffix(),
        report.run.seed
    );
    for case in report.cases.iter().filter(|c| c.status == CaseStatus::Skipped) {
        println!("SKIP {}: {}", case.id, case.error.as_deref().unwrap_or("skipped"));
    }
    for case in report.cases.iter().filter(|c| !matches!(c.status, CaseStatus::Passed | CaseStatus::Skipped))
    {
        println!("{} {}", case.status.word(), case.id);
        println!("  replay: {}", replay_command(case, args, report.run.seed));
    }
    let captures =
        if artifacts > 0 { format!(", {artifacts} capture.pcap under cases/") } else { String::new() };
    println!("report: {}/ (index.html, report.json, report.md, junit.xml{captures})", args.out.display());
}

/// The command that runs `case` alone, as it ran: the same seed, thresholds and timeout.
/// A suite run (a file, or the default suite) is selected again with the same `--set`
/// arguments and narrowed with `--case`; a scenario run sets every parameter the case
/// had set, which runs exactly that case (a `--set` turns a built-in sweep off).
fn replay_command(case: &CaseResult, args: &RunArgs, run_seed: u64) -> String {
    let mut words = vec!["socklab".to_string(), "run".to_string()];
    let from_suite = args.suite.is_some() || args.scenarios.is_empty();
    if from_suite {
        if let Some(path) = &args.suite {
            words.push("--suite".into());
            words.push(shell_quote(&path.display().to_string()));
        }
        for set in &args.sets {
            words.push("--set".into());
            words.push(shell_quote(set));
        }
        if args.sweep {
            words.push("--sweep".into());
        }
        words.push("--case".into());
        words.push(shell_quote(&case.id));
    } else {
        words.push(case.scenario.clone());
        for (key, value) in &case.set_params {
            words.push("--set".into());
            words.push(shell_quote(&format!("{key}={}", value_text(value))));
        }
    }
    match args.target.as_ref().or(args.target_cmd.as_ref()) {
        Some(Target::Addr(addr)) => words.push(format!("--target {addr}")),
        Some(Target::Command(command)) => {
            words.push(format!("--target-cmd {}", shell_quote(command.as_str())))
        }
        Some(Target::Reference) | None => {}
    }
    if let Some(command) = &args.peer_cmd {
        words.push(format!("--peer-cmd {}", shell_quote(command)));
    }
    if let Some(addr) = &args.peer_addr {
        words.push(format!("--peer-addr {addr}"));
    }
    if let Some(seconds) = args.timeout {
        words.push(format!("--timeout {seconds}"));
    }
    if let Some(repeat) = args.repeat {
        words.push(format!("--repeat {repeat}"));
    }
    words.push(format!("--seed {run_seed}"));
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    if word.chars().all(|c| c.is_ascii_alphanumeric() || "_-.,=/:".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
