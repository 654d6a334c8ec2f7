//! The impairment spec: what a relay does to the bytes or datagrams that pass, parsed once
//! from text into a typed [`Impairment`].
//!
//! The syntax survives `socklab run --set`, where `,` separates matrix alternatives and
//! `;` list alternatives: items are joined with `+`.
//!
//! ```text
//! none                                   nothing: a plain relay (the default)
//! split=3            split=1..7          cut the stream into pieces of 3 bytes, or of a seeded size in 1..=7
//! merge=20ms                             hold what arrives for 20 ms after the first held byte, write it as one
//! merge=4096B                            write in pieces of 4096 bytes (a held byte waits at most `hold`)
//! random                                 a seeded mix: pieces of 1..=8 bytes (split) or 9..=1024 (merge)
//! gap=1ms   hold=5ms                     pause between pieces; longest a piece waits for its bytes
//! delay=5ms          delay=2ms..8ms      every byte (datagram) later by 5 ms, or by a seeded time in a range
//! rate=1MiB/s        rate=10mbit         a token bucket: bytes (or bits) per second
//! reset-after=1000                       forward 1000 bytes, then reset both connections (RST)
//! stall=200ms@1KiB                       after 1 KiB, forward nothing for 200 ms (once)
//! dir=up                                 only client -> server (default both; down = server -> client)
//! loss=0.1   duplicate=0.01              UDP: drop / send twice, each datagram with that probability
//! reorder=0.1        reorder=0.1/3       UDP: hold a datagram back behind the next 1 (or 3)
//! truncate=64        truncate=64@0.5     UDP: cut datagrams to 64 bytes (all, or with a probability)
//! ```
//!
//! Sizes: `4096`, `4096B`, `64KiB`, `1MiB` (`KB`, `MB` are powers of ten). Durations:
//! `500us`, `20ms`, `1s`. Rates: `1MiB/s`, `100KB/s`, `10mbit`, `500kbit`. Probabilities:
//! `0..=1` or a percentage (`10%`). Every error is one line naming what is valid.

use crate::params::Invalid;
use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// Largest piece `split` takes.
pub const MAX_PIECE: usize = 1 << 20;
/// Largest piece `merge=SIZE` takes.
pub const MAX_MERGE: usize = 16 << 20;
/// Longest duration any item takes.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// Deepest `reorder` hold-back.
pub const MAX_REORDER_DEPTH: u32 = 1000;
/// How long a piece waits for its bytes when `hold` is not given: see
/// [`Impairment::hold`].
pub const DEFAULT_HOLD: Duration = Duration::from_millis(5);
/// The pause between `split` pieces when `gap` is not given.
pub const DEFAULT_SPLIT_GAP: Duration = Duration::from_millis(1);
/// The pause between `random` pieces when `gap` is not given.
pub const DEFAULT_RANDOM_GAP: Duration = Duration::from_micros(200);

/// Every item name, as error messages list them.
pub const ITEMS: &[&str] = &[
    "split",
    "merge",
    "random",
    "gap",
    "hold",
    "delay",
    "rate",
    "reset-after",
    "stall",
    "dir",
    "loss",
    "duplicate",
    "reorder",
    "truncate",
];

/// Why a spec was refused. Each message is one line and names what is valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// The text was empty (or an item between two `+` was).
    #[error("empty impairment item; give `none` or items joined with +, e.g. split=3+delay=1ms")]
    Empty,
    /// An item name socklab does not know.
    #[error("unknown impairment `{item}`; valid: none, {} (join with +, e.g. split=3+delay=1ms)", ITEMS.join(", "))]
    Unknown {
        /// The item as given.
        item: String,
    },
    /// An item whose value does not parse or is out of range.
    #[error("bad {key} `{value}`: {expected}")]
    BadValue {
        /// The item name.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What is valid, in words.
        expected: String,
    },
    /// The same item twice.
    #[error("{key} given twice; give each impairment once{hint}")]
    Repeated {
        /// The item name.
        key: &'static str,
        /// A way to say what was probably meant.
        hint: &'static str,
    },
    /// Two items that each decide the piece sizes.
    #[error("{first} and {second} both decide the piece sizes; give one (random mixes splits and merges)")]
    Conflict {
        /// The first item.
        first: &'static str,
        /// The second item.
        second: &'static str,
    },
    /// An item the relay's transport has no use for.
    #[error("{key} applies to {applies_to} only; {why}")]
    WrongTransport {
        /// The item name.
        key: &'static str,
        /// `TCP` or `UDP`.
        applies_to: &'static str,
        /// What to use instead.
        why: &'static str,
    },
}

