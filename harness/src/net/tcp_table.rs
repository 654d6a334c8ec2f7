//! The kernel's table of TCP sockets, as `ss -tan` shows it, read from
//! `/proc/thread-self/net/tcp` and `tcp6` (the calling thread's network namespace).
//!
//! Each line is one socket: local and remote address, state, and the pending timer. A
//! socket in `TIME_WAIT` is listed with timer kind 3 and the time it has left, so the
//! table shows both that the port is held and for how much longer (Linux holds it for
//! 60 s, `TCP_TIMEWAIT_LEN`, a constant: `net.ipv4.tcp_fin_timeout` sets `FIN_WAIT_2`,
//! not this).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// TCP states as `include/net/tcp_states.h` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// 1
    Established,
    /// 2
    SynSent,
    /// 3
    SynRecv,
    /// 4
    FinWait1,
    /// 5
    FinWait2,
    /// 6
    TimeWait,
    /// 7
    Close,
    /// 8
    CloseWait,
    /// 9
    LastAck,
    /// 10
    Listen,
    /// 11
    Closing,
    /// Any other number.
    Other(u8),
}

impl TcpState {
    fn from_code(code: u8) -> TcpState {
        match code {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            other => TcpState::Other(other),
        }
    }

    /// The name `ss` prints: `TIME-WAIT`, `ESTAB`, `LISTEN`.
    pub fn ss_name(self) -> String {
        match self {
            TcpState::Established => "ESTAB".into(),
            TcpState::SynSent => "SYN-SENT".into(),
            TcpState::SynRecv => "SYN-RECV".into(),
            TcpState::FinWait1 => "FIN-WAIT-1".into(),
            TcpState::FinWait2 => "FIN-WAIT-2".into(),
            TcpState::TimeWait => "TIME-WAIT".into(),
            TcpState::Close => "UNCONN".into(),
            TcpState::CloseWait => "CLOSE-WAIT".into(),
            TcpState::LastAck => "LAST-ACK".into(),
            TcpState::Listen => "LISTEN".into(),
            TcpState::Closing => "CLOSING".into(),
            TcpState::Other(code) => format!("state {code}"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocketEntry {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// State.
    pub state: TcpState,
    /// The pending timer's kind (0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT,
    /// 4 zero-window probe) and the time it has left.
    pub timer: (u8, Duration),
}

/// Every TCP socket of the calling thread's namespace, IPv4 and IPv6.
///
/// # Errors
/// When `/proc/thread-self/net/tcp` cannot be read (`tcp6` is skipped when IPv6 is off).
pub fn tcp_sockets() -> io::Result<Vec<TcpSocketEntry>> {
    let mut entries = parse_table(&std::fs::read_to_string("/proc/thread-self/net/tcp")?);
    if let Ok(text) = std::fs::read_to_string("/proc/thread-self/net/tcp6") {
        entries.extend(parse_table(&text));
    }
    Ok(entries)
}

/// The lines of a `/proc/net/tcp` or `tcp6` file that parse; the header and anything
/// unreadable are skipped.
pub fn parse_table(text: &str) -> Vec<TcpSocketEntry> {
    // SAFETY: sysconf has no memory effects.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    text.lines().skip(1).filter_map(|line| parse_line(line, ticks_per_second)).collect()
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...`
fn parse_line(line: &str, ticks_per_second: u64) -> Option<TcpSocketEntry> {
    let mut fields = line.split_whitespace().skip(1);
    let local = parse_addr(fields.next()?)?;
    let remote = parse_addr(fields.next()?)?;
    let state = TcpState::from_code(u8::from_str_radix(fields.next()?, 16).ok()?);
    let _queues = fields.next()?;
    let (kind, when) = fields.next()?.split_once(':')?;
    let kind = u8::from_str_radix(kind, 16).ok()?;
    let ticks = u64::from_str_radix(when, 16).ok()?;
    let left = Duration::from_millis(ticks.saturating_mul(1000) / ticks_per_second);
    Some(TcpSocketEntry { local, remote, state, timer: (kind, left) })
}

/// `0100007F:1F90` (IPv4, the address as the kernel's u32 in hex, so byte-swapped on
/// little-endian machines) or 32 hex digits (IPv6, four such u32s).
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [v4] => IpAddr::V4(Ipv4Addr::from(v4.to_ne_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (chunk, word) in bytes.chunks_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_wait_line_parses() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C41 0100007F:A2C8 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
";
        let entries = parse_table(text);
        assert_eq!(entries.len(), 2);
        let tw = &entries[0];
        if cfg!(target_endian = "little") {
            assert_eq!(tw.local, "127.0.0.1:40001".parse().unwrap());
            assert_eq!(tw.remote, "127.0.0.1:41672".parse().unwrap());
        }
        assert_eq!(tw.state, TcpState::TimeWait);
        assert_eq!(tw.state.ss_name(), "TIME-WAIT");
        // 0x1770 = 6000 ticks; at 100 ticks a second, 60 s.
        if unsafe { libc::sysconf(libc::_SC_CLK_TCK) } == 100 {
            assert_eq!(tw.timer, (3, Duration::from_secs(60)));
        }
        assert_eq!(entries[1].state, TcpState::Listen);
        assert_eq!(entries[1].local.port(), 22);
    }

    #[test]
    fn ipv6_addresses_parse() {
        let addr = parse_addr("00000000000000000000000001000000:0050").unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(addr, "[::1]:80".parse().unwrap());
        }
    }

    #[test]
    fn a_listener_of_this_process_is_listed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let entries = tcp_sockets().unwrap();
        assert!(
            entries.iter().any(|e| e.local.port() == port && e.state == TcpState::Listen),
            "port {port} not listed as LISTEN"
        );
    }
}
