//! A run, from plan to report: what `socklab run` and `socklab probe` do between
//! reading their arguments and writing the report folder, as a library.
//!
//! 1. A [`RunPlan`] is a suite ([`Suite`](crate::suite::Suite): a file, or scenarios by
//!    name) with the command line's [`Overrides`] applied (`--set`, `--sweep`,
//!    `--timeout`, `--repeat`, `--target`), plus the cases to keep (`--case`), the seed
//!    and the agent (`--peer-cmd`). What the overrides changed behind the user's back is
//!    in [`RunPlan::notes`], for the caller to show.
//! 2. [`prepare`] expands it into cases: every configuration error of the suite shows
//!    here, before anything starts.
//! 3. [`PreparedRun::execute`] connects once to each target address, starts each target
//!    command once and the agent (a server that is not there or a command that cannot
//!    start is an error of the run, not of every case), runs the cases ([`run_cases`])
//!    and assembles the [`Report`].
//!
//! [`execute`] does 2 and 3. Writing the report folder is the caller's (the
//! `socklab-reports` crate); the harness returns the report and the files beside it.
//!
//! ```no_run
//! use socklab_harness::external::Target;
//! use socklab_harness::run::{Overrides, RunPlan, execute};
//! use socklab_harness::runner::Silent;
//! # fn demo(registry: &socklab_harness::scenario::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! let overrides = Overrides {
//!     sets: vec!["check=reassembly".into(), "framing=line".into()],
//!     target: Some(Target::Addr("127.0.0.1:9000".parse()?)),
//!     ..Overrides::default()
//! };
//! let plan = RunPlan::scenarios(&["server-conformance"], &overrides, registry)?;
//! let output = execute(&plan, registry, &Silent)?;
//! assert!(output.report.all_passed());
//! # Ok(())
//! # }
//! ```

mod assemble;
mod error;
mod plan;
mod preflight;

pub use error::RunError;
pub use plan::{Overrides, PeerCommand, RunPlan, suite_file};

use crate::report::Report;
use crate::runner::{Progress, RunOptions, run_cases};
use crate::scenario::{Artifact, Registry};
use crate::seed::fresh_run_seed;
use crate::suite::{CaseSpec, select_cases};

/// What a run produced: the report, and the files of its cases (packet captures) to
/// write beside it (`cases/<case>/capture.pcap`).
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The report, as `report.json` holds it.
    pub report: Report,
    /// The cases' files.
    pub artifacts: Vec<Artifact>,
}

/// A plan expanded into its cases, not started.
pub struct PreparedRun<'a> {
    plan: &'a RunPlan,
    registry: &'a Registry,
    cases: Vec<CaseSpec>,
}

/// Expands `plan` into its cases, keeping those it names ([`RunPlan::cases`]). Nothing
/// starts.
///
/// # Errors
/// [`RunError::Expand`] for a combination a scenario refuses or a target it cannot take,
/// [`RunError::UnknownCase`] for a case id the run does not have.
pub fn prepare<'a>(plan: &'a RunPlan, registry: &'a Registry) -> Result<PreparedRun<'a>, RunError> {
    let mut cases = plan.suite.expand(registry)?;
    if !plan.cases.is_empty() {
        cases = select_cases(cases, &plan.cases)?;
    }
    Ok(PreparedRun { plan, registry, cases })
}

/// Runs `plan` to its report: [`prepare`], then [`PreparedRun::execute`].
///
/// # Errors
/// As those two: a configuration error of the run. A case that fails is in the report.
pub fn execute(plan: &RunPlan, registry: &Registry, progress: &dyn Progress) -> Result<RunOutput, RunError> {
    prepare(plan, registry)?.execute(progress)
}

impl PreparedRun<'_> {
    /// The cases the run will run, in order.
    pub fn cases(&self) -> &[CaseSpec] {
        &self.cases
    }

    /// Starts each target command once and the agent, runs every case, and assembles
    /// the report.
    ///
    /// # Errors
    /// [`RunError::Target`] for a target address where nothing listens or a target
    /// command that cannot start;
    /// [`RunError::NoRemotePeer`], [`RunError::PeerRefused`] or [`RunError::Agent`] with
    /// a peer; [`RunError::Runtime`] when no runtime can be built.
    pub fn execute(self, progress: &dyn Progress) -> Result<RunOutput, RunError> {
        let PreparedRun { plan, registry, cases } = self;
        preflight::check_target_addrs(&cases, registry)?;
        preflight::try_target_commands(&cases)?;
        let peer = match &plan.peer {
            Some(peer) => Some(preflight::start_peer(peer, &cases, registry)?),
            None => None,
        };
        let seed = plan.seed.unwrap_or_else(fresh_run_seed);
        let started = assemble::Started::now();
        let options = RunOptions { seed, peer: peer.clone() };
        let finished =
            run_cases(registry, &cases, &options, progress).map_err(|error| RunError::Runtime { error })?;
        let (report, artifacts) = assemble::report(plan, registry, started, seed, peer.as_deref(), finished);
        Ok(RunOutput { report, artifacts })
    }
}
