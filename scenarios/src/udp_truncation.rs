//! `udp-truncation`: a datagram larger than the read buffer is cut, and the rest is gone.
//!
//! A sender sends `count` datagrams of `size` bytes over loopback UDP; the receiver reads
//! each with a buffer of `read_size` bytes through `recvmsg(MSG_TRUNC)`, which reports the
//! datagram's real length. The next read starts at the next datagram, not at the cut.
//! For contrast the same bytes go over TCP, where the next read continues at the cut.
//! Finally it probes the size limit: 65,507 bytes is the largest IPv4 UDP payload, and a
//! send of one byte more fails with `EMSGSIZE`.
//!
//! With `link=veth` sender and receiver sit in two private namespaces joined by a veth
//! pair of a given MTU: a datagram larger than the MTU leaves in IP fragments and is
//! reassembled before the receive, so the truncation is the same; `fragments_sent`
//! counts them (`Ip: FragCreates` of the sender's namespace).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use socklab_harness::check::Check;
use socklab_harness::link::LinkKind;
use socklab_harness::link::{Link, LinkSpec, Side};
use socklab_harness::net::{Datagram, MAX_UDP_PAYLOAD_V4, error_name, recv_datagram};
use socklab_harness::params::{Invalid, ParamSpec};
use socklab_harness::report::{LinkRecord, MetricSpec};
use socklab_harness::scenario::{CaseContext, CaseError, CaseOutcome, IoContext, Scenario};
use socklab_harness::shared_params;

use crate::experiment::{EXPERIMENT_THREAD, run_blocking};

/// The scenario; see the module docs.
pub struct UdpTruncation;

socklab_harness::params! {
    /// Parameters of `udp-truncation`.
    pub struct Params {
        /// bytes in each datagram (at most 65507, the IPv4 UDP limit)
        size: u64 = 1000 => ParamSpec::int(1, MAX_UDP_PAYLOAD_V4 as u64).unit("bytes"),
        /// buffer size of each receive; smaller than size truncates
        read_size: u64 = 100 => ParamSpec::int(1, MAX_UDP_PAYLOAD_V4 as u64).unit("bytes"),
        /// datagrams sent back to back
        count: u64 = 3 => ParamSpec::int(1, 100).unit("datagrams"),
        link: LinkKind => shared_params::LINK,
        mtu: u64 = shared_params::DEFAULT_MTU => shared_params::MTU,
        rate: String = shared_params::NO_RATE.into() => shared_params::RATE,
    }
}

impl Params {
    fn link_spec(&self) -> Result<LinkSpec, Invalid> {
        // No delay: the relay that adds one carries TCP (UDP scenarios would need its
        // datagram twin).
        LinkSpec::parse(self.link, self.mtu, &self.rate, 0)
    }
}

/// A blocking receive waits at most this long; on loopback a datagram is queued before
/// `send` returns, so this is only a guard.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

socklab_harness::model::metrics! {
    /// datagrams sent
    datagrams: Count, Neither;
    /// receives the kernel flagged MSG_TRUNC
    truncated_reads: Count, Neither;
    /// bytes in all datagrams
    bytes_sent: Bytes, Neither;
    /// bytes the receives copied out
    bytes_read: Bytes, Neither;
    /// bytes cut off by truncation, gone for good
    bytes_discarded: Bytes, Neither;
    /// real datagram length recvmsg(MSG_TRUNC) returned (the largest seen)
    reported_len: Bytes, Neither;
    /// datagrams still queued after one receive per datagram (the cut-off rest is not one)
    left_queued: Count, Neither;
    /// the same bytes over TCP: what the reads after the first returned
    tcp_rest_bytes: Bytes, Neither;
    /// the 65507-byte datagram sent and received whole
    max_payload_sent: Bytes, Neither;
    /// link=veth: IP fragments the sender's namespace made for the datagrams (Ip: FragCreates): 0
    /// when each fits the MTU, 3 per 4000-byte datagram at MTU 1500
    fragments_sent: Count, Neither;
}

