//! What both pages (`index.html` and `report.md`) derive from the report the same way:
//! the scenario sections in run order, the story of each case in plain words, and the
//! small texts they share (parameters, metric values, plurals).

use socklab_model::analysis::retransmitted_segments;
use socklab_model::check::format_number;
use socklab_model::report::{
    CaptureStatus, CaseResult, Metric, ProxyObservation, Report, RunInfo, ScenarioInfo, StreamTrace,
};
use socklab_model::text::value_text;

/// One host of a run, for both pages' headers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct HostLine {
    /// `host`, or `client host` and `server host` when an agent ran the server side.
    pub role: &'static str,
    /// `vm: kernel 6.1.0, 2 CPUs, socklab 0.1.0; other processes kept 0.3 CPUs busy meanwhile`.
    pub text: String,
}

/// The hosts of a run: this one, and the agent's when the server side ran there.
pub(crate) fn run_hosts(run: &RunInfo) -> Vec<HostLine> {
    let name = run.hostname.as_deref().map(|h| format!("{h}: ")).unwrap_or_default();
    let mut this =
        format!("{name}kernel {}, {} CPUs, socklab {}", run.kernel, run.cpu_count, run.socklab_version);
    // What the figures competed with: a busy machine moves throughput and latency.
    if let Some(cpus) = run.other_load_cpus {
        this += &format!("; other processes kept {cpus:.1} CPUs busy meanwhile");
    }
    match &run.peer {
        None => vec![HostLine { role: "host", text: this }],
        Some(peer) => vec![
            HostLine { role: "client host", text: this },
            HostLine {
                role: "server host",
                text: format!(
                    "{}: kernel {}, {} CPUs, socklab {}; agent started by `{}`, reached at {}",
                    peer.hostname, peer.kernel, peer.cpu_count, peer.socklab_version, peer.command, peer.addr
                ),
            },
        ],
    }
}

/// The links the run's cases ran over, each once, in run order: `loopback`,
/// `veth, MTU 1280, rate 100mbit, segments of 1228 bytes`.
pub(crate) fn run_links(report: &Report) -> Vec<String> {
    let mut links: Vec<String> = Vec::new();
    for case in &report.cases {
        let label = case.observations.link.as_ref().map_or_else(|| "loopback".to_string(), |l| l.label());
        if !links.contains(&label) {
            links.push(label);
        }
    }
    links
}

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

/// One paragraph of a scenario's explanation: prose, or code — a paragraph whose every
/// line is indented by four spaces — which both pages show verbatim, without the indent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Paragraph {
    /// The text; for code, its lines without the four-space indent.
    pub text: String,
    /// Whether it is code.
    pub code: bool,
}

/// The paragraphs of an explanation (separated by blank lines).
pub(crate) fn paragraphs(explanation: &str) -> Vec<Paragraph> {
    explanation
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            if p.lines().all(|line| line.starts_with("    ")) {
                Paragraph { text: p.lines().map(|l| &l[4..]).collect::<Vec<_>>().join("\n"), code: true }
            } else {
                Paragraph { text: p.trim().to_string(), code: false }
            }
        })
        .collect()
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

/// The case in plain words, from its data, one sentence per layer (stream, latency,
/// wire): what both pages tell under a case.
pub(crate) fn case_story(case: &CaseResult) -> Vec<String> {
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

/// "Impairment relay `split=1` (seed 7): 1 connection; client to server 17 bytes in 3
/// reads, out in 17 writes; server to client 0 bytes in 0 reads, out in 0 writes."
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

fn ms(ns: u64) -> String {
    format_number((ns as f64 / 1e4).round() / 100.0)
}

/// A metric as both pages show it: `4`, `12.5 ms`, `830.2 MiB/s` (at most 3 decimals);
/// repeated, the median and the range of its repeats: `830.2 MiB/s [801.5–842 ×5]`.
pub(crate) fn metric_text(metric: &Metric) -> String {
    let number = |v: f64| format_number((v * 1000.0).round() / 1000.0);
    let value = match metric.unit.suffix() {
        "" => number(metric.value),
        suffix => format!("{} {suffix}", number(metric.value)),
    };
    if metric.samples.len() < 2 {
        return value;
    }
    let min = metric.samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = metric.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{value} [{}–{} ×{}]", number(min), number(max), metric.samples.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socklab_model::report::Unit;

    #[test]
    fn repeated_metrics_show_their_median_and_range() {
        let once =
            Metric { name: "t".into(), value: 830.25, unit: Unit::MibPerSec, key: true, samples: vec![] };
        assert_eq!(metric_text(&once), "830.25 MiB/s");
        let repeated = Metric { value: 830.2, samples: vec![801.5, 830.2, 842.0], ..once };
        assert_eq!(metric_text(&repeated), "830.2 MiB/s [801.5–842 ×3]");
    }

    #[test]
    fn indented_paragraphs_are_code() {
        let text = "What.\n\nThe fix:\n\n    loop {\n        read();\n    }\n\nIn Python: `recv`.";
        let p = paragraphs(text);
        assert_eq!(p.len(), 4);
        assert_eq!(p[2], Paragraph { text: "loop {\n    read();\n}".into(), code: true });
        assert!(!p[1].code && !p[3].code);
    }
}
