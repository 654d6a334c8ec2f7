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
//!
//! Each send is recorded with the index of the datagram it carried and how long the call
//! took, so a reader can say of every datagram when it left the relay. The relay's
//! socket towards the server is connected, so an ICMP port-unreachable for one datagram
//! (nobody bound yet) fails the *next* send with `ECONNREFUSED` and sends nothing; the
//! relay sends that datagram once more rather than lose it without a record.
//!
//! **Bounded.** A flow that moves no datagram either way for
//! [`RelayConfig::flow_timeout`], with none waiting, is closed and its slot freed, so
//! clients that come and go (a new socket each time) never lock new ones out; a
//! datagram from a new address while [`RelayConfig::max_connections`] flows are live is
//! dropped and counted. Datagrams waiting for their time (`delay`) are held up to
//! [`RelayConfig::max_queued_bytes`]; past it a datagram is dropped and counted in its
//! direction's `dropped_queue_full`, so a flood at `delay=30s` cannot take the memory.
//! (A reordered datagram waits in its schedule, at most [`REORDER_FLUSH`], before it
//! joins the queue.)
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::event::{PollFd, PollFlags, Timespec};

use super::shell::{OnShell, Record, Shared, Shell, Start, direction, lock};
use super::spec::{Delay, Impairment, Reorder, Truncate, Way};
use super::{
    ImpairError, MAX_INDEXES, QUEUED_OVERHEAD, RelayConfig, RelayCounters, TICK, connection_seed,
    micros_since,
};
use crate::report::{ProxyConnection, ProxyObservation, ProxyWrite};
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
    /// The sends now due or scheduled. A held-back datagram is not here but in the
    /// verdict of the datagram it follows (or [`UdpSchedule::pop_expired`]).
    pub sends: Vec<UdpSend>,
}

/// One send the schedule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSend {
    /// When it is due, on the schedule's clock.
    pub due: Duration,
    /// The index of the datagram it carries (0 = the first of the direction).
    pub index: u64,
    /// What it sends.
    pub bytes: Bytes,
}

/// A datagram held back behind later ones.
#[derive(Debug)]
struct Held {
    /// Datagrams still to overtake it.
    left: u32,
    /// When it arrived.
    since: Duration,
    /// The delay it carries when it leaves.
    delay: Duration,
    index: u64,
    bytes: Bytes,
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
    /// Datagrams held back, in arrival order.
    held: Vec<Held>,
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
            let held = |bytes| Held { left: reorder.depth, since: now, delay, index, bytes };
            self.held.push(held(bytes.clone()));
            if duplicated {
                self.held.push(held(bytes));
            }
            return verdict;
        }
        let due = now + delay;
        verdict.sends.push(UdpSend { due, index, bytes: bytes.clone() });
        if duplicated {
            verdict.sends.push(UdpSend { due, index, bytes });
        }
        // This datagram overtook the held ones; those it was the last for follow it.
        for held in &mut self.held {
            held.left = held.left.saturating_sub(1);
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|held| held.left == 0);
        self.held = waiting;
        verdict.sends.extend(ready.into_iter().map(|h| UdpSend {
            due: now + h.delay,
            index: h.index,
            bytes: h.bytes,
        }));
        verdict
    }

    /// Held-back datagrams that waited [`REORDER_FLUSH`] by `now`, as sends.
    pub fn pop_expired(&mut self, now: Duration) -> Vec<UdpSend> {
        let (expired, waiting): (Vec<_>, Vec<_>) =
            self.held.drain(..).partition(|held| now >= held.since + REORDER_FLUSH);
        self.held = waiting;
        expired
            .into_iter()
            .map(|h| UdpSend { due: h.since + REORDER_FLUSH + h.delay, index: h.index, bytes: h.bytes })
            .collect()
    }

    /// When the oldest held-back datagram expires.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.held.iter().map(|held| held.since + REORDER_FLUSH).min()
    }
}

