//! The TCP relay: accepts clients, connects each to the upstream server, and runs one
//! thread per direction — the seeded [`TcpSchedule`] where the spec applies, `splice(2)`
//! (or a plain copy) where it does not.
//!
//! **Idle costs nothing.** A direction waiting for bytes blocks in its read for as long
//! as the connection may still stay idle ([`RelayConfig::idle_timeout`]), not for a
//! short tick: 256 idle connections make no wake-ups. Whatever must end a connection
//! sooner — a reset, the idle timeout seen by the other direction, the relay's stop —
//! wakes the blocked reads with `shutdown(SHUT_RD)`. A blocked write (a peer that stops
//! reading) still wakes every [`TICK`] to look at the flags.
//!
//! **Slots are freed.** A client that resets frees its slot at once (the reset is passed
//! on); a connection that moves no byte either way for the idle timeout is closed and
//! counted; a connection past [`RelayConfig::max_connections`] is refused and counted
//! ([`RelayCounters`](super::RelayCounters)).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::pipe::{PipeFlags, SpliceFlags};
use socket2::SockRef;

use super::schedule::TcpSchedule;
use super::shell::{OnShell, Record, Shared, Shell, Start, direction, lock};
use super::spec::{Impairment, Way};
use super::{ImpairError, RelayConfig, RelayCounters, TICK, connection_seed, micros_since};
use crate::report::{ProxyConnection, ProxyDirection, ProxyObservation, ProxyWrite};

/// Bytes a direction reads ahead of what it has written, at most: past this the relay
/// stops reading, and the sender feels the backpressure.
const MAX_BUFFERED: usize = 1 << 20;
/// The largest read of one direction.
const CHUNK: usize = 256 << 10;
/// The pipe size a splicing direction asks for (Linux's default `pipe-max-size`).
const SPLICE_PIPE: usize = 1 << 20;

/// How a direction without impairment moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassThrough {
    /// `splice(2)` from the socket into a pipe and from the pipe into the other socket:
    /// the bytes never enter user space.
    #[default]
    Splice,
    /// `read` into a buffer and `write` it out (for comparison in benchmarks).
    Copy,
}

/// A running TCP relay; see the [module docs](super). Stops when dropped.
pub struct TcpRelay {
    shell: Shell,
}

/// What both direction threads of one connection share.
struct Connection {
    shared: Arc<Shared>,
    record: Record,
    client: TcpStream,
    upstream: TcpStream,
    index: u64,
    /// Raised by the direction that ended the connection itself (a reset, the idle
    /// timeout), so the other one stops without passing a FIN on first.
    ended: AtomicBool,
    /// When the connection started: `last_moved` counts from it.
    born: Instant,
    /// Nanoseconds from `born` to when a byte last moved, either way.
    last_moved: AtomicU64,
}

/// The connections being served, so that the relay's stop can wake their directions
/// (blocked in reads with a long timeout) at once. `None` once the relay stopped: a
/// connection that finishes connecting later ends at once.
struct Live(Mutex<Option<HashMap<u64, Weak<Connection>>>>);

impl Live {
    fn new() -> Self {
        Live(Mutex::new(Some(HashMap::new())))
    }

    /// Adds `connection`; `false` when the relay has stopped.
    fn add(&self, connection: &Arc<Connection>) -> bool {
        match lock(&self.0).as_mut() {
            Some(live) => {
                live.insert(connection.index, Arc::downgrade(connection));
                true
            }
            None => false,
        }
    }

    /// Connection `index` ended.
    fn remove(&self, index: u64) {
        if let Some(live) = lock(&self.0).as_mut() {
            live.remove(&index);
        }
    }

    /// Wakes the reads of every connection (each then sees the stop flag), and makes any
    /// later [`Live::add`] fail.
    fn end_all(&self) {
        let live = lock(&self.0).take().unwrap_or_default();
        for connection in live.into_values().filter_map(|weak| weak.upgrade()) {
            connection.wake_readers();
        }
    }
}

impl TcpRelay {
    /// Starts a relay on `127.0.0.1:0` in front of `upstream`, impairing as `spec`
    /// says, every choice derived from `seed`.
    ///
    /// # Errors
    /// [`ImpairError::Spec`] for a UDP-only item; [`ImpairError::Bind`] when the listen
    /// address cannot be bound.
    pub fn start(upstream: SocketAddr, spec: &Impairment, seed: u64) -> Result<TcpRelay, ImpairError> {
        TcpRelay::start_with(upstream, spec, seed, RelayConfig::default())
    }

