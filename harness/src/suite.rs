//! Suites: TOML files listing scenario runs with parameter matrices and thresholds, and
//! their expansion into cases.
//!
//! ```toml
//! name = "default"
//! timeout_s = 30                    # per case, unless a run says otherwise
//!
//! [[run]]
//! scenario = "tcp-coalescing"
//! [run.params]
//! read_size = [5, 1024]             # a list is a matrix: 2 values...
//! nodelay = [false, true]           # ...times 2 = 4 cases
//! [[run.expect]]                    # a threshold, checked on every case of the run
//! metric = "split_messages"
//! op = ">="
//! value = 1
//! ```
//!
//! Every mistake in a suite file is reported with the file, line and column.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;
use toml::Spanned;

use crate::check::{CompareOp, Threshold};
use crate::external::{CommandTemplate, Target, parse_target};
use crate::params::{ParamError, find_spec, split_set};
use crate::report::CompareSettings;
use crate::scenario::{DynScenario, ParamMap, Registry};
pub use crate::text::value_text;

/// How long a case may run when neither the suite nor the command line says.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most cases one suite may expand to: a typo in a matrix should not start a day-long run.
pub const MAX_CASES: usize = 10_000;

/// A parsed suite, ready to expand.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Name from the file, or a name for where the suite came from.
    pub name: String,
    /// Per-case timeout for runs that do not set their own.
    pub timeout: Duration,
    /// The runs, in file order.
    pub runs: Vec<SuiteRun>,
    /// Keep a run's built-in sweep when `--set` applies to it (`--sweep`); by default a
    /// set parameter turns the sweep off, so `--set` runs exactly the matrix it names.
    pub keep_sweep: bool,
    /// What plays the server for runs that do not name their own target.
    pub target: Target,
    /// How many times each case runs, for runs that do not say (`repeat`, `--repeat`).
    pub repeat: u32,
    /// How `socklab compare` judges a run of this suite (`[compare]`).
    pub compare: CompareSettings,
}

/// One `[[run]]`: a scenario with a parameter matrix and thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteRun {
    /// Registered scenario name.
    pub scenario: String,
    /// Optional label, prefixed to case ids.
    pub label: Option<String>,
    /// Parameters set for this run, each with one or more values, in file order.
    pub matrix: Vec<(String, Vec<Value>)>,
    /// Per-case timeout of this run, if set.
    pub timeout: Option<Duration>,
    /// Thresholds checked on every case.
    pub expect: Vec<Threshold>,
    /// Names of the `matrix` entries that came from the scenario's built-in sweep
    /// ([`Scenario::SWEEP`](crate::scenario::Scenario::SWEEP)); empty in suite files.
    pub sweep: Vec<String>,
    /// This run's own target, if it names one.
    pub target: Option<Target>,
    /// This run's own repeat count, if it names one.
    pub repeat: Option<u32>,
}

/// One point of a matrix: what the runner executes.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSpec {
    /// Unique within the run.
    pub id: String,
    /// Registered scenario name.
    pub scenario: String,
    /// Every parameter, defaults included.
    pub params: ParamMap,
    /// The parameters the suite or `--set` gave.
    pub set_params: ParamMap,
    /// How long the case may run.
    pub timeout: Duration,
    /// Thresholds to check after it ran.
    pub expect: Vec<Threshold>,
    /// What plays the server.
    pub target: Target,
    /// How many times it runs (1 unless repeated); the runner interleaves repeats.
    pub repeat: u32,
}

/// A suite file that cannot be used.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum SuiteError {
    /// The file could not be read.
    #[error("cannot read suite file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: io::Error,
    },
    /// The file is not valid TOML, or not a valid suite.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what is valid.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: Option<String>,
    #[allow(dead_code)] // documentation for readers of the file
    description: Option<String>,
    timeout_s: Option<Spanned<u64>>,
    target: Option<Spanned<String>>,
    target_cmd: Option<Spanned<String>>,
    repeat: Option<Spanned<u64>>,
    compare: Option<CompareFile>,
    #[serde(default)]
    run: Vec<RunFile>,
}

