//! What the CLI tests share: the binary under test, a `socklab serve` of its own, and
//! reading a report back.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

/// The socklab binary under test, without colour.
pub fn socklab() -> Command {
    let mut cmd = Command::cargo_bin("socklab").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// `socklab serve ARGS` in its own process, and the address it printed.
pub fn serve(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = StdCommand::cargo_bin("socklab")
        .unwrap()
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line["listening on ".len()..].split_whitespace().next().unwrap().parse().unwrap();
    (child, addr)
}

/// `report.json` of the report folder `dir`.
pub fn report(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}
