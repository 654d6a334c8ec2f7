//! `ci/two-hosts.sh` as a test CI runs (CI runs as root with SOCKLAB_REQUIRE_PRIVILEGED=1,
//! so it runs there; elsewhere it skips with the reason): two namespaces joined by a
//! veth pair (MTU 1280, tbf 50mbit), socklab in one, `socklab agent --stdio` in the other
//! through `ip netns exec`. The script checks the report names both sides, the segments
//! follow MSS 1228 and throughput stays under the rate; this test checks that it passed
//! and left no namespace behind.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use socklab_harness::privilege::{Capability, test_may_make_namespaces, test_may_use};

#[test]
fn two_namespaces_stand_in_for_two_hosts() {
    let name = "two_namespaces_stand_in_for_two_hosts";
    if !test_may_make_namespaces(name) || !test_may_use(Capability::NetRaw, name) {
        return;
    }
    let binary = Command::cargo_bin("socklab").unwrap().get_program().to_owned();
    let output = Command::new("bash")
        .arg("ci/two-hosts.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SOCKLAB", binary)
        .env("NO_COLOR", "1")
        .output()
        .expect("run bash ci/two-hosts.sh");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "ci/two-hosts.sh failed:\n{stdout}\n{stderr}");
    for line in [
        "segments of the 4000-byte write: [1228,1228,1228,316]",
        "both sides: ",
        "two-hosts.sh: all checks passed",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    // The script named its namespaces after its own pid; none of them is left.
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let first = stdout.lines().next().unwrap_or_default();
    let ours: Vec<&str> = first
        .split_whitespace()
        .filter(|w| w.starts_with("socklab-"))
        .map(|w| w.trim_end_matches(','))
        .collect();
    assert_eq!(ours.len(), 2, "{first}");
    for ns in ours {
        assert!(!String::from_utf8_lossy(&namespaces.stdout).contains(ns), "{ns} was left behind");
    }
}
