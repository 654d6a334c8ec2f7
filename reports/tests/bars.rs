//! Bar charts a scenario declares (`BARS`): drawn from a fixed report model into
//! `index.html`, one group per parameter value or per item, a bar per case, each labelled.

use std::collections::BTreeMap;

use serde_json::Value;
use socklab_model::report::{
    BarChart, BarGroups, CaseResult, CaseStatus, Metric, Observations, Report, RunInfo, SCHEMA_VERSION,
    ScenarioInfo, Unit, ValueSeries,
};
use socklab_reports::html;

fn case(
    scenario: &str,
    params: &[(&str, &str)],
    metric: Option<f64>,
    series: Option<Vec<f64>>,
) -> CaseResult {
    let params: BTreeMap<String, Value> =
        params.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let mut observations = Observations::default();
    if let Some(values) = series {
        observations.series.push(ValueSeries {
            name: "time_in_queue".into(),
            unit: Unit::Millis,
            item: "client".into(),
            values,
        });
    }
    CaseResult {
        id: format!("{scenario}{params:?}"),
        scenario: scenario.into(),
        set_params: params.clone(),
        params,
        seed: 1,
        status: CaseStatus::Passed,
        duration_ms: 1.0,
        metrics: metric
            .map(|value| Metric {
                name: "cpu_pct".into(),
                value,
                unit: Unit::Percent,
                key: true,
                samples: Vec::new(),
            })
            .into_iter()
            .collect(),
        observations,
        checks: Vec::new(),
        error: None,
        target: None,
        repeats: 1,
    }
}

fn report() -> Report {
    let info =
        |bars| ScenarioInfo { summary: "s".into(), explanation: "e".into(), bars, ..ScenarioInfo::default() };
    Report {
        schema_version: SCHEMA_VERSION,
        run: RunInfo {
            socklab_version: "0.1.0".into(),
            git_revision: None,
            kernel: "6.1".into(),
            cpu_count: 2,
            started_at: "2026-11-21T00:00:00Z".into(),
            duration_s: 1.0,
            seed: 9,
            command_line: vec!["socklab".into()],
            suite: "default".into(),
            compare: Default::default(),
            hostname: None,
            peer: None,
            other_load_cpus: None,
        },
        scenarios: BTreeMap::from([
            (
                "eof".to_string(),
                info(vec![BarChart {
                    title: "CPU after EOF".into(),
                    values: "cpu_pct".into(),
                    groups: BarGroups::Param("server".into()),
                }]),
            ),
            (
                "seq".to_string(),
                info(vec![BarChart {
                    title: "Time in queue".into(),
                    values: "time_in_queue".into(),
                    groups: BarGroups::Items,
                }]),
            ),
        ]),
        cases: vec![
            case("eof", &[("server", "correct"), ("client", "close")], Some(0.1), None),
            case("eof", &[("server", "ignores-eof"), ("client", "close")], Some(97.6), None),
            case("eof", &[("server", "correct"), ("client", "shut-wr")], Some(0.2), None),
            case("eof", &[("server", "ignores-eof"), ("client", "shut-wr")], Some(88.0), None),
            case("seq", &[("flavour", "sequential")], None, Some(vec![0.1, 100.0, 200.0])),
            case("seq", &[("flavour", "tokio")], None, Some(vec![0.1, 0.2, 0.1])),
        ],
    }
}

#[test]
fn declared_bar_charts_are_drawn_with_their_groups_series_and_values() {
    let page = html::render(&report()).unwrap();
    for text in [
        "CPU after EOF",
        ">\ncorrect\n<",
        ">\nignores-eof\n<",
        ">\nclient=close\n<",
        ">\nclient=shut-wr\n<",
        ">\n97.6%\n<",
        "Time in queue",
        ">\nclient 2\n<",
        ">\nflavour=sequential\n<",
        ">\n200 ms\n<",
    ] {
        assert!(page.contains(text), "{text:?} missing");
    }
}

#[test]
fn a_declared_chart_without_values_is_left_out() {
    let mut report = report();
    for case in &mut report.cases {
        case.metrics.clear();
        case.observations.series.clear();
    }
    let page = html::render(&report).unwrap();
    assert!(!page.contains("CPU after EOF") && !page.contains("Time in queue"));
}