/// `[compare]`: `threshold = "5%"`, and `[compare.metrics]` `rtt_p99 = "25%"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareFile {
    threshold: Option<Spanned<toml::Value>>,
    #[serde(default)]
    metrics: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    scenario: Spanned<String>,
    label: Option<String>,
    timeout_s: Option<Spanned<u64>>,
    target: Option<Spanned<String>>,
    target_cmd: Option<Spanned<String>>,
    repeat: Option<Spanned<u64>>,
    #[serde(default)]
    params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    expect: Vec<ExpectFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    metric: Spanned<String>,
    op: Spanned<String>,
    value: f64,
}

impl Suite {
    /// Reads and parses a suite file.
    ///
    /// # Errors
    /// [`SuiteError`] with the file, line and column of the first mistake.
    pub fn load(path: &Path, registry: &Registry) -> Result<Suite, SuiteError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| SuiteError::Read { path: display.clone(), error })?;
        Suite::parse(&text, &display, registry)
    }

    /// Parses suite text; `origin` names it in errors (a path, or `default`).
    ///
    /// # Errors
    /// [`SuiteError::Invalid`] with line and column.
    pub fn parse(text: &str, origin: &str, registry: &Registry) -> Result<Suite, SuiteError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            SuiteError::Invalid { path: origin.to_string(), line, column, message }
        };
        let file: SuiteFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            at(e.span().unwrap_or(0..0), message)
        })?;
        if file.run.is_empty() {
            return Err(at(0..0, "the suite has no [[run]] entries; add at least one".to_string()));
        }
        let timeout = match file.timeout_s {
            Some(t) => timeout_from(&t).map_err(|m| at(t.span(), m))?,
            None => DEFAULT_CASE_TIMEOUT,
        };
        let suite_target = target_from(file.target.as_ref(), file.target_cmd.as_ref())
            .map_err(|(span, m)| at(span, m))?
            .unwrap_or_default();
        let suite_repeat = match &file.repeat {
            Some(r) => repeat_from(r).map_err(|m| at(r.span(), m))?,
            None => 1,
        };
        let mut compare = CompareSettings::default();
        if let Some(table) = &file.compare {
            if let Some(t) = &table.threshold {
                compare.threshold_pct = percent_from(t.get_ref()).map_err(|m| at(t.span(), m))?;
            }
            let mut known: Vec<&str> = Vec::new();
            for run in &file.run {
                if let Ok(scenario) = registry.get(run.scenario.get_ref()) {
                    known.extend(scenario.metrics().iter().map(|m| m.name));
                }
            }
            for (name, value) in &table.metrics {
                if !known.contains(&name.get_ref().as_str()) {
                    known.sort_unstable();
                    known.dedup();
                    let message = format!(
                        "unknown metric `{}` in [compare.metrics]; the suite's metrics: {}",
                        name.get_ref(),
                        known.join(", ")
                    );
                    return Err(at(name.span(), message));
                }
                let pct = percent_from(value.get_ref()).map_err(|m| at(value.span(), m))?;
                compare.metrics.insert(name.get_ref().clone(), pct);
            }
        }
        let mut runs = Vec::with_capacity(file.run.len());
        for run in file.run {
            let scenario =
                registry.get(run.scenario.get_ref()).map_err(|e| at(run.scenario.span(), e.to_string()))?;
            let mut params: Vec<_> = run.params.into_iter().collect();
            params.sort_by_key(|(key, _)| key.span().start); // file order
            let mut matrix = Vec::with_capacity(params.len());
            for (key, value) in params {
                let spec = find_spec(scenario.name(), scenario.params(), key.get_ref())
                    .map_err(|e| at(key.span(), e.to_string()))?;
                let values = spec.from_toml(value.get_ref()).map_err(|e| at(value.span(), e.to_string()))?;
                matrix.push((key.into_inner(), values));
            }
            let mut expect = Vec::with_capacity(run.expect.len());
            for e in run.expect {
                if !scenario.metrics().iter().any(|m| m.name == e.metric.get_ref()) {
                    let valid: Vec<_> = scenario.metrics().iter().map(|m| m.name).collect();
                    let message = format!(
                        "unknown metric `{}` for scenario `{}`; valid metrics: {}",
                        e.metric.get_ref(),
                        scenario.name(),
                        valid.join(", ")
                    );
                    return Err(at(e.metric.span(), message));
                }
                let op: CompareOp = e.op.get_ref().parse().map_err(|m| at(e.op.span(), m))?;
                expect.push(Threshold { metric: e.metric.into_inner(), op, value: e.value });
            }
            let timeout = match run.timeout_s {
                Some(t) => Some(timeout_from(&t).map_err(|m| at(t.span(), m))?),
                None => None,
            };
            let target =
                target_from(run.target.as_ref(), run.target_cmd.as_ref()).map_err(|(span, m)| at(span, m))?;
            let repeat = match &run.repeat {
                Some(r) => Some(repeat_from(r).map_err(|m| at(r.span(), m))?),
                None => None,
            };
            runs.push(SuiteRun {
                scenario: scenario.name().to_string(),
                label: run.label,
                matrix,
                timeout,
                expect,
                sweep: Vec::new(),
                target,
                repeat,
            });
        }
        Ok(Suite {
            name: file.name.unwrap_or_else(|| origin.to_string()),
            timeout,
            runs,
            keep_sweep: false,
            target: suite_target,
            repeat: suite_repeat,
            compare,
        })
    }

    /// A suite running each named scenario with its defaults: once, or over the scenario's
    /// own sweep ([`Scenario::SWEEP`](crate::scenario::Scenario::SWEEP)) where it has one.
    /// A `--set` that applies to a scenario later turns its sweep off
    /// ([`Suite::apply_sets`]) unless [`Suite::keep_sweep`] is set.
    ///
    /// # Errors
    /// An unknown name, with the valid ones.
    pub fn from_scenarios(
        names: &[String],
        registry: &Registry,
    ) -> Result<Suite, crate::scenario::UnknownScenario> {
        let runs = names
            .iter()
            .map(|name| {
                registry.get(name).map(|s| {
                    let matrix = sweep_matrix(s);
                    let sweep = matrix.iter().map(|(name, _)| name.clone()).collect();
                    SuiteRun {
                        scenario: s.name().to_string(),
                        label: None,
                        matrix,
                        timeout: None,
                        expect: Vec::new(),
                        sweep,
                        target: None,
                        repeat: None,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Suite {
            name: "command line".to_string(),
            timeout: DEFAULT_CASE_TIMEOUT,
            runs,
            keep_sweep: false,
            target: Target::Reference,
            repeat: 1,
            compare: CompareSettings::default(),
        })
    }

    /// Applies `--set KEY=VALUE` arguments to every run whose scenario has parameter
    /// `KEY`, replacing what the suite set. A run it applies to loses its built-in sweep
    /// (unless [`Suite::keep_sweep`]): a parameter the user sets is never swept, and
    /// nothing else is swept behind their back.
    ///
    /// # Errors
    /// A malformed argument, a bad value, or a key no run's scenario has.
    pub fn apply_sets(&mut self, sets: &[String], registry: &Registry) -> Result<(), ParamError> {
        for arg in sets {
            let (key, text) = split_set(arg)?;
            let mut applied = false;
            let mut unknown = None;
            for run in &mut self.runs {
                let scenario = registry.get(&run.scenario).map_err(|e| ParamError::Invalid {
                    scenario: e.name.clone(),
                    param: None,
                    reason: e.to_string(),
                })?;
                let spec = match find_spec(scenario.name(), scenario.params(), key) {
                    Ok(spec) => spec,
                    Err(e) => {
                        unknown.get_or_insert(e);
                        continue;
                    }
                };
                let values = spec.parse_cli(text)?;
                if !self.keep_sweep {
                    let sweep = std::mem::take(&mut run.sweep);
                    run.matrix.retain(|(name, _)| !sweep.contains(name));
                }
                run.sweep.retain(|name| name != key);
                match run.matrix.iter_mut().find(|(name, _)| name == key) {
                    Some(entry) => entry.1 = values,
                    None => run.matrix.push((key.to_string(), values)),
                }
                applied = true;
            }
            if !applied {
                if let Some(e) = unknown {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Sets the target of every run (`--target`, `--target-cmd`).
    pub fn override_target(&mut self, target: Target) {
        self.target = target;
        for run in &mut self.runs {
            run.target = None;
        }
    }

    /// Sets the repeat count of every run (`--repeat`).
    pub fn override_repeat(&mut self, repeat: u32) {
        self.repeat = repeat;
        for run in &mut self.runs {
            run.repeat = None;
        }
    }

    /// Sets the per-case timeout of every run.
    pub fn override_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        for run in &mut self.runs {
            run.timeout = Some(timeout);
        }
    }

    /// How many cases the suite expands to (each matrix's product, times its repeat
    /// count, summed over the runs), counted without overflow: four parameters of 65,536
    /// values each are 2^64 cases, not 0.
    pub fn case_count(&self) -> CaseCount {
        self.runs
            .iter()
            .map(|run| {
                let repeat = CaseCount::Exact(u128::from(run.repeat.unwrap_or(self.repeat)));
                run.matrix.iter().fold(repeat, |count, (_, values)| count.times(values.len() as u128))
            })
            .fold(CaseCount::Exact(0), CaseCount::plus)
    }

    /// Expands every run's matrix into cases, each with its full, validated parameters.
    ///
    /// # Errors
    /// [`ExpandError`] when a combination is refused by its scenario, or the suite
    /// expands to more than [`MAX_CASES`] cases.
    pub fn expand(&self, registry: &Registry) -> Result<Vec<CaseSpec>, ExpandError> {
        let total = self.case_count();
        if total > CaseCount::Exact(MAX_CASES as u128) {
            return Err(ExpandError::TooMany { cases: total, limit: MAX_CASES });
        }
        let mut cases: Vec<CaseSpec> = Vec::with_capacity(MAX_CASES.min(total.exact().unwrap_or(0) as usize));
        let mut id_counts = BTreeMap::<String, usize>::new();
        for run in &self.runs {
            let scenario = registry.get(&run.scenario).map_err(|e| {
                ExpandError::Param(ParamError::Invalid {
                    scenario: e.name.clone(),
                    param: None,
                    reason: e.to_string(),
                })
            })?;
            let target = run.target.clone().unwrap_or_else(|| self.target.clone());
            if target.is_external() && !scenario.external_target() {
                let supported =
                    registry.iter().filter(|s| s.external_target()).map(|s| s.name()).collect::<Vec<_>>();
                return Err(ExpandError::TargetUnsupported {
                    scenario: scenario.name().to_string(),
                    target: target.to_string(),
                    supported: supported.join(", "),
                });
            }
            for set_params in product(&run.matrix) {
                let mut params = scenario.defaults();
                params.extend(set_params.iter().map(|(k, v)| (k.clone(), v.clone())));
                scenario.validate(&params).map_err(ExpandError::Param)?;
                if target.is_external() {
                    scenario.validate_target(&params).map_err(ExpandError::Param)?;
                }
                let mut id = case_id(run, &set_params);
                let seen = id_counts.entry(id.clone()).or_insert(0);
                *seen += 1;
                if *seen > 1 {
                    id = format!("{id}#{seen}");
                }
                cases.push(CaseSpec {
                    id,
                    scenario: run.scenario.clone(),
                    params,
                    set_params: set_params.into_iter().collect(),
                    timeout: run.timeout.unwrap_or(self.timeout),
                    expect: run.expect.clone(),
                    target: target.clone(),
                    repeat: run.repeat.unwrap_or(self.repeat),
                });
            }
        }
        Ok(cases)
    }
}

/// Keeps only the cases named in `ids` (exact case ids, as reports and replay commands
/// print them), in run order.
///
/// # Errors
/// [`UnknownCase`] for the first id no case has, listing the ids there are.
pub fn select_cases(cases: Vec<CaseSpec>, ids: &[String]) -> Result<Vec<CaseSpec>, UnknownCase> {
    if let Some(missing) = ids.iter().find(|id| !cases.iter().any(|c| &&c.id == id)) {
        return Err(UnknownCase { id: missing.clone(), valid: cases.into_iter().map(|c| c.id).collect() });
    }
    Ok(cases.into_iter().filter(|c| ids.contains(&c.id)).collect())
}

/// A `--case` id that the run does not have.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown case `{id}`; this run's {} cases: {}", valid.len(), valid.join(", "))]
pub struct UnknownCase {
    /// The id that was given.
    pub id: String,
    /// Every case id of the run.
    pub valid: Vec<String>,
}

/// Why a suite could not be expanded into cases.
#[derive(Debug, Error)]
pub enum ExpandError {
    /// A combination of parameters was refused.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A scenario that needs its own server was given an external one.
    #[error(
        "{scenario} cannot run against {target}: it needs socklab's own server (to record what the server side \
         saw); scenarios that take a target: {supported}"
    )]
    TargetUnsupported {
        /// The scenario.
        scenario: String,
        /// The target, in words.
        target: String,
        /// Scenarios that can.
        supported: String,
    },
    /// Too many cases.
    #[error("the suite expands to {cases} cases, more than the limit of {limit}; shrink the matrices")]
    TooMany {
        /// How many.
        cases: CaseCount,
        /// [`MAX_CASES`].
        limit: usize,
    },
}

/// A number of cases, exact up to `u128::MAX` (3.4e38): matrices multiply, and a suite
/// file can hold enough values to pass any machine integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaseCount {
    /// This many.
    Exact(u128),
    /// More than `u128::MAX`.
    Beyond,
}

impl CaseCount {
    /// The count, when it is exact.
    pub fn exact(self) -> Option<u128> {
        match self {
            CaseCount::Exact(n) => Some(n),
            CaseCount::Beyond => None,
        }
    }

    fn times(self, factor: u128) -> CaseCount {
        match self {
            CaseCount::Exact(n) => n.checked_mul(factor).map_or(CaseCount::Beyond, CaseCount::Exact),
            // Zero times anything is zero, even a count past u128.
            CaseCount::Beyond if factor == 0 => CaseCount::Exact(0),
            CaseCount::Beyond => CaseCount::Beyond,
        }
    }

    fn plus(self, other: CaseCount) -> CaseCount {
        match (self, other) {
            (CaseCount::Exact(a), CaseCount::Exact(b)) => {
                a.checked_add(b).map_or(CaseCount::Beyond, CaseCount::Exact)
            }
            _ => CaseCount::Beyond,
        }
    }
}

impl std::fmt::Display for CaseCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaseCount::Exact(n) => write!(f, "{n}"),
            CaseCount::Beyond => write!(f, "more than {}", u128::MAX),
        }
    }
}

