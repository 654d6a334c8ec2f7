//! A bulk transfer of a known byte pattern, and the receiver that verifies it byte by
//! byte while counting its reads: the two ends of `recv-buffer`, which `socklab agent`
//! can run on another host.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::PeerError;
use crate::net::recv_buffer;

/// How long one blocking read waits before the receiver looks at its stop flag again.
const POLL: Duration = Duration::from_millis(50);

/// Byte `i` of the transfer: a pattern with a long period, so a lost, repeated or
/// reordered chunk shows.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8 ^ ((i >> 12) % 253) as u8
}

/// Fills `buf` with the pattern from stream offset `offset`.
pub fn fill(buf: &mut [u8], offset: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(offset + k as u64);
    }
}

/// What the receiver saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkReceived {
    /// Bytes received.
    pub received: u64,
    /// Reads that returned data.
    pub reads: u64,
    /// Most bytes one read returned.
    pub max_read: usize,
    /// Stream offset of the first byte that was not the pattern's.
    pub first_mismatch: Option<u64>,
    /// `SO_RCVBUF` after the transfer.
    pub rcvbuf_effective: usize,
    /// From `started` to EOF.
    pub elapsed: Duration,
}

/// Reads `stream` with `read(read_size)` until EOF, checking every byte against the
/// pattern. Gives up after `silence` without a byte, or when `stop()` turns true.
///
/// # Errors
/// [`PeerError::Stream`] when a read fails or the sender goes silent;
/// [`PeerError::TooManyBytes`] past `expected` bytes; [`PeerError::Stopped`] when
/// stopped.
pub fn receive_pattern(
    mut stream: TcpStream,
    expected: u64,
    read_size: usize,
    started: Instant,
    silence: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<BulkReceived, PeerError> {
    let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    stream.set_read_timeout(Some(POLL)).map_err(PeerError::stream("set a read timeout"))?;
    let mut buf = vec![0u8; read_size.max(1)];
    let mut got = BulkReceived::default();
    let mut last_byte = Instant::now();
    // Every read returns at least one byte or EOF, or times out after POLL; the loop is
    // bounded by `expected` bytes, the silence limit and the stop flag.
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop() {
                    return Err(PeerError::Stopped);
                }
                if last_byte.elapsed() >= silence {
                    return Err(PeerError::Stream {
                        context: format!("read from {peer} at byte {}", got.received),
                        error: std::io::Error::new(
                            ErrorKind::TimedOut,
                            format!("no byte for {} s", silence.as_secs()),
                        ),
                    });
                }
                continue;
            }
            Err(error) => {
                return Err(PeerError::Stream { context: format!("read at byte {}", got.received), error });
            }
        };
        if n == 0 {
            break;
        }
        last_byte = Instant::now();
        if got.first_mismatch.is_none()
            && let Some(k) =
                buf[..n].iter().enumerate().position(|(k, b)| *b != pattern_byte(got.received + k as u64))
        {
            got.first_mismatch = Some(got.received + k as u64);
        }
        got.received += n as u64;
        got.reads += 1;
        got.max_read = got.max_read.max(n);
        if got.received > expected {
            return Err(PeerError::TooManyBytes { peer, received: got.received, expected });
        }
    }
    got.elapsed = started.elapsed();
    got.rcvbuf_effective = recv_buffer(&stream).map_err(PeerError::stream("read SO_RCVBUF"))?;
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_does_not_repeat_within_a_mebibyte_chunk_boundary() {
        let a: Vec<u8> = (0..4096).map(pattern_byte).collect();
        let b: Vec<u8> = (251 * 4096..251 * 4096 + 4096).map(pattern_byte).collect();
        assert_ne!(a, b);
        let mut buf = [0u8; 8];
        fill(&mut buf, 10);
        assert_eq!(buf[0], pattern_byte(10));
    }
}
