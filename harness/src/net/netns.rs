//! A private network namespace: a dedicated thread that `unshare(CLONE_NEWNET)`s itself
//! into a fresh namespace holding only a loopback interface, which it brings up.
//!
//! Closures sent with [`PrivateNetns::run`] execute on that thread, so sockets they create
//! live in the namespace (and keep working from any thread afterwards), and per-namespace
//! files such as `/proc/thread-self/net/snmp` show only the namespace's traffic. The
//! namespace goes away when the thread ends and the last of its sockets is closed.
//!
//! Programs such as `ip` and `tc` run inside it with [`PrivateNetns::command`], which
//! enters the namespace in the child between `fork` and `exec`.
//!
//! Creating one needs `CAP_SYS_ADMIN` and `CAP_NET_ADMIN` ([`crate::privilege::NAMESPACES`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;

use thiserror::Error;

use crate::privilege::{NAMESPACES, all_held, missing_reason_all, raise_ambient};

type Job = Box<dyn FnOnce() + Send>;

crate::named_enum!(
    /// Whether a case runs in a private network namespace: the `netns` parameter
    /// ([`crate::shared_params::NETNS`]).
    pub NetnsMode, "netns", {
        /// In a private namespace when the process holds `CAP_NET_ADMIN`, else in the
        /// host's.
        Auto => "auto",
        /// Always in the host's namespace: the kernel's counters are system-wide.
        Never => "never",
    }
);

/// A thread living in a network namespace of its own.
pub struct PrivateNetns {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// `/proc/thread-self/ns/net` of the thread, opened on it: how child processes find
    /// the namespace. Closed on drop, with the thread.
    ns: Option<OwnedFd>,
    /// The thread's id (`gettid`), which `ip link ... netns TID` accepts.
    tid: i32,
}

/// Why a namespace could not be made or used.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// The process lacks `CAP_SYS_ADMIN` or `CAP_NET_ADMIN`.
    #[error("private network namespace unavailable: {0}")]
    NotPermitted(String),
    /// `unshare` or bringing `lo` up failed.
    #[error("private network namespace: {context}: {error}")]
    Setup {
        /// The step that failed.
        context: &'static str,
        /// The error.
        error: io::Error,
    },
    /// The namespace thread ended (a job panicked).
    #[error("private network namespace thread ended unexpectedly")]
    ThreadGone,
}

