//! `eof-handling` over real loopback TCP: what each server does once `recv()` returns 0.

mod common;

use socklab_harness::report::{CaseResult, CaseStatus};

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("eof-handling", sets)
}

fn param<'a>(case: &'a CaseResult, name: &str) -> &'a str {
    case.params[name].as_str().unwrap()
}

#[test]
fn every_server_with_both_client_endings_behaves_as_its_doc_says() {
    let cases = run(&["server=correct,ignores-eof,half-close-aware", "client=close,shut-wr", "watch_ms=200"]);
    assert_eq!(cases.len(), 6);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?} {:?}", case.id, case.checks, case.error);
        let (server, client) = (param(case, "server"), param(case, "client"));
        let runnable = metric(case, "runnable_after_eof_pct");
        let empty = metric(case, "empty_reads");
        if server == "ignores-eof" {
            // Physical, wide: a thread that never blocks is runnable all the time; it
            // made far more than a thousand empty reads in 200 ms.
            assert!(runnable > 50.0, "{}: runnable {runnable}%", case.id);
            assert!(empty > 1000.0, "{}: {empty} empty reads", case.id);
            assert_eq!(metric(case, "closed_on_its_own"), 0.0);
        } else {
            assert!(metric(case, "server_cpu_after_eof_pct") < 5.0, "{}", case.id);
            assert_eq!(empty, 1.0, "{}: one read of 0, then it stopped reading", case.id);
            assert_eq!(metric(case, "closed_on_its_own"), 1.0);
        }
        if client == "shut-wr" {
            let replies = metric(case, "replies_after_shut_wr");
            match server {
                "correct" => assert!(replies < 5.0 && metric(case, "replies_dropped") > 0.0, "{}", case.id),
                _ => assert_eq!(replies, 5.0, "{}", case.id),
            }
        } else {
            assert_eq!(metric(case, "replies_received"), 5.0, "{}", case.id);
        }
    }
}

#[test]
fn the_trace_ends_with_the_read_of_zero_bytes() {
    let case = &run(&["watch_ms=50"])[0];
    let trace = case.observations.stream.as_ref().expect("a stream trace");
    assert_eq!(trace.writes.len(), 5);
    let last = trace.reads.last().expect("reads");
    assert_eq!(last.len, 0, "the EOF read closes the read lane");
    assert_eq!(
        trace.reads.iter().map(|r| r.len).sum::<usize>(),
        trace.writes.iter().map(|w| w.len).sum::<usize>()
    );
    assert!(common::drawn_out_of_order(trace).is_empty(), "{:?}", common::drawn_out_of_order(trace));
}
