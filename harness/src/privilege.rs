//! Privileged features — packet capture (CAP_NET_RAW) and network namespaces
//! (CAP_SYS_ADMIN to make one, CAP_NET_ADMIN to set up its interfaces) — and the rule
//! for code and tests that need them.
//!
//! Without root, the capabilities can come from the binary's file capabilities
//! (`setcap cap_sys_admin,cap_net_admin,cap_net_raw+ep`). The programs socklab runs inside
//! a namespace (`ip`, `tc`) get them through the ambient set ([`raise_ambient`]), which a
//! file capability alone does not pass on to a program it executes.
//!
//! Scenarios degrade: without the capability a case runs on and its report says what was
//! unavailable and why. Tests skip with a printed reason, except when
//! `SOCKLAB_REQUIRE_PRIVILEGED=1` (CI sets it and runs as root), where a missing
//! privilege fails the test instead, so CI can never pass by skipping.

use std::fmt;

/// The variable that makes missing privileges fail tests instead of skipping them.
pub const REQUIRE_PRIVILEGED_VAR: &str = "SOCKLAB_REQUIRE_PRIVILEGED";

/// A Linux capability socklab may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Packet sockets, for capture.
    NetRaw,
    /// Interfaces, addresses, qdiscs, socket buffers past the limits.
    NetAdmin,
    /// Making a network namespace (`unshare(CLONE_NEWNET)`, `setns`).
    SysAdmin,
}

/// What a private network namespace needs: making it, and setting up its interfaces.
pub const NAMESPACES: &[Capability] = &[Capability::SysAdmin, Capability::NetAdmin];

/// The capabilities socklab uses, all of them: what `setcap` should give the binary.
const ALL: &[Capability] = &[Capability::SysAdmin, Capability::NetAdmin, Capability::NetRaw];

impl Capability {
    /// Bit number in the kernel's capability sets (`linux/capability.h`).
    fn bit(self) -> u32 {
        match self {
            Capability::NetAdmin => 12,
            Capability::NetRaw => 13,
            Capability::SysAdmin => 21,
        }
    }

    /// Kernel name: `CAP_NET_RAW`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetRaw => "CAP_NET_RAW",
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::SysAdmin => "CAP_SYS_ADMIN",
        }
    }

    /// Whether this process holds the capability in its effective set.
    pub fn held(self) -> bool {
        effective_capabilities().is_some_and(|caps| caps & (1 << self.bit()) != 0)
    }

    /// The one-line reason reports show when the capability is missing:
    /// `needs CAP_NET_RAW (run as root or setcap cap_net_raw)`.
    pub fn missing_reason(self) -> String {
        format!(
            "needs {} (run as root or setcap {}+ep on the socklab binary)",
            self.name(),
            self.name().to_lowercase()
        )
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this process holds every one of `capabilities`.
pub fn all_held(capabilities: &[Capability]) -> bool {
    capabilities.iter().all(|c| c.held())
}

/// The one-line reason reports show when any of `capabilities` is missing: `needs
/// CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root or setcap
/// cap_sys_admin,cap_net_admin,cap_net_raw+ep on the socklab binary)`. The `setcap` names
/// every capability socklab uses, so one command makes every feature work.
pub fn missing_reason_all(capabilities: &[Capability]) -> String {
    let names: Vec<&str> = capabilities.iter().map(|c| c.name()).collect();
    let setcap: Vec<String> = ALL.iter().map(|c| c.name().to_lowercase()).collect();
    format!(
        "needs {} (run as root or setcap {}+ep on the socklab binary)",
        names.join(" and "),
        setcap.join(",")
    )
}

/// The effective capability set, from `/proc/self/status` (`CapEff:`).
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// The kernel's capability header (`struct __user_cap_header_struct`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One half of the kernel's capability sets (`struct __user_cap_data_struct`); version 3
/// takes two, for capabilities 0-31 and 32-63.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Puts every capability socklab uses that this process holds in its permitted set into
/// its inheritable and ambient sets, so a program it executes next (`ip`, `tc`) holds
/// them too. Meant for a child between `fork` and `exec` (`Command::pre_exec`): it makes
/// only raw system calls (`capget`, `capset`, `prctl`), which are async-signal-safe, and
/// changes nothing in the parent. A capability it cannot raise is left out: the program
/// then fails with the kernel's own "Operation not permitted", as it would have.
///
/// # Errors
/// When `capget` or `capset` fails.
pub fn raise_ambient() -> std::io::Result<()> {
    let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let mut data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capget writes two CapData, the size version 3 defines, into `data`.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wanted = ALL.iter().fold(0u32, |bits, c| bits | (1 << c.bit()));
    data[0].inheritable |= data[0].permitted & wanted;
    // SAFETY: capset reads the header and the two CapData it is given.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for capability in ALL.iter().filter(|c| data[0].inheritable & (1 << c.bit()) != 0) {
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                capability.bit() as libc::c_ulong,
                0,
                0,
            );
        }
    }
    Ok(())
}

/// True when the environment demands privileged tests run.
pub fn privileged_required() -> bool {
    std::env::var(REQUIRE_PRIVILEGED_VAR).is_ok_and(|v| v == "1")
}

/// For tests: true when the test may go on. Without the capability it prints why the
/// test is skipped and returns false — or panics when [`privileged_required`].
///
/// ```no_run
/// use socklab_harness::privilege::{Capability, test_may_use};
/// if !test_may_use(Capability::NetRaw, "capture_counts_segments") {
///     return;
/// }
/// ```
pub fn test_may_use(capability: Capability, test: &str) -> bool {
    if capability.held() {
        return true;
    }
    let reason = capability.missing_reason();
    assert!(!privileged_required(), "{test}: {REQUIRE_PRIVILEGED_VAR}=1 but this process {reason}");
    eprintln!("skipping {test}: {reason}");
    false
}

/// For tests that make network namespaces: [`test_may_use`] for every capability of
/// [`NAMESPACES`].
pub fn test_may_make_namespaces(test: &str) -> bool {
    NAMESPACES.iter().all(|capability| test_may_use(*capability, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_from_proc() {
        assert!(effective_capabilities().is_some());
        if rustix::process::geteuid().is_root() {
            assert!(Capability::NetRaw.held() && Capability::NetAdmin.held());
        }
        assert_eq!(
            Capability::NetRaw.missing_reason(),
            "needs CAP_NET_RAW (run as root or setcap cap_net_raw+ep on the socklab binary)"
        );
        assert_eq!(
            missing_reason_all(NAMESPACES),
            "needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root or setcap \
             cap_sys_admin,cap_net_admin,cap_net_raw+ep on the socklab binary)"
        );
    }
}
