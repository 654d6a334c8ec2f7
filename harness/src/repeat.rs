//! Repeated cases (`--repeat N`): N results of one case merged into the one result the
//! report shows.
//!
//! - Each metric's value is the **median** of its repeats, and every repeat's value is
//!   kept in [`Metric::samples`], in run order, so reports can show the spread and
//!   `socklab compare` can test a difference against the noise.
//! - A scenario check passes only if it passed in every repeat; a failure says in how
//!   many repeats it failed. (Suite thresholds are judged afterwards, on the medians.)
//! - A repeat that errored or timed out makes the case errored or timed out, with that
//!   repeat's message.
//! - Latency histograms of every repeat are merged into one; other observations (the
//!   stream trace, the capture) are the first repeat's, with its files.

use std::collections::BTreeMap;

use crate::check::Check;
use crate::metric::Metric;
use crate::metrics::LatencyRecorder;
use crate::report::{CaseResult, CaseStatus};

/// Merges the results of one case's repeats, in the order they ran. One repeat is
/// returned as is. (The runner keeps the first repeat's files, as its observations are
/// the first repeat's.)
///
/// # Panics
/// Never for a non-empty `repeats`; an empty one is a caller bug and panics.
pub fn merge_repeats(mut repeats: Vec<CaseResult>) -> CaseResult {
    assert!(!repeats.is_empty(), "merge_repeats needs at least one repeat");
    if repeats.len() == 1 {
        return repeats.remove(0);
    }
    let n = repeats.len();
    let results: Vec<&CaseResult> = repeats.iter().collect();
    let metrics = merge_metrics(&results);
    let checks = merge_checks(&results);
    let latency = merge_latency(&results);
    let duration_ms = results.iter().map(|r| r.duration_ms).sum();
    let unfinished = results
        .iter()
        .enumerate()
        .find(|(_, r)| matches!(r.status, CaseStatus::Error | CaseStatus::TimedOut | CaseStatus::Skipped))
        .map(|(i, r)| (r.status, format!("repeat {} of {n}: {}", i + 1, r.error.as_deref().unwrap_or(""))));

    let first = repeats.swap_remove(0);
    let mut merged = CaseResult { metrics, checks, duration_ms, repeats: n as u32, ..first };
    if let (Some(latency), Some(observation)) = (latency, merged.observations.latency.as_mut()) {
        observation.summary = latency.summary();
        observation.histogram = latency.to_base64();
        observation.of = format!("{} (all {n} repeats)", observation.of);
    }
    merged.status = match &unfinished {
        Some((status, _)) => *status,
        None if merged.checks.iter().any(|c| !c.passed) => CaseStatus::Failed,
        None => CaseStatus::Passed,
    };
    merged.error = unfinished.map(|(_, message)| message);
    merged
}

/// Median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
    }
}

fn merge_metrics(results: &[&CaseResult]) -> Vec<Metric> {
    let mut order: Vec<&Metric> = Vec::new();
    let mut samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for result in results {
        for metric in &result.metrics {
            if !samples.contains_key(metric.name.as_str()) {
                order.push(metric);
            }
            samples.entry(metric.name.as_str()).or_default().push(metric.value);
        }
    }
    order
        .into_iter()
        .map(|first| {
            let values = samples.remove(first.name.as_str()).unwrap_or_default();
            Metric { value: median(&values), samples: values, ..first.clone() }
        })
        .collect()
}

