//! `recv-buffer` over real loopback TCP: every byte arrives, and read size drives syscalls.

mod common;

use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("recv-buffer", sets)
}

#[test]
fn every_byte_arrives_whatever_the_read_size() {
    let cases = run(&["bytes=262144", "read_size=1,1024,65536"]);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert!(metric(case, "bytes_per_read_max") <= case.params["read_size"].as_f64().unwrap());
    }
    // A 1-byte read makes one syscall per byte: exactly 1 MiB of reads per MiB.
    assert_eq!(metric(&cases[0], "reads_per_mib"), 1_048_576.0);
    assert!(metric(&cases[0], "reads") > metric(&cases[1], "reads"));
    assert!(metric(&cases[1], "reads") >= metric(&cases[2], "reads"));
}

#[test]
fn buffer_sizes_are_reported_as_the_kernel_applied_them() {
    let case = &run(&["bytes=1048576", "rcvbuf=65536", "sndbuf=65536"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:#?}", case.checks);
    let expected = 2.0 * 65536f64.min(metric(case, "rmem_max"));
    assert_eq!(metric(case, "rcvbuf_effective"), expected, "doubled, and locked: no autotuning");
    assert_eq!(metric(case, "sndbuf_effective"), 2.0 * 65536f64.min(metric(case, "wmem_max")));
}

#[test]
fn a_zero_read_size_is_refused_before_running() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["recv-buffer".to_string()], &registry).unwrap();
    let err = suite.apply_sets(&["read_size=0".to_string()], &registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad value `0` for parameter `read_size`: expected integer in 1..=16777216 (bytes)"
    );
}

#[test]
fn over_a_100mbit_veth_link_the_transfer_runs_at_the_rate() {
    use socklab_harness::privilege::test_may_make_namespaces;
    if !test_may_make_namespaces("over_a_100mbit_veth_link_the_transfer_runs_at_the_rate") {
        return;
    }
    // 4 MiB at 100 Mbit/s: about 0.35 s; unshaped, a veth moves it ten times faster.
    let case = &common::run_at_rate("recv-buffer", &["bytes=4194304", "link=veth", "rate=100mbit"]);
    assert_eq!(case.status, CaseStatus::Passed, "{:?} {:#?}", case.error, case.checks);
    let check = case.checks.iter().find(|c| c.name == "throughput_at_rate").expect("the rate is checked");
    assert!(check.passed, "{check:?}");
    let share = metric(case, "rate_share");
    // Payload is at most 1448/1514 = 95.6% of the frames tbf lets through.
    assert!((90.0..=100.0).contains(&share), "payload at {share}% of the rate");
    // The interface's own byte counter, over the same transfer, says the same: frames
    // (headers included) at the rate.
    let wire = metric(case, "wire_mbit_s");
    assert!((90.0..=110.0).contains(&wire), "frames at {wire} Mbit/s");
    assert!(wire > metric(case, "throughput_mbit_s"), "frames carry headers besides the payload");
    assert_eq!(metric(case, "mss"), 1448.0);
    assert_eq!(case.observations.link.as_ref().unwrap().rate_bit_s, Some(100_000_000));
}

#[test]
fn a_delay_on_a_veth_link_holds_the_transfer_back_through_the_relay() {
    use socklab_harness::privilege::test_may_make_namespaces;
    if !test_may_make_namespaces("a_delay_on_a_veth_link_holds_the_transfer_back_through_the_relay") {
        return;
    }
    // 64 KiB crosses an unshaped veth in about a millisecond; the relay holds every byte
    // 100 ms, so the last one cannot reach the server before 100 ms after the connect.
    let case = &run(&["bytes=65536", "link=veth", "delay_ms=100"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:?} {:#?}", case.error, case.checks);
    let duration = metric(case, "duration");
    assert!(duration >= 99.0, "the transfer took {duration} ms, less than the delay");
    let proxy = case.observations.proxy.as_ref().expect("the relay is in the report");
    assert_eq!(proxy.spec, "delay=100ms");
    assert_eq!(proxy.connections.len(), 1, "one connection through the relay");
    assert_eq!(proxy.connections[0].up.bytes_out, 65536, "every byte went through it");
    assert!(case.metric("mss").is_none(), "the client's MSS is the relay's loopback one: left out");
    let link = case.observations.link.as_ref().unwrap();
    assert!(link.detail.contains("100 ms one-way delay each way"), "{}", link.detail);
}

#[test]
fn without_a_rate_there_is_no_rate_check() {
    let case = &run(&["bytes=65536"])[0];
    assert!(case.checks.iter().all(|c| c.name != "throughput_at_rate"));
    assert!(case.metric("rate_share").is_none() && case.observations.link.is_none());
}

#[test]
fn every_case_says_how_long_its_transfer_measured() {
    let case = &run(&["bytes=1048576"])[0];
    let duration = case.metric("duration").expect("a duration metric");
    assert!(duration.key, "a key metric, so summary rows show it");
    assert!(duration.value > 0.0);
    let info = registry().get("recv-buffer").unwrap().info();
    let table = info.table.expect("a sweep table");
    assert!(table.cells.iter().any(|c| c == "duration"), "sweep cells show it: {:?}", table.cells);
}

/// A 4 KiB send buffer leaves one segment in flight, and the receiver delays the ACK of a
/// lone segment (up to 40 ms): the transfer crawls. With TCP_QUICKACK on the reader the
/// same small buffer is fast, so the window was not the limit. Wide margin: 10x. (4 MiB:
/// a new connection acknowledges its first segments at once, quick-ACK mode, so a short
/// transfer may finish before delayed ACKs start. About one run in ten the kernel stays in
/// quick-ACK mode for the whole transfer, so the slow leg gets three tries: the claim is
/// that delayed ACKs can cost 10x, not that they always do.)
#[test]
fn a_small_send_buffer_waits_on_delayed_acks_not_on_the_window() {
    let fast = &run(&["bytes=4194304", "sndbuf=4096", "quickack=true"])[0];
    assert_eq!(fast.status, CaseStatus::Passed);
    let fast = metric(fast, "throughput_mib_s");
    let mut slow_tries = Vec::new();
    for _ in 0..3 {
        let slow = &run(&["bytes=4194304", "sndbuf=4096", "quickack=false"])[0];
        assert_eq!(slow.status, CaseStatus::Passed);
        slow_tries.push(metric(slow, "throughput_mib_s"));
        if fast > 10.0 * slow_tries[slow_tries.len() - 1] {
            return;
        }
    }
    panic!("quickack {fast} MiB/s; without it {slow_tries:?} MiB/s, never 10x slower");
}
