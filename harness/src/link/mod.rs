//! Where a case runs: over loopback, or over a real link between two private network
//! namespaces joined by a veth pair ([`veth`]), with an MTU and optionally a rate.
//!
//! Loopback has a 64 KiB MTU, no rate and no latency, so the segment and read patterns of
//! a real network never appear on it. A scenario that takes the `link` parameters
//! ([`shared_params`](crate::shared_params)' `LINK`, `MTU`, `RATE`, and for TCP
//! `DELAY_MS`, the same specs in every such scenario) opens a [`Link`] per case, binds its server and creates its client
//! socket through it, captures on it, and drops it at the end, which removes everything
//! the link made.
//!
//! A link is never quietly replaced: without `CAP_NET_ADMIN`, opening a veth link fails
//! with [`LinkError::NotPermitted`], which the runner turns into a skipped case with that
//! reason (or, where `SOCKLAB_REQUIRE_PRIVILEGED=1`, an error).

pub mod veth;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use socklab_model::rate::{Rate, RateError};
pub use veth::{InterfaceCounters, Side, VethConfig, VethLink};

use crate::capture::{CaptureConfig, CaseCapture};
use crate::impair::{ImpairError, Impairment, RelayConfig, TcpRelay, start_in_front};

use crate::net::NetnsError;
use crate::params::Invalid;
use crate::report::LinkRecord;

crate::named_enum!(
    /// Where a case runs: the `link` parameter ([`crate::shared_params::LINK`]).
    pub LinkKind, "link", {
        /// `127.0.0.1`, in socklab's own namespace.
        Loopback => "loopback",
        /// Two private network namespaces joined by a veth pair.
        Veth => "veth",
    }
);

/// The MTU of a veth link when the case does not set one: Ethernet's.
pub const DEFAULT_MTU: u64 = 1500;

/// What a case's link parameters ask for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSpec {
    /// `127.0.0.1`, in socklab's own namespace.
    Loopback,
    /// Two private namespaces joined by veth.
    Veth(VethConfig),
}

impl LinkSpec {
    /// Checks the four link parameters together.
    ///
    /// # Errors
    /// [`Invalid`] naming the parameter at fault: a setting that does not apply to
    /// loopback, a rate that does not parse.
    pub fn parse(link: LinkKind, mtu: u64, rate: &str, delay_ms: u64) -> Result<LinkSpec, Invalid> {
        let rate = match rate.trim() {
            "" | "none" => None,
            text => Some(text.parse::<Rate>().map_err(|e| Invalid::new("rate", e.to_string()))?),
        };
        match link {
            LinkKind::Loopback => {
                if mtu != DEFAULT_MTU || rate.is_some() {
                    return Err(Invalid::new(
                        "link",
                        "mtu and rate apply to link=veth; loopback's MTU is 65536 and its rate is \
                         unlimited (set link=veth)",
                    ));
                }
                if delay_ms > 0 {
                    return Err(Invalid::new(
                        "delay_ms",
                        format!(
                            "delay_ms applies to link=veth (set link=veth); on loopback, scenarios with an \
                             `impair` parameter take the relay's delay directly (impair=delay={delay_ms}ms)"
                        ),
                    ));
                }
                Ok(LinkSpec::Loopback)
            }
            LinkKind::Veth => {
                let mtu =
                    u32::try_from(mtu).map_err(|_| Invalid::new("mtu", format!("mtu {mtu} is too large")))?;
                Ok(LinkSpec::Veth(VethConfig { mtu, rate, delay: Duration::from_millis(delay_ms) }))
            }
        }
    }