impl PrivateNetns {
    /// Starts the thread, moves it into a new network namespace and brings `lo` up.
    ///
    /// # Errors
    /// [`NetnsError::NotPermitted`] without `CAP_SYS_ADMIN` and `CAP_NET_ADMIN` (with the
    /// reason reports show), [`NetnsError::Setup`] when a step fails.
    pub fn new() -> Result<Self, NetnsError> {
        if !all_held(NAMESPACES) {
            return Err(NetnsError::NotPermitted(missing_reason_all(NAMESPACES)));
        }
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("socklab-netns".into())
            .spawn(move || {
                let setup = enter_new_netns().and_then(|()| {
                    let ns = open_own_netns().map_err(|error| NetnsError::Setup {
                        context: "open /proc/thread-self/ns/net",
                        error,
                    })?;
                    // SAFETY: gettid has no preconditions.
                    Ok((ns, unsafe { libc::gettid() }))
                });
                let ok = setup.is_ok();
                let _ = ready_tx.send(setup);
                if ok {
                    // Ends when the PrivateNetns is dropped (the sender closes).
                    while let Ok(job) = inbox.recv() {
                        job();
                    }
                }
            })
            .map_err(|error| NetnsError::Setup { context: "spawn the namespace thread", error })?;
        match ready_rx.recv() {
            Ok(Ok((ns, tid))) => {
                Ok(PrivateNetns { jobs: Some(jobs), thread: Some(thread), ns: Some(ns), tid })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(NetnsError::ThreadGone),
        }
    }

    /// Runs `job` on the namespace thread and returns its result.
    ///
    /// # Errors
    /// [`NetnsError::ThreadGone`] when the thread has ended (an earlier job panicked) or
    /// `job` panicked.
    pub fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> Result<R, NetnsError> {
        let (tx, rx) = mpsc::channel();
        let jobs = self.jobs.as_ref().ok_or(NetnsError::ThreadGone)?;
        jobs.send(Box::new(move || {
            let _ = tx.send(job());
        }))
        .map_err(|_| NetnsError::ThreadGone)?;
        rx.recv().map_err(|_| NetnsError::ThreadGone)
    }

    /// A command that runs `program` inside the namespace: the child enters it
    /// (`setns`) after `fork`, before `exec`, so `ip` and `tc` see only the namespace's
    /// interfaces, and raises socklab's capabilities into its ambient set
    /// ([`raise_ambient`]), so `program` holds them when socklab has them from file
    /// capabilities rather than from root. Nothing is started until the caller spawns it.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        if let Some(ns) = &self.ns {
            let fd = ns.as_raw_fd();
            // SAFETY: the closure makes only raw system calls (setns, capget, capset,
            // prctl: async-signal-safe) in the forked child; `fd` stays open in the parent
            // until the PrivateNetns is dropped, and `&self` is borrowed while the Command
            // exists.
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    raise_ambient()
                });
            }
        }
        command
    }

    /// The namespace thread's id: `ip link set DEV netns TID` moves an interface into
    /// this namespace.
    pub fn thread_id(&self) -> i32 {
        self.tid
    }

    /// A handle on the namespace (its `nsfs` file), valid while `self` lives.
    pub fn ns_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ns.as_ref().map(AsFd::as_fd)
    }

    /// The namespace's inode number, as `ls -l /proc/PID/ns/net` shows it
    /// (`net:[4026532]`): what tests compare to see that a namespace is gone.
    pub fn inode(&self) -> Option<u64> {
        let fd = self.ns.as_ref()?;
        // SAFETY: fstat fills the struct it is given; all-zero is a valid start.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open for the duration of the call.
        (unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } == 0).then_some(stat.st_ino)
    }
}

impl Drop for PrivateNetns {
    fn drop(&mut self) {
        drop(self.ns.take());
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `unshare(CLONE_NEWNET)` for the calling thread, then `lo` up.
fn enter_new_netns() -> Result<(), NetnsError> {
    // SAFETY: unshare only changes the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::Setup {
            context: "unshare(CLONE_NEWNET)",
            error: io::Error::last_os_error(),
        });
    }
    set_loopback_up().map_err(|error| NetnsError::Setup { context: "bring lo up", error })
}

/// The calling thread's network namespace as a file descriptor (close-on-exec).
fn open_own_netns() -> io::Result<OwnedFd> {
    std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
}

/// `SIOCGIFFLAGS`/`SIOCSIFFLAGS` on `lo` through a socket of the current namespace.
fn set_loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the ioctls read and write the ifreq they are given.
    unsafe {
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::read_udp_counters;
    use crate::privilege::test_may_use;
    use std::net::UdpSocket;

    #[test]
    fn loopback_works_and_counters_are_private() {
        if !test_may_use(crate::privilege::Capability::SysAdmin, "loopback_works_and_counters_are_private") {
            return;
        }
        let netns = PrivateNetns::new().unwrap();
        let (counters, received) = netns
            .run(|| {
                let before = read_udp_counters().unwrap();
                let a = UdpSocket::bind("127.0.0.1:0").unwrap();
                let b = UdpSocket::bind("127.0.0.1:0").unwrap();
                b.send_to(b"hi", a.local_addr().unwrap()).unwrap();
                let mut buf = [0u8; 8];
                let n = a.recv(&mut buf).unwrap();
                (read_udp_counters().unwrap().since(&before), n)
            })
            .unwrap();
        assert_eq!(received, 2);
        assert_eq!((counters.in_datagrams, counters.out_datagrams), (1, 1));
        // A fresh namespace starts its counters at zero.
        let total = netns.run(|| read_udp_counters().unwrap()).unwrap();
        assert_eq!(total.in_datagrams, 1);
    }
}
