//! What a check of `server-conformance` is: a type implementing [`ConformanceCheck`] in a
//! file of its own, and one line in the table ([`super::CHECKS`]). The scenario reaches a
//! check only through the table, so adding one touches no `match` anywhere else.
//!
//! As the harness's `Scenario` is erased behind `DynScenario`, a check is written typed —
//! its own `Measure` — and the table holds it erased, as a [`DynCheck`]: the case carries
//! the measure boxed as `dyn Any`, and only the check that made it reads it back.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use socklab_harness::check::Check;
use socklab_harness::params::Invalid;
use socklab_harness::peer::ServerConfig;
use socklab_harness::scenario::{CaseContext, CaseOutcome};

use super::conn::Peer;
use super::setup::Setup;

/// One check of the family: when it applies, what it asks of a relay, how it measures and
/// how it judges.
pub(crate) trait ConformanceCheck: Sync + 'static {
    /// Its name, as the `check` parameter, case ids and `socklab probe` write it.
    const NAME: &'static str;
    /// Whether `socklab run server-conformance` (the scenario's built-in sweep) runs it: a
    /// check that does not apply to the default parameters must say `false`, and a test
    /// holds every check to it.
    const IN_DEFAULT_SWEEP: bool = true;
    /// What one run measures.
    type Measure: Send + 'static;

    /// Why the check does not apply to `setup` (its framing, behaviour, sizes), naming the
    /// parameter to change; `Ok` when it does. Asked after the refusals every check
    /// shares ([`Setup::refusal`]), and before the relay's.
    ///
    /// # Errors
    /// [`Invalid`], with the parameter and a one-line reason.
    fn applies(_setup: &Setup) -> Result<(), Invalid> {
        Ok(())
    }

    /// What it asks of an impairment relay in front of the server.
    fn relay(setup: &Setup) -> RelayLoad;

    /// Adjusts the reference server, when the check runs against it (no `--target`).
    fn reference(_setup: &Setup, _config: &mut ServerConfig) {}

    /// Measures, as clients of the server behind `peer`.
    fn run(setup: &Setup, peer: &Peer, ctx: &CaseContext) -> impl Future<Output = Self::Measure> + Send;

    /// Judges what the case measured into the check's verdict, which the report lists
    /// first; metrics, observations, artifacts and any further check go into `outcome`.
    /// When nothing was measured (`seen.measure` is `None`) the verdict must fail.
    fn evaluate(setup: &Setup, seen: Seen<Self::Measure>, outcome: &mut CaseOutcome) -> Check;
}

/// What a case measured for its check: the check's own measure, and what the case saw
/// of the server.
#[derive(Debug)]
pub(crate) struct Seen<M> {
    /// What [`ConformanceCheck::run`] measured; `None` when nothing was.
    pub measure: Option<M>,
    /// What the case saw of the server.
    pub server: ServerSide,
}

/// `Ok` unless `refused`; then [`Invalid`] naming `param`, for `reason`: a check's
/// [`ConformanceCheck::applies`], one condition at a time.
///
/// # Errors
/// As said.
pub(crate) fn refuse_if(
    refused: bool,
    param: &'static str,
    reason: impl FnOnce() -> String,
) -> Result<(), Invalid> {
    if refused { Err(Invalid::new(param, reason())) } else { Ok(()) }
}

/// What a check asks of an impairment relay (`impair`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayLoad {
    /// A relay would hide what the check tests: why, in one line, the whole refusal.
    Hidden(&'static str),
    /// Payload bytes the check moves one way, on its busiest connection or in a row over
    /// its connections. `sized_by`: the parameter that alone sets them, when one does, so
    /// that a refusal can say how far to lower it.
    Moves {
        /// The bytes.
        bytes: u64,
        /// The parameter that sets them alone, if any.
        sized_by: Option<&'static str>,
    },
}

/// What the case saw of the server, besides a check's own measure.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerSide {
    /// Reference sink only: messages it verified intact, and damaged.
    pub sink: Option<(u64, u64)>,
    /// Whether the `--target-cmd` process was running at the end; `None` without one.
    pub target_running: Option<bool>,
}

/// A measure, whatever its check: only that check reads it back.
pub(crate) type AnyMeasure = Box<dyn Any + Send>;

/// The future of an erased run.
pub(crate) type MeasureFuture<'a> = Pin<Box<dyn Future<Output = AnyMeasure> + Send + 'a>>;

/// A [`ConformanceCheck`] as the table holds it; see that trait for each method.
pub(crate) trait DynCheck: Sync {
    /// [`ConformanceCheck::applies`].
    fn applies(&self, setup: &Setup) -> Result<(), Invalid>;
    /// [`ConformanceCheck::relay`].
    fn relay(&self, setup: &Setup) -> RelayLoad;
    /// [`ConformanceCheck::reference`].
    fn reference(&self, setup: &Setup, config: &mut ServerConfig);
    /// [`ConformanceCheck::run`], its measure boxed.
    fn run<'a>(&self, setup: &'a Setup, peer: &'a Peer, ctx: &'a CaseContext) -> MeasureFuture<'a>;
    /// [`ConformanceCheck::evaluate`] of a boxed measure (one of another type, which the
    /// scenario never passes, counts as nothing measured).
    fn evaluate(&self, setup: &Setup, seen: Seen<AnyMeasure>, outcome: &mut CaseOutcome) -> Check;
}

impl<C: ConformanceCheck> DynCheck for C {
    fn applies(&self, setup: &Setup) -> Result<(), Invalid> {
        C::applies(setup)
    }

    fn relay(&self, setup: &Setup) -> RelayLoad {
        C::relay(setup)
    }

    fn reference(&self, setup: &Setup, config: &mut ServerConfig) {
        C::reference(setup, config);
    }

    fn run<'a>(&self, setup: &'a Setup, peer: &'a Peer, ctx: &'a CaseContext) -> MeasureFuture<'a> {
        Box::pin(async move { Box::new(C::run(setup, peer, ctx).await) as AnyMeasure })
    }

    fn evaluate(&self, setup: &Setup, seen: Seen<AnyMeasure>, outcome: &mut CaseOutcome) -> Check {
        let measure = seen.measure.and_then(|m| m.downcast::<C::Measure>().ok()).map(|m| *m);
        C::evaluate(setup, Seen { measure, server: seen.server }, outcome)
    }
}

/// A line of the table: a check's name, whether the built-in sweep runs it, the check.
pub(crate) struct Entry {
    /// [`ConformanceCheck::NAME`].
    pub name: &'static str,
    /// [`ConformanceCheck::IN_DEFAULT_SWEEP`].
    pub in_default_sweep: bool,
    /// The check, erased.
    pub check: &'static dyn DynCheck,
}

/// The table's line for `check`.
pub(crate) const fn entry<C: ConformanceCheck>(check: &'static C) -> Entry {
    Entry { name: C::NAME, in_default_sweep: C::IN_DEFAULT_SWEEP, check }
}
