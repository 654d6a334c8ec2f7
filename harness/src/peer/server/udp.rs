//! The UDP server, in every flavour: one loop on one socket, each datagram decoded on its
//! own (it holds whole frames) and answered with one datagram. The tokio flavour runs the
//! loop as a task; the others on a thread of their own, reading with a [`POLL`] timeout to
//! see whether the server was stopped. What the loop does with a datagram is written once,
//! in [`UdpServe::on_receive`]; the two drivers only move the bytes.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::task::AbortHandle;
use tokio_util::codec::{Decoder, Encoder};

use super::blocking::{POLL, sleep_unless_stopped, timed_out};
use super::config::ServerConfig;
use super::session::handle_message;
use super::stats::{Backoff, ServerStats};
use super::stop::Stop;
use crate::framing::MessageCodec;
use crate::peer::PeerError;

/// Serves `socket` from a task of the current runtime; aborting the returned handle
/// stops it.
pub(super) fn start_task(
    socket: UdpSocket,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
) -> io::Result<AbortHandle> {
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    Ok(tokio::spawn(task_loop(socket, UdpServe::new(config, stats))).abort_handle())
}

/// Serves `socket` from a thread of its own until `stop` is raised.
pub(super) fn start_thread(
    socket: UdpSocket,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<Stop>,
) -> io::Result<()> {
    socket.set_read_timeout(Some(POLL))?;
    let serve = UdpServe::new(config, stats);
    std::thread::Builder::new()
        .name("socklab-udp".into())
        .spawn(move || thread_loop(&socket, serve, &stop))?;
    Ok(())
}

async fn task_loop(socket: tokio::net::UdpSocket, mut serve: UdpServe) {
    loop {
        let received = socket.recv_from(&mut serve.buf).await;
        match serve.on_receive(received) {
            Next::Reply(reply, peer) => {
                let _ = socket.send_to(reply, peer).await;
            }
            Next::Pause(pause) => tokio::time::sleep(pause).await,
            Next::Nothing => {}
        }
    }
}

fn thread_loop(socket: &UdpSocket, mut serve: UdpServe, stop: &Stop) {
    while !stop.is_raised() {
        let received = socket.recv_from(&mut serve.buf);
        if matches!(&received, Err(e) if timed_out(e)) {
            continue;
        }
        match serve.on_receive(received) {
            Next::Reply(reply, peer) => {
                let _ = socket.send_to(reply, peer);
            }
            Next::Pause(pause) => sleep_unless_stopped(pause, stop),
            Next::Nothing => {}
        }
    }
}

/// What the loop does after a receive.
enum Next<'a> {
    /// Send this datagram back to this peer.
    Reply(&'a [u8], SocketAddr),
    /// The receive failed: pause this long before the next.
    Pause(Duration),
    /// Nothing to send (a sink, or a datagram that closed with an error, counted).
    Nothing,
}

/// A UDP loop's state, kept from one datagram to the next so that a datagram costs no
/// allocation: the receive buffer, the buffers datagrams are decoded and replies built
/// in, the next sequence number a sink expects, and the backoff after failed receives.
struct UdpServe {
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    buf: Vec<u8>,
    input: BytesMut,
    reply: BytesMut,
    expected_seq: u32,
    backoff: Backoff,
    last_peer: Option<SocketAddr>,
}

impl UdpServe {
    fn new(config: Arc<ServerConfig>, stats: Arc<ServerStats>) -> Self {
        UdpServe {
            config,
            stats,
            buf: vec![0u8; 65_536],
            input: BytesMut::new(),
            reply: BytesMut::new(),
            expected_seq: 0,
            backoff: Backoff::new(),
            last_peer: None,
        }
    }

    /// Handles what a receive into `buf` returned.
    fn on_receive(&mut self, received: io::Result<(usize, SocketAddr)>) -> Next<'_> {
        let (n, peer) = match received {
            Ok(received) => received,
            Err(e) => return Next::Pause(self.backoff.failed("receive", &e, &self.stats)),
        };
        self.backoff.reset();
        // A ping-pong sends every datagram from the same peer: no lock, no hash for it.
        if self.last_peer != Some(peer) {
            self.stats.saw_udp_peer(peer);
            self.last_peer = Some(peer);
        }
        match self.reply_to(n) {
            Ok(true) => Next::Reply(&self.reply, peer),
            Ok(false) => Next::Nothing,
            Err(e) => {
                self.stats.connection_failed(peer, &e);
                Next::Nothing
            }
        }
    }

    /// Decodes the frames of the datagram in `buf[..n]` and builds the reply datagram in
    /// `reply`; false when there is nothing to send.
    fn reply_to(&mut self, n: usize) -> Result<bool, PeerError> {
        let config = &self.config;
        // A fresh codec per datagram: a damaged datagram leaves no state behind for the next.
        let Some(mut codec) = MessageCodec::new(config.framing, config.max_frame_len) else {
            return Err(PeerError::Unsupported("stop-and-wait over UDP (it needs a stream)".into()));
        };
        self.input.clear();
        self.input.extend_from_slice(&self.buf[..n]);
        self.reply.clear();
        while let Some(frame) = codec.decode_eof(&mut self.input)? {
            if let Some(answer) = handle_message(frame, config, &self.stats, &mut self.expected_seq) {
                codec.encode(&answer[..], &mut self.reply)?;
            }
            if self.input.is_empty() {
                break;
            }
        }
        Ok(!self.reply.is_empty())
    }
}