/// A running UDP relay; see the [module docs](super). Stops when dropped.
pub struct UdpRelay {
    shell: Shell,
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
        let relay = |socket: UdpSocket, shared: Arc<Shared>| Relaying::new(&socket, &shared).run();
        let shell = Shell::start(upstream, spec, seed, config, "impair-udp", relay)?;
        Ok(UdpRelay { shell })
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.shell.addr()
    }

    /// The seed the relay's choices derive from.
    pub fn seed(&self) -> u64 {
        self.shell.shared().seed
    }

    /// What the relay did so far, flow by flow.
    pub fn observation(&self) -> ProxyObservation {
        self.shell.observation()
    }

    /// Datagrams from new client addresses dropped because
    /// [`RelayConfig::max_connections`] flows were live.
    pub fn refused(&self) -> u64 {
        self.shell.refused()
    }

    /// What the relay counted so far (refusals, expired flows, datagrams a full queue
    /// dropped), without copying records.
    pub fn counters(&self) -> RelayCounters {
        self.shell.counters()
    }

    /// The records of the listed flows that closed (expired), but those in `skip`.
    pub fn closed_connections(&self, skip: &BTreeSet<u64>) -> Vec<ProxyConnection> {
        self.shell.closed_connections(skip)
    }

    /// Stops the relay within [`TICK`].
    pub fn stop(&self) {
        self.shell.stop();
    }
}

impl OnShell for UdpRelay {
    const START: Start<Self> = UdpRelay::start_with;
    fn shell(&self) -> &Shell {
        &self.shell
    }
}

/// The datagrams of one client address, both ways.
struct Flow {
    /// Its place in [`Relaying::flows`].
    slot: usize,
    client: SocketAddr,
    /// Connected to the upstream server.
    upstream: UdpSocket,
    up: Option<UdpSchedule>,
    down: Option<UdpSchedule>,
    record: Record,
    /// When a datagram last came or left, either way.
    last_moved: Instant,
    /// Its sends waiting in the [`Queue`]: a flow with any is not idle.
    queued: usize,
}

impl Flow {
    fn schedule(&mut self, way: Way) -> Option<&mut UdpSchedule> {
        if way == Way::Up { self.up.as_mut() } else { self.down.as_mut() }
    }

    /// Whether nothing moved for `timeout` by `now` and nothing waits to be sent.
    fn idle(&self, now: Instant, timeout: Duration) -> bool {
        let holds = [&self.up, &self.down].into_iter().flatten().any(|s| s.next_expiry().is_some());
        self.queued == 0 && !holds && now.saturating_duration_since(self.last_moved) >= timeout
    }
}

/// A send waiting for its time.
struct Pending {
    due: Instant,
    order: u64,
    /// The flow's slot.
    flow: usize,
    way: Way,
    arrived: Instant,
    /// The datagram's index in its direction.
    index: u64,
    bytes: Bytes,
}

impl Pending {
    /// What it counts against [`RelayConfig::max_queued_bytes`].
    fn cost(&self) -> usize {
        self.bytes.len() + QUEUED_OVERHEAD
    }
}

/// Sends leave by due time, ties in the order they were queued.
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

/// The sends waiting for their time, on the relay's clock, the earliest first; bounded
/// by [`RelayConfig::max_queued_bytes`].
struct Queue {
    /// Where the schedules' clocks start.
    start: Instant,
    pending: BinaryHeap<Reverse<Pending>>,
    /// Sends queued so far: ties in due time leave in the order they were queued.
    order: u64,
    /// What the pending sends cost, in bytes ([`Pending::cost`]).
    bytes: usize,
    /// The most they may cost.
    max_bytes: usize,
}

