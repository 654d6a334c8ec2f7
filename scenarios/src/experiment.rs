//! How a scenario whose peers block runs them from its async `run`: on tokio's blocking
//! pool, so blocking sockets and sleeps never hold an async thread, optionally while the
//! case's packet capture records; and how what the capture produced joins the outcome.

use socklab_harness::capture::{CaseCapture, CaseCaptureResult};
use socklab_harness::report::WirePacket;
use socklab_harness::scenario::{CaseError, CaseOutcome};

/// What [`run_blocking`] calls the thread in an error, for most scenarios.
pub(crate) const EXPERIMENT_THREAD: &str = "the experiment thread";

/// Runs `experiment` on tokio's blocking pool and waits for it.
///
/// # Errors
/// The experiment's own; [`CaseError::Task`] naming `task` when it panicked.
pub(crate) async fn run_blocking<T: Send + 'static>(
    task: &'static str,
    experiment: impl FnOnce() -> Result<T, CaseError> + Send + 'static,
) -> Result<T, CaseError> {
    tokio::task::spawn_blocking(experiment).await.map_err(|e| CaseError::task(task, e))?
}

/// [`run_blocking`] while `capture` (started before the first packet of the case) records;
/// the capture stops once the experiment has returned, and both come back for
/// [`attach_capture`].
///
/// # Errors
/// As [`run_blocking`]; a failed experiment drops the capture unfinished.
pub(crate) async fn run_captured<T: Send + 'static>(
    capture: CaseCapture,
    case_id: &str,
    experiment: impl FnOnce() -> Result<T, CaseError> + Send + 'static,
) -> Result<(T, CaseCaptureResult), CaseError> {
    let measured = run_blocking(EXPERIMENT_THREAD, experiment).await?;
    Ok((measured, capture.finish(case_id).await))
}

/// Puts a capture into the report (its observation, and its pcap as an artifact) and
/// returns its packets for the scenario's own analysis; `None` when capture did not run
/// (the observation says why).
pub(crate) fn attach_capture(outcome: &mut CaseOutcome, wire: CaseCaptureResult) -> Option<Vec<WirePacket>> {
    outcome.artifacts.extend(wire.artifact);
    outcome.observations.capture = Some(wire.observation);
    wire.packets
}
