//! What the TCP and UDP relays share, written once: starting (bind the listening socket,
//! start the relay's thread), the record of every connection (a UDP flow is one too),
//! refusing connections past [`RelayConfig::max_connections`], stopping (a flag the
//! relay's thread looks at every [`TICK`](super::TICK) and passes on to its connections,
//! and the join when the relay is dropped),
//! the [`ProxyObservation`] put together from the records, and the [`RelayCounters`] a
//! watcher reads cheaply (refusals, idle closes, datagrams a full queue dropped).
//!
//! What differs — how bytes or datagrams are moved and impaired — stays in
//! [`tcp`](super::tcp) and [`udp`](super::udp), which run on the [`Shared`] state.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use socket2::SockRef;

use super::spec::{Impairment, Way};
use super::{ImpairError, RelayConfig};
use crate::report::{ProxyConnection, ProxyDirection, ProxyObservation, Transport};

/// A connection's record, written by the threads that serve it and read by
/// [`Shell::observation`].
pub(super) type Record = Arc<Mutex<ProxyConnection>>;

/// Locks `mutex`, even if a thread panicked holding it: a record half written is still
/// worth reporting.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The direction `way` of a record.
pub(super) fn direction(record: &mut ProxyConnection, way: Way) -> &mut ProxyDirection {
    if way == Way::Up { &mut record.up } else { &mut record.down }
}

/// The socket a relay receives its clients on.
pub(super) trait Listen: AsFd + Sized + Send + 'static {
    /// The transport it relays.
    const TRANSPORT: Transport;
    /// Binds `addr`.
    fn bind(addr: SocketAddr) -> io::Result<Self>;
}

impl Listen for TcpListener {
    const TRANSPORT: Transport = Transport::Tcp;
    fn bind(addr: SocketAddr) -> io::Result<Self> {
        TcpListener::bind(addr)
    }
}

impl Listen for UdpSocket {
    const TRANSPORT: Transport = Transport::Udp;
    fn bind(addr: SocketAddr) -> io::Result<Self> {
        UdpSocket::bind(addr)
    }
}

/// Binds `addr` and readies the socket for a relay's thread; returns it with the address
/// bound.
fn listen<L: Listen>(addr: SocketAddr) -> Result<(L, SocketAddr), ImpairError> {
    let socket = L::bind(addr).map_err(|error| ImpairError::Bind { addr, error })?;
    let sock = SockRef::from(&socket);
    let bound = sock
        .local_addr()
        .and_then(|a| a.as_socket().ok_or_else(|| io::ErrorKind::Unsupported.into()))
        .map_err(|error| ImpairError::Io { context: "read the bound address", error })?;
    let set_up = match L::TRANSPORT {
        Transport::Tcp => "set up the listener",
        Transport::Udp => "set up the socket",
    };
    sock.set_nonblocking(true).map_err(|error| ImpairError::Io { context: set_up, error })?;
    if L::TRANSPORT == Transport::Udp {
        // A bigger receive buffer so a burst waits in the kernel rather than being lost
        // before the relay's own choices; the kernel caps it at rmem_max.
        let _ = crate::net::set_recv_buffer(&socket, 4 << 20);
    }
    Ok((socket, bound))
}

/// What a relay's threads share: the spec, seed and settings, the stop flag, and the
/// records of the connections.
pub(super) struct Shared {
    /// What the relay applies.
    pub(super) spec: Impairment,
    /// What its choices derive from.
    pub(super) seed: u64,
    /// Where it forwards to.
    pub(super) upstream: SocketAddr,
    /// Its settings.
    pub(super) config: RelayConfig,
    transport: Transport,
    stop: AtomicBool,
    /// The records listed in the observation (the first
    /// [`ProxyObservation::MAX_CONNECTIONS`]).
    records: Mutex<Vec<Record>>,
    /// Connections given an index, listed or not.
    accepted: AtomicU64,
    /// Connections being served now.
    active: AtomicUsize,
    /// Connections refused.
    refused: AtomicU64,
    /// The client last refused.
    last_refused: Mutex<Option<SocketAddr>>,
    /// Connections whose record is marked closed.
    finished: AtomicU64,
    /// Connections (flows) the relay closed for idleness.
    closed_idle: AtomicU64,
    /// Datagrams dropped because the queue was full.
    dropped_queue_full: AtomicU64,
}

/// What a relay counted so far, read without copying any record: cheap enough to poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Connections (UDP flows) given an index, listed in the observation or not.
    pub connections: u64,
    /// Connections served now.
    pub open: usize,
    /// Connections whose record is closed (both directions ended; a UDP flow expired).
    pub finished: u64,
    /// TCP: connections refused (closed at once) because
    /// [`RelayConfig::max_connections`] were open; UDP: datagrams from new client
    /// addresses dropped because as many flows were open.
    pub refused: u64,
    /// The client last refused.
    pub last_refused: Option<SocketAddr>,
    /// Connections closed after [`RelayConfig::idle_timeout`] without a byte, UDP flows
    /// after [`RelayConfig::flow_timeout`] without a datagram.
    pub closed_idle: u64,
    /// UDP: datagrams dropped because [`RelayConfig::max_queued_bytes`] were waiting.
    pub dropped_queue_full: u64,
}

impl Shared {
    /// Whether the relay was told to stop.
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether another connection may be served now ([`RelayConfig::max_connections`]).
    pub(super) fn has_room(&self) -> bool {
        self.active.load(Ordering::Relaxed) < self.config.max_connections
    }

