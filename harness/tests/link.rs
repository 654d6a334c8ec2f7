//! The veth link between two private namespaces: it carries TCP between its ends, its
//! packets are real MSS-sized segments, tbf holds a transfer to its rate, and nothing it
//! made outlives it — after a normal drop, a failed set-up, or a panic inside it.
//!
//! These need CAP_NET_ADMIN (and CAP_NET_RAW for the capture): without them they skip
//! with the reason, or fail when SOCKLAB_REQUIRE_PRIVILEGED=1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use socklab_harness::capture::{Capture, CaptureConfig, stream_segments};
use socklab_harness::link::veth::{CLIENT_IF, SERVER_ADDR, SERVER_IF};
use socklab_harness::link::{LinkError, Side, VethConfig, VethLink, rate_share_pct};
use socklab_harness::privilege::{Capability, test_may_make_namespaces, test_may_use};
use socklab_harness::report::Direction;

/// What the host's own namespace shows: named namespaces and interfaces.
fn host_state() -> (String, Vec<String>) {
    let run = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let links = run(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|name| name.trim().to_string()))
        .collect();
    (run(&["netns", "list"]), links)
}

/// Whether any thread or file descriptor of this process still refers to the
/// namespace with inode `inode`: `net:[inode]`.
fn namespace_held(inode: u64) -> bool {
    let wanted = format!("net:[{inode}]");
    let links = |dir: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|target| target.display().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_link(t.ok()?.path().join("ns/net")).ok())
        .map(|target| target.display().to_string())
        .collect();
    threads.iter().chain(links("/proc/self/fd").iter()).any(|target| *target == wanted)
}

/// Inodes of both namespaces of `link`.
fn inodes(link: &VethLink) -> [u64; 2] {
    [Side::Client, Side::Server].map(|side| link.netns(side).inode().expect("namespace inode"))
}

fn assert_gone(inodes: [u64; 2], before: &(String, Vec<String>)) {
    for inode in inodes {
        assert!(!namespace_held(inode), "namespace {inode} is still held by this process");
    }
    assert_eq!(&host_state(), before, "the host's namespaces or interfaces changed");
}

