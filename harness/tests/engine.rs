//! The engine end to end with test scenarios: suite parsing and its error positions,
//! matrix expansion with `--set`, thresholds, timeouts and panics, and the run pipeline
//! (`harness::run`) from a plan to its report.

use std::time::{Duration, Instant};

use socklab_harness::check::Check;
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::report::CaseResult;
use socklab_harness::report::{CaseStatus, MetricSpec};
use socklab_harness::run::{Overrides, PeerCommand, RunError, RunPlan, execute, prepare};
use socklab_harness::runner::{Progress, RunOptions, Silent, run_cases};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, Registry, Scenario};
use socklab_harness::suite::CaseSpec;
use socklab_harness::suite::{Suite, SuiteError};

/// Echoes its parameters as metrics; sleeps or panics on request.
struct Probe;

socklab_harness::model::metrics! {
    /// The `size` parameter, echoed.
    size: Bytes, Neither;
}

socklab_harness::params! {
    struct ProbeParams {
        /// Echoed as the `size` metric.
        size: u64 = 0 => ParamSpec::int(0, 100).unit("bytes"),
        /// Takes size <= 50.
        fast: bool = false => ParamSpec::bool(),
        /// What the case does besides echoing.
        behaviour: String = String::new() => ParamSpec::one_of(&["", "hang", "panic", "fail", "spin", "stubborn"]),
    }
}

impl Scenario for Probe {
    type Params = ProbeParams;
    type Measured = Option<u64>;
    const NAME: &'static str = "probe";
    const SUMMARY: &'static str = "test scenario";
    const EXPLANATION: &'static str = "test scenario";
    const METRICS: &'static [MetricSpec] = METRICS;

    fn validate(params: &ProbeParams) -> Result<(), Invalid> {
        if params.fast && params.size > 50 {
            Err(Invalid::new("size", "fast probes take size <= 50"))
        } else {
            Ok(())
        }
    }

    async fn run(params: ProbeParams, ctx: CaseContext) -> Result<Option<u64>, CaseError> {
        match params.behaviour.as_str() {
            "hang" => tokio::time::sleep(Duration::from_secs(3600)).await,
            // Blocking work that looks at the cancel flag, as scenarios' must.
            "spin" => {
                let cancel = ctx.cancel.clone();
                tokio::task::spawn_blocking(move || {
                    let until = Instant::now() + Duration::from_secs(60);
                    while Instant::now() < until {
                        cancel.check()?;
                    }
                    Ok::<_, CaseError>(())
                })
                .await
                .map_err(|e| CaseError::task("the spinning thread", e))??;
            }
            // Blocking work that ignores it, longer than the timeout and the grace.
            "stubborn" => {
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(3500)))
                    .await
                    .map_err(|e| CaseError::task("the spinning thread", e))?;
            }
            "panic" => panic!("probe asked to panic"),
            "fail" => return Err(CaseError::Protocol("probe asked to fail".into())),
            _ => {}
        }
        Ok(Some(params.size))
    }

    fn evaluate(_params: &ProbeParams, size: Option<u64>) -> CaseOutcome {
        let mut outcome = CaseOutcome::default();
        if let Some(size) = size {
            outcome.metric(metric::size, size as f64);
        }
        outcome.checks.push(Check::new("ran", "measured", format!("{size:?}"), size.is_some(), "it ran"));
        outcome
    }
}

fn registry() -> Registry {
    Registry::default().with::<Probe>()
}

/// Runs `cases` through the runner with run seed `seed`; one result per case.
fn run(cases: &[CaseSpec], seed: u64, progress: &dyn Progress) -> Vec<CaseResult> {
    let finished = run_cases(&registry(), cases, &RunOptions::with_seed(seed), progress).unwrap();
    finished.into_iter().map(|case| case.result).collect()
}

fn invalid(text: &str) -> (usize, usize, String) {
    match Suite::parse(text, "suite.toml", &registry()) {
        Err(SuiteError::Invalid { line, column, message, .. }) => (line, column, message),
        other => panic!("expected a position error, got {other:?}"),
    }
}

