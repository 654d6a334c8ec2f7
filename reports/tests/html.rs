//! `index.html` from a fixed report model: the structure a reader relies on, checked
//! element by element (not pixels).

mod common;

use std::collections::BTreeMap;

use common::{metric, params, run_info};
use serde_json::Value;
use socklab_harness::metrics::LatencyRecorder;
use socklab_model::boundary::BoundaryMap;
use socklab_model::check::Check;
use socklab_model::report::{
    CaptureObservation, CaptureStatus, CaseResult, CaseStatus, Direction, IoEvent, LatencyObservation,
    ProxyConnection, ProxyDirection, ProxyObservation, ProxyWrite, Report, RetransmittedSegment, RunInfo,
    ScenarioInfo, StreamTrace, SweepTable, TraceExcerpt, Transport, Unit, WirePacket,
};
use socklab_reports::html;

fn case(id: &str, scenario: &str, set: &[(&str, Value)], status: CaseStatus) -> CaseResult {
    CaseResult {
        seed: 3,
        status,
        duration_ms: 10.0,
        metrics: vec![metric("throughput_mib_s", 812.5, Unit::MibPerSec)],
        checks: vec![Check::new("intact", "all", "all <b>", status == CaseStatus::Passed, "why <i>")],
        ..common::case(id, scenario, params(set))
    }
}

fn report() -> Report {
    let event = |at_us: f64, text: &str| IoEvent { at_us, len: text.len(), text: text.into() };
    let mut sticky = case("tcp-coalescing", "tcp-coalescing", &[], CaseStatus::Passed);
    sticky.observations.stream = Some(StreamTrace {
        writes: vec![event(1.0, "1234567"), event(2.0, "abcde"), event(3.0, "hhhhh")],
        reads: vec![event(50.0, "12345"), event(51.0, "67abc"), event(52.0, "dehhh"), event(53.0, "hh")],
        boundary_map: BoundaryMap::compute(&[7, 5, 5], &[5, 5, 5, 2]),
        ..StreamTrace::default()
    });
    let mut recorder = LatencyRecorder::new();
    (1..=100).for_each(|us| recorder.record_ns(us * 1_000));
    let mut nagle = case(
        "nagle-delayed-ack[round_trips=20]",
        "nagle-delayed-ack",
        &[("round_trips", Value::from(20))],
        CaseStatus::Passed,
    );
    nagle.observations.stream = Some(StreamTrace {
        writes: vec![event(1.0, "H0"), event(2.0, "body0"), event(40_000.0, "H1"), event(40_001.0, "body1")],
        reads: vec![event(3.0, "H0body0"), event(40_003.0, "H1body1")],
        boundary_map: BoundaryMap::compute(&[2, 5, 2, 5], &[7, 7]),
        excerpt: TraceExcerpt::first(2, 20, "requests"),
        ..StreamTrace::default()
    });
    let mut cases = vec![sticky, nagle];
    for (framing, size) in [("u32be", 16), ("u32be", 256), ("line", 16), ("line", 256)] {
        let mut c = case(
            &format!("framing-throughput[framing={framing},message_size={size}]"),
            "framing-throughput",
            &[("framing", Value::from(framing)), ("message_size", Value::from(size))],
            if framing == "line" && size == 256 { CaseStatus::Failed } else { CaseStatus::Passed },
        );
        c.observations.latency = Some(LatencyObservation {
            of: "round trip".into(),
            summary: recorder.summary(),
            histogram: recorder.to_base64(),
        });
        cases.push(c);
    }
    let info = |summary: &str, table| ScenarioInfo {
        summary: summary.into(),
        explanation: "What it shows: <glue>.\n\nWhy: streams.".into(),
        table,
        param_units: BTreeMap::from([("message_size".to_string(), "bytes".to_string())]),
        ..ScenarioInfo::default()
    };
    Report {
        run: RunInfo {
            git_revision: Some("abc".into()),
            duration_s: 1.0,
            command_line: vec!["socklab".into(), "run".into()],
            ..run_info(9)
        },
        scenarios: BTreeMap::from([
            ("tcp-coalescing".to_string(), info("sticky packets", None)),
            ("nagle-delayed-ack".to_string(), info("the write-write-read stall", None)),
            (
                "framing-throughput".to_string(),
                info(
                    "framing strategies",
                    Some(SweepTable {
                        rows: "framing".into(),
                        columns: "message_size".into(),
                        cells: vec!["throughput_mib_s".into()],
                    }),
                ),
            ),
        ]),
        cases,
        ..common::report(9)
    }
}

