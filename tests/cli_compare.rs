//! `socklab compare BASE NEW`: verdicts, the regression gate's exit codes, one line per
//! regression on stderr, compare.md/compare.json, and bad input.

use std::fs;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::socklab;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Rewrites every case of the report in `dir` to claim `key=value`, as if it had run
/// with that parameter: a test-only relabel, so a deliberately slowed variant is
/// compared as the same case.
fn relabel(dir: &Path, key: &str, value: Value) {
    let path = dir.join("report.json");
    let mut report = read_json(&path);
    for case in report["cases"].as_array_mut().unwrap() {
        case["params"][key] = value.clone();
        case["set_params"][key] = value.clone();
    }
    fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
}

fn run(dir: &Path, name: &str, scenario: &str, sets: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut cmd = socklab();
    cmd.args(["run", scenario, "--repeat", "5", "--seed", "1", "--out"]).arg(&out);
    for set in sets {
        cmd.args(["--set", set]);
    }
    cmd.assert().success();
    out
}

/// The Nagle stall put back (variant `default`, ~40 ms a round trip) in place of its fix
/// (`nodelay`, well under 1 ms) is a slowdown no load on the machine can hide: caught as
/// `regressed` with repeats on both sides, exit 1 under --fail-on regression, one line
/// per regression on stderr; the same comparison the other way is an improvement.
#[test]
fn a_deliberately_slowed_variant_is_caught_as_regressed() {
    let dir = tempfile::tempdir().unwrap();
    let fast = run(dir.path(), "fast", "nagle-delayed-ack", &["variant=nodelay", "round_trips=10"]);
    let slow = run(dir.path(), "slow", "nagle-delayed-ack", &["variant=default", "round_trips=10"]);
    relabel(&slow, "variant", Value::from("nodelay"));

    let out = dir.path().join("cmp");
    let output = socklab()
        .arg("compare")
        .arg(&fast)
        .arg(&slow)
        .args(["--fail-on", "regression", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap());
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("# socklab compare\n\n**regressions**"), "{stdout}");
    assert!(stderr.contains("rtt_p50 regressed:"), "{stderr}");
    assert!(stderr.lines().all(|l| l.starts_with("regression: ")), "{stderr}");
    let json = read_json(&out.join("compare.json"));
    let metrics = json["cases"][0]["metrics"].as_array().unwrap();
    let rtt = metrics.iter().find(|m| m["metric"] == "rtt_p50").unwrap();
    assert_eq!(rtt["verdict"], "regressed");
    assert!(rtt["p_value"].as_f64().unwrap() < 0.01, "{rtt}");
    assert_eq!(fs::read_to_string(out.join("compare.md")).unwrap(), stdout);

    // The other way round it is an improvement, and the gate does not trip.
    socklab()
        .arg("compare")
        .arg(&slow)
        .arg(&fast)
        .args(["--fail-on", "regression"])
        .assert()
        .success()
        .stdout(predicate::str::contains("## Improved"));
}

#[test]
fn reports_that_share_no_case_are_bad_input_listing_what_each_holds() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    socklab().args(["run", "tcp-coalescing", "--out"]).arg(&a).assert().success();
    socklab().args(["run", "udp-truncation", "--out"]).arg(&b).assert().success();
    socklab()
        .arg("compare")
        .arg(&a)
        .arg(b.join("report.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the two reports share no case (same scenario and parameters);"))
        .stderr(predicate::str::contains("holds: tcp-coalescing;"))
        .stderr(predicate::str::contains("holds: udp-truncation"));
    socklab()
        .arg("compare")
        .arg(&a)
        .arg(dir.path().join("missing"))
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("error: cannot read"));
    socklab()
        .arg("compare")
        .arg(&a)
        .arg(&a)
        .args(["--threshold", "fast"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad percentage"));
}

/// The same report against itself: nothing regressed, nothing to gate on.
#[test]
fn a_run_against_itself_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    socklab()
        .args(["run", "tcp-coalescing", "--set", "read_size=5,1024", "--out"])
        .arg(&a)
        .assert()
        .success();
    socklab()
        .arg("compare")
        .arg(&a)
        .arg(&a)
        .args(["--fail-on", "regression"])
        .assert()
        .success()
        .stdout(predicate::str::contains("**no regressions** — 0 regressed, 0 improved, 0 noisy"))
        .stdout(predicate::str::contains("2 cases compared"));
}

/// A run records how much work other processes did on the machine meanwhile, and a
/// comparison of two runs that competed with different loads says so (the figures moved
/// with the machine, not only the code); equally loaded runs get no such note.
#[test]
fn runs_on_a_differently_loaded_machine_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    socklab().args(["run", "tcp-coalescing", "--out"]).arg(&a).assert().success();
    let recorded = read_json(&a.join("report.json"))["run"]["other_load_cpus"].as_f64().expect("recorded");
    assert!((0.0..=64.0).contains(&recorded), "{recorded}");
    let b = dir.path().join("b");
    fs::create_dir(&b).unwrap();
    let with_load = |load: f64| {
        let mut report = read_json(&a.join("report.json"));
        report["run"]["other_load_cpus"] = Value::from(load);
        fs::write(b.join("report.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
        let output = socklab().arg("compare").arg(&a).arg(&b).output().unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let busier = with_load(recorded + 1.5);
    assert!(busier.contains("**Machine load:**"), "{busier}");
    assert!(busier.contains("their work during the new run"), "{busier}");
    let same = with_load(recorded + 0.1);
    assert!(!same.contains("Machine load"), "{same}");
}

/// Bug 4 of issue 23: a `report.json` that is a FIFO blocked `compare` and `report`
/// forever; `/dev/zero` read until memory ran out; a huge file took minutes and
/// gigabytes. Each is one line and exit 2 now, at once, naming what is wrong.
#[test]
fn a_report_json_that_is_no_report_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    socklab().args(["run", "tcp-coalescing", "--out"]).arg(&good).assert().success();
    let fifo = dir.path().join("fifo");
    fs::create_dir(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo").arg(fifo.join("report.json")).status().unwrap();
    assert!(made.success());
    let zero = dir.path().join("zero");
    fs::create_dir(&zero).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("report.json")).unwrap();
    let huge = dir.path().join("huge");
    fs::create_dir(&huge).unwrap();
    // Sparse: 257 MiB that take no disk and are never read.
    fs::File::create(huge.join("report.json")).unwrap().set_len(257 << 20).unwrap();

    for (folder, why) in [
        (&fifo, "it is a FIFO, not a regular file".to_string()),
        (&zero, "it is a character device, not a regular file".to_string()),
        (
            &huge,
            format!(
                "it is {} bytes (257.0 MiB), over the limit of {} bytes (256.0 MiB)",
                257 << 20,
                256 << 20
            ),
        ),
    ] {
        let line = format!("error: cannot read {}: {why}", folder.join("report.json").display());
        for args in [
            vec!["compare".as_ref(), good.as_os_str(), folder.as_os_str()],
            vec!["report".as_ref(), folder.as_os_str()],
        ] {
            let output = socklab().args(&args).timeout(std::time::Duration::from_secs(20)).output().unwrap();
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
            assert!(stderr.starts_with(&line), "{args:?}: {stderr}");
        }
    }
}
