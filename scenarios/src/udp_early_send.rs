//! `udp-early-send`: datagrams sent before the receiver binds are gone.
//!
//! A sender sends `before` numbered datagrams to a loopback port nobody has bound yet;
//! the receiver binds that port `receiver_delay_ms` after the start (and after those
//! sends); then the sender sends `after` more. The receiver records which sequence
//! numbers arrived. Two mitigations can be switched on: a ready handshake (the receiver
//! says it is bound; the sender waits for that) and retransmission (the receiver
//! acknowledges each number; the sender resends what is unacknowledged until a deadline).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socklab_harness::check::Check;
use socklab_harness::metric::Better;
use socklab_harness::net::error_name;
use socklab_harness::params::{ParamKind, ParamSpec};
use socklab_harness::report::{MetricSpec, Unit};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// The scenario; see the module docs.
pub struct UdpEarlySend;

/// How the sender addresses the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketMode {
    /// `sendto` on an unconnected socket: ICMP errors are not reported to it.
    Unconnected,
    /// `connect` then `send`: an ICMP port-unreachable turns into `ECONNREFUSED` on a
    /// later call.
    Connected,
}

/// What the sender does about the receiver not being there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mitigation {
    /// Nothing: send and hope.
    None,
    /// Wait for a "ready" datagram from the receiver before sending anything.
    ReadyHandshake,
    /// Resend every unacknowledged datagram every 10 ms until acknowledged or a deadline.
    Retransmit,
}

/// Parameters of `udp-early-send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Datagrams the sender sends before the receiver binds.
    pub before: u64,
    /// Datagrams the sender sends once the receiver is bound.
    pub after: u64,
    /// When the receiver binds, in milliseconds after the start (never before the
    /// `before` sends are done).
    pub receiver_delay_ms: u64,
    /// `unconnected` (sendto) or `connected` (connect + send).
    pub socket: SocketMode,
    /// `none`, `ready-handshake` or `retransmit`.
    pub mitigation: Mitigation,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            before: 100,
            after: 100,
            receiver_delay_ms: 10,
            socket: SocketMode::Unconnected,
            mitigation: Mitigation::None,
        }
    }
}

const MAX_DATAGRAMS: u64 = 10_000;
/// Retransmission period of the `retransmit` mitigation.
const RETRANSMIT_EVERY: Duration = Duration::from_millis(10);
/// How long past the receiver's bind the sender keeps retransmitting or waiting for
/// "ready", and the receiver keeps listening.
const GRACE: Duration = Duration::from_secs(3);
/// How long the receiver waits for stragglers once the sender says it is done.
const DRAIN: Duration = Duration::from_millis(50);
/// At most this many datagrams are resent per retransmission round.
const RESEND_PER_ROUND: usize = 1024;

const DATA: u8 = 1;
const READY: u8 = 2;
const ACK: u8 = 3;
const PAYLOAD_LEN: usize = 32;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "before",
        kind: ParamKind::Integer { min: 0, max: MAX_DATAGRAMS },
        unit: Some("datagrams"),
        doc: "datagrams sent before the receiver binds",
    },
    ParamSpec {
        name: "after",
        kind: ParamKind::Integer { min: 0, max: MAX_DATAGRAMS },
        unit: Some("datagrams"),
        doc: "datagrams sent once the receiver is bound",
    },
    ParamSpec {
        name: "receiver_delay_ms",
        kind: ParamKind::Integer { min: 0, max: 5_000 },
        unit: Some("ms"),
        doc: "the receiver binds this long after the start (and after the early sends)",
    },
    ParamSpec {
        name: "socket",
        kind: ParamKind::Choice { options: &["unconnected", "connected"] },
        unit: None,
        doc: "unconnected (sendto) or connected (connect + send; ICMP errors become ECONNREFUSED)",
    },
    ParamSpec {
        name: "mitigation",
        kind: ParamKind::Choice { options: &["none", "ready-handshake", "retransmit"] },
        unit: None,
        doc: "none; ready-handshake (wait for the receiver's \"ready\"); retransmit (resend until acked)",
    },
];

const METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "datagrams",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "distinct sequence numbers (before + after)",
    },
    MetricSpec {
        name: "sent",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "send calls that succeeded, retransmissions included",
    },
    MetricSpec {
        name: "delivered",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "distinct sequence numbers the receiver got",
    },
    MetricSpec {
        name: "lost_before_bind",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "sequence numbers of the early sends never delivered",
    },
    MetricSpec {
        name: "lost_after_bind",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "sequence numbers of the later sends never delivered",
    },
    MetricSpec {
        name: "send_errors",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "send calls that failed, any errno",
    },
    MetricSpec {
        name: "send_errors_econnrefused",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "send calls that failed with ECONNREFUSED",
    },
    MetricSpec {
        name: "first_delivered_seq",
        unit: Unit::Count,
        better: Better::Neither,
        doc: "lowest sequence number delivered (absent when none was)",
    },
    MetricSpec {
        name: "duplicates",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "datagrams delivered more than once",
    },
    MetricSpec {
        name: "retransmits",
        unit: Unit::Count,
        better: Better::Lower,
        doc: "resends by the retransmit mitigation",
    },
    MetricSpec {
        name: "bound_at",
        unit: Unit::Millis,
        better: Better::Neither,
        doc: "when the receiver bound, since the start",
    },
];

impl Scenario for UdpEarlySend {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "udp-early-send";
    const SUMMARY: &'static str =
        "UDP datagrams sent before the receiver binds are lost without a trace; mitigations";
    const EXPLANATION: &'static str = "\
What it shows: a sender sends numbered UDP datagrams to a loopback port before any socket \
is bound to it, then the receiver binds and the sender sends more. On loopback every \
datagram sent before the bind is lost and every one sent after it arrives. The unconnected \
sender (sendto) sees no error at all. A connected sender (connect + send) gets ECONNREFUSED \
from some of its send calls.

Why it happens: UDP has no connection and no retransmission. A datagram for a port with no \
socket is dropped on arrival: Linux counts it in /proc/net/snmp (Udp: NoPorts) and answers \
with an ICMP port-unreachable message (RFC 1122 §4.1.3.1). Nothing queues it for a socket \
that may bind later. The ICMP error is reported only to a connected socket, as a pending \
error returned by its next call (udp(7): ECONNREFUSED), so about every other early send of a \
connected socket fails, and the failing call is not the one whose datagram was refused. \
An unconnected socket ignores ICMP errors unless it enables IP_RECVERR.

What fixes it: make the receiver tell the sender it is ready (ready-handshake: the sender \
waits for a \"ready\" datagram, with a timeout), or make the protocol reliable: number the \
datagrams, acknowledge them, and resend what is unacknowledged until a deadline \
(retransmit). Retransmission can deliver a datagram twice when an acknowledgement is slow, \
so the receiver must drop duplicates by sequence number. Or use TCP, whose connect() fails \
plainly when nobody listens.";
    const PARAMS: &'static [ParamSpec] = PARAMS;
    const METRICS: &'static [MetricSpec] = METRICS;

    fn validate(params: &Params) -> Result<(), String> {
        if params.before + params.after == 0 {
            return Err("before + after is 0; send at least one datagram".into());
        }
        Ok(())
    }

    async fn run(params: Params, _ctx: CaseContext) -> Result<Measured, CaseError> {
        let start = Instant::now();
        let sender = UdpSocket::bind("127.0.0.1:0").await.context("bind the sender to 127.0.0.1:0")?;
        let sender_addr = sender.local_addr().context("read the sender's address")?;
        // A port the OS picked and nobody holds now: bind, read, close.
        let target = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").context("reserve a port on 127.0.0.1")?;
            probe.local_addr().context("read the reserved port")?
        };
        if params.socket == SocketMode::Connected {
            sender.connect(target).await.context(format!("connect the sender to {target}"))?;
        }
        let (early_done_tx, early_done_rx) = oneshot::channel();
        let (bound_tx, bound_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let receiver = tokio::spawn(receive(
            params.clone(),
            target,
            sender_addr,
            start,
            Signals { early_done: early_done_rx, bound: bound_tx, sender_done: done_rx },
        ));
        let mut send = Sender::new(sender, target, params.socket);
        let sent = drive_sender(&params, &mut send, start, early_done_tx, bound_rx).await;
        let _ = done_tx.send(());
        let received = receiver.await.map_err(|e| CaseError::task("the receiver task", e))??;
        sent?;
        Ok(Measured { sent: send.record, received })
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured.sent, &measured.received)
    }
}