#[test]
fn the_page_has_every_part_a_reader_needs() {
    let page = html::render(&report()).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") || page.starts_with("<!doctype html>"), "{}", &page[..40]);
    assert!(page.contains("Some checks failed — 5 passed, 1 failed, 0 errors, 0 timed out"));
    // One summary row and one article per case, each linked.
    assert_eq!(page.matches("<article class=\"case").count(), 6);
    assert_eq!(page.matches("<a href=\"#").count(), 6);
    // A section per scenario, with its explanation paragraphs, escaped.
    assert!(page.contains("id=\"scenario-tcp-coalescing\""));
    assert!(page.contains("id=\"scenario-framing-throughput\""));
    assert!(page.contains("What it shows: &lt;glue&gt;."));
    assert!(page.contains("all &lt;b&gt;") && !page.contains("all <b>"), "values are escaped");
    // The sweep as a table: strategy rows, size columns.
    assert!(page.contains("<th>framing ↓ message_size →</th><th>16</th><th>256</th>"), "sweep table header");
    assert!(page.contains("<td>812.5 MiB&#x2f;s ❌</td>"), "a failed case is marked in its cell");
    // Charts and the timeline are inline SVG.
    assert!(page.contains("<figcaption>Latency by percentile (µs, log scale) — round trip</figcaption><svg"));
    assert!(page.matches("<svg").count() >= 3, "latency chart, sweep chart, timeline");
    assert!(page.contains("<div class=\"timeline\"><svg"));
    assert!(page.contains("3 writes"), "the story in plain words");
}

#[test]
fn a_trace_of_the_first_requests_says_so_in_story_and_timeline() {
    let report = report();
    let page = html::render(&report).unwrap();
    assert!(page.contains("<p>The first 2 of 20 requests: 4 writes; the reader made 2 reads;"), "story");
    assert!(page.contains("Shown: the first 2 of 20 requests."), "timeline note");
    let md = socklab_reports::markdown::render(&report).unwrap();
    // One story for both pages: they used to tell it in different words.
    assert!(md.contains("The first 2 of 20 requests: 4 writes; the reader made 2 reads;"), "{md}");
    assert!(md.contains("each read returned (first 2 of 20 requests):"), "{md}");
}

#[test]
fn the_page_is_self_contained() {
    let page = html::render(&report()).unwrap();
    for external in ["<script", "<link", "src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(external), "the page must not load {external}");
    }
}

#[test]
fn a_retransmission_is_told_drawn_and_counted_and_a_capped_list_says_so() {
    let mut report = report();
    let packet = |at_us: f64, flags: &str, seq: u32, payload: &str| WirePacket {
        at_us,
        dir: Direction::ClientToServer,
        proto: Transport::Tcp,
        client_port: 40_000,
        flags: flags.into(),
        seq,
        ack: 1,
        window: 100,
        len: payload.len(),
        payload: Some(payload.into()),
    };
    let sticky = &mut report.cases[0];
    sticky.observations.capture = Some(CaptureObservation {
        packets: vec![
            packet(1.5, "P.", 1, "1234567"),
            packet(2.5, "P.", 8, "abcdehhhhh"),
            packet(7_000.0, "P.", 8, "abcdehhhhh"), // the tail-loss probe
        ],
        packets_left_out: 2,
        ..CaptureObservation::unavailable("")
    });
    sticky.observations.capture.as_mut().unwrap().status = CaptureStatus::Captured;
    let stream = sticky.observations.stream.as_mut().unwrap();
    stream.segments = vec![
        IoEvent { at_us: 1.5, len: 7, text: "1234567".into() },
        IoEvent { at_us: 2.5, len: 10, text: "abcdehhhhh".into() },
    ];
    stream.retransmissions = vec![RetransmittedSegment {
        at_us: 7_000.0,
        start: 7,
        len: 10,
        repeated: 10,
        text: "abcdehhhhh".into(),
    }];
    let page = html::render(&report).unwrap();
    assert!(page.contains("3 writes left as 2 segments, and 1 segment sent again"), "the story tells it");
    assert!(page.contains("5 packets in all, 3 carrying data, 0 bare ACKs, 1 sent again"), "and counts it");
    assert!(page.contains("2 of them over the capture&#x27;s limits are counted but not listed"));
    assert!(page.contains("↻0 [7..17)"), "the timeline draws it");
}

#[test]
fn sections_follow_the_run_order_not_the_alphabet() {
    // tcp-coalescing ran first; the scenario map sorts framing-throughput first.
    let report = report();
    assert!(report.scenarios.keys().next().unwrap() == "framing-throughput");
    let page = html::render(&report).unwrap();
    let (tcp, framing) = (
        page.find("id=\"scenario-tcp-coalescing\"").unwrap(),
        page.find("id=\"scenario-framing-throughput\"").unwrap(),
    );
    assert!(tcp < framing, "index.html: sections in run order");
    let md = socklab_reports::markdown::render(&report).unwrap();
    let (tcp, framing) =
        (md.find("\n## tcp-coalescing\n").unwrap(), md.find("\n## framing-throughput\n").unwrap());
    assert!(tcp < framing, "report.md: sections in run order");
}

