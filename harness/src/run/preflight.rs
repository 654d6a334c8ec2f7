//! What is checked and started once, before any case runs: a target command that cannot
//! start, or a case that cannot run through the agent, is a configuration error of the
//! run (one line, `socklab` exit 2), never a failure repeated in every case.

use std::sync::Arc;

use super::error::RunError;
use super::plan::PeerCommand;
#[cfg(doc)]
use crate::external::TargetError;
use crate::external::{Target, TargetProcess, check_listening};
use crate::params::ParamError;
use crate::peer::Transport;
use crate::peer::agent::RemoteAgent;
use crate::peer::agent::remote::CONTROL_TIMEOUT;
use crate::runner::{TARGET_READY_TIMEOUT, TARGET_STOP_GRACE};
use crate::scenario::Registry;
use crate::suite::CaseSpec;

/// Connects once to each target address of the run (`--target ADDR`): a server that is
/// not there is one line before any case, not a failure in every check. A case over UDP
/// (its scenario's [`target_transport`](crate::scenario::Scenario::target_transport)) is
/// not checked: nothing answers a UDP probe unasked. (A `--target-cmd` is checked by its
/// start: it must listen.)
///
/// # Errors
/// [`RunError::Target`]: [`TargetError::NothingListens`] or
/// [`TargetError::Unreachable`].
pub fn check_target_addrs(cases: &[CaseSpec], registry: &Registry) -> Result<(), RunError> {
    let mut checked = Vec::new();
    for case in cases {
        let tcp =
            registry.get(&case.scenario).is_ok_and(|s| s.target_transport(&case.params) == Transport::Tcp);
        if let Target::Addr(addr) = case.target
            && tcp
            && !checked.contains(&addr)
        {
            check_listening(addr)?;
            checked.push(addr);
        }
    }
    Ok(())
}

/// Starts each target command of the run once, and stops it: a command that exits at
/// once or never listens fails here, before any case.
///
/// # Errors
/// [`RunError::Target`] with the command's stderr tail.
pub fn try_target_commands(cases: &[CaseSpec]) -> Result<(), RunError> {
    let mut tried = Vec::new();
    for case in cases {
        if let Target::Command(command) = &case.target
            && !tried.contains(&command)
        {
            let process = TargetProcess::start(command, TARGET_READY_TIMEOUT)?;
            process.stop(TARGET_STOP_GRACE);
            tried.push(command);
        }
    }
    Ok(())
}

/// Checks that every case can run its server side through the agent, then starts it.
/// A command that cannot start, or an agent of another version, fails here.
///
/// # Errors
/// [`RunError::NoRemotePeer`], [`RunError::PeerRefused`] or [`RunError::Agent`].
pub fn start_peer(
    peer: &PeerCommand,
    cases: &[CaseSpec],
    registry: &Registry,
) -> Result<Arc<RemoteAgent>, RunError> {
    check_peer_cases(cases, registry)?;
    Ok(Arc::new(RemoteAgent::start(&peer.command, peer.addr, CONTROL_TIMEOUT)?))
}

/// Every case of a run with a peer must be able to run its server side through the
/// agent ([`Scenario::REMOTE_PEER`](crate::scenario::Scenario::REMOTE_PEER)), with
/// parameters its scenario takes with a peer
/// ([`Scenario::validate_peer`](crate::scenario::Scenario::validate_peer)).
fn check_peer_cases(cases: &[CaseSpec], registry: &Registry) -> Result<(), RunError> {
    for case in cases {
        let scenario = registry.get(&case.scenario)?;
        if !scenario.remote_peer() {
            let able: Vec<&str> = registry.iter().filter(|s| s.remote_peer()).map(|s| s.name()).collect();
            return Err(RunError::NoRemotePeer { scenario: case.scenario.clone(), able: able.join(", ") });
        }
        match scenario.validate_peer(&case.params) {
            Ok(()) => {}
            Err(ParamError::Invalid { reason, .. }) => {
                return Err(RunError::PeerRefused { case: case.id.clone(), reason });
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}
