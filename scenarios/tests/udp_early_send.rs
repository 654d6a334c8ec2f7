//! `udp-early-send` over real loopback UDP: a sender at a fixed rate loses what it sends
//! before the receiver binds, so the loss follows the delay; mitigations recover.

mod common;

use std::collections::BTreeSet;

use socklab_harness::privilege::test_may_make_namespaces;
use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::scenario::Registry;
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("udp-early-send", sets)
}

fn check<'a>(case: &'a CaseResult, name: &str) -> &'a socklab_harness::check::Check {
    case.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{}: no check {name}", case.id))
}

/// The test: at 1 datagram per ms, a receiver 0, 20 and 100 ms late loses about
/// 0, 20 and 100 datagrams. Margins are wide: only the order and the rough size count.
#[test]
fn loss_grows_with_the_receiver_delay_at_a_fixed_rate() {
    let cases = run(&["count=200", "send_interval_us=1000", "receiver_delay_ms=0,20,100", "netns=never"]);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
    }
    let lost: Vec<f64> = cases.iter().map(|c| metric(c, "lost")).collect();
    assert!(lost[0] < lost[1] && lost[1] < lost[2], "loss does not grow with the delay: {lost:?}");
    // A receiver "bound at once" still loses what goes out while its thread starts: a
    // few datagrams on a loaded machine.
    assert!(lost[0] < 20.0, "a receiver bound at once loses only a few: {lost:?}");
    assert!((10.0..=60.0).contains(&lost[1]), "20 ms at 1/ms loses about 20: {lost:?}");
    assert!((60.0..=150.0).contains(&lost[2]), "100 ms at 1/ms loses about 100: {lost:?}");
    assert!(lost[2] - lost[1] >= 40.0, "80 ms more at 1/ms loses about 80 more: {lost:?}");
    for case in &cases {
        // The first datagrams are the lost ones, all of them, and nothing after.
        assert_eq!(metric(case, "first_delivered_seq"), metric(case, "lost"), "{}", case.id);
        assert_eq!(metric(case, "lost_after_bind"), 0.0, "{}", case.id);
    }
}

