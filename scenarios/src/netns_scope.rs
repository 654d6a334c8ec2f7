//! Where a scenario that reads the kernel's counters runs: in a private network namespace
//! when the process may make one, so that the counters count the case's traffic alone,
//! else in the host's namespace, where they are system-wide and every check built on
//! them must say so. `udp-early-send`, `udp-rcvbuf-overflow` and `sequential-server`
//! run this way.

use socklab_harness::net::{NetnsMode, PrivateNetns};
use socklab_harness::scenario::CaseError;

use crate::experiment::run_blocking;

/// Where a case ran, and so how far the kernel's counters are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A private network namespace: the counters are this case's alone.
    Private,
    /// The host's namespace: the counters include every process's traffic; why.
    SystemWide(String),
}

/// What a case that never ran reports: it claims nothing about the counters.
impl Default for Scope {
    fn default() -> Self {
        Scope::SystemWide("nothing ran".into())
    }
}

/// Runs `experiment` in a private network namespace when `mode` allows it and one can
/// be made, else on the calling thread; either way it is told where it runs.
///
/// # Errors
/// The experiment's own; [`CaseError::Netns`] when the namespace's thread ends (the
/// experiment panicked there).
pub fn run_scoped<T: Send + 'static>(
    mode: NetnsMode,
    experiment: impl FnOnce(Scope) -> Result<T, CaseError> + Send + 'static,
) -> Result<T, CaseError> {
    let reason = match mode {
        NetnsMode::Never => "netns = never".to_string(),
        NetnsMode::Auto => match PrivateNetns::new() {
            Ok(netns) => return netns.run(move || experiment(Scope::Private))?,
            Err(e) => e.to_string(),
        },
    };
    experiment(Scope::SystemWide(reason))
}

/// [`run_scoped`] from a scenario's async `run`: on tokio's blocking pool
/// ([`run_blocking`], which names the thread `task` in an error).
///
/// # Errors
/// As [`run_scoped`] and [`run_blocking`].
pub(crate) async fn run_scoped_blocking<T: Send + 'static>(
    mode: NetnsMode,
    task: &'static str,
    experiment: impl FnOnce(Scope) -> Result<T, CaseError> + Send + 'static,
) -> Result<T, CaseError> {
    run_blocking(task, move || run_scoped(mode, experiment)).await
}
