//! The `Scenario` trait every experiment implements, and the registry the runner reads.
//!
//! A scenario is a unit struct implementing [`Scenario`]: typed parameters (a serde struct
//! with defaults), their [`ParamSpec`]s, its metrics, words that explain it, an async
//! `run` that measures, and a pure `evaluate` that turns the measurement into metrics,
//! observations and checks. The runner sees scenarios through the object-safe
//! [`DynScenario`], which [`Registry::with`] builds, so it works with parameter maps
//! rather than types.
//!
//! Measuring and judging are apart so that judging can be tested on its own: handed a
//! measurement of nothing ([`Scenario::Measured`]'s `Default`: no message sent, no
//! sample, no read), every check of every scenario must fail. A check that passes on
//! nothing would let a case that never ran look like a case that worked.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

pub use crate::cancel::{Cancel, Cancelled};
use crate::check::Check;
use crate::external::ExternalTarget;
use crate::link::{LinkError, LinkKind};
use crate::net::{NetnsError, SnmpError};
use crate::params::{Invalid, ParamError, ParamSet, ParamSpec};
use crate::peer::agent::{AgentError, RemoteAgent};
use crate::peer::{PeerError, Transport};
pub use crate::report::Artifact;
use crate::report::{BarChart, BarGroups, Metric, MetricSpec, Observations, ScenarioInfo, SweepTable};

/// Parameter values by name.
pub type ParamMap = BTreeMap<String, Value>;

/// A future a scenario returns, boxed so the runner can hold any scenario's.
pub type CaseFuture = Pin<Box<dyn Future<Output = Result<CaseOutcome, CaseError>> + Send>>;

/// An experiment about socket behaviour.
pub trait Scenario: Send + Sync + 'static {
    /// Typed parameters, declared with [`params!`](crate::params!): `Default` gives the
    /// documented defaults, [`ParamSet::SPECS`] their specs.
    type Params: ParamSet + Serialize + DeserializeOwned + Default + Clone + Send + 'static;
    /// What one case measured, before any verdict. `Default` must be a case that
    /// measured nothing — no message sent, no sample, no read — on which
    /// [`Scenario::evaluate`] fails every check.
    type Measured: Default + Send + 'static;

    /// Name used on the command line and in suites, `kebab-case`.
    const NAME: &'static str;
    /// What the scenario shows, in one line.
    const SUMMARY: &'static str;
    /// What it shows, why it happens, what fixes it — in plain words.
    const EXPLANATION: &'static str;
    /// The metrics every run produces.
    const METRICS: &'static [MetricSpec];
    /// How reports present a sweep of this scenario as a table; `None` for no table.
    const TABLE: Option<TableSpec> = None;
    /// Bar charts of the scenario's section in `index.html`; default none.
    const BARS: &'static [BarSpec] = &[];
    /// The matrix `socklab run NAME` sweeps when the command line does not set these
    /// parameters, in `--set` syntax (`("message_size", "16,256")`): what running the
    /// scenario alone should show. Suite files are not affected. Default: none.
    const SWEEP: &'static [(&'static str, &'static str)] = &[];

    /// Whether the scenario can run against an external server (`--target`,
    /// `--target-cmd`), which it then finds in [`CaseContext::target`]. Default: no —
    /// the scenario needs its own server (to record its reads, say), and a run that
    /// gives it a target is refused before anything runs.
    const EXTERNAL_TARGET: bool = false;

    /// Whether the scenario can run its server side through `socklab agent` on another
    /// host (`--peer-cmd`), which it then finds in [`CaseContext::peer`]; its report
    /// must look the same either way. Default: no, and a run with a peer refuses it.
    const REMOTE_PEER: bool = false;

    /// Checks combinations of parameters that each spec alone cannot (e.g. a message
    /// longer than a limit set by another parameter).
    ///
    /// # Errors
    /// [`Invalid`], naming the parameter to change and why.
    fn validate(_params: &Self::Params) -> Result<(), Invalid> {
        Ok(())
    }

    /// Checks parameters for a run against an external target (only called when
    /// [`Scenario::EXTERNAL_TARGET`] is true): a mode that needs the reference peer's
    /// own counters, say.
    ///
    /// # Errors
    /// [`Invalid`], naming the parameter to change and why.
    fn validate_target(_params: &Self::Params) -> Result<(), Invalid> {
        Ok(())
    }

    /// The transport a case talks to an external target over (`--target`): a run
    /// connects once to each TCP target before any case, to say in one line when nothing
    /// listens; a UDP target cannot be asked. Default: TCP.
    fn target_transport(_params: &Self::Params) -> Transport {
        Transport::Tcp
    }

    /// Checks parameters for a run whose server side is an agent on another host
    /// (`--peer-cmd`; only called when [`Scenario::REMOTE_PEER`] is true): a setting
    /// that puts both ends on this host, say ([`peer_link`] for a `link` parameter).
    ///
    /// # Errors
    /// [`Invalid`], naming the parameter to change and why.
    fn validate_peer(_params: &Self::Params) -> Result<(), Invalid> {
        Ok(())
    }

    /// Runs one case and returns what it measured. The runner enforces the timeout by
    /// dropping the future.
    fn run(
        params: Self::Params,
        ctx: CaseContext,
    ) -> impl Future<Output = Result<Self::Measured, CaseError>> + Send;

    /// Metrics, observations, artifacts and checks from what [`Scenario::run`] measured;
    /// no I/O. Checks judge against what `params` asked for, not against what was
    /// measured alone, so that nothing measured fails them.
    fn evaluate(params: &Self::Params, measured: Self::Measured) -> CaseOutcome;
}