/// How the stream is cut into the pieces the relay writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pieces {
    /// `split=N` or `split=A..B`: pieces of a size drawn from `min..=max`.
    Split {
        /// Smallest piece, at least 1.
        min: usize,
        /// Largest piece.
        max: usize,
    },
    /// `merge=SIZE`: pieces of exactly this size.
    Merge(usize),
    /// `random`: each piece a split (1..=8 bytes, then a gap) or a merge (9..=1024
    /// bytes, no gap) by a coin toss.
    Random,
}

/// `delay`: a fixed time (`min == max`) or a seeded time in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

/// `stall=T@N`: after `after_bytes` bytes, forward nothing for `pause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// How long nothing is forwarded.
    pub pause: Duration,
    /// Bytes forwarded before the stall.
    pub after_bytes: u64,
}

/// `reorder=P/K`: with probability `p` a datagram is held back behind the next `depth`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reorder {
    /// Probability per datagram.
    pub p: f64,
    /// How many later datagrams overtake it.
    pub depth: u32,
}

/// `truncate=N@P`: with probability `p`, a datagram longer than `len` is cut to `len`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncate {
    /// Bytes kept.
    pub len: usize,
    /// Probability per datagram (1 when not given).
    pub p: f64,
}

/// Which directions of a connection are impaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Directions {
    /// Both (the default).
    #[default]
    Both,
    /// Client to server only.
    Up,
    /// Server to client only.
    Down,
}

/// One direction of a relayed connection or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Way {
    /// From the client (the side that connected to the relay) to the upstream server.
    Up,
    /// From the upstream server back to the client.
    Down,
}

impl Way {
    /// `up` or `down`.
    pub fn name(self) -> &'static str {
        match self {
            Way::Up => "up",
            Way::Down => "down",
        }
    }

    /// 0 for up, 1 for down: the stream number of a direction within a connection.
    pub fn index(self) -> u64 {
        match self {
            Way::Up => 0,
            Way::Down => 1,
        }
    }
}

/// What a relay does to what passes, parsed from a spec (see the module docs).
/// `Default` is `none`: every byte passes as it came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Impairment {
    /// How the stream is cut into pieces; `None` writes each read (or merge window) whole.
    pub pieces: Option<Pieces>,
    /// `merge=DUR`: what arrives within this long of the first held byte is written as one.
    pub window: Option<Duration>,
    /// `gap`: pause between consecutive pieces; see [`Impairment::gap`].
    pub gap: Option<Duration>,
    /// `hold`: longest a piece waits for its bytes; see [`Impairment::hold`].
    pub hold: Option<Duration>,
    /// `delay`.
    pub delay: Option<Delay>,
    /// `rate`, in bytes per second.
    pub rate: Option<u64>,
    /// `reset-after`, in bytes.
    pub reset_after: Option<u64>,
    /// `stall`.
    pub stall: Option<Stall>,
    /// `dir`.
    pub directions: Directions,
    /// `loss` (UDP).
    pub loss: Option<f64>,
    /// `duplicate` (UDP).
    pub duplicate: Option<f64>,
    /// `reorder` (UDP).
    pub reorder: Option<Reorder>,
    /// `truncate` (UDP).
    pub truncate: Option<Truncate>,
}

