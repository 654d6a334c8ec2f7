//! `socklab compare BASE NEW`: is a run better or worse than a baseline, beyond noise?
//!
//! Cases are matched by scenario and parameters (not by id, which a suite label can
//! change). For each metric both sides have, the verdict is:
//!
//! - **unchanged** when the medians differ by less than the metric's threshold (5% unless
//!   the suite's `[compare]` table or `--threshold` says otherwise);
//! - with repeats on both sides (at least 3 samples each), **improved** or **regressed**
//!   only when the Mann-Whitney U test also finds the two sets of samples different at
//!   α = 0.01, and **noisy** when it does not: the medians moved, but the samples overlap
//!   too much to tell;
//! - from single runs, improved or regressed on the threshold alone.
//!
//! Which way is better comes from the metric's declaration (`MetricSpec::better`, carried
//! in the report); a metric that is neither better up nor down is `changed` or
//! `unchanged`, never a regression.
//!
//! Why Mann-Whitney: it compares two small samples without assuming a distribution
//! (latency and throughput samples are skewed and have outliers), works from 3 repeats a
//! side, and its exact p-value is cheap for the sample sizes a CI job affords. A
//! bootstrap interval of the median is unstable with 5 samples. α is 0.01 rather than
//! 0.05 because a CI suite compares a few hundred metrics at once; with 5 repeats a side
//! it means the two sets of samples do not overlap at all.

use std::collections::BTreeMap;

use serde::Serialize;
use socklab_model::report::{Better, CaseResult, CaseStatus, Report, Unit};
use socklab_model::text::value_text;
use thiserror::Error;

/// Significance level of the Mann-Whitney test.
pub const ALPHA: f64 = 0.01;
/// Fewest samples a side for the test; with fewer, the threshold alone decides.
pub const MIN_SAMPLES: usize = 3;

/// What a metric's change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better beyond the threshold (and the noise).
    Improved,
    /// Worse beyond the threshold (and the noise).
    Regressed,
    /// Within the threshold.
    Unchanged,
    /// Beyond the threshold, but the samples overlap too much to tell.
    Noisy,
    /// A metric with no better direction moved beyond the threshold.
    Changed,
}

/// One metric of one case, base against new.
#[derive(Debug, Clone, Serialize)]
pub struct MetricChange {
    /// Metric name.
    pub metric: String,
    /// Its unit.
    pub unit: Unit,
    /// Base value (median of its repeats).
    pub base: f64,
    /// New value (median of its repeats).
    pub new: f64,
    /// Relative change in percent (`None` when base is 0 and new is not).
    pub change_pct: Option<f64>,
    /// The threshold used, in percent.
    pub threshold_pct: f64,
    /// Samples a side.
    pub samples: (usize, usize),
    /// Mann-Whitney two-sided p-value, when both sides had enough samples.
    pub p_value: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A check whose outcome differs between base and new.
#[derive(Debug, Clone, Serialize)]
pub struct CheckChange {
    /// Check name.
    pub check: String,
    /// Passed in base.
    pub base_passed: bool,
    /// Passed in new.
    pub new_passed: bool,
    /// What new observed.
    pub observed: String,
}

/// One case present on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct CaseComparison {
    /// The new run's case id.
    pub id: String,
    /// Scenario.
    pub scenario: String,
    /// Status in base and in new.
    pub status: (CaseStatus, CaseStatus),
    /// Checks that changed outcome (pass→fail first).
    pub checks: Vec<CheckChange>,
    /// Every metric both sides have.
    pub metrics: Vec<MetricChange>,
}

/// Everything `socklab compare` found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The baseline, as given.
    pub base: String,
    /// The new run, as given.
    pub new: String,
    /// Cases present on both sides, in the new run's order.
    pub cases: Vec<CaseComparison>,
    /// Case ids only the baseline has.
    pub only_in_base: Vec<String>,
    /// Case ids only the new run has.
    pub only_in_new: Vec<String>,
    /// Counts of metric verdicts.
    pub verdicts: BTreeMap<String, usize>,
    /// Checks that passed in base and fail in new.
    pub checks_broken: usize,
    /// Said when other processes loaded the machine differently in the two runs
    /// ([`LOAD_DIFFERENCE_CPUS`] or more apart), which moves figures with no code change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_note: Option<String>,
    /// Checks that failed in base and pass in new.
    pub checks_fixed: usize,
}