impl Scenario for UdpTruncation {
    type Params = Params;
    type Measured = Measured;

    const NAME: &'static str = "udp-truncation";
    const SUMMARY: &'static str =
        "a UDP datagram larger than the read buffer is truncated, and the rest of it is gone";
    const EXPLANATION: &'static str = "\
What it shows: the sender sends datagrams of `size` bytes; the receiver reads each into a \
buffer of `read_size` bytes. Each receive returns the first read_size bytes of one \
datagram, and the next receive returns the start of the next datagram: the rest of the \
first is gone. recvmsg() says so: it sets MSG_TRUNC in the returned flags, and with \
MSG_TRUNC passed in the flags Linux returns the datagram's real length instead of the bytes \
copied (udp(7), recv(2)). The same bytes over TCP come back whole: the next read continues \
where the first stopped.

Why it happens: UDP keeps message boundaries. One receive takes exactly one datagram off \
the queue, whatever the buffer size, and what does not fit is discarded. The largest \
datagram is set by the IPv4 header's 16-bit total length: 65,535 − 20 (IP header) − 8 (UDP \
header) = 65,507 bytes of payload; a larger send fails with EMSGSIZE (measured below: the \
ipv4_size_limit check).

What fixes it: read with a buffer as large as the largest datagram the protocol allows \
(65,507 bytes when unknown), or check MSG_TRUNC and treat a truncated datagram as an \
error. Keep datagrams under the path MTU (1,472 payload bytes on Ethernet) so they are \
not fragmented on real networks.";
    const METRICS: &'static [MetricSpec] = METRICS;

    fn validate(params: &Params) -> Result<(), Invalid> {
        params.link_spec().map(|_| ())
    }

    async fn run(params: Params, _ctx: CaseContext) -> Result<Measured, CaseError> {
        run_blocking(EXPERIMENT_THREAD, move || experiment(&params)).await
    }

    fn evaluate(params: &Params, measured: Measured) -> CaseOutcome {
        outcome(params, &measured)
    }
}

/// Everything the experiment recorded.
#[derive(Default)]
pub struct Measured {
    /// One per datagram received, in order.
    reads: Vec<Read1>,
    /// Datagrams still queued after `count` receives.
    left_queued: u64,
    /// The send of a datagram one byte over the IPv4 limit.
    over: Option<std::io::Result<usize>>,
    /// Bytes the send of a datagram of exactly the limit took.
    max: usize,
    /// That datagram as received.
    big_read: Datagram,
    /// TCP's contrast: bytes after the first read, and whether they continue at the cut.
    tcp_rest: usize,
    tcp_continues: bool,
    /// The link, when not plain loopback.
    link: Option<LinkRecord>,
    /// IP fragments the client's namespace made for the `count` datagrams.
    fragments_sent: Option<u64>,
}

/// Byte `j` of datagram `i`: distinct per datagram, so a read shows which one it holds.
fn pattern(i: u64, j: usize) -> u8 {
    ((i as usize * 37 + j) % 251) as u8
}

fn datagram(i: u64, size: usize) -> Vec<u8> {
    (0..size).map(|j| pattern(i, j)).collect()
}

/// What one receive returned, and whether it held the start of the datagram expected.
struct Read1 {
    datagram: Datagram,
    starts_expected: bool,
}

