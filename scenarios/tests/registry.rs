//! The contract every registered scenario keeps, checked across the whole registry so a
//! new scenario cannot break it unnoticed:
//!
//! - its `PARAMS` specs name exactly the fields of its `Params` (nothing documented that
//!   does not exist, nothing settable that is not documented);
//! - its `SWEEP` parses against those specs;
//! - judged on a measurement of nothing (no message sent, no sample, no read), it makes at
//!   least one check and every check fails, for every combination of its choice and
//!   bool parameters: a case that never ran must not look like a case that worked;
//! - every metric it emits is declared in its `METRICS`, once, and is a finite number —
//!   judged on nothing and on real runs of its built-in sweep (the runner also turns an
//!   undeclared metric into a case error in every run);
//! - every bar chart it declares names a declared metric and an existing parameter;
//! - every combination it refuses names one of its own parameters as the one to change.

use std::collections::BTreeSet;

use serde_json::Value;
use socklab_harness::params::{ParamError, ParamKind, find_spec};
use socklab_harness::report::CaseStatus;
use socklab_harness::runner::{RunOptions, Silent, run_cases};
use socklab_harness::scenario::{BarSource, DynScenario, ParamMap};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

/// Most parameter combinations judged per scenario.
const MAX_COMBINATIONS: usize = 2048;

/// The defaults, then every combination of the values of the choice and bool
/// parameters (other parameters at their defaults).
fn combinations(scenario: &dyn DynScenario) -> Vec<ParamMap> {
    let mut combos = vec![scenario.defaults()];
    for spec in scenario.params() {
        let values: Vec<Value> = match spec.kind {
            ParamKind::Bool => vec![Value::Bool(false), Value::Bool(true)],
            ParamKind::Choice { options } => options.iter().map(|o| Value::String(o.to_string())).collect(),
            _ => continue,
        };
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.insert(spec.name.to_string(), value.clone());
                    next
                })
            })
            .collect();
        assert!(combos.len() <= MAX_COMBINATIONS, "{}: too many combinations to judge", scenario.name());
    }
    combos
}

#[test]
fn params_specs_name_exactly_the_params_fields() {
    for scenario in registry().iter() {
        let fields: BTreeSet<String> = scenario.defaults().keys().cloned().collect();
        let specs: BTreeSet<String> = scenario.params().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(specs, fields, "{}: PARAMS and the Params fields differ", scenario.name());
        assert_eq!(
            specs.len(),
            scenario.params().len(),
            "{}: a parameter is declared twice",
            scenario.name()
        );
        for spec in scenario.params() {
            let default = &scenario.defaults()[spec.name];
            spec.check(default.clone()).unwrap_or_else(|e| {
                panic!("{}: the default of `{}` is outside its own spec: {e}", scenario.name(), spec.name)
            });
        }
    }
}

#[test]
fn sweeps_parse() {
    for scenario in registry().iter() {
        for (name, text) in scenario.sweep() {
            let spec = find_spec(scenario.name(), scenario.params(), name)
                .unwrap_or_else(|e| panic!("{}: SWEEP names {e}", scenario.name()));
            spec.parse_cli(text).unwrap_or_else(|e| panic!("{}: SWEEP {name}={text}: {e}", scenario.name()));
        }
    }
}

#[test]
fn metric_names_are_declared_once() {
    for scenario in registry().iter() {
        let mut seen = BTreeSet::new();
        for metric in scenario.metrics() {
            assert!(seen.insert(metric.name), "{}: metric `{}` declared twice", scenario.name(), metric.name);
        }
    }
}

#[test]
fn no_check_passes_on_an_empty_outcome() {
    let mut judged = 0;
    for scenario in registry().iter() {
        let declared: BTreeSet<&str> = scenario.metrics().iter().map(|m| m.name).collect();
        for params in combinations(scenario) {
            if scenario.validate(&params).is_err() {
                continue; // a combination the scenario refuses never runs
            }
            let outcome = scenario.evaluate_nothing(&params).unwrap();
            let label = format!("{} {}", scenario.name(), serde_json::to_string(&params).unwrap());
            assert!(!outcome.checks.is_empty(), "{label}: no check at all on an empty outcome");
            for check in &outcome.checks {
                assert!(
                    !check.passed,
                    "{label}: check `{}` passes on nothing (expected {}, observed {})",
                    check.name, check.expected, check.observed
                );
            }
            for metric in &outcome.metrics {
                assert!(
                    declared.contains(metric.name.as_str()),
                    "{label}: undeclared metric `{}`",
                    metric.name
                );
                assert!(metric.value.is_finite(), "{label}: metric `{}` is {}", metric.name, metric.value);
            }
            judged += 1;
        }
    }
    assert!(judged >= registry().iter().count(), "judged only {judged} combinations");
}

