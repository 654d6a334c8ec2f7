//! `socklab list` and `socklab explain`: the scenario catalogue, for people and machines.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use socklab_harness::params::ParamSpec;
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{DynScenario, Registry};
use socklab_harness::suite::value_text;

const WIDTH: usize = 88;

/// The catalogue as text: each scenario, its parameters and its metrics.
pub fn list_text(registry: &Registry) -> String {
    let mut out = String::new();
    for scenario in registry.iter() {
        let defaults = scenario.defaults();
        let _ = writeln!(out, "{}  —  {}", scenario.name(), scenario.summary());
        let _ = writeln!(out, "  parameters:");
        for spec in scenario.params() {
            let default = defaults.get(spec.name).map(value_text).unwrap_or_default();
            let kind = match spec.unit {
                Some(unit) => format!("{}, {unit}", spec.kind.describe()),
                None => spec.kind.describe(),
            };
            let _ = writeln!(out, "    {:<16}{kind}; default {default}", spec.name);
            let _ = writeln!(out, "    {:<16}{}", "", spec.doc);
        }
        if !scenario.sweep().is_empty() {
            let sweep: Vec<String> = scenario.sweep().iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  run alone, it sweeps: {} (--set replaces)", sweep.join("  "));
        }
        let _ = writeln!(out, "  metrics:");
        for metric in scenario.metrics() {
            let _ = writeln!(out, "    {:<24}{:<8}{}", metric.name, unit_name(metric), metric.doc);
        }
        out.push('\n');
    }
    out + "Run one with `socklab run NAME`, change a parameter with `--set KEY=VALUE`, \
           read more with `socklab explain NAME`.\n"
}

fn unit_name(metric: &MetricSpec) -> String {
    serde_json::to_value(metric.unit).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

#[derive(Serialize)]
struct ScenarioJson<'a> {
    name: &'a str,
    summary: &'a str,
    params: Vec<ParamJson<'a>>,
    /// What `socklab run NAME` sweeps when not told otherwise, as `--set` arguments.
    sweep: Vec<String>,
    metrics: &'a [MetricSpec],
}

#[derive(Serialize)]
struct ParamJson<'a> {
    #[serde(flatten)]
    spec: &'a ParamSpec,
    default: Value,
}

/// The catalogue as JSON: an array of scenarios with params (type, range, unit,
/// default, doc) and metrics (name, unit, doc).
pub fn list_json(registry: &Registry) -> String {
    let scenarios: Vec<_> = registry.iter().map(scenario_json).collect();
    serde_json::to_string_pretty(&scenarios).unwrap_or_else(|_| "[]".into())
}

fn scenario_json(scenario: &dyn DynScenario) -> ScenarioJson<'_> {
    let defaults = scenario.defaults();
    ScenarioJson {
        name: scenario.name(),
        summary: scenario.summary(),
        params: scenario
            .params()
            .iter()
            .map(|spec| ParamJson { spec, default: defaults.get(spec.name).cloned().unwrap_or(Value::Null) })
            .collect(),
        sweep: scenario.sweep().iter().map(|(k, v)| format!("{k}={v}")).collect(),
        metrics: scenario.metrics(),
    }
}

/// A scenario's explanation, wrapped for a terminal.
pub fn explain_text(scenario: &dyn DynScenario) -> String {
    let mut out = format!("{} — {}\n\n", scenario.name(), scenario.summary());
    for paragraph in scenario.explanation().split("\n\n") {
        out += &textwrap::fill(paragraph, WIDTH);
        out += "\n\n";
    }
    out + &format!("Try it: socklab run {}   (parameters: socklab list)\n", scenario.name())
}
