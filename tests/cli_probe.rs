//! `socklab probe`: the server-conformance family against a server in another process —
//! a deliberately naive one (exit 1, the failing checks named in plain words) and
//! `socklab serve` (exit 0) — and one-line errors, exit 2, for bad input.

use std::fs;

use serde_json::Value;

mod common;
use common::{report, serve, socklab};

/// A line server that upper-cases each recv() and has the classic bugs.
const NAIVE_SERVER: &str = include_str!("../scenarios/tests/fixtures/naive_line_server.py");

/// The first check of the case whose id names `check`.
fn check_of<'a>(report: &'a Value, check: &str) -> &'a Value {
    let case = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["params"]["check"] == check && c["params"]["half_close"] == false)
        .unwrap_or_else(|| panic!("no {check} case in {report}"));
    &case["checks"][0]
}

#[test]
fn probing_a_naive_server_exits_1_and_names_the_failing_checks() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("naive.py");
    fs::write(&script, NAIVE_SERVER).unwrap();
    let out = dir.path().join("r");
    let output = socklab()
        .args(["probe", "--target-cmd", &format!("python3 {} {{port}}", script.display())])
        .args(["--framing", "line", "--behaviour", "echo-upper", "--seed", "7", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("note: hostile-length does not apply to line: it has no length prefix"),
        "{stderr}"
    );
    assert!(stdout.contains("7 cases: 2 passed, 5 failed"), "{stdout}");
    for check in ["reassembly", "large-message", "eof", "slow-reader"] {
        assert!(
            stdout.contains(&format!(
                "FAIL server-conformance[check={check},framing=line,behaviour=echo-upper]"
            )),
            "{check}: {stdout}"
        );
    }
    // Each failing case prints the command that replays it alone.
    assert!(
        stdout.contains("replay: socklab run server-conformance --set behaviour=echo-upper --set check=eof")
    );

    let report = report(&out);
    let sentence = |check: &str| check_of(&report, check)["explanation"].as_str().unwrap().to_string();
    assert!(
        sentence("reassembly")
            .starts_with("replies 0–2 came back as one: the server treats each recv() as one message")
    );
    assert_eq!(
        sentence("large-message"),
        "the server answered after 1024 bytes: it reads one recv() per message"
    );
    assert!(
        sentence("eof").ends_with("% CPU after the client closed: it ignores recv() returning 0"),
        "{}",
        sentence("eof")
    );
    assert!(
        sentence("slow-reader").ends_with("the server ignores a partial send()"),
        "{}",
        sentence("slow-reader")
    );
    assert_eq!(check_of(&report, "concurrency")["passed"], true, "its select() loop serves clients together");
    assert_eq!(check_of(&report, "reset")["passed"], true);
    // The Markdown report carries the same sentences.
    let markdown = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("the server answered after 1024 bytes: it reads one recv() per message"));
}

/// The issue's "done when": a probe of the naive server through `impair=split=1..7` fails
/// on inputs it passes without the relay (a write per message, as a tutorial client
/// sends), and says which checks a relay cannot judge.
#[test]
fn probing_a_naive_server_through_a_splitting_relay_fails_what_it_passes_without() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("naive.py");
    fs::write(&script, NAIVE_SERVER).unwrap();
    let probe = |extra: &[&str], out: &std::path::Path| {
        let output = socklab()
            .args(["probe", "--target-cmd", &format!("exec python3 {} {{port}}", script.display())])
            .args(["--framing", "line", "--behaviour", "echo-upper", "--seed", "11"])
            .args(["--set", "chunking=per-message", "--set", "gap_ms=50"])
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "the naive server fails eof either way");
        (String::from_utf8_lossy(&output.stderr).to_string(), report(out))
    };
    let (_, direct) = probe(&[], &dir.path().join("direct"));
    let (notes, relayed) = probe(&["--set", "impair=split=1..7"], &dir.path().join("relayed"));
    for check in ["reassembly", "concurrency", "reset"] {
        assert_eq!(check_of(&direct, check)["passed"], true, "{check} without the relay: {direct}");
        assert_eq!(check_of(&relayed, check)["passed"], false, "{check} through split=1..7: {relayed}");
    }
    assert!(
        check_of(&relayed, "reassembly")["explanation"]
            .as_str()
            .unwrap()
            .ends_with("the server treats each recv() as one message (when sent as one write per message through impair=split=1..7)"),
        "{}",
        check_of(&relayed, "reassembly")
    );
    assert!(notes.contains("note: slow-reader does not apply through impair"), "{notes}");
    assert!(
        notes.contains("note: large-message moves 1048576 bytes each way through impair=split=1..7"),
        "{notes}"
    );
}