/// A scenario's [`Scenario::SWEEP`](crate::scenario::Scenario::SWEEP) as a matrix. The
/// sweep is the scenario's own constant; entries that do not parse are left out (each
/// scenario's tests check that its sweep parses).
fn sweep_matrix(scenario: &dyn DynScenario) -> Vec<(String, Vec<Value>)> {
    scenario
        .sweep()
        .iter()
        .filter_map(|(name, text)| {
            let spec = find_spec(scenario.name(), scenario.params(), name).ok()?;
            Some((name.to_string(), spec.parse_cli(text).ok()?))
        })
        .collect()
}

/// Every combination of the matrix values, first parameter varying slowest.
fn product(matrix: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    matrix.iter().fold(vec![Vec::new()], |combos, (name, values)| {
        combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.push((name.clone(), value.clone()));
                    next
                })
            })
            .collect()
    })
}

/// `label/scenario[k=v,k=v]`, naming only the parameters that were set.
fn case_id(run: &SuiteRun, set_params: &[(String, Value)]) -> String {
    let mut id = match &run.label {
        Some(label) => format!("{label}/{}", run.scenario),
        None => run.scenario.clone(),
    };
    if !set_params.is_empty() {
        let parts: Vec<String> = set_params.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect();
        id = format!("{id}[{}]", parts.join(","));
    }
    id
}

