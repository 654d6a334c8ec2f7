//! `socklab serve`: a reference server a user can point a client at.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;

#[test]
fn serve_prints_its_address_echoes_and_stops_on_ctrl_c() {
    let mut child = Command::cargo_bin("socklab")
        .unwrap()
        .args(["serve", "--framing", "u32be", "--behaviour", "echo-upper", "--flavour", "threaded"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    let addr: SocketAddr = line["listening on ".len()..].split_whitespace().next().unwrap().parse().unwrap();

    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"\0\0\0\x05hello").unwrap();
    let mut reply = [0u8; 9];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\0\0\0\x05HELLO");
    drop(stream);

    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.starts_with("stopped: 1 connections, 1 messages, 5 bytes"), "{rest}");
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::cargo_bin("socklab").unwrap().args(["serve", "--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr, format!("error: cannot listen on {addr}: Address already in use (os error 98)\n"));
}

#[test]
fn a_bad_framing_name_lists_the_valid_ones() {
    let out = Command::cargo_bin("socklab").unwrap().args(["serve", "--framing", "u24be"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("expected one of raw, line, cobs"));
}
