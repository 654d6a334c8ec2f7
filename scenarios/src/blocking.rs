//! Small helpers for scenarios that run their peers on plain threads with blocking
//! sockets (the way the tutorials' programs are written): reads and connects that give
//! up at a deadline and stop when the runner cancels the case, and sleeps that do too.
//!
//! Every wait is cut into slices of at most [`Cancel::CHECK_EVERY`], so a cancelled or
//! stopped case is noticed within about that long.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use socklab_harness::scenario::{Cancel, CaseError};

/// Why a bounded wait ended without its result.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// The deadline passed.
    Deadline,
    /// The runner cancelled the case or the scenario asked its threads to stop.
    Stopped,
    /// The socket call failed.
    Io(io::Error),
}

impl WaitError {
    /// As a case error, with what was being done.
    pub(crate) fn into_case_error(self, context: &str, waited: Duration) -> CaseError {
        match self {
            WaitError::Deadline => {
                CaseError::Protocol(format!("{context}: nothing after {} ms", waited.as_millis()))
            }
            WaitError::Stopped => CaseError::Cancelled,
            WaitError::Io(error) => CaseError::Io { context: context.to_string(), error },
        }
    }
}

/// Whether a blocking call ended on its timeout rather than an error.
pub(crate) fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// What stops a wait: the runner's cancel flag and, optionally, the scenario's own.
#[derive(Clone, Copy)]
pub(crate) struct Stop<'a> {
    pub cancel: &'a Cancel,
    pub flag: Option<&'a AtomicBool>,
}

impl Stop<'_> {
    pub(crate) fn now(&self) -> bool {
        self.cancel.is_cancelled() || self.flag.is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// One `read()` on a stream whose read timeout is at most [`Cancel::CHECK_EVERY`],
/// retried on timeouts until data or EOF comes, the deadline passes or `stop` is raised.
pub(crate) fn read_some(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    stop: Stop<'_>,
) -> Result<usize, WaitError> {
    // Bounded by the deadline: each pass waits at most the socket's read timeout.
    loop {
        if stop.now() {
            return Err(WaitError::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(WaitError::Deadline);
        }
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if timed_out(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WaitError::Io(e)),
        }
    }
}

/// `write_all` on a stream whose write timeout is at most [`Cancel::CHECK_EVERY`]:
/// short writes and timeouts are retried until every byte is written, the deadline
/// passes or `stop` is raised.
pub(crate) fn write_all(
    stream: &mut TcpStream,
    mut buf: &[u8],
    deadline: Instant,
    stop: Stop<'_>,
) -> Result<(), WaitError> {
    // Bounded by the deadline: each pass writes a byte or waits at most the timeout.
    while !buf.is_empty() {
        if stop.now() {
            return Err(WaitError::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(WaitError::Deadline);
        }
        match stream.write(buf) {
            Ok(0) => return Err(WaitError::Io(io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => buf = &buf[n..],
            Err(e) if timed_out(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WaitError::Io(e)),
        }
    }
    Ok(())
}

/// Sleeps for `pause` in slices, returning early (false) when `stop` is raised.
pub(crate) fn sleep(pause: Duration, stop: Stop<'_>) -> bool {
    let until = Instant::now() + pause;
    loop {
        if stop.now() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Cancel::CHECK_EVERY));
    }
}

/// How a connect ended, and how long it took.
#[derive(Debug)]
pub(crate) struct Connected {
    /// The stream, blocking, when the handshake completed.
    pub stream: Result<TcpStream, WaitError>,
    /// From the `connect()` call to its end.
    pub took: Duration,
}

/// `connect()` on `socket` (made by the caller, in whatever namespace it needs) without
/// blocking, then waits for the handshake in slices until the deadline: the kernel
/// retransmits an unanswered SYN meanwhile (after 1 s, then 3 s, ...), as a blocking
/// connect would.
pub(crate) fn connect(socket: Socket, addr: SocketAddr, deadline: Instant, stop: Stop<'_>) -> Connected {
    let started = Instant::now();
    let stream = connect_inner(socket, addr, deadline, stop);
    Connected { stream, took: started.elapsed() }
}

fn connect_inner(
    socket: Socket,
    addr: SocketAddr,
    deadline: Instant,
    stop: Stop<'_>,
) -> Result<TcpStream, WaitError> {
    socket.set_nonblocking(true).map_err(WaitError::Io)?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(WaitError::Io(e)),
    }
    // Bounded by the deadline: each pass polls at most CHECK_EVERY.
    loop {
        if stop.now() {
            return Err(WaitError::Stopped);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WaitError::Deadline);
        }
        let mut fds = [libc::pollfd { fd: raw(&socket), events: libc::POLLOUT, revents: 0 }];
        let slice = left.min(Cancel::CHECK_EVERY).as_millis().max(1) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, slice) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(WaitError::Io(e));
        }
        if ready == 0 {
            continue;
        }
        if let Some(e) = socket.take_error().map_err(WaitError::Io)? {
            return Err(WaitError::Io(e));
        }
        socket.set_nonblocking(false).map_err(WaitError::Io)?;
        return Ok(TcpStream::from(socket));
    }
}

fn raw(socket: &impl std::os::fd::AsRawFd) -> i32 {
    socket.as_raw_fd()
}

/// Waits up to `timeout` for `socket` (a listener, say) to become readable: `poll()`, so
/// an accept loop wakes at once for a client and still looks at its stop flag often.
pub(crate) fn wait_readable(socket: &impl std::os::fd::AsRawFd, timeout: Duration) -> bool {
    let mut fds = [libc::pollfd { fd: raw(socket), events: libc::POLLIN, revents: 0 }];
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout.as_millis().max(1) as i32) > 0 }
}

/// A fresh IPv4 TCP socket (in the calling thread's network namespace).
pub(crate) fn tcp_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::STREAM, None)
}
