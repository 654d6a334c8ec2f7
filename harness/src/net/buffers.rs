//! Socket buffer sizes: what was asked for, what the kernel applied, and the limits it
//! applied them against (`net.core.rmem_max`, `net.core.wmem_max`).
//!
//! Linux stores twice the value given to `SO_RCVBUF`/`SO_SNDBUF` (the extra half pays for
//! kernel bookkeeping, see `socket(7)`), after capping it at `rmem_max`/`wmem_max`, so
//! `getsockopt` returns a different number than `setsockopt` was given. These helpers
//! record both, so a report can show the effective value next to the requested one.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use serde::Serialize;
use socket2::SockRef;

/// Where Linux exposes the largest `SO_RCVBUF` an unprivileged socket may ask for.
pub const RMEM_MAX_PATH: &str = "/proc/sys/net/core/rmem_max";
/// Where Linux exposes the largest `SO_SNDBUF` an unprivileged socket may ask for.
pub const WMEM_MAX_PATH: &str = "/proc/sys/net/core/wmem_max";

/// A buffer size request and the kernel's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BufferSize {
    /// Bytes given to `setsockopt`.
    pub requested: usize,
    /// Bytes `getsockopt` returned afterwards.
    pub effective: usize,
}

impl BufferSize {
    /// What Linux's documented rule predicts for `requested` under the cap `max`:
    /// `2 × min(requested, max)`. The kernel also applies a small floor (a few KiB,
    /// `SOCK_MIN_RCVBUF`) that this rule leaves out.
    pub fn predicted(requested: usize, max: u64) -> u64 {
        2 * (requested as u64).min(max)
    }
}

/// Sets `SO_RCVBUF` and reads back what the kernel applied.
///
/// # Errors
/// When either socket option call fails.
pub fn set_recv_buffer<S: AsFd>(socket: &S, bytes: usize) -> io::Result<BufferSize> {
    let sock = SockRef::from(socket);
    sock.set_recv_buffer_size(bytes)?;
    Ok(BufferSize { requested: bytes, effective: sock.recv_buffer_size()? })
}

/// Sets `SO_SNDBUF` and reads back what the kernel applied.
///
/// # Errors
/// When either socket option call fails.
pub fn set_send_buffer<S: AsFd>(socket: &S, bytes: usize) -> io::Result<BufferSize> {
    let sock = SockRef::from(socket);
    sock.set_send_buffer_size(bytes)?;
    Ok(BufferSize { requested: bytes, effective: sock.send_buffer_size()? })
}

/// The current `SO_RCVBUF` of a socket (for TCP, autotuning may have grown it).
///
/// # Errors
/// When `getsockopt` fails.
pub fn recv_buffer<S: AsFd>(socket: &S) -> io::Result<usize> {
    SockRef::from(socket).recv_buffer_size()
}

/// The current `SO_SNDBUF` of a socket.
///
/// # Errors
/// When `getsockopt` fails.
pub fn send_buffer<S: AsFd>(socket: &S) -> io::Result<usize> {
    SockRef::from(socket).send_buffer_size()
}

/// `net.core.rmem_max`, the cap on `SO_RCVBUF` requests, in bytes.
///
/// # Errors
/// When the file cannot be read or does not hold a number.
pub fn rmem_max() -> io::Result<u64> {
    read_sysctl_u64(Path::new(RMEM_MAX_PATH))
}

/// `net.core.wmem_max`, the cap on `SO_SNDBUF` requests, in bytes.
///
/// # Errors
/// When the file cannot be read or does not hold a number.
pub fn wmem_max() -> io::Result<u64> {
    read_sysctl_u64(Path::new(WMEM_MAX_PATH))
}

/// Reads a sysctl file holding one unsigned number.
///
/// # Errors
/// When the file cannot be read, or [`io::ErrorKind::InvalidData`] naming the path when it
/// does not hold a number.
pub fn read_sysctl_u64(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    parse_u64(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: expected a number, found {:?}", path.display(), text.trim()),
        )
    })
}

fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn sysctl_text_parses_with_or_without_newline() {
        assert_eq!(parse_u64("212992\n"), Some(212_992));
        assert_eq!(parse_u64(" 4194304 "), Some(4_194_304));
        assert_eq!(parse_u64("abc"), None);
        assert_eq!(parse_u64(""), None);
    }

    #[test]
    fn the_kernel_doubles_a_request_below_the_cap() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let max = rmem_max().unwrap();
        let size = set_recv_buffer(&socket, 32 * 1024).unwrap();
        assert_eq!(size.requested, 32 * 1024);
        assert_eq!(size.effective as u64, BufferSize::predicted(32 * 1024, max));
        assert!(recv_buffer(&socket).unwrap() == size.effective);
        assert!(wmem_max().unwrap() > 0);
    }

    #[test]
    fn a_missing_sysctl_is_an_error_naming_nothing_made_up() {
        assert!(read_sysctl_u64(Path::new("/proc/sys/net/core/no_such_knob")).is_err());
    }
}
