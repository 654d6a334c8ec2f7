//! The `socklab` command: exit codes, error messages, and the report folder it writes.

use std::fs;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::socklab;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Every registered scenario, comma-separated, as error messages list them.
fn scenario_names() -> String {
    socklab_scenarios::registry().iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

/// A suite file in a temporary folder.
fn suite(dir: &Path, text: &str) -> String {
    let path = dir.join("suite.toml");
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn list_shows_every_scenario_with_parameters() {
    socklab().arg("list").assert().success().stdout(predicate::str::contains("tcp-coalescing")).stdout(
        predicate::str::is_match(r"\n    read_size {2,}integer in 1\.\.=1048576, bytes; default 5\n")
            .unwrap(),
    );
}

#[test]
fn list_keeps_every_name_apart_from_its_type_and_unit() {
    let out = socklab().arg("list").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // Columns as wide as the longest name of the whole registry, plus two spaces.
    let line = |start: &str| text.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_default();
    let delay = line("receiver_delay_ms ");
    assert!(delay.contains("ms  ") && delay.ends_with("integer in 0..=5000, ms; default 20"), "{delay}");
    let refused = line("send_errors_econnrefused ");
    assert!(
        refused.contains("econnrefused  ") && refused.ends_with("↓ send calls that failed with ECONNREFUSED"),
        "{refused}"
    );
    for scenario in socklab_scenarios::registry().iter() {
        let names = scenario.params().iter().map(|p| p.name).chain(scenario.metrics().iter().map(|m| m.name));
        for name in names {
            let line = format!("\n    {name}  ");
            assert!(text.contains(&line), "{}: `{name}` runs into the next column", scenario.name());
        }
    }
    for line in text.lines() {
        assert!(line.chars().count() <= 88 || !line.starts_with("    "), "too wide: {line}");
    }
}

#[test]
fn list_json_is_machine_readable() {
    let out = socklab().args(["list", "--json"]).output().unwrap();
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scenario = &list[0];
    assert_eq!(scenario["name"], "tcp-coalescing");
    let read_size = scenario["params"].as_array().unwrap().iter().find(|p| p["name"] == "read_size").unwrap();
    assert_eq!(read_size["default"], 5);
    assert_eq!(read_size["unit"], "bytes");
    assert_eq!(read_size["type"], "integer");
    assert_eq!(read_size["max"], 1_048_576);
}

#[test]
fn explain_prints_the_explanation() {
    socklab()
        .args(["explain", "tcp-coalescing"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Why it happens"))
        .stdout(predicate::str::contains("What fixes it"));
}

#[test]
fn run_writes_json_markdown_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args(["run", "tcp-coalescing", "--seed", "7", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 case: 1 passed, 0 failed"))
        .stderr(predicate::str::contains("[1/1] PASS tcp-coalescing"));
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["run"]["seed"], 7);
    assert_eq!(report["cases"].as_array().unwrap().len(), 1);
    let reads: Vec<_> = report["cases"][0]["observations"]["stream"]["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reads, ["12345", "67abc", "dehhh", "hh"]);
    let junit = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 2);
    assert!(fs::read_to_string(out.join("report.md")).unwrap().contains("msg0[5..7] + msg1[0..3]"));
}

#[test]
fn set_lists_become_a_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args(["run", "tcp-coalescing", "--set", "read_size=5,1024", "--set", "nodelay=true", "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = read_json(&out.join("report.json"));
    let ids: Vec<_> = report["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["tcp-coalescing[read_size=5,nodelay=true]", "tcp-coalescing[read_size=1024,nodelay=true]"]
    );
}

#[test]
fn unknown_scenario_exits_2_and_lists_the_valid_ones() {
    socklab().args(["run", "no-such-scenario"]).assert().code(2).stderr(format!(
        "error: unknown scenario `no-such-scenario`; valid scenarios: {}\n",
        scenario_names()
    ));
    socklab().args(["explain", "nope"]).assert().code(2).stderr(predicate::str::contains("valid scenarios"));
}

#[test]
fn unknown_parameter_exits_2_and_lists_the_valid_ones() {
    socklab().args(["run", "tcp-coalescing", "--set", "readsize=5"]).assert().code(2).stderr(
        "error: unknown parameter `readsize` for scenario `tcp-coalescing`; \
         valid parameters: messages, read_size, read_delay_ms, nodelay, warm, impair, large_message, link, mtu, \
         rate, delay_ms\n",
    );
}

#[test]
fn bad_value_exits_2_with_the_expected_type() {
    socklab()
        .args(["run", "tcp-coalescing", "--set", "read_size=0"])
        .assert()
        .code(2)
        .stderr("error: bad value `0` for parameter `read_size`: expected integer in 1..=1048576 (bytes)\n");
    socklab()
        .args(["run", "tcp-coalescing", "--set", "nodelay=maybe"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected bool (true or false)"));
    socklab()
        .args(["run", "tcp-coalescing", "--set", "nodelay"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected KEY=VALUE"));
}

#[test]
fn suite_errors_exit_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path =
        suite(dir.path(), "[[run]]\nscenario = \"tcp-coalescing\"\n[run.params]\nread_size = [5, \"x\"]\n");
    socklab().args(["run", "--suite", &path]).assert().code(2).stderr(format!(
        "error: {path}:4:13: bad value `x` for parameter `read_size`: expected integer in 1..=1048576 (bytes)\n"
    ));
    let path = suite(dir.path(), "[[run]\nscenario = 1\n");
    socklab()
        .args(["run", "--suite", &path])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(format!("error: {path}:1:")));
}

/// A suite narrowed to scenarios it does not run says which it runs (before, the list
/// was taken after narrowing, so always empty).
#[test]
fn a_suite_narrowed_to_scenarios_it_lacks_names_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite(
        dir.path(),
        "[[run]]\nscenario = \"tcp-coalescing\"\n[[run]]\nscenario = \"udp-truncation\"\n\
         [[run]]\nscenario = \"tcp-coalescing\"\n",
    );
    socklab().args(["run", "--suite", &path, "nagle-delayed-ack"]).assert().code(2).stderr(format!(
        "error: {path} has no runs of nagle-delayed-ack; its scenarios: tcp-coalescing, udp-truncation\n"
    ));
}

#[test]
fn errors_name_their_cause_once() {
    socklab()
        .args(["run", "--suite", "/nonexistent.toml"])
        .assert()
        .code(2)
        .stderr("error: cannot read suite file /nonexistent.toml: No such file or directory (os error 2)\n");
    socklab()
        .args(["report", "/nonexistent"])
        .assert()
        .code(2)
        .stderr("error: cannot read /nonexistent/report.json: No such file or directory (os error 2)\n");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("report.json"), "{").unwrap();
    socklab().arg("report").arg(dir.path()).assert().code(2).stderr(format!(
        "error: {}: not a socklab report: EOF while parsing an object at line 1 column 1\n",
        dir.path().join("report.json").display()
    ));
}

#[test]
fn a_failing_threshold_exits_1_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let path = suite(
        dir.path(),
        "[[run]]\nscenario = \"tcp-coalescing\"\n[[run.expect]]\nmetric = \"sticky_reads\"\nop = \"==\"\nvalue = 0\n",
    );
    socklab()
        .args(["run", "--suite", &path, "--seed", "3", "--out"])
        .arg(&out)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL tcp-coalescing"))
        .stdout(predicate::str::contains(format!(
            "replay: socklab run --suite {path} --case tcp-coalescing --seed 3"
        )))
        .stderr(predicate::str::contains(
            "expect sticky_reads == 0: expected sticky_reads == 0, observed sticky_reads = 2",
        ));
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["cases"][0]["status"], "failed");
    let junit = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("observed sticky_reads = 2"), "{junit}");
}

#[test]
fn a_report_folder_survives_a_run_that_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab().args(["run", "tcp-coalescing", "--seed", "11", "--out"]).arg(&out).assert().success();
    socklab().args(["run", "tcp-coalescing", "--set", "read_size=0", "--out"]).arg(&out).assert().code(2);
    assert_eq!(read_json(&out.join("report.json"))["run"]["seed"], 11);
}

#[test]
fn run_refuses_to_replace_a_folder_that_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let out = socklab().args(["run", "tcp-coalescing", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(error.starts_with(&format!("error: refusing to replace {}: ", dir.path().display())), "{error}");
    assert!(error.contains("is not a socklab report folder"), "{error}");
    assert_eq!(
        error.matches(&dir.path().display().to_string()).count(),
        1,
        "the folder is named once: {error}"
    );
    assert_eq!(fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "mine");
}

#[test]
fn report_re_renders_from_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab().args(["run", "tcp-coalescing", "--out"]).arg(&out).assert().success();
    fs::remove_file(out.join("report.md")).unwrap();
    socklab().arg("report").arg(&out).assert().success();
    assert!(fs::read_to_string(out.join("report.md")).unwrap().contains("# socklab report"));
    socklab()
        .arg("report")
        .arg(dir.path().join("missing"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("report.json"));
}

#[test]
fn usage_errors_exit_2() {
    socklab().arg("frobnicate").assert().code(2);
    socklab().args(["run", "--timeout", "0"]).assert().code(2);
}

#[test]
fn a_scenario_filter_on_a_suite_without_it_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite(dir.path(), "[[run]]\nscenario = \"tcp-coalescing\"\n");
    socklab()
        .args(["run", "--suite", &path, "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown scenario `nope`"));
}

/// `name = [v, v, ...]` with `count` values from `value(i)`.
fn matrix_line(name: &str, count: usize, value: impl Fn(usize) -> String) -> String {
    format!("{name} = [{}]\n", (0..count).map(value).collect::<Vec<_>>().join(","))
}

/// The case limit counts without overflow: four parameters of 65,536 values are 2^64
/// cases (a usize product wrapped to 0, passed the limit and allocated until the process
/// aborted), eight of 1,000 are 10^24 (printed wrapped). Both are exit 2 with the true
/// number, at once.
#[test]
fn a_suite_past_the_case_limit_is_refused_with_its_true_size() {
    let dir = tempfile::tempdir().unwrap();
    let head = "[[run]]\nscenario = \"tcp-coalescing\"\n[run.params]\n";
    let huge = [
        matrix_line("read_size", 65_536, |i| (i + 1).to_string()),
        matrix_line("read_delay_ms", 65_536, |i| (i % 10_001).to_string()),
        matrix_line("nodelay", 65_536, |_| "false".into()),
        matrix_line("warm", 65_536, |_| "true".into()),
    ];
    let path = suite(dir.path(), &format!("{head}{}", huge.concat()));
    let started = std::time::Instant::now();
    socklab().args(["run", "--suite", &path]).assert().code(2).stderr(
        "error: the suite expands to 18446744073709551616 cases, more than the limit of 10000; shrink the matrices\n",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "refused before any case is made");
    let thousand = [
        matrix_line("read_size", 1000, |i| (i + 1).to_string()),
        matrix_line("read_delay_ms", 1000, |i| i.to_string()),
        matrix_line("nodelay", 1000, |_| "false".into()),
        matrix_line("warm", 1000, |_| "true".into()),
        matrix_line("messages", 1000, |_| "[\"a\"]".into()),
        matrix_line("large_message", 1000, |i| i.to_string()),
        matrix_line("mtu", 1000, |i| (576 + i).to_string()),
        matrix_line("delay_ms", 1000, |i| i.to_string()),
    ];
    let path = suite(dir.path(), &format!("{head}{}", thousand.concat()));
    socklab().args(["run", "--suite", &path]).assert().code(2).stderr(
        "error: the suite expands to 1000000000000000000000000 cases, more than the limit of 10000; shrink the \
         matrices\n",
    );
}

/// Values that leave nothing to work with are refused: a relay to port 0 (no server can
/// be there) and a buffer cap of 0 bytes (every partial frame would be shed). Before,
/// both ran until stopped.
#[test]
fn a_proxy_to_port_0_and_a_zero_buffer_cap_are_refused() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["proxy", "--upstream", "127.0.0.1:0"],
            "error: invalid value '127.0.0.1:0' for '--upstream <ADDR>': `127.0.0.1:0` has port 0, where no server \
             can be reached",
        ),
        (
            &["serve", "--max-buffered", "0"],
            "error: invalid value '0' for '--max-buffered <BYTES>': 0 bytes holds nothing",
        ),
    ];
    for (args, message) in cases {
        let output = socklab().args(args).timeout(std::time::Duration::from_secs(20)).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.lines().next().is_some_and(|l| l.starts_with(message)), "{args:?}: {stderr}");
    }
}
