//! The UDP relay: each client address that sends is a flow with its own socket to the
//! upstream server; each direction of a flow has a seeded [`UdpSchedule`] deciding, per
//! datagram, whether it is lost, sent twice, held back behind later ones, cut short, and
//! how late it leaves.
//!
//! The decision for a datagram depends only on the seed, the flow, the direction, the
//! datagram's index in that direction and the spec: each datagram draws the same numbers
//! whatever happened to the ones before, so the same seed loses the same datagrams.
//! A held-back (reordered) datagram leaves after the next `K` datagrams of its direction,
//! or after [`REORDER_FLUSH`] when fewer come. Delay jitter may reorder datagrams, as a
//! real path may.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::event::{PollFd, PollFlags, Timespec};

use super::spec::{Delay, Impairment, Reorder, Truncate, Way};
use super::{ImpairError, MAX_INDEXES, RelayConfig, TICK, connection_seed, micros_since};
use crate::report::{ProxyConnection, ProxyDirection, ProxyObservation, ProxyWrite, Transport};
use crate::seed::Rng;

/// The longest a reordered datagram waits for the datagrams that should overtake it.
pub const REORDER_FLUSH: Duration = Duration::from_millis(50);
/// The largest datagram relayed (the IPv4 limit).
const MAX_DATAGRAM: usize = 65_535;

/// What the schedule decided for one datagram.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpVerdict {
    /// Its index in the direction (0 = the first datagram).
    pub index: u64,
    /// Lost: never sent.
    pub dropped: bool,
    /// Sent twice.
    pub duplicated: bool,
    /// Held back behind later datagrams.
    pub reordered: bool,
    /// Cut short.
    pub truncated: bool,
    /// The sends now due or scheduled: (when, bytes). A held-back datagram is not here
    /// but in the verdict of the datagram it follows (or [`UdpSchedule::pop_expired`]).
    pub sends: Vec<(Duration, Bytes)>,
}

/// One direction's seeded datagram schedule; pure, on a virtual clock.
#[derive(Debug)]
pub struct UdpSchedule {
    loss: Option<f64>,
    duplicate: Option<f64>,
    reorder: Option<Reorder>,
    truncate: Option<Truncate>,
    delay: Option<Delay>,
    rng: Rng,
    next_index: u64,
    /// Datagrams held back: (datagrams still to overtake, held since, due delay, bytes).
    held: Vec<(u32, Duration, Duration, Bytes)>,
}

impl UdpSchedule {
    /// A schedule for `spec` drawing from `seed` (one per flow and direction).
    pub fn new(spec: &Impairment, seed: u64) -> Self {
        UdpSchedule {
            loss: spec.loss,
            duplicate: spec.duplicate,
            reorder: spec.reorder,
            truncate: spec.truncate,
            delay: spec.delay,
            rng: Rng::new(seed),
            next_index: 0,
            held: Vec::new(),
        }
    }

    /// Decides the fate of a datagram that arrived at `now`.
    pub fn on_datagram(&mut self, now: Duration, data: &[u8]) -> UdpVerdict {
        let index = self.next_index;
        self.next_index += 1;
        // Every configured choice is drawn for every datagram, so datagram i's fate does
        // not depend on what happened to the ones before it.
        let dropped = self.loss.is_some_and(|p| self.rng.chance(p));
        let duplicated = self.duplicate.is_some_and(|p| self.rng.chance(p));
        let held_back = self.reorder.is_some_and(|r| self.rng.chance(r.p));
        let cut = self.truncate.is_some_and(|t| self.rng.chance(t.p));
        let delay = match self.delay {
            Some(Delay { min, max }) if min == max => min,
            Some(Delay { min, max }) => {
                min + Duration::from_nanos(self.rng.between(0, (max - min).as_nanos() as u64))
            }
            None => Duration::ZERO,
        };
        let mut verdict = UdpVerdict { index, dropped, ..UdpVerdict::default() };
        if dropped {
            return verdict;
        }
        let mut bytes = Bytes::copy_from_slice(data);
        if let Some(t) = self.truncate
            && cut
            && bytes.len() > t.len
        {
            bytes.truncate(t.len);
            verdict.truncated = true;
        }
        verdict.duplicated = duplicated;
        if let (true, Some(reorder)) = (held_back, self.reorder) {
            verdict.reordered = true;
            self.held.push((reorder.depth, now, delay, bytes.clone()));
            if duplicated {
                self.held.push((reorder.depth, now, delay, bytes));
            }
            return verdict;
        }
        let due = now + delay;
        verdict.sends.push((due, bytes.clone()));
        if duplicated {
            verdict.sends.push((due, bytes));
        }
        // This datagram overtook the held ones; those it was the last for follow it.
        for slot in &mut self.held {
            slot.0 = slot.0.saturating_sub(1);
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|slot| slot.0 == 0);
        self.held = waiting;
        verdict.sends.extend(ready.into_iter().map(|(_, _, delay, bytes)| (now + delay, bytes)));
        verdict
    }

