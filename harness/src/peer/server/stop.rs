//! How stopping a server reaches connections blocked in a read or a write: [`Stop`] is a
//! flag, and the sockets of the connections being served on threads, which raising it
//! shuts down.
//!
//! A thread blocked in `recv` wakes only for data, its socket timeout, or its socket
//! being shut down. Polling the flag on a short socket timeout cost a wake-up per
//! connection every 100 ms (52% of a core at 4,000 idle connections); shutting the sockets
//! down costs nothing until the server stops, so a connection's socket timeout can be as
//! long as its idle or frame deadline.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The stop flag of a server, and the sockets it shuts down when raised.
#[derive(Default)]
pub(super) struct Stop {
    raised: AtomicBool,
    open: Mutex<Open>,
}

/// The sockets of the connections served on threads, by registration number.
#[derive(Default)]
struct Open {
    next: u64,
    sockets: HashMap<u64, Arc<TcpStream>>,
}

impl Stop {
    /// Whether the server was stopped.
    pub(super) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// Stops the server: raises the flag and shuts down every registered socket, so a
    /// thread blocked on one returns at once.
    pub(super) fn raise(&self) {
        // Under the lock, so that a connection registering now either sees the flag or
        // is shut down here.
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.raised.store(true, Ordering::Relaxed);
        for socket in open.sockets.values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Registers `socket` to be shut down when the server stops, until the returned
    /// guard is dropped; `None` when the server has stopped already.
    pub(super) fn register(self: &Arc<Self>, socket: Arc<TcpStream>) -> Option<Registered> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.is_raised() {
            return None;
        }
        let id = open.next;
        open.next += 1;
        open.sockets.insert(id, socket);
        Some(Registered { stop: self.clone(), id })
    }
}

/// A socket's registration with [`Stop`]; dropping it removes the socket.
pub(super) struct Registered {
    stop: Arc<Stop>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.stop.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.sockets.remove(&self.id);
    }
}