/// What a case recorded at both ends.
#[derive(Default)]
pub struct Measured {
    sent: SendRecord,
    received: Received,
}

/// In-process coordination between the two ends, standing for "time passes": the
/// receiver binds only after the early sends, and the after-sends follow the bind.
struct Signals {
    early_done: oneshot::Receiver<()>,
    bound: oneshot::Sender<()>,
    sender_done: oneshot::Receiver<()>,
}

/// The sending end.
struct Sender {
    socket: UdpSocket,
    target: SocketAddr,
    mode: SocketMode,
    record: SendRecord,
}

/// What the sending end recorded.
#[derive(Default)]
struct SendRecord {
    sent_ok: u64,
    retransmits: u64,
    /// Sequence numbers with at least one successful send.
    left: BTreeSet<u64>,
    errors: BTreeMap<String, u64>,
}

impl Sender {
    fn new(socket: UdpSocket, target: SocketAddr, mode: SocketMode) -> Self {
        Sender { socket, target, mode, record: SendRecord::default() }
    }

    /// Sends datagram `seq`; a failed send is counted by errno, never fatal.
    async fn send(&mut self, seq: u64) {
        let payload = encode(DATA, seq);
        let result = match self.mode {
            SocketMode::Unconnected => self.socket.send_to(&payload, self.target).await,
            SocketMode::Connected => self.socket.send(&payload).await,
        };
        match result {
            Ok(_) => {
                self.record.sent_ok += 1;
                self.record.left.insert(seq);
            }
            Err(e) => *self.record.errors.entry(error_name(&e)).or_default() += 1,
        }
    }