impl Queue {
    /// Queues `send`, which a schedule of `flow` going `way` decided on a datagram that
    /// arrived at `arrived`; `false` (nothing queued) when the queue is full.
    fn push(&mut self, flow: &mut Flow, way: Way, arrived: Instant, send: UdpSend) -> bool {
        self.order += 1;
        let pending = Pending {
            due: self.start + send.due,
            order: self.order,
            flow: flow.slot,
            way,
            arrived,
            index: send.index,
            bytes: send.bytes,
        };
        if self.bytes + pending.cost() > self.max_bytes {
            return false;
        }
        self.bytes += pending.cost();
        flow.queued += 1;
        self.pending.push(Reverse(pending));
        true
    }

    /// The earliest send, if it is due by `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Pending> {
        if self.pending.peek().is_none_or(|Reverse(p)| p.due > now) {
            return None;
        }
        let Reverse(pending) = self.pending.pop()?;
        self.bytes -= pending.cost();
        Some(pending)
    }
}

/// The relay's one thread, for every flow: poll the client socket and each upstream
/// socket, send what falls due, close idle flows.
struct Relaying<'a> {
    socket: &'a UdpSocket,
    shared: &'a Shared,
    /// Flows by slot; an expired flow's slot is `None` until a new flow takes it.
    flows: Vec<Option<Flow>>,
    /// Slots free for new flows.
    free: Vec<usize>,
    by_client: HashMap<SocketAddr, usize>,
    queue: Queue,
    buf: Vec<u8>,
    /// When idle flows are next looked for.
    next_sweep: Instant,
}

impl<'a> Relaying<'a> {
    fn new(socket: &'a UdpSocket, shared: &'a Shared) -> Self {
        let queue = Queue {
            start: Instant::now(),
            pending: BinaryHeap::new(),
            order: 0,
            bytes: 0,
            max_bytes: shared.config.max_queued_bytes,
        };
        Relaying {
            socket,
            shared,
            flows: Vec::new(),
            free: Vec::new(),
            by_client: HashMap::new(),
            queue,
            buf: vec![0u8; MAX_DATAGRAM],
            next_sweep: Instant::now(),
        }
    }