impl Comparison {
    /// Metrics that regressed, as `case metric: base -> new (change)` lines.
    pub fn regressions(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for case in &self.cases {
            for check in case.checks.iter().filter(|c| c.base_passed && !c.new_passed) {
                lines.push(format!("{}: check {} now fails: {}", case.id, check.check, check.observed));
            }
            for m in case.metrics.iter().filter(|m| m.verdict == Verdict::Regressed) {
                lines.push(format!("{}: {} regressed: {}", case.id, m.metric, describe_change(m)));
            }
        }
        lines
    }

    /// Whether the gate trips: a metric regressed or a check broke.
    pub fn regressed(&self) -> bool {
        self.checks_broken > 0 || self.verdicts.get("regressed").is_some_and(|n| *n > 0)
    }
}

/// Why two reports cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompareError {
    /// No case of one is a case of the other.
    #[error(
        "the two reports share no case (same scenario and parameters); {base} holds: {base_cases}; {new} holds: {new_cases}"
    )]
    NothingInCommon {
        /// The baseline.
        base: String,
        /// Its case ids.
        base_cases: String,
        /// The new run.
        new: String,
        /// Its case ids.
        new_cases: String,
    },
}

/// Compares `new` against `base` (named as given, for messages). `threshold_pct`
/// replaces the new report's default threshold when given.
///
/// # Errors
/// [`CompareError::NothingInCommon`] listing what each holds.
pub fn compare(
    base: &Report,
    base_name: &str,
    new: &Report,
    new_name: &str,
    threshold_pct: Option<f64>,
) -> Result<Comparison, CompareError> {
    let mut settings = new.run.compare.clone();
    if let Some(threshold) = threshold_pct {
        settings.threshold_pct = threshold;
    }
    let mut unmatched: Vec<&CaseResult> = base.cases.iter().collect();
    let mut cases = Vec::new();
    let mut only_in_new = Vec::new();
    for case in &new.cases {
        let key = case_key(case);
        match unmatched.iter().position(|b| case_key(b) == key) {
            Some(i) => {
                let base_case = unmatched.remove(i);
                let better = new.scenarios.get(&case.scenario).map(|s| &s.better);
                cases.push(compare_case(base_case, case, better, &settings));
            }
            None => only_in_new.push(case.id.clone()),
        }
    }
    if cases.is_empty() {
        let ids = |r: &Report| r.cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ");
        return Err(CompareError::NothingInCommon {
            base: base_name.to_string(),
            base_cases: ids(base),
            new: new_name.to_string(),
            new_cases: ids(new),
        });
    }
    let mut verdicts = BTreeMap::new();
    for m in cases.iter().flat_map(|c| &c.metrics) {
        *verdicts.entry(verdict_word(m.verdict).to_string()).or_insert(0) += 1;
    }
    let checks = cases.iter().flat_map(|c| &c.checks);
    let checks_broken = checks.clone().filter(|c| c.base_passed && !c.new_passed).count();
    let checks_fixed = checks.filter(|c| !c.base_passed && c.new_passed).count();
    Ok(Comparison {
        base: base_name.to_string(),
        new: new_name.to_string(),
        cases,
        only_in_base: unmatched.into_iter().map(|c| c.id.clone()).collect(),
        only_in_new,
        verdicts,
        checks_broken,
        checks_fixed,
        load_note: load_note(base, new),
    })
}

/// How far apart, in CPUs' worth of other processes' work, two runs' machine load must be
/// for [`Comparison::load_note`] to say so: half a CPU takes a noticeable share of a
/// 2-CPU machine's time from the figures that compete for it.
pub const LOAD_DIFFERENCE_CPUS: f64 = 0.5;

/// What to say when the two runs competed with different loads (`RunInfo::other_load_cpus`).
fn load_note(base: &Report, new: &Report) -> Option<String> {
    let (b, n) = (base.run.other_load_cpus?, new.run.other_load_cpus?);
    if (n - b).abs() < LOAD_DIFFERENCE_CPUS {
        return None;
    }
    let (busier, quieter) = if n > b { ("new", "base") } else { ("base", "new") };
    Some(format!(
        "Other processes loaded the machine differently: {:.1} CPUs' worth of their work during the {busier} run, \
         {:.1} during the {quieter} (of {} CPUs). Throughput, latency and CPU figures move with that and no code \
         change: rerun both on an equally loaded machine before trusting a regression or an improvement.",
        b.max(n),
        b.min(n),
        new.run.cpu_count
    ))
}

/// What identifies a case across runs: scenario and every parameter.
fn case_key(case: &CaseResult) -> String {
    let params: Vec<String> = case.params.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect();
    format!("{}[{}]", case.scenario, params.join(","))
}