impl Impairment {
    /// Parses a spec: `none`, or items joined with `+`.
    ///
    /// # Errors
    /// [`SpecError`] naming the item and what is valid.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let text = text.trim();
        let mut spec = Impairment::default();
        if text == "none" {
            return Ok(spec);
        }
        for item in text.split('+') {
            spec.add_item(item.trim())?;
        }
        Ok(spec)
    }

    /// Adds one item (`split=3`, `random`) to the spec.
    ///
    /// # Errors
    /// [`SpecError`] when the item is unknown, its value bad, or it repeats or conflicts
    /// with an item already given.
    pub fn add_item(&mut self, item: &str) -> Result<(), SpecError> {
        if item.is_empty() {
            return Err(SpecError::Empty);
        }
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.trim(), value.trim()),
            None => (item, ""),
        };
        let key: &'static str = ITEMS
            .iter()
            .find(|k| **k == key)
            .copied()
            .ok_or_else(|| SpecError::Unknown { item: item.to_string() })?;
        let needs_value = key != "random";
        if needs_value && value.is_empty() {
            return Err(bad(key, value, expected(key)));
        }
        if !needs_value && !value.is_empty() {
            return Err(bad(key, value, "random takes no value: write `random`".into()));
        }
        match key {
            "split" => {
                let (min, max) =
                    parse_range(value, parse_size).ok_or_else(|| bad(key, value, expected(key)))?;
                if min == 0 || max > MAX_PIECE as u64 || min > max {
                    return Err(bad(key, value, expected(key)));
                }
                self.set_pieces(key, Pieces::Split { min: min as usize, max: max as usize })?;
            }
            "merge" => self.add_merge(key, value)?,
            "random" => self.set_pieces(key, Pieces::Random)?,
            "gap" => set_once(&mut self.gap, key, duration_in(value, key, Duration::ZERO)?)?,
            "hold" => {
                let hold = duration_in(value, key, Duration::ZERO)?;
                if hold.is_zero() {
                    return Err(bad(key, value, expected(key)));
                }
                set_once(&mut self.hold, key, hold)?;
            }
            "delay" => {
                let (min, max) =
                    parse_range(value, parse_duration).ok_or_else(|| bad(key, value, expected(key)))?;
                if min > max || max > MAX_DURATION {
                    return Err(bad(key, value, expected(key)));
                }
                set_once(&mut self.delay, key, Delay { min, max })?;
            }
            "rate" => set_once(&mut self.rate, key, parse_rate(value).map_err(|e| bad(key, value, e))?)?,
            "reset-after" => {
                let n = parse_size(value).ok_or_else(|| bad(key, value, expected(key)))?;
                set_once(&mut self.reset_after, key, n)?;
            }
            "stall" => self.add_stall(key, value)?,
            "dir" => {
                if self.directions != Directions::Both {
                    return Err(SpecError::Repeated { key, hint: "" });
                }
                self.directions = match value {
                    "both" => Directions::Both,
                    "up" => Directions::Up,
                    "down" => Directions::Down,
                    _ => return Err(bad(key, value, expected(key))),
                };
            }
            "loss" => set_once(&mut self.loss, key, probability(value, key)?)?,
            "duplicate" => set_once(&mut self.duplicate, key, probability(value, key)?)?,
            "reorder" => self.add_reorder(key, value)?,
            "truncate" => self.add_truncate(key, value)?,
            _ => return Err(SpecError::Unknown { item: item.to_string() }),
        }
        Ok(())
    }

    /// `merge=WINDOW` (a time window) or `merge=SIZE` (pieces of that size).
    fn add_merge(&mut self, key: &'static str, value: &str) -> Result<(), SpecError> {
        if self.window.is_some() || matches!(self.pieces, Some(Pieces::Merge(_))) {
            return Err(SpecError::Repeated {
                key,
                hint: "; for a size with a time limit write merge=4096B+hold=20ms",
            });
        }
        if let Some(window) = parse_duration(value) {
            if window.is_zero() || window > MAX_DURATION {
                return Err(bad(key, value, expected(key)));
            }
            self.window = Some(window);
        } else {
            let size = parse_size(value).ok_or_else(|| bad(key, value, expected(key)))?;
            if size == 0 || size > MAX_MERGE as u64 {
                return Err(bad(key, value, expected(key)));
            }
            self.set_pieces(key, Pieces::Merge(size as usize))?;
        }
        Ok(())
    }

    /// `stall=PAUSE@BYTES`.
    fn add_stall(&mut self, key: &'static str, value: &str) -> Result<(), SpecError> {
        let (pause, after) = value.split_once('@').ok_or_else(|| bad(key, value, expected(key)))?;
        let pause = parse_duration(pause).ok_or_else(|| bad(key, value, expected(key)))?;
        let after_bytes = parse_size(after).ok_or_else(|| bad(key, value, expected(key)))?;
        if pause.is_zero() || pause > MAX_DURATION {
            return Err(bad(key, value, expected(key)));
        }
        set_once(&mut self.stall, key, Stall { pause, after_bytes })
    }

    /// `reorder=P` or `reorder=P/DEPTH`.
    fn add_reorder(&mut self, key: &'static str, value: &str) -> Result<(), SpecError> {
        let (p, depth) = match value.split_once('/') {
            Some((p, depth)) => (
                p,
                depth
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=MAX_REORDER_DEPTH).contains(d))
                    .ok_or_else(|| bad(key, value, expected(key)))?,
            ),
            None => (value, 1),
        };
        set_once(&mut self.reorder, key, Reorder { p: probability(p, key)?, depth })
    }

    /// `truncate=LEN` or `truncate=LEN@P`.
    fn add_truncate(&mut self, key: &'static str, value: &str) -> Result<(), SpecError> {
        let (len, p) = match value.split_once('@') {
            Some((len, p)) => (len, probability(p, key)?),
            None => (value, 1.0),
        };
        let len = parse_size(len).ok_or_else(|| bad(key, value, expected(key)))?;
        if len > 65_535 {
            return Err(bad(key, value, expected(key)));
        }
        set_once(&mut self.truncate, key, Truncate { len: len as usize, p })
    }

    fn set_pieces(&mut self, key: &'static str, pieces: Pieces) -> Result<(), SpecError> {
        if let Some(first) = self.pieces {
            let first = match first {
                Pieces::Split { .. } => "split",
                Pieces::Merge(_) => "merge",
                Pieces::Random => "random",
            };
            if first == key {
                return Err(SpecError::Repeated { key, hint: "" });
            }
            return Err(SpecError::Conflict { first, second: key });
        }
        self.pieces = Some(pieces);
        Ok(())
    }

    /// True for `none`: nothing is changed, so a relay may pass bytes straight through.
    pub fn is_none(&self) -> bool {
        *self == Impairment::default()
    }

    /// Whether direction `way` is impaired at all.
    pub fn applies_to(&self, way: Way) -> bool {
        !self.is_none()
            && match self.directions {
                Directions::Both => true,
                Directions::Up => way == Way::Up,
                Directions::Down => way == Way::Down,
            }
    }

    /// The pause between consecutive pieces: `gap`, else 1 ms for `split`, 200 µs after
    /// the splits of `random` (none after its merges), nothing otherwise. With
    /// TCP_NODELAY each piece leaves as its own segment; the gap lets a reader that keeps
    /// up see each piece in its own read.
    pub fn gap(&self) -> Duration {
        self.gap.unwrap_or(match self.pieces {
            Some(Pieces::Split { .. }) => DEFAULT_SPLIT_GAP,
            Some(Pieces::Random) => DEFAULT_RANDOM_GAP,
            _ => Duration::ZERO,
        })
    }

    /// The longest a piece waits for the rest of its bytes: `hold`, else 5 ms. When it
    /// has waited that long, the bytes it has are written (the seeded cuts stay where
    /// they were), so a request/reply protocol never deadlocks behind a piece that a
    /// reply must first complete.
    pub fn hold(&self) -> Duration {
        self.hold.unwrap_or(DEFAULT_HOLD)
    }

    /// Checks that every item applies to a TCP relay.
    ///
    /// # Errors
    /// [`SpecError::WrongTransport`] for a UDP-only item.
    pub fn check_tcp(&self) -> Result<(), SpecError> {
        let udp_only = [
            ("loss", self.loss.is_some()),
            ("duplicate", self.duplicate.is_some()),
            ("reorder", self.reorder.is_some()),
            ("truncate", self.truncate.is_some()),
        ];
        match udp_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(SpecError::WrongTransport {
                key,
                applies_to: "UDP",
                why: "TCP never loses, repeats, reorders or cuts bytes; use reset-after or stall",
            }),
            None => Ok(()),
        }
    }

    /// Checks that every item applies to a UDP relay.
    ///
    /// # Errors
    /// [`SpecError::WrongTransport`] for a TCP-only item.
    pub fn check_udp(&self) -> Result<(), SpecError> {
        let tcp_only = [
            ("split", matches!(self.pieces, Some(Pieces::Split { .. }))),
            ("merge", self.window.is_some() || matches!(self.pieces, Some(Pieces::Merge(_)))),
            ("random", matches!(self.pieces, Some(Pieces::Random))),
            ("gap", self.gap.is_some()),
            ("hold", self.hold.is_some()),
            ("rate", self.rate.is_some()),
            ("reset-after", self.reset_after.is_some()),
            ("stall", self.stall.is_some()),
        ];
        match tcp_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(SpecError::WrongTransport {
                key,
                applies_to: "TCP",
                why: "datagrams keep their boundaries; use loss, duplicate, reorder, delay or truncate",
            }),
            None => Ok(()),
        }
    }
}

