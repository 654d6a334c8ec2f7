//! Renderers and report folders, from a fixed report model.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{metric, params, run_info};
use serde_json::Value;
use socklab_model::boundary::BoundaryMap;
use socklab_model::check::Check;
use socklab_model::report::{
    CaseResult, CaseStatus, IoEvent, Report, RunInfo, ScenarioInfo, StreamTrace, Unit,
};
use socklab_reports::{folder::FolderError, json, junit, load_report, markdown, write_report};

fn event(at_us: f64, text: &str) -> IoEvent {
    IoEvent { at_us, len: text.len(), text: text.to_string() }
}

fn case(id: &str, status: CaseStatus) -> CaseResult {
    CaseResult {
        seed: 99,
        status,
        duration_ms: 51.5,
        metrics: vec![metric("sticky_reads", 2.0, Unit::Count)],
        ..common::case(id, "tcp-coalescing", params(&[("read_size", Value::from(5))]))
    }
}

fn sample() -> Report {
    let mut classic = case("tcp-coalescing[read_size=5]", CaseStatus::Passed);
    classic.observations.stream = Some(StreamTrace {
        writes: vec![event(1.0, "1234567"), event(2.0, "abcde"), event(3.0, "hhhhh")],
        reads: vec![
            event(50_001.0, "12345"),
            event(50_002.0, "67abc"),
            event(50_003.0, "dehhh"),
            event(50_004.0, "hh"),
        ],
        boundary_map: BoundaryMap::compute(&[7, 5, 5], &[5, 5, 5, 2]),
        ..StreamTrace::default()
    });
    classic.checks.push(Check::new("stream_intact", "17 bytes", "17 bytes", true, "ok"));
    let mut failed = case("tcp-coalescing[read_size=5]#2", CaseStatus::Failed);
    failed.checks.push(Check::new(
        "expect sticky_reads == 3",
        "sticky_reads == 3",
        "sticky_reads = 2",
        false,
        "threshold does not hold",
    ));
    let mut broken = case("tcp-coalescing[read_size=5]#3", CaseStatus::TimedOut);
    broken.error = Some("timed out after 1 s".into());
    Report {
        run: RunInfo { duration_s: 0.2, ..run_info(5) },
        scenarios: BTreeMap::from([(
            "tcp-coalescing".to_string(),
            ScenarioInfo {
                summary: "sticky packets".into(),
                explanation: "Why.\n\nFix.".into(),
                ..ScenarioInfo::default()
            },
        )]),
        cases: vec![classic, failed, broken],
        ..common::report(5)
    }
}

#[test]
fn markdown_has_the_summary_table_and_the_boundary_map() {
    let md = markdown::render(&sample()).unwrap();
    assert!(md.contains("**some checks failed** — 1 passed, 1 failed, 0 errors, 1 timed out."), "{md}");
    assert!(
        md.contains("| ✅ | `tcp-coalescing[read_size=5]` | read_size=5 | sticky_reads 2 | 1/1 |"),
        "{md}"
    );
    assert!(
        md.contains("| ❌ | `tcp-coalescing[read_size=5]#2` | read_size=5 | sticky_reads 2 | 0/1 |"),
        "{md}"
    );
    assert!(
        md.contains("| ⚠️ | `tcp-coalescing[read_size=5]#3` | read_size=5 | sticky_reads 2 | timeout |"),
        "{md}"
    );
    assert!(md.contains("| 1 | 50.002 | 5 | `67abc` | msg0[5..7] + msg1[0..3] |"), "{md}");
    assert!(
        md.contains("3 writes; recv(5) returned 4 reads; 2 reads held bytes of more than one message; 3 messages arrived in pieces."),
        "{md}"
    );
    assert!(md.contains("❌ fail — threshold does not hold"));
    assert!(md.contains("> **TIMEOUT**: timed out after 1 s"));
    assert!(md.ends_with('\n'));
}

/// The header says how busy other processes kept the machine, when the run recorded it.
#[test]
fn markdown_names_the_machine_load_the_figures_competed_with() {
    let mut report = sample();
    let quiet = markdown::render(&report).unwrap();
    assert!(!quiet.contains("other processes"), "{quiet}");
    report.run.other_load_cpus = Some(1.3);
    let busy = markdown::render(&report).unwrap();
    assert!(busy.contains("2 CPUs, socklab 0.1.0; other processes kept 1.3 CPUs busy meanwhile"), "{busy}");
}