    /// Counts a connection from `client` refused.
    pub(super) fn refuse(&self, client: SocketAddr) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_refused) = Some(client);
    }

    /// Counts a connection (flow) closed for idleness.
    pub(super) fn closed_for_idleness(&self) {
        self.closed_idle.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` datagrams dropped because the queue was full.
    pub(super) fn dropped_for_a_full_queue(&self, n: u64) {
        self.dropped_queue_full.fetch_add(n, Ordering::Relaxed);
    }

    /// The index of the next connection.
    pub(super) fn next_index(&self) -> u64 {
        self.accepted.fetch_add(1, Ordering::Relaxed)
    }

    /// A connection started being served.
    pub(super) fn opened(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection is no longer served: its record is marked closed (with `error`, if
    /// any and none is there yet) and its slot is free.
    pub(super) fn finished(&self, record: &Record, error: Option<String>) {
        {
            let mut r = lock(record);
            if let Some(error) = error {
                r.error.get_or_insert(error);
            }
            r.closed = true;
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// A new record for connection `index` from `client`.
    pub(super) fn new_record(index: u64, client: SocketAddr) -> Record {
        Arc::new(Mutex::new(ProxyConnection {
            index,
            client: client.to_string(),
            ..ProxyConnection::default()
        }))
    }

    /// Notes in `record` which of its directions the spec impairs.
    pub(super) fn mark_impaired(&self, record: &Record) {
        let mut r = lock(record);
        r.up.impaired = self.spec.applies_to(Way::Up);
        r.down.impaired = self.spec.applies_to(Way::Down);
    }

    /// Lists `record` in the observation, unless [`ProxyObservation::MAX_CONNECTIONS`]
    /// are listed already (then it is counted in `connections_left_out`).
    pub(super) fn list(&self, record: &Record) {
        let mut records = lock(&self.records);
        if records.len() < ProxyObservation::MAX_CONNECTIONS {
            records.push(record.clone());
        }
    }
}

/// How a relay of one transport starts: its `start_with`.
pub type Start<R> = fn(SocketAddr, &Impairment, u64, RelayConfig) -> Result<R, ImpairError>;

/// A relay built on a [`Shell`], for which [`Relay`](super::Relay) is implemented once.
/// (Public only in name: this module is private, so no other crate implements it.)
pub trait OnShell: Sized {
    /// Its `start_with`.
    const START: Start<Self>;
    /// Its shell.
    fn shell(&self) -> &Shell;
}

/// A running relay of either transport: its address, its shared state, and its thread,
/// stopped and joined when the shell is dropped.
pub struct Shell {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Shell {
    /// Binds `config.listen` and runs `relay` with the bound socket on a thread named
    /// `name`, in front of `upstream`, impairing as `spec` says with choices drawn from
    /// `seed`; `relay` returns once [`Shared::stopped`].
    ///
    /// # Errors
    /// [`ImpairError::Bind`] when the listen address cannot be bound,
    /// [`ImpairError::Io`] when the socket or the thread cannot be set up.
    pub(super) fn start<L: Listen>(
        upstream: SocketAddr,
        spec: &Impairment,
        seed: u64,
        config: RelayConfig,
        name: &str,
        relay: impl FnOnce(L, Arc<Shared>) + Send + 'static,
    ) -> Result<Shell, ImpairError> {
        let (socket, addr) = listen::<L>(config.listen)?;
        let shared = Arc::new(Shared {
            spec: spec.clone(),
            seed,
            upstream,
            config,
            transport: L::TRANSPORT,
            stop: AtomicBool::new(false),
            records: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_refused: Mutex::new(None),
            finished: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(name.into())
                .spawn(move || relay(socket, shared))
                .map_err(|error| ImpairError::Io { context: "start the relay thread", error })?
        };
        Ok(Shell { addr, shared, thread: Some(thread) })
    }

    /// Where clients connect (or send).
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state the relay's threads share.
    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// What the relay did so far, connection by connection.
    pub(super) fn observation(&self) -> ProxyObservation {
        let records = lock(&self.shared.records);
        ProxyObservation {
            spec: self.shared.spec.to_string(),
            seed: self.shared.seed,
            transport: self.shared.transport,
            connections: records.iter().map(|r| lock(r).clone()).collect(),
            connections_left_out: self.shared.accepted.load(Ordering::Relaxed) - records.len() as u64,
        }
    }

    /// The record of connection `index` so far, if it was listed.
    pub(super) fn connection(&self, index: usize) -> Option<ProxyConnection> {
        lock(&self.shared.records).get(index).map(|r| lock(r).clone())
    }

    /// Connections refused so far.
    pub(super) fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// What the relay counted so far.
    pub(super) fn counters(&self) -> RelayCounters {
        let shared = &self.shared;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RelayCounters {
            connections: load(&shared.accepted),
            open: shared.active.load(Ordering::Relaxed),
            finished: load(&shared.finished),
            refused: load(&shared.refused),
            last_refused: *lock(&shared.last_refused),
            closed_idle: load(&shared.closed_idle),
            dropped_queue_full: load(&shared.dropped_queue_full),
        }
    }

    /// The records of the listed connections that are closed and not in `skip`: what a
    /// watcher has not printed yet, without copying the open ones.
    pub(super) fn closed_connections(&self, skip: &BTreeSet<u64>) -> Vec<ProxyConnection> {
        let records = lock(&self.shared.records);
        records
            .iter()
            .filter_map(|r| {
                let r = lock(r);
                (r.closed && !skip.contains(&r.index)).then(|| r.clone())
            })
            .collect()
    }

    /// Tells every thread of the relay to stop; each looks at the flag every
    /// [`TICK`](super::TICK).
    pub(super) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.stop();
        // The relay's thread looks at the flag every TICK (the TCP one then wakes its
        // connections' threads, which end on their own).
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
