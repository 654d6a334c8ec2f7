//! `tcp-coalescing` over real loopback TCP.

mod common;

use socklab_harness::privilege::{Capability, test_may_make_namespaces, test_may_use};
use socklab_harness::report::{CaptureStatus, CaseResult, CaseStatus, Direction};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::{drawn_out_of_order, metric};

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("tcp-coalescing", sets)
}

fn reads(case: &CaseResult) -> Vec<String> {
    case.observations.stream.as_ref().unwrap().reads.iter().map(|r| r.text.clone()).collect()
}

#[test]
fn the_classic_case_reads_back_as_read_size_chunks() {
    let cases = run(&[]);
    let case = &cases[0];
    assert_eq!(case.status, CaseStatus::Passed, "{case:#?}");
    assert_eq!(reads(case), ["12345", "67abc", "dehhh", "hh"]);
    assert_eq!(metric(case, "writes"), 3.0);
    assert_eq!(metric(case, "reads"), 4.0);
    assert_eq!(metric(case, "sticky_reads"), 2.0);
    assert_eq!(metric(case, "split_messages"), 3.0);
    assert_eq!(metric(case, "queued_at_first_read"), 17.0);
    let map = &case.observations.stream.as_ref().unwrap().boundary_map;
    assert_eq!(map.describe(1, "msg"), "msg0[5..7] + msg1[0..3]");
    assert!(case.checks.iter().all(|c| c.passed));
    assert_eq!(case.checks.len(), 2);
}

