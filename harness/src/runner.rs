//! Runs cases one after another, each on a runtime of its own with a timeout, and turns
//! what they produce into [`CaseResult`]s.
//!
//! Cases run one at a time so they do not disturb each other's measurements. Each gets a
//! fresh tokio runtime that is shut down after it, so a case that timed out or failed
//! cannot leave tasks or sockets behind that disturb the next one. A case that times out
//! has its future dropped and its [`Cancel`] flag raised, which its blocking work
//! (threads, `spawn_blocking`) checks; the runner waits up to [`STOP_GRACE`] for that
//! work to end, and says in the case's error if it did not.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::external::{ExternalTarget, Target, TargetError, TargetProcess};
use crate::peer::agent::RemoteAgent;
use crate::privilege::{REQUIRE_PRIVILEGED_VAR, privileged_required};
use crate::repeat::merge_repeats;
use crate::report::{CaseResult, CaseStatus, CaseTarget, Observations};
use crate::scenario::{Artifact, Cancel, CaseContext, CaseError, CaseOutcome, Registry};
use crate::seed::case_seed;
use crate::suite::CaseSpec;

/// How long the runner waits, after a case ends, for its blocking work to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a `--target-cmd` has to start listening (or the case timeout, if shorter).
pub const TARGET_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `--target-cmd` has to exit after SIGTERM before it gets SIGKILL.
pub const TARGET_STOP_GRACE: Duration = Duration::from_secs(2);

/// What a run reports as it goes. Every method does nothing by default, so a front end
/// implements only what it shows.
pub trait Progress {
    /// Before the first case, with the number of cases.
    fn run_started(&self, _total: usize) {}
    /// Before case `index` (0-based).
    fn case_started(&self, _index: usize, _case: &CaseSpec) {}
    /// After case `index`, with its result.
    fn case_finished(&self, _index: usize, _result: &CaseResult) {}
}

/// A [`Progress`] that shows nothing.
pub struct Silent;

impl Progress for Silent {}

/// How a run's cases run, besides the cases themselves.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run seed: each case's seed derives from it and the case's scenario and
    /// parameters, so a case runs the same whatever else the run holds.
    pub seed: u64,
    /// The agent on another host that plays the server side of every case
    /// (`--peer-cmd`); `None` to run it in process. The caller checks first that every
    /// case's scenario takes a peer ([`crate::scenario::Scenario::REMOTE_PEER`]).
    pub peer: Option<Arc<RemoteAgent>>,
}

impl RunOptions {
    /// Cases with run seed `seed`, their server side in process.
    pub fn with_seed(seed: u64) -> Self {
        RunOptions { seed, peer: None }
    }
}

/// A finished case: its result, and the files it made for the report folder.
#[derive(Debug, Clone)]
pub struct FinishedCase {
    /// What goes into `report.json`.
    pub result: CaseResult,
    /// Files beside it (`cases/<case>/capture.pcap`).
    pub artifacts: Vec<Artifact>,
}

/// Runs `cases` in order and returns one finished case each: its result, with the
/// suite's thresholds judged, and the files it made (packet captures) for the report
/// folder. This is the one way cases run.
///
/// A case with [`CaseSpec::repeat`] above 1 runs that many times, interleaved with the
/// other cases (A B C A B C …, not A A B B C C), so a slow drift of the machine spreads
/// over every case instead of landing on one; its repeats are merged
/// ([`merge_repeats`]) and the suite's thresholds judged on the medians.
///
/// # Errors
/// Only when no tokio runtime can be built (out of threads or memory); a failing case is
/// a result, not an error.
pub fn run_cases(
    registry: &Registry,
    cases: &[CaseSpec],
    options: &RunOptions,
    progress: &dyn Progress,
) -> io::Result<Vec<FinishedCase>> {
    let total: usize = cases.iter().map(|c| c.repeat.max(1) as usize).sum();
    progress.run_started(total);
    let rounds = cases.iter().map(|c| c.repeat.max(1)).max().unwrap_or(1);
    let mut repeats: Vec<Vec<FinishedCase>> = cases.iter().map(|_| Vec::new()).collect();
    let mut index = 0;
    for round in 0..rounds {
        for (case, done) in cases.iter().zip(&mut repeats) {
            if round >= case.repeat.max(1) {
                continue;
            }
            progress.case_started(index, case);
            let finished = run_one(registry, case, options.seed, options.peer.clone())?;
            // A case that failed or timed out between starting a role on the agent and
            // stopping it leaves it running there; end it before the next case.
            if let Some(peer) = &options.peer {
                peer.stop_open_roles();
            }
            // What this run alone says, thresholds included (the report judges them
            // again on the medians once every repeat has run).
            let mut shown = judge_thresholds(case, finished.result.clone());
            if case.repeat > 1 {
                shown.id = format!("{} (repeat {} of {})", case.id, round + 1, case.repeat);
            }
            progress.case_finished(index, &shown);
            done.push(finished);
            index += 1;
        }
    }
    Ok(cases.iter().zip(repeats).map(|(case, done)| merge(case, done)).collect())
}

