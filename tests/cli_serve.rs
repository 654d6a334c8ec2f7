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

/// Starts `socklab serve ARGS` under `ulimit -n NOFILE` with piped output; returns the
/// child and its address.
fn serve_limited(
    nofile: u32,
    args: &[&str],
) -> (std::process::Child, SocketAddr, BufReader<std::process::ChildStdout>) {
    let binary = assert_cmd::cargo::cargo_bin("socklab");
    let script = format!("ulimit -n {nofile} && exec \"$0\" serve \"$@\"");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(&binary)
        .args(args)
        .env("NO_COLOR", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line["listening on ".len()..].split_whitespace().next().unwrap().parse().unwrap();
    (child, addr, stdout)
}

/// User + system CPU seconds of process `pid` so far (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn stop(mut child: std::process::Child) -> String {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    child.wait().unwrap();
    stderr
}

/// Out of file descriptors, the accept loop backs off instead of spinning a core (it
/// burned 100–121% before), logs the condition a few times a second at most, and serves
/// again once descriptors free up.
#[test]
fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    for flavour in ["tokio", "threaded"] {
        let (child, addr, _stdout) = serve_limited(64, &["--flavour", flavour]);
        let clients: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(500)); // the server has hit EMFILE
        let before = cpu_seconds(child.id());
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_seconds(child.id()) - before;
        assert!(used < 0.5, "{flavour}: {used:.2} CPU s in 2 s while out of descriptors (a spin uses ~2)");

        drop(clients);
        std::thread::sleep(Duration::from_millis(1500)); // the backoff is at most 1 s
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"\0\0\0\x02hi").unwrap();
        let mut reply = [0u8; 6];
        stream.read_exact(&mut reply).unwrap_or_else(|e| panic!("{flavour}: not served after recovery: {e}"));
        drop(stream);
        let stderr = stop(child);
        assert!(stderr.contains("accept failed: Too many open files"), "{flavour}: {stderr}");
        let lines = stderr.lines().filter(|l| l.contains("accept failed")).count();
        assert!(lines <= 40, "{flavour}: {lines} accept-failure lines: the log is throttled");
        assert!(!stderr.contains('\x1b'), "{flavour}: no colour codes in a piped log");
    }
}

#[test]
fn a_frame_limit_the_machine_cannot_hold_is_a_one_line_error() {
    for args in [
        vec!["serve", "--framing", "fixed:1000000000000"],
        vec!["serve", "--framing", "u64be", "--max-frame", "18446744073709551615"],
        vec!["serve", "--transport", "udp", "--framing", "stop-and-wait"],
    ] {
        let out = Command::cargo_bin("socklab").unwrap().args(&args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

/// `--help` says what each flavour costs per message, so a user measuring round trips
/// knows to pick `threaded`.
#[test]
fn serve_help_explains_what_each_flavour_costs() {
    let out = Command::cargo_bin("socklab").unwrap().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [
        "tokio (async: many connections on a few threads; every wait for data goes through epoll_wait",
        "threaded (a thread per connection or, over UDP, one thread, blocking in recv: the shortest round trip",
        "sequential (one client at a time)",
    ] {
        assert!(help.contains(part), "missing {part:?} in: {help}");
    }
}