fn compare_case(
    base: &CaseResult,
    new: &CaseResult,
    better: Option<&BTreeMap<String, Better>>,
    settings: &socklab_model::report::CompareSettings,
) -> CaseComparison {
    let mut checks: Vec<CheckChange> = new
        .checks
        .iter()
        .filter_map(|check| {
            let before = base.checks.iter().find(|c| c.name == check.name)?;
            (before.passed != check.passed).then(|| CheckChange {
                check: check.name.clone(),
                base_passed: before.passed,
                new_passed: check.passed,
                observed: check.observed.clone(),
            })
        })
        .collect();
    checks.sort_by_key(|c| c.new_passed); // pass→fail first
    let metrics = new
        .metrics
        .iter()
        .filter_map(|m| {
            let b = base.metric(&m.name)?;
            let direction = better.and_then(|d| d.get(&m.name)).copied().unwrap_or(Better::Neither);
            let samples = |metric: &socklab_model::report::Metric| {
                if metric.samples.is_empty() { vec![metric.value] } else { metric.samples.clone() }
            };
            Some(judge(&m.name, m.unit, direction, &samples(b), &samples(m), b.value, m.value, settings))
        })
        .collect();
    CaseComparison {
        id: new.id.clone(),
        scenario: new.scenario.clone(),
        status: (base.status, new.status),
        checks,
        metrics,
    }
}

#[allow(clippy::too_many_arguments)] // one metric's every fact, named at the call site
fn judge(
    metric: &str,
    unit: Unit,
    better: Better,
    base_samples: &[f64],
    new_samples: &[f64],
    base: f64,
    new: f64,
    settings: &socklab_model::report::CompareSettings,
) -> MetricChange {
    let threshold_pct = settings.threshold_of(metric);
    let change_pct = if base == 0.0 {
        if new == 0.0 { Some(0.0) } else { None }
    } else {
        Some((new - base) / base.abs() * 100.0)
    };
    let beyond = change_pct.is_none_or(|c| c.abs() >= threshold_pct);
    let tested = base_samples.len() >= MIN_SAMPLES && new_samples.len() >= MIN_SAMPLES;
    let p_value = tested.then(|| mann_whitney_p(base_samples, new_samples));
    let up = new > base;
    let verdict = match (better, beyond) {
        (_, false) => Verdict::Unchanged,
        (Better::Neither, true) => Verdict::Changed,
        (_, true) if p_value.is_some_and(|p| p >= ALPHA) => Verdict::Noisy,
        (Better::Higher, true) => {
            if up {
                Verdict::Improved
            } else {
                Verdict::Regressed
            }
        }
        (Better::Lower, true) => {
            if up {
                Verdict::Regressed
            } else {
                Verdict::Improved
            }
        }
    };
    MetricChange {
        metric: metric.to_string(),
        unit,
        base,
        new,
        change_pct,
        threshold_pct,
        samples: (base_samples.len(), new_samples.len()),
        p_value,
        verdict,
    }
}

/// The word a verdict is written as.
pub fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Improved => "improved",
        Verdict::Regressed => "regressed",
        Verdict::Unchanged => "unchanged",
        Verdict::Noisy => "noisy",
        Verdict::Changed => "changed",
    }
}

/// `812.5 → 640.2 (-21.2%)`.
pub fn describe_change(m: &MetricChange) -> String {
    let number = |v: f64| socklab_model::check::format_number((v * 1000.0).round() / 1000.0);
    let suffix = match m.unit.suffix() {
        "" => String::new(),
        s => format!(" {s}"),
    };
    let change = m.change_pct.map_or_else(|| "from 0".to_string(), |c| format!("{c:+.1}%"));
    format!("{}{suffix} → {}{suffix} ({change})", number(m.base), number(m.new))
}

/// Two-sided p-value of the Mann-Whitney U test of `a` against `b`: exact — from every
/// way of splitting the pooled samples into groups of `a.len()` and `b.len()`, ties
/// given their mid-ranks — while there are at most [`EXACT_SPLITS`] ways (up to 9
/// samples a side), and the normal approximation with tie and continuity corrections
/// beyond.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let ranks = mid_ranks(&pooled);
    let offset = (n1 * (n1 + 1)) as f64 / 2.0;
    let u = ranks[..n1].iter().sum::<f64>() - offset;
    let mean = (n1 * n2) as f64 / 2.0;
    let observed = (u - mean).abs();
    if binomial(n1 + n2, n1) <= EXACT_SPLITS as f64 {
        let (mut extreme, mut total) = (0u64, 0u64);
        for_each_split(&ranks, n1, &mut |rank_sum| {
            total += 1;
            if (rank_sum - offset - mean).abs() >= observed - 1e-9 {
                extreme += 1;
            }
        });
        return extreme as f64 / total as f64;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let n = n1f + n2f;
    let mut sorted = pooled;
    sorted.sort_by(f64::total_cmp);
    // Tie correction: sum over groups of equal values of t^3 - t.
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|v| **v == sorted[i]).count();
        tie_term += (j * j * j - j) as f64;
        i += j;
    }
    let variance = n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (observed - 0.5).max(0.0) / variance.sqrt();
    (2.0 * (1.0 - standard_normal_cdf(z))).min(1.0)
}