    /// The impairment a case's relay applies: the scenario's own `impair` spec, and the
    /// link's delay (`delay=Xms`, both directions) joined to it. `none` when neither.
    ///
    /// # Errors
    /// [`Invalid`] for `impair`, with the spec's reason (a delay given both ways: `delay
    /// given twice`).
    pub fn relay_impairment(&self, impair: &str) -> Result<Impairment, Invalid> {
        let delay = match self {
            LinkSpec::Veth(config) if !config.delay.is_zero() => Some(config.delay),
            _ => None,
        };
        let text = match (impair.trim(), delay) {
            (spec, None) => spec.to_string(),
            ("none" | "", Some(delay)) => format!("delay={}ms", delay.as_millis()),
            (spec, Some(delay)) => format!("{spec}+delay={}ms", delay.as_millis()),
        };
        Impairment::parse(&text).map_err(|e| {
            Invalid::new(
                "impair",
                match delay {
                    Some(_) => format!("impair with the link's delay_ms ({text}): {e}"),
                    None => format!("impair: {e}"),
                },
            )
        })
    }

    /// The rate, if one is set.
    pub fn rate(&self) -> Option<Rate> {
        match self {
            LinkSpec::Loopback => None,
            LinkSpec::Veth(config) => config.rate,
        }
    }
}

/// Why a link could not be made or used.
///
/// Messages include their cause, so `source()` is `None`.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The process may not make namespaces; the case is skipped with this reason.
    #[error("{0}")]
    NotPermitted(String),
    /// A tool the link needs is not installed.
    #[error("link=veth needs `{tool}`, which is not installed (install the {package} package)")]
    ToolMissing {
        /// `ip` or `tc`.
        tool: &'static str,
        /// The package that has it.
        package: &'static str,
    },
    /// A set-up command failed.
    #[error("link=veth: `{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr, or why it could not run.
        reason: String,
    },
    /// A namespace could not be made or used.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Interface counters could not be read.
    #[error("link=veth: interface counters: {0}")]
    Counters(String),
    /// The server side is on the agent's host, not here.
    #[error("the server side runs on the agent's host (--peer-cmd), not here")]
    RemoteServer,
    /// The impairment relay (the link's delay) could not start.
    #[error("start the impairment relay: {0}")]
    Relay(ImpairError),
}

/// A case's link, open for the length of the case; see the module docs.
pub enum Link {
    /// Loopback in socklab's namespace.
    Loopback,
    /// A veth link between two private namespaces.
    Veth(VethLink),
    /// The network between this host and an agent's (`--peer-cmd`): socklab makes
    /// nothing, it only captures on this host's side and describes it.
    Peer(PeerPath),
}

/// This host's end of the path to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPath {
    /// The agent's address, as the runner connects to it.
    pub peer_ip: IpAddr,
    /// This host's address toward it.
    pub local_ip: IpAddr,
    /// The interface holding `local_ip`.
    pub interface: String,
    /// Its MTU.
    pub mtu: Option<u32>,
}

impl PeerPath {
    /// The path toward `peer_ip` as this host's routing table has it.
    pub fn toward(peer_ip: IpAddr) -> PeerPath {
        let local_ip = crate::host::local_ip_toward(peer_ip).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let interface = crate::host::interface_of(local_ip).unwrap_or_else(|| "lo".to_string());
        let mtu = crate::host::interface_mtu(&interface);
        PeerPath { peer_ip, local_ip, interface, mtu }
    }
}

impl Link {
    /// Opens the link `spec` asks for.
    ///
    /// # Errors
    /// See [`VethLink::new`].
    pub fn open(spec: LinkSpec) -> Result<Link, LinkError> {
        match spec {
            LinkSpec::Loopback => Ok(Link::Loopback),
            LinkSpec::Veth(config) => Ok(Link::Veth(VethLink::new(config)?)),
        }
    }

    /// Where the server listens: `127.0.0.1`, or the server end of the veth.
    pub fn server_ip(&self) -> IpAddr {
        match self {
            Link::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Link::Veth(_) => veth::side_ip(Side::Server),
            Link::Peer(path) => path.peer_ip,
        }
    }

    /// Runs `job` where the server runs (in its namespace, or right here on loopback).
    ///
    /// # Errors
    /// [`LinkError::Netns`] when the namespace thread is gone or `job` panicked.
    pub fn on_server<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, LinkError> {
        self.on(Side::Server, job)
    }

