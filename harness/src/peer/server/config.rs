//! A server's settings ([`ServerConfig`], each default documented) and the checks that
//! refuse, before anything is bound, settings that cannot work ([`ConfigError`]).

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::framing::{FramingStrategy, HeaderWidth};
use crate::net::MAX_UDP_PAYLOAD_V4 as MAX_DATAGRAM;
use crate::peer::behaviour::{Behaviour, Flavour, Transport};

/// The largest `max_frame_len` a server accepts: a frame is held whole in memory, and a
/// limit a machine could not hold is a configuration mistake, not something to try.
pub const MAX_FRAME_LIMIT: usize = 1 << 30;

/// A reference server's settings. `Default` is a tokio TCP echo server with `u32be`
/// framing on `127.0.0.1:0`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TCP or UDP.
    pub transport: Transport,
    /// How connections are served.
    pub flavour: Flavour,
    /// What happens to each message.
    pub behaviour: Behaviour,
    /// How messages are framed.
    pub framing: FramingStrategy,
    /// Where to listen. Default `127.0.0.1:0`: the OS picks a free port.
    pub listen: SocketAddr,
    /// Largest frame accepted, in bytes (default 8 MiB).
    pub max_frame_len: usize,
    /// `source`: size of each message sent, in bytes (default 1024).
    pub source_message_size: usize,
    /// `source`: most messages sent on one connection (default 10 million).
    pub source_max_messages: u64,
    /// Pause once for this long after this many messages (for tests of latency under a
    /// stall). Default: never.
    pub stall: Option<(u64, Duration)>,
    /// A connection that moves no byte in either direction for this long is closed
    /// (default 60 s). This bounds what one silent client holds: a thread in the
    /// threaded flavour, the whole server in the sequential one.
    pub idle_timeout: Duration,
    /// A frame whose first byte came this long ago and whose last has not is given up
    /// on: the connection is closed (default 30 s). Unlike the idle timeout, which each
    /// byte resets, this bounds a client that trickles a frame a byte at a time
    /// (slowloris). For stop-and-wait a frame runs from the first byte of the
    /// announcement to the last of the body.
    pub frame_timeout: Duration,
    /// Most bytes held for clients across all connections (default 64 MiB): unfinished
    /// frames, and replies not yet written past 256 KiB a connection (a client that does
    /// not read them). The connection whose bytes would exceed it is closed with a logged
    /// reason. Stop-and-wait counts a message's announced length from before its ACK until
    /// it has been answered, so a body that would pass the cap is never acknowledged.
    pub max_buffered_bytes: usize,
    /// Most TCP connections served at once (default 1024); one more is accepted and closed
    /// at once, logged and counted in [`ServerStats::refused`](super::ServerStats::refused).
    /// A connection is a thread in the threaded flavour: this bounds them.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            transport: Transport::Tcp,
            flavour: Flavour::Tokio,
            behaviour: Behaviour::Echo,
            framing: FramingStrategy::LengthPrefixed {
                width: crate::framing::HeaderWidth::U32,
                endian: crate::framing::Endian::Big,
                signed: false,
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_frame_len: 8 << 20,
            source_message_size: 1024,
            source_max_messages: 10_000_000,
            stall: None,
            idle_timeout: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(30),
            max_buffered_bytes: 64 << 20,
            max_connections: 1024,
        }
    }
}

/// A server configuration that cannot work, found before anything is bound.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `max_frame_len` is 0 or above [`MAX_FRAME_LIMIT`].
    #[error("--max-frame {max} is out of range: valid is 1..={MAX_FRAME_LIMIT} bytes (1 GiB)")]
    MaxFrame {
        /// The value given.
        max: usize,
    },
    /// `fixed:N` records larger than the frame limit.
    #[error(
        "fixed:{size} records are larger than --max-frame {max}; raise --max-frame or use smaller records"
    )]
    FixedOverMaxFrame {
        /// N.
        size: usize,
        /// The frame limit.
        max: usize,
    },
    /// A framing that needs a byte stream, over UDP.
    #[error("{0} needs a byte stream (it waits for an ACK between header and body); use --transport tcp")]
    NeedsStream(FramingStrategy),
    /// UDP datagrams cannot hold frames as large as asked.
    #[error("over UDP a frame must fit one datagram ({MAX_DATAGRAM} bytes); fixed:{0} does not")]
    TooLargeForUdp(usize),
    /// `source` messages that the framing's length field cannot announce.
    #[error("--source-size {size} does not fit {framing}, which carries at most {most} bytes per frame")]
    SourceTooLarge {
        /// The message size.
        size: usize,
        /// The framing.
        framing: FramingStrategy,
        /// Its largest payload.
        most: usize,
    },
    /// Idle timeout of zero.
    #[error("--idle-timeout must be at least 1 second")]
    IdleTimeout,
    /// Frame timeout of zero.
    #[error("--frame-timeout must be at least 1 second")]
    FrameTimeout,
    /// A cap of zero buffered bytes: no frame could ever be held.
    #[error("--max-buffered must be at least 1 byte")]
    MaxBuffered,
    /// A cap of zero connections: no client could ever be served.
    #[error("--max-connections must be at least 1")]
    MaxConnections,
}

impl ServerConfig {
    /// Checks the settings against each other and against what a machine can hold.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_len == 0 || self.max_frame_len > MAX_FRAME_LIMIT {
            return Err(ConfigError::MaxFrame { max: self.max_frame_len });
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::IdleTimeout);
        }
        if self.frame_timeout.is_zero() {
            return Err(ConfigError::FrameTimeout);
        }
        if self.max_buffered_bytes == 0 {
            return Err(ConfigError::MaxBuffered);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::MaxConnections);
        }
        if let FramingStrategy::FixedSize(size) = self.framing {
            if size > self.max_frame_len {
                return Err(ConfigError::FixedOverMaxFrame { size, max: self.max_frame_len });
            }
            if self.transport == Transport::Udp && size > MAX_DATAGRAM {
                return Err(ConfigError::TooLargeForUdp(size));
            }
        }
        if self.transport == Transport::Udp && self.framing == FramingStrategy::StopAndWait {
            return Err(ConfigError::NeedsStream(self.framing));
        }
        if self.behaviour == Behaviour::Source {
            let most = match self.framing {
                FramingStrategy::LengthPrefixed { width: HeaderWidth::U8, signed, .. } => {
                    if signed {
                        127
                    } else {
                        255
                    }
                }
                FramingStrategy::LengthPrefixed { width: HeaderWidth::U16, signed, .. } => {
                    if signed {
                        32_767
                    } else {
                        65_535
                    }
                }
                FramingStrategy::FixedSize(n) => n,
                _ => self.max_frame_len,
            };
            let size = self.source_message_size;
            if size > most || size > self.max_frame_len {
                return Err(ConfigError::SourceTooLarge {
                    size,
                    framing: self.framing,
                    most: most.min(self.max_frame_len),
                });
            }
        }
        Ok(())
    }
}
