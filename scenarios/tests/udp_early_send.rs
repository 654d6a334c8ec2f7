//! `udp-early-send` over real loopback UDP: early datagrams are lost, mitigations recover.

mod common;

use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("udp-early-send", sets)
}

fn check<'a>(case: &'a CaseResult, name: &str) -> &'a socklab_harness::check::Check {
    case.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{}: no check {name}", case.id))
}

#[test]
fn every_datagram_before_the_bind_is_lost_and_every_one_after_arrives() {
    for case in run(&["receiver_delay_ms=0,10,50"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(metric(&case, "lost_before_bind"), 100.0);
        assert_eq!(metric(&case, "lost_after_bind"), 0.0);
        assert_eq!(metric(&case, "delivered"), 100.0);
        assert_eq!(metric(&case, "first_delivered_seq"), 100.0);
        assert_eq!(metric(&case, "send_errors"), 0.0, "sendto never hears of the ICMP error");
        assert!(check(&case, "pre_bind_lost").passed && check(&case, "post_bind_delivered").passed);
    }
}

#[test]
fn a_connected_sender_sees_econnrefused() {
    let case = &run(&["socket=connected"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert!(metric(case, "send_errors_econnrefused") >= 1.0);
    assert!(check(case, "econnrefused_seen").observed.contains("ECONNREFUSED"));
    assert_eq!(metric(case, "lost_before_bind"), 100.0);
}

#[test]
fn both_mitigations_lose_nothing_on_either_socket() {
    for case in run(&["mitigation=ready-handshake,retransmit", "socket=unconnected,connected"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(metric(&case, "delivered"), 200.0, "{}", case.id);
        assert_eq!(metric(&case, "lost_before_bind") + metric(&case, "lost_after_bind"), 0.0);
        assert!(check(&case, "none_lost").passed);
    }
}

#[test]
fn retransmission_resends_the_early_datagrams() {
    let case = &run(&["mitigation=retransmit", "receiver_delay_ms=30"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert!(metric(case, "retransmits") >= 100.0, "every early datagram is resent at least once");
    assert_eq!(metric(case, "first_delivered_seq"), 0.0);
}

#[test]
fn sending_nothing_is_refused_before_running() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["udp-early-send".to_string()], &registry).unwrap();
    suite.apply_sets(&["before=0".to_string(), "after=0".to_string()], &registry).unwrap();
    let err = suite.expand(&registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameters for `udp-early-send`: before + after is 0; send at least one datagram"
    );
    let err = suite.apply_sets(&["mitigation=pray".to_string()], &registry).unwrap_err();
    assert!(err.to_string().contains("one of none, ready-handshake, retransmit"), "{err}");
}
