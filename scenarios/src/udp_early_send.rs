//! `udp-early-send`: datagrams sent before the receiver binds are gone.
//!
//! The race as real programs run it: from the start a sender sends `count` numbered
//! datagrams, one every `send_interval_us`, to a loopback port nobody has bound yet; the
//! receiver binds that port `receiver_delay_ms` after the start and reads. Every
//! datagram sent before the bind is lost and every one sent after it arrives, so the loss
//! follows the delay: about `receiver_delay_ms × 1000 / send_interval_us` datagrams.
//!
//! The verdict is exact, not statistical: both ends stamp their calls on one monotonic
//! clock, so each datagram is judged by when its send call ran against when the bind call
//! ran (a send overlapping the bind is counted apart and not judged). The kernel's
//! `Udp: NoPorts` counter cross-checks the loss; when socklab may create network
//! namespaces the case runs in a private one, where that counter sees only this case.
//!
//! Two mitigations can be switched on: a ready handshake (the receiver says it is bound;
//! the sender starts its schedule only then) and retransmission (the receiver
//! acknowledges each number; the sender resends what is unacknowledged every 10 ms until
//! a deadline).
//!
//! With `impair` the sender sends through a seeded UDP relay (`socklab_harness::impair`)
//! that loses, duplicates, reorders, delays or cuts datagrams on their way to the
//! receiver's port. The relay is then what sends to that port, so each datagram is
//! judged by the relay's send of it against the bind, and the loss is split by cause:
//! what the relay dropped or cut short (its record lists which) and what the kernel lost
//! (no socket yet, or a full buffer). The relay names the datagram each of its sends
//! carried; the sender's log of its sends in order turns that into sequence numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use socklab_harness::check::Check;
use socklab_harness::impair::spec::check_udp_text;
use socklab_harness::impair::{Impairment, ProxyObservation, REORDER_FLUSH, RelayConfig, UdpRelay, in_front};
use socklab_harness::net::{NetnsMode, UdpCounters, error_name, read_udp_counters, recv_datagram};
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::report::MetricSpec;
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::shared_params;

use crate::netns_scope::{Scope, run_scoped_blocking};

/// The scenario; see the module docs.
pub struct UdpEarlySend;

socklab_harness::named_enum!(
    /// How the sender addresses the receiver.
    pub SocketMode, "socket", {
        /// `sendto` on an unconnected socket: ICMP errors are not reported to it.
        Unconnected => "unconnected",
        /// `connect` then `send`: an ICMP port-unreachable turns into `ECONNREFUSED` on a
        /// later call.
        Connected => "connected",
    }
);

socklab_harness::named_enum!(
    /// What the sender does about the receiver not being there yet.
    pub Mitigation, "mitigation", {
        /// Nothing: send on schedule and hope.
        None => "none",
        /// Wait for a "ready" datagram from the receiver, then start the schedule.
        ReadyHandshake => "ready-handshake",
        /// Send on schedule; resend every unacknowledged datagram every 10 ms until
        /// acknowledged or a deadline.
        Retransmit => "retransmit",
    }
);

socklab_harness::params! {
    /// Parameters of `udp-early-send`.
    pub struct Params {
        /// datagrams the sender sends, one every send_interval_us from the start
        count: u64 = 100 => ParamSpec::int(1, MAX_DATAGRAMS).unit("datagrams"),
        /// time between two scheduled sends (1000: 1 datagram per ms); count × interval <= 10 s
        send_interval_us: u64 = 1000 => ParamSpec::int(1, 1_000_000).unit("µs"),
        /// the receiver binds this long after the sender starts
        receiver_delay_ms: u64 = 20 => ParamSpec::int(0, 5_000).unit("ms"),
        /// unconnected (sendto) or connected (connect + send; ICMP errors become ECONNREFUSED)
        socket: SocketMode = SocketMode::Unconnected => ParamSpec::choice::<SocketMode>(),
        /// none; ready-handshake (start sending on the receiver's "ready"); retransmit (resend until
        /// acked)
        mitigation: Mitigation = Mitigation::None => ParamSpec::choice::<Mitigation>(),
        /// auto: run in a private network namespace when permitted, so Udp: NoPorts is exact; never:
        /// host namespace
        netns: NetnsMode => shared_params::NETNS,
        impair: String = shared_params::NO_IMPAIRMENT.into() => shared_params::UDP_IMPAIR,
    }
}

const MAX_DATAGRAMS: u64 = 10_000;
/// The longest sending schedule (`count × send_interval_us`).
const MAX_SCHEDULE: Duration = Duration::from_secs(10);
/// Without a mitigation the schedule must go on this long past the bind, so that some
/// datagrams are sent after it and can show that they arrive.
const SENDS_PAST_BIND: Duration = Duration::from_millis(10);
/// Retransmission period of the `retransmit` mitigation.
const RETRANSMIT_EVERY: Duration = Duration::from_millis(10);
/// How long past the bind and the schedule the sender keeps retransmitting or waiting
/// for "ready", and the receiver keeps listening.
const GRACE: Duration = Duration::from_secs(3);
/// At most this many datagrams are resent per retransmission round.
const RESEND_PER_ROUND: usize = 1024;
/// How long an end sleeps when it finds nothing to receive and has nothing due.
const IDLE: Duration = Duration::from_micros(100);

const DATA: u8 = 1;
const READY: u8 = 2;
const ACK: u8 = 3;
const PAYLOAD_LEN: usize = 32;