#[test]
fn probing_socklab_serve_in_another_process_exits_0() {
    let (mut server, addr) = serve(&["--framing", "line", "--behaviour", "echo-upper"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let output = socklab()
        .args(["probe", &addr.to_string(), "--framing", "line", "--behaviour", "echo-upper", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("7 cases: 7 passed, 0 failed"), "{stdout}");
    let report = report(&out);
    assert_eq!(report["run"]["suite"], "probe");
    for case in report["cases"].as_array().unwrap() {
        assert_eq!(case["target"]["addr"], addr.to_string(), "{case}");
    }
}

#[test]
fn bad_input_gets_one_line_errors_and_exit_2() {
    let cases: [(&[&str], &str); 10] = [
        (&[], "the following required arguments were not provided"),
        (&["localhost"], "cannot parse target address `localhost`: expected IP:PORT"),
        (&["127.0.0.1:0"], "target address `127.0.0.1:0` has port 0, where no server can be reached"),
        (&["127.0.0.1:9", "--framing", "u24be"], "unknown framing strategy \"u24be\""),
        (
            &["127.0.0.1:9", "--behaviour", "echo_upper"],
            "unknown behaviour `echo_upper`; valid: echo, echo-upper, sink, source",
        ),
        (&["--target-cmd", "python3 server.py"], "has no {port}"),
        (
            &["--target-cmd", "echo boom >&2; exit 1 # {port}"],
            "exited (exited with status 1) before listening on 127.0.0.1:",
        ),
        (&["127.0.0.1:9", "--target-cmd", "x {port}"], "cannot be used with"),
        (
            &["127.0.0.1:9", "--set", "clientz=3"],
            "unknown parameter `clientz` for scenario `server-conformance`",
        ),
        (
            &["127.0.0.1:9", "--framing", "fixed:8"],
            "no server-conformance check applies: fixed:8 records are 8 bytes",
        ),
    ];
    for (args, message) in cases {
        let output = socklab().arg("probe").args(args).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.starts_with("note:")
                    && !l.starts_with("For more information")
                    && !l.starts_with("Usage:")
                    && !l.starts_with("  ")
            })
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    }
}

/// `--set` matrices multiply without overflow: eight parameters of 256 values are 2^64
/// combinations per check (the count wrapped to 0 and the probe allocated until it
/// aborted); exit 2 at once with the true number of cases.
#[test]
fn set_matrices_past_the_case_limit_are_refused_with_their_true_size() {
    let sets = [
        ("messages", 1),
        ("message_size", 16),
        ("large_size", 16),
        ("session_ms", 100),
        ("eof_timeout_ms", 100),
        ("reply_timeout_ms", 100),
        ("slow_bytes", 1024),
        ("slow_rcvbuf", 1024),
    ];
    let mut command = socklab();
    command.args(["probe", "127.0.0.1:9"]);
    for (name, first) in sets {
        let values: Vec<String> = (first..first + 256).map(|v: u32| v.to_string()).collect();
        command.args(["--set", &format!("{name}={}", values.join(","))]);
    }
    let started = std::time::Instant::now();
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "refused before any case is made");
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{stderr}"));
    let cases: u128 = error
        .strip_prefix("error: the suite expands to ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{error}"));
    assert!(cases >= 1 << 64 && cases % (1 << 64) == 0, "each check's 2^64 combinations: {error}");
    assert!(error.ends_with("cases, more than the limit of 10000; shrink the matrices"), "{error}");
}

/// A port where nothing listens (nothing accepts there, and TCP refuses at once) — as
/// long as nothing binds it in the few milliseconds after this returns.
fn closed_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A target where nothing listens is one line and exit 2 before any check runs; before,
/// every check failed on its own (8 FAIL lines, exit 1).
#[test]
fn a_target_where_nothing_listens_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let addr = closed_port();
    let output =
        socklab().arg("probe").arg(addr.to_string()).arg("--out").arg(dir.path().join("r")).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("note:")).collect();
    assert_eq!(
        lines,
        [format!(
            "error: nothing listens at {addr}: the connection was refused; start your server there first, or let \
             socklab start it with --target-cmd"
        )]
    );
    assert!(!dir.path().join("r").exists(), "no report of checks that never ran");
}