/// Most ways of splitting the pooled samples the exact test enumerates.
pub const EXACT_SPLITS: usize = 100_000;

/// Ranks 1..=n of `values`, equal values sharing the mean of their ranks.
fn mid_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let first = values[order[start]];
        let end = start + order[start..].iter().take_while(|&&k| values[k] == first).count();
        let rank = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            ranks[k] = rank;
        }
        start = end;
    }
    ranks
}

/// Calls `each` with the rank sum of every subset of `ranks` of size `k`.
fn for_each_split(ranks: &[f64], k: usize, each: &mut impl FnMut(f64)) {
    fn walk(ranks: &[f64], from: usize, left: usize, sum: f64, each: &mut impl FnMut(f64)) {
        if left == 0 {
            each(sum);
            return;
        }
        for i in from..=ranks.len() - left {
            walk(ranks, i + 1, left - 1, sum + ranks[i], each);
        }
    }
    walk(ranks, 0, k, 0.0, each);
}

/// n choose k, as a float (only compared with a bound).
fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Φ(z), from the complementary error function (Abramowitz & Stegun 7.1.26, error under
/// 1.5e-7: plenty for a p-value compared with 0.01).
fn standard_normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

const TEMPLATE: &str = include_str!("../templates/compare.md.j2");

/// The comparison as Markdown, for a pull-request comment or `$GITHUB_STEP_SUMMARY`:
/// the verdict, checks that changed outcome, then the regressed, noisy, improved and
/// changed metrics (unchanged ones are counted, not listed), and cases on one side only.
///
/// # Errors
/// [`crate::RenderError::Template`] if the template fails.
pub fn render_markdown(
    comparison: &Comparison,
    threshold_pct: f64,
    per_metric: &BTreeMap<String, f64>,
) -> Result<String, crate::RenderError> {
    let page = ComparePage::new(comparison, threshold_pct, per_metric);
    crate::render_template(crate::markdown::environment("compare.md")?, "compare.md", TEMPLATE, &page)
}

#[derive(Serialize)]
struct ComparePage<'a> {
    headline: &'static str,
    counts: String,
    base: &'a str,
    new: &'a str,
    threshold: String,
    per_metric: String,
    checks: Vec<CheckRow<'a>>,
    groups: Vec<Group<'a>>,
    only_in_base: &'a [String],
    only_in_new: &'a [String],
    load_note: Option<&'a str>,
}

#[derive(Serialize)]
struct CheckRow<'a> {
    case: &'a str,
    check: &'a str,
    base: &'static str,
    new: &'static str,
    observed: &'a str,
}

#[derive(Serialize)]
struct Group<'a> {
    title: &'static str,
    /// Shown folded (`<details>`): what needs no action.
    folded: bool,
    rows: Vec<MetricRow<'a>>,
}

#[derive(Serialize)]
struct MetricRow<'a> {
    case: &'a str,
    metric: &'a str,
    values: String,
    change: String,
    test: String,
}