    fn run(&mut self) {
        let mut backoff = Duration::from_millis(1);
        while !self.shared.stopped() {
            self.queue_expired();
            self.send_due();
            self.close_idle();
            // Wait for datagrams until the next send or expiry, at most TICK.
            let wait =
                self.next_wakeup().map_or(TICK, |n| n.saturating_duration_since(Instant::now())).min(TICK);
            let ready = match self.poll(wait) {
                Ok(Some(ready)) => ready,
                Ok(None) => continue,
                Err(_) => {
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(1);
            let (clients, flows) = ready;
            if clients {
                self.receive_from_clients();
            }
            self.receive_from_upstream(&flows);
        }
    }

    /// Queues the held-back datagrams whose wait is over.
    fn queue_expired(&mut self) {
        let now = Instant::now();
        for flow in self.flows.iter_mut().flatten() {
            for way in [Way::Up, Way::Down] {
                let Some(schedule) = flow.schedule(way) else { continue };
                let mut shed = 0;
                for send in schedule.pop_expired(now - self.queue.start) {
                    shed += u64::from(!self.queue.push(flow, way, now, send));
                }
                if shed > 0 {
                    record_shed(self.shared, flow, way, shed);
                }
            }
        }
    }

    /// Sends what is due, in due order (ties in arrival order).
    fn send_due(&mut self) {
        let now = Instant::now();
        while let Some(send) = self.queue.pop_due(now) {
            if let Some(flow) = self.flows.get_mut(send.flow).and_then(Option::as_mut) {
                flow.queued -= 1;
                flow.last_moved = now;
                send_one(self.socket, flow, &send, self.shared.config.clock, self.shared.config.record_limit);
            }
        }
    }

    /// Closes the flows idle for [`RelayConfig::flow_timeout`] (looked for a few times
    /// per timeout, at most once a [`TICK`]), freeing their slots.
    fn close_idle(&mut self) {
        let now = Instant::now();
        if now < self.next_sweep {
            return;
        }
        let timeout = self.shared.config.flow_timeout;
        self.next_sweep = now + (timeout / 4).clamp(TICK, Duration::from_secs(1));
        for slot in 0..self.flows.len() {
            let Some(flow) = self.flows[slot].take_if(|flow| flow.idle(now, timeout)) else { continue };
            self.by_client.remove(&flow.client);
            self.free.push(slot);
            self.shared.closed_for_idleness();
            self.shared
                .finished(&flow.record, Some(format!("idle for {timeout:?}: flow closed by the relay")));
        }
    }

    /// The next send or expiry of a held-back datagram, if any.
    fn next_wakeup(&self) -> Option<Instant> {
        let mut next = self.queue.pending.peek().map(|Reverse(p)| p.due);
        for flow in self.flows.iter().flatten() {
            for schedule in [&flow.up, &flow.down].into_iter().flatten() {
                if let Some(expiry) = schedule.next_expiry() {
                    let expiry = self.queue.start + expiry;
                    next = Some(next.map_or(expiry, |n| n.min(expiry)));
                }
            }
        }
        next
    }

    /// Waits at most `wait` for datagrams: whether the client socket is readable and
    /// the slots of the flows whose socket is, `None` when none is, or the poll's error.
    fn poll(&self, wait: Duration) -> Result<Option<(bool, Vec<usize>)>, rustix::io::Errno> {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(self.flows.len() + 1);
        let mut slots = Vec::with_capacity(self.flows.len());
        fds.push(PollFd::new(self.socket, PollFlags::IN));
        for flow in self.flows.iter().flatten() {
            fds.push(PollFd::from_borrowed_fd(flow.upstream.as_fd(), PollFlags::IN));
            slots.push(flow.slot);
        }
        let timeout = Timespec { tv_sec: wait.as_secs() as _, tv_nsec: wait.subsec_nanos() as _ };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => Ok(None),
            Ok(_) => {
                let ready = |fd: &PollFd<'_>| !fd.revents().is_empty();
                let flows = fds[1..].iter().zip(slots).filter(|(fd, _)| ready(fd)).map(|(_, slot)| slot);
                Ok(Some((ready(&fds[0]), flows.collect())))
            }
            Err(e) => Err(e),
        }
    }

    /// From clients: up. Reads until the socket is empty, a bounded number of times.
    fn receive_from_clients(&mut self) {
        for _ in 0..1024 {
            let (n, client) = match self.socket.recv_from(&mut self.buf) {
                Ok(received) => received,
                Err(_) => break, // WouldBlock, or an ICMP error from an earlier send
            };
            let slot = match self.by_client.get(&client) {
                Some(&slot) => slot,
                None => {
                    let slot = self.free.last().copied().unwrap_or(self.flows.len());
                    let Some(flow) = open_flow(self.shared, client, slot) else { continue };
                    if slot == self.flows.len() {
                        self.flows.push(Some(flow));
                    } else {
                        self.free.pop();
                        self.flows[slot] = Some(flow);
                    }
                    self.by_client.insert(client, slot);
                    slot
                }
            };
            let Some(flow) = self.flows[slot].as_mut() else { continue };
            take(flow, Way::Up, &self.buf[..n], Instant::now(), self.shared, &mut self.queue);
        }
    }

    /// From the upstream server: down, on the flows in the `ready` slots.
    fn receive_from_upstream(&mut self, ready: &[usize]) {
        for &slot in ready {
            let Some(flow) = self.flows.get_mut(slot).and_then(Option::as_mut) else { continue };
            for _ in 0..1024 {
                let n = match flow.upstream.recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(_) => break,
                };
                take(flow, Way::Down, &self.buf[..n], Instant::now(), self.shared, &mut self.queue);
            }
        }
    }
}