#[test]
fn bar_charts_name_declared_metrics_and_parameters() {
    for scenario in registry().iter() {
        for bar in scenario.bars() {
            if let BarSource::Param(param) = bar.groups {
                assert!(
                    scenario.metrics().iter().any(|m| m.name == bar.values),
                    "{}: bar chart `{}` draws undeclared metric `{}`",
                    scenario.name(),
                    bar.title,
                    bar.values
                );
                assert!(
                    scenario.params().iter().any(|p| p.name == param),
                    "{}: bar chart `{}` groups by unknown parameter `{param}`",
                    scenario.name(),
                    bar.title
                );
            }
        }
    }
}

#[test]
fn every_refusal_names_one_of_the_scenarios_parameters() {
    let mut refused = 0;
    for scenario in registry().iter() {
        let names: BTreeSet<&str> = scenario.params().iter().map(|p| p.name).collect();
        let check = |params: &ParamMap, culprit: Option<&str>| -> bool {
            let label = format!("{} {}", scenario.name(), serde_json::to_string(params).unwrap());
            let mut refused = false;
            for result in [scenario.validate(params), scenario.validate_target(params)] {
                match result {
                    Ok(()) => {}
                    Err(ParamError::Invalid { param: Some(param), reason, .. }) => {
                        assert!(
                            names.contains(param),
                            "{label}: refused naming `{param}`, not a parameter: {reason}"
                        );
                        if let Some(culprit) = culprit {
                            assert_eq!(
                                param, culprit,
                                "{label}: {culprit} is at fault, not {param}: {reason}"
                            );
                        }
                        refused = true;
                    }
                    Err(e) => panic!("{label}: refused without naming a parameter: {e}"),
                }
            }
            refused
        };
        for params in combinations(scenario) {
            let valid = !check(&params, None);
            refused += usize::from(!valid);
            if !valid {
                continue;
            }
            // Text no text parameter takes (a rate, an impairment spec), one at a time, in a
            // combination that was valid: a refusal must name that parameter.
            for spec in scenario.params().iter().filter(|p| matches!(p.kind, ParamKind::Text { .. })) {
                let mut changed = params.clone();
                changed.insert(spec.name.to_string(), Value::String("no-such-value".into()));
                refused += usize::from(check(&changed, Some(spec.name)));
            }
        }
    }
    assert!(refused > 0, "no combination was refused, so nothing was checked");
}

/// Most cases of one scenario's sweep run for real (spread over the sweep).
const MAX_REAL_CASES: usize = 8;

/// Every scenario runs for real — its built-in sweep, or its defaults, as `socklab run
/// NAME` runs it — and every metric those runs emit is declared. A run that emitted an
/// undeclared one would be an error case (`CaseError::UndeclaredMetric`); the metrics of
/// the cases that finished are checked against the declarations here too.
#[test]
fn every_metric_a_real_run_emits_is_declared() {
    let registry = registry();
    for scenario in registry.iter() {
        let suite = Suite::from_scenarios(&[scenario.name().to_string()], &registry).unwrap();
        let all = suite.expand(&registry).unwrap();
        let step = all.len().div_ceil(MAX_REAL_CASES).max(1);
        let cases: Vec<_> = all.into_iter().step_by(step).collect();
        let declared: BTreeSet<&str> = scenario.metrics().iter().map(|m| m.name).collect();
        let mut emitted = 0;
        for finished in run_cases(&registry, &cases, &RunOptions::with_seed(22), &Silent).unwrap() {
            let case = finished.result;
            let error = case.error.as_deref().unwrap_or("");
            assert!(!error.contains("does not declare"), "{}: {error}", case.id);
            if matches!(case.status, CaseStatus::Skipped | CaseStatus::Error | CaseStatus::TimedOut) {
                continue; // judged where it can run; CI (root) runs every one
            }
            for metric in &case.metrics {
                assert!(
                    declared.contains(metric.name.as_str()),
                    "{}: undeclared metric `{}`",
                    case.id,
                    metric.name
                );
                emitted += 1;
            }
        }
        assert!(emitted > 0, "{}: no real run emitted a metric, so nothing was judged", scenario.name());
    }
}
