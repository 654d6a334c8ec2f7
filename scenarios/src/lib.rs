//! socklab's scenarios — one file each — and the built-in suites.
//!
//! Each scenario is a unit struct implementing [`socklab_harness::scenario::Scenario`];
//! [`registry`] lists them all for the runner and the CLI.

use socklab_harness::scenario::Registry;

pub mod addr_in_use;
mod blocking;
pub mod empty_send;
pub mod eof_handling;
mod experiment;
pub mod file_transfer;
pub mod framing_throughput;
pub mod nagle_delayed_ack;
pub mod netns_scope;
pub mod recv_buffer;
pub mod sequential_server;
pub mod server_conformance;
pub mod tcp_coalescing;
pub mod udp_early_send;
pub mod udp_rcvbuf_overflow;
pub mod udp_truncation;

/// The suite `socklab run` runs when given nothing else.
pub const DEFAULT_SUITE: &str = include_str!("../suites/default.toml");

/// The fast suite CI runs.
pub const CI_SUITE: &str = include_str!("../suites/ci.toml");

/// Every scenario socklab knows.
pub fn registry() -> Registry {
    Registry::default()
        .with::<tcp_coalescing::TcpCoalescing>()
        .with::<nagle_delayed_ack::NagleDelayedAck>()
        .with::<udp_early_send::UdpEarlySend>()
        .with::<udp_rcvbuf_overflow::UdpRcvbufOverflow>()
        .with::<udp_truncation::UdpTruncation>()
        .with::<recv_buffer::RecvBuffer>()
        .with::<framing_throughput::FramingThroughput>()
        .with::<server_conformance::ServerConformance>()
        .with::<eof_handling::EofHandling>()
        .with::<sequential_server::SequentialServer>()
        .with::<addr_in_use::AddrInUse>()
        .with::<file_transfer::FileTransfer>()
        .with::<empty_send::EmptySend>()
}
