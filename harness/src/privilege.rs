//! Privileged features — packet capture (CAP_NET_RAW) and network namespaces
//! (CAP_NET_ADMIN) — and the rule for code and tests that need them.
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
    /// Network namespaces, interfaces, qdiscs.
    NetAdmin,
}

impl Capability {
    /// Bit number in the kernel's capability sets (`linux/capability.h`).
    fn bit(self) -> u32 {
        match self {
            Capability::NetAdmin => 12,
            Capability::NetRaw => 13,
        }
    }

    /// Kernel name: `CAP_NET_RAW`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetRaw => "CAP_NET_RAW",
            Capability::NetAdmin => "CAP_NET_ADMIN",
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

/// The effective capability set, from `/proc/self/status` (`CapEff:`).
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
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
    }
}
