//! The sequential flavour: blocking std sockets, one client at a time, as most first
//! socket programs are written. The idle timeout bounds how long a silent client keeps
//! the others waiting.

use super::blocking::Accepted;

/// Serves `accepted` on the accepting thread, to its end: the next client waits in the
/// listen backlog meanwhile.
pub(super) fn dispatch(accepted: Accepted) {
    accepted.serve();
}
