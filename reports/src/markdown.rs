//! `report.md`: a summary table fit for a pull-request comment or a CI job summary, then
//! one section per scenario with each case's checks and, for stream cases, the boundary
//! map as a table.
//!
//! The page comes from `templates/report.md.j2`; this module only prepares the values it
//! shows (a view of the report), so the layout can change without touching Rust.

use minijinja::{Environment, syntax::SyntaxConfig};
use serde::Serialize;
use socklab_model::check::{Check, format_number};
use socklab_model::report::{CaseResult, CaseStatus, Report, RunInfo, StreamTrace, Tally};

use crate::sweep::{Table, sweep_tables};
use crate::view::{
    HostLine, ScenarioCases, case_story, metric_text, paragraphs, params_text, run_hosts, run_links,
    scenarios_in_run_order,
};
use crate::{RenderError, render_template};

const TEMPLATE: &str = include_str!("../templates/report.md.j2");

/// The report as Markdown.
///
/// # Errors
/// [`RenderError::Template`] if the template fails.
pub fn render(report: &Report) -> Result<String, RenderError> {
    render_template(environment("report.md")?, "report.md", TEMPLATE, &Page::new(report))
}

/// The template environment of every Markdown page socklab writes (`report.md`,
/// `compare.md`): whitespace control, the `cell` and `code` filters, and escaping of
/// every value.
///
/// # Errors
/// [`RenderError::Template`] if the syntax cannot be set.
pub(crate) fn environment(file: &'static str) -> Result<Environment<'static>, RenderError> {
    let template_error = |error| RenderError::Template { file, error };
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
    // Every value from the report is escaped, so text a peer or a server wrote (an error,
    // a case id, an output tail) cannot become HTML, a link or an image in a PR comment.
    env.set_formatter(|out, _state, value| {
        let text = if value.is_safe() { value.to_string() } else { escape_text(&value.to_string()) };
        out.write_str(&text)
            .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "a Markdown page"))
    });
    Ok(env)
}

/// What the template shows.
#[derive(Serialize)]
struct Page<'a> {
    run: &'a RunInfo,
    duration_s: String,
    tally: Tally,
    verdict: &'static str,
    hosts: Vec<HostLine>,
    links: Vec<String>,
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
    /// Prose escaped, code paragraphs as indented code blocks; marked safe.
    explanation: minijinja::Value,
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
                explanation: explanation(&info.explanation),
                tables: info.table.as_ref().map(|spec| sweep_tables(&cases, spec)).unwrap_or_default(),
                cases: cases.into_iter().map(CaseView::new).collect(),
            })
            .collect();
        Page {
            run: &report.run,
            duration_s: format!("{:.1}", report.run.duration_s),
            tally: report.tally(),
            verdict: if report.all_passed() { "all checks passed" } else { "some checks failed" },
            hosts: run_hosts(&report.run),
            links: run_links(report),
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
            story: Some(case_story(case).join(" ")).filter(|s| !s.is_empty()),
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
        CaseStatus::Skipped => "⏭️",
    }
}

/// A scenario's explanation as Markdown: prose escaped ([`escape_text`]), code
/// paragraphs as indented code blocks, verbatim (a code block shows its text literally,
/// so escaping would show the entities).
fn explanation(text: &str) -> minijinja::Value {
    let blocks: Vec<String> = paragraphs(text)
        .into_iter()
        .map(|p| {
            if p.code {
                p.text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
            } else {
                escape_text(&p.text)
            }
        })
        .collect();
    minijinja::Value::from_safe_string(blocks.join("\n\n"))
}

/// Text from the report as Markdown shows it literally: HTML's `<`, `>`, `&` as entities
/// (no tags, no autolinks), backticks escaped (no code spans), and the sequences that make
/// a link or an image (`](`, `![`, `]:`) broken with a backslash. Brackets alone stay as
/// they are, so `msg0[0..5]` reads the same in the file and on the page.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('<', _) => out.push_str("&lt;"),
            ('>', _) => out.push_str("&gt;"),
            ('&', _) => out.push_str("&amp;"),
            ('`', _) => out.push_str("\\`"),
            ('!', Some('[')) => out.push_str("\\!"),
            (']', Some('(' | ':')) => out.push_str("]\\"),
            _ => out.push(c),
        }
    }
    out
}

/// Report text for a Markdown table cell: escaped ([`escape_text`]), pipes escaped and
/// lines joined so the table keeps its columns; marked safe so it is not escaped again.
fn cell(text: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(in_one_cell(&escape_text(&text)))
}

/// Escapes the table's column separator and joins lines.
fn in_one_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Wraps text in a code span whose fence is longer than any run of backticks inside it.
/// Markdown shows a code span's content literally (no HTML, no links), so it is marked
/// safe and not escaped again.
fn code(text: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(code_span(&text))
}

fn code_span(text: &str) -> String {
    if text.is_empty() {
        return "(empty)".to_string();
    }
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    in_one_cell(&format!("{fence}{pad}{text}{pad}{fence}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code_span("12345"), "`12345`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(code_span("a|b"), "`a\\|b`");
        assert_eq!(code_span(""), "(empty)");
    }

    #[test]
    fn text_cannot_become_html_links_or_images() {
        assert_eq!(escape_text("<img src=x onerror=alert(1)>"), "&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(escape_text("![t](http://x/t.png) [a](b)"), "\\![t]\\(http://x/t.png) [a]\\(b)");
        assert_eq!(escape_text("[r]: http://x"), "[r]\\: http://x");
        assert_eq!(escape_text("msg0[0..5] + msg1[0..3]"), "msg0[0..5] + msg1[0..3]");
        assert_eq!(escape_text("p50 < 5 ms & more"), "p50 &lt; 5 ms &amp; more");
        assert_eq!(cell("a|<b>\nc".into()).to_string(), "a\\|&lt;b&gt; c", "escaped once, pipes kept apart");
    }
}
