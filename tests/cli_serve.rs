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
    // One malloc arena (glibc): memory a thread frees is reused by the others instead of
    // staying in the arena of each of the runtime's threads, so what is resident follows
    // what the server holds, whatever the number of cores.
    let script = format!("ulimit -n {nofile} && MALLOC_ARENA_MAX=1 exec \"$0\" serve \"$@\"");
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

/// Context switches so far of every thread of process `pid` (`/proc/PID/task/*/status`):
/// each is a thread going to sleep or being woken.
fn context_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches") || line.starts_with("nonvoluntary_ctxt_switches") {
                total += line.split_whitespace().last().unwrap().parse::<u64>().unwrap();
            }
        }
    }
    total
}

/// An idle connection costs the threaded server no wake-up: with 200 idle clients it
/// switches context at most a few times a second in all (the accept loop's poll), where
/// it used to wake every connection's thread every 100 ms (about 4,000 switches in 2 s
/// here; 52% of a core at 4,000 connections).
#[test]
fn idle_connections_cost_the_threaded_server_no_wake_ups() {
    let (child, addr, _stdout) = serve_limited(1024, &["--flavour", "threaded"]);
    let clients: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1000)); // every connection has its thread
    let before = context_switches(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let switches = context_switches(child.id()) - before;
    drop(clients);
    stop(child);
    assert!(switches < 200, "{switches} context switches in 2 s with 200 idle connections");
}

/// Resident memory now (VmRSS) of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Resident memory (VmHWM, the peak) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The reproduction of the stop-and-wait bypass: 16 clients each announce 8 MiB,
/// read the ACK and send 8 MiB - 1 bytes, under `--max-buffered 8388608`. Before, all 16
/// were acknowledged and the server held 134 MiB; now the first is, the others are closed
/// unacknowledged, and the server's peak grows by less than twice the cap.
#[test]
fn stop_and_wait_bodies_stay_under_max_buffered() {
    let (child, addr, _stdout) =
        serve_limited(1024, &["--framing", "stop-and-wait", "--max-buffered", "8388608"]);
    let len = 8usize << 20;
    let body = vec![b'x'; len - 1];
    let at_start = rss(child.id());
    let mut acknowledged = 0;
    let mut clients = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(&(len as u32).to_be_bytes()).unwrap();
        let mut answer = [0u8; 1];
        if matches!(stream.read(&mut answer), Ok(1)) && answer[0] == 0x06 {
            acknowledged += 1;
            stream.write_all(&body).unwrap();
        }
        clients.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500)); // the bodies are in
    let grew = peak_rss(child.id()) - at_start;
    drop(clients);
    let stderr = stop(child);
    assert_eq!(acknowledged, 1, "only one 8 MiB body fits the 8 MiB cap");
    assert!(grew < 2 * len as u64, "peak RSS {} MiB over the start under an 8 MiB cap", grew >> 20);
    assert!(stderr.contains("load shed"), "{stderr}");
}

/// A client trickling a frame a byte every 300 ms is closed soon after `--frame-timeout
/// 1`, with a log line that names the flag.
#[test]
fn frame_timeout_cuts_off_a_trickled_frame() {
    let (child, addr, _stdout) = serve_limited(1024, &["--frame-timeout", "1", "--framing", "line"]);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let started = std::time::Instant::now();
    let mut closed = None;
    while started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(b"x").is_err() {
            closed = Some(started.elapsed());
            break;
        }
        let mut answer = [0u8; 1];
        match stream.read(&mut answer) {
            Ok(0) => {
                closed = Some(started.elapsed());
                break;
            }
            Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                closed = Some(started.elapsed());
                break;
            }
            _ => {}
        }
    }
    let stderr = stop(child);
    let closed = closed.expect("still served after 20 s of trickling");
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
    assert!(stderr.contains("(--frame-timeout)"), "{stderr}");
}

/// `--max-connections 0` and `--frame-timeout 0` could serve nobody: exit 2 with one line
/// (`--max-buffered 0` is pinned in tests/cli.rs).
#[test]
fn zero_connections_or_frame_timeout_are_one_line_errors() {
    for (args, says) in [
        (vec!["serve", "--max-connections", "0"], "--max-connections"),
        (vec!["serve", "--frame-timeout", "0"], "--frame-timeout"),
    ] {
        // With a timeout: a server that accepted the value would serve until stopped.
        let out = assert_cmd::Command::cargo_bin("socklab")
            .unwrap()
            .args(&args)
            .timeout(Duration::from_secs(10))
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// A buffer grown for a large frame is given back once the frame is done: 16 clients each
/// send one whole 8 MiB u32be frame to a sink and stay connected. Before, each connection
/// kept its 8 MiB buffer (134 MiB resident under an 8 MiB cap, none of it counted).
#[test]
fn large_frames_done_leave_nothing_resident() {
    let (child, addr, _stdout) = serve_limited(1024, &["--behaviour", "sink", "--max-buffered", "8388608"]);
    let len = 8usize << 20;
    let mut frame = ((len - 4) as u32).to_be_bytes().to_vec();
    frame.resize(len, b'x');
    let at_start = rss(child.id());
    let mut clients = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&frame).unwrap();
        clients.push(stream);
        std::thread::sleep(Duration::from_millis(100)); // one at a time: each fits the cap
    }
    std::thread::sleep(Duration::from_millis(500));
    let grew = rss(child.id()) - at_start;
    drop(clients);
    let stderr = stop(child);
    assert!(!stderr.contains("load shed"), "{stderr}");
    assert!(grew < 3 * len as u64, "{} MiB more resident after the frames were done", grew >> 20);
}
