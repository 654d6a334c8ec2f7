//! Reference servers: TCP or UDP; built with tokio, a thread per connection, or one client
//! at a time; echoing, upper-casing, sinking or sourcing framed messages.
//!
//! A server binds `127.0.0.1:0` unless told otherwise and reports the address it got.
//! A connection that sends garbage or an oversized frame is closed with a logged reason
//! (kept in [`ServerStats::errors`] too) and the server goes on serving others. Stopping
//! the [`Server`] (or dropping it) ends every loop it started: a thread blocked on a
//! connection has its socket shut down, and the accept and UDP threads check a stop flag
//! at least every [`POLL`], so none outlives it. An idle connection costs no wake-up.
//!
//! Everything a client can make it hold is bounded: a frame by
//! [`ServerConfig::max_frame_len`] (at most [`MAX_FRAME_LIMIT`], checked at start-up), the
//! bytes held for clients across all connections — unfinished frames, replies they do not
//! read — by [`ServerConfig::max_buffered_bytes`] (the connection that would exceed it is
//! closed: load shed, logged; stop-and-wait included; a buffer grown for a large frame is
//! given back once it is done),
//! the connections served at once by [`ServerConfig::max_connections`] (one more is
//! refused, logged and counted), a connection's silence by
//! [`ServerConfig::idle_timeout`], and the time a frame may take from its first byte to
//! its last by [`ServerConfig::frame_timeout`] (a client trickling bytes resets the idle
//! timeout, not this one), in every flavour and framing. Errors that
//! repeat — accept failing on `EMFILE`, a flood of garbage datagrams — back off (1 ms
//! doubling to 1 s, as tokio's and hyper's accept loops do) instead of spinning, and are
//! logged at most a few times a second with a count of the rest.
//!
//! One file per part: `config` (settings and their checks), `stats` (counters, the
//! throttled log, backoff, the connection and buffer guards), `stop` (how stopping reaches
//! blocked connections), `session` (what is done with the bytes of a connection,
//! whatever moves them); the flavours `tokio`, `threaded` and `sequential` (the last two
//! on the blocking loops of `blocking`); and `udp`, one loop for every flavour.

mod blocking;
mod config;
mod sequential;
mod session;
mod stats;
mod stop;
mod threaded;
mod tokio;
mod udp;

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use ::tokio::task::AbortHandle;

pub use blocking::POLL;
pub use config::{ConfigError, MAX_FRAME_LIMIT, ServerConfig};
pub use stats::ServerStats;
use stop::Stop;

use crate::peer::PeerError;
use crate::peer::behaviour::{Flavour, Transport};

/// A running server. Dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Arc<Stop>,
    tokio_tasks: Vec<AbortHandle>,
}

impl Server {
    /// Starts a server. The tokio flavour needs to be called inside a tokio runtime; the
    /// others start threads of their own.
    ///
    /// # Errors
    /// [`PeerError::Config`] for settings that cannot work (see
    /// [`ServerConfig::validate`]); [`PeerError::Bind`] when the address cannot be bound
    /// (e.g. the port is in use).
    pub fn start(config: ServerConfig) -> Result<Server, PeerError> {
        Server::start_with(config, None)
    }

    /// [`Server::start`] on a TCP listener made elsewhere (in another network namespace,
    /// say) instead of binding `config.listen`.
    ///
    /// # Errors
    /// As [`Server::start`]; [`PeerError::Unsupported`] for a UDP config.
    pub fn start_on(config: ServerConfig, listener: TcpListener) -> Result<Server, PeerError> {
        if config.transport != Transport::Tcp {
            return Err(PeerError::Unsupported("a listener given to the server must be TCP".into()));
        }
        Server::start_with(config, Some(listener))
    }

    fn start_with(config: ServerConfig, listener: Option<TcpListener>) -> Result<Server, PeerError> {
        config.validate()?;
        let listen = config.listen;
        let stats = Arc::new(ServerStats::default());
        let stop = Arc::new(Stop::default());
        let config = Arc::new(config);
        let started = match config.transport {
            Transport::Tcp => start_tcp(listener, &config, &stats, &stop),
            Transport::Udp => start_udp(&config, &stats, &stop),
        };
        let (addr, task) = started.map_err(|error| PeerError::Bind { addr: listen, error })?;
        Ok(Server { addr, stats, stop, tokio_tasks: task.into_iter().collect() })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }

    /// Stops accepting and ends every connection loop: threads blocked on a connection
    /// wake at once (their sockets are shut down), the accept and UDP threads within
    /// [`POLL`].
    pub fn stop(&self) {
        self.stop.raise();
        for task in &self.tokio_tasks {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `config.listen` (or takes `listener`) and starts the flavour's accept loop;
/// returns the address and, for the tokio flavour, the task to abort.
fn start_tcp(
    listener: Option<TcpListener>,
    config: &Arc<ServerConfig>,
    stats: &Arc<ServerStats>,
    stop: &Arc<Stop>,
) -> io::Result<(SocketAddr, Option<AbortHandle>)> {
    let listener = match listener {
        Some(listener) => listener,
        None => TcpListener::bind(config.listen)?,
    };
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
    let flavour = config.flavour;
    let dispatch = match flavour {
        Flavour::Tokio => return Ok((addr, Some(tokio::start(listener, config, stats)?))),
        Flavour::Threaded => threaded::dispatch,
        Flavour::Sequential => sequential::dispatch,
    };
    blocking::spawn_acceptor(flavour, listener, config, stats, stop, dispatch)?;
    Ok((addr, None))
}

/// Binds `config.listen` and starts the UDP loop, as a task for the tokio flavour (the
/// task to abort is returned), else on a thread.
fn start_udp(
    config: &Arc<ServerConfig>,
    stats: &Arc<ServerStats>,
    stop: &Arc<Stop>,
) -> io::Result<(SocketAddr, Option<AbortHandle>)> {
    let socket = UdpSocket::bind(config.listen)?;
    let addr = socket.local_addr()?;
    let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
    if config.flavour == Flavour::Tokio {
        return Ok((addr, Some(udp::start_task(socket, config, stats)?)));
    }
    udp::start_thread(socket, config, stats, stop)?;
    Ok((addr, None))
}
