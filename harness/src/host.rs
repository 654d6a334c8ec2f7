//! Facts about the machine a run happens on, for the report's metadata.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

/// Kernel release (`uname -r`), or `unknown`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Logical CPUs this process may use.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// Host name (`/proc/sys/kernel/hostname`), or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// How busy other processes kept the machine while a run went on: started before the
/// run, read after it. The machine's busy CPU time (`/proc/stat`: every CPU's time outside
/// idle and I/O wait) minus this process's own, over the run's wall time, is how many
/// CPUs' worth of work the rest of the machine did meanwhile — what a figure measured on
/// a shared machine competed with.
pub struct OtherLoad {
    started: std::time::Instant,
    machine_busy: Option<std::time::Duration>,
    own: crate::metrics::CpuTime,
}

impl OtherLoad {
    /// Starts watching.
    pub fn start() -> Self {
        OtherLoad {
            started: std::time::Instant::now(),
            machine_busy: machine_busy_time(),
            own: crate::metrics::CpuTime::now(),
        }
    }

    /// CPUs' worth of other processes' work since [`OtherLoad::start`] (0.0 to the CPU
    /// count), or `None` where `/proc/stat` cannot be read.
    pub fn cpus(&self) -> Option<f64> {
        let busy = machine_busy_time()?.checked_sub(self.machine_busy?)?;
        let own = crate::metrics::CpuTime::now().since(self.own).total();
        let wall = self.started.elapsed().as_secs_f64();
        // /proc/stat counts every CPU of the machine, not just those this process may use.
        (wall > 0.0)
            .then(|| (busy.saturating_sub(own).as_secs_f64() / wall).clamp(0.0, machine_cpus() as f64))
    }
}

/// CPUs of the whole machine (the `cpuN` lines of `/proc/stat`), at least 1.
fn machine_cpus() -> usize {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    cpus.max(1)
}

/// Busy time of all CPUs together since boot, from the first line of `/proc/stat`.
fn machine_busy_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    busy_ticks(stat.lines().next()?).map(|ticks| {
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        std::time::Duration::from_secs_f64(ticks as f64 / hz)
    })
}

/// Ticks outside idle and I/O wait in a `/proc/stat` `cpu` line (user nice system idle
/// iowait irq softirq steal; guest time is already inside user).
fn busy_ticks(line: &str) -> Option<u64> {
    let mut fields = line.split_whitespace();
    (fields.next()? == "cpu").then_some(())?;
    let ticks: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    (ticks.len() == 8)
        .then(|| ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum())
}

/// An address of one of this host's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// Interface name (`eth0`).
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length of its network.
    pub prefix: u8,
}

impl InterfaceAddr {
    /// Whether `other` lies in this address's network.
    pub fn same_network(&self, other: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((mine, width), (theirs, other_width)) = (bits(self.ip), bits(other));
        if width != other_width || u32::from(self.prefix) > width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= 128 || (mine >> shift) == (theirs >> shift)
    }
}

/// Every address of every interface that is up, in the order the kernel lists them
/// (`getifaddrs`), loopback included; empty when the call fails.
pub fn interface_addresses() -> Vec<InterfaceAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut entry = head;
    // SAFETY: every pointer walked is from the list getifaddrs built, read before it is
    // freed; sockaddr casts follow sa_family.
    unsafe {
        while let Some(ifa) = entry.as_ref() {
            entry = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as u32 == 0 {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let (ip, prefix) = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let mask = if ifa.ifa_netmask.is_null() {
                        u32::MAX
                    } else {
                        u32::from_be((*(ifa.ifa_netmask as *const libc::sockaddr_in)).sin_addr.s_addr)
                    };
                    (IpAddr::V4(Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr))), mask.count_ones() as u8)
                }
                libc::AF_INET6 => {
                    let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let mask = if ifa.ifa_netmask.is_null() {
                        u128::MAX
                    } else {
                        u128::from_be_bytes(
                            (*(ifa.ifa_netmask as *const libc::sockaddr_in6)).sin6_addr.s6_addr,
                        )
                    };
                    (IpAddr::V6(Ipv6Addr::from(addr.sin6_addr.s6_addr)), mask.count_ones() as u8)
                }
                _ => continue,
            };
            out.push(InterfaceAddr { interface: name, ip, prefix });
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Which network namespace this process is in, comparable across hosts: the kernel's
/// boot id and the namespace's inode (`5f1c…/net:[4026531840]`). Two processes with the
/// same id share a namespace, so they can reach each other over `127.0.0.1`.
pub fn netns_id() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/net").ok()?;
    Some(format!("{}/{}", boot.trim(), ns.display()))
}

/// The MTU of interface `name` in this thread's network namespace (`SIOCGIFMTU`).
pub fn interface_mtu(name: &str) -> Option<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return None;
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the name and writes the MTU into the ifreq it is given.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) } != 0 {
        return None;
    }
    // SAFETY: after SIOCGIFMTU the union holds the MTU.
    u32::try_from(unsafe { ifr.ifr_ifru.ifru_mtu }).ok()
}

/// The local address this host would send from to reach `peer` (a UDP socket
/// "connected" to it: no packet is sent).
pub fn local_ip_toward(peer: IpAddr) -> Option<IpAddr> {
    let any: std::net::SocketAddr =
        if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect((peer, 9)).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// The interface holding address `ip`, if any.
pub fn interface_of(ip: IpAddr) -> Option<String> {
    interface_addresses().into_iter().find(|a| a.ip == ip).map(|a| a.interface)
}

/// `time` as RFC 3339 in UTC, to the second.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_io_wait() {
        assert_eq!(busy_ticks("cpu  10 1 5 1000 7 2 3 4 0 0"), Some(10 + 1 + 5 + 2 + 3 + 4));
        assert_eq!(busy_ticks("cpu0 10 1 5 1000 7 2 3 4"), None, "the total line only");
        assert_eq!(busy_ticks("cpu  10 1 5"), None, "too few fields");
    }

    #[test]
    fn other_load_is_between_none_and_every_cpu() {
        let load = OtherLoad::start();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let cpus = load.cpus().expect("/proc/stat is readable");
        assert!((0.0..=machine_cpus() as f64).contains(&cpus), "{cpus}");
        assert!(machine_cpus() >= cpu_count());
    }

    #[test]
    fn facts_are_filled_in() {
        assert!(!kernel_release().is_empty());
        assert!(cpu_count() >= 1);
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert!(!hostname().is_empty());
        assert_eq!(interface_of(IpAddr::V4(Ipv4Addr::LOCALHOST)).as_deref(), Some("lo"));
        assert_eq!(interface_mtu("lo"), Some(65536));
        assert_eq!(local_ip_toward(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn networks_are_matched_by_prefix() {
        let a = InterfaceAddr { interface: "v".into(), ip: "198.18.0.1".parse().unwrap(), prefix: 30 };
        assert!(a.same_network("198.18.0.2".parse().unwrap()));
        assert!(!a.same_network("198.18.0.5".parse().unwrap()));
        assert!(!a.same_network("::1".parse().unwrap()));
        let any = InterfaceAddr { prefix: 0, ..a };
        assert!(any.same_network("8.8.8.8".parse().unwrap()));
    }
}