/// What [`Scenario::validate_peer`] says of a `link` parameter: with `--peer-cmd` the
/// link is the network to the agent, so a link of the case's own is refused.
///
/// # Errors
/// [`Invalid`] naming `link`, for any link but loopback.
pub fn peer_link(link: LinkKind) -> Result<(), Invalid> {
    match link {
        LinkKind::Loopback => Ok(()),
        other => Err(Invalid::new(
            "link",
            format!(
                "link={other} makes both ends on this host; with --peer-cmd the link is the network to the agent"
            ),
        )),
    }
}

/// A sweep table a scenario declares; see [`SweepTable`].
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// Parameter whose values label the rows.
    pub rows: &'static str,
    /// Parameter whose values label the columns.
    pub columns: &'static str,
    /// Metrics shown in each cell.
    pub cells: &'static [&'static str],
}

/// A bar chart a scenario declares; see [`BarChart`].
#[derive(Debug, Clone, Copy)]
pub struct BarSpec {
    /// What it shows, with its unit: `Server CPU after EOF (% of one core)`.
    pub title: &'static str,
    /// The metric (declared in [`Scenario::METRICS`]) for [`BarSource::Param`], or the
    /// name of the [`ValueSeries`](crate::report::ValueSeries) cases put in
    /// `observations.series` for [`BarSource::Items`].
    pub values: &'static str,
    /// What the groups along the horizontal axis are.
    pub groups: BarSource,
}

/// The groups of a [`BarSpec`]; see [`BarGroups`].
#[derive(Debug, Clone, Copy)]
pub enum BarSource {
    /// One group per value of this parameter.
    Param(&'static str),
    /// One group per item of each case's series.
    Items,
}

/// What the runner hands a case besides its parameters.
#[derive(Debug, Clone)]
pub struct CaseContext {
    /// The case id, for messages.
    pub case_id: String,
    /// The case seed: every random choice of the case derives from it.
    pub seed: u64,
    /// How long the case may take in all.
    pub timeout: Duration,
    /// The external server to run against; `None` for the reference peers.
    pub target: Option<ExternalTarget>,
    /// The agent on another host that plays the server side (`--peer-cmd`); `None` to
    /// run it in process. Only scenarios with [`Scenario::REMOTE_PEER`] get one.
    pub peer: Option<Arc<RemoteAgent>>,
    /// Set by the runner when the case timed out. Async work is dropped with its future;
    /// blocking work (threads, `spawn_blocking`) must look at this between system calls
    /// and stop, with socket timeouts short enough (≤ [`Cancel::CHECK_EVERY`]) that no
    /// call blocks much longer.
    pub cancel: Cancel,
}

/// What a case produced when it ran to the end.
#[derive(Debug, Clone, Default)]
pub struct CaseOutcome {
    /// Measured values.
    pub metrics: Vec<Metric>,
    /// Event-level record.
    pub observations: Observations,
    /// The scenario's own checks.
    pub checks: Vec<Check>,
    /// Files for the report folder (a capture's pcap), beside `report.json`.
    pub artifacts: Vec<Artifact>,
}

impl CaseOutcome {
    /// Adds a measured value of a declared metric, in the metric's unit.
    pub fn metric(&mut self, spec: MetricSpec, value: f64) -> &mut Self {
        self.metrics.push(spec.value(value));
        self
    }

