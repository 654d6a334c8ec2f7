//! What every scenario test does: run one scenario through the real runner with some
//! `--set` arguments, and read metrics back.

use socklab_harness::report::CaseResult;
use socklab_harness::runner::{Silent, run_cases};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

/// Runs `scenario` with `sets` (`--set` syntax: `read_size=5,1024` is a matrix) and
/// run seed 42; one result per case.
pub fn run(scenario: &str, sets: &[&str]) -> Vec<CaseResult> {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&[scenario.to_string()], &registry).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    suite.apply_sets(&sets, &registry).unwrap();
    let cases = suite.expand(&registry).unwrap();
    run_cases(&registry, &cases, 42, &Silent).unwrap()
}

/// The value of metric `name`; panics naming the case when it is missing.
#[allow(dead_code)] // not every test file reads metrics
pub fn metric(case: &CaseResult, name: &str) -> f64 {
    case.metric(name).unwrap_or_else(|| panic!("{}: no metric {name}", case.id)).value
}
