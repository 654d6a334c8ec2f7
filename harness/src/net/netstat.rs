//! The kernel's listen-queue counters from `/proc/net/netstat` (the `TcpExt:` lines):
//! `ListenOverflows`, connections (SYNs or handshake-completing ACKs) that arrived while
//! a listener's accept queue was full, and `ListenDrops`, every SYN a listener dropped
//! (overflows included). `nstat -az TcpExtListenOverflows` and `netstat -s` print the
//! same counters.
//!
//! Like the UDP counters ([`super::snmp`]) they belong to a network namespace: read in a
//! namespace a case made for itself they count only that case. [`read_listen_counters`]
//! reads `/proc/thread-self/net/netstat`, the calling thread's namespace.

use std::collections::BTreeMap;
use std::path::Path;

use super::SnmpError;

/// The file [`read_listen_counters`] reads: the calling thread's network namespace.
pub const THREAD_NETSTAT_PATH: &str = "/proc/thread-self/net/netstat";

/// The `TcpExt:` counters about listen queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenCounters {
    /// `ListenOverflows`: arrivals while the accept queue was full.
    pub overflows: u64,
    /// `ListenDrops`: SYNs a listener dropped, for any reason (overflows included).
    pub drops: u64,
}

impl ListenCounters {
    /// Counter by counter, `self - earlier` (saturating).
    pub fn since(&self, earlier: &ListenCounters) -> ListenCounters {
        ListenCounters {
            overflows: self.overflows.saturating_sub(earlier.overflows),
            drops: self.drops.saturating_sub(earlier.drops),
        }
    }
}

/// Reads the listen counters of the calling thread's network namespace.
///
/// # Errors
/// [`SnmpError`] naming the file.
pub fn read_listen_counters() -> Result<ListenCounters, SnmpError> {
    let path = Path::new(THREAD_NETSTAT_PATH);
    let text =
        std::fs::read_to_string(path).map_err(|error| SnmpError::Read { path: path.to_path_buf(), error })?;
    parse_listen(&text).map_err(|problem| SnmpError::Format { path: path.to_path_buf(), problem })
}

/// Parses the `TcpExt:` header and value lines of `/proc/net/netstat` text; counters are
/// found by name.
///
/// # Errors
/// A one-line description when there is no `TcpExt:` pair, the two lines differ in
/// length, or a counter is missing or not a number.
pub fn parse_listen(text: &str) -> Result<ListenCounters, String> {
    let mut lines = text.lines().filter_map(|line| line.strip_prefix("TcpExt:"));
    let header = lines.next().ok_or("no `TcpExt:` header line")?;
    let values = lines.next().ok_or("no `TcpExt:` value line after the header")?;
    let names: Vec<&str> = header.split_whitespace().collect();
    let numbers: Vec<&str> = values.split_whitespace().collect();
    if names.len() != numbers.len() {
        return Err(format!("`TcpExt:` header has {} names but {} values", names.len(), numbers.len()));
    }
    let by_name: BTreeMap<&str, &str> = names.into_iter().zip(numbers).collect();
    let get = |name: &str| -> Result<u64, String> {
        let text = by_name.get(name).ok_or_else(|| format!("no `TcpExt:` counter {name}"))?;
        text.parse().map_err(|_| format!("`TcpExt:` counter {name} is {text:?}, not a number"))
    };
    Ok(ListenCounters { overflows: get("ListenOverflows")?, drops: get("ListenDrops")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
TcpExt: SyncookiesSent TW ListenOverflows ListenDrops TCPHPHits
TcpExt: 0 457 12 14 9962056
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
";

    #[test]
    fn parses_the_listen_counters_by_name() {
        assert_eq!(parse_listen(SAMPLE).unwrap(), ListenCounters { overflows: 12, drops: 14 });
    }

    #[test]
    fn malformed_text_is_refused_with_a_reason() {
        assert_eq!(parse_listen("IpExt: A\nIpExt: 1\n").unwrap_err(), "no `TcpExt:` header line");
        assert_eq!(
            parse_listen("TcpExt: A B\nTcpExt: 1\n").unwrap_err(),
            "`TcpExt:` header has 2 names but 1 values"
        );
        assert_eq!(
            parse_listen("TcpExt: ListenDrops\nTcpExt: 1\n").unwrap_err(),
            "no `TcpExt:` counter ListenOverflows"
        );
    }

    #[test]
    fn this_machine_s_counters_read() {
        let a = read_listen_counters().unwrap();
        let b = read_listen_counters().unwrap();
        assert!(b.drops >= a.drops && b.since(&a).overflows <= b.overflows);
    }
}