/// One case's repeats as one: the results merged ([`merge_repeats`]) with the suite's
/// thresholds judged on the medians, and the first repeat's files, as its observations
/// are the first repeat's.
fn merge(case: &CaseSpec, mut done: Vec<FinishedCase>) -> FinishedCase {
    let artifacts = done.first_mut().map(|first| std::mem::take(&mut first.artifacts)).unwrap_or_default();
    let result = merge_repeats(done.into_iter().map(|f| f.result).collect());
    FinishedCase { result: judge_thresholds(case, result), artifacts }
}

/// Adds the suite's thresholds, judged on the (merged) metrics, and the status they give.
fn judge_thresholds(case: &CaseSpec, mut result: CaseResult) -> CaseResult {
    if matches!(result.status, CaseStatus::Error | CaseStatus::TimedOut | CaseStatus::Skipped) {
        return result;
    }
    result.checks.extend(case.expect.iter().map(|t| t.evaluate(&result.metrics)));
    if result.checks.iter().any(|c| !c.passed) {
        result.status = CaseStatus::Failed;
    }
    result
}

fn run_one(
    registry: &Registry,
    case: &CaseSpec,
    run_seed: u64,
    peer: Option<Arc<RemoteAgent>>,
) -> io::Result<FinishedCase> {
    let params_text = serde_json::to_string(&case.params).unwrap_or_default();
    let seed = case_seed(run_seed, &format!("{}{params_text}", case.scenario));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("socklab-case")
        .build()?;
    let started = Instant::now();
    let cancel = Cancel::new();
    let target = start_target(&case.target, case.timeout);
    let outcome: Result<CaseOutcome, (CaseStatus, String)> = match (registry.get(&case.scenario), &target) {
        (Err(e), _) => Err((CaseStatus::Error, e.to_string())),
        (_, Err(e)) => Err((CaseStatus::Error, e.to_string())),
        (Ok(scenario), Ok(target)) => {
            let ctx = CaseContext {
                case_id: case.id.clone(),
                seed,
                timeout: case.timeout,
                target: target.clone(),
                peer,
                cancel: cancel.clone(),
            };
            let future = scenario.run(case.params.clone(), ctx);
            let began = Instant::now();
            runtime.block_on(async {
                let task = tokio::spawn(future);
                let abort = task.abort_handle();
                match tokio::time::timeout(case.timeout, task).await {
                    Ok(Ok(ended)) => verdict(ended, began.elapsed(), case.timeout),
                    Ok(Err(join)) => Err((CaseStatus::Error, CaseError::task("scenario", join).to_string())),
                    Err(_) => {
                        cancel.cancel();
                        abort.abort();
                        Err((CaseStatus::TimedOut, timed_out_message(case.timeout)))
                    }
                }
            })
        }
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    // Ends every task the case left behind, and waits for its blocking work to see the
    // cancel flag; work still running after that would disturb the next case.
    cancel.cancel();
    let stopping = Instant::now();
    runtime.shutdown_timeout(STOP_GRACE);
    let outcome = match outcome {
        Err((status, message)) if stopping.elapsed() >= STOP_GRACE => Err((
            status,
            format!(
                "{message}; its blocking work was still running {} s later, so later cases share the CPU with it",
                STOP_GRACE.as_secs()
            ),
        )),
        other => other,
    };
    let target = target.ok().flatten().map(|external| CaseTarget {
        addr: external.addr.to_string(),
        process: external.process.map(|process| process.stop(TARGET_STOP_GRACE)),
    });

    let mut result = CaseResult {
        id: case.id.clone(),
        scenario: case.scenario.clone(),
        params: case.params.clone(),
        set_params: case.set_params.clone(),
        seed,
        status: CaseStatus::Passed,
        duration_ms,
        metrics: Vec::new(),
        observations: Observations::default(),
        checks: Vec::new(),
        error: None,
        target,
        repeats: 1,
    };
    let mut artifacts = Vec::new();
    match outcome {
        Ok(outcome) => {
            artifacts = outcome.artifacts;
            result.checks = outcome.checks;
            result.metrics = outcome.metrics;
            result.observations = outcome.observations;
            if result.checks.iter().any(|c| !c.passed) {
                result.status = CaseStatus::Failed;
            }
        }
        Err((status, message)) => {
            result.status = status;
            result.error = Some(message);
        }
    }
    Ok(FinishedCase { result, artifacts })
}

/// The external server of a case: the address given, or a command started now and
/// ready; `None` for the reference peers.
fn start_target(target: &Target, case_timeout: Duration) -> Result<Option<ExternalTarget>, TargetError> {
    match target {
        Target::Reference => Ok(None),
        Target::Addr(addr) => Ok(Some(ExternalTarget { addr: *addr, process: None })),
        Target::Command(command) => {
            let process = TargetProcess::start(command, TARGET_READY_TIMEOUT.min(case_timeout))?;
            Ok(Some(ExternalTarget { addr: process.addr(), process: Some(Arc::new(process)) }))
        }
    }
}

/// What a case that ended by itself comes to: its outcome, skipped, an error — or timed
/// out, when it ended with an error after its timeout had passed: its own deadline (the
/// timeout, which blocking work checks between calls) stopped it before the runner's
/// timer fired, as happens on a loaded machine that runs timers late.
fn verdict(
    ended: Result<CaseOutcome, CaseError>,
    ran_for: Duration,
    timeout: Duration,
) -> Result<CaseOutcome, (CaseStatus, String)> {
    match ended {
        Ok(outcome) => Ok(outcome),
        Err(CaseError::Skipped(reason)) => Err(skipped(reason)),
        Err(e) if ran_for >= timeout => {
            Err((CaseStatus::TimedOut, format!("{}; it stopped with: {e}", timed_out_message(timeout))))
        }
        Err(e) => Err((CaseStatus::Error, e.to_string())),
    }
}

/// A case that cannot run here is skipped with its reason, except where
/// `SOCKLAB_REQUIRE_PRIVILEGED=1` demands that it run (CI): there it is an error.
fn skipped(reason: String) -> (CaseStatus, String) {
    if privileged_required() {
        (CaseStatus::Error, format!("{reason}; {REQUIRE_PRIVILEGED_VAR}=1, so the case may not be skipped"))
    } else {
        (CaseStatus::Skipped, format!("skipped: {reason}"))
    }
}

fn timed_out_message(timeout: Duration) -> String {
    format!("timed out after {} s (raise it with timeout_s in the suite or --timeout)", timeout.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_after_the_timeout_is_a_timeout_and_before_it_an_error() {
        let second = Duration::from_secs(1);
        let late = verdict(Err(CaseError::Protocol("gave up".into())), Duration::from_millis(1250), second);
        assert_eq!(
            late.unwrap_err(),
            (
                CaseStatus::TimedOut,
                "timed out after 1 s (raise it with timeout_s in the suite or --timeout); it stopped with: gave up"
                    .to_string()
            )
        );
        let early = verdict(Err(CaseError::Protocol("gave up".into())), Duration::from_millis(20), second);
        assert_eq!(early.unwrap_err(), (CaseStatus::Error, "gave up".to_string()));
        assert!(verdict(Ok(CaseOutcome::default()), Duration::from_secs(5), second).is_ok());
    }
}
