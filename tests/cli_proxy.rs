//! `socklab proxy`: an impairment relay a user puts between their own client and server.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
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

/// `socklab proxy ARGS` with its stderr kept: the child, its address, stdout, stderr.
fn start_logged(args: &[&str]) -> (Child, SocketAddr, BufReader<ChildStdout>, ChildStderr) {
    let mut child = Command::cargo_bin("socklab")
        .unwrap()
        .arg("proxy")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    let addr = line["listening on ".len()..].split_whitespace().next().unwrap().parse().unwrap();
    (child, addr, stdout, stderr)
}

/// A server that echoes up to `connections` clients at once (bounded: 30 s each).
fn echo_server_for(connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept() else { return };
            thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn echo_through(addr: SocketAddr, message: &[u8]) -> TcpStream {
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.write_all(message).unwrap();
    let mut reply = vec![0u8; message.len()];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(reply, message);
    client
}

#[test]
fn tcp_refusals_are_logged_and_counted_and_idle_connections_are_closed() {
    let upstream = echo_server_for(3).to_string();
    let (child, addr, mut stdout, mut stderr) =
        start_logged(&["--upstream", &upstream, "--max-connections", "2", "--idle-timeout", "1"]);
    let mut held: Vec<TcpStream> = (0..2).map(|i| echo_through(addr, &[i; 4])).collect();
    let mut third = TcpStream::connect(addr).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let outcome = third.read(&mut [0u8; 1]);
    assert!(matches!(outcome, Ok(0) | Err(_)), "over the cap: closed at once ({outcome:?})");
    // The two held connections go quiet: both are closed within a few seconds.
    let quiet = Instant::now();
    for client in &mut held {
        assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0, "the relay closed it");
    }
    assert!(quiet.elapsed() < Duration::from_secs(6), "{:?}", quiet.elapsed());
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.contains("; idle for 1s: closed by the relay"), "{line}");
    }
    drop(echo_through(addr, b"a slot is free again"));
    let rest = stop(child, stdout);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(
        log.starts_with(&format!(
            "warning: refused 1 connections (the last from {}): 2 open, as many as --max-connections 2 allows; \
             a connection idle for --idle-timeout 1 s is closed\n",
            third.local_addr().unwrap()
        )),
        "{log}"
    );
    assert!(rest.contains(", 1 connections refused (--max-connections), 2 closed idle; replay: "), "{rest}");
}

#[test]
fn udp_flows_expire_and_a_refused_client_is_logged_and_counted() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = server.local_addr().unwrap().to_string();
    server.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                let _ = server.send_to(&buf[..n], from);
            }
        }
    });
    let (child, addr, stdout, mut stderr) = start_logged(&[
        "--transport",
        "udp",
        "--upstream",
        &upstream,
        "--max-connections",
        "2",
        "--udp-flow-timeout",
        "1",
    ]);
    // Each client on a new socket, as the 300 clients were.
    let ask = |wait: Duration| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(wait)).unwrap();
        socket.send_to(b"hi", addr).unwrap();
        (socket.recv(&mut [0u8; 8]).is_ok(), socket.local_addr().unwrap())
    };
    assert!(ask(Duration::from_secs(5)).0 && ask(Duration::from_secs(5)).0);
    let (answered, refused) = ask(Duration::from_millis(300));
    assert!(!answered, "a third address while two flows are live");
    // After the timeout the two flows are gone and new clients are served.
    let mut served = false;
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(250));
        if ask(Duration::from_millis(500)).0 {
            served = true;
            break;
        }
    }
    assert!(served, "a new client is served once the idle flows expired");
    let rest = stop(child, stdout);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(
        log.starts_with(&format!(
            "warning: dropped 1 datagrams from new client addresses (the last from {refused}): 2 flows open, \
             as many as --max-connections 2 allows; a flow idle for --udp-flow-timeout 1 s is closed\n"
        )),
        "{log}"
    );
    assert!(rest.contains("; idle for 1s: flow closed by the relay\n"), "each expired flow's line: {rest}");
    assert!(rest.contains(" datagrams from new clients refused (--max-connections), "), "{rest}");
    assert!(rest.contains(" closed idle; replay: "), "{rest}");
}

/// VmHWM of `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_udp_flood_at_a_long_delay_stays_within_the_queue_bound_and_the_drops_are_counted() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = receiver.local_addr().unwrap().to_string();
    let cap: u64 = 8 << 20;
    let (child, addr, stdout, mut stderr) = start_logged(&[
        "--transport",
        "udp",
        "--upstream",
        &upstream,
        "--delay",
        "30s",
        "--max-queued",
        &cap.to_string(),
    ]);
    let before = peak_rss(child.id());
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.connect(addr).unwrap();
    // 64 MiB in 1400 B datagrams, 8x the bound (at most 10 s).
    let payload = [3u8; 1400];
    let started = Instant::now();
    for _ in 0..48_000 {
        let _ = sender.send(&payload);
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    thread::sleep(Duration::from_millis(500));
    let peak = peak_rss(child.id());
    let rest = stop(child, stdout);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(peak < before + 2 * cap, "peak RSS {peak} B, {before} B before a flood; bound {cap} B");
    assert!(log.starts_with("warning: dropped "), "{log}");
    assert!(log.contains(" datagrams: the --delay queue held --max-queued 8388608 bytes\n"), "{log}");
    assert!(rest.contains(" dropped for a full queue; down "), "in the connection's line: {rest}");
    assert!(rest.contains(" dropped for a full queue (--max-queued); replay: "), "in the summary: {rest}");
}

/// CPU time (user + system) `pid` used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn idle_connections_cost_no_cpu() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    // Accepts and holds every connection (until the test ends).
    thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..256 {
            let Ok((stream, _)) = listener.accept() else { return };
            held.push(stream);
        }
        thread::sleep(Duration::from_secs(60));
    });
    let (child, addr, stdout) = start(&["--upstream", &upstream]);
    let clients: Vec<TcpStream> = (0..256).map(|_| TcpStream::connect(addr).unwrap()).collect();
    thread::sleep(Duration::from_secs(1));
    let ticks_before = cpu_ticks(child.id());
    thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(child.id()) - ticks_before;
    stop(child, stdout);
    drop(clients);
    // A wake-up per direction every 50 ms took ~9% of a core (26 ticks in 3 s, release);
    // blocked reads take none.
    assert!(used <= 9, "{used} ticks of CPU in 3 s with 256 idle connections");
}

#[test]
fn the_cap_and_timeouts_take_only_sane_values() {
    for args in [
        &["--max-connections", "0"][..],
        &["--idle-timeout", "0"][..],
        &["--udp-flow-timeout", "0"][..],
        &["--max-queued", "100"][..],
    ] {
        let out = Command::cargo_bin("socklab")
            .unwrap()
            .args(["proxy", "--upstream", "127.0.0.1:9"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with(&format!("error: invalid value '{}' for '{} <", args[1], args[0])),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing started: {args:?}");
    }
}
