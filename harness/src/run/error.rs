//! Why a run could not start: one typed error for everything a [`RunPlan`](super::RunPlan)
//! can meet before its first case (a run that starts ends in a report, whatever its
//! cases do).
//!
//! Every message is one line a person acts on, the same whether the library or the
//! `socklab` command shows it. Wrapped errors are `transparent`, so a chain printer such
//! as anyhow's `{:#}` shows each cause once.

use std::io;

use thiserror::Error;

use crate::external::TargetError;
use crate::params::ParamError;
use crate::peer::agent::AgentError;
use crate::scenario::UnknownScenario;
use crate::suite::{ExpandError, SuiteError, UnknownCase};

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum RunError {
    /// The suite file cannot be read or parsed.
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// A `--set` argument, or a combination of parameters a scenario refused.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The suite does not expand into cases.
    #[error(transparent)]
    Expand(#[from] ExpandError),
    /// A scenario name the registry does not have.
    #[error(transparent)]
    UnknownScenario(#[from] UnknownScenario),
    /// A `--case` id the run does not have.
    #[error(transparent)]
    UnknownCase(#[from] UnknownCase),
    /// A suite file narrowed to scenarios it does not run.
    #[error("{path} has no runs of {asked}; its scenarios: {has}")]
    NoRunsOf {
        /// The suite file.
        path: String,
        /// The scenarios asked for, comma-separated.
        asked: String,
        /// The scenarios the file runs, comma-separated.
        has: String,
    },
    /// A `--target-cmd` that cannot start or never listens.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A case whose scenario cannot run its server side through an agent (`--peer-cmd`).
    #[error(
        "{scenario} cannot run its server side through an agent (--peer-cmd); scenarios that can: {able}"
    )]
    NoRemotePeer {
        /// The scenario.
        scenario: String,
        /// The scenarios that can, comma-separated.
        able: String,
    },
    /// A case whose parameters its scenario refuses with a peer
    /// ([`Scenario::validate_peer`](crate::scenario::Scenario::validate_peer)).
    #[error("{case}: {reason}")]
    PeerRefused {
        /// The case id.
        case: String,
        /// The scenario's reason, naming the parameter.
        reason: String,
    },
    /// The agent (`--peer-cmd`) cannot start, or is another socklab version.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// No tokio runtime could be built for the cases (out of threads or memory).
    #[error("start the case runtime: {error}")]
    Runtime {
        /// Why.
        error: io::Error,
    },
}