socklab_harness::model::metrics! {
    /// distinct sequence numbers scheduled (count)
    datagrams: Count, Neither;
    /// send calls that succeeded, retransmissions included
    sent: Count, Neither;
    /// distinct sequence numbers the receiver got
    delivered: Count, Neither;
    /// sequence numbers never delivered (datagrams − delivered), whatever lost them; with impair it
    /// is lost_relay + lost_kernel
    lost: Count, Lower;
    /// sequence numbers whose scheduled send time fell before the bind: the loss the rate predicts
    scheduled_before_bind: Count, Neither;
    /// sequence numbers whose first successful send returned before the bind call started (with
    /// impair: the relay's first whole send of it)
    sent_before_bind: Count, Neither;
    /// sequence numbers whose first successful send started after the bind call returned (with
    /// impair: the relay's)
    sent_after_bind: Count, Neither;
    /// sequence numbers whose first successful send overlapped the bind call, not judged (with
    /// impair: the relay's)
    sent_during_bind: Count, Neither;
    /// sequence numbers no send call succeeded for (a connected socket's ECONNREFUSED)
    never_sent: Count, Neither;
    /// of sent_before_bind, never delivered: lost by the kernel (with impair the relay's drops are
    /// not among them)
    lost_before_bind: Count, Lower;
    /// of sent_after_bind, never delivered: lost by the kernel (with impair the relay's drops are
    /// not among them)
    lost_after_bind: Count, Lower;
    /// when the last lost datagram's send returned, relative to the bind call's start (negative:
    /// before; with impair: the relay's send)
    last_lost_sent_at: Millis, Neither;
    /// when the first delivered datagram's send started, relative to the bind call's start (with
    /// impair: the relay's send)
    first_delivered_sent_at: Millis, Neither;
    /// send calls that failed, any errno
    send_errors: Count, Lower;
    /// send calls that failed with ECONNREFUSED
    send_errors_econnrefused: Count, Lower;
    /// lowest sequence number delivered (absent when none was)
    first_delivered_seq: Count, Neither;
    /// datagrams delivered more than once
    duplicates: Count, Lower;
    /// resends by the retransmit mitigation
    retransmits: Count, Lower;
    /// when the receiver's bind call started, since the start
    bound_at: Millis, Neither;
    /// Udp: NoPorts delta in /proc/net/snmp: datagrams that found no socket (exact in a private
    /// namespace)
    no_ports_snmp: Count, Neither;
    /// 1 when the case ran in a private network namespace, else 0
    private_netns: Count, Neither;
    /// impair: datagrams the relay sent on towards the receiver's port, copies included (absent
    /// without impair)
    relay_forwarded: Count, Neither;
    /// impair: datagrams from the sender the relay dropped (loss), its record lists which
    relay_dropped: Count, Neither;
    /// impair: datagrams from the sender the relay sent twice (duplicate)
    relay_duplicated: Count, Neither;
    /// impair: datagrams from the sender the relay held back behind later ones (reorder)
    relay_reordered: Count, Neither;
    /// impair: datagrams from the sender the relay cut short (truncate); the receiver cannot read a
    /// cut one
    relay_truncated: Count, Neither;
    /// impair: sequence numbers never delivered because the relay dropped or cut short every copy
    /// sent
    lost_relay: Count, Neither;
    /// impair: sequence numbers never delivered that the relay did pass on: the kernel lost them
    /// (no socket bound yet, a full receive buffer, a refused send)
    lost_kernel: Count, Lower;
}

