//! `server-conformance` against the reference server (every check passes, in every
//! flavour where it applies; the sequential flavour fails concurrency and says so) and
//! against a deliberately naive Python server (the documented failures, in words).

use std::time::Duration;

use socklab_harness::external::{CommandTemplate, Target};
use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::runner::{RunOptions, Silent, run_cases};
use socklab_harness::suite::Suite;
use socklab_scenarios::registry;

/// A line server that upper-cases each recv() and has the classic bugs.
const NAIVE_SERVER: &str = include_str!("fixtures/naive_line_server.py");

/// Runs `server-conformance` with `sets` (`--set` syntax) against `target`, run seed 42.
fn run(sets: &[&str], target: Target) -> Vec<CaseResult> {
    let registry = registry();
    let mut suite = Suite::from_scenarios(&["server-conformance".to_string()], &registry).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    suite.apply_sets(&sets, &registry).unwrap();
    suite.override_target(target);
    suite.override_timeout(Duration::from_secs(60));
    let cases = suite.expand(&registry).unwrap();
    run_cases(&registry, &cases, &RunOptions::with_seed(42), &Silent)
        .unwrap()
        .into_iter()
        .map(|f| f.result)
        .collect()
}

/// The value of metric `name`; panics naming the case when it is missing.
fn metric(case: &CaseResult, name: &str) -> f64 {
    case.metric(name).unwrap_or_else(|| panic!("{}: no metric {name}", case.id)).value
}

fn explain(case: &CaseResult) -> String {
    format!("{}: {:?} {:#?}", case.id, case.error, case.checks)
}

/// The case of `check` (its first, when eof runs twice).
fn case<'a>(cases: &'a [CaseResult], check: &str) -> &'a CaseResult {
    cases.iter().find(|c| c.params["check"] == check).unwrap_or_else(|| panic!("no {check} case"))
}

const ALL_BUT_CONCURRENCY: &str = "check=reassembly,large-message,eof,slow-reader,reset,hostile-length";

#[test]
fn the_reference_server_passes_every_check_in_every_flavour() {
    for flavour in ["tokio", "threaded", "sequential"] {
        let mut sets = vec![ALL_BUT_CONCURRENCY, "framing=u32be", "behaviour=echo-upper"];
        let flavour_set = format!("flavour={flavour}");
        sets.push(&flavour_set);
        let mut cases = run(&sets, Target::Reference);
        cases.extend(run(&["check=eof", "half_close=true", &flavour_set], Target::Reference));
        if flavour != "sequential" {
            cases.extend(run(
                &["check=concurrency", "clients=4", "session_ms=600", &flavour_set],
                Target::Reference,
            ));
        }
        for case in &cases {
            assert_eq!(case.status, CaseStatus::Passed, "{}", explain(case));
        }
        let reassembly = case(&cases, "reassembly");
        assert_eq!(metric(reassembly, "chunkings"), 5.0);
        assert_eq!(metric(reassembly, "replies_received"), metric(reassembly, "replies_owed"));
        assert_eq!(metric(case(&cases, "large-message"), "first_reply_bytes"), 1048576.0);
        assert_eq!(metric(case(&cases, "slow-reader"), "reply_bytes_lost"), 0.0);
        assert!(metric(case(&cases, "eof"), "close_after_ms") < 1000.0, "{}", explain(case(&cases, "eof")));
    }
}

/// Every behaviour, and framings of every kind (delimited, length, JSON header, fixed,
/// raw, stop-and-wait), pass against the reference server.
#[test]
fn every_behaviour_and_kind_of_framing_passes_against_the_reference() {
    let combinations = [
        ("line", "sink", "check=reassembly,large-message,eof,reset"),
        ("varint", "source", "check=reassembly,eof,slow-reader,reset"),
        ("json-header", "echo", "check=reassembly,large-message,slow-reader,hostile-length"),
        ("fixed:64", "echo-upper", "check=reassembly,eof,slow-reader,reset"),
        ("raw", "echo", "check=reassembly,large-message,slow-reader"),
        ("stop-and-wait", "echo", "check=reassembly,large-message,eof,slow-reader,reset,hostile-length"),
        ("cobs", "sink", "check=concurrency"),
    ];
    for (framing, behaviour, checks) in combinations {
        let (framing, behaviour) = (format!("framing={framing}"), format!("behaviour={behaviour}"));
        for case in run(&[checks, &framing, &behaviour, "clients=3", "session_ms=600"], Target::Reference) {
            assert_eq!(case.status, CaseStatus::Passed, "{}", explain(&case));
        }
    }
}