    /// Runs `job` where the client runs.
    ///
    /// # Errors
    /// As [`Link::on_server`].
    pub fn on_client<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, LinkError> {
        self.on(Side::Client, job)
    }

    fn on<R: Send + 'static>(
        &self,
        side: Side,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, LinkError> {
        match (self, side) {
            (Link::Veth(veth), side) => veth.on(side, job),
            (Link::Peer(_), Side::Server) => Err(LinkError::RemoteServer),
            (Link::Loopback | Link::Peer(_), _) => Ok(job()),
        }
    }

    /// A TCP listener on the server side, port chosen by the OS, made with `socket` so
    /// options (`SO_RCVBUF`) can be set before it binds; blocking.
    ///
    /// # Errors
    /// The socket call that failed, with what it was doing.
    pub fn tcp_listener(
        &self,
        before_bind: impl FnOnce(&socket2::Socket) -> io::Result<()> + Send + 'static,
    ) -> Result<std::net::TcpListener, LinkError> {
        let ip = self.server_ip();
        self.on_server(move || -> io::Result<std::net::TcpListener> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address((ip, 0).into()),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            before_bind(&socket)?;
            socket.bind(&std::net::SocketAddr::from((ip, 0)).into())?;
            socket.listen(128)?;
            Ok(socket.into())
        })?
        .map_err(|e| LinkError::Command { command: format!("listen on {ip}"), reason: e.to_string() })
    }

    /// Starts the case's impairment relay in front of `upstream` (the server), where the
    /// client runs: on a veth link in the client's namespace, so the relay's own
    /// connection to the server crosses the link. `None` when `impair` is `none`.
    ///
    /// # Errors
    /// [`LinkError::Relay`] when it cannot start; [`LinkError::Netns`].
    pub fn start_relay(
        &self,
        upstream: SocketAddr,
        impair: &Impairment,
        seed: u64,
        config: RelayConfig,
    ) -> Result<Option<TcpRelay>, LinkError> {
        let impair = impair.clone();
        self.on_client(move || start_in_front::<TcpRelay>(upstream, &impair, seed, config))?
            .map_err(LinkError::Relay)
    }

    /// A UDP socket bound on `side`'s address (`127.0.0.1` on loopback), port chosen by
    /// the OS, made in that side's namespace.
    ///
    /// # Errors
    /// As [`Link::tcp_listener`].
    pub fn udp_socket(&self, side: Side) -> Result<std::net::UdpSocket, LinkError> {
        let ip = match self {
            Link::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Link::Veth(_) => veth::side_ip(side),
            Link::Peer(path) => match side {
                Side::Client => path.local_ip,
                Side::Server => path.peer_ip,
            },
        };
        self.on(side, move || std::net::UdpSocket::bind((ip, 0)))?.map_err(|e| LinkError::Command {
            command: format!("bind a UDP socket on {ip}"),
            reason: e.to_string(),
        })
    }

    /// An unconnected TCP socket on the client side, for `connect`.
    ///
    /// # Errors
    /// As [`Link::tcp_listener`].
    pub fn tcp_client_socket(&self) -> Result<socket2::Socket, LinkError> {
        let ip = self.server_ip();
        self.on_client(move || {
            socket2::Socket::new(
                socket2::Domain::for_address((ip, 0).into()),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )
        })?
        .map_err(|e| LinkError::Command { command: "create a client socket".into(), reason: e.to_string() })
    }

    /// Starts capturing the connections to `server_port`: on `lo`, or on the server's
    /// end of the veth, both directions (a veth shows each frame once). Degrades like
    /// every capture: without `CAP_NET_RAW` the case runs on and says why.
    pub fn capture(&self, server_port: u16, clock: Instant) -> CaseCapture {
        match self {
            Link::Loopback => CaseCapture::start(CaptureConfig::loopback(server_port), clock),
            Link::Peer(path) if path.interface == "lo" => {
                CaseCapture::start(CaptureConfig::loopback(server_port), clock)
            }
            Link::Peer(path) => CaseCapture::start(
                CaptureConfig {
                    interface: path.interface.clone(),
                    ignore_outgoing: false,
                    ..CaptureConfig::loopback(server_port)
                },
                clock,
            ),
            Link::Veth(veth) => {
                let config = CaptureConfig {
                    interface: veth::SERVER_IF.to_string(),
                    ignore_outgoing: false,
                    ..CaptureConfig::loopback(server_port)
                };
                veth.on(Side::Server, move || CaseCapture::start(config, clock))
                    .unwrap_or_else(|e| CaseCapture::Unavailable(e.to_string()))
            }
        }
    }

    /// The client end's counters (bytes and frames sent), for a rate measured by the
    /// link itself; `None` on loopback, which other traffic shares.
    ///
    /// # Errors
    /// [`LinkError::Counters`].
    pub fn client_counters(&self) -> Result<Option<InterfaceCounters>, LinkError> {
        match self {
            Link::Loopback | Link::Peer(_) => Ok(None),
            Link::Veth(veth) => veth.counters(Side::Client).map(Some),
        }
    }

    /// IP fragments the client's namespace has made so far; `None` on loopback (whose
    /// 64 KiB MTU fragments nothing) and toward a peer.
    ///
    /// # Errors
    /// [`LinkError::Counters`].
    pub fn client_fragments_created(&self) -> Result<Option<u64>, LinkError> {
        match self {
            Link::Loopback | Link::Peer(_) => Ok(None),
            Link::Veth(veth) => veth.fragments_created(Side::Client).map(Some),
        }
    }

    /// What the report says about the link.
    pub fn record(&self) -> LinkRecord {
        match self {
            Link::Peer(path) => LinkRecord {
                kind: "peer".into(),
                mtu: path.mtu,
                rate_bit_s: None,
                mss: None,
                delay_ms: None,
                client: format!("{} ({}, this host)", path.local_ip, path.interface),
                server: format!("{} (the agent's host)", path.peer_ip),
                detail: format!(
                    "the network between this host and the agent's; socklab shapes nothing on it; the capture \
                     runs on this host's {}, so it shows segments as this kernel handed them to the interface \
                     (with TSO on, a NIC cuts them further on the wire)",
                    path.interface
                ),
            },
            Link::Loopback => LinkRecord {
                kind: "loopback".into(),
                mtu: None,
                rate_bit_s: None,
                mss: None,
                delay_ms: None,
                client: "127.0.0.1 (lo)".into(),
                server: "127.0.0.1 (lo)".into(),
                detail: "loopback in socklab's own network namespace".into(),
            },
            Link::Veth(veth) => {
                let config = veth.config();
                let shaping = match config.rate {
                    Some(rate) => {
                        format!(
                            "tbf {rate} (bucket {} bytes, queue {}) on both ends' egress",
                            config.burst_bytes(),
                            "50 ms"
                        )
                    }
                    None => "no rate limit".to_string(),
                };
                let delay = if config.delay.is_zero() {
                    String::new()
                } else {
                    format!(
                        "; {} ms one-way delay each way, added by socklab's impairment relay in the client's \
                         namespace (the kernel has no netem)",
                        config.delay.as_millis()
                    )
                };
                LinkRecord {
                    kind: "veth".into(),
                    mtu: Some(config.mtu),
                    rate_bit_s: config.rate.map(Rate::bits_per_s),
                    mss: None,
                    delay_ms: (!config.delay.is_zero()).then_some(config.delay.as_millis() as u64),
                    client: format!("{} ({}, private namespace)", veth::CLIENT_ADDR, veth::CLIENT_IF),
                    server: format!("{} ({}, private namespace)", veth::SERVER_ADDR, veth::SERVER_IF),
                    detail: format!(
                        "two private network namespaces joined by a veth pair, MTU {}; one segment per packet \
                         (gso_max_segs 1), as on a wire; {shaping}{delay}",
                        config.mtu
                    ),
                }
            }
        }
    }
}

