//! `nagle-delayed-ack` over real loopback TCP: the stall and its four fixes, with wide
//! margins (the stall is the ~40 ms delayed-ACK timer; a fixed round trip on loopback
//! takes tens of microseconds).

mod common;

use socklab_harness::privilege::{Capability, test_may_use};
use socklab_harness::report::{CaptureStatus, CaseResult, CaseStatus};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::{drawn_out_of_order, metric};

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("nagle-delayed-ack", sets)
}

#[test]
fn the_default_stalls_and_every_fix_does_not() {
    let cases = run(&["variant=default,nodelay,writev,cork,quickack", "round_trips=8"]);
    assert_eq!(cases.len(), 5);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        let p50 = metric(case, "rtt_p50");
        if case.id.contains("variant=default") {
            assert!(p50 >= 30.0, "{}: p50 {p50} ms", case.id);
        } else {
            assert!(p50 < 5.0, "{}: p50 {p50} ms", case.id);
        }
        let latency = case.observations.latency.as_ref().unwrap();
        assert_eq!(latency.summary.count, 8);
        assert!(!latency.histogram.is_empty());
    }
}

#[test]
fn the_trace_says_it_holds_only_the_first_requests() {
    let cases = run(&["variant=nodelay", "round_trips=2,20"]);
    let (few, many) =
        (cases[0].observations.stream.as_ref().unwrap(), cases[1].observations.stream.as_ref().unwrap());
    assert_eq!(few.excerpt, None, "2 requests are all traced");
    assert_eq!(few.writes.len(), 4);
    let excerpt = many.excerpt.as_ref().expect("20 requests, 3 traced");
    assert_eq!(excerpt.describe(), "first 3 of 20 requests");
    assert_eq!(many.writes.len(), 6, "header and body of each traced request");
}

#[test]
fn the_capture_shows_the_gap_before_the_second_segment() {
    if !test_may_use(Capability::NetRaw, "the_capture_shows_the_gap_before_the_second_segment") {
        return;
    }
    let cases = run(&["variant=default,writev,nodelay,cork,quickack", "round_trips=5"]);
    let (default, writev, nodelay) = (&cases[0], &cases[1], &cases[2]);
    for case in &cases {
        let capture = case.observations.capture.as_ref().unwrap();
        assert_eq!(capture.status, CaptureStatus::Captured, "{}", capture.detail);
        let stream = case.observations.stream.as_ref().unwrap();
        assert!(!stream.segments.is_empty() && stream.segment_map.is_some());
        let problems = drawn_out_of_order(stream);
        assert!(problems.is_empty(), "{}: {}", case.id, problems.join("\n"));
    }
    // Default: header and body leave as two segments ~40 ms apart, every request.
    assert!(metric(default, "second_segment_gap_p50") >= 30.0);
    assert_eq!(metric(default, "stalled_requests"), 5.0);
    assert_eq!(metric(default, "segments_per_request"), 2.0);
    // writev: one segment per request, no gap. nodelay: two segments, no gap.
    assert_eq!(metric(writev, "segments_per_request"), 1.0);
    assert_eq!(metric(writev, "stalled_requests"), 0.0);
    assert!(metric(nodelay, "second_segment_gap_p50") < 5.0);
    assert_eq!(metric(nodelay, "stalled_requests"), 0.0);
}

#[test]
fn an_unknown_variant_lists_the_valid_ones() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["nagle-delayed-ack".to_string()], &registry).unwrap();
    let err = suite.apply_sets(&["variant=fast".to_string()], &registry).unwrap_err().to_string();
    assert!(err.contains("default, nodelay, writev, cork, quickack"), "{err}");
}
