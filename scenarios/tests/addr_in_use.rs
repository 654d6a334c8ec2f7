//! `addr-in-use` over real loopback TCP: TIME_WAIT holds the port against a plain bind.

mod common;

use socklab_harness::report::CaseStatus;

use common::metric;

#[test]
fn time_wait_refuses_a_plain_bind_and_either_option_allows_it() {
    let cases = common::run("addr-in-use", &["reuseaddr=false,true", "reuseport=false,true", "wait_ms=300"]);
    assert_eq!(cases.len(), 4);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        let left = metric(case, "time_wait_left");
        // Just closed: TIME_WAIT (60 s) has most of its time left.
        assert!(left > 50.0 && left <= 60.0, "{}: {left} s left", case.id);
        let plain = case.params["reuseaddr"] == false && case.params["reuseport"] == false;
        assert_eq!(metric(case, "rebind_ok"), if plain { 0.0 } else { 1.0 }, "{}", case.id);
        if plain {
            assert!(metric(case, "plain_bind_wait") >= 300.0);
            assert!(case.metric("second_listener_ok").is_none());
        } else if case.params["reuseport"] == true {
            assert_eq!(metric(case, "accepted_first") + metric(case, "accepted_second"), 20.0);
        } else {
            assert_eq!(metric(case, "second_listener_ok"), 0.0, "SO_REUSEADDR: still one listener");
        }
    }
}