fn experiment(params: &Params) -> Result<Measured, CaseError> {
    let size = params.size as usize;
    let read_size = params.read_size as usize;
    let spec = params.link_spec()?;
    let link = Link::open(spec)?;
    let receiver: UdpSocket = link.udp_socket(Side::Server)?;
    let addr = receiver.local_addr().context("read the receiver's address")?;
    receiver.set_read_timeout(Some(RECV_TIMEOUT)).context("set a receive timeout")?;
    let sender: UdpSocket = link.udp_socket(Side::Client)?;
    sender.connect(addr).context(format!("connect the sender to {addr}"))?;

    let fragments_before = link.client_fragments_created()?;
    for i in 0..params.count {
        sender.send(&datagram(i, size)).context(format!("send datagram {i} of {size} bytes"))?;
    }
    let fragments_sent = match (fragments_before, link.client_fragments_created()?) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let mut buf = vec![0u8; read_size];
    let mut reads = Vec::new();
    for i in 0..params.count {
        let d = recv_datagram(&receiver, &mut buf, 0).context(format!("receive datagram {i}"))?;
        let starts_expected = buf[..d.copied] == datagram(i, size)[..d.copied];
        reads.push(Read1 { datagram: d, starts_expected });
    }
    let mut left_queued = 0u64;
    while recv_datagram(&receiver, &mut buf, libc::MSG_DONTWAIT).is_ok() {
        left_queued += 1;
        if left_queued > params.count {
            break;
        }
    }

    // The size limit: one byte over fails, the limit itself goes through whole.
    let over = sender.send(&vec![0u8; MAX_UDP_PAYLOAD_V4 + 1]);
    let max = sender.send(&datagram(0, MAX_UDP_PAYLOAD_V4)).context("send a 65507-byte datagram")?;
    let mut big = vec![0u8; MAX_UDP_PAYLOAD_V4];
    let big_read = recv_datagram(&receiver, &mut big, 0).context("receive the 65507-byte datagram")?;

    let (tcp_rest, tcp_continues) = tcp_contrast(&link, size, read_size)?;
    let record = (!matches!(link, Link::Loopback)).then(|| link.record());
    Ok(Measured {
        reads,
        left_queued,
        over: Some(over),
        max,
        big_read,
        tcp_rest,
        tcp_continues,
        link: record,
        fragments_sent,
    })
}

/// Writes `size` bytes over loopback TCP, reads `read_size`, then the rest: returns how
/// many bytes the later reads got and whether they continue where the first stopped.
fn tcp_contrast(link: &Link, size: usize, read_size: usize) -> Result<(usize, bool), CaseError> {
    let listener = link.tcp_listener(|_| Ok(()))?;
    let addr = listener.local_addr().context("read the listener's address")?;
    let client = link.tcp_client_socket()?;
    client.connect(&addr.into()).context(format!("connect to {addr}"))?;
    let mut client: TcpStream = client.into();
    let (mut server, _) = listener.accept().context("accept the TCP client")?;
    server.set_read_timeout(Some(RECV_TIMEOUT)).context("set a TCP read timeout")?;
    let sent = datagram(0, size);
    client.write_all(&sent).context("write over TCP")?;
    client.shutdown(std::net::Shutdown::Write).context("shut down the TCP client's sending side")?;
    let mut first = vec![0u8; read_size];
    // Loopback may deliver the bytes in pieces; one read of up to read_size is the "first".
    let n = server.read(&mut first).context("first TCP read")?;
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).context("read the rest over TCP")?;
    let continues = first[..n] == sent[..n] && rest == sent[n..];
    Ok((rest.len(), continues))
}