/// A target from a suite's `target` (an address) or `target_cmd` (a command with
/// `{port}`); an error carries the span of the value at fault.
fn target_from(
    addr: Option<&Spanned<String>>,
    command: Option<&Spanned<String>>,
) -> Result<Option<Target>, (std::ops::Range<usize>, String)> {
    match (addr, command) {
        (None, None) => Ok(None),
        (Some(_), Some(c)) => {
            Err((c.span(), "give either target (an address) or target_cmd, not both".to_string()))
        }
        (Some(a), None) => parse_target(a.get_ref()).map(Some).map_err(|e| (a.span(), e.to_string())),
        (None, Some(c)) => CommandTemplate::new(c.get_ref())
            .map(|t| Some(Target::Command(t)))
            .map_err(|e| (c.span(), e.to_string())),
    }
}

/// A percentage as a suite writes it: `"5%"`, `"2.5%"` or a plain number `5`.
///
/// # Errors
/// Anything else, or a value outside `0 < p <= 10000` (a 100x move), with what is valid.
pub fn percent_from(value: &toml::Value) -> Result<f64, String> {
    let number = match value {
        toml::Value::Integer(n) => Some(*n as f64),
        toml::Value::Float(f) => Some(*f),
        toml::Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(p) if p > 0.0 && p <= 10_000.0 => Ok(p),
        _ => Err(format!("bad percentage `{value}`: expected a number in 0..=10000, e.g. \"5%\" or 5")),
    }
}

