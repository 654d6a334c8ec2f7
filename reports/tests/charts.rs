//! The charts of a section, from fixed cases: nothing left out without saying so, one
//! figure per sweep dimension, log axes where values span decades, legends off the data.

mod common;

use std::collections::BTreeMap;

use common::{metric, params};
use serde_json::Value;
use socklab_harness::metrics::LatencyRecorder;
use socklab_model::report::{CaseResult, LatencyObservation, Unit};
use socklab_reports::figures::{ChartFigure, MAX_LINES, latency_figures, sweep_figures};

fn case(scenario: &str, set: &[(&str, Value)], metrics: &[(&str, f64, Unit)]) -> CaseResult {
    let id =
        format!("{scenario}[{}]", set.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","));
    CaseResult {
        metrics: metrics.iter().map(|(name, value, unit)| metric(name, *value, *unit)).collect(),
        ..common::case(id, scenario, params(set))
    }
}

fn with_latency(mut case: CaseResult, of: &str, base_us: u64) -> CaseResult {
    let mut recorder = LatencyRecorder::new();
    (1..=100).for_each(|i| recorder.record_ns((base_us + i) * 1_000));
    case.observations.latency = Some(LatencyObservation {
        of: of.into(),
        summary: recorder.summary(),
        histogram: recorder.to_base64(),
    });
    case
}

const FRAMINGS: [&str; 9] =
    ["raw", "line", "cobs", "u32be", "u32le", "varint", "json-header", "fixed", "stop-and-wait"];

/// The default suite's framing-throughput: 36 strategy × size cases, 9 mode × flavour
/// cases measuring the same round trip, and a baseline.
fn framing_cases() -> Vec<CaseResult> {
    let mut cases = Vec::new();
    for framing in FRAMINGS {
        for size in [16, 256, 4096, 65536] {
            let c = case(
                "framing-throughput",
                &[("framing", framing.into()), ("message_size", size.into()), ("duration_ms", 100.into())],
                &[("throughput_mib_s", size as f64 / 10.0, Unit::MibPerSec)],
            );
            cases.push(with_latency(c, "round trip", size / 100));
        }
    }
    for mode in ["ping-pong", "pipelined", "open-loop"] {
        for flavour in ["tokio", "threaded", "sequential"] {
            let of = if mode == "open-loop" { "from the intended send time" } else { "round trip" };
            let c = case(
                "framing-throughput",
                &[("mode", mode.into()), ("flavour", flavour.into()), ("duration_ms", 100.into())],
                &[],
            );
            cases.push(with_latency(c, of, 20));
        }
    }
    let baseline =
        case("framing-throughput", &[("mode", "ping-pong".into()), ("message_size", 64.into())], &[]);
    cases.push(with_latency(baseline, "round trip", 10));
    cases
}

fn svg(figure: &ChartFigure) -> &str {
    figure.svg.as_deref().expect("a drawing")
}

#[test]
fn percentile_charts_draw_every_case_in_small_multiples() {
    let cases = framing_cases();
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let figures = latency_figures(&refs);
    for f in &figures {
        assert!(!f.title.contains("first"), "nothing is silently capped: {}", f.title);
    }
    // Strategy × size: one figure, a panel per size, a line per strategy.
    let sweep = &figures[0];
    assert_eq!(sweep.title, "Latency by percentile (µs, log scale) — round trip — duration_ms=100");
    for size in [16, 256, 4096, 65536] {
        assert!(svg(sweep).contains(&format!("\nmessage_size={size}\n</text>")), "panel for {size}");
    }
    for framing in FRAMINGS {
        assert!(svg(sweep).contains(&format!("\n{framing}\n</text>")), "legend entry {framing}");
    }
    // Modes: round trips and open-loop response times never share a chart.
    assert!(figures[1].title.contains("— round trip — duration_ms=100"), "{}", figures[1].title);
    assert!(
        svg(&figures[1]).contains("\nmode=ping-pong\n</text>")
            && svg(&figures[1]).contains("\nmode=pipelined\n</text>")
    );
    assert!(figures[2].title.contains("from the intended send time"), "{}", figures[2].title);
    assert!(figures[3].title.ends_with("message_size=64, mode=ping-pong"), "{}", figures[3].title);
    assert_eq!(figures.len(), 4);
}