#[test]
fn matrices_expand_to_every_combination_in_file_order() {
    let suite = Suite::parse(
        "[[run]]\nscenario = \"probe\"\n[run.params]\nsize = [1, 2, 3]\nfast = [false, true]\n",
        "suite.toml",
        &registry(),
    )
    .unwrap();
    let cases = suite.expand(&registry()).unwrap();
    assert_eq!(cases.len(), 6);
    assert_eq!(cases[0].id, "probe[size=1,fast=false]");
    assert_eq!(cases[5].id, "probe[size=3,fast=true]");
    assert_eq!(cases[0].params["behaviour"], "", "defaults fill unset parameters");
}

#[test]
fn set_lists_replace_suite_values_and_become_matrices() {
    let mut suite =
        Suite::parse("[[run]]\nscenario = \"probe\"\n[run.params]\nsize = [1, 2, 3]\n", "s", &registry())
            .unwrap();
    suite.apply_sets(&["size=7,8".to_string(), "fast=true".to_string()], &registry()).unwrap();
    let ids: Vec<_> = suite.expand(&registry()).unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["probe[size=7,fast=true]", "probe[size=8,fast=true]"]);
}

#[test]
fn set_errors_name_what_is_valid() {
    let mut suite = Suite::from_scenarios(&["probe".to_string()], &registry()).unwrap();
    let err = suite.apply_sets(&["sise=1".to_string()], &registry()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown parameter `sise` for scenario `probe`; valid parameters: size, fast, behaviour"
    );
    let err = suite.apply_sets(&["size=101".to_string()], &registry()).unwrap_err();
    assert_eq!(err.to_string(), "bad value `101` for parameter `size`: expected integer in 0..=100 (bytes)");
    let err = suite.apply_sets(&["behaviour=sing".to_string()], &registry()).unwrap_err();
    assert!(err.to_string().contains("expected one of , hang, panic, fail"), "{err}");
}

#[test]
fn scenario_validation_refuses_bad_combinations_before_running() {
    let mut suite = Suite::from_scenarios(&["probe".to_string()], &registry()).unwrap();
    suite.apply_sets(&["size=60".to_string(), "fast=true".to_string()], &registry()).unwrap();
    let err = suite.expand(&registry()).unwrap_err();
    assert_eq!(err.to_string(), "invalid parameters for `probe`: fast probes take size <= 50");
}

#[test]
fn unknown_scenarios_list_the_valid_ones() {
    let err = Suite::from_scenarios(&["nope".to_string()], &registry()).unwrap_err();
    assert_eq!(err.to_string(), "unknown scenario `nope`; valid scenarios: probe");
}

#[test]
fn suite_errors_carry_line_and_column() {
    let (line, column, message) = invalid("[[run]]\nscenario = \"prob\"\n");
    assert_eq!((line, column), (2, 12));
    assert_eq!(message, "unknown scenario `prob`; valid scenarios: probe");

    let (line, column, message) = invalid("[[run]]\nscenario = \"probe\"\n[run.params]\nsise = 1\n");
    assert_eq!((line, column), (4, 1));
    assert!(message.starts_with("unknown parameter `sise`"), "{message}");

    let (line, column, message) = invalid("[[run]]\nscenario = \"probe\"\n[run.params]\nsize = [1, 200]\n");
    assert_eq!((line, column), (4, 8));
    assert!(message.contains("bad value `200`"), "{message}");

    let (line, _, message) = invalid("[[run]]\nscenario = \"probe\"\nsize = 3\n");
    assert_eq!(line, 3);
    assert!(message.contains("unknown field `size`"), "{message}");

    let (line, column, _) = invalid("[[run]]\nscenario = \"probe\n");
    assert_eq!((line, column), (2, 18), "TOML syntax errors point at the mistake");

    let (line, column, message) = invalid(
        "[[run]]\nscenario = \"probe\"\n[[run.expect]]\nmetric = \"sizes\"\nop = \">=\"\nvalue = 1\n",
    );
    assert_eq!((line, column), (4, 10));
    assert_eq!(message, "unknown metric `sizes` for scenario `probe`; valid metrics: size");

    let (line, column, message) =
        invalid("[[run]]\nscenario = \"probe\"\n[[run.expect]]\nmetric = \"size\"\nop = \"=>\"\nvalue = 1\n");
    assert_eq!((line, column), (5, 6));
    assert!(message.starts_with("unknown operator `=>`"), "{message}");

    let (_, _, message) = invalid("name = \"empty\"\n");
    assert!(message.contains("no [[run]] entries"), "{message}");
}

