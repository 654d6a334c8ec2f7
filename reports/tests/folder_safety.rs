//! `--out` never deletes what socklab did not write: only an empty folder or a socklab
//! report folder holding nothing else, at any depth, is replaced; a symbolic link updates
//! the folder it points to; an `--out` that cannot be written is refused up front; stale
//! staging folders of dead runs are cleaned up, and only those socklab marked.

mod common;

use std::fs;
use std::path::Path;

use common::{report, written};
use socklab_model::report::{Artifact, case_file};
use socklab_reports::folder::{FolderError, MARKER};
use socklab_reports::{check_out, load_report, rerender_report, write_report, write_report_with};

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

/// A report folder with one case's capture, as a run with capture writes it; and the
/// case's folder.
fn written_with_a_capture() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let pcap = case_file("tcp-coalescing[read_size=5]", "capture.pcap");
    write_report_with(&out, &report(1), &[Artifact { path: pcap.clone(), bytes: b"pcap".to_vec() }]).unwrap();
    let case_folder = out.join(&pcap).parent().unwrap().to_path_buf();
    (dir, out, case_folder)
}

/// Bug 2 of issue 23: a user's file inside `cases/` was deleted by the next run (only
/// the top level was checked). Anything socklab did not write, at any depth, is refused
/// with its path, by a run and by a re-render alike, and nothing is touched.
#[test]
fn a_users_file_anywhere_under_cases_is_refused_and_untouched() {
    let (_dir, _, case_folder) = written_with_a_capture();
    let case_name = case_folder.file_name().unwrap().to_str().unwrap().to_string();
    type Plant = fn(&std::path::Path, &std::path::Path);
    let plants: [(&str, String, Plant); 6] = [
        ("a file in cases/", "cases/my-notes.txt".into(), |out, _| {
            fs::write(out.join("cases/my-notes.txt"), "n").unwrap()
        }),
        ("a folder of the user's in cases/", "cases/mine".into(), |out, _| {
            fs::create_dir_all(out.join("cases/mine/deeper")).unwrap();
            fs::write(out.join("cases/mine/deeper/data.csv"), "1,2").unwrap();
        }),
        ("a file in a case folder", format!("cases/{case_name}/notes.txt"), |_, case| {
            fs::write(case.join("notes.txt"), "n").unwrap()
        }),
        ("a folder in a case folder", format!("cases/{case_name}/sub"), |_, case| {
            fs::create_dir(case.join("sub")).unwrap()
        }),
        ("a link where socklab writes a file", "report.md".into(), |out, _| {
            fs::remove_file(out.join("report.md")).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", out.join("report.md")).unwrap();
        }),
        ("a folder where socklab writes a file", "index.html".into(), |out, _| {
            fs::remove_file(out.join("index.html")).unwrap();
            fs::create_dir(out.join("index.html")).unwrap();
            fs::write(out.join("index.html/mine.txt"), "n").unwrap();
        }),
    ];
    for (what, foreign, plant) in plants {
        let (_dir, out, case_folder) = written_with_a_capture();
        plant(&out, &case_folder);
        let before = snapshot(&out);
        let expected = format!(
            "refusing to replace {}: it holds `{foreign}`, which socklab did not write; move it out, or choose \
             another --out",
            out.display()
        );
        assert_eq!(check_out(&out).unwrap_err().to_string(), expected, "{what}");
        assert_eq!(write_report(&out, &report(2)).unwrap_err().to_string(), expected, "{what}");
        assert_eq!(rerender_report(&out).unwrap_err().to_string(), expected, "{what}");
        assert_eq!(snapshot(&out), before, "{what}: nothing touched");
    }
}

/// What socklab wrote under `cases/` is its own: a run replaces it and a re-render keeps it.
#[test]
fn socklabs_own_case_files_are_replaced_and_kept() {
    let (_dir, out, case_folder) = written_with_a_capture();
    rerender_report(&out).unwrap();
    assert_eq!(fs::read(case_folder.join("capture.pcap")).unwrap(), b"pcap", "a re-render keeps it");
    write_report(&out, &report(2)).unwrap();
    assert!(!out.join("cases").exists(), "a new run replaces it");
}

/// A name with control characters is shown escaped in the message, never raw.
#[test]
fn a_foreign_name_is_shown_with_its_control_characters_escaped() {
    let (_dir, out, _) = written_with_a_capture();
    fs::write(out.join("cases/\x1b[2J\x07"), "n").unwrap();
    let message = check_out(&out).unwrap_err().to_string();
    assert!(message.contains("it holds `cases/\\x1b[2J\\x07`"), "{message}");
    assert!(!message.contains(['\x1b', '\x07']), "{message}");
}