#[test]
fn more_lines_than_colours_become_further_figures_that_say_so() {
    let cases: Vec<CaseResult> = (0..12)
        .map(|i| with_latency(case("s", &[("strategy", format!("s{i:02}").into())], &[]), "round trip", 5))
        .collect();
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let figures = latency_figures(&refs);
    assert_eq!(figures.len(), 2);
    assert!(figures[0].title.ends_with(&format!("(strategy 1–{MAX_LINES} of 12)")), "{}", figures[0].title);
    assert!(figures[1].title.ends_with("(strategy 11–12 of 12)"), "{}", figures[1].title);
    assert!(svg(&figures[1]).contains("\ns11\n</text>"));
}

/// recv-buffer in the default suite: three sweeps, one parameter each.
fn recv_buffer_cases() -> Vec<CaseResult> {
    let mut cases = Vec::new();
    for read_size in [1u64, 16, 1024, 65536] {
        let reads_per_mib = (1_048_576 / read_size) as f64;
        cases.push(case(
            "recv-buffer",
            &[("bytes", 4_194_304.into()), ("read_size", read_size.into())],
            &[
                ("throughput_mib_s", 600.0 - 500.0 / read_size as f64, Unit::MibPerSec),
                ("reads_per_mib", reads_per_mib, Unit::Count),
                ("writes", 64.0, Unit::Count),
            ],
        ));
    }
    for rcvbuf in [0u64, 4096, 65536, 4_194_304] {
        cases.push(case(
            "recv-buffer",
            &[("bytes", 4_194_304.into()), ("rcvbuf", rcvbuf.into())],
            &[
                ("throughput_mib_s", 100.0 + rcvbuf as f64 / 1e4, Unit::MibPerSec),
                ("reads_per_mib", 20.0, Unit::Count),
                ("writes", 64.0, Unit::Count),
            ],
        ));
    }
    // Every case has every parameter, set or not.
    for c in &mut cases {
        for name in ["read_size", "rcvbuf"] {
            c.params.entry(name.into()).or_insert(Value::from(if name == "read_size" { 65536 } else { 0 }));
        }
    }
    cases
}

#[test]
fn each_swept_parameter_gets_its_figure_with_units_and_log_axes_where_values_span_decades() {
    let cases = recv_buffer_cases();
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let units = BTreeMap::from([
        ("read_size".to_string(), "bytes".to_string()),
        ("rcvbuf".to_string(), "bytes".to_string()),
        ("bytes".to_string(), "bytes".to_string()),
    ]);
    let figures = sweep_figures(&refs, &units);
    let titles: Vec<&str> = figures.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        ["Against read_size (bytes) — bytes=4194304", "Against rcvbuf (bytes) — bytes=4194304"]
    );
    let read_size = svg(&figures[0]);
    // reads_per_mib runs from 16 to 1,048,576: a log axis, and the axis says so.
    assert!(read_size.contains("\ncount, log scale\n</text>"), "{read_size}");
    assert!(read_size.contains("\nread_size (bytes) — log scale\n</text>"));
    assert!(read_size.contains("\n64 KiB\n</text>"), "byte values read as bytes");
    // A metric that never changes gets a sentence, not a flat line.
    assert_eq!(figures[0].note.as_deref(), Some("Same in every case: writes = 64."));
    assert!(!read_size.contains("\nwrites\n</text>"));
    // rcvbuf 0 (the kernel default) on the log axis, labelled as such.
    let rcvbuf = svg(&figures[1]);
    assert!(rcvbuf.contains("\nrcvbuf (bytes) — log scale, 0 drawn at the left\n</text>"), "{rcvbuf}");
    assert!(rcvbuf.contains("\n0\n</text>"));
    // reads_per_mib is 20 in every rcvbuf case: a note, not a panel.
    assert_eq!(figures[1].note.as_deref(), Some("Same in every case: reads_per_mib = 20, writes = 64."));
}