fn merge_checks(results: &[&CaseResult]) -> Vec<Check> {
    let n = results.len();
    let mut order: Vec<&Check> = Vec::new();
    for result in results {
        for check in &result.checks {
            if !order.iter().any(|c| c.name == check.name) {
                order.push(check);
            }
        }
    }
    order
        .into_iter()
        .map(|first| {
            let runs: Vec<&Check> =
                results.iter().filter_map(|r| r.checks.iter().find(|c| c.name == first.name)).collect();
            let failed: Vec<&&Check> = runs.iter().filter(|c| !c.passed).collect();
            let missing = n - runs.len();
            match failed.first() {
                None if missing == 0 => {
                    Check { observed: format!("{} (in all {n} repeats)", first.observed), ..first.clone() }
                }
                None => Check {
                    observed: format!("{} (missing in {missing} of {n} repeats)", first.observed),
                    passed: false,
                    ..first.clone()
                },
                Some(failure) => Check {
                    observed: format!(
                        "{} (failed in {} of {n} repeats)",
                        failure.observed,
                        failed.len() + missing
                    ),
                    ..(**failure).clone()
                },
            }
        })
        .collect()
}

/// Every repeat's latency histogram merged; `None` when any is missing or unreadable.
fn merge_latency(results: &[&CaseResult]) -> Option<LatencyRecorder> {
    let mut merged = LatencyRecorder::new();
    for result in results {
        let observation = result.observations.latency.as_ref()?;
        merged.merge(&LatencyRecorder::from_base64(&observation.histogram).ok()?);
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Unit;
    use crate::report::{LatencyObservation, Observations};

    fn repeat(value: f64, passed: bool, latency_ns: &[u64]) -> CaseResult {
        let mut recorder = LatencyRecorder::new();
        for ns in latency_ns {
            recorder.record_ns(*ns);
        }
        CaseResult {
            id: "c".into(),
            scenario: "s".into(),
            params: BTreeMap::new(),
            set_params: BTreeMap::new(),
            seed: 1,
            status: if passed { CaseStatus::Passed } else { CaseStatus::Failed },
            duration_ms: 10.0,
            metrics: vec![Metric {
                name: "rtt".into(),
                value,
                unit: Unit::Micros,
                key: true,
                samples: vec![],
            }],
            observations: Observations {
                latency: Some(LatencyObservation {
                    of: "round trip".into(),
                    summary: recorder.summary(),
                    histogram: recorder.to_base64(),
                }),
                ..Observations::default()
            },
            checks: vec![Check::new("ok", "e", format!("v{value}"), passed, "x")],
            error: None,
            target: None,
            repeats: 1,
        }
    }

    #[test]
    fn metrics_become_medians_with_every_sample_kept() {
        let merged =
            merge_repeats(vec![repeat(30.0, true, &[1]), repeat(10.0, true, &[2]), repeat(20.0, true, &[3])]);
        let rtt = &merged.metrics[0];
        assert_eq!(rtt.value, 20.0);
        assert_eq!(rtt.samples, [30.0, 10.0, 20.0]);
        assert_eq!(merged.repeats, 3);
        assert_eq!(merged.duration_ms, 30.0);
        assert_eq!(merged.status, CaseStatus::Passed);
        assert_eq!(merged.observations.latency.as_ref().unwrap().summary.count, 3, "histograms merged");
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_check_passes_only_if_it_passed_in_every_repeat() {
        let merged =
            merge_repeats(vec![repeat(1.0, true, &[]), repeat(2.0, false, &[]), repeat(3.0, true, &[])]);
        let check = &merged.checks[0];
        assert!(!check.passed);
        assert_eq!(check.observed, "v2 (failed in 1 of 3 repeats)");
        assert_eq!(merged.status, CaseStatus::Failed);
    }

    #[test]
    fn an_errored_repeat_makes_the_case_errored() {
        let mut broken = repeat(1.0, true, &[]);
        broken.status = CaseStatus::Error;
        broken.error = Some("connection refused".into());
        broken.checks.clear();
        let merged = merge_repeats(vec![repeat(1.0, true, &[]), broken]);
        assert_eq!(merged.status, CaseStatus::Error);
        assert_eq!(merged.error.as_deref(), Some("repeat 2 of 2: connection refused"));
        assert!(!merged.checks[0].passed, "a check missing in a repeat did not pass there");
    }
}