#[test]
fn the_sequential_flavour_fails_concurrency_and_says_it_serves_one_at_a_time() {
    let cases =
        run(&["check=concurrency", "flavour=sequential", "clients=3", "session_ms=600"], Target::Reference);
    let case = &cases[0];
    assert_eq!(case.status, CaseStatus::Failed, "{}", explain(case));
    let check = &case.checks[0];
    assert!(
        check.explanation.starts_with("clients were served one at a time: client 2 waited "),
        "{}",
        check.explanation
    );
    assert!(check.explanation.contains("the length of client 1's session"), "{}", check.explanation);
    // Client 3 waits for two sessions of 0.6 s: far above the 0.3 s allowed.
    assert!(metric(case, "max_wait_ms") > 900.0, "{}", explain(case));
    assert_eq!(metric(case, "clients_served"), 3.0);
}

/// `socklab run server-conformance` with nothing set: its built-in sweep runs every check
/// that applies to the default parameters — not `download`, a source's check, which the
/// default echo server refuses — and each passes against the reference server.
#[test]
fn the_built_in_sweep_runs_every_check_that_applies_to_the_defaults() {
    let registry = registry();
    let suite = Suite::from_scenarios(&["server-conformance".to_string()], &registry).unwrap();
    let cases = suite.expand(&registry).unwrap();
    let checks: Vec<&str> = cases.iter().map(|c| c.params["check"].as_str().unwrap()).collect();
    assert_eq!(
        checks,
        ["reassembly", "large-message", "concurrency", "eof", "slow-reader", "reset", "hostile-length"]
    );
    for finished in run_cases(&registry, &cases, &RunOptions::with_seed(42), &Silent).unwrap() {
        assert_eq!(finished.result.status, CaseStatus::Passed, "{}", explain(&finished.result));
    }
}

#[test]
fn combinations_that_do_not_apply_are_refused_with_the_reason() {
    let registry = registry();
    for (sets, reason) in [
        (
            ["check=hostile-length", "framing=line"],
            "hostile-length does not apply to line: it has no length prefix",
        ),
        (["check=hostile-length", "framing=u16be"], "its largest length (65535 bytes) is a sane frame"),
        (["check=large-message", "framing=fixed:64"], "every record has the same size"),
        (["check=slow-reader", "behaviour=sink"], "sends nothing back to read slowly"),
        (["check=reassembly", "framing=u24be"], "unknown framing strategy \"u24be\""),
    ] {
        let mut suite = Suite::from_scenarios(&["server-conformance".to_string()], &registry).unwrap();
        suite.apply_sets(&sets.map(String::from), &registry).unwrap();
        let err = suite.expand(&registry).unwrap_err().to_string();
        assert!(err.contains(reason), "{sets:?}: {err}");
    }
}

/// The naive server, as a `--target-cmd` started per case. `exec` makes Python the
/// command itself, so the SIGTERM that stops it reaches its handler (which prints its
/// own CPU time for the cross-check below).
fn naive_target(dir: &std::path::Path) -> Target {
    let script = dir.join("naive.py");
    std::fs::write(&script, NAIVE_SERVER).unwrap();
    Target::Command(CommandTemplate::new(&format!("exec python3 {} {{port}}", script.display())).unwrap())
}

