//! The tutorials' file transfer as learners write it — `struct.pack('i', len(header))`, a
//! JSON header `{"file_name", "file_desc", "file_size"}`, then the body — downloaded from
//! a Python server written that way, with `--framing json-header:le:file_size`.

use std::fs;

use assert_cmd::Command;
use serde_json::Value;

const SERVER: &str = r#"
import json, socket, struct, sys
files = [("a.txt", b"hello"), ("empty.bin", b""), ("big.bin", bytes(range(256)) * 400)]
cut = len(sys.argv) > 2  # send only half of the last body, then close
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    conn, _ = s.accept()
    for name, body in files:
        header = json.dumps({"file_name": name, "file_desc": "demo", "file_size": len(body)}).encode()
        conn.sendall(struct.pack("i", len(header)) + header)
        conn.sendall(body[: len(body) // 2] if cut and name == "big.bin" else body)
    conn.close()
"#;

fn download(extra: &str) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("file_server.py");
    fs::write(&script, SERVER).unwrap();
    let out = dir.path().join("r");
    let command = format!("exec python3 {} {{port}}{extra}", script.display());
    let status = Command::cargo_bin("socklab")
        .unwrap()
        .env("NO_COLOR", "1")
        .args(["run", "server-conformance", "--set", "check=download", "--set", "behaviour=source"])
        .args(["--set", "framing=json-header:le:file_size", "--target-cmd", &command, "--out"])
        .arg(&out)
        .output()
        .unwrap()
        .status
        .code();
    let report: Value = serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (status, report["cases"][0]["checks"][0].clone())
}

#[test]
fn every_file_arrives_whole_with_its_name_and_announced_size() {
    let (status, check) = download("");
    assert_eq!(status, Some(0), "{check}");
    assert_eq!(check["name"], "download");
    assert_eq!(check["observed"], "3 frames: a.txt 5 B, empty.bin 0 B, big.bin 102400 B", "{check}");
}

#[test]
fn a_server_that_closes_mid_body_fails_with_the_reason() {
    let (status, check) = download(" cut");
    assert_eq!(status, Some(1), "{check}");
    assert_eq!(check["passed"], false);
    let sentence = check["explanation"].as_str().unwrap();
    assert!(
        sentence.starts_with("after 2 whole frames the stream broke off: stream ended mid-frame"),
        "{sentence}"
    );
}