/// Sends one due datagram of `flow` and records it (with `clock` as time zero), or the
/// error.
fn send_one(socket: &UdpSocket, flow: &Flow, send: &Pending, clock: Instant, limit: usize) {
    let send_once = || match send.way {
        Way::Up => flow.upstream.send(&send.bytes),
        Way::Down => socket.send_to(&send.bytes, flow.client),
    };
    let mut began = Instant::now();
    let mut sent = send_once();
    // The connected upstream socket reports an earlier datagram's ICMP
    // port-unreachable on this call, which then sent nothing: send it again.
    if matches!(&sent, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused) {
        began = Instant::now();
        sent = send_once();
    }
    let returned = Instant::now();
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
                datagram: Some(send.index),
                took_us: Some(returned.saturating_duration_since(began).as_secs_f64() * 1e6),
            };
            d.output_writes.push(write, limit);
        }
        Err(e) => {
            record.error.get_or_insert(format!("send {}: {e}", send.way.name()));
        }
    }
}

/// A new flow for `client` in `slot`, or `None` (counted) when the relay serves its
/// maximum or no socket towards the server can be made.
fn open_flow(shared: &Shared, client: SocketAddr, slot: usize) -> Option<Flow> {
    if !shared.has_room() {
        shared.refuse(client);
        return None;
    }
    let index = shared.next_index();
    let local = if shared.upstream.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
    };
    let upstream = match UdpSocket::bind(local).and_then(|s| s.connect(shared.upstream).map(|()| s)) {
        Ok(socket) if socket.set_nonblocking(true).is_ok() => socket,
        Ok(_) | Err(_) => {
            shared.refuse(client);
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
    let record = Shared::new_record(index, client);
    shared.mark_impaired(&record);
    shared.list(&record);
    // It counts against the maximum until it expires.
    shared.opened();
    Some(Flow {
        slot,
        client,
        upstream,
        up: schedule(Way::Up),
        down: schedule(Way::Down),
        record,
        last_moved: Instant::now(),
        queued: 0,
    })
}

/// `shed` datagrams of `flow` going `way` found the queue full: counted in its record
/// and the relay's counters.
fn record_shed(shared: &Shared, flow: &Flow, way: Way, shed: u64) {
    direction(&mut lock(&flow.record), way).dropped_queue_full += shed;
    shared.dropped_for_a_full_queue(shed);
}

/// A datagram arrived on `flow` going `way` at `arrived`: record it, decide, queue the
/// sends (those that find the queue full are dropped and counted).
fn take(flow: &mut Flow, way: Way, data: &[u8], arrived: Instant, shared: &Shared, queue: &mut Queue) {
    flow.last_moved = arrived;
    let limit = shared.config.record_limit;
    let now = arrived - queue.start;
    let verdict = match flow.schedule(way) {
        Some(schedule) => schedule.on_datagram(now, data),
        None => {
            // Unimpaired: sent as it came. Its index counts the direction's datagrams,
            // as a schedule's does.
            let index = direction(&mut lock(&flow.record), way).reads_in;
            let bytes = Bytes::copy_from_slice(data);
            UdpVerdict { index, sends: vec![UdpSend { due: now, index, bytes }], ..UdpVerdict::default() }
        }
    };
    {
        let mut record = lock(&flow.record);
        let d = direction(&mut record, way);
        let index = verdict.index;
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
    // A reordered datagram released here keeps its own arrival only approximately: its
    // delay is counted from this datagram's arrival.
    let mut shed = 0;
    for send in verdict.sends {
        shed += u64::from(!queue.push(flow, way, arrived, send));
    }
    if shed > 0 {
        record_shed(shared, flow, way, shed);
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
            for send in s.on_datagram(Duration::ZERO, &[i]).sends {
                assert_eq!(send.bytes[0] as u64, send.index, "each send names its datagram");
                order.push(send.bytes[0]);
            }
        }
        order.extend(s.pop_expired(Duration::from_secs(1)).into_iter().map(|send| send.bytes[0]));
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
        assert_eq!(&v.sends[0].bytes[..], b"abcd");
        assert!(!s.on_datagram(Duration::ZERO, b"abc").truncated);
    }
}
