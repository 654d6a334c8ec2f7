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
