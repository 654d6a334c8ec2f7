//! `udp-truncation` over real loopback UDP: truncation, the lost rest, the size limit.

mod common;

use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("udp-truncation", sets)
}

#[test]
fn a_small_buffer_truncates_and_the_rest_is_gone() {
    let case = &run(&[])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert_eq!(metric(case, "truncated_reads"), 3.0);
    assert_eq!(metric(case, "bytes_read"), 300.0);
    assert_eq!(metric(case, "bytes_discarded"), 2700.0);
    assert_eq!(metric(case, "reported_len"), 1000.0);
    assert_eq!(metric(case, "left_queued"), 0.0);
    assert_eq!(metric(case, "tcp_rest_bytes"), 900.0);
    let names: Vec<&str> = case.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["truncated_to_read_size", "next_read_is_next_datagram", "ipv4_size_limit", "tcp_continues"]
    );
}

#[test]
fn the_ipv4_limit_is_65507_bytes() {
    let case = &run(&["size=65507", "read_size=65507", "count=1"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert_eq!(metric(case, "truncated_reads"), 0.0);
    assert_eq!(metric(case, "max_payload_sent"), 65507.0);
    let limit = case.checks.iter().find(|c| c.name == "ipv4_size_limit").unwrap();
    assert!(limit.observed.contains("failed with EMSGSIZE"), "{}", limit.observed);
}

#[test]
fn a_buffer_as_large_as_the_datagram_gets_it_whole() {
    for case in run(&["size=1,512", "read_size=512,2048"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(metric(&case, "bytes_discarded"), 0.0);
    }
}

#[test]
fn impossible_sizes_are_refused_before_running() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["udp-truncation".to_string()], &registry).unwrap();
    for (set, expected) in [
        ("read_size=0", "bad value `0` for parameter `read_size`: expected integer in 1..=65507 (bytes)"),
        ("size=65508", "bad value `65508` for parameter `size`: expected integer in 1..=65507 (bytes)"),
    ] {
        let err = suite.apply_sets(&[set.to_string()], &registry).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn over_a_veth_link_a_datagram_over_the_mtu_leaves_in_fragments_and_is_cut_the_same() {
    use socklab_harness::privilege::test_may_make_namespaces;
    let name = "over_a_veth_link_a_datagram_over_the_mtu_leaves_in_fragments_and_is_cut_the_same";
    if !test_may_make_namespaces(name) {
        return;
    }
    let cases = run(&["link=veth", "size=1000,4000", "read_size=100", "mtu=1500,1280"]);
    // 4000 bytes and an 8-byte UDP header in IP fragments of MTU - 20 bytes (a multiple of
    // 8): 3 at MTU 1500 (1480 each), 4 at MTU 1280 (1256); 1000 bytes fit either whole.
    let expected = [(1000, 1500, 0.0), (1000, 1280, 0.0), (4000, 1500, 9.0), (4000, 1280, 12.0)];
    for (case, (size, mtu, fragments)) in cases.iter().zip(expected) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?} {:#?}", case.id, case.error, case.checks);
        assert!(
            case.id.contains(&format!("size={size}")) && case.id.contains(&format!("mtu={mtu}")),
            "{}",
            case.id
        );
        assert_eq!(metric(case, "fragments_sent"), fragments, "{}", case.id);
        assert_eq!(metric(case, "truncated_reads"), 3.0, "reassembled, then cut like any datagram");
    }
}
