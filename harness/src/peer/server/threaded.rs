//! The threaded flavour: blocking std sockets, a thread per connection, as a classic
//! `accept` loop spawns them. A silent client holds its thread until the idle timeout.

use super::blocking::Accepted;

/// Serves `accepted` on a thread of its own; the acceptor goes back to accepting.
pub(super) fn dispatch(accepted: Accepted) {
    let peer = accepted.peer();
    let spawned = std::thread::Builder::new().name("socklab-conn".into()).spawn(move || accepted.serve());
    if spawned.is_err() {
        tracing::warn!("could not start a thread for {peer}; connection dropped");
    }
}