#[test]
fn every_datagram_before_the_bind_is_lost_and_every_one_after_arrives() {
    for case in run(&["receiver_delay_ms=10,50", "netns=never"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert!(check(&case, "pre_bind_lost").passed && check(&case, "post_bind_delivered").passed);
        let lost = metric(&case, "lost");
        assert!(lost >= 1.0, "{}", case.id);
        assert_eq!(metric(&case, "lost_before_bind"), metric(&case, "sent_before_bind"));
        assert_eq!(metric(&case, "delivered"), 100.0 - lost);
        assert!(metric(&case, "last_lost_sent_at") < metric(&case, "first_delivered_sent_at"));
        assert_eq!(metric(&case, "send_errors"), 0.0, "sendto never hears of the ICMP error");
        assert!(check(&case, "loss_is_silent").passed);
    }
}

#[test]
fn a_connected_sender_sees_econnrefused() {
    let case = &run(&["socket=connected", "receiver_delay_ms=20", "netns=never"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert!(metric(case, "send_errors_econnrefused") >= 1.0);
    assert!(check(case, "econnrefused_seen").observed.contains("ECONNREFUSED"));
    // About every other early send fails instead of going out; either way it is lost.
    assert!(metric(case, "never_sent") >= 1.0);
    assert!(metric(case, "lost") >= metric(case, "lost_before_bind") + metric(case, "never_sent"));
}

#[test]
fn both_mitigations_lose_nothing_on_either_socket() {
    for case in run(&[
        "mitigation=ready-handshake,retransmit",
        "socket=unconnected,connected",
        "receiver_delay_ms=20",
        "netns=never",
    ]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(metric(&case, "delivered"), 100.0, "{}", case.id);
        assert_eq!(metric(&case, "lost"), 0.0);
        assert!(check(&case, "none_lost").passed);
    }
}

#[test]
fn the_handshake_starts_the_schedule_at_ready_so_nothing_is_sent_early() {
    let case = &run(&["mitigation=ready-handshake", "receiver_delay_ms=30", "netns=never"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert_eq!(metric(case, "sent_before_bind"), 0.0);
    assert_eq!(metric(case, "scheduled_before_bind"), 0.0);
    assert!(metric(case, "first_delivered_sent_at") > 0.0);
}

#[test]
fn retransmission_resends_the_early_datagrams() {
    let case = &run(&["mitigation=retransmit", "receiver_delay_ms=30", "netns=never"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    let early = metric(case, "sent_before_bind");
    assert!(early >= 10.0, "about 30 datagrams go out in the first 30 ms: {early}");
    assert!(metric(case, "retransmits") >= early, "every early datagram is resent at least once");
    assert_eq!(metric(case, "first_delivered_seq"), 0.0);
}

/// The independent count: in a namespace of its own, the kernel's `Udp: NoPorts` counts
/// exactly the datagrams that found no socket, which must be the ones the receiver lost.
#[test]
fn in_a_private_namespace_the_kernel_counts_the_same_loss() {
    if !test_may_make_namespaces("in_a_private_namespace_the_kernel_counts_the_same_loss") {
        return;
    }
    for case in run(&["receiver_delay_ms=30", "socket=unconnected,connected"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(metric(&case, "private_netns"), 1.0);
        assert!(check(&case, "kernel_agrees").passed);
        let no_ports = metric(&case, "no_ports_snmp");
        assert!(no_ports >= 1.0, "{}", case.id);
        // Every datagram that left was either read or counted; the rest never left.
        assert_eq!(no_ports, metric(&case, "lost") - metric(&case, "never_sent"), "{}", case.id);
    }
}

/// The sequence numbers the relay dropped, from its record in the report. The sender
/// sends 0, 1, 2, ... in order and nothing twice (ready-handshake, no retransmission),
/// so the relay's datagram index `i` is sequence number `i`.
fn relay_dropped(case: &CaseResult) -> BTreeSet<u64> {
    let proxy = case.observations.proxy.as_ref().unwrap_or_else(|| panic!("{}: no relay record", case.id));
    assert_eq!(proxy.connections.len(), 1, "{}: one flow, sender to receiver", case.id);
    let dropped = &proxy.connections[0].up.dropped;
    assert_eq!(dropped.left_out(), 0, "{}: every drop listed", case.id);
    dropped.first.iter().copied().collect()
}

/// The test: under `loss=0.1` a relay loses 10% ± 3% of 10,000 datagrams; the
/// sequence numbers show which; the same seed loses the same ones, another seed others.
#[test]
fn a_relay_with_loss_loses_a_tenth_and_the_seed_says_which() {
    let sets = [
        "impair=loss=0.1",
        "count=10000",
        // 5,000 a second: the receiver's default buffer holds some 50 ms of them.
        "send_interval_us=200",
        "mitigation=ready-handshake",
        "netns=never",
    ];
    let once = |seed: u64| {
        let case = common::run_seeded("udp-early-send", &sets, seed).remove(0);
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        case
    };
    let (first, again, other) = (once(7), once(7), once(8));
    for case in [&first, &again, &other] {
        let lost = metric(case, "lost");
        assert!((700.0..=1300.0).contains(&lost), "{}: 10% ± 3% of 10,000, got {lost}", case.id);
        // Which ones: the receiver missed `lost` sequence numbers; the relay's record names
        // as many, and none of those arrived (relay_loss_attributed), so they are the same.
        assert_eq!(metric(case, "relay_dropped"), lost, "{}", case.id);
        assert_eq!(metric(case, "lost_relay"), lost, "{}", case.id);
        assert_eq!(metric(case, "lost_kernel"), 0.0, "{}: the handshake leaves the kernel nothing", case.id);
        assert!(check(case, "relay_loss_attributed").passed, "{:#?}", case.checks);
        assert_eq!(relay_dropped(case).len() as f64, lost, "{}", case.id);
    }
    assert_eq!(relay_dropped(&first), relay_dropped(&again), "the same seed loses the same datagrams");
    let (a, b) = (relay_dropped(&first), relay_dropped(&other));
    let shared = a.intersection(&b).count();
    // Independent 10% draws share about 1% of 10,000 (100); the same draw would share all.
    assert!(shared < a.len() / 2, "seeds 7 and 8 lose different datagrams: {shared} of {} shared", a.len());
    println!(
        "loss=0.1 over 10,000: seed 7 lost {} (twice the same set), seed 8 lost {}, {shared} in common",
        a.len(),
        b.len()
    );
}

/// The error a udp-early-send case with `sets` is refused with before it runs.
fn refused(registry: &Registry, sets: &[&str]) -> String {
    let mut suite = Suite::from_scenarios(&["udp-early-send".to_string()], registry).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    suite.apply_sets(&sets, registry).unwrap();
    suite.expand(registry).unwrap_err().to_string()
}

#[test]
fn impossible_schedules_are_refused_before_running() {
    let registry = registry();
    let refused = |sets: &[&str]| refused(&registry, sets);
    assert_eq!(
        refused(&["count=10", "receiver_delay_ms=50"]),
        "invalid parameters for `udp-early-send`: the last send is scheduled at 9 ms, but the receiver \
         binds at 50 ms: the schedule must go on at least 10 ms past the bind (raise count or \
         send_interval_us)"
    );
    assert_eq!(
        refused(&["count=10000", "send_interval_us=2000"]),
        "invalid parameters for `udp-early-send`: count × send_interval_us is 20000 ms; the schedule \
         may last at most 10000 ms"
    );
    let mut suite = Suite::from_scenarios(&["udp-early-send".to_string()], &registry).unwrap();
    let err = suite.apply_sets(&["count=0".to_string()], &registry).unwrap_err();
    assert!(err.to_string().contains("expected integer in 1..=10000"), "{err}");
    let err = suite.apply_sets(&["mitigation=pray".to_string()], &registry).unwrap_err();
    assert!(err.to_string().contains("one of none, ready-handshake, retransmit"), "{err}");
}

#[test]
fn impairments_a_udp_relay_cannot_apply_are_refused_with_the_valid_ones() {
    let registry = registry();
    let refused = |sets: &[&str]| refused(&registry, sets);
    assert_eq!(
        refused(&["impair=split=3"]),
        "invalid parameters for `udp-early-send`: impair: split applies to TCP only; datagrams keep \
         their boundaries; use loss, duplicate, reorder, delay or truncate"
    );
    assert_eq!(
        refused(&["impair=loss=1.5"]),
        "invalid parameters for `udp-early-send`: impair: bad loss `1.5`: give a probability in 0..=1 \
         (or 0%..=100%), e.g. 0.1"
    );
    assert_eq!(
        refused(&["impair=loss=0.1", "socket=connected"]),
        "invalid parameters for `udp-early-send`: socket=connected does not apply through impair: the \
         sender's peer is then the relay, which is always bound, so no ICMP error comes back to become \
         ECONNREFUSED; use socket=unconnected"
    );
}