    /// Adds a measured value that summarises the case in tables.
    pub fn key_metric(&mut self, spec: MetricSpec, value: f64) -> &mut Self {
        self.metrics.push(Metric { key: true, ..spec.value(value) });
        self
    }
}

/// Why a case could not run to the end.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum CaseError {
    /// A socket or file operation failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done (`connect to 127.0.0.1:40312`).
        context: String,
        /// The error.
        error: io::Error,
    },
    /// A reference peer (server or client workload) failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Parameters that passed validation could not be read as the scenario's type.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The scenario refused its parameters while running (a check its `validate` makes
    /// too, met again where the value is used).
    #[error("invalid parameters: {0}")]
    Invalid(#[from] Invalid),
    /// A private network namespace could not be made or used.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Kernel counters (`/proc/net/snmp`) could not be read.
    #[error(transparent)]
    Counters(#[from] SnmpError),
    /// The case's impairment relay (`impair`) could not start.
    #[error("impairment relay: {0}")]
    Impair(#[from] crate::impair::ImpairError),
    /// The agent on the other host failed or refused.
    #[error(transparent)]
    Agent(AgentError),
    /// The case's link (a veth pair between namespaces) could not be made or used.
    #[error(transparent)]
    Link(LinkError),
    /// The case cannot run here, for this reason (a missing privilege); the runner
    /// records it as skipped, never as passed, and never runs it some other way.
    #[error("skipped: {0}")]
    Skipped(String),
    /// A task or thread of the case panicked or was cancelled.
    #[error("{task} {what}")]
    Task {
        /// Which one (`the server task`).
        task: &'static str,
        /// What happened: `panicked: <message>` or `was cancelled`.
        what: String,
    },
    /// The runner cancelled the case (its timeout passed) while blocking work ran.
    #[error("cancelled: the case's time was up")]
    Cancelled,
    /// The scenario emitted a metric it does not declare: a bug in socklab, reported
    /// rather than written into a report that `socklab list` would not explain.
    #[error("socklab bug: {scenario} emitted metric `{metric}`, which it does not declare")]
    UndeclaredMetric {
        /// The scenario.
        scenario: &'static str,
        /// The metric's name.
        metric: String,
    },
    /// A peer did something the scenario cannot go on from (more bytes than were sent,
    /// a missing reply).
    #[error("{0}")]
    Protocol(String),
}

impl CaseError {
    /// A task that panicked or was cancelled, from its join error.
    pub fn task(task: &'static str, error: tokio::task::JoinError) -> Self {
        let what = if error.is_panic() {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            format!("panicked: {message}")
        } else {
            "was cancelled".to_string()
        };
        CaseError::Task { task, what }
    }
}

impl From<Cancelled> for CaseError {
    fn from(_: Cancelled) -> Self {
        CaseError::Cancelled
    }
}

impl From<AgentError> for CaseError {
    /// A cancel while waiting for the agent is the case's cancel.
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Cancelled => CaseError::Cancelled,
            other => CaseError::Agent(other),
        }
    }
}

impl From<LinkError> for CaseError {
    /// A link this process may not make skips the case; any other failure is an error.
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::NotPermitted(reason) => CaseError::Skipped(reason),
            other => CaseError::Link(other),
        }
    }
}

/// Adds context to I/O errors: `socket.connect(addr).await.context("connect")?`.
pub trait IoContext<T> {
    /// Wraps the error in [`CaseError::Io`] with `context`.
    fn context(self, context: impl Into<String>) -> Result<T, CaseError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T, CaseError> {
        self.map_err(|error| CaseError::Io { context: context.into(), error })
    }
}

