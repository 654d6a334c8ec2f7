//! Two private network namespaces joined by a veth pair: a link with an MTU, optionally
//! a rate, and addresses of its own, made per case and gone after it.
//!
//! **Why anonymous namespaces.** Each side is a [`PrivateNetns`]: a thread that
//! `unshare`d itself into a fresh namespace. Nothing is named (no `/run/netns` entry), so
//! nothing can be left behind: when the [`VethLink`] is dropped — at the end of a case,
//! on an error, on a panic's unwind, on a timeout that drops the case — the threads end,
//! the namespaces lose their last reference, and the kernel deletes both ends of the
//! veth and their qdiscs with them. Even `kill -9` of socklab leaves nothing, which named
//! namespaces (`ip netns add`, a bind mount that outlives the process) cannot promise.
//! The interfaces are set up with the tools people already use, `ip` and `tc`, run
//! inside a namespace with [`PrivateNetns::command`].
//!
//! **Real segments.** veth hands whole GSO packets across (a 4000-byte write crosses as
//! one 4000-byte "packet", which `tcpdump` on a veth shows); a NIC would cut them into
//! MSS-sized segments on the wire. The link sets `gso_max_segs 1` on both ends, so the
//! kernel builds every packet as one segment, and what the capture sees is what a wire
//! would carry: a 4000-byte write at MTU 1500 leaves as 1448 + 1448 + 1104 bytes (MSS
//! 1460 less 12 bytes of TCP timestamps).
//!
//! **Rate.** A `tbf` qdisc on each end's egress, so both directions are shaped. tbf
//! counts whole frames (payload plus 66 bytes of Ethernet, IP and TCP headers per
//! segment), so TCP payload reaches at most `MSS / (MTU + 14)` of the rate: 95.6% at MTU
//! 1500, 94.9% at 1280.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{LinkError, Rate};
use crate::net::PrivateNetns;
use crate::privilege::{NAMESPACES, all_held, missing_reason_all};

/// The client side's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The server side's address. Both lie in 198.18.0.0/15, the range RFC 2544 sets aside
/// for benchmarks, on a /30 of their own; being in private namespaces, they can never
/// meet the host's addresses.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PREFIX: u8 = 30;
/// The client end's interface name (in the client's namespace).
pub const CLIENT_IF: &str = "veth-client";
/// The server end's interface name (in the server's namespace).
pub const SERVER_IF: &str = "veth-server";
/// Longest an `ip` or `tc` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Queue limit of tbf, as time at the rate: packets waiting longer are dropped, as on a
/// router with a queue this deep.
const TBF_LATENCY: &str = "50ms";

/// How a veth link is made. `Default`: MTU 1500, no rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VethConfig {
    /// MTU of both ends, in bytes (68..=65535; socklab's parameters allow 576 and up).
    pub mtu: u32,
    /// A tbf rate on both ends' egress; `None` for none.
    pub rate: Option<Rate>,
    /// One-way delay each way, added not by the veth (this kernel has no netem) but by
    /// an impairment relay the case runs in the client's namespace
    /// ([`super::Link::start_relay`]); zero for none.
    pub delay: Duration,
}

impl Default for VethConfig {
    fn default() -> Self {
        VethConfig { mtu: 1500, rate: None, delay: Duration::ZERO }
    }
}

impl VethConfig {
    /// tbf's bucket: 4 ms at the rate, and never less than 4 frames (a bucket smaller than
    /// one frame would drop every frame).
    pub fn burst_bytes(&self) -> u64 {
        let frame = u64::from(self.mtu) + 14;
        self.rate.map_or(0, |rate| ((rate.bits_per_s() / 8) / 250).max(4 * frame))
    }
}

/// Which end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Where the client runs: `veth-client`, 198.18.0.1.
    Client,
    /// Where the server runs: `veth-server`, 198.18.0.2.
    Server,
}

impl Side {
    /// The interface of this end.
    pub fn interface(self) -> &'static str {
        match self {
            Side::Client => CLIENT_IF,
            Side::Server => SERVER_IF,
        }
    }

    /// The address of this end.
    pub fn addr(self) -> Ipv4Addr {
        match self {
            Side::Client => CLIENT_ADDR,
            Side::Server => SERVER_ADDR,
        }
    }
}