/// How far from a link's rate a transfer may land and still be "at the rate", in
/// percent: payload can reach at most MSS / (MTU + 14) of it (95.6% at MTU 1500), and
/// slow start and a busy machine cost a few percent more.
pub const RATE_TOLERANCE_PCT: f64 = 10.0;

/// The check that a transfer ran at the link's rate: payload throughput within
/// [`RATE_TOLERANCE_PCT`] of it. `wire_bytes` is what the interface's own counters say
/// was sent in frames (headers included) over the same interval, shown beside it.
pub fn rate_check(
    rate: Rate,
    payload_bytes: u64,
    wire_bytes: Option<u64>,
    elapsed: Duration,
) -> crate::check::Check {
    let share = rate_share_pct(payload_bytes, elapsed, rate);
    let mbit = |bytes: u64| bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6;
    let mut observed = format!("{share:.1}% ({:.1} Mbit/s of payload", mbit(payload_bytes));
    if let Some(wire) = wire_bytes {
        observed += &format!("; the interface counted {:.1} Mbit/s of frames", mbit(wire));
    }
    observed += ")";
    let low = 100.0 - RATE_TOLERANCE_PCT;
    let high = 100.0 + RATE_TOLERANCE_PCT;
    let passed = payload_bytes > 0 && (low..=high).contains(&share);
    crate::check::Check::new(
        "throughput_at_rate",
        format!("{low:.0}%..={high:.0}% of {rate}"),
        observed,
        passed,
        if passed {
            "tbf held the link to its rate; the payload's share is below 100% by the headers every segment carries"
        } else if share > high {
            "faster than the link's rate: the rate limit did not hold"
        } else {
            "well below the link's rate: something other than the link limited the transfer (buffers, CPU, a short transfer still in slow start)"
        },
    )
}