#[test]
fn the_header_names_both_hosts_and_the_links_and_a_skipped_case_says_why() {
    use socklab_model::report::{LinkRecord, PeerRecord};
    let mut report = report();
    report.run.hostname = Some("a".into());
    report.run.peer = Some(PeerRecord {
        command: "ssh me@b socklab agent --stdio".into(),
        addr: "10.77.0.2".into(),
        hostname: "b".into(),
        kernel: "6.9".into(),
        cpu_count: 8,
        socklab_version: "0.1.0".into(),
    });
    report.cases[0].observations.link = Some(LinkRecord {
        kind: "veth".into(),
        mtu: Some(1280),
        rate_bit_s: Some(50_000_000),
        mss: Some(1228),
        delay_ms: Some(20),
        client: "198.18.0.1".into(),
        server: "198.18.0.2".into(),
        detail: "two namespaces".into(),
    });
    report.cases[1].status = CaseStatus::Skipped;
    report.cases[1].error =
        Some("skipped: link=veth makes network namespaces, which needs CAP_NET_ADMIN".into());
    report.cases[1].checks.clear();
    let page = html::render(&report).unwrap();
    assert!(page.contains("client host <b>a: kernel 6.1, 2 CPUs, socklab 0.1.0</b>"), "this host");
    assert!(
        page.contains("server host <b>b: kernel 6.9, 8 CPUs, socklab 0.1.0; agent started by `ssh me@b socklab agent --stdio`, reached at 10.77.0.2</b>"),
        "the agent's host"
    );
    assert!(
        page.contains(
            "links <b>veth, MTU 1280, rate 50mbit, delay 20 ms each way, segments of 1228 bytes; loopback</b>"
        ),
        "the links"
    );
    assert!(page.contains(", 1 skipped</div>"), "the verdict counts the skipped case");
    assert!(page.contains("<span class=\"badge skip\">SKIP</span>"));
    assert!(page.contains("needs CAP_NET_ADMIN"), "with its reason");
    let md = socklab_reports::markdown::render(&report).unwrap();
    assert!(md.contains("| server host | b: kernel 6.9, 8 CPUs"), "{md}");
    assert!(
        md.contains(
            "| links | veth, MTU 1280, rate 50mbit, delay 20 ms each way, segments of 1228 bytes; loopback |"
        ),
        "{md}"
    );
}

#[test]
fn a_case_through_an_impairment_relay_tells_and_draws_the_relay() {
    let mut report = report();
    let sticky = &mut report.cases[0];
    let stream = sticky.observations.stream.as_mut().unwrap();
    stream.proxy_out = "1234567abcdehhhhh"
        .chars()
        .enumerate()
        .map(|(i, c)| IoEvent { at_us: 10.0 + 1_000.0 * i as f64, len: 1, text: c.to_string() })
        .collect();
    stream.proxy_map = Some(BoundaryMap::compute(&[7, 5, 5], &[1; 17]));
    let mut up = ProxyDirection {
        impaired: true,
        bytes_in: 17,
        bytes_out: 17,
        reads_in: 3,
        writes_out: 17,
        ..ProxyDirection::default()
    };
    up.output_writes
        .push(ProxyWrite { at_us: 10.0, len: 1, delay_us: 5.0, datagram: None, took_us: None }, 10);
    sticky.observations.proxy = Some(ProxyObservation {
        spec: "split=1".into(),
        seed: 7,
        transport: Transport::Tcp,
        connections: vec![ProxyConnection {
            index: 0,
            client: "127.0.0.1:5".into(),
            up,
            closed: true,
            ..ProxyConnection::default()
        }],
        connections_left_out: 0,
    });
    let page = html::render(&report).unwrap();
    assert!(page.contains("3 writes became 17 writes of the impairment relay"), "the story tells it");
    assert!(
        page.contains("Impairment relay `split=1` (seed 7): 1 connection; client to server 17 bytes in 3 reads, out in 17 writes"),
        "and what the relay did"
    );
    assert!(page.contains("p16 [16..17)"), "the proxy lane is drawn");
    let md = socklab_reports::markdown::render(&report).unwrap();
    assert!(md.contains("3 writes became 17 writes of the impairment relay"), "{md}");
    assert!(
        md.contains("Impairment relay \\`split=1\\` (seed 7): 1 connection"),
        "both pages tell one story: {md}"
    );
    let back: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back, report, "the relay's record survives report.json");
}
