//! What every scenario test does: run one scenario through the real runner with some
//! `--set` arguments, and read metrics back.

use socklab_harness::report::CaseResult;
use socklab_harness::runner::{RunOptions, Silent, run_cases};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

/// Runs `scenario` with `sets` (`--set` syntax: `read_size=5,1024` is a matrix) and
/// run seed 42; one result per case.
pub fn run(scenario: &str, sets: &[&str]) -> Vec<CaseResult> {
    run_seeded(scenario, sets, 42)
}

/// [`run`] with run seed `seed` (each case's seed derives from it).
#[allow(dead_code)] // only the tests that compare seeds use it
pub fn run_seeded(scenario: &str, sets: &[&str], seed: u64) -> Vec<CaseResult> {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&[scenario.to_string()], &registry).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    suite.apply_sets(&sets, &registry).unwrap();
    let cases = suite.expand(&registry).unwrap();
    run_cases(&registry, &cases, &RunOptions::with_seed(seed), &Silent)
        .unwrap()
        .into_iter()
        .map(|f| f.result)
        .collect()
}

/// The value of metric `name`; panics naming the case when it is missing.
#[allow(dead_code)] // not every test file reads metrics
pub fn metric(case: &CaseResult, name: &str) -> f64 {
    case.metric(name).unwrap_or_else(|| panic!("{}: no metric {name}", case.id)).value
}

/// Every place a stream case's timeline would draw an effect before its cause: a
/// segment (or a retransmission) before a write whose bytes it carried, a read before a
/// segment whose bytes it returned. Empty when the three lanes are in causal order.
#[allow(dead_code)] // only the stream scenarios' tests use it
pub fn drawn_out_of_order(trace: &socklab_harness::report::StreamTrace) -> Vec<String> {
    let mut problems = Vec::new();
    let pairs = [
        ("write", &trace.writes, "segment", &trace.segments, trace.segment_map.as_ref()),
        ("segment", &trace.segments, "read", &trace.reads, trace.read_segment_map.as_ref()),
    ];
    for (cause_name, causes, effect_name, effects, map) in pairs {
        let Some(map) = map else { continue };
        for (e, pieces) in map.targets.iter().enumerate() {
            for piece in pieces {
                let (cause, effect) = (&causes[piece.unit], &effects[e]);
                if effect.at_us < cause.at_us {
                    problems.push(format!(
                        "{effect_name} {e} at {:.1} µs comes {:.1} µs before {cause_name} {} at {:.1} µs, whose bytes it holds",
                        effect.at_us,
                        cause.at_us - effect.at_us,
                        piece.unit,
                        cause.at_us
                    ));
                }
            }
        }
    }
    let mut write_start = 0;
    for (w, write) in trace.writes.iter().enumerate() {
        let write_end = write_start + write.len;
        for (r, repeat) in trace.retransmissions.iter().enumerate() {
            let overlaps = repeat.start < write_end && write_start < repeat.start + repeat.len;
            if overlaps && repeat.at_us < write.at_us {
                problems.push(format!(
                    "retransmission {r} at {:.1} µs comes before write {w} at {:.1} µs, whose bytes it repeats",
                    repeat.at_us, write.at_us
                ));
            }
        }
        write_start = write_end;
    }
    problems
}

/// Runs a one-case rate test (`sets` give a veth link with a rate) up to `ATTEMPTS`
/// times and returns the first case whose `throughput_at_rate` check passed.
///
/// A shaped link can only be slowed by the machine (a 2-core host shared with other
/// builds deschedules the sender or the reader), never sped up: so a run faster than the
/// rate fails at once, and only one below it is tried again. Panics listing every
/// attempt when none passes.
#[allow(dead_code)] // only the rate tests use it
pub fn run_at_rate(scenario: &str, sets: &[&str]) -> CaseResult {
    const ATTEMPTS: usize = 3;
    let mut seen = Vec::new();
    for _ in 0..ATTEMPTS {
        let case = run(scenario, sets).remove(0);
        let check = case
            .checks
            .iter()
            .find(|c| c.name == "throughput_at_rate")
            .unwrap_or_else(|| {
                panic!("{}: no throughput_at_rate check: {:?} {:#?}", case.id, case.error, case.checks)
            })
            .clone();
        let share = metric(&case, "rate_share");
        assert!(share <= 110.0, "{}: faster than the rate, tbf did not shape: {check:?}", case.id);
        if check.passed {
            return case;
        }
        seen.push(check.observed);
    }
    panic!("{scenario} {sets:?}: below the rate in all {ATTEMPTS} attempts: {seen:?}");
}
