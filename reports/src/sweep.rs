//! Sweep tables: a scenario's cases laid out as one row per value of one parameter and
//! one column per value of another (e.g. framing strategy × message size), each cell
//! holding chosen metrics. Which parameters and metrics comes from the scenario's
//! [`SweepTable`] in the report; cases that differ in any other parameter get a table of
//! their own, titled by those parameters.

use serde::Serialize;
use socklab_model::report::{CaseResult, CaseStatus, SweepTable};
use socklab_model::text::value_text;

use crate::view::metric_text;

/// One table of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// The other parameters shared by every case of the table (`mode=bulk, flavour=tokio`).
    pub title: String,
    /// The parameter labelling rows.
    pub row_param: String,
    /// The parameter labelling columns.
    pub column_param: String,
    /// The metrics each cell shows, in order.
    pub cells: Vec<String>,
    /// Column labels: values of the column parameter.
    pub columns: Vec<String>,
    /// Rows, in the order their values first appear.
    pub rows: Vec<TableRow>,
}

/// One row of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRow {
    /// Value of the row parameter.
    pub label: String,
    /// One cell per column: the metrics joined by ` · `, `—` where no case ran.
    pub cells: Vec<String>,
}

/// The tables of `cases` (all of one scenario) under `spec`. Only cases with more than one
/// row or column value make a table worth showing; others return nothing.
pub fn sweep_tables(cases: &[&CaseResult], spec: &SweepTable) -> Vec<Table> {
    // Per table: the other parameters' values, the table, and (row, column, case) entries.
    type Entries<'a> = Vec<(String, String, &'a CaseResult)>;
    let mut tables: Vec<(String, Table, Entries<'_>)> = Vec::new();
    for case in cases {
        let (Some(row), Some(column)) = (case.params.get(&spec.rows), case.params.get(&spec.columns)) else {
            continue;
        };
        let others = |params: &std::collections::BTreeMap<String, serde_json::Value>| {
            params
                .iter()
                .filter(|(k, _)| **k != spec.rows && **k != spec.columns)
                .map(|(k, v)| format!("{k}={}", value_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let group = others(&case.params);
        let index = match tables.iter().position(|(g, _, _)| *g == group) {
            Some(i) => i,
            None => {
                let title = others(&case.set_params);
                let table = Table {
                    title,
                    row_param: spec.rows.clone(),
                    column_param: spec.columns.clone(),
                    cells: spec.cells.clone(),
                    columns: Vec::new(),
                    rows: Vec::new(),
                };
                tables.push((group, table, Vec::new()));
                tables.len() - 1
            }
        };
        tables[index].2.push((value_text(row), value_text(column), case));
    }
    tables
        .into_iter()
        .filter_map(|(_, mut table, entries)| {
            for (row, column, _) in &entries {
                if !table.columns.contains(column) {
                    table.columns.push(column.clone());
                }
                if !table.rows.iter().any(|r| &r.label == row) {
                    table.rows.push(TableRow { label: row.clone(), cells: Vec::new() });
                }
            }
            if table.rows.len() < 2 && table.columns.len() < 2 {
                return None;
            }
            // The header names only metrics some case of this table has (a scenario may
            // name its metrics by mode: `rtt_p50` in one table, `reply_p50` in another).
            table.cells.retain(|name| entries.iter().any(|(_, _, case)| case.metric(name).is_some()));
            for row in &mut table.rows {
                row.cells = table
                    .columns
                    .iter()
                    .map(|column| {
                        entries
                            .iter()
                            .find(|(r, c, _)| *r == row.label && c == column)
                            .map_or_else(|| "—".to_string(), |(_, _, case)| cell(case, &spec.cells))
                    })
                    .collect();
            }
            Some(table)
        })
        .collect()
}

fn cell(case: &CaseResult, metrics: &[String]) -> String {
    if matches!(case.status, CaseStatus::Error | CaseStatus::TimedOut | CaseStatus::Skipped) {
        return case.status.word().to_lowercase();
    }
    let text =
        metrics.iter().filter_map(|name| case.metric(name).map(metric_text)).collect::<Vec<_>>().join(" · ");
    if case.status == CaseStatus::Failed { format!("{text} ❌") } else { text }
}