    /// Waits until `until` for a datagram of `kind`; returns its sequence number.
    /// Errors a connected socket reports on receive (pending ECONNREFUSED) are counted.
    async fn recv_kind(&mut self, kind: u8, until: Instant) -> Option<u64> {
        let mut buf = [0u8; PAYLOAD_LEN];
        // Each pass either returns or consumes one datagram or error; the deadline ends it.
        while Instant::now() < until {
            let got = tokio::time::timeout_at(until.into(), self.socket.recv_from(&mut buf)).await;
            match got {
                Err(_) => return None,
                Ok(Ok((n, from))) if from == self.target => {
                    if let Some((k, seq)) = decode(&buf[..n])
                        && k == kind
                    {
                        return Some(seq);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => *self.record.errors.entry(format!("recv {}", error_name(&e))).or_default() += 1,
            }
        }
        None
    }
}

async fn drive_sender(
    params: &Params,
    send: &mut Sender,
    start: Instant,
    early_done: oneshot::Sender<()>,
    mut bound: oneshot::Receiver<()>,
) -> Result<(), CaseError> {
    let total = params.before + params.after;
    let give_up = start + Duration::from_millis(params.receiver_delay_ms) + GRACE;
    match params.mitigation {
        Mitigation::None => {
            for seq in 0..params.before {
                send.send(seq).await;
            }
            let _ = early_done.send(());
            wait_bound(&mut bound, give_up).await?;
            for seq in params.before..total {
                send.send(seq).await;
            }
        }
        Mitigation::ReadyHandshake => {
            // Nothing goes out early: the sender holds every datagram until "ready".
            let _ = early_done.send(());
            if send.recv_kind(READY, give_up).await.is_none() {
                return Err(CaseError::Protocol(format!(
                    "no \"ready\" from the receiver within {} ms",
                    give_up.saturating_duration_since(start).as_millis()
                )));
            }
            for seq in 0..total {
                send.send(seq).await;
            }
        }
        Mitigation::Retransmit => {
            for seq in 0..params.before {
                send.send(seq).await;
            }
            let _ = early_done.send(());
            retransmit(params, send, &mut bound, give_up).await;
        }
    }
    Ok(())
}

async fn wait_bound(bound: &mut oneshot::Receiver<()>, until: Instant) -> Result<(), CaseError> {
    match tokio::time::timeout_at(until.into(), bound).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(CaseError::Protocol("the receiver did not bind in time".into())),
    }
}

/// Resends unacknowledged datagrams every [`RETRANSMIT_EVERY`] until all are
/// acknowledged or `give_up`; sends the after-bind datagrams once the receiver is bound.
async fn retransmit(params: &Params, send: &mut Sender, bound: &mut oneshot::Receiver<()>, give_up: Instant) {
    let total = params.before + params.after;
    let mut acked = BTreeSet::new();
    let mut after_sent = false;
    let mut attempted = params.before;
    while Instant::now() < give_up {
        if !after_sent && bound.try_recv().is_ok() {
            for seq in params.before..total {
                send.send(seq).await;
            }
            after_sent = true;
            attempted = total;
        }
        let tick = (Instant::now() + RETRANSMIT_EVERY).min(give_up);
        while let Some(seq) = send.recv_kind(ACK, tick).await {
            acked.insert(seq);
        }
        if after_sent && acked.len() as u64 == total {
            return;
        }
        let missing: Vec<u64> =
            (0..attempted).filter(|s| !acked.contains(s)).take(RESEND_PER_ROUND).collect();
        for seq in missing {
            send.record.retransmits += 1;
            send.send(seq).await;
        }
    }
}

/// What the receiver got.
#[derive(Default)]
struct Received {
    /// Deliveries per sequence number.
    seen: BTreeMap<u64, u64>,
    bound_at: Duration,
}

async fn receive(
    params: Params,
    target: SocketAddr,
    sender_addr: SocketAddr,
    start: Instant,
    signals: Signals,
) -> Result<Received, CaseError> {
    let Signals { early_done, bound, mut sender_done } = signals;
    let delay = Duration::from_millis(params.receiver_delay_ms);
    let give_up = start + delay + GRACE;
    // The early sends finish in well under a millisecond on loopback; waiting for them
    // makes "before the bind" exact.
    let _ = tokio::time::timeout_at(give_up.into(), early_done).await;
    tokio::time::sleep_until((start + delay).into()).await;
    let socket = UdpSocket::bind(target)
        .await
        .context(format!("bind the receiver to the reserved port {target} (another process took it?)"))?;
    let bound_at = start.elapsed();
    if params.mitigation == Mitigation::ReadyHandshake {
        socket
            .send_to(&encode(READY, 0), sender_addr)
            .await
            .context(format!("send \"ready\" to {sender_addr}"))?;
    }
    let _ = bound.send(());
    let total = params.before + params.after;
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut buf = [0u8; PAYLOAD_LEN];
    let mut stop_at = give_up;
    let mut sender_finished = false;
    // Ends when every number arrived, DRAIN after the sender finished, or at give_up.
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let (n, from) = got.context("receive a datagram")?;
                let Some((DATA, seq)) = decode(&buf[..n]) else { continue };
                if seq >= total {
                    continue;
                }
                *seen.entry(seq).or_default() += 1;
                if params.mitigation == Mitigation::Retransmit {
                    socket.send_to(&encode(ACK, seq), from).await.context(format!("acknowledge to {from}"))?;
                }
                if seen.len() as u64 == total && params.mitigation != Mitigation::Retransmit {
                    break;
                }
            }
            _ = &mut sender_done, if !sender_finished => {
                sender_finished = true;
                stop_at = (Instant::now() + DRAIN).min(give_up);
            }
            _ = tokio::time::sleep_until(stop_at.into()) => break,
        }
    }
    Ok(Received { seen, bound_at })
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

