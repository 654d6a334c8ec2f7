//! A run before it starts: the suite with the command line's edits applied, which of its
//! cases to run, the seed, and the agent for the server side.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::error::RunError;
use crate::external::Target;
use crate::scenario::Registry;
use crate::suite::Suite;

/// What a run changes in its suite: the command line's `--set`, `--sweep`, `--timeout`,
/// `--repeat` and `--target`/`--target-cmd`. The default changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `KEY=VALUE` arguments (`--set` syntax: `read_size=5,1024` is a matrix), each
    /// applied to every run whose scenario has `KEY` ([`Suite::apply_sets`]).
    pub sets: Vec<String>,
    /// Keep a scenario's built-in sweep where a set applies (`--sweep`); by default a
    /// set turns it off, so the run is exactly the matrix set.
    pub keep_sweep: bool,
    /// Per-case timeout of every run, replacing the suite's.
    pub timeout: Option<Duration>,
    /// How many times every case runs, replacing the suite's `repeat`.
    pub repeat: Option<u32>,
    /// What plays the server of every run, replacing the suite's targets.
    pub target: Option<Target>,
}

/// The agent that plays the server side of every case (`--peer-cmd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCommand {
    /// The command that starts `socklab agent --stdio` (`sh -c`), on the other host.
    pub command: String,
    /// Where to reach the agent's servers when its own view of its addresses differs
    /// (`--peer-addr`); `None` to work it out.
    pub addr: Option<IpAddr>,
}

/// A run before it starts. Build it with [`RunPlan::new`] or [`RunPlan::scenarios`],
/// set the fields that apply, and hand it to [`execute`](super::execute).
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The suite, with the [`Overrides`] applied.
    pub suite: Suite,
    /// Only the cases with these ids (`--case`), in run order; empty for every case.
    pub cases: Vec<String>,
    /// The run seed, from which every case's seed derives; `None` takes one from the
    /// clock (the report records it, so the run can be replayed).
    pub seed: Option<u64>,
    /// The agent for the server side; `None` runs it in process.
    pub peer: Option<PeerCommand>,
    /// What the overrides changed that a person should know, one sentence each (a
    /// `--set` that turned a scenario's built-in sweep off); the caller shows them.
    pub notes: Vec<String>,
    /// The command line the report records (default: this process's arguments).
    pub command_line: Vec<String>,
    /// The revision socklab was built from, for the report, when the caller knows it.
    pub git_revision: Option<String>,
}

impl RunPlan {
    /// `suite` with `overrides` applied: every case, a fresh seed, no peer.
    ///
    /// # Errors
    /// [`RunError::Param`] for a `--set` that is malformed, has a bad value, or names a
    /// parameter no run's scenario has.
    pub fn new(mut suite: Suite, overrides: &Overrides, registry: &Registry) -> Result<RunPlan, RunError> {
        suite.keep_sweep = overrides.keep_sweep;
        let swept: Vec<Vec<String>> = suite.runs.iter().map(|run| run.sweep.clone()).collect();
        suite.apply_sets(&overrides.sets, registry)?;
        let notes = suite
            .runs
            .iter()
            .zip(&swept)
            .filter(|(run, before)| !overrides.keep_sweep && !before.is_empty() && run.sweep.is_empty())
            .map(|(run, before)| {
                format!(
                    "{}: --set given, so its built-in sweep of {} is off (--sweep keeps it)",
                    run.scenario,
                    before.join(", ")
                )
            })
            .collect();
        if let Some(timeout) = overrides.timeout {
            suite.override_timeout(timeout);
        }
        if let Some(repeat) = overrides.repeat {
            suite.override_repeat(repeat);
        }
        if let Some(target) = &overrides.target {
            suite.override_target(target.clone());
        }
        Ok(RunPlan {
            suite,
            cases: Vec::new(),
            seed: None,
            peer: None,
            notes,
            command_line: std::env::args().collect(),
            git_revision: None,
        })
    }

    /// A plan running each named scenario with its defaults, or over its built-in sweep
    /// ([`Suite::from_scenarios`]), with `overrides` applied.
    ///
    /// # Errors
    /// An unknown scenario, with the valid ones; otherwise as [`RunPlan::new`].
    pub fn scenarios(
        names: &[impl AsRef<str>],
        overrides: &Overrides,
        registry: &Registry,
    ) -> Result<RunPlan, RunError> {
        let names: Vec<String> = names.iter().map(|name| name.as_ref().to_string()).collect();
        RunPlan::new(Suite::from_scenarios(&names, registry)?, overrides, registry)
    }
}

/// The suite file at `path`, narrowed to the runs of `scenarios` when any are named
/// (`socklab run --suite FILE SCENARIO...`).
///
/// # Errors
/// [`RunError::Suite`] with the file, line and column of its first mistake; an unknown
/// scenario name; [`RunError::NoRunsOf`] when the file runs none of `scenarios`.
pub fn suite_file(path: &Path, scenarios: &[String], registry: &Registry) -> Result<Suite, RunError> {
    let mut suite = Suite::load(path, registry)?;
    if scenarios.is_empty() {
        return Ok(suite);
    }
    for name in scenarios {
        registry.get(name)?;
    }
    let mut has: Vec<String> = Vec::new();
    for run in &suite.runs {
        if !has.contains(&run.scenario) {
            has.push(run.scenario.clone());
        }
    }
    suite.runs.retain(|run| scenarios.contains(&run.scenario));
    if suite.runs.is_empty() {
        return Err(RunError::NoRunsOf {
            path: path.display().to_string(),
            asked: scenarios.join(", "),
            has: has.join(", "),
        });
    }
    Ok(suite)
}
