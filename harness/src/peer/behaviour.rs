//! Names of peer roles: what a server does with each message ([`Behaviour`]), how it is
//! built ([`Flavour`]), what it runs over ([`Transport`]) and how a client drives it
//! ([`Mode`]); each parses from and prints as its command-line name.

crate::named_enum!(
    /// What a server does with each message it receives.
    pub Behaviour, "behaviour", {
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

crate::named_enum!(
    /// How a server is built.
    pub Flavour, "flavour", {
        /// Async (tokio): many connections on a few threads.
        Tokio => "tokio",
        /// Blocking std sockets, one thread per connection.
        Threaded => "threaded",
        /// Blocking std sockets, one client at a time: how most first socket programs are
        /// written; other clients wait in the listen backlog.
        Sequential => "sequential",
    }
);

crate::named_enum!(
    /// The transport protocol.
    pub Transport, "transport", {
        /// A TCP stream, framed by the strategy.
        Tcp => "tcp",
        /// UDP: each datagram holds whole frames.
        Udp => "udp",
    }
);

crate::named_enum!(
    /// How a client drives a server.
    pub Mode, "mode", {
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