/// Byte and packet counters of one interface, from `/proc/net/dev` of its namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Bytes received (whole frames, Ethernet header included).
    pub rx_bytes: u64,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes sent (whole frames).
    pub tx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Frames dropped on sending (a full tbf queue counts in the qdisc, not here).
    pub tx_dropped: u64,
}

impl InterfaceCounters {
    /// Counts since `earlier`.
    pub fn since(&self, earlier: &InterfaceCounters) -> InterfaceCounters {
        InterfaceCounters {
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
        }
    }
}

/// Two private namespaces joined by a veth pair; see the module docs. Dropping it
/// removes everything it made.
pub struct VethLink {
    config: VethConfig,
    // Field order is drop order: both namespace threads end when the link is dropped.
    client: PrivateNetns,
    server: PrivateNetns,
}

impl VethLink {
    /// Makes both namespaces and the veth pair between them, with addresses, MTU, one
    /// segment per packet, and the rate.
    ///
    /// # Errors
    /// [`LinkError::NotPermitted`] without `CAP_SYS_ADMIN` and `CAP_NET_ADMIN`; [`LinkError::ToolMissing`]
    /// when `ip` (or, with a rate, `tc`) is not installed; [`LinkError::Command`] when a
    /// step fails (its stderr in the message); [`LinkError::Netns`] when a namespace
    /// cannot be made. Whatever was made before the failure is gone when this returns.
    pub fn new(config: VethConfig) -> Result<VethLink, LinkError> {
        if !all_held(NAMESPACES) {
            return Err(LinkError::NotPermitted(format!(
                "link=veth makes network namespaces, which {}",
                missing_reason_all(NAMESPACES)
            )));
        }
        let link = VethLink { config, client: PrivateNetns::new()?, server: PrivateNetns::new()? };
        link.set_up()?;
        Ok(link)
    }

    fn set_up(&self) -> Result<(), LinkError> {
        let mtu = self.config.mtu.to_string();
        let server_tid = self.server.thread_id().to_string();
        // Made in the client's namespace, its peer end created straight in the server's
        // (`netns` takes the id of a thread living there).
        self.run(
            Side::Client,
            "ip",
            &["link", "add", CLIENT_IF, "type", "veth", "peer", "name", SERVER_IF, "netns", &server_tid],
        )?;
        for side in [Side::Client, Side::Server] {
            let addr = format!("{}/{PREFIX}", side.addr());
            self.run(side, "ip", &["addr", "add", &addr, "dev", side.interface()])?;
            // One segment per packet: see the module docs.
            self.run(
                side,
                "ip",
                &["link", "set", "dev", side.interface(), "mtu", &mtu, "gso_max_segs", "1", "up"],
            )?;
            if let Some(rate) = self.config.rate {
                let rate = format!("{}bit", rate.bits_per_s());
                let burst = self.config.burst_bytes().to_string();
                self.run(
                    side,
                    "tc",
                    &[
                        "qdisc",
                        "add",
                        "dev",
                        side.interface(),
                        "root",
                        "tbf",
                        "rate",
                        &rate,
                        "burst",
                        &burst,
                        "latency",
                        TBF_LATENCY,
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// The settings it was made with.
    pub fn config(&self) -> VethConfig {
        self.config
    }

    /// The namespace of one end.
    pub fn netns(&self, side: Side) -> &PrivateNetns {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    /// Runs `job` in the namespace of `side` (sockets it creates belong there).
    ///
    /// # Errors
    /// [`LinkError::Netns`] when the namespace thread is gone (an earlier job panicked)
    /// or `job` panics.
    pub fn on<R: Send + 'static>(
        &self,
        side: Side,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, LinkError> {
        Ok(self.netns(side).run(job)?)
    }

    /// The counters of `side`'s interface now.
    ///
    /// # Errors
    /// [`LinkError::Counters`] when `/proc/net/dev` of the namespace cannot be read or
    /// lacks the interface.
    pub fn counters(&self, side: Side) -> Result<InterfaceCounters, LinkError> {
        let interface = side.interface();
        let text = self
            .on(side, || std::fs::read_to_string("/proc/thread-self/net/dev"))?
            .map_err(|e| LinkError::Counters(format!("read /proc/net/dev: {e}")))?;
        parse_net_dev(&text, interface)
            .ok_or_else(|| LinkError::Counters(format!("/proc/net/dev has no line for {interface}")))
    }

    /// IP fragments `side`'s namespace has made (`Ip: FragCreates` in its
    /// `/proc/net/snmp`): datagrams larger than the MTU leave in pieces.
    ///
    /// # Errors
    /// [`LinkError::Counters`] when the file cannot be read or lacks the counter.
    pub fn fragments_created(&self, side: Side) -> Result<u64, LinkError> {
        let text = self
            .on(side, || std::fs::read_to_string("/proc/thread-self/net/snmp"))?
            .map_err(|e| LinkError::Counters(format!("read /proc/net/snmp: {e}")))?;
        crate::net::snmp_counter(&text, "Ip", "FragCreates")
            .ok_or_else(|| LinkError::Counters("/proc/net/snmp has no Ip: FragCreates".into()))
    }

    /// `tc -s qdisc show` of `side`'s interface, as text: what tbf sent and dropped.
    ///
    /// # Errors
    /// As [`VethLink::new`]'s commands.
    pub fn qdisc_stats(&self, side: Side) -> Result<String, LinkError> {
        self.run(side, "tc", &["-s", "qdisc", "show", "dev", side.interface()])
    }

    /// Runs `program args` in `side`'s namespace, bounded by [`COMMAND_TIMEOUT`], and
    /// returns its stdout.
    fn run(&self, side: Side, program: &'static str, args: &[&str]) -> Result<String, LinkError> {
        let line = format!("{program} {}", args.join(" "));
        let child = self
            .netns(side)
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LinkError::ToolMissing {
                    tool: program,
                    package: if program == "tc" || program == "ip" { "iproute2" } else { program },
                },
                _ => LinkError::Command { command: line.clone(), reason: e.to_string() },
            })?;
        let (ok, stdout, stderr) = wait_bounded(child, COMMAND_TIMEOUT)
            .map_err(|reason| LinkError::Command { command: line.clone(), reason })?;
        if ok {
            Ok(stdout)
        } else {
            Err(LinkError::Command { command: line, reason: stderr.trim().to_string() })
        }
    }
}

/// Waits for `child` up to `timeout` (killing it after), and returns whether it
/// succeeded, its stdout and its stderr.
fn wait_bounded(mut child: Child, timeout: Duration) -> Result<(bool, String, String), String> {
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s", timeout.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let read = |pipe: Option<&mut dyn Read>| {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(64 << 10).read_to_string(&mut text);
        }
        text
    };
    let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn Read));
    let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn Read));
    let stderr = if stderr.trim().is_empty() { format!("exited with {status}") } else { stderr };
    Ok((status.success(), stdout, stderr))
}

