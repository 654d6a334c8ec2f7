//! The kernel's UDP counters from `/proc/net/snmp` (the `Udp:` lines), such as
//! `RcvbufErrors`: datagrams dropped because a socket's receive buffer was full.
//!
//! The counters belong to a network namespace, not to a socket: read in the namespace a
//! case created for itself they count only that case's traffic; read in the host
//! namespace they count every process's. [`read_udp_counters`] reads
//! `/proc/thread-self/net/snmp`, the namespace of the calling thread (`/proc/net` and
//! `/proc/self/net` show the main thread's).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The file [`read_udp_counters`] reads: the calling thread's network namespace.
pub const THREAD_SNMP_PATH: &str = "/proc/thread-self/net/snmp";

/// The `Udp:` counters socklab uses (see `RFC 4113` and `linux/snmp.h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams delivered to sockets.
    pub in_datagrams: u64,
    /// Datagrams to a port with no socket (answered with ICMP port unreachable).
    pub no_ports: u64,
    /// Datagrams that could not be delivered for other reasons (buffer drops included).
    pub in_errors: u64,
    /// Datagrams sent.
    pub out_datagrams: u64,
    /// Datagrams dropped because the receiving socket's buffer was full.
    pub rcvbuf_errors: u64,
    /// Datagrams dropped because the sending socket's buffer was full.
    pub sndbuf_errors: u64,
}

impl UdpCounters {
    /// Counter by counter, `self - earlier` (saturating: a counter never goes back).
    pub fn since(&self, earlier: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams.saturating_sub(earlier.in_datagrams),
            no_ports: self.no_ports.saturating_sub(earlier.no_ports),
            in_errors: self.in_errors.saturating_sub(earlier.in_errors),
            out_datagrams: self.out_datagrams.saturating_sub(earlier.out_datagrams),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(earlier.sndbuf_errors),
        }
    }
}

/// Why the counters could not be read.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum SnmpError {
    /// The file could not be read.
    #[error("read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The text is not in the expected layout.
    #[error("{path}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in one line.
        problem: String,
    },
}

/// Reads the `Udp:` counters of the calling thread's network namespace.
///
/// # Errors
/// [`SnmpError`] naming the file.
pub fn read_udp_counters() -> Result<UdpCounters, SnmpError> {
    read_udp_counters_from(Path::new(THREAD_SNMP_PATH))
}

/// Reads the `Udp:` counters from a file in the `/proc/net/snmp` layout.
///
/// # Errors
/// [`SnmpError`] naming the file.
pub fn read_udp_counters_from(path: &Path) -> Result<UdpCounters, SnmpError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| SnmpError::Read { path: path.to_path_buf(), error })?;
    parse_udp(&text).map_err(|problem| SnmpError::Format { path: path.to_path_buf(), problem })
}

/// Parses the `Udp:` header and value lines of `/proc/net/snmp` text. Counters are found
/// by name, so kernels that add columns still parse; a missing column reads as 0.
///
/// # Errors
/// A one-line description when there is no `Udp:` header/value pair, the two lines differ
/// in length, or a value is not a number.
pub fn parse_udp(text: &str) -> Result<UdpCounters, String> {
    let mut udp_lines = text.lines().filter_map(|line| line.strip_prefix("Udp:"));
    let header = udp_lines.next().ok_or("no `Udp:` header line")?;
    let values = udp_lines.next().ok_or("no `Udp:` value line after the header")?;
    let names: Vec<&str> = header.split_whitespace().collect();
    let numbers: Vec<&str> = values.split_whitespace().collect();
    if names.len() != numbers.len() {
        return Err(format!("`Udp:` header has {} names but {} values", names.len(), numbers.len()));
    }
    let mut by_name = BTreeMap::new();
    for (name, number) in names.into_iter().zip(numbers) {
        let value: u64 =
            number.parse().map_err(|_| format!("`Udp:` counter {name} is {number:?}, not a number"))?;
        by_name.insert(name, value);
    }
    let get = |name: &str| by_name.get(name).copied().unwrap_or(0);
    Ok(UdpCounters {
        in_datagrams: get("InDatagrams"),
        no_ports: get("NoPorts"),
        in_errors: get("InErrors"),
        out_datagrams: get("OutDatagrams"),
        rcvbuf_errors: get("RcvbufErrors"),
        sndbuf_errors: get("SndbufErrors"),
    })
}

/// Counter `name` of group `group` (`Ip`, `Udp`, `Tcp`) in `/proc/net/snmp` text, whose
/// groups are a header line of names and a line of values.
pub fn snmp_counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter_map(|line| line.strip_prefix(prefix.as_str()));
    let (header, values) = (lines.next()?, lines.next()?);
    let at = header.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_counter_is_found_by_group_and_name() {
        assert_eq!(snmp_counter(SAMPLE, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(snmp_counter(SAMPLE, "Udp", "RcvbufErrors"), Some(17));
        assert_eq!(snmp_counter(SAMPLE, "Ip", "FragCreates"), None);
    }

    const SAMPLE: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 123
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 99 3 17 100 17 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn parses_the_udp_lines_and_not_udplite() {
        let counters = parse_udp(SAMPLE).unwrap();
        assert_eq!(
            counters,
            UdpCounters {
                in_datagrams: 99,
                no_ports: 3,
                in_errors: 17,
                out_datagrams: 100,
                rcvbuf_errors: 17,
                sndbuf_errors: 0
            }
        );
    }

    #[test]
    fn columns_are_found_by_name() {
        let text = "Udp: RcvbufErrors Future InDatagrams\nUdp: 5 1 7\n";
        let counters = parse_udp(text).unwrap();
        assert_eq!((counters.rcvbuf_errors, counters.in_datagrams, counters.no_ports), (5, 7, 0));
    }

    #[test]
    fn malformed_text_is_refused_with_a_reason() {
        assert_eq!(parse_udp("Ip: a\nIp: 1\n").unwrap_err(), "no `Udp:` header line");
        assert_eq!(parse_udp("Udp: A B\n").unwrap_err(), "no `Udp:` value line after the header");
        assert_eq!(parse_udp("Udp: A B\nUdp: 1\n").unwrap_err(), "`Udp:` header has 2 names but 1 values");
        assert_eq!(parse_udp("Udp: A\nUdp: x\n").unwrap_err(), "`Udp:` counter A is \"x\", not a number");
    }

    #[test]
    fn deltas_saturate() {
        let a = UdpCounters { rcvbuf_errors: 10, in_datagrams: 5, ..Default::default() };
        let b = UdpCounters { rcvbuf_errors: 14, in_datagrams: 4, ..Default::default() };
        let d = b.since(&a);
        assert_eq!((d.rcvbuf_errors, d.in_datagrams), (4, 0));
    }

    #[test]
    fn this_machine_s_counters_read() {
        read_udp_counters().unwrap();
    }
}
