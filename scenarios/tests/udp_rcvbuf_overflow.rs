//! `udp-rcvbuf-overflow` over real loopback UDP: drops counted three ways, and fewer with
//! a bigger buffer.

mod common;

use socklab_harness::privilege::test_may_make_namespaces;
use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("udp-rcvbuf-overflow", sets)
}

#[test]
fn a_small_buffer_drops_and_the_socket_counters_agree_anywhere() {
    let case = &run(&["rcvbuf=4096", "netns=never"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    let gaps = metric(case, "drops_seq_gaps");
    assert!(gaps > 0.0, "a 4 KiB buffer cannot hold 1000 datagrams of 1 KiB");
    assert_eq!(metric(case, "drops_rxq_ovfl"), gaps);
    assert!(metric(case, "drops_snmp") >= gaps, "the system-wide counter includes ours");
    assert_eq!(metric(case, "private_netns"), 0.0);
    let agree = case.checks.iter().find(|c| c.name == "counts_agree").unwrap();
    assert!(agree.observed.contains("system-wide, approximate"), "{}", agree.observed);
}

#[test]
fn in_a_private_namespace_all_three_counts_are_equal() {
    if !test_may_make_namespaces("in_a_private_namespace_all_three_counts_are_equal") {
        return;
    }
    let case = &run(&["rcvbuf=4096"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert_eq!(metric(case, "private_netns"), 1.0);
    let gaps = metric(case, "drops_seq_gaps");
    assert!(gaps > 0.0);
    assert_eq!(metric(case, "drops_rxq_ovfl"), gaps);
    assert_eq!(metric(case, "drops_snmp"), gaps);
}

#[test]
fn drops_fall_as_the_buffer_grows() {
    let cases = run(&["rcvbuf=4096,65536,1048576"]);
    let drops: Vec<f64> = cases.iter().map(|c| metric(c, "drops_seq_gaps")).collect();
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert!(
            metric(case, "rcvbuf_effective")
                >= metric(case, "rcvbuf_requested").min(metric(case, "rmem_max"))
        );
    }
    assert!(
        drops[0] > 0.0 && drops[0] >= drops[1] && drops[1] >= drops[2] && drops[0] > drops[2],
        "{drops:?}"
    );
}

#[test]
fn impossible_parameters_are_refused_before_running() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["udp-rcvbuf-overflow".to_string()], &registry).unwrap();
    let err = suite.apply_sets(&["size=70000".to_string()], &registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad value `70000` for parameter `size`: expected integer in 8..=65507 (bytes)"
    );
    let err = suite.apply_sets(&["pause_ms=-1".to_string()], &registry).unwrap_err();
    assert!(err.to_string().starts_with("bad value `-1` for parameter `pause_ms`"), "{err}");
}