/// `ip -d link show` of `side`'s interface, run inside its namespace.
fn link_details(link: &VethLink, side: Side) -> String {
    let out = link.netns(side).command("ip").args(["-d", "link", "show", side.interface()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A listener on the server end, and a connected client from the client end.
fn connect(link: &VethLink) -> (TcpListener, TcpStream) {
    let listener = link.on(Side::Server, || TcpListener::bind((SERVER_ADDR, 0))).unwrap().unwrap();
    let addr = listener.local_addr().unwrap();
    let client = link
        .on(Side::Client, move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .unwrap()
        .expect("connect across the veth");
    (listener, client)
}

#[test]
fn a_veth_link_joins_two_namespaces_and_leaves_nothing_behind() {
    if !test_may_make_namespaces("a_veth_link_joins_two_namespaces_and_leaves_nothing_behind") {
        return;
    }
    let before = host_state();
    let link = VethLink::new(VethConfig { mtu: 1280, ..VethConfig::default() }).unwrap();
    let inodes = inodes(&link);
    assert_ne!(inodes[0], inodes[1], "two namespaces, not one");
    for side in [Side::Client, Side::Server] {
        let details = link_details(&link, side);
        assert!(details.contains("mtu 1280") && details.contains("gso_max_segs 1"), "{details}");
        assert!(details.contains("state UP") || details.contains(",UP"), "{details}");
    }
    // The host sees neither end.
    assert!(!before.1.iter().any(|name| name.starts_with(CLIENT_IF) || name.starts_with(SERVER_IF)));

    let (listener, mut client) = connect(&link);
    client.write_all(b"hello over veth").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "198.18.0.1");
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    server.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello over veth");
    // Inside the client's namespace the server address is reached over the veth only:
    // the namespace has no other route.
    let routes = link.netns(Side::Client).command("ip").args(["route", "show"]).output().unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert_eq!(routes.trim(), "198.18.0.0/30 dev veth-client proto kernel scope link src 198.18.0.1");

    drop((listener, client, server));
    drop(link);
    assert_gone(inodes, &before);
}

/// The client's payload segments as the server's end of the veth received them, for
/// one write of `bytes` bytes at `mtu`.
fn segments_of_one_write(mtu: u32, bytes: usize) -> Vec<usize> {
    let link = VethLink::new(VethConfig { mtu, ..VethConfig::default() }).unwrap();
    let (listener, mut client) = connect(&link);
    let port = listener.local_addr().unwrap().port();
    let config = CaptureConfig {
        interface: SERVER_IF.into(),
        ignore_outgoing: false,
        ..CaptureConfig::loopback(port)
    };
    // The handshake is over, which the segments do not need; the payload is not sent yet.
    let capture = link.on(Side::Server, move || Capture::start(config, Instant::now())).unwrap().unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(&vec![b'x'; bytes]).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    server.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), bytes);
    drop((client, server));
    let captured = capture.finish();
    let segments = stream_segments(&captured.packets, Direction::ClientToServer, None, 0);
    segments.segments.iter().map(|s| s.len).collect()
}

#[test]
fn a_4000_byte_write_leaves_as_mss_sized_segments() {
    if !test_may_make_namespaces("a_4000_byte_write_leaves_as_mss_sized_segments")
        || !test_may_use(Capability::NetRaw, "a_4000_byte_write_leaves_as_mss_sized_segments")
    {
        return;
    }
    // MSS is MTU - 40 (IPv4 and TCP headers); TCP timestamps take 12 bytes of each.
    assert_eq!(segments_of_one_write(1500, 4000), [1448, 1448, 1104]);
    assert_eq!(segments_of_one_write(1280, 4000), [1228, 1228, 1228, 316]);
}

#[test]
fn tbf_holds_a_transfer_to_its_rate_as_the_interface_counters_confirm() {
    if !test_may_make_namespaces("tbf_holds_a_transfer_to_its_rate_as_the_interface_counters_confirm") {
        return;
    }
    let rate = "100mbit".parse().unwrap();
    let link = VethLink::new(VethConfig { rate: Some(rate), ..VethConfig::default() }).unwrap();
    let qdisc = link.qdisc_stats(Side::Client).unwrap();
    assert!(qdisc.contains("tbf") && qdisc.contains("100Mbit"), "{qdisc}");
    let (listener, mut client) = connect(&link);
    let (mut server, _) = listener.accept().unwrap();
    const BYTES: usize = 4 << 20;
    let reader = std::thread::spawn(move || {
        server.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match server.read(&mut buf).unwrap() {
                0 => break total,
                n => total += n,
            }
        }
    });
    let counters_before = link.counters(Side::Client).unwrap();
    let started = Instant::now();
    client.write_all(&vec![7u8; BYTES]).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let received = reader.join().unwrap();
    let elapsed = started.elapsed();
    let sent = link.counters(Side::Client).unwrap().since(&counters_before);
    assert_eq!(received, BYTES);
    // Payload is at most 1448/1514 = 95.6% of what tbf lets through; slow start and a
    // busy machine cost some more. Above the rate would mean tbf did not shape at all
    // (a veth moves several Gbit/s unshaped).
    let goodput = rate_share_pct(BYTES as u64, elapsed, rate);
    assert!((80.0..=100.0).contains(&goodput), "payload at {goodput:.1}% of 100mbit");
    // The interface's own count of frames sent, over the same interval: tbf's view.
    let wire = rate_share_pct(sent.tx_bytes, elapsed, rate);
    assert!((85.0..=105.0).contains(&wire), "frames at {wire:.1}% of 100mbit ({sent:?})");
    assert!(sent.tx_bytes > BYTES as u64, "frames carry headers: {sent:?}");
    eprintln!(
        "tbf 100mbit: payload {goodput:.1}% of the rate, frames {wire:.1}% ({} bytes in {} frames, {:.3} s)",
        sent.tx_bytes,
        sent.tx_packets,
        elapsed.as_secs_f64()
    );
}

#[test]
fn a_failed_set_up_or_a_panic_inside_leaves_nothing_behind() {
    if !test_may_make_namespaces("a_failed_set_up_or_a_panic_inside_leaves_nothing_behind") {
        return;
    }
    let before = host_state();
    // veth's smallest MTU is 68: the set-up fails after the pair was made.
    let error =
        VethLink::new(VethConfig { mtu: 60, ..VethConfig::default() }).err().expect("MTU 60 is refused");
    assert!(matches!(error, LinkError::Command { .. }), "{error}");
    assert!(error.to_string().contains("mtu 60"), "{error}");
    assert_eq!(host_state(), before);

    let link = VethLink::new(VethConfig::default()).unwrap();
    let inodes = inodes(&link);
    let panicked = link.on(Side::Server, || panic!("a job panics inside the namespace"));
    assert!(matches!(panicked, Err(LinkError::Netns(_))));
    // The whole case panics with the link open: unwinding drops it.
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _link = link;
        panic!("the case panics");
    }));
    assert!(unwound.is_err());
    assert_gone(inodes, &before);
}

#[test]
fn the_client_namespace_reaches_nothing_but_the_server() {
    if !test_may_make_namespaces("the_client_namespace_reaches_nothing_but_the_server") {
        return;
    }
    let link = VethLink::new(VethConfig::default()).unwrap();
    // The host's loopback listener is not reachable from the client's namespace: its
    // 127.0.0.1 is its own.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = host.local_addr().unwrap();
    let reached = link
        .on(Side::Client, move || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
        .unwrap();
    assert!(!reached, "the client namespace reached the host's loopback");
}