    /// As [`TcpRelay::start`], with settings.
    ///
    /// # Errors
    /// As [`TcpRelay::start`].
    pub fn start_with(
        upstream: SocketAddr,
        spec: &Impairment,
        seed: u64,
        config: RelayConfig,
    ) -> Result<TcpRelay, ImpairError> {
        spec.check_tcp()?;
        let accept = |listener: TcpListener, shared: Arc<Shared>| accept_loop(&listener, &shared);
        let shell = Shell::start(upstream, spec, seed, config, "impair-accept", accept)?;
        Ok(TcpRelay { shell })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.shell.addr()
    }

    /// The spec the relay applies.
    pub fn spec(&self) -> &Impairment {
        &self.shell.shared().spec
    }

    /// The seed the relay's choices derive from.
    pub fn seed(&self) -> u64 {
        self.shell.shared().seed
    }

    /// What the relay did so far, connection by connection.
    pub fn observation(&self) -> ProxyObservation {
        self.shell.observation()
    }

    /// The record of connection `index` so far, if it was accepted and listed.
    pub fn connection(&self, index: usize) -> Option<ProxyConnection> {
        self.shell.connection(index)
    }

    /// Connections refused because [`RelayConfig::max_connections`] were open.
    pub fn refused(&self) -> u64 {
        self.shell.refused()
    }

    /// What the relay counted so far (refusals, idle closes), without copying records.
    pub fn counters(&self) -> RelayCounters {
        self.shell.counters()
    }

    /// The records of the listed connections that closed, but those in `skip`.
    pub fn closed_connections(&self, skip: &std::collections::BTreeSet<u64>) -> Vec<ProxyConnection> {
        self.shell.closed_connections(skip)
    }

    /// Stops accepting and ends every connection within [`TICK`] (without a reset).
    pub fn stop(&self) {
        self.shell.stop();
    }
}

impl OnShell for TcpRelay {
    const START: Start<Self> = TcpRelay::start_with;
    fn shell(&self) -> &Shell {
        &self.shell
    }
}

impl std::fmt::Debug for TcpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.shell.shared();
        f.debug_struct("TcpRelay")
            .field("addr", &self.shell.addr())
            .field("upstream", &shared.upstream)
            .field("spec", &shared.spec.to_string())
            .field("seed", &shared.seed)
            .finish()
    }
}

