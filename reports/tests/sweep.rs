//! Sweep tables from a fixed set of cases.

mod common;

use common::{metric, params};
use serde_json::Value;
use socklab_model::report::{CaseResult, CaseStatus, SweepTable, Unit};
use socklab_reports::sweep::{Table, TableRow, sweep_tables};

fn case(framing: &str, size: u64, mode: &str, mib_s: f64, status: CaseStatus) -> CaseResult {
    let params = params(&[
        ("framing", Value::from(framing)),
        ("message_size", Value::from(size)),
        ("mode", Value::from(mode)),
    ]);
    CaseResult {
        status,
        metrics: vec![
            metric("throughput_mib_s", mib_s, Unit::MibPerSec),
            metric("rtt_p50", 12.5, Unit::Micros),
        ],
        ..common::case(format!("{framing}-{size}-{mode}"), "framing-throughput", params)
    }
}

/// The sweep tables of `cases`: a row per framing, a column per message size, `cells`
/// in each.
fn framing_by_size(cases: &[CaseResult], cells: &[&str]) -> Vec<Table> {
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let spec = SweepTable {
        rows: "framing".into(),
        columns: "message_size".into(),
        cells: cells.iter().map(|cell| cell.to_string()).collect(),
    };
    sweep_tables(&refs, &spec)
}

#[test]
fn cases_pivot_into_rows_and_columns_per_group_of_other_parameters() {
    let cases = [
        case("u32be", 16, "pipelined", 10.0, CaseStatus::Passed),
        case("u32be", 256, "pipelined", 100.0, CaseStatus::Passed),
        case("line", 16, "pipelined", 9.0, CaseStatus::Failed),
        case("u32be", 16, "bulk", 50.0, CaseStatus::Passed),
        case("line", 16, "bulk", 40.0, CaseStatus::TimedOut),
    ];
    let tables = framing_by_size(&cases, &["throughput_mib_s", "rtt_p50"]);
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0].title, "mode=pipelined");
    assert_eq!(tables[0].columns, ["16", "256"]);
    assert_eq!(
        tables[0].rows,
        [
            TableRow {
                label: "u32be".into(),
                cells: vec!["10 MiB/s · 12.5 µs".into(), "100 MiB/s · 12.5 µs".into()]
            },
            TableRow { label: "line".into(), cells: vec!["9 MiB/s · 12.5 µs ❌".into(), "—".into()] },
        ]
    );
    assert_eq!(tables[1].rows[1].cells, ["timeout"]);
}

#[test]
fn a_single_case_makes_no_table() {
    let cases = [case("u32be", 16, "bulk", 1.0, CaseStatus::Passed)];
    assert!(framing_by_size(&cases, &[]).is_empty());
}

#[test]
fn the_header_names_only_metrics_the_tables_cases_have() {
    let cases = [
        case("u32be", 16, "pipelined", 10.0, CaseStatus::Passed),
        case("line", 16, "pipelined", 9.0, CaseStatus::Passed),
    ];
    let tables = framing_by_size(&cases, &["throughput_mib_s", "reply_p50", "rtt_p50"]);
    assert_eq!(tables[0].cells, ["throughput_mib_s", "rtt_p50"], "no case has reply_p50");
}