#[test]
fn junit_has_one_test_case_per_check_and_the_observed_value_on_failure() {
    let xml = junit::render(&sample()).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert!(
        xml.contains(r#"<testsuites name="socklab" tests="3" skipped="0" failures="1" errors="1""#),
        "{xml}"
    );
    assert!(xml.contains("expected sticky_reads == 3; observed sticky_reads = 2"), "{xml}");
    assert!(xml.contains(r#"type="timeout""#), "{xml}");
}

#[test]
fn json_round_trips_and_refuses_other_schema_versions() {
    let report = sample();
    let text = json::render(&report).unwrap();
    assert_eq!(json::parse(&text).unwrap(), report);
    let other = text.replacen("\"schema_version\": 2", "\"schema_version\": 99", 1);
    assert_eq!(
        json::parse(&other).unwrap_err().to_string(),
        "report schema version 99; this socklab reads versions 1 to 2"
    );
    assert!(json::parse("{}").is_err());
    // A version 1 report (before repeats) still loads, every case ran once.
    let old = text.replacen("\"schema_version\": 2", "\"schema_version\": 1", 1);
    let loaded = json::parse(&old).unwrap();
    assert!(loaded.cases.iter().all(|c| c.repeats == 1 && c.metrics.iter().all(|m| m.samples.is_empty())));
}

#[test]
fn a_report_folder_is_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("socklab-report");
    let mut report = sample();
    write_report(&out, &report).unwrap();
    let old_pcap = out.join(socklab_model::report::case_file("old", "capture.pcap"));
    fs::create_dir_all(old_pcap.parent().unwrap()).unwrap();
    fs::write(&old_pcap, "from the previous run").unwrap();
    report.run.seed = 6;
    write_report(&out, &report).unwrap();
    assert_eq!(load_report(&out).unwrap().run.seed, 6);
    assert!(!out.join("cases").exists(), "the new report replaces the folder, not merges into it");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["socklab-report"], "no staging folders left behind");
    let mut files: Vec<_> =
        fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, [".socklab-report", "index.html", "junit.xml", "report.json", "report.md"]);
}

#[test]
fn a_folder_of_other_files_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let err = write_report(dir.path(), &sample()).unwrap_err();
    assert!(matches!(err, FolderError::NotAReport(_)), "{err}");
    assert!(err.to_string().contains("is not a socklab report folder"));
    assert_eq!(fs::read_to_string(dir.path().join("precious.txt")).unwrap(), "keep me");
}

#[test]
fn an_empty_folder_is_filled() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty");
    fs::create_dir(&out).unwrap();
    write_report(&out, &sample()).unwrap();
    assert!(out.join("report.json").is_file());
}

#[test]
fn loading_a_missing_report_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_report(dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("cannot read "), "{err}");
    assert!(err.to_string().contains("report.json"), "{err}");
}

/// The error and its sources joined by `: `, as the CLI prints them (anyhow's `{:#}`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text += &format!(": {c}");
        cause = c.source();
    }
    text
}

#[test]
fn folder_errors_show_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_report(&dir.path().join("nope")).unwrap_err();
    assert_eq!(
        chain(&missing),
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            dir.path().join("nope/report.json").display()
        )
    );
    fs::write(dir.path().join("report.json"), "{").unwrap();
    let invalid = load_report(dir.path()).unwrap_err();
    let printed = chain(&invalid);
    assert_eq!(printed, invalid.to_string(), "the message already holds the cause");
    assert_eq!(printed.matches("EOF while parsing").count(), 1, "{printed}");
    let json_error = serde_json::from_str::<Value>("[").unwrap_err();
    let render = socklab_reports::RenderError::Json(json_error);
    assert_eq!(chain(&render), render.to_string());
    let template = socklab_reports::RenderError::Template {
        file: "index.html",
        error: minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "x is undefined"),
    };
    assert_eq!(chain(&template).matches("x is undefined").count(), 1, "{}", chain(&template));
}

/// report.md goes into pull-request comments: text a peer or server wrote must not turn
/// into HTML, an image or a link there. (It was copied in unescaped, while index.html
/// escaped it.)
#[test]
fn markdown_escapes_what_peers_wrote() {
    let mut report = sample();
    report.cases[2].error =
        Some("<img src=x onerror=alert(1)> ![t](http://tracker/t.png) [r]: http://x".into());
    report.cases[0].checks[0].explanation = "<script>alert(1)</script>".into();
    let md = markdown::render(&report).unwrap();
    assert!(!md.contains("<img") && !md.contains("<script"), "{md}");
    assert!(md.contains("&lt;img src=x onerror=alert(1)&gt;"), "{md}");
    assert!(!md.contains("![t](") && !md.contains("[r]:"), "{md}");
}
