//! What both pages (`index.html` and `report.md`) derive from the report the same way:
//! the scenario sections in run order, and the small texts they share.

use socklab_harness::report::{CaseResult, Report, ScenarioInfo, StreamTrace};
use socklab_harness::suite::value_text;

/// One scenario's section: its description and its cases, in run order.
pub(crate) struct ScenarioCases<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// Summary, explanation, sweep table.
    pub info: &'a ScenarioInfo,
    /// Its cases, in the order they ran.
    pub cases: Vec<&'a CaseResult>,
}

/// The scenarios of `report` in the order their first case ran — the order of the
/// summary table and of the suite — each with its cases. A scenario the report has no
/// description of gets no section (its cases are still in the summary).
pub(crate) fn scenarios_in_run_order(report: &Report) -> Vec<ScenarioCases<'_>> {
    let mut sections: Vec<ScenarioCases<'_>> = Vec::new();
    for case in &report.cases {
        match sections.iter_mut().find(|s| s.name == case.scenario) {
            Some(section) => section.cases.push(case),
            None => {
                if let Some((name, info)) = report.scenarios.get_key_value(&case.scenario) {
                    sections.push(ScenarioCases { name, info, cases: vec![case] });
                }
            }
        }
    }
    sections
}

/// The parameters set for a case: `read_size=5, nodelay=true`.
pub(crate) fn params_text(case: &CaseResult) -> String {
    case.set_params.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect::<Vec<_>>().join(", ")
}

/// `The first 3 of 20 requests: ` when the trace holds only those, else nothing: what
/// a story of the trace starts with, so it never passes part of a run off as all of it.
pub(crate) fn excerpt_prefix(trace: &StreamTrace) -> String {
    trace.excerpt.as_ref().map(|e| format!("The {}: ", e.describe())).unwrap_or_default()
}

/// `1 write`, `3 writes`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}
