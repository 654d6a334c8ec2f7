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
use socklab_harness::capture::retransmitted_segments;
use socklab_harness::check::{Check, format_number};
use socklab_harness::report::{
    CaptureObservation, CaptureStatus, CaseResult, CaseStatus, Metric, ProxyObservation, Report, RunInfo,
    ScenarioInfo, StreamTrace, Tally,
};
use socklab_harness::suite::value_text;

use crate::charts;
use crate::figures::{self, ChartFigure};
use crate::sweep::{Table, sweep_tables};
use crate::view::{ScenarioCases, excerpt_prefix, params_text, plural, scenarios_in_run_order};
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
    paragraphs: Vec<&'a str>,
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
                paragraphs: info.explanation.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect(),
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
            rows: report.cases.iter().map(Row::new).collect(),
            sections,
        }
    }
}

/// The latency figures, then one figure per swept parameter.
fn section_charts(cases: &[&CaseResult], info: &ScenarioInfo) -> Vec<ChartFigure> {
    let mut charts = figures::latency_figures(cases);
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
                .map(|m| format!("{} {}", m.name, metric_value(m)))
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
            story: story(case),
            checks: &case.checks,
            metrics: case.metrics.iter().map(|m| (m.name.clone(), metric_value(m))).collect(),
            capture: capture.map(CaptureObservation::line),
            pcap: capture.and_then(|c| c.pcap.as_deref()),
            timeline: case.observations.stream.as_ref().and_then(|t| charts::timeline(t, &segments_note)),
        }
    }
}

/// The case in plain words, from its data.
fn story(case: &CaseResult) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(trace) = &case.observations.stream {
        lines.push(stream_story(case, trace));
    }
    if let Some(proxy) = &case.observations.proxy {
        lines.push(proxy_story(proxy));
    }
    if let Some(latency) = &case.observations.latency {
        let s = &latency.summary;
        lines.push(format!(
            "Median round trip {} ms, p99 {} ms, slowest {} ms over {} ({}).",
            ms(s.p50_ns),
            ms(s.p99_ns),
            ms(s.max_ns),
            plural(s.count as usize, "sample"),
            latency.of
        ));
    }
    if let Some(capture) = &case.observations.capture
        && capture.status == CaptureStatus::Captured
    {
        let data = capture.packets.iter().filter(|p| p.len > 0).count();
        let acks = capture.packets.iter().filter(|p| p.len == 0 && p.flags == ".").count();
        let mut line = format!(
            "On the wire: {} in all, {} carrying data, {} bare ACKs",
            plural(capture.packets.len() + capture.packets_left_out as usize, "packet"),
            data,
            acks
        );
        let again = retransmitted_segments(&capture.packets);
        if again > 0 {
            line += &format!(", {again} sent again (retransmissions or tail-loss probes)");
        }
        if capture.packets_left_out > 0 {
            line += &format!(
                "; {} of them over the capture's limits are counted but not listed",
                capture.packets_left_out
            );
        }
        lines.push(line + ".");
    }
    lines
}

/// "Impairment relay `split=1` (seed 7): 1 connection; client to server 17 bytes in 3
/// reads, out in 17 writes; server to client 0 bytes."
fn proxy_story(proxy: &ProxyObservation) -> String {
    let mut text = format!(
        "Impairment relay `{}` (seed {}): {}",
        proxy.spec,
        proxy.seed,
        plural(proxy.connections.len() + proxy.connections_left_out as usize, "connection")
    );
    if let [connection] = proxy.connections.as_slice() {
        for (name, d) in [("client to server", &connection.up), ("server to client", &connection.down)] {
            text += &format!(
                "; {name} {} in {}, out in {}",
                plural(d.bytes_in as usize, "byte"),
                plural(d.reads_in as usize, "read"),
                plural(d.writes_out as usize, "write")
            );
            for (what, list) in
                [("dropped", &d.dropped), ("duplicated", &d.duplicated), ("reordered", &d.reordered)]
            {
                if list.total > 0 {
                    text += &format!(", {} {what}", list.total);
                }
            }
        }
        if connection.reset {
            text += "; the relay reset the connection";
        }
    }
    text + "."
}

/// "3 writes left as 2 segments (1 carried bytes of more than one write); recv(5)
/// returned 4 reads; 2 reads held bytes of more than one message."
fn stream_story(case: &CaseResult, trace: &StreamTrace) -> String {
    let mut writes = plural(trace.writes.len(), "write");
    if !trace.proxy_out.is_empty() {
        writes += &format!(" became {} of the impairment relay", plural(trace.proxy_out.len(), "write"));
        let merged = trace.proxy_map.as_ref().map_or(0, |m| m.sticky_targets());
        if merged > 0 {
            writes += &format!(" ({merged} carried bytes of more than one write)");
        }
        if !trace.segments.is_empty() {
            writes += ", which";
        }
    }
    let mut text = excerpt_prefix(trace);
    text += &if trace.segments.is_empty() {
        writes
    } else {
        let mut t = format!("{writes} left as {}", plural(trace.segments.len(), "segment"));
        let merged = trace.segment_map.as_ref().map_or(0, |m| m.sticky_targets());
        if merged > 0 {
            t += &format!(" ({merged} carried bytes of more than one write)");
        }
        if !trace.retransmissions.is_empty() {
            t += &format!(", and {} sent again", plural(trace.retransmissions.len(), "segment"));
        }
        t
    };
    let reads = plural(trace.reads.len(), "read");
    match case.params.get("read_size") {
        Some(size) => text += &format!("; recv({}) returned {reads}", value_text(size)),
        None => text += &format!("; the reader made {reads}"),
    }
    let sticky = trace.boundary_map.sticky_targets();
    if sticky > 0 {
        text += &format!("; {} held bytes of more than one message", plural(sticky, "read"));
    }
    let split = trace.boundary_map.split_sources();
    if split > 0 {
        text += &format!("; {} arrived in pieces", plural(split, "message"));
    }
    if sticky == 0 && split == 0 {
        text += "; every read held exactly one whole message";
    }
    text + "."
}

fn ms(ns: u64) -> String {
    format_number((ns as f64 / 1e4).round() / 100.0)
}

fn metric_value(metric: &Metric) -> String {
    let value = format_number((metric.value * 1000.0).round() / 1000.0);
    match metric.unit.suffix() {
        "" => value,
        suffix => format!("{value} {suffix}"),
    }
}

fn class(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Passed => "pass",
        CaseStatus::Failed => "fail",
        CaseStatus::Error | CaseStatus::TimedOut => "error",
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