/// The share of `rate` a transfer of `bytes` payload bytes in `elapsed` reached, in
/// percent.
pub fn rate_share_pct(bytes: u64, elapsed: Duration, rate: Rate) -> f64 {
    let bits_per_s = bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9);
    bits_per_s / rate.bits_per_s() as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parameters_are_checked_together() {
        assert_eq!(LinkSpec::parse(LinkKind::Loopback, 1500, "none", 0), Ok(LinkSpec::Loopback));
        assert_eq!(
            LinkSpec::parse(LinkKind::Veth, 1280, "50mbit", 0),
            Ok(LinkSpec::Veth(VethConfig {
                mtu: 1280,
                rate: Some("50mbit".parse().unwrap()),
                delay: Duration::ZERO
            }))
        );
        assert!(
            LinkSpec::parse(LinkKind::Loopback, 1280, "none", 0)
                .unwrap_err()
                .reason
                .contains("apply to link=veth")
        );
        assert!(
            LinkSpec::parse(LinkKind::Loopback, 1500, "10mbit", 0)
                .unwrap_err()
                .reason
                .contains("apply to link=veth")
        );
        assert!(LinkSpec::parse(LinkKind::Veth, 1500, "10mbps", 0).unwrap_err().reason.contains("megabytes"));
        let loopback_delay = LinkSpec::parse(LinkKind::Loopback, 1500, "none", 20).unwrap_err();
        assert!(loopback_delay.reason.contains("impair=delay=20ms"), "{loopback_delay}");
        let veth = LinkSpec::parse(LinkKind::Veth, 1500, "none", 20).unwrap();
        assert_eq!(veth.relay_impairment("none").unwrap().to_string(), "delay=20ms");
        assert_eq!(veth.relay_impairment("split=3").unwrap().to_string(), "split=3+delay=20ms");
        let twice = veth.relay_impairment("delay=5ms").unwrap_err();
        assert!(twice.reason.contains("delay given twice"), "{twice}");
        assert!(LinkSpec::Loopback.relay_impairment("none").unwrap().is_none());
    }

    #[test]
    fn rate_share_is_in_percent() {
        let share = rate_share_pct(12_500_000, Duration::from_secs(1), "100mbit".parse().unwrap());
        assert!((share - 100.0).abs() < 1e-9);
    }
}
