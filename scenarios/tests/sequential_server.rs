//! `sequential-server` over real loopback TCP: clients queue behind a one-at-a-time
//! server, not behind threaded or tokio ones; a full accept queue drops SYNs.

mod common;

use socklab_harness::privilege::test_may_make_namespaces;
use socklab_harness::report::{CaseResult, CaseStatus};

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("sequential-server", sets)
}

#[test]
fn the_sequential_server_makes_a_staircase_the_others_do_not() {
    let cases = run(&["flavour=sequential,threaded,tokio", "clients=4", "hold_ms=100"]);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        let series = &case.observations.series[0];
        assert_eq!(series.name, "time_in_queue");
        assert_eq!(series.values.len(), 4);
        let flavour = case.params["flavour"].as_str().unwrap();
        if flavour == "sequential" {
            // The last client waited for three whole sessions of 100 ms: physically at
            // least 300 ms.
            assert!(series.values[3] >= 285.0, "{}: {:?}", case.id, series.values);
        } else {
            // Nobody waits for another's session (100 ms); a generous bound for a busy machine.
            assert!(series.values.iter().all(|&q| q < 50.0), "{}: {:?}", case.id, series.values);
        }
    }
}

#[test]
fn a_full_accept_queue_drops_syns_and_the_kernel_counts_them() {
    if !test_may_make_namespaces("a_full_accept_queue_drops_syns_and_the_kernel_counts_them") {
        return;
    }
    let case = &run(&["backlog=0", "clients=5", "hold_ms=50"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert_eq!(metric(case, "private_netns"), 1.0);
    let waited = metric(case, "connects_waited");
    // Five SYNs at once against a queue of one: at least one is dropped and sent again
    // a second later.
    assert!(waited >= 1.0, "no connect waited");
    assert!(metric(case, "listen_drops") >= waited);
    assert!(metric(case, "listen_overflows") >= 1.0);
    assert!(metric(case, "connect_max") >= 900.0, "the SYN is sent again after about 1 s");
}