#[test]
fn nagle_and_warmth_do_not_change_a_late_reader_s_chunks() {
    for case in run(&["nodelay=false,true", "warm=false,true"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(reads(&case), ["12345", "67abc", "dehhh", "hh"], "{}", case.id);
    }
}

#[test]
fn a_large_read_size_returns_everything_in_one_sticky_read() {
    let case = &run(&["read_size=1024"])[0];
    assert_eq!(reads(case), ["1234567abcdehhhhh"]);
    assert_eq!(metric(case, "sticky_reads"), 1.0);
    assert_eq!(metric(case, "split_messages"), 0.0);
}

#[test]
fn reading_as_data_arrives_keeps_the_stream_intact() {
    let case = &run(&["read_delay_ms=0", "read_size=3"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{case:#?}");
    assert_eq!(reads(case).concat(), "1234567abcdehhhhh");
    assert!(reads(case).iter().all(|r| r.len() <= 3));
    assert_eq!(case.checks.len(), 1, "no chunking check when reading as data arrives");
}

#[test]
fn binary_messages_are_shown_escaped() {
    let case = &run(&["messages=a\tb,c", "read_size=2"])[0];
    assert_eq!(reads(case), ["a\\t", "bc"]);
}

#[test]
fn empty_messages_are_refused_before_running() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["tcp-coalescing".to_string()], &registry).unwrap();
    suite.apply_sets(&["messages=,".to_string()], &registry).unwrap();
    let err = suite.expand(&registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameters for `tcp-coalescing`: messages are all empty; give at least one non-empty message"
    );
}

#[test]
fn built_in_suites_parse_and_expand() {
    let registry = registry();
    let default = Suite::parse(socklab_scenarios::DEFAULT_SUITE, "default", &registry).unwrap();
    let tcp: Vec<_> =
        default.expand(&registry).unwrap().into_iter().filter(|c| c.scenario == "tcp-coalescing").collect();
    // The 2x2x2 loopback matrix, and one 4000-byte write over veth at MTU 1500 and 1280.
    assert_eq!(tcp.len(), 10);
    assert_eq!(tcp.iter().filter(|c| c.params["link"] == "veth").count(), 2);
    let ci = Suite::parse(socklab_scenarios::CI_SUITE, "ci", &registry).unwrap();
    assert!(!ci.expand(&registry).unwrap().is_empty());
}

#[test]
fn the_wire_layer_joins_writes_segments_and_reads() {
    if !test_may_use(Capability::NetRaw, "the_wire_layer_joins_writes_segments_and_reads") {
        return;
    }
    for case in run(&["nodelay=false,true", "warm=false,true"]) {
        let capture = case.observations.capture.as_ref().unwrap();
        assert_eq!(capture.status, CaptureStatus::Captured, "{}", capture.detail);
        assert!(capture.pcap.as_deref().is_some_and(|p| p.ends_with("capture.pcap")));
        let stream = case.observations.stream.as_ref().unwrap();
        let segment_bytes: usize = stream.segments.iter().map(|s| s.len).sum();
        assert_eq!(segment_bytes, 17, "{}: every message byte on the wire once", case.id);
        let segments = metric(&case, "segments");
        let coalesced = metric(&case, "coalesced_segments");
        assert!((1.0..=3.0).contains(&segments), "{}: {segments}", case.id);
        // Every data packet of the messages is in the segment lane, first transmission or
        // repeat (a tail-loss probe is common on a warm connection).
        let warm_up_bytes = if case.id.contains("warm=true") { 20 } else { 0 };
        for packet in capture
            .packets
            .iter()
            .filter(|p| p.dir == Direction::ClientToServer && p.len > 0 && p.seq as usize > warm_up_bytes)
        {
            let drawn =
                stream.segments.iter().map(|s| s.at_us).chain(stream.retransmissions.iter().map(|r| r.at_us));
            assert!(drawn.into_iter().any(|at| at == packet.at_us), "{}: {packet:?} is not drawn", case.id);
        }
        let repeats = metric(&case, "retransmitted_segments");
        assert!(repeats >= stream.retransmissions.len() as f64, "{}: {repeats}", case.id);
        let map = stream.segment_map.as_ref().unwrap();
        assert_eq!(map.targets.len(), stream.segments.len());
        assert_eq!(stream.read_segment_map.as_ref().unwrap().targets.len(), stream.reads.len());
        if case.id.contains("nodelay=true") {
            // Nothing holds a write back: one segment per write.
            assert_eq!((segments, coalesced), (3.0, 0.0), "{}", case.id);
        } else if case.id.contains("warm=true") {
            // The delayed ACK keeps the header unacknowledged; Nagle merges the rest.
            assert!(segments <= 2.0 && coalesced >= 1.0, "{}: {segments} segments", case.id);
        }
    }
}

#[test]
fn no_segment_is_drawn_before_the_write_that_produced_it() {
    if !test_may_use(Capability::NetRaw, "no_segment_is_drawn_before_the_write_that_produced_it") {
        return;
    }
    // Cold and warm, Nagle on and off, a late reader and one reading as data arrives:
    // 8 cases, 4 times over.
    let mut problems = Vec::new();
    let mut cases = 0;
    for _ in 0..4 {
        for case in run(&["nodelay=false,true", "warm=false,true", "read_delay_ms=0,50"]) {
            let stream = case.observations.stream.as_ref().unwrap();
            assert!(!stream.segments.is_empty(), "{}: no segments", case.id);
            problems.extend(drawn_out_of_order(stream).into_iter().map(|p| format!("{}: {p}", case.id)));
            cases += 1;
        }
    }
    assert_eq!(cases, 32);
    assert!(problems.is_empty(), "{} out of order:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn on_a_veth_link_a_4000_byte_write_leaves_as_mss_sized_segments() {
    let name = "on_a_veth_link_a_4000_byte_write_leaves_as_mss_sized_segments";
    if !test_may_make_namespaces(name) || !test_may_use(Capability::NetRaw, name) {
        return;
    }
    let cases = run(&["link=veth", "mtu=1500,1280", "large_message=4000", "read_size=4096"]);
    let expected: [(&str, &[usize], f64); 2] =
        [("mtu=1500", &[1448, 1448, 1104], 1448.0), ("mtu=1280", &[1228, 1228, 1228, 316], 1228.0)];
    for (case, (mtu, lens, mss)) in cases.iter().zip(expected) {
        assert!(case.id.contains(mtu), "{}", case.id);
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?} {:#?}", case.id, case.error, case.checks);
        let trace = case.observations.stream.as_ref().unwrap();
        let segments: Vec<usize> = trace.segments.iter().map(|s| s.len).collect();
        assert_eq!(segments, lens, "{}", case.id);
        assert_eq!(metric(case, "segments"), lens.len() as f64);
        assert_eq!(metric(case, "mss"), mss, "TCP_MAXSEG agrees with the capture");
        assert_eq!(metric(case, "largest_segment"), mss);
        // One write, one read: the server read the whole message at once.
        assert_eq!((trace.writes.len(), trace.reads.len()), (1, 1));
        let capture = case.observations.capture.as_ref().unwrap();
        assert!(capture.detail.starts_with("veth-server, port "), "{}", capture.detail);
        let link = case.observations.link.as_ref().expect("the report names the link");
        assert_eq!(
            (link.kind.as_str(), link.mtu, link.mss),
            ("veth", Some(mss as u32 + 52), Some(mss as u32))
        );
        assert!(drawn_out_of_order(trace).is_empty(), "{:?}", drawn_out_of_order(trace));
    }
}

#[test]
fn a_delay_on_a_loopback_link_points_to_the_relay_s_own_parameter() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["tcp-coalescing".to_string()], &registry).unwrap();
    suite.apply_sets(&["delay_ms=20".to_string()], &registry).unwrap();
    let error = suite.expand(&registry).unwrap_err().to_string();
    assert!(
        error.contains("delay_ms applies to link=veth") && error.contains("impair=delay=20ms"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1);
    // And the link's delay with the relay's own delay is one delay too many.
    let mut suite = Suite::from_scenarios(&["tcp-coalescing".to_string()], &registry).unwrap();
    let sets = ["link=veth", "delay_ms=20", "impair=delay=5ms"].map(String::from);
    suite.apply_sets(&sets, &registry).unwrap();
    let error = suite.expand(&registry).unwrap_err().to_string();
    assert!(error.contains("delay given twice"), "{error}");
}

fn proxy_out(case: &CaseResult) -> Vec<String> {
    case.observations.stream.as_ref().unwrap().proxy_out.iter().map(|w| w.text.clone()).collect()
}

fn read_map(case: &CaseResult) -> Vec<String> {
    let trace = case.observations.stream.as_ref().unwrap();
    (0..trace.reads.len()).map(|i| trace.boundary_map.describe(i, "msg")).collect()
}

/// `split=3` cuts at every third byte of the stream, whatever the kernel does: a reader
/// that keeps up (a 50 ms gap is far more than it needs to wake) reads exactly the pieces.
#[test]
fn impair_split_gives_the_same_boundary_map_on_every_run() {
    for _ in 0..2 {
        let case = &run(&["impair=split=3+gap=50ms", "read_delay_ms=0", "read_size=1024"])[0];
        assert_eq!(case.status, CaseStatus::Passed, "{case:#?}");
        assert_eq!(proxy_out(case), ["123", "456", "7ab", "cde", "hhh", "hh"]);
        assert_eq!(reads(case), ["123", "456", "7ab", "cde", "hhh", "hh"]);
        assert_eq!(
            read_map(case),
            ["msg0[0..3]", "msg0[3..6]", "msg0[6..7] + msg1[0..2]", "msg1[2..5]", "msg2[0..3]", "msg2[3..5]"]
        );
        assert_eq!(metric(case, "proxy_writes"), 6.0);
        assert_eq!(metric(case, "sticky_reads"), 1.0);
        assert_eq!(metric(case, "split_messages"), 3.0);
        let proxy = case.observations.proxy.as_ref().unwrap();
        assert_eq!((proxy.spec.as_str(), proxy.seed), ("split=3+gap=50ms", case.seed));
        assert_eq!(proxy.connections[0].up.bytes_out, 17);
        assert!(drawn_out_of_order(case.observations.stream.as_ref().unwrap()).is_empty());
    }
}

/// `split=1` gives one read per byte; with the default 1 ms gap the relay's writes are
/// exact, the reads as well where the reader keeps up.
#[test]
fn impair_split_one_writes_byte_by_byte() {
    let case = &run(&["impair=split=1+gap=50ms", "read_delay_ms=0"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{case:#?}");
    let bytes: Vec<String> = "1234567abcdehhhhh".chars().map(String::from).collect();
    assert_eq!(proxy_out(case), bytes);
    assert_eq!(reads(case), bytes, "one read per byte");
    assert_eq!(metric(case, "reads"), 17.0);
    let case = &run(&["impair=split=1", "read_delay_ms=0"])[0];
    assert_eq!(proxy_out(case), bytes, "the relay's writes do not depend on the timing");
}

/// A seeded range cuts where the case seed says: the same seed, the same pieces.
#[test]
fn impair_split_range_replays_by_seed() {
    let sets = ["impair=split=1..6+gap=50ms", "read_delay_ms=0", "read_size=1024"];
    let first = &run(&sets)[0];
    let second = &run(&sets)[0];
    assert_eq!(first.seed, second.seed);
    assert_eq!(proxy_out(first), proxy_out(second));
    assert_eq!(read_map(first), read_map(second));
    assert_eq!(reads(first), proxy_out(first));
    // Pinned for run seed 42: a change here breaks replaying old seeds. (Re-taken when
    // the link parameters joined the case's parameters, from which its seed derives.)
    assert_eq!(proxy_out(first), ["12", "3456", "7abcde", "h", "hhhh"]);
    assert_eq!(
        read_map(first),
        ["msg0[0..2]", "msg0[2..6]", "msg0[6..7] + msg1[0..5]", "msg2[0..1]", "msg2[1..5]"]
    );
}

/// `merge=50ms` writes the three messages as one, so they come back in one read.
#[test]
fn impair_merge_puts_the_three_messages_in_one_read() {
    let case = &run(&["impair=merge=50ms", "read_delay_ms=0", "read_size=1024"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{case:#?}");
    assert_eq!(proxy_out(case), ["1234567abcdehhhhh"]);
    assert_eq!(reads(case), ["1234567abcdehhhhh"]);
    assert_eq!(read_map(case), ["msg0[0..7] + msg1[0..5] + msg2[0..5]"]);
    assert_eq!(metric(case, "proxy_coalesced_writes"), 1.0);
    // The client's FIN ends the window early: nothing more can join it.
    let writes = &case.observations.proxy.as_ref().unwrap().connections[0].up.output_writes.first;
    assert_eq!(writes.iter().map(|w| w.len).collect::<Vec<_>>(), [17], "{writes:?}");
}

/// With a relay that holds bytes, read_delay_ms counts from the relay's last write, so a
/// late reader still finds every byte queued.
#[test]
fn a_late_reader_behind_a_holding_relay_still_finds_every_byte_queued() {
    let cases = run(&["impair=merge=50ms,delay=30ms"]);
    assert_eq!(cases.len(), 2);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(reads(case), ["12345", "67abc", "dehhh", "hh"], "{}", case.id);
    }
}

#[test]
fn a_delay_on_a_veth_link_reaches_the_reader_that_much_later() {
    if !test_may_make_namespaces("a_delay_on_a_veth_link_reaches_the_reader_that_much_later") {
        return;
    }
    // The relay in the client's namespace holds every byte 50 ms before it crosses the
    // veth: a reader that reads as data arrives cannot read the last byte sooner.
    let case = &run(&["link=veth", "delay_ms=50", "read_delay_ms=0", "read_size=1024"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:?} {:#?}", case.error, case.checks);
    assert_eq!(reads(case).concat(), "1234567abcdehhhhh");
    let last = metric(case, "last_read_at");
    assert!(last >= 49_000.0, "last read {last} µs after the first write, under the 50 ms delay");
    let proxy = case.observations.proxy.as_ref().expect("the relay is in the report");
    assert_eq!(proxy.spec, "delay=50ms");
    let link = case.observations.link.as_ref().unwrap();
    assert_eq!((link.kind.as_str(), link.mtu, link.delay_ms), ("veth", Some(1500), Some(50)));
    assert!(link.detail.contains("50 ms one-way delay each way"), "{}", link.detail);
    assert_eq!(link.label(), "veth, MTU 1500, delay 50 ms each way", "the report header's words");
}