/// Waits until `fd` is readable (or closed), at most `timeout`.
fn wait_readable<Fd: AsFd>(fd: &Fd, timeout: Duration) -> io::Result<bool> {
    let timeout = Timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let live = Arc::new(Live::new());
    let mut backoff = Duration::from_millis(1);
    while !shared.stopped() {
        match wait_readable(listener, TICK) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => {
                thread::sleep(TICK);
                continue;
            }
        }
        let (client, peer) = match listener.accept() {
            Ok(accepted) => {
                backoff = Duration::from_millis(1);
                accepted
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                continue;
            }
            Err(_) => {
                // Out of descriptors (EMFILE) and the like: back off instead of spinning.
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if !shared.has_room() {
            shared.refuse(peer);
            drop(client);
            continue;
        }
        let index = shared.next_index();
        let record = Shared::new_record(index, peer);
        shared.list(&record);
        shared.opened();
        let (worker, live, kept) = (shared.clone(), live.clone(), record.clone());
        let spawned = thread::Builder::new()
            .name(format!("impair-conn-{index}"))
            .spawn(move || serve_connection(&worker, &live, record, client, index));
        if let Err(e) = spawned {
            shared.finished(&kept, Some(format!("cannot start a thread: {e}")));
        }
    }
    live.end_all();
}

/// Connects upstream, runs the down direction on a second thread and the up direction
/// on this one, and marks the record closed when both ended.
fn serve_connection(shared: &Arc<Shared>, live: &Live, record: Record, client: TcpStream, index: u64) {
    let upstream = match TcpStream::connect_timeout(&shared.upstream, shared.config.connect_timeout) {
        Ok(upstream) => upstream,
        Err(e) => {
            // The client sees a reset: as close as a relay gets to "connection refused".
            let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
            shared.finished(&record, Some(format!("cannot connect to {}: {e}", shared.upstream)));
            return;
        }
    };
    for stream in [&client, &upstream] {
        // Each piece leaves as its own segment; a relay must not add Nagle's delays.
        let _ = stream.set_nodelay(true);
        // A read waits as long as the connection may stay idle; a write wakes every TICK
        // (a shutdown wakes reads, not writes).
        let _ = stream.set_read_timeout(Some(shared.config.idle_timeout.max(TICK)));
        let _ = stream.set_write_timeout(Some(TICK));
    }
    shared.mark_impaired(&record);
    let connection = Arc::new(Connection {
        shared: shared.clone(),
        record: record.clone(),
        client,
        upstream,
        index,
        ended: AtomicBool::new(false),
        born: Instant::now(),
        last_moved: AtomicU64::new(0),
    });
    if !live.add(&connection) {
        // The relay stopped while this connection was being made.
        drop(connection);
        shared.finished(&record, None);
        return;
    }
    let down = {
        let connection = connection.clone();
        thread::Builder::new()
            .name(format!("impair-down-{index}"))
            .spawn(move || run_direction(&connection, Way::Down))
    };
    run_direction(&connection, Way::Up);
    match down {
        Ok(handle) => {
            let _ = handle.join();
        }
        Err(e) => {
            lock(&record).error.get_or_insert(format!("cannot start the down direction: {e}"));
        }
    }
    live.remove(index);
    drop(connection); // the last reference: the sockets close here (with RST after a reset)
    shared.finished(&record, None);
}

/// One direction, to its end: EOF passed on, a reset, an error, or the relay's stop.
fn run_direction(connection: &Connection, way: Way) {
    let (input, output) = match way {
        Way::Up => (&connection.client, &connection.upstream),
        Way::Down => (&connection.upstream, &connection.client),
    };
    let result = if connection.shared.spec.applies_to(way) {
        let seed = connection_seed(connection.shared.seed, connection.index, way);
        impaired(connection, way, input, output, TcpSchedule::new(&connection.shared.spec, seed))
    } else {
        match connection.shared.config.pass_through {
            PassThrough::Splice => spliced(connection, way, input, output),
            PassThrough::Copy => copied(connection, way, input, output),
        }
    };
    match result {
        Ok(End::Eof) => {
            let _ = output.shutdown(Shutdown::Write);
        }
        Ok(End::Stopped) => {}
        Err(DirectionError::ResetBy(side)) => {
            reset_both(connection);
            lock(&connection.record).error.get_or_insert(format!("{side} reset the connection"));
        }
        Err(DirectionError::Io(what, e)) => {
            reset_both(connection);
            lock(&connection.record).error.get_or_insert(format!("{what}: {e}"));
        }
        Err(DirectionError::Idle) => close_idle(connection),
    }
}

enum End {
    /// The input ended and everything was written: pass the FIN on.
    Eof,
    /// The relay stopped, or the other direction reset the connection.
    Stopped,
}

enum DirectionError {
    /// The named side reset its connection: the relay resets the other.
    ResetBy(&'static str),
    /// Any other socket error.
    Io(&'static str, io::Error),
    /// No byte moved either way for the idle timeout.
    Idle,
}

fn side(way: Way, reading: bool) -> &'static str {
    match (way, reading) {
        (Way::Up, true) | (Way::Down, false) => "the client",
        (Way::Up, false) | (Way::Down, true) => "the upstream server",
    }
}

fn read_error(way: Way, e: io::Error) -> DirectionError {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            DirectionError::ResetBy(side(way, true))
        }
        _ => DirectionError::Io("read", e),
    }
}

fn write_error(way: Way, e: io::Error) -> DirectionError {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            DirectionError::ResetBy(side(way, false))
        }
        _ => DirectionError::Io("write", e),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

impl Connection {
    fn stopped(&self) -> bool {
        self.shared.stopped() || self.ended.load(Ordering::Relaxed)
    }

    /// A byte moved (either way): the connection is not idle.
    fn moved(&self) {
        let since = self.born.elapsed().as_nanos() as u64;
        self.last_moved.store(since, Ordering::Relaxed);
    }