impl Scenario for UdpEarlySend {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "udp-early-send";
    const SUMMARY: &'static str = "UDP datagrams sent before the receiver binds are lost without a trace; loss follows the delay; mitigations";
    const EXPLANATION: &'static str = "\
What it shows: a sender starts sending numbered UDP datagrams at a fixed rate (one every \
send_interval_us) to a loopback port; the receiver binds that port receiver_delay_ms later. \
On loopback every datagram sent before the bind is lost and every one sent after it \
arrives, so the loss follows the delay: about receiver_delay_ms × 1000 / send_interval_us \
datagrams (scheduled_before_bind), the first ones. Each datagram is judged by when its send \
call ran against when the bind call ran, on one clock, and the kernel's Udp: NoPorts \
counter counts the same datagrams independently. The unconnected sender (sendto) sees no \
error at all. A connected sender (connect + send) gets ECONNREFUSED from some of its send \
calls.

Why it happens: UDP has no connection and no retransmission. A datagram for a port with no \
socket is dropped on arrival: Linux counts it in /proc/net/snmp (Udp: NoPorts) and answers \
with an ICMP port-unreachable message (RFC 1122 §4.1.3.1). Nothing queues it for a socket \
that may bind later. The ICMP error is reported only to a connected socket, as a pending \
error returned by its next call (udp(7): ECONNREFUSED), so about every other early send of a \
connected socket fails, and the failing call is not the one whose datagram was refused. \
An unconnected socket ignores ICMP errors unless it enables IP_RECVERR. Programs meet this \
when a client starts before its server is up, or a service restarts while peers keep \
sending: the gap is lost at whatever rate they send.

What fixes it: make the receiver tell the sender it is ready (ready-handshake: the sender \
waits for a \"ready\" datagram, with a timeout, before it starts), or make the protocol \
reliable: number the datagrams, acknowledge them, and resend what is unacknowledged until a \
deadline (retransmit). Retransmission can deliver a datagram twice when an acknowledgement \
is slow, so the receiver must drop duplicates by sequence number. Or use TCP, whose \
connect() fails plainly when nobody listens.

With impair the datagrams go through a seeded relay that loses, duplicates, reorders, \
delays or cuts them as a real path may (impair=loss=0.1). The relay is then what sends to \
the receiver's port, so each datagram is judged by the relay's send of it, and the loss is \
split by cause: lost_relay, the sequence numbers the relay dropped or cut short (its record \
lists them, and the same seed drops the same ones), and lost_kernel, the ones the kernel \
lost (no socket yet, a full buffer). The ready handshake ends the early loss but cannot \
bring back what the path loses; retransmission recovers both.";
    const METRICS: &'static [MetricSpec] = METRICS;

    fn validate(params: &Params) -> Result<(), Invalid> {
        let schedule = schedule_length(params);
        if schedule > MAX_SCHEDULE {
            return Err(Invalid::new(
                "count",
                format!(
                    "count × send_interval_us is {} ms; the schedule may last at most {} ms",
                    schedule.as_millis(),
                    MAX_SCHEDULE.as_millis()
                ),
            ));
        }
        let last_send =
            Duration::from_micros(params.send_interval_us.saturating_mul(params.count.saturating_sub(1)));
        let bind = Duration::from_millis(params.receiver_delay_ms);
        if params.mitigation == Mitigation::None && last_send < bind + SENDS_PAST_BIND {
            return Err(Invalid::new(
                "count",
                format!(
                    "the last send is scheduled at {} ms, but the receiver binds at {} ms: the schedule \
                     must go on at least {} ms past the bind (raise count or send_interval_us)",
                    last_send.as_millis(),
                    bind.as_millis(),
                    SENDS_PAST_BIND.as_millis()
                ),
            ));
        }
        check_udp_text(&params.impair)?;
        if params.socket == SocketMode::Connected && impaired(params) {
            return Err(Invalid::new(
                "socket",
                "socket=connected does not apply through impair: the sender's peer is then the relay, \
                 which is always bound, so no ICMP error comes back to become ECONNREFUSED; use socket=unconnected",
            ));
        }
        Ok(())
    }

    async fn run(params: Params, ctx: CaseContext) -> Result<Measured, CaseError> {
        let seed = ctx.seed;
        run_scoped_blocking(params.netns, "the sender and receiver threads", move |scope| {
            experiment(&params, scope, seed)
        })
        .await
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// `count × send_interval_us`.
fn schedule_length(params: &Params) -> Duration {
    Duration::from_micros(params.count.saturating_mul(params.send_interval_us))
}

/// Whether the case runs through a relay (`impair` other than `none`).
fn impaired(params: &Params) -> bool {
    Impairment::parse(&params.impair).is_ok_and(|spec| !spec.is_none())
}

/// What a case recorded at both ends.
#[derive(Default)]
pub struct Measured {
    scope: Scope,
    sent: SendRecord,
    received: Received,
    snmp: UdpCounters,
    /// The relay's record, with `impair`.
    relay: Option<RelayRecord>,
}

/// What the relay recorded, and where its clock stands against the case's.
struct RelayRecord {
    observation: ProxyObservation,
    /// The case's time zero, on the relay's clock: the relay started first.
    offset: Duration,
}

/// A send call, in time since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    started: Duration,
    returned: Duration,
}

/// What the sending end recorded.
#[derive(Default)]
struct SendRecord {
    /// Send calls that succeeded, retransmissions included.
    sent_ok: u64,
    retransmits: u64,
    /// The first successful send of each sequence number that had one.
    first_ok: BTreeMap<u64, Call>,
    /// Failed calls by errno name; `recv ` before the name for failed receives.
    errors: BTreeMap<String, u64>,
    /// When datagram 0 was scheduled: 0, or when "ready" arrived.
    schedule_start: Duration,
    /// With a relay: the sequence number of each successful send, in order. The relay
    /// numbers the datagrams it receives in the same order, so this names them.
    log: Vec<u64>,
}

/// What the receiver got.
#[derive(Default)]
struct Received {
    /// Deliveries per sequence number.
    seen: BTreeMap<u64, u64>,
    /// Every datagram read, whatever it held.
    datagrams: u64,
    /// The bind call; `None` when the receiver never bound.
    bind: Option<Call>,
}

/// The times every part of a case keeps to.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// Time zero: the sender's schedule starts here (without the handshake).
    start: Instant,
    /// Nothing waits or sends past this.
    give_up: Instant,
}

impl Clock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Sleeps until `t` (no-op when it has passed).
fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// The receiver's SO_RCVBUF request: some 5,000 of these datagrams (about 768 bytes of
/// buffer each), a second of the fastest schedule.
const RECEIVER_BUFFER: usize = 4 << 20;
/// Sends listed in the relay's record: every datagram of the largest case, each sent
/// twice, with room for retransmissions.
const RELAY_RECORD_LIMIT: usize = 4 * MAX_DATAGRAMS as usize;
/// Relay sends kept in the report (its totals count all of them).
const RELAY_WRITES_SHOWN: usize = 1000;
/// How long the sender waits, at most, for the relay to take what it sent.
const RELAY_TAKE: Duration = Duration::from_secs(1);
/// How long past its longest hold the relay gets to send what it holds.
const RELAY_MARGIN: Duration = Duration::from_millis(10);

/// Both ends, on the calling thread's network namespace: the sender here, the receiver on
/// a thread of its own; with `impair`, a relay between them on threads of its own.
fn experiment(params: &Params, scope: Scope, seed: u64) -> Result<Measured, CaseError> {
    let impair =
        Impairment::parse(&params.impair).map_err(|e| CaseError::Protocol(format!("impair: {e}")))?;
    let sender = UdpSocket::bind("127.0.0.1:0").context("bind the sender to 127.0.0.1:0")?;
    sender.set_nonblocking(true).context("make the sender non-blocking")?;
    let sender_addr = sender.local_addr().context("read the sender's address")?;
    // A port the OS picked and nobody holds now: bind, read, close.
    let target = {
        let probe = UdpSocket::bind("127.0.0.1:0").context("reserve a port on 127.0.0.1")?;
        probe.local_addr().context("read the reserved port")?
    };
    // Created now, bound later: at the bind time the bind is the receiver's only call.
    let receiver = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .context("create the receiver's socket")?;
    // A large buffer, so a receiver thread that a busy machine keeps waiting does not add
    // overflow (RcvbufErrors) to the loss measured here; the kernel caps it at rmem_max.
    receiver.set_recv_buffer_size(RECEIVER_BUFFER).context("set the receiver's SO_RCVBUF")?;
    // The relay, seeded by the case, is what sends to the receiver's port.
    let relay_clock = Instant::now();
    let config =
        RelayConfig { clock: relay_clock, record_limit: RELAY_RECORD_LIMIT, ..RelayConfig::default() };
    let relay = in_front::<UdpRelay>(target, &params.impair, seed, config)?;
    let send_to = relay.as_ref().map_or(target, UdpRelay::addr);
    if params.socket == SocketMode::Connected {
        sender.connect(send_to).context(format!("connect the sender to {send_to}"))?;
    }
    let snmp_before = read_udp_counters().map_err(|e| CaseError::Protocol(e.to_string()))?;

    let start = Instant::now();
    let bind_at = start + Duration::from_millis(params.receiver_delay_ms);
    let clock = Clock { start, give_up: bind_at + schedule_length(params) + GRACE };
    let sender_done = Arc::new(AtomicBool::new(false));
    let receiving = {
        let sender_done = Arc::clone(&sender_done);
        let params = params.clone();
        std::thread::Builder::new()
            .name("socklab-udp-receiver".into())
            .spawn(move || receive(&params, receiver, target, sender_addr, bind_at, clock, &sender_done))
            .context("start the receiver thread")?
    };
    let mut send = Sender {
        socket: sender,
        target: send_to,
        receiver: target,
        mode: params.socket,
        clock,
        record: SendRecord::default(),
        log_sends: relay.is_some(),
    };
    let sent = drive_sender(params, &mut send);
    if let Some(relay) = &relay {
        settle(relay, send.record.sent_ok, &impair, clock.give_up);
    }
    sender_done.store(true, Ordering::Release);
    let received = receiving
        .join()
        .map_err(|_| CaseError::Task { task: "the receiver thread", what: "panicked".into() })??;
    sent?;
    // Read while the sender's socket (and the relay's) still exist: an acknowledgement
    // that reaches one now is queued for it, not counted as NoPorts.
    let snmp = read_udp_counters().map_err(|e| CaseError::Protocol(e.to_string()))?.since(&snmp_before);
    let relay = relay.map(|relay| RelayRecord {
        observation: relay.observation(),
        offset: start.saturating_duration_since(relay_clock),
    });
    Ok(Measured { scope, sent: send.record, received, snmp, relay })
}

/// Waits until the relay has taken every datagram sent (at most [`RELAY_TAKE`]), then for
/// as long as it may hold one (its longest delay, a reorder's flush) and a margin, so the
/// receiver stops reading only after the relay sent what it had.
fn settle(relay: &UdpRelay, sent: u64, impair: &Impairment, give_up: Instant) {
    let taken = |relay: &UdpRelay| relay.observation().connections.first().map_or(0, |flow| flow.up.reads_in);
    let deadline = (Instant::now() + RELAY_TAKE).min(give_up);
    // Bounded by the deadline; each pass sleeps 1 ms.
    while taken(relay) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let longest_delay = impair.delay.map_or(Duration::ZERO, |delay| delay.max);
    let flush = if impair.reorder.is_some() { REORDER_FLUSH } else { Duration::ZERO };
    sleep_until((Instant::now() + longest_delay + flush + RELAY_MARGIN).min(give_up));
}

/// The sending end.
struct Sender {
    socket: UdpSocket,
    /// Where it sends: the receiver's port, or the relay.
    target: SocketAddr,
    /// The receiver's port, where "ready" comes from.
    receiver: SocketAddr,
    mode: SocketMode,
    clock: Clock,
    record: SendRecord,
    /// Whether to log each send's sequence number (for the relay's record).
    log_sends: bool,
}

/// Most datagrams [`Sender::drain`] takes in one call.
const MAX_DRAIN: usize = 4096;

impl Sender {
    /// Sends datagram `seq` and stamps the call; a failed send is counted by errno,
    /// never fatal (the application goes on with its schedule).
    fn send(&mut self, seq: u64) {
        let payload = encode(DATA, seq);
        let started = self.clock.now();
        let result = match self.mode {
            SocketMode::Unconnected => self.socket.send_to(&payload, self.target),
            SocketMode::Connected => self.socket.send(&payload),
        };
        let returned = self.clock.now();
        match result {
            Ok(_) => {
                self.record.sent_ok += 1;
                self.record.first_ok.entry(seq).or_insert(Call { started, returned });
                if self.log_sends {
                    self.record.log.push(seq);
                }
            }
            Err(e) => *self.record.errors.entry(error_name(&e)).or_default() += 1,
        }
    }

