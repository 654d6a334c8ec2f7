//! `junit.xml`: one test suite per case, one test case per check, for CI systems.
//!
//! A failed check is a `<failure>` whose message holds the expected and observed values;
//! a case that could not run (an error or a timeout) is one `<error>` test case named
//! `run`, since its checks never happened.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use socklab_model::report::{CaseStatus, Report};

use crate::RenderError;

/// The report as JUnit XML.
///
/// # Errors
/// Only if XML serialisation fails.
pub fn render(report: &Report) -> Result<String, RenderError> {
    let mut junit = quick_junit::Report::new("socklab");
    junit.set_time(Duration::from_secs_f64(report.run.duration_s.max(0.0)));
    for case in &report.cases {
        let mut suite = TestSuite::new(case.id.as_str());
        suite.set_time(Duration::from_secs_f64(case.duration_ms.max(0.0) / 1e3));
        suite.add_property(("seed", case.seed.to_string().as_str()));
        if case.status == CaseStatus::Skipped {
            let mut status = TestCaseStatus::skipped();
            status.set_message(case.error.as_deref().unwrap_or("skipped"));
            let mut test = TestCase::new("run", status);
            test.set_classname(case.scenario.as_str());
            suite.add_test_case(test);
            junit.add_test_suite(suite);
            continue;
        }
        if let Some(error) = &case.error {
            let kind = if case.status == CaseStatus::TimedOut { "timeout" } else { "error" };
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(error.as_str()).set_type(kind);
            let mut test = TestCase::new("run", status);
            test.set_classname(case.scenario.as_str());
            suite.add_test_case(test);
        }
        for check in &case.checks {
            let status = if check.passed {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(format!("expected {}; observed {}", check.expected, check.observed))
                    .set_type("check failed")
                    .set_description(check.explanation.as_str());
                status
            };
            let mut test = TestCase::new(check.name.as_str(), status);
            test.set_classname(format!("{}.{}", case.scenario, case.id));
            suite.add_test_case(test);
        }
        junit.add_test_suite(suite);
    }
    Ok(junit.to_string()?)
}
