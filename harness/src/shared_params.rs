//! Parameters several scenarios take, declared once each: where a case runs (`link`,
//! `mtu`, `rate`, `delay_ms`), whether it runs in a private namespace (`netns`), which
//! reference server serves it (`flavour`, `behaviour`), and what a relay does to its
//! traffic (`impair`, TCP or UDP). A scenario names one in its [`params!`](crate::params!)
//! line (`link: LinkKind => shared_params::LINK`), so the words, the range and the unit
//! are the same everywhere; a doc comment on its line says what it means there.

use crate::link::LinkKind;
use crate::net::NetnsMode;
use crate::params::ParamSpec;
use crate::peer::{Behaviour, Flavour};

/// `link`: where the case runs.
pub const LINK: ParamSpec = ParamSpec::choice::<LinkKind>().doc(
    "loopback, or veth: two private network namespaces joined by a veth pair (needs CAP_NET_ADMIN; skipped without)",
);

/// Default of [`MTU`] (the link's own fact, named here beside its spec).
pub use crate::link::DEFAULT_MTU;

/// `mtu`: the veth link's MTU.
pub const MTU: ParamSpec = ParamSpec::int(576, 65_535)
    .unit("bytes")
    .doc("link=veth: MTU of both ends (segments carry MTU - 52 bytes with TCP timestamps)");

/// Default of [`RATE`]: no limit.
pub const NO_RATE: &str = "none";

/// `rate`: the veth link's tbf rate.
pub const RATE: ParamSpec = ParamSpec::text("none, or a tc rate in bits: 500kbit, 10mbit, 1gbit")
    .unit("bit/s")
    .doc("link=veth: a tbf qdisc on both ends' egress at this rate; none for no limit");

/// `delay_ms`: one-way delay on the link.
pub const DELAY_MS: ParamSpec = ParamSpec::int(0, 10_000).unit("ms").doc(
    "link=veth: one-way delay each way, added by socklab's impairment relay in the client's namespace (the kernel has no netem)",
);

/// `netns`: a private network namespace for the case, so the kernel's counters are its own.
pub const NETNS: ParamSpec = ParamSpec::choice::<NetnsMode>().doc(
    "auto: a private network namespace when CAP_NET_ADMIN is held, so the kernel's counters count this case alone; never: the host's namespace",
);

/// `flavour`: how the reference server is built.
pub const FLAVOUR: ParamSpec = ParamSpec::choice::<Flavour>()
    .doc("reference server: tokio, threaded (a thread per connection), sequential (one client at a time)");

/// `behaviour`: what the reference server does with each message.
pub const BEHAVIOUR: ParamSpec = ParamSpec::choice::<Behaviour>().doc(
    "what the server does with each message: echo, echo-upper, sink (reads, sends nothing), source (sends, ignores input)",
);

/// Default of [`IMPAIR`] and [`UDP_IMPAIR`]: no relay.
pub const NO_IMPAIRMENT: &str = "none";

/// `impair` of a TCP scenario: a relay that cuts, glues, delays or resets the stream.
/// Each scenario checks the value in its `validate` with
/// [`check_tcp_text`](crate::impair::spec::check_tcp_text).
pub const IMPAIR: ParamSpec = ParamSpec::text(
    "an impairment spec: none, or items joined with + (split=3, split=1..7, merge=20ms, merge=4096B, random, gap=1ms, hold=5ms, delay=5ms, delay=2ms..8ms, rate=1MiB/s, reset-after=N, stall=200ms@1KiB, dir=up|down)",
)
.doc(
    "a seeded relay between client and server that splits, merges, delays, limits, stalls or resets the stream (socklab proxy's --split, --merge, ...); the case seed replays it",
);

/// `impair` of a UDP scenario: the UDP items of [`IMPAIR`]'s spec. Each scenario checks
/// the value with [`check_udp_text`](crate::impair::spec::check_udp_text).
pub const UDP_IMPAIR: ParamSpec = ParamSpec::text(
    "an impairment spec for UDP: none, or items joined with + (loss=0.1, duplicate=0.01, reorder=0.1, reorder=0.1/3, delay=5ms, delay=2ms..8ms, truncate=64, truncate=64@0.5, dir=up|down)",
)
.doc(
    "a seeded relay between sender and receiver that loses, duplicates, reorders, delays or cuts datagrams (socklab proxy --transport udp); the case seed replays it",
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_defaults_fit_their_specs() {
        LINK.check(Value::from(LinkKind::default().name())).unwrap();
        MTU.check(Value::from(DEFAULT_MTU)).unwrap();
        RATE.check(Value::from(NO_RATE)).unwrap();
        DELAY_MS.check(Value::from(0)).unwrap();
        NETNS.check(Value::from(NetnsMode::default().name())).unwrap();
        IMPAIR.check(Value::from(NO_IMPAIRMENT)).unwrap();
        UDP_IMPAIR.check(Value::from(NO_IMPAIRMENT)).unwrap();
    }
}
