//! The floor of a ping-pong round trip: the simplest blocking echo server and client,
//! over TCP or UDP, with nothing but the system calls: no framing, no reply checks, no
//! socket timeouts, one clock read at each end of a round trip. It is what any ping-pong
//! tool can at best measure on this machine; `ci/compare-peers.sh` runs it beside
//! sockperf and socklab, so that a ratio between those two can be read against it.
//!
//! ```text
//! ping_pong_floor serve tcp|udp                      bind 127.0.0.1:0, print the port, echo
//! ping_pong_floor ping tcp|udp PORT SECONDS SIZE     print the p50 round trip (µs) and the count
//! ```
//!
//! Both stop by themselves: the server after [`SERVE_FOR`], the client after SECONDS or
//! [`MAX_ROUND_TRIPS`]; a watchdog thread ends either process if it is still running
//! [`GRACE`] later (a lost datagram would otherwise leave the client waiting, as the
//! floor sets no socket timeout: a timeout arms a kernel timer on every wait).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a server runs.
const SERVE_FOR: Duration = Duration::from_secs(600);
/// Round trips a client makes at most.
const MAX_ROUND_TRIPS: usize = 20_000_000;
/// How long past its own end a process may run before its watchdog ends it.
const GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let usage = "usage: ping_pong_floor serve tcp|udp | ping tcp|udp PORT SECONDS SIZE";
    let outcome = match args.as_slice() {
        ["serve", transport @ ("tcp" | "udp")] => {
            exit_after(SERVE_FOR + GRACE);
            if *transport == "tcp" { serve_tcp() } else { serve_udp() }
        }
        ["ping", transport @ ("tcp" | "udp"), port, seconds, size] => {
            let (Ok(port), Ok(seconds), Ok(size)) =
                (port.parse::<u16>(), seconds.parse::<f64>(), size.parse())
            else {
                eprintln!("{usage}");
                return ExitCode::from(2);
            };
            if !(seconds > 0.0 && seconds <= 600.0 && (1..=65_507).contains(&size)) {
                eprintln!("SECONDS must be in (0, 600] and SIZE in 1..=65507");
                return ExitCode::from(2);
            }
            let duration = Duration::from_secs_f64(seconds);
            exit_after(duration + GRACE);
            let round_trips = if *transport == "tcp" {
                ping_tcp(port, duration, size)
            } else {
                ping_udp(port, duration, size)
            };
            round_trips.map(|mut samples| {
                samples.sort_unstable();
                let p50 = samples[samples.len() / 2];
                println!("p50_us={:.3} round_trips={}", p50 as f64 / 1000.0, samples.len());
            })
        }
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ping_pong_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ends the process after `limit`, whatever it is doing.
fn exit_after(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("ping_pong_floor: still running after {limit:?}; exiting");
        std::process::exit(1);
    });
}

fn serve_tcp() -> std::io::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("{}", listener.local_addr()?.port());
    for stream in listener.incoming() {
        let mut stream = stream?;
        stream.set_nodelay(true)?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

fn serve_udp() -> std::io::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("{}", socket.local_addr()?.port());
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        socket.send_to(&buf[..n], from)?;
    }
}

/// Round trips of `size` bytes until `duration` is over, in nanoseconds each.
fn ping_tcp(port: u16, duration: Duration, size: usize) -> std::io::Result<Vec<u64>> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_nodelay(true)?;
    let request = vec![b'x'; size];
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while samples.len() < MAX_ROUND_TRIPS {
        let sent_at = Instant::now();
        stream.write_all(&request)?;
        let mut got = 0;
        while got < size {
            match stream.read(&mut buf)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        let now = Instant::now();
        samples.push((now - sent_at).as_nanos() as u64);
        if now - start >= duration {
            break;
        }
    }
    Ok(samples)
}

/// Round trips of one `size`-byte datagram until `duration` is over, in nanoseconds each.
fn ping_udp(port: u16, duration: Duration, size: usize) -> std::io::Result<Vec<u64>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.connect((Ipv4Addr::LOCALHOST, port))?;
    let request = vec![b'x'; size];
    let mut buf = vec![0u8; 65_536];
    let mut samples = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while samples.len() < MAX_ROUND_TRIPS {
        let sent_at = Instant::now();
        socket.send(&request)?;
        socket.recv(&mut buf)?;
        let now = Instant::now();
        samples.push((now - sent_at).as_nanos() as u64);
        if now - start >= duration {
            break;
        }
    }
    Ok(samples)
}
