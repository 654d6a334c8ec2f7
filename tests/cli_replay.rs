//! Running exactly the cases asked for: `--set` turns a built-in sweep off (`--sweep`
//! keeps it), `--case` picks cases by id, and the replay command printed for a case that
//! did not pass runs that case again, with its thresholds and timeout, and nothing more.

use std::fs;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::socklab;

fn cases(report_dir: &Path) -> Vec<Value> {
    let report: Value =
        serde_json::from_str(&fs::read_to_string(report_dir.join("report.json")).unwrap()).unwrap();
    report["cases"].as_array().unwrap().clone()
}

/// The words of the `replay:` line of `stdout`, split as a POSIX shell would split
/// socklab's quoting (single quotes only), without the leading `socklab`.
fn replay_words(stdout: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .unwrap_or_else(|| panic!("no replay line in:\n{stdout}"));
    let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => (quoted, any) = (!quoted, true),
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            _ => (word, any) = (word + &c.to_string(), true),
        }
    }
    if any {
        words.push(word);
    }
    assert_eq!(words.first().map(String::as_str), Some("socklab"), "{line}");
    words.remove(0);
    words
}

#[test]
fn a_set_parameter_turns_the_builtin_sweep_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args(["run", "framing-throughput", "--set", "duration_ms=10", "--set", "message_size=64", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "note: framing-throughput: --set given, so its built-in sweep of framing, message_size is off",
        ));
    let ran = cases(&out);
    assert_eq!(ran.len(), 1, "one case, not the sweep");
    assert_eq!(ran[0]["params"]["framing"], "u32be", "unset parameters keep their defaults");
}

#[test]
fn sweep_keeps_the_builtin_sweep_beside_set_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab()
        .args([
            "run",
            "framing-throughput",
            "--sweep",
            "--set",
            "duration_ms=10",
            "--set",
            "framing=u32be,line",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let ran = cases(&out);
    assert_eq!(ran.len(), 2 * 4, "2 framings set × the sweep's 4 message sizes");
    assert!(ran.iter().all(|c| c["params"]["duration_ms"] == 10));
}

#[test]
fn replay_of_a_suite_case_reproduces_it_with_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.toml");
    fs::write(
        &suite,
        "[[run]]\nscenario = \"tcp-coalescing\"\n[run.params]\nread_size = [5, 1024]\nread_delay_ms = 20\n\
         [[run.expect]]\nmetric = \"reads\"\nop = \"<\"\nvalue = 2\n",
    )
    .unwrap();
    let first = dir.path().join("first");
    let output = socklab()
        .args(["run", "--seed", "9", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(&first)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "read_size 5 makes 4 reads");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let words = replay_words(&stdout);
    assert!(
        words.windows(2).any(|w| w == ["--case", "tcp-coalescing[read_size=5,read_delay_ms=20]"]),
        "{words:?}"
    );

    let again = dir.path().join("again");
    socklab().args(&words).arg("--out").arg(&again).assert().code(1);
    let ran = cases(&again);
    assert_eq!(ran.len(), 1, "the failing case alone");
    let first_case = cases(&first).into_iter().find(|c| c["id"] == ran[0]["id"]).unwrap();
    assert_eq!(ran[0]["seed"], first_case["seed"], "same case seed");
    let threshold =
        ran[0]["checks"].as_array().unwrap().iter().find(|c| c["name"] == "expect reads < 2").unwrap();
    assert_eq!(threshold["passed"], false, "the suite's threshold is checked again");
}

#[test]
fn replay_of_a_timed_out_case_keeps_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The default variant stalls ~40 ms per round trip: 200 of them outlast 1 s.
    let sets = ["--set", "round_trips=200"];
    let output = socklab()
        .args(["run", "nagle-delayed-ack", "--timeout", "1", "--seed", "3"])
        .args(sets)
        .arg("--out")
        .arg(dir.path().join("first"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("TIMEOUT nagle-delayed-ack[round_trips=200]"), "{stdout}");
    let words = replay_words(&stdout);
    assert!(words.windows(2).any(|w| w == ["--timeout", "1"]), "{words:?}");
    let again = dir.path().join("again");
    socklab().args(&words).arg("--out").arg(&again).assert().code(1);
    let ran = cases(&again);
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0]["status"], "timed_out");
}

#[test]
fn an_unknown_case_id_lists_the_valid_ones() {
    socklab()
        .args(["run", "tcp-coalescing", "--set", "read_size=5,1024", "--case", "tcp-coalescing[read_size=6]"])
        .assert()
        .code(2)
        .stderr(predicate::str::diff(
            "error: unknown case `tcp-coalescing[read_size=6]`; this run's 2 cases: \
             tcp-coalescing[read_size=5], tcp-coalescing[read_size=1024]\n",
        ));
}

/// Weak point 6 of issue 23: a parameter value's control characters reached the terminal
/// raw (the progress line, the summary, the replay command) and the pages. Shown escaped
/// now; the replay command quotes them as `$'…'`, which a shell reads back as the same
/// bytes, so it still runs exactly that case.
#[test]
fn control_characters_in_a_parameter_reach_no_terminal_and_the_replay_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    // The server waits 3 s before its first read: the 1 s timeout makes the case fail.
    let output = socklab()
        .args(["run", "tcp-coalescing", "--timeout", "1", "--seed", "5"])
        .args(["--set", "messages=a\x1b[31mX\x07,cd", "--set", "read_delay_ms=3000", "--out"])
        .arg(&first)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let (stdout, stderr) =
        (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap());
    for (what, text) in [
        ("stdout", stdout.as_str()),
        ("stderr", stderr.as_str()),
        ("report.md", &fs::read_to_string(first.join("report.md")).unwrap()),
        ("index.html", &fs::read_to_string(first.join("index.html")).unwrap()),
    ] {
        assert!(!text.contains(['\x1b', '\x07']), "{what} holds a raw control character:\n{text}");
        assert!(text.contains(r"a\x1b[31mX\x07"), "{what} shows the value escaped:\n{text}");
    }
    let replay = stdout.lines().find_map(|l| l.trim().strip_prefix("replay: socklab ")).unwrap();
    assert!(replay.contains(r"--set $'messages=a\x1b[31mX\x07,cd'"), "{replay}");

    let again = dir.path().join("again");
    let socklab_bin = assert_cmd::cargo::cargo_bin("socklab");
    let script = format!("'{}' {replay} --out '{}'", socklab_bin.display(), again.display());
    let status =
        std::process::Command::new("bash").args(["-c", &script]).env("NO_COLOR", "1").output().unwrap();
    assert_eq!(status.status.code(), Some(1), "{}", String::from_utf8_lossy(&status.stderr));
    let ran = cases(&again);
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0]["id"], cases(&first)[0]["id"], "the same case, control characters and all");
    assert_eq!(ran[0]["params"]["messages"][0], "a\x1b[31mX\x07");
}

/// An error that quotes what a user gave (or a peer said) shows its control characters
/// escaped too: before, `ESC [ 2 J` in a bad value cleared the terminal that printed it.
#[test]
fn an_error_quoting_a_bad_value_shows_it_escaped() {
    socklab()
        .args(["run", "tcp-coalescing", "--set", "read_size=5\x1b[2J\x07"])
        .assert()
        .code(2)
        .stderr(predicate::str::diff(
            "error: bad value `5\\x1b[2J\\x07` for parameter `read_size`: expected integer in 1..=1048576 (bytes)\n",
        ));
}
