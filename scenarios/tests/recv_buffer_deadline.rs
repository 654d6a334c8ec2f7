//! A `recv-buffer` transfer that cannot finish stops at its case's time limit instead of
//! running on in the background (issue 10). Its own test binary, so no other test's
//! transfer threads are around when it counts them.

use std::time::{Duration, Instant};

use socklab_harness::report::CaseStatus;
use socklab_harness::runner::{RunOptions, Silent, run_cases};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

/// Threads of this process whose name starts with `prefix` (names are cut at 15 bytes).
fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn a_transfer_past_its_time_limit_stops() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["recv-buffer".to_string()], &registry).unwrap();
    // 4 GiB read one byte at a time: hours at a few MiB/s, so it cannot finish in 1 s.
    suite.apply_sets(&["bytes=4294967296".to_string(), "read_size=1".to_string()], &registry).unwrap();
    suite.override_timeout(Duration::from_secs(1));
    let cases = suite.expand(&registry).unwrap();
    let results: Vec<_> = run_cases(&registry, &cases, &RunOptions::with_seed(42), &Silent)
        .unwrap()
        .into_iter()
        .map(|f| f.result)
        .collect();
    assert_eq!(results[0].status, CaseStatus::TimedOut, "{:#?}", results[0]);
    // The reader thread must notice the deadline within a few seconds; before, it read on.
    let until = Instant::now() + Duration::from_secs(10);
    while threads_named("socklab-recv") > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(threads_named("socklab-recv"), 0, "the transfer thread still runs after its case timed out");
}