    /// After a wait that timed out: [`DirectionError::Idle`] when no byte moved either
    /// way for the idle timeout, else how long until that would be.
    fn idle_left(&self) -> Result<Duration, DirectionError> {
        let last = Duration::from_nanos(self.last_moved.load(Ordering::Relaxed));
        let idle = self.born.elapsed().saturating_sub(last);
        match self.shared.config.idle_timeout.checked_sub(idle) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(DirectionError::Idle),
        }
    }

    /// A read of `input` timed out: [`DirectionError::Idle`], or its next timeout set to
    /// when the connection would be idle (the other direction may have moved bytes).
    fn read_timed_out(&self, input: &TcpStream) -> Result<(), DirectionError> {
        let left = self.idle_left()?;
        let _ = input.set_read_timeout(Some(left.max(TICK)));
        Ok(())
    }

    /// Wakes both directions' reads: each returns 0, which reads as "stop" once a flag
    /// says so.
    fn wake_readers(&self) {
        for stream in [&self.client, &self.upstream] {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }

    fn direction<R>(&self, way: Way, f: impl FnOnce(&mut ProxyDirection, usize) -> R) -> R {
        let limit = self.shared.config.record_limit;
        f(direction(&mut lock(&self.record), way), limit)
    }

    fn record_read(&self, way: Way, n: usize) {
        self.moved();
        self.direction(way, |d, limit| {
            d.bytes_in += n as u64;
            d.reads_in += 1;
            d.input_chunks.push(n, limit);
        });
    }

    fn record_write(&self, way: Way, started: Instant, len: usize, arrived: Instant) {
        self.moved();
        let clock = self.shared.config.clock;
        self.direction(way, |d, limit| {
            d.bytes_out += len as u64;
            d.writes_out += 1;
            let write = ProxyWrite {
                at_us: micros_since(clock, started),
                len,
                delay_us: started.saturating_duration_since(arrived).as_secs_f64() * 1e6,
                datagram: None,
                took_us: None,
            };
            d.output_writes.push(write, limit);
        });
    }
}