/// The spec in its canonical text, items in a fixed order: parsing it gives the same
/// spec back.
impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = Vec::new();
        match self.pieces {
            Some(Pieces::Split { min, max }) if min == max => items.push(format!("split={min}")),
            Some(Pieces::Split { min, max }) => items.push(format!("split={min}..{max}")),
            Some(Pieces::Merge(size)) => items.push(format!("merge={size}B")),
            Some(Pieces::Random) => items.push("random".into()),
            None => {}
        }
        if let Some(window) = self.window {
            items.push(format!("merge={}", duration_text(window)));
        }
        if let Some(gap) = self.gap {
            items.push(format!("gap={}", duration_text(gap)));
        }
        if let Some(hold) = self.hold {
            items.push(format!("hold={}", duration_text(hold)));
        }
        if let Some(Delay { min, max }) = self.delay {
            if min == max {
                items.push(format!("delay={}", duration_text(min)));
            } else {
                items.push(format!("delay={}..{}", duration_text(min), duration_text(max)));
            }
        }
        if let Some(rate) = self.rate {
            items.push(format!("rate={rate}B/s"));
        }
        if let Some(n) = self.reset_after {
            items.push(format!("reset-after={n}"));
        }
        if let Some(stall) = self.stall {
            items.push(format!("stall={}@{}", duration_text(stall.pause), stall.after_bytes));
        }
        match self.directions {
            Directions::Both => {}
            Directions::Up => items.push("dir=up".into()),
            Directions::Down => items.push("dir=down".into()),
        }
        if let Some(p) = self.loss {
            items.push(format!("loss={p}"));
        }
        if let Some(p) = self.duplicate {
            items.push(format!("duplicate={p}"));
        }
        if let Some(r) = self.reorder {
            items.push(if r.depth == 1 {
                format!("reorder={}", r.p)
            } else {
                format!("reorder={}/{}", r.p, r.depth)
            });
        }
        if let Some(t) = self.truncate {
            items.push(if t.p >= 1.0 {
                format!("truncate={}", t.len)
            } else {
                format!("truncate={}@{}", t.len, t.p)
            });
        }
        if items.is_empty() { f.write_str("none") } else { f.write_str(&items.join("+")) }
    }
}

