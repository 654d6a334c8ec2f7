//! `index.html`: one self-contained page for people — summary, then per scenario its
//! explanation, charts (latency percentiles, metrics against a swept parameter) and per
//! case the story in plain words, the checks, the three-lane timeline and a link to the
//! case's capture.
//!
//! The page comes from `templates/index.html.j2` (minijinja, HTML autoescaping on); this
//! module prepares a view of the report for it. Charts are SVG strings from [`charts`],
//! inserted as they are; every other value is escaped by the template. No CSS, script or
//! font is loaded from anywhere: the page works offline and from a CI artifact.
//!
//! [`charts`]: crate::charts

use minijinja::Environment;
use serde::Serialize;
use socklab_model::check::{Check, format_number};
use socklab_model::report::{
    CaptureObservation, CaseResult, CaseStatus, Report, RunInfo, ScenarioInfo, Tally,
};

use crate::charts;
use crate::figures::{self, ChartFigure};
use crate::sweep::{Table, sweep_tables};
use crate::view::{
    HostLine, Paragraph, ScenarioCases, case_story, metric_text, paragraphs, params_text, run_hosts,
    run_links, scenarios_in_run_order,
};
use crate::{RenderError, render_template};

const TEMPLATE: &str = include_str!("../templates/index.html.j2");

/// The report as an HTML page.
///
/// # Errors
/// [`RenderError::Template`] if the template fails.
pub fn render(report: &Report) -> Result<String, RenderError> {
    // The name ends in .html, so minijinja escapes every value unless marked safe.
    render_template(Environment::new(), "index.html", TEMPLATE, &Page::new(report))
}

#[derive(Serialize)]
struct Page<'a> {
    run: &'a RunInfo,
    duration_s: String,
    tally: Tally,
    all_passed: bool,
    hosts: Vec<HostLine>,
    links: Vec<String>,
    rows: Vec<Row>,
    sections: Vec<Section<'a>>,
}

#[derive(Serialize)]
struct Row {
    anchor: String,
    case: String,
    status: &'static str,
    class: &'static str,
    params: String,
    metrics: String,
    checks: String,
}

#[derive(Serialize)]
struct Section<'a> {
    scenario: &'a str,
    summary: &'a str,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    charts: Vec<ChartFigure>,
    cases: Vec<CaseView<'a>>,
}

#[derive(Serialize)]
struct CaseView<'a> {
    anchor: String,
    id: &'a str,
    status: &'static str,
    class: &'static str,
    seed: u64,
    duration_ms: String,
    params: String,
    error: Option<&'a str>,
    story: Vec<String>,
    checks: &'a [Check],
    metrics: Vec<(String, String)>,
    capture: Option<String>,
    pcap: Option<&'a str>,
    timeline: Option<String>,
}

impl<'a> Page<'a> {
    fn new(report: &'a Report) -> Self {
        let sections = scenarios_in_run_order(report)
            .into_iter()
            .map(|ScenarioCases { name, info, cases }| Section {
                scenario: name,
                summary: &info.summary,
                paragraphs: paragraphs(&info.explanation),
                tables: info.table.as_ref().map(|spec| sweep_tables(&cases, spec)).unwrap_or_default(),
                charts: section_charts(&cases, info),
                cases: cases.iter().map(|c| CaseView::new(c)).collect(),
            })
            .collect();
        Page {
            run: &report.run,
            duration_s: format!("{:.1}", report.run.duration_s),
            tally: report.tally(),
            all_passed: report.all_passed(),
            hosts: run_hosts(&report.run),
            links: run_links(report),
            rows: report.cases.iter().map(Row::new).collect(),
            sections,
        }
    }
}

/// The scenario's declared bar charts, the latency figures, then one figure per swept
/// parameter.
fn section_charts(cases: &[&CaseResult], info: &ScenarioInfo) -> Vec<ChartFigure> {
    let mut charts = figures::bar_figures(cases, &info.bars);
    charts.extend(figures::latency_figures(cases));
    charts.extend(figures::sweep_figures(cases, &info.param_units));
    charts
}

impl Row {
    fn new(case: &CaseResult) -> Self {
        let passed = case.checks.iter().filter(|c| c.passed).count();
        Row {
            anchor: anchor(&case.id),
            case: case.id.clone(),
            status: case.status.word(),
            class: class(case.status),
            params: params_text(case),
            metrics: case
                .metrics
                .iter()
                .filter(|m| m.key)
                .map(|m| format!("{} {}", m.name, metric_text(m)))
                .collect::<Vec<_>>()
                .join(", "),
            checks: match &case.error {
                Some(_) => case.status.word().to_lowercase(),
                None => format!("{passed}/{}", case.checks.len()),
            },
        }
    }
}

impl<'a> CaseView<'a> {
    fn new(case: &'a CaseResult) -> Self {
        let capture = case.observations.capture.as_ref();
        let segments_note = capture.map(CaptureObservation::line).unwrap_or_else(|| "no capture".into());
        CaseView {
            anchor: anchor(&case.id),
            id: &case.id,
            status: case.status.word(),
            class: class(case.status),
            seed: case.seed,
            duration_ms: format_number((case.duration_ms * 10.0).round() / 10.0),
            params: params_text(case),
            error: case.error.as_deref(),
            story: case_story(case),
            checks: &case.checks,
            metrics: case.metrics.iter().map(|m| (m.name.clone(), metric_text(m))).collect(),
            capture: capture.map(CaptureObservation::line),
            pcap: capture.and_then(|c| c.pcap.as_deref()),
            timeline: case.observations.stream.as_ref().and_then(|t| charts::timeline(t, &segments_note)),
        }
    }
}

fn class(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Passed => "pass",
        CaseStatus::Failed => "fail",
        CaseStatus::Error | CaseStatus::TimedOut => "error",
        CaseStatus::Skipped => "skip",
    }
}

/// An HTML id from a case id: letters, digits and `-` only.
fn anchor(id: &str) -> String {
    let mut out = String::from("case-");
    for c in id.chars() {
        out.push(if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' });
    }
    out
}