    /// Held-back datagrams that waited [`REORDER_FLUSH`] by `now`, as sends.
    pub fn pop_expired(&mut self, now: Duration) -> Vec<(Duration, Bytes)> {
        let (expired, waiting): (Vec<_>, Vec<_>) =
            self.held.drain(..).partition(|slot| now >= slot.1 + REORDER_FLUSH);
        self.held = waiting;
        expired.into_iter().map(|(_, since, delay, bytes)| (since + REORDER_FLUSH + delay, bytes)).collect()
    }

    /// When the oldest held-back datagram expires.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.held.iter().map(|slot| slot.1 + REORDER_FLUSH).min()
    }
}

/// A running UDP relay; see the [module docs](self). Stops when dropped.
pub struct UdpRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

struct Shared {
    spec: Impairment,
    seed: u64,
    upstream: SocketAddr,
    config: RelayConfig,
    stop: AtomicBool,
    flows: Mutex<Vec<Arc<Mutex<ProxyConnection>>>>,
    accepted: AtomicU64,
    refused: AtomicU64,
}

struct Flow {
    index: u64,
    client: SocketAddr,
    upstream: UdpSocket,
    up: Option<UdpSchedule>,
    down: Option<UdpSchedule>,
    record: Arc<Mutex<ProxyConnection>>,
}

/// A send waiting for its time.
struct Pending {
    due: Instant,
    order: u64,
    flow: usize,
    way: Way,
    arrived: Instant,
    bytes: Bytes,
}

impl UdpRelay {
    /// Starts a relay on `127.0.0.1:0` in front of `upstream`.
    ///
    /// # Errors
    /// [`ImpairError::Spec`] for a TCP-only item; [`ImpairError::Bind`] when the listen
    /// address cannot be bound.
    pub fn start(upstream: SocketAddr, spec: &Impairment, seed: u64) -> Result<UdpRelay, ImpairError> {
        UdpRelay::start_with(upstream, spec, seed, RelayConfig::default())
    }