/// An `impair` parameter value checked for TCP (a scenario's `validate`).
///
/// # Errors
/// [`Invalid`] for `impair`: `impair: <what is wrong and what is valid>`.
pub fn check_tcp_text(text: &str) -> Result<(), Invalid> {
    Impairment::parse(text)
        .and_then(|s| s.check_tcp())
        .map_err(|e| Invalid::new("impair", format!("impair: {e}")))
}

/// An `impair` parameter value checked for UDP (a TCP-only item names the UDP ones); see
/// [`check_tcp_text`].
///
/// # Errors
/// [`Invalid`] for `impair`.
pub fn check_udp_text(text: &str) -> Result<(), Invalid> {
    Impairment::parse(text)
        .and_then(|s| s.check_udp())
        .map_err(|e| Invalid::new("impair", format!("impair: {e}")))
}

fn bad(key: &'static str, value: &str, expected: String) -> SpecError {
    SpecError::BadValue { key, value: value.to_string(), expected }
}

/// What each item takes, in words.
fn expected(key: &str) -> String {
    match key {
        "split" => "give a piece size of at least 1 byte, at most 1MiB (split=1 is byte by byte), or a range (split=1..7)",
        "merge" => "give a time window (merge=20ms) or a piece size of at least 1 byte, at most 16MiB (merge=4096B)",
        "gap" => "give a duration of at most 60s (0 for none): 500us, 20ms, 1s",
        "hold" => "give a duration above 0, at most 60s: 500us, 20ms, 1s",
        "delay" => "give a duration (delay=5ms) or a range (delay=2ms..8ms), at most 60s",
        "reset-after" => "give a number of bytes: reset-after=1000, reset-after=64KiB",
        "stall" => "give a pause and the bytes before it: stall=200ms@1KiB",
        "dir" => "give both, up (client to server) or down (server to client)",
        "reorder" => "give a probability and optionally a depth of 1..=1000: reorder=0.1, reorder=0.1/3",
        "truncate" => "give a size of at most 65535 bytes and optionally a probability: truncate=64, truncate=64@0.5",
        "rate" => "give bytes or bits per second: rate=1MiB/s, rate=100KB/s, rate=10mbit",
        _ => "give a probability in 0..=1 (or 0%..=100%)",
    }
    .to_string()
}