/// Weak point 7 of issue 23: an `--out` that could never be written was found only when
/// the report was written, after every case had run, and the report was lost.
#[test]
fn an_out_that_cannot_be_written_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    fs::write(&file, "x").unwrap();
    let under_a_file = file.join("sub");
    assert!(
        matches!(check_out(&under_a_file), Err(FolderError::ParentNotAFolder { ref path, .. }) if *path == file),
        "{:?}",
        check_out(&under_a_file)
    );
    let deeper = file.join("sub/deeper");
    assert!(
        matches!(check_out(&deeper), Err(FolderError::ParentNotAFolder { .. })),
        "{:?}",
        check_out(&deeper)
    );

    let (a, b) = (dir.path().join("loop-a"), dir.path().join("loop-b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    for out in [a.clone(), a.join("sub")] {
        let err = check_out(&out).unwrap_err();
        assert!(matches!(err, FolderError::LinkLoop(_)), "{}: {err}", out.display());
        assert_eq!(
            err.to_string(),
            format!("cannot write a report to {}: too many levels of symbolic links", out.display())
        );
    }
    assert!(matches!(check_out(std::path::Path::new("/")), Err(FolderError::Unnamed(_))));
    assert_eq!(fs::read_to_string(&file).unwrap(), "x", "nothing touched");
}

#[test]
fn a_dangling_link_is_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let (link, target) = (dir.path().join("link"), dir.path().join("later"));
    std::os::unix::fs::symlink("later", &link).unwrap();
    write_report(&link, &report(3)).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(load_report(&target).unwrap().run.seed, 3);
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
        fs::write(folder.join(MARKER), "{}").unwrap();
        fs::write(folder.join("report.json"), "{").unwrap();
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

/// Weak point 8 of issue 23: any `.NAME.tmp-<dead pid>` folder was deleted, whatever it
/// held. Only a folder socklab marked and holding nothing else goes (or an empty one).
#[test]
fn stale_staging_folders_go_only_when_socklab_marked_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let stale = |suffix: &str| dir.path().join(format!(".r.tmp-4194305{suffix}"));
    let folder = |name: &str| dir.path().join(name);
    // Unmarked, holding a user's file: kept (deleted before the fix).
    fs::create_dir(stale("")).unwrap();
    fs::write(stale("").join("precious.txt"), "keep").unwrap();
    // Marked, but holding a user's file too: kept.
    let mixed = folder(".r.tmp-4194306");
    fs::create_dir(&mixed).unwrap();
    fs::write(mixed.join(MARKER), "{}").unwrap();
    fs::write(mixed.join("precious.txt"), "keep").unwrap();
    // Marked, socklab's files only (a killed run, or an old report moved aside): removed.
    let killed = folder(".r.tmp-4194307");
    let aside = folder(".r.tmp-4194308.old");
    for marked in [&killed, &aside] {
        fs::create_dir_all(marked.join(case_file("c", "capture.pcap")).parent().unwrap()).unwrap();
        fs::write(marked.join(MARKER), "{}").unwrap();
        fs::write(marked.join("report.md"), "half").unwrap();
        fs::write(marked.join(case_file("c", "capture.pcap")), "pcap").unwrap();
    }
    // Empty (killed before the marker was written): removed.
    let empty = folder(".r.tmp-4194309");
    fs::create_dir(&empty).unwrap();

    write_report(&out, &report(1)).unwrap();
    assert_eq!(fs::read_to_string(stale("").join("precious.txt")).unwrap(), "keep");
    assert_eq!(fs::read_to_string(mixed.join("precious.txt")).unwrap(), "keep");
    assert!(!killed.exists() && !aside.exists(), "socklab's own stale folders go");
    assert!(!empty.exists(), "an empty stale folder goes");
}

/// A folder with this process's staging name, not socklab's, is refused, not replaced.
#[test]
fn a_foreign_folder_with_the_staging_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join(format!(".r.tmp-{}", std::process::id()));
    fs::create_dir(&staging).unwrap();
    fs::write(staging.join("precious.txt"), "keep").unwrap();
    let err = write_report(&dir.path().join("r"), &report(1)).unwrap_err();
    assert!(matches!(err, FolderError::NotAReport(ref p) if *p == staging), "{err}");
    assert_eq!(fs::read_to_string(staging.join("precious.txt")).unwrap(), "keep");
}
