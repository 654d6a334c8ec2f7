//! TCP socket options the latency scenarios switch: `TCP_CORK` and `TCP_QUICKACK`
//! (`TCP_NODELAY` is on every TCP stream type already).

use std::io;
use std::os::fd::AsFd;

/// Sets `TCP_CORK`: while on, the kernel sends only full segments; turning it off sends
/// what is queued at once. The explicit alternative to Nagle for "header then body".
///
/// # Errors
/// When the socket is not TCP or is closed.
pub fn set_cork<S: AsFd>(socket: &S, cork: bool) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_tcp_cork(socket, cork)?)
}

/// Sets `TCP_QUICKACK`: acknowledge received data at once instead of delaying the ACK.
/// Not sticky: the kernel may fall back to delayed ACKs after the next exchange, so set
/// it before each read whose ACK matters.
///
/// # Errors
/// When the socket is not TCP or is closed.
pub fn set_quickack<S: AsFd>(socket: &S, quickack: bool) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_tcp_quickack(socket, quickack)?)
}

/// `TCP_MAXSEG` of a connected socket: the payload bytes a full segment carries now
/// (the MSS less TCP options such as timestamps: 1448 at MTU 1500 with timestamps).
///
/// # Errors
/// When the socket is not TCP or is closed.
pub fn tcp_maxseg<S: AsFd>(socket: &S) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.max(0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn options_apply_to_a_tcp_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_cork(&stream, true).unwrap();
        assert!(rustix::net::sockopt::tcp_cork(&stream).unwrap());
        set_cork(&stream, false).unwrap();
        set_quickack(&stream, true).unwrap();
    }
}
