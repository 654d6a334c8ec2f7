//! `socklab list` and `socklab explain`: the scenario catalogue, for people and machines.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use socklab_harness::metric::Better;
use socklab_harness::params::ParamSpec;
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{DynScenario, Registry};
use socklab_harness::suite::value_text;

const WIDTH: usize = 88;

/// The catalogue as text: each scenario, its parameters and its metrics, in columns
/// shared by every scenario (a name never runs into its type, however long).
pub fn list_text(registry: &Registry) -> String {
    let columns = Columns::of(registry);
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
            let indent = 4 + columns.param;
            out += &columns.wrap(
                &format!("    {:<w$}", spec.name, w = columns.param),
                indent,
                &format!("{kind}; default {default}"),
            );
            out += &columns.wrap(&" ".repeat(indent), indent, spec.doc);
        }
        if !scenario.sweep().is_empty() {
            let sweep: Vec<String> = scenario.sweep().iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                out,
                "  run alone, it sweeps: {} (--set turns it off, --sweep keeps it)",
                sweep.join("  ")
            );
        }
        let _ = writeln!(out, "  metrics (↑ higher is better, ↓ lower is better, for socklab compare):");
        for metric in scenario.metrics() {
            let head = format!(
                "    {:<m$}{:<u$}",
                metric.name,
                unit_name(metric),
                m = columns.metric,
                u = columns.unit
            );
            let arrow = match metric.better {
                Better::Higher => "↑ ",
                Better::Lower => "↓ ",
                Better::Neither => "  ",
            };
            out += &columns.wrap(&head, 4 + columns.metric + columns.unit, &format!("{arrow}{}", metric.doc));
        }
        out.push('\n');
    }
    out + "Run one with `socklab run NAME`, change a parameter with `--set KEY=VALUE`, \
           read more with `socklab explain NAME`.\n"
}

/// Widths of the name columns: the longest name in the registry plus a gap of two.
struct Columns {
    param: usize,
    metric: usize,
    unit: usize,
}

impl Columns {
    const GAP: usize = 2;

    fn of(registry: &Registry) -> Self {
        let widest = |names: &mut dyn Iterator<Item = usize>| names.max().unwrap_or(0) + Self::GAP;
        Columns {
            param: widest(&mut registry.iter().flat_map(|s| s.params()).map(|p| p.name.chars().count())),
            metric: widest(&mut registry.iter().flat_map(|s| s.metrics()).map(|m| m.name.chars().count())),
            unit: widest(
                &mut registry.iter().flat_map(|s| s.metrics()).map(|m| unit_name(m).chars().count()),
            ),
        }
    }

    /// `head` then `text`, wrapped to the terminal width with continuation lines indented
    /// to the text column.
    fn wrap(&self, head: &str, indent: usize, text: &str) -> String {
        let continuation = " ".repeat(indent);
        let options = textwrap::Options::new(WIDTH.max(indent + 24))
            .initial_indent(head)
            .subsequent_indent(&continuation);
        textwrap::fill(text, options) + "\n"
    }
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
