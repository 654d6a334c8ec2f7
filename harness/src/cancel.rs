//! The flag that ends a case: the runner raises it when the case's time is up, and
//! blocking work (threads, `spawn_blocking`) looks at it between system calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

/// A flag the runner raises when a case's time is up; cheap to check in a loop.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// The longest a blocking call of a case should wait before looking at the flag
    /// again, so the case stops within about this long of its timeout.
    pub const CHECK_EVERY: Duration = Duration::from_millis(50);

    /// A flag not raised.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Raises the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the case's time is up.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once the flag is raised: `cancel.check()?` in a loop (a case's
    /// `CaseError` converts from it).
    ///
    /// # Errors
    /// [`Cancelled`] after [`Cancel::cancel`].
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() { Err(Cancelled) } else { Ok(()) }
    }
}

/// The case's time was up: what [`Cancel::check`] returns once the flag is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("cancelled: the case's time was up")]
pub struct Cancelled;
