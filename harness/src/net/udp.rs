//! UDP facts the usual `recv_from` hides: how long a truncated datagram really was
//! (`MSG_TRUNC`), and how many datagrams the socket has dropped for lack of buffer space
//! (`SO_RXQ_OVFL`).
//!
//! With `SO_RXQ_OVFL` enabled, Linux attaches the socket's drop counter (`sk_drops`) to
//! each datagram as ancillary data when it is queued — but only when the counter is not
//! zero. [`recv_datagram`] returns it as [`Datagram::drops`].

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

/// `SO_RXQ_OVFL` from `asm-generic/socket.h` (the same on every architecture socklab runs
/// on; libc does not export it for every target).
const SO_RXQ_OVFL: libc::c_int = 40;

/// The largest UDP payload over IPv4: 65,535 (IP total length) − 20 (IP header) − 8 (UDP
/// header). A larger send fails with `EMSGSIZE`.
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;

/// One datagram as [`recv_datagram`] saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes copied into the buffer.
    pub copied: usize,
    /// The datagram's real length (`recvmsg` with `MSG_TRUNC` returns it even when the
    /// buffer was smaller).
    pub len: usize,
    /// The kernel set `MSG_TRUNC` in the returned flags: the rest of the datagram is gone.
    pub truncated: bool,
    /// The socket's drop counter stamped on this datagram (`SO_RXQ_OVFL`), when present.
    /// Absent means the counter was zero when the datagram was queued.
    pub drops: Option<u32>,
    /// Who sent it.
    pub from: Option<SocketAddr>,
}

/// Turns on `SO_RXQ_OVFL`, so received datagrams carry the socket's drop counter.
///
/// # Errors
/// When `setsockopt` fails (not a socket, or a kernel without the option).
pub fn enable_rxq_ovfl<S: AsFd>(socket: &S) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the fd is valid for the borrow; the option value is a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_RXQ_OVFL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Receives one datagram with `recvmsg(MSG_TRUNC | flags)`: the real length, whether it
/// was truncated, the sender and any `SO_RXQ_OVFL` drop counter. Pass
/// `libc::MSG_DONTWAIT` in `flags` for a non-blocking attempt.
///
/// # Errors
/// What `recvmsg` returns (`WouldBlock` when nothing is queued on a non-blocking call,
/// `ECONNREFUSED` pending from an ICMP error on a connected socket, ...).
pub fn recv_datagram<S: AsFd>(socket: &S, buf: &mut [u8], flags: libc::c_int) -> io::Result<Datagram> {
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_mut_ptr().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in msg points at live buffers of the lengths given.
    let n = unsafe { libc::recvmsg(socket.as_fd().as_raw_fd(), &mut msg, libc::MSG_TRUNC | flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = n as usize;
    let mut drops = None;
    // SAFETY: msg was filled by a successful recvmsg; the CMSG macros stay within
    // msg_controllen, which the kernel set to what it wrote.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::SOL_SOCKET
                && header.cmsg_type == SO_RXQ_OVFL
                && header.cmsg_len as usize >= libc::CMSG_LEN(4) as usize
            {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<u32>()));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // SAFETY: the kernel wrote msg_namelen bytes of a sockaddr (or none) into addr, which
    // was zeroed first.
    let from = unsafe { sockaddr_to_std(addr.assume_init_ref(), msg.msg_namelen) };
    Ok(Datagram {
        copied: len.min(buf.len()),
        len,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        drops,
        from,
    })
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in and the kernel wrote at least its size.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says sockaddr_in6 and the kernel wrote at least its size.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// The symbolic name of an errno value (`ECONNREFUSED`), for counting send errors by
/// kind; `errno N` for values socklab does not name.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENOBUFS => "ENOBUFS",
        libc::EAGAIN => "EAGAIN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNRESET => "ECONNRESET",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ENOMEM => "ENOMEM",
        libc::EINTR => "EINTR",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// [`errno_name`] of an I/O error; `other` when it carries no errno.
pub fn error_name(error: &io::Error) -> String {
    error.raw_os_error().map(errno_name).unwrap_or_else(|| "other".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::set_recv_buffer;
    use std::net::UdpSocket;

    fn pair() -> (UdpSocket, UdpSocket) {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.connect(receiver.local_addr().unwrap()).unwrap();
        (receiver, sender)
    }

    #[test]
    fn truncation_reports_the_real_length() {
        let (receiver, sender) = pair();
        sender.send(&[7u8; 100]).unwrap();
        sender.send(b"next").unwrap();
        let mut buf = [0u8; 10];
        let d = recv_datagram(&receiver, &mut buf, 0).unwrap();
        assert_eq!((d.copied, d.len, d.truncated), (10, 100, true));
        assert_eq!(d.from, Some(sender.local_addr().unwrap()));
        let d = recv_datagram(&receiver, &mut buf, 0).unwrap();
        assert_eq!((d.copied, d.len, d.truncated), (4, 4, false));
        assert_eq!(&buf[..4], b"next");
        let e = recv_datagram(&receiver, &mut buf, libc::MSG_DONTWAIT).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn overflow_counter_appears_once_something_was_dropped() {
        let (receiver, sender) = pair();
        enable_rxq_ovfl(&receiver).unwrap();
        set_recv_buffer(&receiver, 4096).unwrap();
        let mut buf = [0u8; 2048];
        sender.send(&buf[..8]).unwrap();
        assert_eq!(recv_datagram(&receiver, &mut buf, 0).unwrap().drops, None, "no drops yet");
        for _ in 0..200 {
            sender.send(&[1u8; 1024]).unwrap();
        }
        let mut last = None;
        while let Ok(d) = recv_datagram(&receiver, &mut buf, libc::MSG_DONTWAIT) {
            last = Some(d);
        }
        sender.send(b"marker").unwrap();
        let marker = recv_datagram(&receiver, &mut buf, 0).unwrap();
        assert!(marker.drops.unwrap_or(0) > 0, "{marker:?} after {last:?}");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ECONNREFUSED), "ECONNREFUSED");
        assert_eq!(errno_name(9999), "errno 9999");
        assert_eq!(error_name(&io::Error::other("x")), "other");
    }
}