fn outcome(params: &Params, m: &Measured) -> CaseOutcome {
    let (reads, over, big_read) = (&m.reads, &m.over, m.big_read);
    let (left_queued, max, tcp_rest, tcp_continues) = (m.left_queued, m.max, m.tcp_rest, m.tcp_continues);
    let size = params.size as usize;
    let read_size = params.read_size as usize;
    let truncated = reads.iter().filter(|r| r.datagram.truncated).count();
    let bytes_read: usize = reads.iter().map(|r| r.datagram.copied).sum();
    let bytes_sent = size * reads.len();
    let reported = reads.iter().map(|r| r.datagram.len).max().unwrap_or(0);

    let mut outcome = CaseOutcome::default();
    outcome
        .metric(metric::datagrams, params.count as f64)
        .key_metric(metric::truncated_reads, truncated as f64)
        .metric(metric::bytes_sent, bytes_sent as f64)
        .key_metric(metric::bytes_read, bytes_read as f64)
        .key_metric(metric::bytes_discarded, (bytes_sent - bytes_read) as f64)
        .metric(metric::reported_len, reported as f64)
        .metric(metric::left_queued, left_queued as f64)
        .metric(metric::tcp_rest_bytes, tcp_rest as f64)
        .metric(metric::max_payload_sent, max as f64);
    if let Some(fragments) = m.fragments_sent {
        outcome.metric(metric::fragments_sent, fragments as f64);
    }
    outcome.observations.link = m.link.clone();

    let each: Vec<String> = reads
        .iter()
        .map(|r| format!("{}/{}{}", r.datagram.copied, r.datagram.len, trunc_mark(&r.datagram)))
        .collect();
    let observed = format!("copied/real per receive: {}", each.join(", "));
    if read_size < size {
        let ok = reads.len() as u64 == params.count
            && reads
                .iter()
                .all(|r| r.datagram.truncated && r.datagram.copied == read_size && r.datagram.len == size);
        outcome.checks.push(Check::new(
            "truncated_to_read_size",
            format!("each receive: {read_size} of {size} bytes, MSG_TRUNC set"),
            observed,
            ok,
            "a receive copies what fits and flags the datagram as truncated; MSG_TRUNC gives its real length",
        ));
    } else {
        let ok = reads.len() as u64 == params.count
            && reads.iter().all(|r| !r.datagram.truncated && r.datagram.copied == size);
        outcome.checks.push(Check::new(
            "whole_datagrams",
            format!("each receive: all {size} bytes, no MSG_TRUNC"),
            observed,
            ok,
            "a buffer at least as large as the datagram receives it whole",
        ));
    }
    let starts = reads.iter().filter(|r| r.starts_expected).count();
    outcome.checks.push(Check::new(
        "next_read_is_next_datagram",
        format!("receive i holds the start of datagram i for all {}; none left queued", params.count),
        format!("{starts} of {} matched; {left_queued} left queued", reads.len()),
        reads.len() as u64 == params.count && starts == reads.len() && left_queued == 0,
        "one receive takes one whole datagram off the queue; the cut-off bytes are not returned later",
    ));
    let over_text = match over {
        None => "65508-byte send not tried".to_string(),
        Some(Ok(n)) => format!("65508-byte send succeeded ({n} bytes)"),
        Some(Err(e)) => format!("65508-byte send failed with {}", error_name(e)),
    };
    let over_refused = over.as_ref().and_then(|o| o.as_ref().err()).and_then(std::io::Error::raw_os_error)
        == Some(libc::EMSGSIZE);
    let max_whole = max == MAX_UDP_PAYLOAD_V4 && big_read.len == MAX_UDP_PAYLOAD_V4 && !big_read.truncated;
    outcome.checks.push(Check::new(
        "ipv4_size_limit",
        "65507 bytes sent and received whole; 65508 fails with EMSGSIZE",
        format!("65507-byte datagram: sent {max}, received {}; {over_text}", big_read.len),
        over_refused && max_whole,
        "the IPv4 total length is 16 bits: 65535 − 20 (IP) − 8 (UDP) = 65507 bytes of payload at most",
    ));
    if read_size < size {
        outcome.checks.push(Check::new(
            "tcp_continues",
            "over TCP the later reads return the rest of the bytes, continuing at the cut",
            format!("{tcp_rest} bytes after the first read; continues at the cut: {tcp_continues}"),
            tcp_continues && tcp_rest > 0,
            "TCP is a byte stream: a short read leaves the rest queued for the next read",
        ));
    }
    outcome
}

fn trunc_mark(d: &Datagram) -> &'static str {
    if d.truncated { " TRUNC" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_between_datagrams() {
        assert_ne!(datagram(0, 16), datagram(1, 16));
        assert_eq!(datagram(2, 4), datagram(2, 8)[..4]);
    }
}
