//! The `socklab` command with the UDP and buffer scenarios: explanations, one-line errors
//! for impossible parameters, and a passing run.

use predicates::prelude::*;

mod common;
use common::socklab;

#[test]
fn explain_covers_each_udp_and_buffer_scenario() {
    for (name, fact) in [
        ("udp-early-send", "ECONNREFUSED"),
        ("udp-rcvbuf-overflow", "rmem_max"),
        ("udp-truncation", "65,507"),
        ("recv-buffer", "rmem_max"),
    ] {
        socklab().args(["explain", name]).assert().success().stdout(predicate::str::contains(fact));
    }
}

#[test]
fn impossible_parameters_get_a_one_line_error_and_exit_2() {
    for (args, message) in [
        (
            ["udp-truncation", "read_size=0"],
            "bad value `0` for parameter `read_size`: expected integer in 1..=65507 (bytes)",
        ),
        (
            ["udp-rcvbuf-overflow", "size=65508"],
            "bad value `65508` for parameter `size`: expected integer in 8..=65507 (bytes)",
        ),
        (["udp-early-send", "receiver_delay_ms=-5"], "bad value `-5` for parameter `receiver_delay_ms`"),
        (["recv-buffer", "read_size=0"], "bad value `0` for parameter `read_size`"),
    ] {
        let out = socklab().args(["run", args[0], "--set", args[1]]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn the_udp_scenarios_pass_their_checks() {
    let dir = tempfile::tempdir().unwrap();
    socklab()
        .args(["run", "udp-early-send", "udp-truncation", "udp-rcvbuf-overflow", "--out"])
        .arg(dir.path().join("report"))
        .assert()
        .success()
        .stdout(predicate::str::contains("3 cases: 3 passed"));
}