/// Most repeats of one case.
pub const MAX_REPEAT: u32 = 1000;

fn repeat_from(repeat: &Spanned<u64>) -> Result<u32, String> {
    match *repeat.get_ref() {
        n @ 1..=1000 => Ok(n as u32),
        n => Err(format!("repeat is {n}; valid is 1..={MAX_REPEAT}")),
    }
}

fn timeout_from(seconds: &Spanned<u64>) -> Result<Duration, String> {
    match *seconds.get_ref() {
        0 => Err("timeout_s must be at least 1 second".to_string()),
        s if s > 3600 => Err(format!("timeout_s is {s}; the most allowed is 3600 (one hour)")),
        s => Ok(Duration::from_secs(s)),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_expands_first_parameter_slowest() {
        let matrix = vec![
            ("a".to_string(), vec![Value::from(1), Value::from(2)]),
            ("b".to_string(), vec![Value::from(false), Value::from(true)]),
        ];
        let combos = product(&matrix);
        assert_eq!(combos.len(), 4);
        assert_eq!(combos[1], vec![("a".to_string(), Value::from(1)), ("b".to_string(), Value::from(true))]);
        assert_eq!(product(&[]).len(), 1, "no matrix is one case with defaults");
    }

    /// A suite of one run whose matrix has `params` parameters of `values` values each.
    fn wide(params: usize, values: usize, repeat: u32) -> Suite {
        let matrix = (0..params).map(|p| (format!("p{p}"), vec![Value::from(0); values])).collect();
        let run = SuiteRun {
            scenario: "x".into(),
            label: None,
            matrix,
            timeout: None,
            expect: Vec::new(),
            sweep: Vec::new(),
            target: None,
            repeat: None,
        };
        Suite {
            name: "wide".into(),
            timeout: DEFAULT_CASE_TIMEOUT,
            runs: vec![run.clone(), run],
            keep_sweep: false,
            target: Target::Reference,
            repeat,
            compare: CompareSettings::default(),
        }
    }

    #[test]
    fn case_counts_never_wrap() {
        // Two runs of 4 x 65,536 values: 2 * 2^64 cases, where a usize product wrapped to 0.
        assert_eq!(wide(4, 65_536, 1).case_count(), CaseCount::Exact(1 << 65));
        assert_eq!(wide(4, 65_536, 1).case_count().to_string(), "36893488147419103232");
        // 2 * 10^24 with eight parameters of 1,000, times a repeat of 3.
        assert_eq!(wide(8, 1000, 3).case_count(), CaseCount::Exact(6 * 10u128.pow(24)));
        // Past u128: said as such, and still more than any limit.
        let beyond = wide(14, 1000, 1).case_count();
        assert_eq!(beyond, CaseCount::Beyond);
        assert!(beyond > CaseCount::Exact(u128::MAX));
        assert_eq!(beyond.to_string(), format!("more than {}", u128::MAX));
        assert_eq!(wide(2, 3, 2).case_count(), CaseCount::Exact(36));
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
