//! Checks: pass/fail verdicts with what was expected, what was observed and why it
//! matters; and thresholds, the checks a suite file adds on metrics
//! (`[[run.expect]] metric = "split_messages", op = ">=", value = 1`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::metric::Metric;

/// One verdict about a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Short `snake_case` name, unique within a case.
    pub name: String,
    /// What should hold, in words or numbers.
    pub expected: String,
    /// What was seen.
    pub observed: String,
    /// Whether `observed` meets `expected`.
    pub passed: bool,
    /// One line on what the verdict means.
    pub explanation: String,
}

impl Check {
    /// A check from its parts.
    pub fn new(
        name: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
        explanation: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            expected: expected.into(),
            observed: observed.into(),
            passed,
            explanation: explanation.into(),
        }
    }
}

impl Check {
    /// A failed check for a case that measured nothing this check could judge (0
    /// messages, 0 samples, 0 reads): `what` says what was missing. A check never passes
    /// on an empty outcome.
    pub fn nothing_to_judge(name: impl Into<String>, expected: impl Into<String>, what: &str) -> Self {
        Check::new(
            name,
            expected,
            format!("nothing to judge: {what}"),
            false,
            "the case measured nothing this check could judge, so it cannot pass",
        )
    }
}

/// A comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl CompareOp {
    /// Every operator, in the order error messages list them.
    pub const ALL: [CompareOp; 6] =
        [CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge, CompareOp::Eq, CompareOp::Ne];

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    /// Whether `left op right` holds.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Lt => left < right,
            CompareOp::Le => left <= right,
            CompareOp::Gt => left > right,
            CompareOp::Ge => left >= right,
            CompareOp::Eq => left == right,
            CompareOp::Ne => left != right,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl FromStr for CompareOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CompareOp::ALL.into_iter().find(|op| op.symbol() == s).ok_or_else(|| {
            let valid: Vec<_> = CompareOp::ALL.iter().map(|op| op.symbol()).collect();
            format!("unknown operator `{s}`; valid operators: {}", valid.join(" "))
        })
    }
}

/// A check on a metric that a suite adds: `metric op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Metric name.
    pub metric: String,
    /// Comparison.
    pub op: CompareOp,
    /// Right-hand side, in the metric's unit.
    pub value: f64,
}

impl Threshold {
    /// Judges the threshold against a case's metrics. A missing metric fails the check.
    pub fn evaluate(&self, metrics: &[Metric]) -> Check {
        let name = format!("expect {} {} {}", self.metric, self.op, format_number(self.value));
        let expected = format!("{} {} {}", self.metric, self.op, format_number(self.value));
        match metrics.iter().find(|m| m.name == self.metric) {
            Some(metric) => {
                let passed = self.op.holds(metric.value, self.value);
                Check::new(
                    name,
                    expected,
                    format!("{} = {}{}", self.metric, format_number(metric.value), metric.unit.suffix()),
                    passed,
                    if passed {
                        "threshold from the suite file holds"
                    } else {
                        "threshold from the suite file does not hold"
                    },
                )
            }
            None => Check::new(
                name,
                expected,
                "metric not produced",
                false,
                "the case ended without producing this metric",
            ),
        }
    }
}

/// A number as people write it: `4` rather than `4.0`, at most 3 decimals otherwise.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Unit;

    fn metrics() -> Vec<Metric> {
        vec![Metric {
            name: "split_messages".into(),
            value: 3.0,
            unit: Unit::Count,
            key: true,
            samples: Vec::new(),
        }]
    }

    #[test]
    fn thresholds_pass_and_fail_on_the_metric_value() {
        let pass = Threshold { metric: "split_messages".into(), op: CompareOp::Ge, value: 1.0 };
        let check = pass.evaluate(&metrics());
        assert!(check.passed);
        assert_eq!(check.name, "expect split_messages >= 1");
        assert_eq!(check.observed, "split_messages = 3");
        let fail = Threshold { metric: "split_messages".into(), op: CompareOp::Lt, value: 1.0 };
        assert!(!fail.evaluate(&metrics()).passed);
    }

    #[test]
    fn a_missing_metric_fails() {
        let t = Threshold { metric: "nope".into(), op: CompareOp::Eq, value: 0.0 };
        let check = t.evaluate(&metrics());
        assert!(!check.passed);
        assert_eq!(check.observed, "metric not produced");
    }

    #[test]
    fn operators_parse_from_their_symbols() {
        for op in CompareOp::ALL {
            assert_eq!(op.symbol().parse::<CompareOp>().unwrap(), op);
        }
        assert_eq!(
            "=>".parse::<CompareOp>().unwrap_err(),
            "unknown operator `=>`; valid operators: < <= > >= == !="
        );
    }

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(format_number(4.0), "4");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(1.23456), "1.235");
    }
}