/// The counters of `interface` from `/proc/net/dev` text: after `name:`, 8 receive
/// figures (bytes, packets, errs, drop, fifo, frame, compressed, multicast), then 8 send
/// figures (bytes, packets, errs, drop, ...).
pub fn parse_net_dev(text: &str, interface: &str) -> Option<InterfaceCounters> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        let numbers: Vec<u64> = rest.split_whitespace().map(|w| w.parse().ok()).collect::<Option<_>>()?;
        (numbers.len() >= 16).then(|| InterfaceCounters {
            rx_bytes: numbers[0],
            rx_packets: numbers[1],
            tx_bytes: numbers[8],
            tx_packets: numbers[9],
            tx_dropped: numbers[11],
        })
    })
}

/// The address of `side` as an [`IpAddr`].
pub fn side_ip(side: Side) -> IpAddr {
    IpAddr::V4(side.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_parse() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
veth-client: 4204   30    0    0    0     0          0         0    17542164   11590    0    7    0     0       0          0
";
        let c = parse_net_dev(text, "veth-client").unwrap();
        assert_eq!(
            (c.rx_bytes, c.rx_packets, c.tx_bytes, c.tx_packets, c.tx_dropped),
            (4204, 30, 17_542_164, 11_590, 7)
        );
        assert!(parse_net_dev(text, "veth-server").is_none());
    }

    #[test]
    fn the_bucket_holds_4_ms_and_at_least_4_frames() {
        let rate = |text: &str| Some(text.parse::<Rate>().unwrap());
        let config = |mtu, rate| VethConfig { mtu, rate, ..VethConfig::default() };
        assert_eq!(config(1500, rate("100mbit")).burst_bytes(), 50_000);
        assert_eq!(config(1500, rate("1mbit")).burst_bytes(), 4 * 1514);
        assert_eq!(VethConfig::default().burst_bytes(), 0);
    }
}
