//! Running scenarios against a server in another process: `--target ADDR` and
//! `--target-cmd 'CMD {port}'`, and the one-line errors for targets that cannot work.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;

mod common;
use common::{report, serve, socklab};

#[test]
fn framing_throughput_measures_a_server_in_another_process() {
    let (mut server, addr) = serve(&["--framing", "varint"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args(["run", "framing-throughput", "--set", "framing=varint", "--set", "mode=ping-pong,pipelined"])
        .args(["--set", "duration_ms=200", "--target", &addr.to_string(), "--out"])
        .arg(&out)
        .assert()
        .success();
    let _ = server.kill();
    let _ = server.wait();
    let report = report(&out);
    for case in report["cases"].as_array().unwrap() {
        assert_eq!(case["status"], "passed", "{case}");
        assert_eq!(case["target"]["addr"], addr.to_string(), "the report names the server it measured");
        let sent = case["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "sent").unwrap();
        assert!(sent["value"].as_f64().unwrap() > 10.0, "{case}");
    }
}

#[test]
fn a_target_command_is_started_per_case_stopped_and_recorded() {
    let binary = assert_cmd::cargo::cargo_bin("socklab");
    let command = format!("exec {} serve --listen 127.0.0.1:{{port}} --framing u32be", binary.display());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args(["run", "framing-throughput", "--set", "mode=ping-pong", "--set", "duration_ms=100,150"])
        .args(["--target-cmd", &command, "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = report(&out);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let ports: Vec<&str> = cases.iter().map(|c| c["target"]["addr"].as_str().unwrap()).collect();
    assert_ne!(ports[0], ports[1], "a fresh server, on a fresh port, per case");
    for case in cases {
        let process = &case["target"]["process"];
        assert_eq!(process["exit"], "exited with status 0", "SIGTERM stops socklab serve cleanly: {process}");
        assert!(
            process["stdout_tail"][0].as_str().unwrap().starts_with("listening on 127.0.0.1:"),
            "{process}"
        );
        assert!(process["cpu_ms"].as_f64().unwrap() > 0.0, "{process}");
        let metrics = case["metrics"].as_array().unwrap();
        assert!(metrics.iter().any(|m| m["name"] == "target_cpu_ms"), "the server's CPU during the workload");
    }
}

/// Bulk mode against `socklab serve --behaviour sink` in another process: the client
/// sends for the duration and the sink reads every byte before it closes; the sink's own
/// counters say every message arrived intact.
#[test]
fn bulk_runs_against_a_sink_in_another_process() {
    let mut server = StdCommand::cargo_bin("socklab")
        .unwrap()
        .args(["serve", "--behaviour", "sink"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line["listening on ".len()..].split_whitespace().next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args(["run", "framing-throughput", "--set", "mode=bulk", "--set", "duration_ms=200"])
        .args(["--target", &addr.to_string(), "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = report(&out);
    let case = &report["cases"][0];
    assert_eq!(case["checks"][0]["name"], "target_read_every_byte", "{case}");
    assert_eq!(case["checks"][0]["passed"], true, "{case}");
    let _ = std::process::Command::new("kill").args(["-INT", &server.id().to_string()]).status();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    server.wait().unwrap();
    let sent = case["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "sent").unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(rest.contains(&format!("{} intact, 0 corrupted, 0 out of order", sent as u64)), "{rest}");
}

#[test]
fn targets_that_cannot_work_get_one_line_errors_and_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--target", "localhost"],
            "error: invalid value 'localhost' for '--target <ADDR>': cannot parse target address `localhost`: expected IP:PORT",
        ),
        (&["--target-cmd", "python3 server.py"], "has no {port}"),
        (
            &["--target-cmd", "echo boom >&2; exit 1 # {port}"],
            "exited (exited with status 1) before listening on 127.0.0.1:",
        ),
        (&["--target", "127.0.0.1:9", "tcp-coalescing"], "tcp-coalescing cannot run against 127.0.0.1:9"),
    ];
    for (args, message) in cases {
        let mut command = socklab();
        command.arg("run");
        if !args.contains(&"tcp-coalescing") {
            command.arg("framing-throughput");
        }
        let output = command.args(args).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        // One line of error; clap adds its usual hint to usage errors.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                !l.trim().is_empty() && !l.starts_with("note:") && !l.starts_with("For more information")
            })
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    }
    // The stderr tail of a command that exits at once is in the message.
    socklab()
        .args(["run", "framing-throughput", "--target-cmd", "echo boom >&2; exit 1 # {port}"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("its stderr ends: boom"));
}

/// `run --target` checks the address once too: nothing listening is one line, exit 2,
/// for any scenario that takes a target.
#[test]
fn run_against_a_target_where_nothing_listens_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for scenario in ["server-conformance", "framing-throughput"] {
        socklab()
            .args(["run", scenario, "--target", &addr.to_string(), "--out"])
            .arg(dir.path().join("r"))
            .assert()
            .code(2)
            .stderr(format!(
                "error: nothing listens at {addr}: the connection was refused; start your server there first, or \
                 let socklab start it with --target-cmd\n"
            ));
    }
}