#[test]
fn thresholds_become_checks_and_fail_cases() {
    let suite = Suite::parse(
        "[[run]]\nscenario = \"probe\"\n[run.params]\nsize = [5, 50]\n\
         [[run.expect]]\nmetric = \"size\"\nop = \"<\"\nvalue = 10\n",
        "s",
        &registry(),
    )
    .unwrap();
    let cases = suite.expand(&registry()).unwrap();
    let results = run(&cases, 1, &Silent);
    assert_eq!(results[0].status, CaseStatus::Passed);
    assert_eq!(results[1].status, CaseStatus::Failed);
    let failed = results[1].checks.iter().find(|c| !c.passed).unwrap();
    assert_eq!(failed.name, "expect size < 10");
    assert_eq!(failed.observed, "size = 50B");
}

#[test]
fn a_hung_case_times_out_and_the_run_goes_on() {
    let mut suite = Suite::from_scenarios(&["probe".to_string()], &registry()).unwrap();
    suite.apply_sets(&["behaviour=hang,,panic,fail".to_string()], &registry()).unwrap();
    suite.override_timeout(Duration::from_secs(1));
    let cases = suite.expand(&registry()).unwrap();
    let results = run(&cases, 1, &Silent);
    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [CaseStatus::TimedOut, CaseStatus::Passed, CaseStatus::Error, CaseStatus::Error]);
    assert!(results[0].error.as_deref().unwrap().starts_with("timed out after 1 s"));
    assert_eq!(results[2].error.as_deref(), Some("scenario panicked: probe asked to panic"));
    assert_eq!(results[3].error.as_deref(), Some("probe asked to fail"));
}

#[test]
fn case_seeds_follow_the_run_seed_and_parameters() {
    let mut suite = Suite::from_scenarios(&["probe".to_string()], &registry()).unwrap();
    suite.apply_sets(&["size=1,2".to_string()], &registry()).unwrap();
    let cases = suite.expand(&registry()).unwrap();
    let a = run(&cases, 7, &Silent);
    let b = run(&cases[1..], 7, &Silent);
    let c = run(&cases, 8, &Silent);
    assert_eq!(a[1].seed, b[0].seed, "a case's seed does not depend on its position");
    assert_ne!(a[0].seed, a[1].seed);
    assert_ne!(a[0].seed, c[0].seed);
}

/// Process CPU time so far (user + system), from getrusage.
fn process_cpu() -> Duration {
    socklab_harness::metrics::CpuTime::now().total()
}

/// A timed-out case's blocking work stops: CPU use returns to idle right after the
/// timeout. Before, a blocking thread kept a core busy until the process exited.
#[test]
fn a_timed_out_case_stops_its_blocking_work() {
    let mut suite = Suite::from_scenarios(&["probe".to_string()], &registry()).unwrap();
    suite.apply_sets(&["behaviour=spin".to_string()], &registry()).unwrap();
    suite.override_timeout(Duration::from_secs(1));
    let cases = suite.expand(&registry()).unwrap();
    let results = run(&cases, 1, &Silent);
    assert_eq!(results[0].status, CaseStatus::TimedOut);
    assert!(!results[0].error.as_deref().unwrap().contains("still running"), "{:?}", results[0].error);
    let before = process_cpu();
    std::thread::sleep(Duration::from_millis(500));
    let used = process_cpu() - before;
    assert!(used < Duration::from_millis(200), "{used:?} of CPU in 500 ms after the timeout: still spinning");
}

/// Blocking work that ignores the cancel flag is reported, not hidden.
#[test]
fn blocking_work_that_outlives_its_case_is_reported() {
    let mut suite = Suite::from_scenarios(&["probe".to_string()], &registry()).unwrap();
    suite.apply_sets(&["behaviour=stubborn".to_string()], &registry()).unwrap();
    suite.override_timeout(Duration::from_secs(1));
    let cases = suite.expand(&registry()).unwrap();
    let results = run(&cases, 1, &Silent);
    assert_eq!(results[0].status, CaseStatus::TimedOut);
    let error = results[0].error.as_deref().unwrap();
    assert!(error.contains("its blocking work was still running 2 s later"), "{error}");
}

/// Records the order cases finish in.
#[derive(Default)]
struct Order(std::sync::Mutex<Vec<String>>);