/// A scenario as the runner sees it: names, specs and a run over parameter maps.
pub trait DynScenario: Send + Sync {
    /// See [`Scenario::NAME`].
    fn name(&self) -> &'static str;
    /// See [`Scenario::SUMMARY`].
    fn summary(&self) -> &'static str;
    /// See [`Scenario::EXPLANATION`].
    fn explanation(&self) -> &'static str;
    /// One spec per field of [`Scenario::Params`] ([`ParamSet::SPECS`]).
    fn params(&self) -> &'static [ParamSpec];
    /// See [`Scenario::METRICS`].
    fn metrics(&self) -> &'static [MetricSpec];
    /// See [`Scenario::BARS`].
    fn bars(&self) -> &'static [BarSpec];
    /// The default value of every parameter.
    fn defaults(&self) -> ParamMap;
    /// What reports say about the scenario: summary, explanation, sweep table.
    fn info(&self) -> ScenarioInfo;
    /// See [`Scenario::SWEEP`].
    fn sweep(&self) -> &'static [(&'static str, &'static str)];
    /// See [`Scenario::EXTERNAL_TARGET`].
    fn external_target(&self) -> bool;
    /// See [`Scenario::REMOTE_PEER`].
    fn remote_peer(&self) -> bool;
    /// [`Scenario::validate_target`] on a full parameter map.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] with the scenario's reason.
    fn validate_target(&self, params: &ParamMap) -> Result<(), ParamError>;
    /// [`Scenario::target_transport`] on a full parameter map (TCP when they do not
    /// deserialize: expansion has refused those already).
    fn target_transport(&self, params: &ParamMap) -> Transport;
    /// [`Scenario::validate_peer`] on a full parameter map.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] with the scenario's reason.
    fn validate_peer(&self, params: &ParamMap) -> Result<(), ParamError>;
    /// Checks a full parameter map (defaults merged with what was set) as the typed
    /// struct, including [`Scenario::validate`].
    ///
    /// # Errors
    /// [`ParamError::Invalid`] with the scenario's reason.
    fn validate(&self, params: &ParamMap) -> Result<(), ParamError>;
    /// Starts a case: measures, then evaluates. Parameters must have passed
    /// [`DynScenario::validate`].
    fn run(&self, params: ParamMap, ctx: CaseContext) -> CaseFuture;
    /// [`Scenario::evaluate`] on a measurement of nothing, for the contract test that no
    /// check passes when there was nothing to judge.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] when `params` do not deserialize.
    fn evaluate_nothing(&self, params: &ParamMap) -> Result<CaseOutcome, ParamError>;
}

struct Erased<S>(PhantomData<fn() -> S>);

impl<S: Scenario> Erased<S> {
    fn typed(params: &ParamMap) -> Result<S::Params, ParamError> {
        let object = Value::Object(params.clone().into_iter().collect());
        serde_json::from_value(object).map_err(|e| ParamError::Invalid {
            scenario: S::NAME.to_string(),
            param: None,
            reason: e.to_string(),
        })
    }
}

