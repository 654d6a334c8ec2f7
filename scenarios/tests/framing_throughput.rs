//! `framing-throughput` on loopback: every strategy delivers intact, raw shows the glue.

mod common;

use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("framing-throughput", sets)
}

#[test]
fn every_strategy_delivers_every_message_in_every_mode() {
    let cases = run(&[
        "framing=line,cobs,u32be,u16be,varint,json-header,fixed,stop-and-wait",
        "mode=ping-pong,pipelined,bulk,open-loop",
        "message_size=200",
        "duration_ms=30",
    ]);
    assert_eq!(cases.len(), 32);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?} {:?}", case.id, case.error, case.checks);
        assert_eq!(case.checks[0].name, "every_message_intact_in_order");
        assert!(metric(case, "sent") > 0.0, "{}", case.id);
        assert_eq!(metric(case, "delivered"), metric(case, "sent"), "{}", case.id);
        assert!(metric(case, "throughput_mib_s") > 0.0, "{}", case.id);
    }
    let open_loop = cases.iter().find(|c| c.id.contains("mode=open-loop")).unwrap();
    assert!(open_loop.observations.latency.as_ref().unwrap().of.contains("intended send time"));
    let bulk = cases.iter().find(|c| c.id.contains("mode=bulk")).unwrap();
    assert!(bulk.metric("rtt_p50").is_none(), "bulk has no round trips");
}

/// Latency is named by what it measures: a round trip only with one message
/// outstanding; write-to-reply time (queueing included) with a window; response time
/// from the intended send time in open loop. No mode reports another's name.
#[test]
fn latency_is_named_by_what_it_measures_in_each_mode() {
    let cases = run(&["framing=u32be,stop-and-wait", "mode=ping-pong,pipelined,open-loop", "duration_ms=20"]);
    let names = |case: &CaseResult| -> Vec<&str> {
        ["rtt_p50", "reply_p50", "response_p50"].into_iter().filter(|n| case.metric(n).is_some()).collect()
    };
    for case in &cases {
        let expected = match (case.params["framing"].as_str(), case.params["mode"].as_str()) {
            (_, Some("ping-pong")) | (Some("stop-and-wait"), Some("pipelined")) => "rtt_p50",
            (_, Some("pipelined")) => "reply_p50",
            _ => "response_p50",
        };
        assert_eq!(names(case), [expected], "{}", case.id);
        let of = &case.observations.latency.as_ref().unwrap().of;
        assert_eq!(of.contains("queueing"), expected == "reply_p50", "{}: {of}", case.id);
    }
}

#[test]
fn throughput_spread_comes_from_the_cases_intervals() {
    let case = &run(&["framing=u32be", "mode=bulk", "duration_ms=200"])[0];
    let ci = metric(case, "throughput_ci95");
    assert!(ci.is_finite() && ci >= 0.0, "{ci}");
    let intervals = case.observations.throughput.as_ref().unwrap().intervals.len();
    assert!(intervals >= 5, "a 200 ms case has ~10 intervals of 20 ms, got {intervals}");
}

#[test]
fn every_server_flavour_serves_the_workload() {
    for case in run(&[
        "flavour=tokio,threaded,sequential",
        "mode=pipelined,bulk",
        "framing=u32be",
        "message_size=256",
        "duration_ms=30",
    ]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?}", case.id, case.checks);
    }
}

#[test]
fn raw_keeps_the_bytes_but_glues_or_cuts_the_messages() {
    let case = &run(&["framing=raw", "message_size=16384", "window=32", "duration_ms=100"])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:?}", case.checks);
    assert_eq!(case.checks[0].name, "stream_bytes_intact");
    assert!(metric(case, "corrupted") > 0.0, "16 KiB messages through 64 KiB reads cannot all line up");
}

#[test]
fn ping_pong_reports_round_trip_percentiles_with_histogram() {
    let case = &run(&["framing=u32be", "mode=ping-pong", "message_size=64", "duration_ms=50"])[0];
    let (p50, p99) = (metric(case, "rtt_p50"), metric(case, "rtt_p99"));
    assert!(p50 > 0.0 && p50 <= p99, "{p50} {p99}");
    let latency = case.observations.latency.as_ref().unwrap();
    let back = socklab_harness::metrics::LatencyRecorder::from_base64(&latency.histogram).unwrap();
    assert_eq!(back.count(), metric(case, "sent") as u64);
}

#[test]
fn run_alone_it_compares_every_strategy_at_every_size() {
    let registry = registry();
    let suite = Suite::from_scenarios(&["framing-throughput".to_string()], &registry).unwrap();
    let cases = suite.expand(&registry).unwrap();
    assert_eq!(cases.len(), 9 * 4, "9 strategies x 4 sizes, each sweep entry parsed");
    assert_eq!(cases[0].id, "framing-throughput[framing=raw,message_size=16]");
}

#[test]
fn a_frame_too_large_for_the_header_is_refused_before_running() {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["framing-throughput".to_string()], &registry).unwrap();
    suite.apply_sets(&["framing=u16be".to_string(), "message_size=65536".to_string()], &registry).unwrap();
    let err = suite.expand(&registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameters for `framing-throughput`: u16be carries at most 65535 bytes per frame; message_size is 65536"
    );
}