    /// As [`UdpRelay::start`], with settings.
    ///
    /// # Errors
    /// As [`UdpRelay::start`].
    pub fn start_with(
        upstream: SocketAddr,
        spec: &Impairment,
        seed: u64,
        config: RelayConfig,
    ) -> Result<UdpRelay, ImpairError> {
        spec.check_udp()?;
        let socket = UdpSocket::bind(config.listen)
            .map_err(|error| ImpairError::Bind { addr: config.listen, error })?;
        let addr = socket
            .local_addr()
            .map_err(|error| ImpairError::Io { context: "read the bound address", error })?;
        socket
            .set_nonblocking(true)
            .map_err(|error| ImpairError::Io { context: "set up the socket", error })?;
        // A bigger receive buffer so a burst waits in the kernel rather than being lost
        // before the relay's own choices; the kernel caps it at rmem_max.
        let _ = crate::net::set_recv_buffer(&socket, 4 << 20);
        let shared = Arc::new(Shared {
            spec: spec.clone(),
            seed,
            upstream,
            config,
            stop: AtomicBool::new(false),
            flows: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let worker = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("impair-udp".into())
                .spawn(move || relay_loop(&socket, &shared))
                .map_err(|error| ImpairError::Io { context: "start the relay thread", error })?
        };
        Ok(UdpRelay { addr, shared, worker: Some(worker) })
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The seed the relay's choices derive from.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// What the relay did so far, flow by flow.
    pub fn observation(&self) -> ProxyObservation {
        let flows = lock(&self.shared.flows);
        ProxyObservation {
            spec: self.shared.spec.to_string(),
            seed: self.shared.seed,
            transport: Transport::Udp,
            connections: flows.iter().map(|f| lock(f).clone()).collect(),
            connections_left_out: self.shared.accepted.load(Ordering::Relaxed) - flows.len() as u64,
        }
    }

    /// Datagrams from new client addresses dropped because
    /// [`RelayConfig::max_connections`] flows existed.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Stops the relay within [`TICK`].
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn direction(record: &mut ProxyConnection, way: Way) -> &mut ProxyDirection {
    if way == Way::Up { &mut record.up } else { &mut record.down }
}

/// One thread for every flow: poll the client socket and each upstream socket, send what
/// falls due.
fn relay_loop(socket: &UdpSocket, shared: &Shared) {
    let start = Instant::now();
    let clock = shared.config.clock;
    let limit = shared.config.record_limit;
    let mut flows: Vec<Flow> = Vec::new();
    let mut by_client: HashMap<SocketAddr, usize> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut order = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut backoff = Duration::from_millis(1);
    while !shared.stop.load(Ordering::Relaxed) {
        // Send what is due, in due order (ties in arrival order).
        let now = Instant::now();
        for flow in &mut flows {
            for way in [Way::Up, Way::Down] {
                let schedule = if way == Way::Up { flow.up.as_mut() } else { flow.down.as_mut() };
                if let Some(schedule) = schedule {
                    for (due, bytes) in schedule.pop_expired(now - start) {
                        order += 1;
                        pending.push(Pending {
                            due: start + due,
                            order,
                            flow: flow.index as usize,
                            way,
                            arrived: now,
                            bytes,
                        });
                    }
                }
            }
        }
        pending.sort_by_key(|p| (p.due, p.order));
        let ready = pending.iter().take_while(|p| p.due <= now).count();
        for send in pending.drain(..ready) {
            let Some(flow) = flows.get(send.flow) else { continue };
            let began = Instant::now();
            let sent = match send.way {
                Way::Up => flow.upstream.send(&send.bytes),
                Way::Down => socket.send_to(&send.bytes, flow.client),
            };
            let mut record = lock(&flow.record);
            let d = direction(&mut record, send.way);
            match sent {
                Ok(n) => {
                    d.bytes_out += n as u64;
                    d.writes_out += 1;
                    let write = ProxyWrite {
                        at_us: micros_since(clock, began),
                        len: n,
                        delay_us: began.saturating_duration_since(send.arrived).as_secs_f64() * 1e6,
                    };
                    d.output_writes.push(write, limit);
                }
                Err(e) => {
                    record.error.get_or_insert(format!("send {}: {e}", send.way.name()));
                }
            }
        }
        // Wait for datagrams until the next send or expiry, at most TICK.
        let mut next = pending.first().map(|p| p.due);
        for flow in &flows {
            for schedule in [&flow.up, &flow.down].into_iter().flatten() {
                if let Some(expiry) = schedule.next_expiry() {
                    let expiry = start + expiry;
                    next = Some(next.map_or(expiry, |n| n.min(expiry)));
                }
            }
        }
        let now = Instant::now();
        let wait = next.map_or(TICK, |n| n.saturating_duration_since(now)).min(TICK);
        let ready = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(flows.len() + 1);
            fds.push(PollFd::new(socket, PollFlags::IN));
            for flow in &flows {
                fds.push(PollFd::from_borrowed_fd(flow.upstream.as_fd(), PollFlags::IN));
            }
            let timeout = Timespec { tv_sec: wait.as_secs() as _, tv_nsec: wait.subsec_nanos() as _ };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => fds.iter().map(|fd| !fd.revents().is_empty()).collect::<Vec<bool>>(),
                Err(_) => {
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            }
        };
        backoff = Duration::from_millis(1);
        // From clients: up. Read until the socket is empty, a bounded number of times.
        if ready[0] {
            for _ in 0..1024 {
                let (n, client) = match socket.recv_from(&mut buf) {
                    Ok(received) => received,
                    Err(_) => break, // WouldBlock, or an ICMP error from an earlier send
                };
                let index = match by_client.get(&client) {
                    Some(&index) => index,
                    None => match open_flow(shared, client, flows.len()) {
                        Some(flow) => {
                            by_client.insert(client, flows.len());
                            flows.push(flow);
                            flows.len() - 1
                        }
                        None => continue,
                    },
                };
                let arrived = Instant::now();
                let flow = &mut flows[index];
                take(
                    flow,
                    Way::Up,
                    &buf[..n],
                    arrived - start,
                    arrived,
                    limit,
                    &mut pending,
                    &mut order,
                    start,
                );
            }
        }
        // From the upstream server: down.
        for (i, flow) in flows.iter_mut().enumerate() {
            if !ready.get(i + 1).copied().unwrap_or(false) {
                continue;
            }
            for _ in 0..1024 {
                let n = match flow.upstream.recv(&mut buf) {
                    Ok(n) => n,
                    Err(_) => break,
                };
                let arrived = Instant::now();
                take(
                    flow,
                    Way::Down,
                    &buf[..n],
                    arrived - start,
                    arrived,
                    limit,
                    &mut pending,
                    &mut order,
                    start,
                );
            }
        }
    }
}

/// A new flow for `client`, or `None` (counted) when the relay serves its maximum.
fn open_flow(shared: &Shared, client: SocketAddr, open: usize) -> Option<Flow> {
    if open >= shared.config.max_connections {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let index = shared.accepted.fetch_add(1, Ordering::Relaxed);
    let local = if shared.upstream.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
    };
    let record = Arc::new(Mutex::new(ProxyConnection {
        index,
        client: client.to_string(),
        ..ProxyConnection::default()
    }));
    let upstream = match UdpSocket::bind(local).and_then(|s| s.connect(shared.upstream).map(|()| s)) {
        Ok(socket) if socket.set_nonblocking(true).is_ok() => socket,
        Ok(_) | Err(_) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    let _ = crate::net::set_recv_buffer(&upstream, 4 << 20);
    let schedule = |way: Way| {
        shared
            .spec
            .applies_to(way)
            .then(|| UdpSchedule::new(&shared.spec, connection_seed(shared.seed, index, way)))
    };
    {
        let mut r = lock(&record);
        r.up.impaired = shared.spec.applies_to(Way::Up);
        r.down.impaired = shared.spec.applies_to(Way::Down);
    }
    let mut flows = lock(&shared.flows);
    if flows.len() < ProxyObservation::MAX_CONNECTIONS {
        flows.push(record.clone());
    }
    Some(Flow {
        index: open as u64,
        client,
        upstream,
        up: schedule(Way::Up),
        down: schedule(Way::Down),
        record,
    })
}

/// A datagram arrived on `flow` going `way`: record it, decide, queue the sends.
#[allow(clippy::too_many_arguments)]
fn take(
    flow: &mut Flow,
    way: Way,
    data: &[u8],
    now: Duration,
    arrived: Instant,
    limit: usize,
    pending: &mut Vec<Pending>,
    order: &mut u64,
    start: Instant,
) {
    let schedule = if way == Way::Up { flow.up.as_mut() } else { flow.down.as_mut() };
    let verdict = match schedule {
        Some(schedule) => schedule.on_datagram(now, data),
        None => UdpVerdict { sends: vec![(now, Bytes::copy_from_slice(data))], ..UdpVerdict::default() },
    };
    {
        let mut record = lock(&flow.record);
        let d = direction(&mut record, way);
        let index = d.reads_in;
        d.bytes_in += data.len() as u64;
        d.reads_in += 1;
        d.input_chunks.push(data.len(), limit);
        if verdict.dropped {
            d.dropped.push(index, MAX_INDEXES);
        }
        if verdict.duplicated {
            d.duplicated.push(index, MAX_INDEXES);
        }
        if verdict.reordered {
            d.reordered.push(index, MAX_INDEXES);
        }
        if verdict.truncated {
            d.truncated.push(index, MAX_INDEXES);
        }
    }
    for (due, bytes) in verdict.sends {
        *order += 1;
        // A reordered datagram released here keeps its own arrival only approximately:
        // its delay is counted from this datagram's arrival.
        pending.push(Pending {
            due: start + due,
            order: *order,
            flow: flow.index as usize,
            way,
            arrived,
            bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(spec: &str, seed: u64) -> UdpSchedule {
        UdpSchedule::new(&Impairment::parse(spec).unwrap(), seed)
    }

    #[test]
    fn the_same_seed_drops_the_same_datagrams() {
        let lost = |seed: u64| -> Vec<u64> {
            let mut s = schedule("loss=0.1+duplicate=0.05", seed);
            (0..10_000)
                .map(|i| s.on_datagram(Duration::ZERO, &[i as u8]))
                .filter(|v| v.dropped)
                .map(|v| v.index)
                .collect()
        };
        let a = lost(7);
        assert_eq!(a, lost(7));
        assert_ne!(a, lost(8));
        assert!((700..=1300).contains(&a.len()), "{}", a.len());
    }

    #[test]
    fn a_reordered_datagram_follows_the_next_k() {
        let mut s = schedule("reorder=1/2", 0);
        let first = s.on_datagram(Duration::ZERO, b"a");
        assert!(first.reordered && first.sends.is_empty());
        // With p = 1 every datagram is held; none is ever overtaken, so they leave by the timer.
        let expired = s.pop_expired(REORDER_FLUSH);
        assert_eq!(expired.len(), 1);
        let mut s = schedule("reorder=0.5/2", 3);
        let mut order = Vec::new();
        for i in 0..40u8 {
            for (_, bytes) in s.on_datagram(Duration::ZERO, &[i]).sends {
                order.push(bytes[0]);
            }
        }
        order.extend(s.pop_expired(Duration::from_secs(1)).into_iter().map(|(_, b)| b[0]));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<u8>>(), "nothing lost or repeated");
        assert_ne!(order, sorted, "some came late");
    }

    #[test]
    fn truncate_cuts_longer_datagrams_only() {
        let mut s = schedule("truncate=4", 0);
        let v = s.on_datagram(Duration::ZERO, b"abcdefgh");
        assert!(v.truncated);
        assert_eq!(&v.sends[0].1[..], b"abcd");
        assert!(!s.on_datagram(Duration::ZERO, b"abc").truncated);
    }
}
