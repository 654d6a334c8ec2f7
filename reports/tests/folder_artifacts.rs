//! Per-case files in report folders: written with the run, kept by a re-render,
//! replaced by the next run, and never written outside `cases/` nor under a name socklab
//! does not use there.

mod common;

use std::fs;

use common::{report, written};
use socklab_model::report::{Artifact, case_file};
use socklab_reports::folder::FolderError;
use socklab_reports::{load_report, rerender_report, write_report, write_report_with};

fn pcap(case: &str, bytes: &[u8]) -> Artifact {
    Artifact { path: case_file(case, "capture.pcap"), bytes: bytes.to_vec() }
}

#[test]
fn a_run_writes_case_files_and_a_rerender_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    write_report_with(&out, &report(1), &[pcap("a", b"first"), pcap("b", b"second")]).unwrap();
    assert_eq!(fs::read(out.join(case_file("a", "capture.pcap"))).unwrap(), b"first");
    assert!(out.join("index.html").is_file());

    fs::remove_file(out.join("report.md")).unwrap();
    let again = rerender_report(&out).unwrap();
    assert_eq!(again.run.seed, 1);
    assert!(out.join("report.md").is_file(), "re-rendered");
    assert_eq!(fs::read(out.join(case_file("a", "capture.pcap"))).unwrap(), b"first", "kept");
    assert_eq!(fs::read(out.join(case_file("b", "capture.pcap"))).unwrap(), b"second", "kept");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["r"], "no staging folders left behind");
}

#[test]
fn a_new_run_replaces_the_old_case_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    write_report_with(&out, &report(1), &[pcap("old", b"x")]).unwrap();
    write_report_with(&out, &report(2), &[pcap("new", b"y")]).unwrap();
    assert!(!out.join(case_file("old", "capture.pcap")).exists());
    assert_eq!(fs::read(out.join(case_file("new", "capture.pcap"))).unwrap(), b"y");
    write_report(&out, &report(3)).unwrap();
    assert!(!out.join("cases").exists(), "a run without captures leaves none behind");
    assert_eq!(load_report(&out).unwrap().run.seed, 3);
}

#[test]
fn case_files_outside_cases_are_refused_before_anything_is_written() {
    let (dir, out) = written(1);
    // Also a name socklab does not use under cases/: the next run would refuse it.
    let foreign_folder = "cases/a/capture.pcap".to_string();
    let foreign_file = case_file("a", "notes.txt");
    let deep = format!("{}/x", case_file("a", "capture.pcap"));
    for bad in ["../escape.pcap", "/tmp/abs.pcap", "cases/../../x", "report.json", "cases"]
        .into_iter()
        .chain([foreign_folder.as_str(), foreign_file.as_str(), deep.as_str()])
    {
        let err =
            write_report_with(&out, &report(2), &[Artifact { path: bad.into(), bytes: vec![] }]).unwrap_err();
        assert!(matches!(err, FolderError::BadArtifactPath(_)), "{bad}: {err}");
    }
    assert_eq!(load_report(&out).unwrap().run.seed, 1, "the previous report is untouched");
    assert!(!dir.path().join("escape.pcap").exists());
}
