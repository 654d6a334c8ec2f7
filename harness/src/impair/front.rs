//! A relay a case puts in front of its server: what every scenario with an `impair`
//! parameter does, written once. The parameter's text is parsed, nothing starts for
//! `none`, and otherwise the relay of the case's transport starts in front of the
//! server, seeded by the case (so `--seed` replays its choices) and timed on the case's
//! clock (so its record lines up with the case's own). The case connects to
//! [`Relay::addr`] and, at the end, puts [`Relay::observation`] in its report.

use std::net::SocketAddr;

use super::shell::OnShell;
use super::{ImpairError, Impairment, ProxyObservation, RelayConfig};

/// A relay of one transport, as a case uses it.
pub trait Relay: Sized {
    /// Starts it in front of `upstream`; see [`TcpRelay::start_with`](super::TcpRelay::start_with),
    /// [`UdpRelay::start_with`](super::UdpRelay::start_with).
    ///
    /// # Errors
    /// The spec has an item this transport cannot apply, or a socket or thread could not
    /// be set up.
    fn start_with(
        upstream: SocketAddr,
        spec: &Impairment,
        seed: u64,
        config: RelayConfig,
    ) -> Result<Self, ImpairError>;
    /// Where clients reach it.
    fn addr(&self) -> SocketAddr;
    /// What it did so far.
    fn observation(&self) -> ProxyObservation;
}

/// One implementation for both relays: each is a shell (`shell::Shell`) with a
/// `start_with` of its own.
impl<R: OnShell> Relay for R {
    fn start_with(
        upstream: SocketAddr,
        spec: &Impairment,
        seed: u64,
        config: RelayConfig,
    ) -> Result<Self, ImpairError> {
        R::START(upstream, spec, seed, config)
    }
    fn addr(&self) -> SocketAddr {
        self.shell().addr()
    }
    fn observation(&self) -> ProxyObservation {
        self.shell().observation()
    }
}

/// The relay the `impair` text asks for, started in front of `upstream` with the case's
/// `seed` and `config` (its clock, its record limit); `None` for `none`.
///
/// # Errors
/// [`ImpairError::Spec`] when the text is not a spec (scenarios check it in `validate`
/// first), else why the relay could not start.
pub fn in_front<R: Relay>(
    upstream: SocketAddr,
    impair: &str,
    seed: u64,
    config: RelayConfig,
) -> Result<Option<R>, ImpairError> {
    start_in_front(upstream, &Impairment::parse(impair)?, seed, config)
}

/// [`in_front`] for a spec already parsed (a link adds its delay to the case's spec).
///
/// # Errors
/// Why the relay could not start.
pub fn start_in_front<R: Relay>(
    upstream: SocketAddr,
    spec: &Impairment,
    seed: u64,
    config: RelayConfig,
) -> Result<Option<R>, ImpairError> {
    if spec.is_none() {
        return Ok(None);
    }
    R::start_with(upstream, spec, seed, config).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::{TcpRelay, UdpRelay};

    #[test]
    fn none_starts_nothing_and_a_spec_starts_a_relay_of_the_transport() {
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
        let none: Option<TcpRelay> = in_front(upstream, "none", 1, RelayConfig::default()).unwrap();
        assert!(none.is_none());
        let udp: UdpRelay = in_front(upstream, "loss=0.5", 1, RelayConfig::default()).unwrap().unwrap();
        assert!(udp.addr().ip().is_loopback() && udp.addr().port() != 0);
        assert_eq!(udp.observation().seed, 1);
        let bad = in_front::<TcpRelay>(upstream, "split=0", 1, RelayConfig::default()).unwrap_err();
        assert!(matches!(bad, ImpairError::Spec(_)), "{bad}");
        let tcp_only = in_front::<UdpRelay>(upstream, "split=3", 1, RelayConfig::default());
        assert!(matches!(tcp_only, Err(ImpairError::Spec(_))), "a TCP item is refused for UDP");
    }
}
