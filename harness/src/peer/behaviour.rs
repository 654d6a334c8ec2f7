//! Names of peer roles: what a server does with each message ([`Behaviour`]), how it is
//! built ([`Flavour`]), what it runs over ([`Transport`]) and how a client drives it
//! ([`Mode`]); each parses from and prints as its command-line name.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A name that is none of the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} `{input}`; valid: {}", valid.join(", "))]
pub struct UnknownName {
    /// What kind of name (`behaviour`, `flavour`, `transport`).
    pub what: &'static str,
    /// The name given.
    pub input: String,
    /// The valid names.
    pub valid: Vec<&'static str>,
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every name, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as written on the command line.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                $name::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| UnknownName {
                    what: $what,
                    input: s.to_string(),
                    valid: $name::NAMES.to_vec(),
                })
            }
        }
    };
}

named_enum!(
    /// What a server does with each message it receives.
    Behaviour, "behaviour", {
        /// Sends every message back unchanged.
        Echo => "echo",
        /// Sends every message back in ASCII upper case.
        EchoUpper => "echo-upper",
        /// Discards messages, counting and verifying them.
        Sink => "sink",
        /// Ignores what it receives and sends a stream of messages until the client leaves.
        Source => "source",
    }
);

named_enum!(
    /// How a server is built.
    Flavour, "flavour", {
        /// Async (tokio): many connections on a few threads.
        Tokio => "tokio",
        /// Blocking std sockets, one thread per connection.
        Threaded => "threaded",
        /// Blocking std sockets, one client at a time: how most first socket programs are
        /// written; other clients wait in the listen backlog.
        Sequential => "sequential",
    }
);

named_enum!(
    /// The transport protocol.
    Transport, "transport", {
        /// A TCP stream, framed by the strategy.
        Tcp => "tcp",
        /// UDP: each datagram holds whole frames.
        Udp => "udp",
    }
);

named_enum!(
    /// How a client drives a server.
    Mode, "mode", {
        /// One message outstanding at a time; every round trip is timed.
        PingPong => "ping-pong",
        /// Up to a window of messages outstanding.
        Pipelined => "pipelined",
        /// A one-way stream into a sink for a duration: throughput.
        Bulk => "bulk",
        /// A constant rate of messages; latency counts from each message's intended send
        /// time, so a stall is not hidden (coordinated omission corrected).
        OpenLoop => "open-loop",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid() {
        for b in Behaviour::ALL {
            assert_eq!(b.name().parse::<Behaviour>(), Ok(*b));
        }
        assert_eq!("threaded".parse::<Flavour>(), Ok(Flavour::Threaded));
        assert_eq!(
            "echo_upper".parse::<Behaviour>().unwrap_err().to_string(),
            "unknown behaviour `echo_upper`; valid: echo, echo-upper, sink, source"
        );
    }
}
