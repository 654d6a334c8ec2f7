//! Bar charts a scenario declares (`BARS`): drawn from a fixed report model into
//! `index.html`, one group per parameter value or per item, a bar per case, each labelled.

mod common;

use std::collections::BTreeMap;

use common::{metric, run_info};
use serde_json::Value;
use socklab_model::report::{
    BarChart, BarGroups, CaseResult, Observations, Report, RunInfo, ScenarioInfo, Unit, ValueSeries,
};
use socklab_reports::html;

fn case(
    scenario: &str,
    params: &[(&str, &str)],
    metric_value: Option<f64>,
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
        metrics: metric_value.map(|value| metric("cpu_pct", value, Unit::Percent)).into_iter().collect(),
        observations,
        ..common::case(format!("{scenario}{params:?}"), scenario, params)
    }
}

fn report() -> Report {
    let info =
        |bars| ScenarioInfo { summary: "s".into(), explanation: "e".into(), bars, ..ScenarioInfo::default() };
    Report {
        run: RunInfo { duration_s: 1.0, ..run_info(9) },
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
        ..common::report(9)
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
