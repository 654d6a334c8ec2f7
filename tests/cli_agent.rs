//! `socklab agent --stdio` as a process, and `socklab run --peer-cmd`: hostile input on
//! the agent's stdin gets error lines and the agent serves on; a runner facing another
//! version, a command that fails, or a scenario that cannot take a peer stops with one
//! line and exit 2 before any case runs.

use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::{report, socklab};

/// The path of the socklab binary under test, for `--peer-cmd`.
fn binary() -> String {
    std::process::Command::cargo_bin("socklab").unwrap().get_program().to_string_lossy().into_owned()
}

fn hello() -> String {
    format!(r#"{{"type":"hello","protocol":1,"socklab_version":"{}"}}"#, env!("CARGO_PKG_VERSION"))
}

fn reply_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON reply line"))
        .collect()
}

#[test]
fn the_agent_needs_stdio() {
    socklab().arg("agent").assert().code(2).stderr(predicate::str::contains("--stdio"));
}

#[test]
fn the_agent_answers_garbage_with_errors_and_serves_on() {
    let mut input = format!("{}\nnot json at all\n{{\"type\":\"shell\",\"id\":2,\"cmd\":\"id\"}}\n", hello());
    input += &"x".repeat(5000);
    input += "\n{\"type\":\"clock\",\"id\":3}\n";
    let output = socklab()
        .args(["agent", "--stdio", "--max-line", "4096"])
        .write_stdin(input)
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let replies = reply_lines(&output.stdout);
    let types: Vec<&str> =
        replies.iter().map(|r| r["code"].as_str().or(r["type"].as_str()).unwrap()).collect();
    assert_eq!(types, ["hello", "malformed", "unknown_type", "line_too_long", "clock"], "{replies:?}");
    assert!(replies[3]["message"].as_str().unwrap().contains("5000 bytes is over the limit of 4096"));
}

#[test]
fn the_agent_exits_1_when_its_input_ends_mid_message() {
    let output = socklab()
        .args(["agent", "--stdio"])
        .write_stdin(format!("{}\n{{\"type\":\"cl", hello()))
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let replies = reply_lines(&output.stdout);
    assert_eq!(replies.last().unwrap()["code"], "truncated");
    assert!(String::from_utf8_lossy(&output.stderr).contains("ended in the middle of a message"));
}

#[test]
fn an_agent_of_another_version_is_one_line_and_exit_2() {
    // A stand-in agent that answers hello as version 9.9.9 would.
    let fake = r#"printf '%s\n' '{"type":"hello","protocol":1,"socklab_version":"9.9.9","host":{"hostname":"b","kernel":"6.1","cpu_count":1}}'; cat >/dev/null"#;
    let dir = tempfile::tempdir().unwrap();
    let assert = socklab()
        .args(["run", "tcp-coalescing", "--peer-cmd", fake, "--out"])
        .arg(dir.path().join("r"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("version skew") && stderr.contains("9.9.9"), "{stderr}");
    assert!(!dir.path().join("r").exists(), "no case ran, no report was written");
    // And the real agent, told another version, refuses with exit 2.
    socklab()
        .args(["agent", "--stdio"])
        .write_stdin("{\"type\":\"hello\",\"protocol\":1,\"socklab_version\":\"9.9.9\"}\n")
        .assert()
        .code(2)
        .stdout(predicate::str::contains("version_mismatch"));
}

#[test]
fn a_peer_command_that_fails_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    socklab()
        .args([
            "run",
            "tcp-coalescing",
            "--peer-cmd",
            "echo 'ssh: connect to host b: Connection refused' >&2; exit 255",
        ])
        .arg("--out")
        .arg(dir.path().join("r"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("exited with status 255")
                .and(predicate::str::contains("Connection refused")),
        );
}

/// A command that prints something other than the protocol (here a greeting, then it
/// sleeps) is one line naming what it printed, exit 2, at once: before, socklab waited
/// 30 s and said only "no reply to hello".
#[test]
fn a_peer_command_that_prints_garbage_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let output = socklab()
        .args(["run", "tcp-coalescing", "--peer-cmd", "echo hello world; sleep 60", "--out"])
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: --peer-cmd `echo hello world; sleep 60` wrote `hello world` on its stdout while socklab waited \
             for hello (the version check): that is not socklab's agent protocol"
        ),
        "{stderr}"
    );
}