impl<'a> ComparePage<'a> {
    fn new(c: &'a Comparison, threshold_pct: f64, per_metric: &BTreeMap<String, f64>) -> Self {
        let pass = |p: bool| if p { "✅ pass" } else { "❌ fail" };
        let mut checks = Vec::new();
        for case in &c.cases {
            for check in &case.checks {
                checks.push(CheckRow {
                    case: &case.id,
                    check: &check.check,
                    base: pass(check.base_passed),
                    new: pass(check.new_passed),
                    observed: &check.observed,
                });
            }
        }
        let group = |title, verdict, folded| Group {
            title,
            folded,
            rows: c
                .cases
                .iter()
                .flat_map(|case| {
                    case.metrics.iter().filter(move |m| m.verdict == verdict).map(move |m| (case, m))
                })
                .map(|(case, m)| MetricRow {
                    case: &case.id,
                    metric: &m.metric,
                    values: describe_change(m).split(" (").next().unwrap_or_default().to_string(),
                    change: m.change_pct.map_or_else(|| "from 0".to_string(), |p| format!("{p:+.1}%")),
                    test: match m.p_value {
                        Some(p) => format!("p = {p:.3} ({} vs {} runs)", m.samples.0, m.samples.1),
                        None => format!(
                            "threshold {}%, single run",
                            socklab_model::check::format_number(m.threshold_pct)
                        ),
                    },
                })
                .collect(),
        };
        let groups: Vec<Group<'a>> = [
            group("Regressed", Verdict::Regressed, false),
            group("Improved", Verdict::Improved, false),
            group("Noisy: beyond the threshold, but the samples overlap", Verdict::Noisy, true),
            group("Changed (no better direction)", Verdict::Changed, true),
        ]
        .into_iter()
        .filter(|g| !g.rows.is_empty())
        .collect();
        let count = |word: &str| c.verdicts.get(word).copied().unwrap_or(0);
        let counts = format!(
            "{} regressed, {} improved, {} noisy, {} unchanged, {} changed; checks: {} broke, {} fixed; {} compared",
            count("regressed"),
            count("improved"),
            count("noisy"),
            count("unchanged"),
            count("changed"),
            c.checks_broken,
            c.checks_fixed,
            if c.cases.len() == 1 { "1 case".to_string() } else { format!("{} cases", c.cases.len()) }
        );
        ComparePage {
            headline: if c.regressed() { "regressions" } else { "no regressions" },
            counts,
            base: &c.base,
            new: &c.new,
            threshold: format!("{}%", socklab_model::check::format_number(threshold_pct)),
            per_metric: per_metric
                .iter()
                .map(|(m, p)| format!("{m} {}%", socklab_model::check::format_number(*p)))
                .collect::<Vec<_>>()
                .join(", "),
            checks,
            groups,
            only_in_base: &c.only_in_base,
            only_in_new: &c.only_in_new,
            load_note: c.load_note.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_p_values_match_the_tables() {
        // Completely separated 5 vs 5: U = 0 of 252 arrangements each tail: p = 2/252.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        // Interleaved: nothing to see.
        let p = mann_whitney_p(&[1.0, 3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(p > 0.5, "{p}");
        // 3 vs 3 separated: p = 2/20 = 0.1 (3 a side can never reach 0.01).
        let p = mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((p - 0.1).abs() < 1e-12, "{p}");
        assert_eq!(binomial(10, 5), 252.0);
        assert_eq!(mid_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn ties_within_a_side_do_not_hide_a_separation() {
        // Timer-quantised samples repeat exactly (44.007 ms three times): still 2/252.
        let p =
            mann_whitney_p(&[0.029, 0.031, 0.036, 0.030, 0.0296], &[44.007, 43.97, 43.97, 44.007, 44.007]);
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        let p = mann_whitney_p(&[1.0; 5], &[1.0; 5]);
        assert!((p - 1.0).abs() < 1e-9, "{p}");
        // Beyond the exact range: the normal approximation.
        let a: Vec<f64> = (0..12).map(f64::from).collect();
        let b: Vec<f64> = (20..32).map(f64::from).collect();
        assert!(mann_whitney_p(&a, &b) < 0.001);
        assert!((standard_normal_cdf(1.96) - 0.975).abs() < 1e-4);
    }

    fn settings() -> socklab_model::report::CompareSettings {
        socklab_model::report::CompareSettings::default()
    }

    #[test]
    fn verdicts_follow_direction_threshold_and_noise() {
        let s = settings();
        let judge1 = |better, base: f64, new: f64| {
            judge("m", Unit::Count, better, &[base], &[new], base, new, &s).verdict
        };
        assert_eq!(judge1(Better::Higher, 100.0, 90.0), Verdict::Regressed);
        assert_eq!(judge1(Better::Higher, 100.0, 97.0), Verdict::Unchanged, "within 5%");
        assert_eq!(judge1(Better::Lower, 100.0, 90.0), Verdict::Improved);
        assert_eq!(judge1(Better::Neither, 100.0, 50.0), Verdict::Changed);
        assert_eq!(judge1(Better::Lower, 0.0, 3.0), Verdict::Regressed, "from zero");
        let overlapping = judge(
            "m",
            Unit::Count,
            Better::Higher,
            &[100.0, 80.0, 120.0, 90.0, 110.0],
            &[95.0, 70.0, 115.0, 85.0, 75.0],
            100.0,
            85.0,
            &s,
        );
        assert_eq!(overlapping.verdict, Verdict::Noisy, "{overlapping:?}");
        let separated = judge(
            "m",
            Unit::Count,
            Better::Higher,
            &[100.0, 101.0, 99.0, 102.0, 100.5],
            &[80.0, 81.0, 79.0, 82.0, 80.5],
            100.5,
            80.5,
            &s,
        );
        assert_eq!(separated.verdict, Verdict::Regressed, "{separated:?}");
    }
}