    /// Takes what the receiver sent without waiting, and hands the sequence number of
    /// each datagram of `kind` to `got`. Errors a connected socket reports on receive (a
    /// pending ECONNREFUSED, cleared by reporting it) are counted.
    fn drain(&mut self, kind: u8, mut got: impl FnMut(u64)) {
        let mut buf = [0u8; PAYLOAD_LEN];
        for _ in 0..MAX_DRAIN {
            match recv_datagram(&self.socket, &mut buf, libc::MSG_DONTWAIT) {
                Ok(d)
                    if (d.from == Some(self.target) || d.from == Some(self.receiver))
                        && d.len == PAYLOAD_LEN =>
                {
                    if let Some((k, seq)) = decode(&buf)
                        && k == kind
                    {
                        got(seq);
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => *self.record.errors.entry(format!("recv {}", error_name(&e))).or_default() += 1,
            }
        }
    }
}

/// When datagram `seq` is due, `begin` being when datagram 0 was.
fn due(params: &Params, begin: Instant, seq: u64) -> Instant {
    begin + Duration::from_micros(params.send_interval_us.saturating_mul(seq))
}

fn drive_sender(params: &Params, send: &mut Sender) -> Result<(), CaseError> {
    let clock = send.clock;
    match params.mitigation {
        Mitigation::None => {
            // On schedule; a sender that fell behind catches up at once, so the number
            // sent by any time is what the rate says.
            for seq in 0..params.count {
                sleep_until(due(params, clock.start, seq));
                send.send(seq);
            }
        }
        Mitigation::ReadyHandshake => {
            let mut ready = false;
            // Bounded by give_up; each pass drains or sleeps.
            while !ready && Instant::now() < clock.give_up {
                send.drain(READY, |_| ready = true);
                if !ready {
                    std::thread::sleep(IDLE);
                }
            }
            if !ready {
                return Err(CaseError::Protocol(format!(
                    "no \"ready\" from the receiver within {} ms",
                    clock.give_up.saturating_duration_since(clock.start).as_millis()
                )));
            }
            // Nothing went out early: the schedule starts now.
            let begin = Instant::now();
            send.record.schedule_start = begin - clock.start;
            for seq in 0..params.count {
                sleep_until(due(params, begin, seq));
                send.send(seq);
            }
        }
        Mitigation::Retransmit => retransmit(params, send),
    }
    Ok(())
}

/// Sends on schedule and resends unacknowledged datagrams every [`RETRANSMIT_EVERY`],
/// until all are acknowledged or `give_up`.
fn retransmit(params: &Params, send: &mut Sender) {
    let clock = send.clock;
    let mut acked = BTreeSet::new();
    let mut next = 0u64;
    let mut resend_at = clock.start + RETRANSMIT_EVERY;
    // Bounded by give_up; each pass sends one datagram, resends a round, or sleeps.
    while Instant::now() < clock.give_up {
        send.drain(ACK, |seq| {
            acked.insert(seq);
        });
        if next == params.count && acked.len() as u64 == params.count {
            return;
        }
        let now = Instant::now();
        let next_due = (next < params.count).then(|| due(params, clock.start, next));
        if next_due.is_some_and(|t| now >= t) {
            send.send(next);
            next += 1;
            continue;
        }
        if now >= resend_at {
            let missing: Vec<u64> = (0..next).filter(|s| !acked.contains(s)).take(RESEND_PER_ROUND).collect();
            for seq in missing {
                send.record.retransmits += 1;
                send.send(seq);
            }
            resend_at = now + RETRANSMIT_EVERY;
            continue;
        }
        // Short sleeps, so acknowledgements are taken before they fill the socket.
        let wake = next_due.map_or(resend_at, |t| t.min(resend_at)).min(clock.give_up);
        sleep_until(wake.min(Instant::now() + Duration::from_millis(1)));
    }
}

/// How long the receiver goes on reading once the sender is done and the queue is
/// empty: a datagram whose send has returned is normally queued already on loopback, but
/// the kernel may finish delivering it a little later (a deferred softirq).
const DRAIN: Duration = Duration::from_millis(10);

/// Binds at `bind_at`, stamping the call; then reads (acknowledging with `retransmit`,
/// after saying "ready" with `ready-handshake`) until the sender is done and nothing more
/// comes, or `give_up`.
fn receive(
    params: &Params,
    socket: Socket,
    target: SocketAddr,
    sender_addr: SocketAddr,
    bind_at: Instant,
    clock: Clock,
    sender_done: &AtomicBool,
) -> Result<Received, CaseError> {
    sleep_until(bind_at);
    let started = clock.now();
    let bound = socket.bind(&target.into());
    let returned = clock.now();
    bound.context(format!("bind the receiver to the reserved port {target} (another process took it?)"))?;
    let socket: UdpSocket = socket.into();
    let mut received = Received { bind: Some(Call { started, returned }), ..Received::default() };
    if params.mitigation == Mitigation::ReadyHandshake {
        socket.send_to(&encode(READY, 0), sender_addr).context(format!("send \"ready\" to {sender_addr}"))?;
    }
    let mut buf = [0u8; PAYLOAD_LEN];
    let mut stop_at = None;
    // Bounded by give_up; each pass reads one datagram or sleeps.
    while Instant::now() < clock.give_up {
        match recv_datagram(&socket, &mut buf, libc::MSG_DONTWAIT) {
            Ok(d) => {
                received.datagrams += 1;
                let Some((DATA, seq)) =
                    decode(&buf[..d.len.min(PAYLOAD_LEN)]).filter(|_| d.len == PAYLOAD_LEN)
                else {
                    continue;
                };
                if seq >= params.count {
                    continue;
                }
                *received.seen.entry(seq).or_default() += 1;
                if params.mitigation == Mitigation::Retransmit
                    && let Some(from) = d.from
                {
                    socket.send_to(&encode(ACK, seq), from).context(format!("acknowledge to {from}"))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if sender_done.load(Ordering::Acquire) {
                    let stop = *stop_at.get_or_insert_with(|| Instant::now() + DRAIN);
                    if Instant::now() >= stop {
                        break;
                    }
                }
                std::thread::sleep(IDLE);
            }
            Err(e) => return Err(CaseError::Io { context: "receive a datagram".into(), error: e }),
        }
    }
    Ok(received)
}

fn encode(kind: u8, seq: u64) -> [u8; PAYLOAD_LEN] {
    let mut payload = [0u8; PAYLOAD_LEN];
    payload[0] = kind;
    payload[8..16].copy_from_slice(&seq.to_be_bytes());
    payload[16..].copy_from_slice(b"socklab-early-s.");
    payload
}

fn decode(bytes: &[u8]) -> Option<(u8, u64)> {
    if bytes.len() != PAYLOAD_LEN {
        return None;
    }
    let seq = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
    Some((bytes[0], seq))
}

/// Each datagram judged by its first successful send against the bind call.
#[derive(Debug, Default, PartialEq)]
struct Judged {
    sent_before: u64,
    lost_before: u64,
    sent_after: u64,
    lost_after: u64,
    sent_during: u64,
    /// The latest `returned` of a lost datagram, relative to the bind call's start.
    last_lost_sent_at: Option<f64>,
    /// The earliest `started` of a delivered datagram, relative to the bind call's start.
    first_delivered_sent_at: Option<f64>,
}

/// Each datagram judged by its first send call that put it on its way to the receiver's
/// port (`first`: the sender's, or with a relay the relay's) against the bind call.
fn judge(first: &BTreeMap<u64, Call>, received: &Received) -> Judged {
    let mut j = Judged::default();
    let relative =
        |t: Duration, bind: Option<Call>| bind.map(|b| (t.as_secs_f64() - b.started.as_secs_f64()) * 1e3);
    for (seq, call) in first {
        let delivered = received.seen.contains_key(seq);
        match received.bind {
            // A receiver that never bound: everything went before a bind that never came.
            None => {
                j.sent_before += 1;
                j.lost_before += u64::from(!delivered);
            }
            Some(b) if call.returned < b.started => {
                j.sent_before += 1;
                j.lost_before += u64::from(!delivered);
            }
            Some(b) if call.started > b.returned => {
                j.sent_after += 1;
                j.lost_after += u64::from(!delivered);
            }
            Some(_) => j.sent_during += 1,
        }
        if delivered {
            if let Some(at) = relative(call.started, received.bind) {
                j.first_delivered_sent_at = Some(j.first_delivered_sent_at.map_or(at, |f: f64| f.min(at)));
            }
        } else if let Some(at) = relative(call.returned, received.bind) {
            j.last_lost_sent_at = Some(j.last_lost_sent_at.map_or(at, |l: f64| l.max(at)));
        }
    }
    j
}

/// What the relay did to the sender's datagrams, by sequence number.
#[derive(Debug, Default, PartialEq)]
struct Relayed {
    /// Datagrams it received from the sender.
    received: u64,
    /// Whether its record lists every drop, cut and send (none counted but left out).
    complete: bool,
    /// Its first whole send of each sequence number, on the case clock.
    first_whole: BTreeMap<u64, Call>,
    /// Sequence numbers every copy of which it dropped or cut short.
    lost: BTreeSet<u64>,
    /// Its sends towards the receiver's port, copies included.
    forwarded: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    truncated: u64,
}

/// The relay's record of the sender's flow, in sequence numbers: the relay numbers the
/// datagrams it receives in arrival order, which on loopback is the order of the
/// sender's successful sends (`log`). `offset` is the case's time zero on the relay's
/// clock.
fn relayed(proxy: &ProxyObservation, log: &[u64], offset: Duration) -> Relayed {
    let Some(flow) = proxy.connections.first() else { return Relayed::default() };
    let up = &flow.up;
    let mut r = Relayed {
        received: up.reads_in,
        complete: proxy.connections.len() == 1
            && proxy.connections_left_out == 0
            && up.dropped.left_out() == 0
            && up.truncated.left_out() == 0
            && up.output_writes.left_out() == 0,
        forwarded: up.writes_out,
        dropped: up.dropped.total,
        duplicated: up.duplicated.total,
        reordered: up.reordered.total,
        truncated: up.truncated.total,
        ..Relayed::default()
    };
    let seq_of = |index: u64| usize::try_from(index).ok().and_then(|i| log.get(i)).copied();
    let offset_us = offset.as_secs_f64() * 1e6;
    let case_time = |us: f64| Duration::from_secs_f64((us - offset_us).max(0.0) / 1e6);
    // Listed in the order they were made, so the first whole send of each comes first.
    for write in up.output_writes.first.iter().filter(|w| w.len == PAYLOAD_LEN) {
        if let Some(seq) = write.datagram.and_then(seq_of) {
            let returned = write.at_us + write.took_us.unwrap_or(0.0);
            r.first_whole
                .entry(seq)
                .or_insert(Call { started: case_time(write.at_us), returned: case_time(returned) });
        }
    }
    // Per sequence number: copies the relay received, and how many it dropped or cut.
    let mut copies: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for &seq in log.iter().take(usize::try_from(up.reads_in).unwrap_or(usize::MAX)) {
        copies.entry(seq).or_default().0 += 1;
    }
    for &index in up.dropped.first.iter().chain(&up.truncated.first) {
        if let Some(seq) = seq_of(index) {
            copies.entry(seq).or_default().1 += 1;
        }
    }
    r.lost = copies
        .into_iter()
        .filter(|(_, (taken, killed))| *taken > 0 && killed >= taken)
        .map(|(seq, _)| seq)
        .collect();
    r
}

/// Sequence numbers whose scheduled time fell before the bind call started.
fn scheduled_before(params: &Params, sent: &SendRecord, bind: Call) -> u64 {
    let Some(window) = bind.started.checked_sub(sent.schedule_start) else { return 0 };
    let interval = params.send_interval_us.max(1) as u128;
    // k × interval < window  ⇔  k < ceil(window / interval)
    let n = window.as_micros().div_ceil(interval);
    n.min(params.count as u128) as u64
}

/// What the metrics and checks are computed from: both ends' records, each datagram
/// judged by the send that put it on its way to the receiver's port.
struct Tally {
    count: u64,
    delivered: u64,
    /// Sequence numbers never delivered, whatever lost them.
    lost: u64,
    duplicates: u64,
    /// Failed send calls (failed receives not counted).
    send_errors: u64,
    refused: u64,
    never_sent: u64,
    /// With a relay: what it did, by sequence number.
    relay: Option<Relayed>,
    judged: Judged,
    private: bool,
    /// With a relay: sequence numbers lost because it dropped or cut every copy, and
    /// the rest, which the kernel lost.
    lost_by: Option<(u64, u64)>,
}

impl Tally {
    fn new(params: &Params, m: &Measured) -> Self {
        let (send, received) = (&m.sent, &m.received);
        let count = params.count;
        let delivered = received.seen.len() as u64;
        let lost = count.saturating_sub(delivered);
        // With a relay, what reached the receiver's port is the relay's sends: judge those.
        let relay = m.relay.as_ref().map(|r| relayed(&r.observation, &send.log, r.offset));
        let judged = judge(relay.as_ref().map_or(&send.first_ok, |r| &r.first_whole), received);
        let lost_by = relay.as_ref().map(|r| {
            let by_relay = r.lost.iter().filter(|seq| !received.seen.contains_key(seq)).count() as u64;
            (by_relay, lost - by_relay)
        });
        Tally {
            count,
            delivered,
            lost,
            duplicates: received.seen.values().map(|n| n - 1).sum(),
            send_errors: send.errors.iter().filter(|(k, _)| !k.starts_with("recv ")).map(|(_, n)| n).sum(),
            refused: send.errors.get("ECONNREFUSED").copied().unwrap_or(0),
            never_sent: count.saturating_sub(send.first_ok.len() as u64),
            relay,
            judged,
            private: m.scope == Scope::Private,
            lost_by,
        }
    }
}

/// Every failed call by errno, or `no errors`.
fn errors_text(send: &SendRecord) -> String {
    if send.errors.is_empty() {
        "no errors".to_string()
    } else {
        send.errors.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
    }
}

impl Tally {
    /// The sends that overlapped the bind call, when there were any.
    fn during(&self) -> String {
        match self.judged.sent_during {
            0 => String::new(),
            n => format!("; {n} overlapped the bind call, not judged"),
        }
    }

    /// Whose send call put a datagram on its way to the receiver's port.
    fn whose(&self) -> &'static str {
        if self.relay.is_some() { "whose send from the relay" } else { "whose send" }
    }

    /// What the relay lost, when there was one.
    fn relay_note(&self) -> String {
        match (&self.relay, self.lost_by) {
            (Some(r), Some((by_relay, _))) => format!(
                "; the relay dropped {} and cut short {} (not judged here), {by_relay} sequence numbers lost to it",
                r.dropped, r.truncated
            ),
            _ => String::new(),
        }
    }
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let t = Tally::new(params, m);
    let mut outcome = CaseOutcome::default();
    add_metrics(&mut outcome, params, m, &t);
    match params.mitigation {
        Mitigation::None => {
            if params.receiver_delay_ms > 0 {
                outcome.checks.push(pre_bind_lost(m, &t));
            }
            outcome.checks.push(post_bind_delivered(m, &t));
            outcome.checks.extend(socket_check(params, m, &t));
        }
        // The handshake ends the early loss; it cannot bring back what the relay drops.
        Mitigation::ReadyHandshake if t.relay.is_some() => {
            outcome.checks.push(none_lost_but_to_the_relay(m, &t))
        }
        Mitigation::ReadyHandshake | Mitigation::Retransmit => outcome.checks.push(none_lost(params, m, &t)),
    }
    if let Some(r) = &t.relay {
        outcome.checks.push(relay_loss_attributed(m, r));
    }
    if t.private {
        outcome.checks.push(kernel_agrees(m, &t));
    }
    if let Some(record) = &m.relay {
        outcome.observations.proxy = Some(proxy_shown(record));
    }
    outcome
}

fn add_metrics(outcome: &mut CaseOutcome, params: &Params, m: &Measured, t: &Tally) {
    let (send, received, j) = (&m.sent, &m.received, &t.judged);
    outcome.metric(metric::datagrams, t.count as f64).key_metric(metric::lost, t.lost as f64);
    if let Some(bind) = received.bind {
        outcome.key_metric(metric::scheduled_before_bind, scheduled_before(params, send, bind) as f64);
    }
    outcome
        .key_metric(metric::lost_after_bind, j.lost_after as f64)
        .key_metric(metric::delivered, t.delivered as f64)
        .key_metric(metric::sent, send.sent_ok as f64)
        .metric(metric::sent_before_bind, j.sent_before as f64)
        .metric(metric::sent_after_bind, j.sent_after as f64)
        .metric(metric::sent_during_bind, j.sent_during as f64)
        .metric(metric::never_sent, t.never_sent as f64)
        .metric(metric::lost_before_bind, j.lost_before as f64)
        .metric(metric::send_errors, t.send_errors as f64)
        .key_metric(metric::send_errors_econnrefused, t.refused as f64);
    if let Some(at) = j.last_lost_sent_at {
        outcome.metric(metric::last_lost_sent_at, at);
    }
    if let Some(at) = j.first_delivered_sent_at {
        outcome.metric(metric::first_delivered_sent_at, at);
    }
    if let Some(first) = received.seen.keys().next() {
        outcome.metric(metric::first_delivered_seq, *first as f64);
    }
    outcome
        .metric(metric::duplicates, t.duplicates as f64)
        .metric(metric::retransmits, send.retransmits as f64);
    if let Some(bind) = received.bind {
        outcome.metric(metric::bound_at, bind.started.as_secs_f64() * 1e3);
    }
    outcome
        .key_metric(metric::no_ports_snmp, m.snmp.no_ports as f64)
        .metric(metric::private_netns, if t.private { 1.0 } else { 0.0 });
    if let (Some(r), Some((by_relay, by_kernel))) = (&t.relay, t.lost_by) {
        outcome
            .metric(metric::relay_forwarded, r.forwarded as f64)
            .key_metric(metric::relay_dropped, r.dropped as f64)
            .metric(metric::relay_duplicated, r.duplicated as f64)
            .metric(metric::relay_reordered, r.reordered as f64)
            .metric(metric::relay_truncated, r.truncated as f64)
            .key_metric(metric::lost_relay, by_relay as f64)
            .key_metric(metric::lost_kernel, by_kernel as f64);
    }
}

/// No mitigation: every datagram sent before the bind is lost.
fn pre_bind_lost(m: &Measured, t: &Tally) -> Check {
    let j = &t.judged;
    Check::new(
        "pre_bind_lost",
        format!("every datagram {} returned before the bind lost (at least one such)", t.whose()),
        format!(
            "{} sent before the bind, {} of them lost{}{}",
            j.sent_before,
            j.lost_before,
            t.during(),
            t.relay_note()
        ),
        m.received.bind.is_some() && j.sent_before >= 1 && j.lost_before == j.sent_before,
        "no socket was bound to the port, so each early datagram was dropped on arrival",
    )
}

/// No mitigation: every datagram sent after the bind arrives.
fn post_bind_delivered(m: &Measured, t: &Tally) -> Check {
    let j = &t.judged;
    let not_sent = if t.never_sent > 0 {
        format!("; {} never left (send failed: {})", t.never_sent, errors_text(&m.sent))
    } else {
        String::new()
    };
    Check::new(
        "post_bind_delivered",
        format!("every datagram {} started after the bind delivered (at least one such)", t.whose()),
        format!(
            "{} sent after the bind, {} of them lost{}{not_sent}{}",
            j.sent_after,
            j.lost_after,
            t.during(),
            t.relay_note()
        ),
        j.sent_after >= 1 && j.lost_after == 0,
        "on loopback nothing is lost once a socket is bound and reading",
    )
}

/// No mitigation: what the sender's socket is told about the loss (an unconnected one
/// nothing, a connected one ECONNREFUSED); nothing to judge through a relay, which is
/// always bound.
fn socket_check(params: &Params, m: &Measured, t: &Tally) -> Option<Check> {
    let send = &m.sent;
    match params.socket {
        SocketMode::Unconnected if t.relay.is_none() => Some(Check::new(
            "loss_is_silent",
            "every send call succeeds, the lost ones too",
            format!("{} send calls, {}", send.sent_ok + t.send_errors, errors_text(send)),
            send.sent_ok >= 1 && t.send_errors == 0,
            "an unconnected socket is not told about the ICMP port-unreachable its early datagrams caused",
        )),
        SocketMode::Connected if params.receiver_delay_ms > 0 && t.count >= 2 => Some(Check::new(
            "econnrefused_seen",
            "at least one send fails with ECONNREFUSED",
            errors_text(send),
            t.refused >= 1,
            "the ICMP port-unreachable for an early datagram is reported to the connected \
             socket as ECONNREFUSED on its next call",
        )),
        SocketMode::Unconnected | SocketMode::Connected => None,
    }
}

/// The ready handshake through a relay: nothing lost but what the relay lost.
fn none_lost_but_to_the_relay(m: &Measured, t: &Tally) -> Check {
    let (by_relay, by_kernel) = t.lost_by.unwrap_or_default();
    Check::new(
        "none_lost",
        format!(
            "all {} datagrams delivered but those the relay dropped or cut (at least one delivered)",
            t.count
        ),
        format!(
            "{} delivered, {by_relay} lost to the relay, {by_kernel} to the kernel; \
             {} duplicates; errors: {}",
            t.delivered,
            t.duplicates,
            errors_text(&m.sent)
        ),
        t.delivered >= 1 && by_kernel == 0,
        "the sender sent nothing until the receiver said it was bound, so only the relay lost any",
    )
}

/// A mitigation: nothing lost.
fn none_lost(params: &Params, m: &Measured, t: &Tally) -> Check {
    Check::new(
        "none_lost",
        format!("all {} datagrams delivered", t.count),
        format!(
            "{} delivered, {} duplicates, {} retransmits; errors: {}{}",
            t.delivered,
            t.duplicates,
            m.sent.retransmits,
            errors_text(&m.sent),
            t.relay_note()
        ),
        t.delivered == t.count,
        if params.mitigation == Mitigation::ReadyHandshake {
            "the sender sent nothing until the receiver said it was bound"
        } else {
            "unacknowledged datagrams were resent until the bound receiver acknowledged them"
        },
    )
}

/// The relay's record, matched to the sender's sends, accounts for what it lost.
fn relay_loss_attributed(m: &Measured, r: &Relayed) -> Check {
    let send = &m.sent;
    let arrived_anyway = r.lost.iter().filter(|seq| m.received.seen.contains_key(seq)).count();
    let cut =
        if r.complete { String::new() } else { "; its record was cut short, so some are unnamed".into() };
    let passed = send.sent_ok >= 1 && r.received == send.sent_ok && r.complete && arrived_anyway == 0;
    Check::new(
        "relay_loss_attributed",
        "the relay took every datagram sent, and none it dropped or cut short (every copy) arrived",
        format!(
            "the relay took {} of {} datagrams sent; dropped {}, cut short {}, sent {} twice; \
             {} sequence numbers lost to it, {arrived_anyway} of them arrived{cut}",
            r.received,
            send.sent_ok,
            r.dropped,
            r.truncated,
            r.duplicated,
            r.lost.len()
        ),
        passed,
        if r.received < send.sent_ok {
            "the kernel dropped datagrams on their way to the relay (its socket overflowed), so its \
             record cannot name sequence numbers: raise send_interval_us"
        } else {
            "the relay's record names each datagram it dropped; matched to the sender's sends in \
             order, those are the sequence numbers missing for that reason"
        },
    )
}

/// In a private namespace: Udp: NoPorts counts exactly the datagrams sent to the port
/// and not read.
fn kernel_agrees(m: &Measured, t: &Tally) -> Check {
    let read = m.received.datagrams;
    let (expected, reached, what) = match &t.relay {
        Some(r) => (
            "Udp: NoPorts = datagrams the relay sent on − datagrams read (exact: private network namespace)",
            r.forwarded,
            "the relay sent on",
        ),
        None => (
            "Udp: NoPorts = send calls that succeeded − datagrams read (exact: private network namespace)",
            m.sent.sent_ok,
            "sent",
        ),
    };
    Check::new(
        "kernel_agrees",
        expected,
        format!(
            "NoPorts {}, {reached} {what}, {read} read, RcvbufErrors {}",
            m.snmp.no_ports, m.snmp.rcvbuf_errors
        ),
        reached >= 1 && reached.checked_sub(read) == Some(m.snmp.no_ports),
        "every datagram sent to the receiver's port either found no socket (counted by the kernel) or was read",
    )
}

/// The relay's record as the report lists it: its first sends (its totals count them all).
fn proxy_shown(record: &RelayRecord) -> ProxyObservation {
    let mut observation = record.observation.clone();
    for flow in &mut observation.connections {
        for d in [&mut flow.up, &mut flow.down] {
            d.output_writes.first.truncate(RELAY_WRITES_SHOWN);
            d.input_chunks.first.truncate(RELAY_WRITES_SHOWN);
        }
    }
    observation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_foreign_bytes_are_ignored() {
        assert_eq!(decode(&encode(DATA, 42)), Some((DATA, 42)));
        assert_eq!(decode(&encode(ACK, u64::MAX)), Some((ACK, u64::MAX)));
        assert_eq!(decode(b"short"), None);
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn datagrams_are_judged_by_their_send_call_against_the_bind_call() {
        let call = |started, returned| Call { started: ms(started), returned: ms(returned) };
        let mut sent = SendRecord::default();
        sent.first_ok.insert(0, call(0, 1)); // before, lost
        sent.first_ok.insert(1, call(9, 10)); // overlaps the bind: not judged
        sent.first_ok.insert(2, call(12, 13)); // after, delivered
        sent.first_ok.insert(3, call(13, 14)); // after, lost
        let mut received = Received { bind: Some(call(10, 11)), ..Received::default() };
        received.seen.insert(2, 1);
        let j = judge(&sent.first_ok, &received);
        assert_eq!((j.sent_before, j.lost_before), (1, 1));
        assert_eq!((j.sent_after, j.lost_after), (2, 1));
        assert_eq!(j.sent_during, 1);
        assert_eq!(j.last_lost_sent_at, Some(4.0));
        assert_eq!(j.first_delivered_sent_at, Some(2.0));
    }

    #[test]
    fn the_rate_predicts_how_many_were_scheduled_before_the_bind() {
        let params = Params { count: 100, send_interval_us: 1000, ..Params::default() };
        let sent = SendRecord::default();
        let at = |started| Call { started, returned: started };
        // Sends at 0, 1, ..., 19 ms come before a bind at 19.5 ms; the one at 20 ms does not.
        assert_eq!(scheduled_before(&params, &sent, at(Duration::from_micros(19_500))), 20);
        assert_eq!(scheduled_before(&params, &sent, at(ms(20))), 20);
        assert_eq!(scheduled_before(&params, &sent, at(Duration::ZERO)), 0);
        assert_eq!(scheduled_before(&params, &sent, at(ms(500))), 100, "capped at count");
        let late_start = SendRecord { schedule_start: ms(30), ..SendRecord::default() };
        assert_eq!(scheduled_before(&params, &late_start, at(ms(20))), 0, "handshake: nothing before");
    }
}