impl Progress for Order {
    fn case_finished(&self, _index: usize, result: &CaseResult) {
        self.0.lock().unwrap().push(result.id.clone());
    }
}

/// `--repeat 3` runs A B A B A B (interleaved), merges each case's repeats into one
/// result with every sample kept, and judges thresholds on the medians.
#[test]
fn repeats_are_interleaved_and_merged_with_every_sample() {
    let mut suite = Suite::parse(
        "repeat = 3\n[[run]]\nscenario = \"probe\"\n[run.params]\nsize = [5, 50]\n\
         [[run.expect]]\nmetric = \"size\"\nop = \"<\"\nvalue = 10\n",
        "s",
        &registry(),
    )
    .unwrap();
    let cases = suite.expand(&registry()).unwrap();
    assert!(cases.iter().all(|c| c.repeat == 3));
    let order = Order::default();
    let results = run(&cases, 1, &order);
    let finished = order.0.lock().unwrap().clone();
    assert_eq!(finished[0], "probe[size=5] (repeat 1 of 3)");
    assert_eq!(finished[1], "probe[size=50] (repeat 1 of 3)");
    assert_eq!(finished[2], "probe[size=5] (repeat 2 of 3)");
    assert_eq!(finished.len(), 6);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].repeats, 3);
    assert_eq!(results[0].metric("size").unwrap().samples, [5.0, 5.0, 5.0]);
    assert_eq!(results[0].status, CaseStatus::Passed);
    assert_eq!(results[1].status, CaseStatus::Failed, "threshold judged on the median");
    assert_eq!(results[1].checks.iter().filter(|c| c.name == "expect size < 10").count(), 1);
    suite.override_repeat(1);
    assert!(suite.expand(&registry()).unwrap().iter().all(|c| c.repeat == 1));
}

/// The pipeline `socklab run` uses, from a plan to the report: overrides applied, the
/// cases named kept, the seed given recorded, the scenario's words attached.
#[test]
fn a_plan_runs_to_its_report() {
    let overrides = Overrides { sets: vec!["size=1,2,3".to_string()], ..Overrides::default() };
    let mut plan = RunPlan::scenarios(&["probe"], &overrides, &registry()).unwrap();
    plan.cases = vec!["probe[size=3]".to_string(), "probe[size=1]".to_string()];
    plan.seed = Some(7);
    let registry = registry();
    let prepared = prepare(&plan, &registry).unwrap();
    let ids: Vec<&str> = prepared.cases().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["probe[size=1]", "probe[size=3]"], "the named cases, in run order");
    let output = prepared.execute(&Silent).unwrap();
    let report = &output.report;
    assert_eq!(report.run.seed, 7);
    assert_eq!(report.run.suite, "command line");
    assert_eq!(report.cases.len(), 2);
    assert_eq!(report.cases[1].metric("size").unwrap().value, 3.0);
    assert!(report.all_passed());
    assert_eq!(report.scenarios["probe"].summary, "test scenario");
    assert!(output.artifacts.is_empty());
}

/// A run with an agent refuses a scenario that cannot use one before starting anything
/// (the command here would fail differently if it were started).
#[test]
fn a_plan_with_a_peer_refuses_scenarios_that_take_none() {
    let mut plan = RunPlan::scenarios(&["probe"], &Overrides::default(), &registry()).unwrap();
    plan.peer = Some(PeerCommand { command: "exit 3".to_string(), addr: None });
    let err = execute(&plan, &registry(), &Silent).unwrap_err();
    assert!(matches!(err, RunError::NoRemotePeer { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "probe cannot run its server side through an agent (--peer-cmd); scenarios that can: "
    );
}

/// Configuration errors are typed and keep the harness's own messages.
#[test]
fn a_plan_with_a_bad_set_or_case_is_refused() {
    let overrides = Overrides { sets: vec!["size=200".to_string()], ..Overrides::default() };
    let err = RunPlan::scenarios(&["probe"], &overrides, &registry()).unwrap_err();
    assert!(matches!(err, RunError::Param(_)), "{err:?}");
    let mut plan = RunPlan::scenarios(&["probe"], &Overrides::default(), &registry()).unwrap();
    plan.cases = vec!["probe[size=9]".to_string()];
    let err = execute(&plan, &registry(), &Silent).unwrap_err();
    assert_eq!(err.to_string(), "unknown case `probe[size=9]`; this run's 1 cases: probe");
}