fn set_once<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), SpecError> {
    if slot.is_some() {
        return Err(SpecError::Repeated { key, hint: "" });
    }
    *slot = Some(value);
    Ok(())
}

fn duration_in(value: &str, key: &'static str, min: Duration) -> Result<Duration, SpecError> {
    match parse_duration(value) {
        Some(d) if d >= min && d <= MAX_DURATION => Ok(d),
        _ => Err(bad(key, value, expected(key))),
    }
}

fn probability(value: &str, key: &'static str) -> Result<f64, SpecError> {
    let parsed = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    };
    match parsed {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(bad(key, value, "give a probability in 0..=1 (or 0%..=100%), e.g. 0.1".into())),
    }
}

/// `A..B` or a single `A` (as `A..A`).
fn parse_range<T: Copy>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    match text.split_once("..") {
        Some((a, b)) => Some((parse(a.trim())?, parse(b.trim())?)),
        None => parse(text).map(|v| (v, v)),
    }
}

/// `4096`, `4096B`, `64KiB`, `1MiB`, `1KB` (1000), `1MB`, `1GiB`, `1GB`.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// `0`, `500us` (or `µs`), `20ms`, `1s`; fractions allowed (`1.5ms`).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        _ => return None,
    };
    if !seconds.is_finite() || seconds > 1e6 {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

/// `1MiB/s`, `100KB/s`, `8000B/s` (bytes per second); `10mbit`, `500kbit`, `1gbit`,
/// `64000bit` (bits per second, powers of ten). In bytes per second, at least 1.
fn parse_rate(text: &str) -> Result<u64, String> {
    let wrong = || expected("rate");
    let lower = text.to_ascii_lowercase();
    let bytes_per_s = if let Some(size) = text.strip_suffix("/s") {
        parse_size(size).ok_or_else(wrong)?
    } else {
        let (number, factor) = if let Some(n) = lower.strip_suffix("gbit") {
            (n, 1_000_000_000u64)
        } else if let Some(n) = lower.strip_suffix("mbit") {
            (n, 1_000_000)
        } else if let Some(n) = lower.strip_suffix("kbit") {
            (n, 1_000)
        } else if let Some(n) = lower.strip_suffix("bit") {
            (n, 1)
        } else {
            return Err(wrong());
        };
        let number: f64 = number.trim().parse().map_err(|_| wrong())?;
        (number * factor as f64 / 8.0).round() as u64
    };
    if bytes_per_s == 0 || bytes_per_s > 100 << 30 {
        return Err(format!("{}; at least 1 byte per second, at most 100GiB/s", wrong()));
    }
    Ok(bytes_per_s)
}

/// A duration as the spec writes it: `1ms`, `500us`, `2s`.
pub fn duration_text(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0".into()
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Impairment::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn items_parse_into_the_typed_spec() {
        let spec = Impairment::parse("split=1..7+delay=1ms+rate=1MiB/s+dir=up").unwrap();
        assert_eq!(spec.pieces, Some(Pieces::Split { min: 1, max: 7 }));
        assert_eq!(spec.delay, Some(Delay { min: Duration::from_millis(1), max: Duration::from_millis(1) }));
        assert_eq!(spec.rate, Some(1 << 20));
        assert_eq!(spec.directions, Directions::Up);
        assert!(spec.applies_to(Way::Up) && !spec.applies_to(Way::Down));
        assert_eq!(Impairment::parse("merge=20ms").unwrap().window, Some(Duration::from_millis(20)));
        assert_eq!(Impairment::parse("merge=4096B").unwrap().pieces, Some(Pieces::Merge(4096)));
        assert_eq!(Impairment::parse("merge=64KiB").unwrap().pieces, Some(Pieces::Merge(65536)));
        assert_eq!(Impairment::parse("rate=10mbit").unwrap().rate, Some(1_250_000));
        assert_eq!(Impairment::parse("loss=10%").unwrap().loss, Some(0.1));
        let stall = Impairment::parse("stall=200ms@1KiB").unwrap().stall.unwrap();
        assert_eq!((stall.pause, stall.after_bytes), (Duration::from_millis(200), 1024));
        assert_eq!(Impairment::parse("reorder=0.1/3").unwrap().reorder, Some(Reorder { p: 0.1, depth: 3 }));
        assert!(Impairment::parse("none").unwrap().is_none());
        assert!(!Impairment::parse("none").unwrap().applies_to(Way::Up));
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_spec() {
        for text in [
            "none",
            "split=3",
            "split=1..7+gap=2ms+hold=20ms",
            "merge=4096B+hold=20ms",
            "split=2..5+merge=3ms",
            "random+delay=2ms..8ms+rate=1000B/s+reset-after=10+stall=5ms@100+dir=down",
            "loss=0.1+duplicate=0.05+reorder=0.2/4+truncate=64@0.5",
        ] {
            let spec = Impairment::parse(text).unwrap();
            assert_eq!(Impairment::parse(&spec.to_string()).unwrap(), spec, "{text} -> {spec}");
        }
        assert_eq!(Impairment::parse("delay=5ms").unwrap().to_string(), "delay=5ms");
    }

    #[test]
    fn bad_specs_get_one_line_saying_what_is_valid() {
        assert_eq!(
            err("split=0"),
            "bad split `0`: give a piece size of at least 1 byte, at most 1MiB (split=1 is byte by byte), or a range (split=1..7)"
        );
        assert_eq!(err("loss=1.5"), "bad loss `1.5`: give a probability in 0..=1 (or 0%..=100%), e.g. 0.1");
        assert_eq!(
            err("rate=fast"),
            "bad rate `fast`: give bytes or bits per second: rate=1MiB/s, rate=100KB/s, rate=10mbit"
        );
        assert!(err("jitter=1ms").starts_with("unknown impairment `jitter=1ms`; valid: none, split, merge"));
        assert_eq!(
            err("split=3+random"),
            "split and random both decide the piece sizes; give one (random mixes splits and merges)"
        );
        assert!(err("delay=1ms+delay=2ms").starts_with("delay given twice"));
        assert!(err("merge=20ms+merge=30ms").contains("merge=4096B+hold=20ms"));
        assert_eq!(err("split=3++delay=1ms"), SpecError::Empty.to_string());
        assert!(err("split=7..1").starts_with("bad split `7..1`"));
        assert!(err("delay=5").starts_with("bad delay `5`"), "a duration needs a unit");
        assert!(err("rate=0B/s").contains("at least 1 byte per second"));
        for text in ["split=0", "loss=1.5", "rate=fast", "bogus", ""] {
            assert!(!err(text).contains('\n'), "{text}");
        }
    }

    #[test]
    fn each_transport_refuses_the_other_s_items() {
        let udp = Impairment::parse("loss=0.1").unwrap();
        assert_eq!(
            udp.check_tcp().unwrap_err().to_string(),
            "loss applies to UDP only; TCP never loses, repeats, reorders or cuts bytes; use reset-after or stall"
        );
        assert!(udp.check_udp().is_ok());
        let tcp = Impairment::parse("split=3").unwrap();
        assert!(tcp.check_udp().unwrap_err().to_string().starts_with("split applies to TCP only"));
        assert!(Impairment::parse("delay=1ms").unwrap().check_udp().is_ok());
        assert!(check_tcp_text("split=1").is_ok());
        assert!(check_tcp_text("split=0").is_err());
    }

    #[test]
    fn defaults_for_gap_and_hold_depend_on_the_pieces() {
        assert_eq!(Impairment::parse("split=3").unwrap().gap(), DEFAULT_SPLIT_GAP);
        assert_eq!(Impairment::parse("random").unwrap().gap(), DEFAULT_RANDOM_GAP);
        assert_eq!(Impairment::parse("merge=4096B").unwrap().gap(), Duration::ZERO);
        assert_eq!(Impairment::parse("split=3+gap=0").unwrap().gap(), Duration::ZERO);
        assert_eq!(Impairment::parse("split=3").unwrap().hold(), DEFAULT_HOLD);
    }
}
