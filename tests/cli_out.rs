//! `--out` at the command line: checked before any case runs, and never at the cost of a
//! user's files.

use std::fs;

use predicates::prelude::*;

mod common;
use common::socklab;

/// The issue's reproduction: a folder with a `report.json` socklab did not write, a file
/// and a folder of the user's. Before the fix every case ran, then both were deleted.
#[test]
fn a_folder_socklab_did_not_write_is_refused_before_any_case_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    fs::create_dir_all(out.join("src")).unwrap();
    fs::write(out.join("report.json"), "{}").unwrap();
    fs::write(out.join("precious.txt"), "keep").unwrap();
    socklab()
        .args(["run", "tcp-coalescing", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a socklab report folder"))
        .stderr(predicate::str::contains("[1/1]").not());
    assert_eq!(fs::read_to_string(out.join("precious.txt")).unwrap(), "keep");
    assert!(out.join("src").is_dir());
    assert_eq!(fs::read_to_string(out.join("report.json")).unwrap(), "{}");
}

#[test]
fn a_report_folder_holding_a_users_file_is_refused_before_any_case_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab().args(["run", "tcp-coalescing", "--out"]).arg(&out).assert().success();
    fs::write(out.join("notes.txt"), "mine").unwrap();
    socklab()
        .args(["run", "tcp-coalescing", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("it holds `notes.txt`, which socklab did not write"))
        .stderr(predicate::str::contains("[1/1]").not());
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
}

/// Bug 2 of issue 23: a user's file inside `cases/` was deleted by the next run (exit 0).
/// Anything socklab did not write, at any depth, makes the run refuse before any case
/// runs, with one line naming it; `socklab report` refuses the same way.
#[test]
fn a_users_file_inside_cases_is_refused_before_any_case_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    socklab().args(["run", "tcp-coalescing", "--out"]).arg(&out).assert().success();
    fs::create_dir_all(out.join("cases")).unwrap();
    fs::write(out.join("cases/my-notes.txt"), "n\n").unwrap();
    let line = format!(
        "error: refusing to replace {}: it holds `cases/my-notes.txt`, which socklab did not write; move it out, \
         or choose another --out\n",
        out.display()
    );
    socklab()
        .args(["run", "tcp-coalescing", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::diff(line.clone()));
    socklab().arg("report").arg(&out).assert().code(2).stderr(predicate::str::diff(line));
    assert_eq!(fs::read_to_string(out.join("cases/my-notes.txt")).unwrap(), "n\n");
}

/// Weak point 7 of issue 23: a symbolic-link loop or `--out afile/sub` failed only when
/// the report was written, after every case had run, and the report was lost. Now one
/// line and exit 2 before any case runs.
#[test]
fn an_out_that_cannot_be_written_is_refused_before_any_case_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    fs::write(&file, "x").unwrap();
    let (a, b) = (dir.path().join("loop-a"), dir.path().join("loop-b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let under_file = file.join("sub");
    let cases = [
        (
            under_file.clone(),
            format!("cannot write a report to {}: {} is not a folder", under_file.display(), file.display()),
        ),
        (a.clone(), format!("cannot write a report to {}: too many levels of symbolic links", a.display())),
    ];
    for (out, message) in cases {
        socklab()
            .args(["run", "tcp-coalescing", "--out"])
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::diff(format!("error: {message}\n")));
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
}

/// Bug 4 of issue 23, in the `--out` check: a folder whose `report.json` is a FIFO
/// blocked the check forever. Refused at once now, before any case runs.
#[test]
fn an_out_whose_report_json_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    fs::create_dir(&out).unwrap();
    let made = std::process::Command::new("mkfifo").arg(out.join("report.json")).status().unwrap();
    assert!(made.success());
    socklab()
        .args(["run", "tcp-coalescing", "--out"])
        .arg(&out)
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a socklab report folder"))
        .stderr(predicate::str::contains("[1/1]").not());
}