#[test]
fn it_accepts_every_strategy_socklab_serve_knows() {
    use socklab_harness::framing::FramingStrategy;
    use socklab_scenarios::framing_throughput::FRAMINGS;
    let mut expected: Vec<&str> = FramingStrategy::NAMES.to_vec();
    expected.push("fixed"); // fixed:N, with N = message_size
    assert_eq!(FRAMINGS, expected.as_slice());
}

#[test]
fn every_strategy_of_the_parser_delivers_through_the_peers() {
    use socklab_harness::framing::FramingStrategy;
    let framings = format!("framing={},fixed", FramingStrategy::NAMES.join(","));
    let cases = run(&[&framings, "mode=ping-pong,pipelined", "message_size=100", "duration_ms=50"]);
    assert_eq!(cases.len(), 2 * (FramingStrategy::NAMES.len() + 1));
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?} {:?}", case.id, case.error, case.checks);
        assert!(metric(case, "sent") > 0.0, "{}", case.id);
    }
}

#[test]
fn a_message_too_large_for_a_narrow_length_field_is_refused() {
    let registry = registry();
    for (framing, size, most) in [("u8", 256, 255), ("i8", 128, 127), ("i16le", 32768, 32767)] {
        let mut suite = Suite::from_scenarios(&["framing-throughput".to_string()], &registry).unwrap();
        let sets = [format!("framing={framing}"), format!("message_size={size}")];
        suite.apply_sets(&sets, &registry).unwrap();
        assert_eq!(
            suite.expand(&registry).unwrap_err().to_string(),
            format!(
                "invalid parameters for `framing-throughput`: {framing} carries at most {most} bytes per frame; \
                 message_size is {size}"
            )
        );
    }
}

#[test]
fn bulk_over_a_100mbit_veth_link_delivers_at_the_rate() {
    use socklab_harness::privilege::test_may_make_namespaces;
    if !test_may_make_namespaces("bulk_over_a_100mbit_veth_link_delivers_at_the_rate") {
        return;
    }
    let sets = ["link=veth", "link_rate=100mbit", "mode=bulk", "message_size=4096", "duration_ms=500"];
    let case = &common::run_at_rate("framing-throughput", &sets);
    assert_eq!(case.status, CaseStatus::Passed, "{:?} {:#?}", case.error, case.checks);
    let check = case
        .checks
        .iter()
        .find(|c| c.name == "throughput_at_rate")
        .expect("bulk is checked against the rate");
    assert!(check.passed, "{check:?}");
    let share = metric(case, "rate_share");
    assert!((90.0..=100.0).contains(&share), "payload at {share}% of the rate");
    let wire = metric(case, "wire_mbit_s");
    assert!((90.0..=110.0).contains(&wire), "frames at {wire} Mbit/s");
}

/// The strongest test the codecs get over real sockets: a seeded relay cuts every frame
/// at random places and glues neighbours together, and every framing but raw still
/// delivers every message intact and in order.
#[test]
fn every_framing_but_raw_delivers_intact_through_a_random_relay() {
    let framings: Vec<&str> =
        socklab_scenarios::framing_throughput::FRAMINGS.iter().copied().filter(|f| *f != "raw").collect();
    let cases = run(&[
        &format!("framing={}", framings.join(",")),
        "impair=random",
        "mode=pipelined,bulk",
        "message_size=16,100",
        "duration_ms=40",
        "max_messages=500", // bulk through the relay drains at a few MB/s: keep it short
    ]);
    assert_eq!(cases.len(), framings.len() * 4);
    let (mut cut, mut glued) = (0, 0);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?} {:?}", case.id, case.error, case.checks);
        assert!(metric(case, "sent") > 0.0, "{}", case.id);
        assert_eq!(metric(case, "delivered"), metric(case, "sent"), "{}", case.id);
        assert_eq!(metric(case, "corrupted"), 0.0, "{}", case.id);
        let proxy = case.observations.proxy.as_ref().unwrap();
        assert_eq!(proxy.spec, "random");
        let writes = &proxy.connections[0].up.output_writes.first;
        let frame = case.params["message_size"].as_u64().unwrap() as usize;
        cut += writes.iter().filter(|w| w.len <= 8).count();
        glued += writes.iter().filter(|w| w.len > frame + 16).count();
    }
    // Seeded cuts: how many is fixed by the seeds, but hundreds either way.
    assert!(cut > 100 && glued > 100, "the relay cut {cut} times to 8 bytes or less and glued {glued} times");
    // Raw keeps every byte, but the reads no longer line up with the messages.
    let raw = &run(&["framing=raw", "impair=random", "mode=pipelined", "duration_ms=40"])[0];
    assert_eq!(raw.status, CaseStatus::Passed, "{:?}", raw.checks);
    assert!(metric(raw, "corrupted") > 0.0, "raw reads glued or cut by the relay");
}

