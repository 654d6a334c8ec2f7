//! Reading `report.json` back is bounded (bug 4 of issue 23): a file over
//! `MAX_REPORT_BYTES` is refused before a byte is read, and a FIFO or a device is never
//! read at all (a FIFO blocked the read forever, `/dev/zero` fed it until memory ran out).

mod common;

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::written;
use socklab_reports::load::{LoadError, MAX_REPORT_BYTES};
use socklab_reports::{check_out, load_report, load_report_at, rerender_report};

/// Runs `f` on a thread and waits at most 10 s for it: a read that blocks (as a FIFO's
/// did) fails the test instead of hanging it.
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the read returned within 10 s")
}

#[test]
fn a_report_over_the_limit_is_refused_with_its_size_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    // Sparse: no disk and no time, yet one byte over the limit.
    fs::File::create(&path).unwrap().set_len(MAX_REPORT_BYTES + 1).unwrap();
    let expected = format!(
        "cannot read {}: it is {} bytes (256.0 MiB), over the limit of {MAX_REPORT_BYTES} bytes (256.0 MiB) \
         for a report.json",
        path.display(),
        MAX_REPORT_BYTES + 1
    );
    let err = load_report(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { size, .. } if size == MAX_REPORT_BYTES + 1), "{err}");
    assert_eq!(err.to_string(), expected);
    assert_eq!(load_report_at(&path).unwrap_err().to_string(), expected, "the file named itself");
}

#[test]
fn a_fifo_or_a_device_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    fs::create_dir(&fifo).unwrap();
    let c_path = std::ffi::CString::new(fifo.join("report.json").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let zero = dir.path().join("zero");
    fs::create_dir(&zero).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("report.json")).unwrap();

    for (folder, kind) in [(fifo, "a FIFO"), (zero, "a character device")] {
        let err = within_10s({
            let folder = folder.clone();
            move || load_report(&folder).unwrap_err().to_string()
        });
        assert_eq!(
            err,
            format!(
                "cannot read {}: it is {kind}, not a regular file; a report is the file report.json",
                folder.join("report.json").display()
            )
        );
        // Neither a re-render nor the --out check reads it.
        let rerendered = within_10s({
            let folder = folder.clone();
            move || rerender_report(&folder).unwrap_err().to_string()
        });
        assert_eq!(rerendered, err);
        let checked = within_10s({
            let folder = folder.clone();
            move || check_out(&folder).unwrap_err().to_string()
        });
        assert!(checked.contains("is not a socklab report folder"), "{checked}");
    }
}

#[test]
fn a_report_loads_from_its_folder_or_its_file() {
    let (_dir, out) = written(4);
    assert_eq!(load_report(&out).unwrap().run.seed, 4);
    assert_eq!(load_report_at(&out.join("report.json")).unwrap().run.seed, 4);
    assert!(load_report(Path::new("/nonexistent")).unwrap_err().to_string().starts_with("cannot read "));
}
