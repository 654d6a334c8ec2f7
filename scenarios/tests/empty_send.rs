//! `empty-send` over real loopback sockets: nothing on TCP, an empty datagram on UDP.

mod common;

use socklab_harness::privilege::{Capability, test_may_use};
use socklab_harness::report::CaseStatus;

use common::metric;

#[test]
fn an_empty_tcp_send_sends_nothing_and_an_empty_datagram_arrives() {
    let case = &common::run("empty-send", &["empty_sends=4", "wait_ms=50"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    assert_eq!(metric(case, "tcp_send_returned"), 0.0);
    assert_eq!(metric(case, "tcp_bytes_before_marker"), 0.0);
    assert!(metric(case, "tcp_recv_blocked") >= 50.0);
    assert_eq!(metric(case, "udp_zero_length_reads"), 4.0);
    let trace = case.observations.stream.as_ref().unwrap();
    assert_eq!(trace.writes.iter().filter(|w| w.len == 0).count(), 4);
    if test_may_use(Capability::NetRaw, "an_empty_tcp_send_sends_nothing (capture part)") {
        assert_eq!(metric(case, "tcp_empty_send_packets"), 0.0);
        assert_eq!(metric(case, "udp_empty_on_wire"), 4.0);
        assert_eq!(trace.segments.len(), 1, "only the marker's segment");
    }
}
