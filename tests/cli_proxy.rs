//! `socklab proxy`: an impairment relay a user puts between their own client and server.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// Starts `socklab proxy ARGS`; returns the child, its address and its stdout.
fn start(args: &[&str]) -> (Child, SocketAddr, BufReader<ChildStdout>) {
    let mut child = Command::cargo_bin("socklab")
        .unwrap()
        .arg("proxy")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    let addr = line["listening on ".len()..].split_whitespace().next().unwrap().parse().unwrap();
    (child, addr, stdout)
}

/// Ctrl-C, then everything the proxy printed after its first line.
fn stop(mut child: Child, mut stdout: BufReader<ChildStdout>) -> String {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    rest
}

fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    addr
}

#[test]
fn proxy_splits_prints_each_connection_and_a_summary_with_the_seed() {
    let upstream = echo_server();
    let (child, addr, mut stdout) =
        start(&["--upstream", &upstream.to_string(), "--split", "1", "--gap", "0", "--seed", "5"]);
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.write_all(b"hello").unwrap();
    let mut reply = [0u8; 5];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"hello");
    drop(client);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap(); // printed when the connection closes
    assert!(line.starts_with("connection 0 (127.0.0.1:"), "{line}");
    assert!(line.contains("): up 5 B in 1 reads -> 5 B out in 5 writes; down 5 B in "), "{line}");
    let rest = stop(child, stdout);
    assert!(rest.starts_with("stopped: 1 connections, 10 B in / 10 B out, "), "{rest}");
    assert!(rest.contains(" 0 resets; "), "{rest}");
    assert!(
        rest.trim_end().ends_with(&format!(
            "replay: socklab proxy --upstream {upstream} --transport tcp --impair 'split=1+gap=0' --seed 5"
        )),
        "{rest}"
    );
}

#[test]
fn bad_specs_are_one_line_errors_and_exit_2() {
    for (args, message) in [
        (
            &["--split", "0"][..],
            "error: bad split `0`: give a piece size of at least 1 byte, at most 1MiB (split=1 is byte by byte), or a range (split=1..7)\n",
        ),
        (
            &["--transport", "udp", "--loss", "1.5"][..],
            "error: bad loss `1.5`: give a probability in 0..=1 (or 0%..=100%), e.g. 0.1\n",
        ),
        (
            &["--rate", "fast"][..],
            "error: bad rate `fast`: give bytes or bits per second: rate=1MiB/s, rate=100KB/s, rate=10mbit\n",
        ),
        (
            &["--loss", "0.1"][..],
            "error: loss applies to UDP only; TCP never loses, repeats, reorders or cuts bytes; use reset-after or stall\n",
        ),
    ] {
        let out = Command::cargo_bin("socklab")
            .unwrap()
            .args(["proxy", "--upstream", "127.0.0.1:9"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8(out.stderr).unwrap(), message, "{args:?}");
        assert!(out.stdout.is_empty(), "nothing started: {args:?}");
    }
}

#[test]
fn a_bad_impair_parameter_is_a_one_line_error_and_exit_2() {
    let out = Command::cargo_bin("socklab")
        .unwrap()
        .args(["run", "tcp-coalescing", "--set", "impair=split=0", "--out"])
        .arg(std::env::temp_dir().join(format!("socklab-never-written-{}", std::process::id())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: invalid parameters for `tcp-coalescing`: impair: bad split `0`: give a piece size of at least 1 byte, \
         at most 1MiB (split=1 is byte by byte), or a range (split=1..7)\n"
    );
}

/// Sends 10,000 numbered datagrams through `socklab proxy --transport udp --loss 0.1
/// --seed SEED`, in bursts of 50 that the receiver drains before the next (so no socket
/// buffer overflows), and returns the numbers that never arrived and what the proxy
/// printed.
fn lost_through_udp_proxy(seed: &str) -> (BTreeSet<u32>, String) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = receiver.local_addr().unwrap().to_string();
    let (child, addr, stdout) =
        start(&["--transport", "udp", "--upstream", &upstream, "--loss", "0.1", "--seed", seed]);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.connect(addr).unwrap();
    let mut arrived = BTreeSet::new();
    let mut buf = [0u8; 64];
    let started = Instant::now();
    for burst in 0..200u32 {
        for seq in burst * 50..(burst + 1) * 50 {
            sender.send(&seq.to_be_bytes()).unwrap();
        }
        // Drain until the proxy has been quiet for 20 ms (bounded by the overall limit).
        receiver.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        while let Ok(n) = receiver.recv(&mut buf) {
            if n == 4 {
                arrived.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "bounded in time");
    }
    // The last stragglers: a loaded machine may hold the proxy back for a while.
    receiver.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    while let Ok(n) = receiver.recv(&mut buf) {
        if n == 4 {
            arrived.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
    }
    let printed = stop(child, stdout);
    ((0..10_000).filter(|seq| !arrived.contains(seq)).collect(), printed)
}

#[test]
fn udp_loss_through_the_cli_loses_a_tenth_and_the_same_ones_for_the_same_seed() {
    let (lost, printed) = lost_through_udp_proxy("31");
    assert!((700..=1300).contains(&lost.len()), "lost {} of 10000", lost.len());
    assert!(
        printed.contains(&format!(
            "up 40000 B in 10000 reads -> {} B out in {} writes, {} dropped",
            4 * (10_000 - lost.len()),
            10_000 - lost.len(),
            lost.len()
        )),
        "the proxy's own count agrees with the receiver's: {printed}"
    );
    let (again, _) = lost_through_udp_proxy("31");
    assert_eq!(again, lost, "the same seed loses the same datagrams");
}
