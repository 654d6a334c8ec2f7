//! `report.md`: a summary table fit for a pull-request comment or a CI job summary, then
//! one section per scenario with each case's checks and, for stream cases, the boundary
//! map as a table.
//!
//! The page comes from `templates/report.md.j2`; this module only prepares the values it
//! shows (a view of the report), so the layout can change without touching Rust.

use minijinja::{Environment, syntax::SyntaxConfig};
use serde::Serialize;
use socklab_harness::check::{Check, format_number};
use socklab_harness::report::{CaseResult, CaseStatus, Report, RunInfo, StreamTrace, Tally};

use crate::sweep::{Table, sweep_tables};
use crate::view::{ScenarioCases, excerpt_prefix, params_text, plural, scenarios_in_run_order};
use crate::{RenderError, metric_text, render_template};

const TEMPLATE: &str = include_str!("../templates/report.md.j2");

/// The report as Markdown.
///
/// # Errors
/// [`RenderError::Template`] if the template fails.
pub fn render(report: &Report) -> Result<String, RenderError> {
    let template_error = |error| RenderError::Template { file: "report.md", error };
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(template_error)?,
    );
    env.add_filter("cell", cell);
    env.add_filter("code", code);
    render_template(env, "report.md", TEMPLATE, &Page::new(report))
}

/// What the template shows.
#[derive(Serialize)]
struct Page<'a> {
    run: &'a RunInfo,
    duration_s: String,
    tally: Tally,
    verdict: &'static str,
    rows: Vec<SummaryRow>,
    sections: Vec<Section<'a>>,
}

#[derive(Serialize)]
struct SummaryRow {
    icon: &'static str,
    case: String,
    params: String,
    metrics: String,
    checks: String,
}

#[derive(Serialize)]
struct Section<'a> {
    scenario: &'a str,
    summary: &'a str,
    explanation: &'a str,
    tables: Vec<Table>,
    cases: Vec<CaseView<'a>>,
}

#[derive(Serialize)]
struct CaseView<'a> {
    id: &'a str,
    icon: &'static str,
    status: &'static str,
    seed: u64,
    duration_ms: String,
    params: String,
    error: Option<&'a str>,
    story: Option<String>,
    /// `the first 3 of 20 requests`, when the trace holds only those.
    excerpt: Option<String>,
    metrics: Vec<MetricView<'a>>,
    checks: &'a [Check],
    writes: Vec<EventRow>,
    reads: Vec<EventRow>,
}

#[derive(Serialize)]
struct MetricView<'a> {
    name: &'a str,
    value: String,
}

#[derive(Serialize)]
struct EventRow {
    index: usize,
    at_ms: String,
    len: usize,
    text: String,
    holds: String,
}

impl<'a> Page<'a> {
    fn new(report: &'a Report) -> Self {
        let sections = scenarios_in_run_order(report)
            .into_iter()
            .map(|ScenarioCases { name, info, cases }| Section {
                scenario: name,
                summary: &info.summary,
                explanation: &info.explanation,
                tables: info.table.as_ref().map(|spec| sweep_tables(&cases, spec)).unwrap_or_default(),
                cases: cases.into_iter().map(CaseView::new).collect(),
            })
            .collect();
        Page {
            run: &report.run,
            duration_s: format!("{:.1}", report.run.duration_s),
            tally: report.tally(),
            verdict: if report.all_passed() { "all checks passed" } else { "some checks failed" },
            rows: report.cases.iter().map(SummaryRow::new).collect(),
            sections,
        }
    }
}

impl SummaryRow {
    fn new(case: &CaseResult) -> Self {
        let key: Vec<String> =
            case.metrics.iter().filter(|m| m.key).map(|m| format!("{} {}", m.name, metric_text(m))).collect();
        let passed = case.checks.iter().filter(|c| c.passed).count();
        let checks = match &case.error {
            Some(_) => case.status.word().to_lowercase(),
            None => format!("{passed}/{}", case.checks.len()),
        };
        SummaryRow {
            icon: icon(case.status),
            case: case.id.clone(),
            params: params_text(case),
            metrics: key.join(", "),
            checks,
        }
    }
}

impl<'a> CaseView<'a> {
    fn new(case: &'a CaseResult) -> Self {
        let stream = case.observations.stream.as_ref();
        CaseView {
            id: &case.id,
            icon: icon(case.status),
            status: case.status.word(),
            seed: case.seed,
            duration_ms: format_number(case.duration_ms),
            params: params_text(case),
            error: case.error.as_deref(),
            story: stream.map(story),
            excerpt: stream.and_then(|t| t.excerpt.as_ref()).map(|e| e.describe()),
            metrics: case
                .metrics
                .iter()
                .map(|m| MetricView { name: &m.name, value: metric_text(m) })
                .collect(),
            checks: &case.checks,
            writes: stream.map(write_rows).unwrap_or_default(),
            reads: stream.map(read_rows).unwrap_or_default(),
        }
    }
}

/// The stream case in one sentence: "3 writes came back as 4 reads; ...".
fn story(trace: &StreamTrace) -> String {
    let map = &trace.boundary_map;
    let (writes, reads) = (trace.writes.len(), trace.reads.len());
    let mut text = excerpt_prefix(trace);
    text += &plural(writes, "write");
    if !trace.proxy_out.is_empty() {
        text += &format!(" became {} of the impairment relay and", plural(trace.proxy_out.len(), "write"));
    }
    text += &format!(" came back as {}", plural(reads, "read"));
    let sticky = map.sticky_targets();
    if sticky > 0 {
        text += &format!("; {} held bytes of more than one message", plural(sticky, "read"));
    }
    let split = map.split_sources();
    if split > 0 {
        text += &format!("; {} arrived in pieces", plural(split, "message"));
    }
    if sticky == 0 && split == 0 {
        text += "; every read held exactly one whole message";
    }
    text + "."
}

fn write_rows(trace: &StreamTrace) -> Vec<EventRow> {
    trace
        .writes
        .iter()
        .enumerate()
        .map(|(i, w)| EventRow {
            index: i,
            at_ms: format_number(w.at_us / 1e3),
            len: w.len,
            text: w.text.clone(),
            holds: format!("msg{i}"),
        })
        .collect()
}

fn read_rows(trace: &StreamTrace) -> Vec<EventRow> {
    trace
        .reads
        .iter()
        .enumerate()
        .map(|(i, r)| EventRow {
            index: i,
            at_ms: format_number(r.at_us / 1e3),
            len: r.len,
            text: r.text.clone(),
            holds: trace.boundary_map.describe(i, "msg"),
        })
        .collect()
}

fn icon(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Passed => "✅",
        CaseStatus::Failed => "❌",
        CaseStatus::Error | CaseStatus::TimedOut => "⚠️",
    }
}

/// Makes text safe inside a Markdown table cell.
fn cell(text: String) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Wraps text in a code span whose fence is longer than any run of backticks inside it.
fn code(text: String) -> String {
    if text.is_empty() {
        return "(empty)".to_string();
    }
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    cell(format!("{fence}{pad}{text}{pad}{fence}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("12345".into()), "`12345`");
        assert_eq!(code("a`b".into()), "``a`b``");
        assert_eq!(code("`x".into()), "`` `x ``");
        assert_eq!(code("a|b".into()), "`a\\|b`");
        assert_eq!(code(String::new()), "(empty)");
    }
}