fn outcome(params: &Params, send: &SendRecord, received: &Received) -> CaseOutcome {
    let total = params.before + params.after;
    let delivered = received.seen.len() as u64;
    let lost_before = (0..params.before).filter(|s| !received.seen.contains_key(s)).count() as u64;
    let lost_after = (params.before..total).filter(|s| !received.seen.contains_key(s)).count() as u64;
    let duplicates: u64 = received.seen.values().map(|n| n - 1).sum();
    let send_errors: u64 = send.errors.iter().filter(|(k, _)| !k.starts_with("recv ")).map(|(_, n)| n).sum();
    let refused = send.errors.get("ECONNREFUSED").copied().unwrap_or(0);

    let mut outcome = CaseOutcome::default();
    outcome
        .metric("datagrams", total as f64, Unit::Count)
        .key_metric("sent", send.sent_ok as f64, Unit::Count)
        .key_metric("delivered", delivered as f64, Unit::Count)
        .key_metric("lost_before_bind", lost_before as f64, Unit::Count)
        .key_metric("lost_after_bind", lost_after as f64, Unit::Count)
        .metric("send_errors", send_errors as f64, Unit::Count)
        .key_metric("send_errors_econnrefused", refused as f64, Unit::Count);
    if let Some(first) = received.seen.keys().next() {
        outcome.metric("first_delivered_seq", *first as f64, Unit::Count);
    }
    outcome
        .metric("duplicates", duplicates as f64, Unit::Count)
        .metric("retransmits", send.retransmits as f64, Unit::Count)
        .metric("bound_at", received.bound_at.as_secs_f64() * 1e3, Unit::Millis);

    let errors_text = if send.errors.is_empty() {
        "no errors".to_string()
    } else {
        send.errors.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
    };
    // Datagrams that left the sender (a send call succeeded), early and late.
    let left_early = send.left.range(..params.before).count() as u64;
    let left_late = send.left.range(params.before..total).count() as u64;
    match params.mitigation {
        Mitigation::None => {
            if params.before > 0 {
                outcome.checks.push(Check::new(
                    "pre_bind_lost",
                    format!("early datagrams sent, all {} lost", params.before),
                    format!("{left_early} sent, {lost_before} of {} lost", params.before),
                    left_early >= 1 && lost_before == params.before,
                    "no socket was bound to the port, so each early datagram was dropped on arrival",
                ));
            }
            match params.socket {
                SocketMode::Unconnected if params.after > 0 => outcome.checks.push(Check::new(
                    "post_bind_delivered",
                    format!("all {} later datagrams delivered", params.after),
                    format!(
                        "{} of {} delivered; send errors: {errors_text}",
                        params.after - lost_after,
                        params.after
                    ),
                    lost_after == 0,
                    "on loopback nothing is lost once a socket is bound and reading",
                )),
                SocketMode::Unconnected => {}
                SocketMode::Connected => {
                    let post_sent_lost = (params.before..total)
                        .filter(|s| send.left.contains(s) && !received.seen.contains_key(s))
                        .count();
                    if params.after > 0 {
                        outcome.checks.push(Check::new(
                            "post_bind_sent_delivered",
                            "later datagrams sent, every one whose send succeeded delivered",
                            format!("{left_late} sent, {post_sent_lost} of them not delivered"),
                            left_late >= 1 && post_sent_lost == 0,
                            "on loopback nothing that left a connected socket after the bind is lost",
                        ));
                    }
                    if params.before >= 1 && total >= 2 {
                        outcome.checks.push(Check::new(
                            "econnrefused_seen",
                            "at least one send fails with ECONNREFUSED",
                            errors_text,
                            refused >= 1,
                            "the ICMP port-unreachable for an early datagram is reported to the connected \
                             socket as ECONNREFUSED on its next call",
                        ));
                    }
                }
            }
        }
        Mitigation::ReadyHandshake | Mitigation::Retransmit => {
            outcome.checks.push(Check::new(
                "none_lost",
                format!("all {total} datagrams delivered"),
                format!(
                    "{delivered} delivered, {duplicates} duplicates, {} retransmits; errors: {errors_text}",
                    send.retransmits
                ),
                delivered == total,
                if params.mitigation == Mitigation::ReadyHandshake {
                    "the sender sent nothing until the receiver said it was bound"
                } else {
                    "unacknowledged datagrams were resent until the bound receiver acknowledged them"
                },
            ));
        }
    }
    outcome
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
}