impl<S: Scenario> DynScenario for Erased<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn summary(&self) -> &'static str {
        S::SUMMARY
    }

    fn explanation(&self) -> &'static str {
        S::EXPLANATION
    }

    fn params(&self) -> &'static [ParamSpec] {
        <S::Params as ParamSet>::SPECS
    }

    fn metrics(&self) -> &'static [MetricSpec] {
        S::METRICS
    }

    fn bars(&self) -> &'static [BarSpec] {
        S::BARS
    }

    fn defaults(&self) -> ParamMap {
        match serde_json::to_value(S::Params::default()) {
            Ok(Value::Object(map)) => map.into_iter().collect(),
            _ => ParamMap::new(),
        }
    }

    fn sweep(&self) -> &'static [(&'static str, &'static str)] {
        S::SWEEP
    }

    fn external_target(&self) -> bool {
        S::EXTERNAL_TARGET
    }

    fn remote_peer(&self) -> bool {
        S::REMOTE_PEER
    }

    fn target_transport(&self, params: &ParamMap) -> Transport {
        Self::typed(params).map_or(Transport::Tcp, |typed| S::target_transport(&typed))
    }

    fn validate_target(&self, params: &ParamMap) -> Result<(), ParamError> {
        let typed = Self::typed(params)?;
        S::validate_target(&typed).map_err(|e| ParamError::invalid(S::NAME, e))
    }

    fn validate_peer(&self, params: &ParamMap) -> Result<(), ParamError> {
        let typed = Self::typed(params)?;
        S::validate_peer(&typed).map_err(|e| ParamError::invalid(S::NAME, e))
    }

    fn info(&self) -> ScenarioInfo {
        ScenarioInfo {
            summary: S::SUMMARY.to_string(),
            explanation: S::EXPLANATION.to_string(),
            table: S::TABLE.map(|t| SweepTable {
                rows: t.rows.to_string(),
                columns: t.columns.to_string(),
                cells: t.cells.iter().map(|c| c.to_string()).collect(),
            }),
            param_units: <S::Params as ParamSet>::SPECS
                .iter()
                .filter_map(|p| p.unit.map(|unit| (p.name.to_string(), unit.to_string())))
                .collect(),
            better: S::METRICS.iter().map(|m| (m.name.to_string(), m.better)).collect(),
            bars: S::BARS
                .iter()
                .map(|b| BarChart {
                    title: b.title.to_string(),
                    values: b.values.to_string(),
                    groups: match b.groups {
                        BarSource::Param(name) => BarGroups::Param(name.to_string()),
                        BarSource::Items => BarGroups::Items,
                    },
                })
                .collect(),
        }
    }

    fn validate(&self, params: &ParamMap) -> Result<(), ParamError> {
        let typed = Self::typed(params)?;
        S::validate(&typed).map_err(|e| ParamError::invalid(S::NAME, e))
    }

    fn run(&self, params: ParamMap, ctx: CaseContext) -> CaseFuture {
        match Self::typed(&params) {
            Ok(typed) => Box::pin(async move {
                let measured = S::run(typed.clone(), ctx).await?;
                let outcome = S::evaluate(&typed, measured);
                match outcome.metrics.iter().find(|m| !S::METRICS.iter().any(|spec| spec.name == m.name)) {
                    Some(metric) => {
                        Err(CaseError::UndeclaredMetric { scenario: S::NAME, metric: metric.name.clone() })
                    }
                    None => Ok(outcome),
                }
            }),
            Err(e) => Box::pin(std::future::ready(Err(CaseError::Params(e)))),
        }
    }

    fn evaluate_nothing(&self, params: &ParamMap) -> Result<CaseOutcome, ParamError> {
        Ok(S::evaluate(&Self::typed(params)?, S::Measured::default()))
    }
}

/// The scenarios a run can use, by name.
#[derive(Default)]
pub struct Registry {
    scenarios: Vec<Box<dyn DynScenario>>,
}

/// An unknown scenario name, with the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown scenario `{name}`; valid scenarios: {}", valid.join(", "))]
pub struct UnknownScenario {
    /// The name that was given.
    pub name: String,
    /// Every registered name.
    pub valid: Vec<String>,
}

impl Registry {
    /// Adds scenario `S`.
    pub fn with<S: Scenario>(mut self) -> Self {
        self.scenarios.push(Box::new(Erased::<S>(PhantomData)));
        self
    }

    /// Every scenario, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn DynScenario> {
        self.scenarios.iter().map(|s| s.as_ref())
    }

    /// The scenario called `name`.
    ///
    /// # Errors
    /// [`UnknownScenario`] listing the valid names.
    pub fn get(&self, name: &str) -> Result<&dyn DynScenario, UnknownScenario> {
        self.iter().find(|s| s.name() == name).ok_or_else(|| UnknownScenario {
            name: name.to_string(),
            valid: self.iter().map(|s| s.name().to_string()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_of_its_own_is_refused_with_a_peer() {
        assert_eq!(peer_link(LinkKind::Loopback), Ok(()));
        let refused = peer_link(LinkKind::Veth).unwrap_err();
        assert_eq!(refused.param, "link");
        assert_eq!(
            refused.reason,
            "link=veth makes both ends on this host; with --peer-cmd the link is the network to the agent"
        );
    }
}
