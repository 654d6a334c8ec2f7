//! Queue lengths: how many bytes wait in a socket buffer.

use std::io;
use std::os::fd::AsFd;

/// Bytes queued in a socket's receive buffer, ready for the next `recv` (`FIONREAD`, the
/// same as `SIOCINQ` for TCP).
///
/// # Errors
/// When the ioctl fails (not a socket, or closed).
pub fn bytes_queued<S: AsFd>(socket: &S) -> io::Result<usize> {
    let queued = rustix::io::ioctl_fionread(socket)?;
    Ok(usize::try_from(queued).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    #[test]
    fn counts_bytes_waiting_to_be_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(bytes_queued(&server).unwrap(), 0);
        client.write_all(b"hello").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while bytes_queued(&server).unwrap() < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(bytes_queued(&server).unwrap(), 5);
    }
}
