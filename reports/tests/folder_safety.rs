//! `--out` never deletes what socklab did not write: only an empty folder or a socklab
//! report folder holding nothing else is replaced; a symbolic link updates the folder it
//! points to; stale staging folders of dead runs are cleaned up, and only those.

mod common;

use std::fs;
use std::path::Path;

use common::{report, written};
use socklab_reports::folder::{FolderError, MARKER};
use socklab_reports::{check_out, load_report, write_report};

/// Every path under `dir` with its contents, to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push((path.display().to_string(), Vec::new()));
            out.extend(snapshot(&path));
        } else {
            out.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_folder_with_a_foreign_report_json_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    fs::create_dir_all(out.join("src")).unwrap();
    fs::write(out.join("report.json"), "{}").unwrap();
    fs::write(out.join("precious.txt"), "keep").unwrap();
    let before = snapshot(&out);
    let err = check_out(&out).unwrap_err();
    assert!(matches!(err, FolderError::NotAReport(_)), "{err}");
    let err = write_report(&out, &report(1)).unwrap_err();
    assert!(matches!(err, FolderError::NotAReport(_)), "{err}");
    assert_eq!(snapshot(&out), before, "nothing touched");
}

#[test]
fn a_socklab_report_holding_a_foreign_file_is_refused_and_untouched() {
    let (_dir, out) = written(1);
    fs::write(out.join("notes.txt"), "mine").unwrap();
    let before = snapshot(&out);
    let err = write_report(&out, &report(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to replace {}: it holds `notes.txt`, which socklab did not write; move it out, or choose \
             another --out",
            out.display()
        )
    );
    assert_eq!(snapshot(&out), before);
}

#[test]
fn socklab_reports_are_replaced_and_carry_the_marker() {
    let (_dir, out) = written(1);
    let marker = fs::read_to_string(out.join(MARKER)).unwrap();
    assert!(
        marker.contains("\"generator\": \"socklab\"") && marker.contains("\"schema_version\""),
        "{marker}"
    );
    write_report(&out, &report(2)).unwrap();
    assert_eq!(load_report(&out).unwrap().run.seed, 2);
}

#[test]
fn a_report_from_before_the_marker_is_still_replaced() {
    let (_dir, out) = written(1);
    fs::remove_file(out.join(MARKER)).unwrap();
    write_report(&out, &report(2)).unwrap();
    assert_eq!(load_report(&out).unwrap().run.seed, 2);
}

#[test]
fn a_symbolic_link_updates_the_folder_it_points_to() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let link = dir.path().join("link");
    write_report(&real, &report(1)).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_report(&link, &report(2)).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(load_report(&real).unwrap().run.seed, 2, "the folder it points to was updated");
}

#[test]
fn stale_staging_folders_of_dead_runs_go_and_live_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    // PID 1 is alive in any namespace; a PID above pid_max (4194304) never is.
    let live = dir.path().join(".r.tmp-1");
    let dead = dir.path().join(".r.tmp-4194305");
    let other = dir.path().join(".r.tmp-notapid");
    for folder in [&live, &dead, &other] {
        fs::create_dir(folder).unwrap();
    }
    write_report(&out, &report(1)).unwrap();
    assert!(!dead.exists(), "a dead run's staging folder is removed");
    assert!(live.exists(), "a live process's staging folder is left alone");
    assert!(other.exists(), "a folder not named .NAME.tmp-PID is left alone");
}

#[test]
fn a_file_where_the_folder_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    fs::write(&out, "not a folder").unwrap();
    assert!(matches!(check_out(&out).unwrap_err(), FolderError::NotAReport(_)));
    assert_eq!(fs::read_to_string(&out).unwrap(), "not a folder");
}