#[test]
fn a_delay_on_a_veth_link_adds_twice_its_value_to_every_round_trip() {
    use socklab_harness::privilege::test_may_make_namespaces;
    if !test_may_make_namespaces("a_delay_on_a_veth_link_adds_twice_its_value_to_every_round_trip") {
        return;
    }
    let cases = run(&["link=veth", "delay_ms=10", "mode=ping-pong", "duration_ms=300"]);
    let case = &cases[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:?} {:#?}", case.error, case.checks);
    // 10 ms each way: no round trip can be shorter than 20 ms; a veth adds microseconds,
    // the relay about a millisecond at most, a loaded machine some more.
    let p50 = metric(case, "rtt_p50");
    assert!((20_000.0..100_000.0).contains(&p50), "round trip p50 {p50} µs");
    assert!(metric(case, "sent") >= 3.0, "{}", metric(case, "sent"));
    let proxy = case.observations.proxy.as_ref().expect("the relay is in the report");
    assert_eq!(proxy.spec, "delay=10ms");
    let link = case.observations.link.as_ref().unwrap();
    assert!(link.detail.contains("10 ms one-way delay each way"), "{}", link.detail);
}

/// UDP ping-pong against the reference UDP echo server, in every framing that fits a
/// datagram: every round trip timed into the histogram, nothing lost on loopback.
#[test]
fn udp_ping_pong_times_every_round_trip() {
    let cases = run(&[
        "transport=udp",
        "mode=ping-pong",
        "framing=raw,u32be,varint,line,cobs,json-header,fixed",
        "flavour=tokio,threaded",
        "message_size=64",
        "duration_ms=50",
        "max_messages=2000",
    ]);
    assert_eq!(cases.len(), 14);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:?} {:?}", case.id, case.error, case.checks);
        assert_eq!(case.checks[0].name, "every_request_answered_or_counted_lost");
        let sent = metric(case, "sent");
        assert!(sent > 0.0 && sent <= 2000.0, "{}: {sent}", case.id);
        assert_eq!(metric(case, "corrupted"), 0.0, "{}", case.id);
        // Loopback loses a datagram only under buffer pressure, which one outstanding
        // request never builds.
        assert_eq!(metric(case, "lost"), 0.0, "{}", case.id);
        let (p50, p99) = (metric(case, "rtt_p50"), metric(case, "rtt_p99"));
        assert!(p50 > 0.0 && p50 <= p99, "{}: {p50} {p99}", case.id);
        let latency = case.observations.latency.as_ref().unwrap();
        let back = socklab_harness::metrics::LatencyRecorder::from_base64(&latency.histogram).unwrap();
        assert_eq!(back.count(), metric(case, "delivered") as u64, "{}", case.id);
    }
}

/// Lost datagrams are counted, not waited for: a seeded relay drops about half the round
/// trips (30% each way), and the case still ends within its bounds, every request either
/// timed or counted lost after its timeout, and no late reply taken for a newer one.
#[test]
fn udp_ping_pong_counts_lost_datagrams_and_never_hangs() {
    let started = std::time::Instant::now();
    let case = &run(&[
        "transport=udp",
        "mode=ping-pong",
        "impair=loss=0.3",
        "udp_timeout_ms=20",
        "duration_ms=10000",
        "max_messages=100",
    ])[0];
    assert_eq!(case.status, CaseStatus::Passed, "{:?} {:?}", case.error, case.checks);
    let (sent, delivered, lost) = (metric(case, "sent"), metric(case, "delivered"), metric(case, "lost"));
    assert_eq!(sent, 100.0, "the message count bounds the case");
    assert_eq!(delivered + lost, sent);
    // 1 - 0.7 * 0.7 = 51% expected; the seed fixes it, the bounds only say "many, not all".
    assert!((20.0..=80.0).contains(&lost), "lost {lost} of 100");
    assert_eq!(case.observations.latency.as_ref().unwrap().summary.count, delivered as u64);
    // Each lost request costs its 20 ms timeout, no more: ~1 s here, far under 10 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_eq!(case.observations.proxy.as_ref().unwrap().spec, "loss=0.3");
}

#[test]
fn udp_cases_that_cannot_work_are_refused_before_running() {
    let registry = registry();
    for (sets, message) in [
        (&["transport=udp"][..], "transport=udp runs mode=ping-pong only"),
        (&["transport=udp", "mode=ping-pong", "framing=stop-and-wait"], "stop-and-wait needs a stream"),
        (&["transport=udp", "mode=ping-pong", "impair=split=3"], "impair:"),
        (&["transport=udp", "mode=ping-pong", "link=veth"], "transport=udp runs on link=loopback"),
        (&["transport=udp", "mode=ping-pong", "impair=truncate=20"], "impair: truncate cuts replies"),
        (
            &["transport=udp", "mode=ping-pong", "framing=u32be", "message_size=65504"],
            "a 65504-byte message framed as u32be takes 65508 bytes, more than one datagram holds (65507)",
        ),
    ] {
        let mut suite = Suite::from_scenarios(&["framing-throughput".to_string()], &registry).unwrap();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        suite.apply_sets(&sets, &registry).unwrap();
        let err = suite.expand(&registry).unwrap_err().to_string();
        assert!(err.contains(message), "{sets:?}: {err}");
    }
}
