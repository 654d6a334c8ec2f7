//! Control characters a peer or a user wrote never reach a reader raw (weak point 6 of
//! issue 23): an `ESC` or a `BEL` in a parameter value, a check's observed text (a
//! server's json-header `file_name`), a target's output, the agent's host name or an
//! error is shown escaped (`\x1b`, `\x07`) in report.md, index.html, junit.xml and
//! compare.md. Before, every page copied them raw: `ESC [ 2 J` cleared the terminal of
//! whoever ran `cat report.md`.

mod common;

use std::collections::BTreeMap;

use common::{metric, params, run_info};
use serde_json::Value;
use socklab_model::check::Check;
use socklab_model::report::{
    CaseStatus, CaseTarget, IoEvent, PeerRecord, Report, RunInfo, ScenarioInfo, StreamTrace, SweepTable,
    TargetRecord, Unit,
};
use socklab_reports::{compare, html, junit, markdown};

/// What the report holds, raw: a parameter value that sets a colour and rings the bell.
const RED_BELL: &str = "a\x1b[31mX\x07";

fn hostile() -> Report {
    let mut cases = Vec::new();
    for messages in [RED_BELL, "b\x1b[2J"] {
        for read_size in [5, 1024] {
            let set = params(&[
                ("messages", Value::from(vec![messages, "cd"])),
                ("read_size", Value::from(read_size)),
            ]);
            let mut case = common::case(
                format!("tcp-coalescing[messages={messages},cd,read_size={read_size}]"),
                "tcp-coalescing",
                set,
            );
            case.metrics.push(metric("sticky_reads", f64::from(read_size % 7), Unit::Count));
            case.checks.push(Check::new(
                "file_name",
                "report.bin",
                "file_name \x1b]0;owned\x07 from the server",
                false,
                "the server named another file \x1b[1m",
            ));
            case.status = CaseStatus::Failed;
            case.target = Some(CaseTarget {
                addr: "127.0.0.1:1".into(),
                process: Some(TargetRecord {
                    command: "server \x1b[8m".into(),
                    stdout_tail: vec!["\x1b[31mred\x07".into()],
                    stderr_tail: vec!["\x07\x07".into()],
                    ..TargetRecord::default()
                }),
            });
            case.observations.stream = Some(StreamTrace {
                writes: vec![IoEvent { at_us: 1.0, len: 3, text: "\x1b[A".into() }],
                reads: vec![IoEvent { at_us: 2.0, len: 3, text: "\x1b[A".into() }],
                ..StreamTrace::default()
            });
            cases.push(case);
        }
    }
    cases[3].status = CaseStatus::Error;
    cases[3].error = Some("target said \x1b[2J\x07 and left".into());
    Report {
        run: RunInfo {
            hostname: Some("host\x1b[5m".into()),
            peer: Some(PeerRecord {
                command: "ssh b socklab agent --stdio".into(),
                addr: "10.0.0.2".into(),
                hostname: "agent\x1b]0;title\x07".into(),
                kernel: "6.1\x07".into(),
                cpu_count: 2,
                socklab_version: "0.1.0".into(),
            }),
            ..run_info(1)
        },
        scenarios: BTreeMap::from([(
            "tcp-coalescing".to_string(),
            ScenarioInfo {
                summary: "sticky \x07 packets".into(),
                explanation: "Why \x1b[2J.\n\n    code \x1b[2J".into(),
                table: Some(SweepTable {
                    rows: "messages".into(),
                    columns: "read_size".into(),
                    cells: vec!["sticky_reads".into()],
                }),
                param_units: BTreeMap::from([("read_size".to_string(), "bytes".to_string())]),
                ..ScenarioInfo::default()
            },
        )]),
        cases,
        ..common::report(1)
    }
}

fn assert_no_raw_controls(file: &str, text: &str) {
    for (at, c) in text.char_indices() {
        let raw = c.is_control() && c != '\n' && c != '\t';
        assert!(!raw, "{file}: raw {c:?} at byte {at}: …{}…", &text[at.saturating_sub(60)..at]);
    }
}

#[test]
fn no_page_shows_a_control_character_raw() {
    let report = hostile();
    let md = markdown::render(&report).unwrap();
    let page = html::render(&report).unwrap();
    let xml = junit::render(&report).unwrap();
    let comparison = compare::compare(&report, "base\x1b[2J", &report, "new", None).unwrap();
    let compared = compare::render_markdown(&comparison, 5.0, &BTreeMap::new()).unwrap();
    for (file, text) in
        [("report.md", &md), ("index.html", &page), ("junit.xml", &xml), ("compare.md", &compared)]
    {
        assert_no_raw_controls(file, text);
    }
    // Shown, escaped: the reader still sees what the peer or user wrote.
    for (file, text) in [("report.md", &md), ("index.html", &page)] {
        assert!(text.contains(r"a\x1b[31mX\x07"), "{file}: the parameter value");
        assert!(text.contains(r"file_name \x1b]0;owned\x07 from the server"), "{file}: the observed text");
        assert!(text.contains(r"agent\x1b]0;title\x07"), "{file}: the agent's host name");
        assert!(text.contains(r"target said \x1b[2J\x07 and left"), "{file}: the error");
    }
    assert!(compared.contains(r"base\x1b[2J"), "compare.md: the base's name");
}

#[test]
fn charts_show_parameter_values_escaped_too() {
    // The sweep chart's legend names each `messages` value: SVG text inserted as it is.
    let page = html::render(&hostile()).unwrap();
    let svg_start = page.find("<svg").expect("a sweep chart");
    let svg = &page[svg_start..svg_start + page[svg_start..].find("</svg>").unwrap()];
    assert!(svg.contains(r"\x1b[31mX\x07"), "the legend shows the value, escaped");
    assert_no_raw_controls("index.html", &page);
}