/// Writes all of `bytes`, retrying on the socket's timeout until the relay stops.
fn write_all(
    connection: &Connection,
    way: Way,
    output: &TcpStream,
    mut bytes: &[u8],
) -> Result<bool, DirectionError> {
    while !bytes.is_empty() {
        if connection.stopped() {
            return Ok(false);
        }
        match (&*output).write(bytes) {
            Ok(0) => return Err(DirectionError::Io("write", io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                bytes = &bytes[n..];
                connection.moved();
            }
            Err(e) if is_timeout(&e) => {
                connection.idle_left()?;
            }
            Err(e) => return Err(write_error(way, e)),
        }
    }
    Ok(true)
}

/// The seeded schedule: read what arrives, write what falls due, sleep until the next
/// thing happens (at most [`TICK`]).
fn impaired(
    connection: &Connection,
    way: Way,
    input: &TcpStream,
    output: &TcpStream,
    mut schedule: TcpSchedule,
) -> Result<End, DirectionError> {
    let start = Instant::now();
    let at = |d: Duration| start + d;
    let mut buf = vec![0u8; CHUNK];
    let mut input_done = false;
    loop {
        if connection.stopped() {
            return Ok(End::Stopped);
        }
        while let Some(out) = schedule.pop_due(start.elapsed()) {
            let began = Instant::now();
            if !write_all(connection, way, output, &out.bytes)? {
                return Ok(End::Stopped);
            }
            connection.record_write(way, began, out.bytes.len(), at(out.arrived));
            schedule.written(start.elapsed(), out.bytes.len());
            if out.reset {
                reset_both(connection);
                return Ok(End::Stopped);
            }
        }
        if input_done && schedule.is_empty() {
            return Ok(End::Eof);
        }
        let now = start.elapsed();
        // With nothing scheduled, wait for input as long as the connection may stay idle.
        let wait = match schedule.next_wakeup() {
            Some(t) => t.saturating_sub(now).min(TICK),
            None if schedule.is_empty() => connection.idle_left()?,
            None => TICK,
        };
        if input_done || schedule.buffered() >= MAX_BUFFERED {
            thread::sleep(wait.min(TICK).max(Duration::from_micros(50)));
            continue;
        }
        match wait_readable(input, wait) {
            Ok(true) => {}
            Ok(false) => {
                connection.idle_left()?;
                continue;
            }
            Err(e) => return Err(DirectionError::Io("poll", e)),
        }
        match (&*input).read(&mut buf) {
            Ok(0) => {
                if connection.stopped() {
                    return Ok(End::Stopped);
                }
                input_done = true;
                schedule.finish(start.elapsed());
            }
            Ok(n) => {
                connection.record_read(way, n);
                schedule.push(start.elapsed(), &buf[..n]);
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(read_error(way, e)),
        }
    }
}

/// Pass-through with `splice(2)`: socket → pipe → socket, no copy into user space, on
/// one thread. The splice from the socket blocks (up to the socket's [`TICK`] timeout,
/// so a stop is seen) rather than polling first: one system call less per chunk.
///
/// Measured and not kept: a second thread splicing out of the pipe while this one
/// splices in. A splice from a socket holds the pipe's lock while it waits for data, so
/// the two threads serialise anyway; on a 2-core machine it moved no more bytes and added
/// ~10 µs to a round trip.
fn spliced(
    connection: &Connection,
    way: Way,
    input: &TcpStream,
    output: &TcpStream,
) -> Result<End, DirectionError> {
    let (pipe_out, pipe_in) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| DirectionError::Io("create a pipe", e.into()))?;
    // A bigger pipe moves more per call; the default (64 KiB) is the fallback.
    let capacity = rustix::pipe::fcntl_setpipe_size(&pipe_in, SPLICE_PIPE).unwrap_or(64 << 10);
    loop {
        if connection.stopped() {
            return Ok(End::Stopped);
        }
        let n = match rustix::pipe::splice(input, None, &pipe_in, None, capacity, SpliceFlags::MOVE) {
            Ok(0) => {
                return if connection.stopped() { Ok(End::Stopped) } else { Ok(End::Eof) };
            }
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN) => {
                connection.read_timed_out(input)?;
                continue;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(read_error(way, e.into())),
        };
        let arrived = Instant::now();
        connection.record_read(way, n);
        let mut left = n;
        while left > 0 {
            if connection.stopped() {
                return Ok(End::Stopped);
            }
            let began = Instant::now();
            match rustix::pipe::splice(&pipe_out, None, output, None, left, SpliceFlags::MOVE) {
                Ok(0) => return Err(DirectionError::Io("splice", io::ErrorKind::WriteZero.into())),
                Ok(m) => {
                    left -= m;
                    connection.record_write(way, began, m, arrived);
                }
                Err(rustix::io::Errno::AGAIN) => {
                    connection.idle_left()?;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(write_error(way, e.into())),
            }
        }
    }
}

/// Pass-through with `read` and `write` through a buffer.
fn copied(
    connection: &Connection,
    way: Way,
    input: &TcpStream,
    output: &TcpStream,
) -> Result<End, DirectionError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if connection.stopped() {
            return Ok(End::Stopped);
        }
        match wait_readable(input, connection.idle_left()?) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return Err(DirectionError::Io("poll", e)),
        }
        let arrived = Instant::now();
        let n = match (&*input).read(&mut buf) {
            Ok(0) => return if connection.stopped() { Ok(End::Stopped) } else { Ok(End::Eof) },
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(read_error(way, e)),
        };
        connection.record_read(way, n);
        let began = Instant::now();
        if !write_all(connection, way, output, &buf[..n])? {
            return Ok(End::Stopped);
        }
        connection.record_write(way, began, n, arrived);
    }
}

/// Resets both connections: SO_LINGER 0, so closing sends RST rather than FIN. The other
/// direction's thread is woken (its reads return 0, which it reads as "stop", not EOF),
/// and the sockets close when both threads have let go of them.
fn reset_both(connection: &Connection) {
    if connection.ended.swap(true, Ordering::Relaxed) {
        return;
    }
    for stream in [&connection.client, &connection.upstream] {
        let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
    }
    connection.wake_readers();
    lock(&connection.record).reset = true;
}

/// No byte moved either way for the idle timeout: ends both directions (the sockets
/// close with a FIN when both let go), records why, counts it.
fn close_idle(connection: &Connection) {
    if connection.ended.swap(true, Ordering::Relaxed) {
        return;
    }
    let timeout = connection.shared.config.idle_timeout;
    lock(&connection.record).error.get_or_insert(format!("idle for {timeout:?}: closed by the relay"));
    connection.shared.closed_for_idleness();
    connection.wake_readers();
}