#[test]
fn a_naive_server_fails_with_the_documented_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let cases = run(
        &["check=reassembly,large-message,eof,slow-reader,reset", "framing=line", "behaviour=echo-upper"],
        naive_target(dir.path()),
    );
    let sentence = |check: &str| case(&cases, check).checks[0].explanation.clone();
    let failed = |check: &str| {
        let c = case(&cases, check);
        assert_eq!(c.status, CaseStatus::Failed, "{}", explain(c));
    };
    failed("reassembly");
    assert!(
        sentence("reassembly")
            .starts_with("replies 0–2 came back as one: the server treats each recv() as one message"),
        "{}",
        sentence("reassembly")
    );
    failed("large-message");
    assert_eq!(
        sentence("large-message"),
        "the server answered after 1024 bytes: it reads one recv() per message"
    );
    failed("eof");
    let eof = case(&cases, "eof");
    assert!(sentence("eof").starts_with("the server spun for 2.0 s at "), "{}", sentence("eof"));
    assert!(sentence("eof").ends_with("% CPU after the client closed: it ignores recv() returning 0"));
    failed("slow-reader");
    assert!(
        sentence("slow-reader").ends_with(": the server ignores a partial send()"),
        "{}",
        sentence("slow-reader")
    );
    assert!(metric(case(&cases, "slow-reader"), "reply_bytes_lost") > 0.0);
    // It survives a reset: it catches the error and serves on.
    assert_eq!(case(&cases, "reset").status, CaseStatus::Passed, "{}", explain(case(&cases, "reset")));

    // Cross-check the server CPU figure against the server's own clock: Python's
    // time.process_time() (CLOCK_PROCESS_CPUTIME_ID) over its spin, printed when it
    // stopped, against socklab's /proc/PID/stat ticks over the eof window. Both are
    // rates of the same busy loop; they agree within 25 points of a core.
    let socklab_percent = metric(eof, "server_cpu_percent");
    assert!(
        metric(eof, "server_runnable_percent") > 90.0,
        "a spinner is runnable all the time, whatever the load: {}",
        explain(eof)
    );
    let process = eof.target.as_ref().and_then(|t| t.process.as_ref()).expect("a --target-cmd record");
    let line = process
        .stdout_tail
        .iter()
        .find(|l| l.starts_with("eof-spin stopped:"))
        .unwrap_or_else(|| panic!("the server printed no spin: {process:?}"));
    // "eof-spin stopped: 2.004 s wall, 1.810 s cpu"
    let numbers: Vec<f64> =
        line.split(|c: char| !c.is_ascii_digit() && c != '.').filter_map(|w| w.parse().ok()).collect();
    let own_percent = numbers[1] / numbers[0] * 100.0;
    println!(
        "eof server CPU: socklab {socklab_percent:.0}% of a core, the server's own clock {own_percent:.0}%"
    );
    assert!(
        (socklab_percent - own_percent).abs() < 25.0,
        "socklab {socklab_percent}%, server {own_percent}%: {line}"
    );
}

/// The "done when": a naive recv-per-message server passes reassembly when each
/// message comes in a write of its own, and fails the same input through a relay that
/// splits the stream (`impair=split=1`, `split=1..7`), as a real network may. The
/// reference server passes through the same relays: the failure is the naive server's.
#[test]
fn a_naive_server_passes_whole_writes_and_fails_them_through_a_splitting_relay() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "check=reassembly",
        "chunking=per-message",
        // Wide pauses (the parameter's largest), so the naive server reads each message
        // apart even on a busy machine: at 50 ms, one local run failed its direct case.
        "gap_ms=100",
        "framing=line",
        "behaviour=echo-upper",
        "impair=none,split=1,split=1..7",
    ];
    let naive = run(&sets, naive_target(dir.path()));
    let reference = run(&sets, Target::Reference);
    assert_eq!((naive.len(), reference.len()), (3, 3));
    for case in &reference {
        assert_eq!(case.status, CaseStatus::Passed, "{}", explain(case));
    }
    let (direct, through) = (&naive[0], &naive[1..]);
    assert_eq!(direct.params["impair"], "none");
    assert_eq!(direct.status, CaseStatus::Passed, "without the relay: {}", explain(direct));
    assert!(direct.observations.proxy.is_none());
    for case in through {
        assert_eq!(case.status, CaseStatus::Failed, "through the relay: {}", explain(case));
        assert!(
            case.checks[0].explanation.contains("the server treats each recv() as one message"),
            "{}",
            explain(case)
        );
        // The relay's record: it wrote each message to the server in pieces of 7 bytes at most.
        let proxy = case.observations.proxy.as_ref().expect("the relay's record");
        let up = &proxy.connections[0].up;
        assert!(up.bytes_out >= 3 * 65, "{}: three 64-byte lines passed on: {up:?}", case.id);
        assert!(up.output_writes.first.iter().all(|w| (1..=7).contains(&w.len)), "{}: {up:?}", case.id);
        assert!(metric(case, "proxy_writes") > metric(case, "proxy_reads"), "{}", case.id);
    }
}
