//! Memory while reading a hostile `report.json` (bug 4 of issue 23): 200 MB of shallow
//! nested arrays took 11 GiB, since the text went through a `serde_json::Value` tree (some
//! fifty times its size) before the model. In a process of its own, so the peak is this
//! test's alone.

mod common;

use std::fs;

use socklab_reports::load_report;

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn nested_arrays_are_refused_without_building_them() {
    let dir = tempfile::tempdir().unwrap();
    // 8 MiB of `[[]],`: about 440 MiB as a value tree before the fix.
    let items = (8 << 20) / 5;
    let mut text = String::with_capacity(items * 5 + 2);
    text.push('[');
    for i in 0..items {
        text.push_str(if i + 1 == items { "[[]]" } else { "[[]]," });
    }
    text.push(']');
    fs::write(dir.path().join("report.json"), &text).unwrap();
    drop(text);
    let before = peak_kib();
    let err = load_report(dir.path()).unwrap_err().to_string();
    let grew_mib = (peak_kib() - before) / 1024;
    assert!(grew_mib < 100, "reading 8 MiB raised the peak by {grew_mib} MiB");
    assert!(err.contains("not a socklab report"), "{err}");
}