#[test]
fn scenarios_without_a_remote_server_side_are_refused_with_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let peer = format!("{} agent --stdio", binary());
    socklab()
        .args(["run", "nagle-delayed-ack", "--peer-cmd", &peer, "--out"])
        .arg(dir.path().join("r"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "nagle-delayed-ack cannot run its server side through an agent (--peer-cmd); scenarios that can: ",
        ));
    socklab()
        .args(["run", "tcp-coalescing", "--peer-addr", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--peer-cmd"));
}

/// What a reader compares between two reports of the same cases: ids, statuses, reads,
/// boundary maps, checks.
fn what_a_reader_sees(report: &Value) -> Vec<Value> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let stream = &case["observations"]["stream"];
            let reads: Vec<&Value> = stream["reads"].as_array().unwrap().iter().map(|r| &r["text"]).collect();
            let checks: Vec<(&Value, &Value, &Value)> = case["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (&c["name"], &c["observed"], &c["passed"]))
                .collect();
            serde_json::json!({"id": case["id"], "status": case["status"], "reads": reads,
                "map": stream["boundary_map"], "checks": checks})
        })
        .collect()
}

#[test]
fn a_tcp_coalescing_report_through_an_agent_looks_like_a_loopback_one() {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let sets = ["--set", "read_size=5,1024", "--seed", "7"];
    socklab().args(["run", "tcp-coalescing"]).args(sets).arg("--out").arg(&local).assert().success();
    let peer = format!("{} agent --stdio", binary());
    socklab()
        .args(["run", "tcp-coalescing"])
        .args(sets)
        .args(["--peer-cmd", &peer, "--out"])
        .arg(&remote)
        .assert()
        .success();
    let (local, remote) = (report(&local), report(&remote));
    assert_eq!(what_a_reader_sees(&remote), what_a_reader_sees(&local));
    // The run metadata names both hosts.
    let peer_record = &remote["run"]["peer"];
    assert_eq!(peer_record["command"], peer.as_str());
    assert_eq!(peer_record["kernel"], remote["run"]["kernel"]);
    assert_eq!(peer_record["cpu_count"], remote["run"]["cpu_count"]);
    assert_eq!(peer_record["socklab_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(peer_record["addr"], "127.0.0.1", "an agent in this namespace is reached over loopback");
    assert!(remote["run"]["hostname"].is_string());
    assert!(local["run"].get("peer").is_none());
    // Each case says which link it ran over.
    assert_eq!(remote["cases"][0]["observations"]["link"]["kind"], "peer");
}

#[test]
fn recv_buffer_and_framing_throughput_run_their_server_side_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let peer = format!("{} agent --stdio", binary());
    let out = dir.path().join("r");
    let suite = dir.path().join("peer.toml");
    std::fs::write(
        &suite,
        r#"name = "peer"
[[run]]
scenario = "recv-buffer"
[run.params]
bytes = 1048576
read_size = [1024, 65536]
[[run]]
scenario = "framing-throughput"
[run.params]
mode = ["bulk", "ping-pong", "pipelined"]
duration_ms = 100
"#,
    )
    .unwrap();
    socklab()
        .args(["run", "--suite"])
        .arg(&suite)
        .args(["--peer-cmd", &peer, "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = report(&out);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        assert_eq!(case["status"], "passed", "{case}");
        let names: Vec<&str> =
            case["metrics"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        if case["scenario"] == "framing-throughput" {
            assert!(names.contains(&"peer_cpu_ms"), "the agent's CPU comes back: {names:?}");
        } else {
            assert!(names.contains(&"reads_per_mib"), "{names:?}");
        }
    }
}

#[test]
fn a_veth_case_with_a_peer_is_refused() {
    let peer = format!("{} agent --stdio", binary());
    socklab()
        .args(["run", "tcp-coalescing", "--set", "link=veth", "--peer-cmd", &peer])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("link=veth makes both ends on this host"));
}

#[test]
fn a_udp_case_with_a_peer_is_refused_before_any_case_runs() {
    let peer = format!("{} agent --stdio", binary());
    socklab()
        .args(["run", "framing-throughput", "--set", "transport=udp", "--set", "mode=ping-pong"])
        .args(["--peer-cmd", &peer])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("transport=udp runs against a server on this host"));
}

/// A case that times out between starting its role on the agent and stopping it leaves
/// the role running there; the runner stops it after the case. Without that, the agent's
/// role limit (16) filled up and every case after the 16th failed to start its server.
#[test]
fn roles_of_timed_out_cases_are_stopped_so_later_cases_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let peer = format!("{} agent --stdio", binary());
    // 1-byte reads of 1 GiB outlast the 1 s timeout: every case times out mid-transfer.
    let read_sizes = (1..=18).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
    socklab()
        .args(["run", "recv-buffer", "--peer-cmd", &peer, "--timeout", "1"])
        .args(["--set", "bytes=1073741824", "--set", &format!("read_size={read_sizes}")])
        .arg("--out")
        .arg(dir.path().join("r"))
        .assert()
        .code(1);
    let report = report(&dir.path().join("r"));
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for case in cases {
        assert_eq!(case["status"], "timed_out", "{}: {}", case["id"], case["error"]);
    }
}
