//! Sweep tables from a fixed set of cases.

use std::collections::BTreeMap;

use serde_json::Value;
use socklab_model::report::{CaseResult, CaseStatus, Metric, Observations, SweepTable, Unit};
use socklab_reports::sweep::{TableRow, sweep_tables};

fn case(framing: &str, size: u64, mode: &str, mib_s: f64, status: CaseStatus) -> CaseResult {
    let params = BTreeMap::from([
        ("framing".to_string(), Value::from(framing)),
        ("message_size".to_string(), Value::from(size)),
        ("mode".to_string(), Value::from(mode)),
    ]);
    CaseResult {
        id: format!("{framing}-{size}-{mode}"),
        scenario: "framing-throughput".into(),
        set_params: params.clone(),
        params,
        seed: 1,
        status,
        duration_ms: 1.0,
        metrics: vec![
            Metric {
                name: "throughput_mib_s".into(),
                value: mib_s,
                unit: Unit::MibPerSec,
                key: true,
                samples: Vec::new(),
            },
            Metric {
                name: "rtt_p50".into(),
                value: 12.5,
                unit: Unit::Micros,
                key: true,
                samples: Vec::new(),
            },
        ],
        observations: Observations::default(),
        checks: Vec::new(),
        error: None,
        target: None,
        repeats: 1,
    }
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
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let spec = SweepTable {
        rows: "framing".into(),
        columns: "message_size".into(),
        cells: vec!["throughput_mib_s".into(), "rtt_p50".into()],
    };
    let tables = sweep_tables(&refs, &spec);
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
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let spec = SweepTable { rows: "framing".into(), columns: "message_size".into(), cells: vec![] };
    assert!(sweep_tables(&refs, &spec).is_empty());
}

#[test]
fn the_header_names_only_metrics_the_tables_cases_have() {
    let cases = [
        case("u32be", 16, "pipelined", 10.0, CaseStatus::Passed),
        case("line", 16, "pipelined", 9.0, CaseStatus::Passed),
    ];
    let refs: Vec<&CaseResult> = cases.iter().collect();
    let spec = SweepTable {
        rows: "framing".into(),
        columns: "message_size".into(),
        cells: vec!["throughput_mib_s".into(), "reply_p50".into(), "rtt_p50".into()],
    };
    let tables = sweep_tables(&refs, &spec);
    assert_eq!(tables[0].cells, ["throughput_mib_s", "rtt_p50"], "no case has reply_p50");
}
