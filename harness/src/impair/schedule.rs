//! What one direction of a TCP relay writes, and when: a pure state machine on a virtual
//! clock, so it can be tested without sockets and replayed exactly.
//!
//! Bytes go through three stages:
//!
//! 1. **gate** (`merge=DUR`): bytes are held from the first held byte for the window,
//!    then released together. Without a window, bytes are released as they arrive.
//! 2. **cutter** (`split`, `merge=SIZE`, `random`): the released stream is cut at
//!    stream offsets drawn from the seeded generator — not at the places the relay's
//!    reads happened to end — so the same seed cuts the same bytes into the same
//!    pieces however the input arrived. A piece whose bytes have not all arrived waits
//!    at most `hold`; then what it has is written, an extra cut, and the seeded cuts stay
//!    where they were. Without a cutter each release is one piece.
//! 3. **shaper**: `delay` (each piece due at its ready time plus a seeded delay, never
//!    before the piece ahead of it: jitter does not reorder), `rate` (a token bucket on
//!    virtual time, pieces cut to at most 5 ms of the rate), `stall` and `reset-after`
//!    (pieces cut at the byte count), and `gap` (a pause after each write; `random`
//!    pauses after its splits only).
//!
//! The relay calls [`TcpSchedule::push`] with what it read, writes what
//! [`TcpSchedule::pop_due`] hands out, reports each write with [`TcpSchedule::written`],
//! and sleeps until [`TcpSchedule::next_wakeup`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::spec::{DEFAULT_RANDOM_GAP, Delay, Impairment, Pieces, Stall};
use crate::seed::Rng;

/// A piece ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// When it may be written, on the schedule's clock.
    pub due: Duration,
    /// When its first byte arrived at the relay.
    pub arrived: Duration,
    /// The bytes.
    pub bytes: Bytes,
    /// After writing it, reset the connection (`reset-after`).
    pub reset: bool,
    /// The pause after writing it, before the next write.
    pub gap: Duration,
}

/// One direction's schedule; see the module docs.
#[derive(Debug)]
pub struct TcpSchedule {
    pieces: Option<Pieces>,
    window: Option<Duration>,
    hold: Duration,
    /// The pause after a piece: `gap` as given, else the default for the pieces.
    gap: Duration,
    /// `gap` as given, which then applies after every piece of `random` too.
    explicit_gap: Option<Duration>,
    /// The pause after the current seeded piece.
    piece_gap: Duration,
    /// The pause after the last piece handed out.
    popped_gap: Duration,
    delay: Option<Delay>,
    rate: Option<u64>,
    stall: Option<Stall>,
    reset_after: Option<u64>,
    rng: Rng,

    /// Bytes read and not yet cut into pieces; the first `released` are released.
    held: BytesMut,
    released: usize,
    /// When the latest release happened.
    released_at: Duration,
    /// `merge=DUR`: arrival of the first unreleased byte.
    window_start: Option<Duration>,
    /// Bytes the current seeded piece still needs; 0 draws a new size.
    piece_left: usize,
    /// Release time of the oldest released byte not yet in a piece.
    partial_since: Option<Duration>,
    /// Input chunks still (partly) held: (stream offset one past the chunk, arrival).
    arrivals: VecDeque<(u64, Duration)>,
    /// Stream offset of the first held byte.
    cut_offset: u64,

    out: VecDeque<Out>,
    out_bytes: usize,
    last_due: Duration,
    bucket_free: Duration,
    shaped: u64,
    written: u64,
    not_before: Duration,
    stall_done: bool,
    /// `reset-after` was reached: everything after is dropped.
    cut_off: bool,
    eof: bool,
}

impl TcpSchedule {
    /// A schedule for `spec` drawing from `seed` (one per connection and direction).
    pub fn new(spec: &Impairment, seed: u64) -> Self {
        TcpSchedule {
            pieces: spec.pieces,
            window: spec.window,
            hold: spec.hold(),
            gap: spec.gap(),
            explicit_gap: spec.gap,
            piece_gap: spec.gap(),
            popped_gap: Duration::ZERO,
            delay: spec.delay,
            rate: spec.rate,
            stall: spec.stall,
            reset_after: spec.reset_after,
            rng: Rng::new(seed),
            held: BytesMut::new(),
            released: 0,
            released_at: Duration::ZERO,
            window_start: None,
            piece_left: 0,
            partial_since: None,
            arrivals: VecDeque::new(),
            cut_offset: 0,
            out: VecDeque::new(),
            out_bytes: 0,
            last_due: Duration::ZERO,
            bucket_free: Duration::ZERO,
            shaped: 0,
            written: 0,
            not_before: Duration::ZERO,
            stall_done: false,
            cut_off: false,
            eof: false,
        }
    }

    /// Bytes `data` arrived at `now`.
    pub fn push(&mut self, now: Duration, data: &[u8]) {
        self.advance(now);
        if self.cut_off || self.eof || data.is_empty() {
            return;
        }
        let end = self.cut_offset + self.held.len() as u64 + data.len() as u64;
        self.arrivals.push_back((end, now));
        self.held.extend_from_slice(data);
        match self.window {
            Some(_) => {
                self.window_start.get_or_insert(now);
            }
            None => self.release(now),
        }
        self.cut(now);
    }

    /// The input ended at `now`: everything held is released and written at once.
    pub fn finish(&mut self, now: Duration) {
        self.advance(now);
        self.eof = true;
        self.release(now);
        self.window_start = None;
        self.cut(now);
        let left = self.released;
        if left > 0 {
            self.piece_left = self.piece_left.saturating_sub(left);
            self.partial_since = None;
            self.emit(left, now);
        }
    }

    /// The next piece due by `now`, if any. Lets time pass first (windows and holds that
    /// expired by `now` release their bytes).
    pub fn pop_due(&mut self, now: Duration) -> Option<Out> {
        self.advance(now);
        let front = self.out.front()?;
        if front.due <= now && self.not_before <= now {
            let out = self.out.pop_front()?;
            self.out_bytes -= out.bytes.len();
            self.popped_gap = out.gap;
            Some(out)
        } else {
            None
        }
    }

    /// A write of `len` bytes finished at `now`: starts the gap, and the stall when its
    /// byte count was reached.
    pub fn written(&mut self, now: Duration, len: usize) {
        self.written += len as u64;
        self.not_before = now + self.popped_gap;
        if let Some(stall) = self.stall
            && !self.stall_done
            && self.written >= stall.after_bytes
        {
            self.stall_done = true;
            self.not_before = self.not_before.max(now + stall.pause);
        }
    }

    /// When something next happens: a piece falls due, a window ends, a hold expires.
    /// `None` when nothing is waiting.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let due = self.out.front().map(|o| o.due.max(self.not_before));
        let window = self.window_start.zip(self.window).map(|(start, w)| start + w);
        let hold = self.partial_since.map(|since| since + self.hold);
        [due, window, hold].into_iter().flatten().min()
    }

    /// Bytes held or queued, for the relay's read-ahead limit.
    pub fn buffered(&self) -> usize {
        self.held.len() + self.out_bytes
    }

    /// True when nothing is held or queued.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.out.is_empty()
    }

    /// True once `reset-after` was reached: the relay resets after the last piece.
    pub fn is_cut_off(&self) -> bool {
        self.cut_off
    }

    /// Lets time pass to `now`: an expired window releases, an expired hold flushes.
    fn advance(&mut self, now: Duration) {
        if let (Some(start), Some(window)) = (self.window_start, self.window)
            && now >= start + window
        {
            self.window_start = None;
            self.release(start + window);
        }
        self.cut(now);
    }

    fn release(&mut self, at: Duration) {
        if self.released < self.held.len() {
            self.released = self.held.len();
            self.released_at = at;
        }
    }

    /// Cuts released bytes into pieces.
    fn cut(&mut self, now: Duration) {
        loop {
            let available = self.released;
            if available == 0 {
                self.partial_since = None;
                return;
            }
            if self.pieces.is_none() {
                let at = self.released_at;
                self.emit(available, at);
                continue;
            }
            if self.piece_left == 0 {
                (self.piece_left, self.piece_gap) = self.draw_piece();
            }
            if available >= self.piece_left {
                let (len, at) = (self.piece_left, self.released_at);
                self.piece_left = 0;
                self.partial_since = None;
                self.emit(len, at);
                continue;
            }
            let since = *self.partial_since.get_or_insert(self.released_at);
            if now >= since + self.hold {
                self.piece_left -= available;
                self.partial_since = None;
                self.emit(available, since + self.hold);
                continue;
            }
            return;
        }
    }

    /// The size of the next seeded piece, and the pause after it.
    fn draw_piece(&mut self) -> (usize, Duration) {
        match self.pieces {
            Some(Pieces::Split { min, max }) => (self.rng.between(min as u64, max as u64) as usize, self.gap),
            Some(Pieces::Merge(size)) => (size, self.gap),
            Some(Pieces::Random) => {
                // Splits leave with a gap so a reader that keeps up sees them apart;
                // merges go at once.
                if self.rng.chance(0.5) {
                    (self.rng.between(1, 8) as usize, self.explicit_gap.unwrap_or(DEFAULT_RANDOM_GAP))
                } else {
                    (self.rng.between(9, 1024) as usize, self.explicit_gap.unwrap_or(Duration::ZERO))
                }
            }
            None => (usize::MAX, self.gap),
        }
    }

    /// Moves the first `len` held bytes (all released) into the shaper, ready at `ready`.
    fn emit(&mut self, len: usize, ready: Duration) {
        let bytes = self.held.split_to(len).freeze();
        self.released -= len;
        let arrived = self.arrivals.front().map_or(ready, |&(_, at)| at);
        self.cut_offset += len as u64;
        while self.arrivals.front().is_some_and(|&(end, _)| end <= self.cut_offset) {
            self.arrivals.pop_front();
        }
        self.shape(bytes, ready, arrived);
    }

    /// Delay, rate, stall and reset cuts.
    fn shape(&mut self, mut bytes: Bytes, ready: Duration, arrived: Duration) {
        if self.cut_off {
            return;
        }
        let delay = match self.delay {
            Some(Delay { min, max }) if min == max => min,
            Some(Delay { min, max }) => {
                let span = (max - min).as_nanos() as u64;
                min + Duration::from_nanos(self.rng.between(0, span))
            }
            None => Duration::ZERO,
        };
        let mut due = (ready + delay).max(self.last_due);
        while !bytes.is_empty() || self.reset_after == Some(self.shaped) {
            let mut len = bytes.len();
            if let Some(rate) = self.rate {
                let burst = (rate / 200).clamp(1, 64 << 10) as usize;
                len = len.min(burst);
            }
            if let Some(stall) = self.stall
                && self.shaped < stall.after_bytes
            {
                len = len.min((stall.after_bytes - self.shaped) as usize);
            }
            let mut reset = false;
            if let Some(limit) = self.reset_after {
                let left = limit.saturating_sub(self.shaped) as usize;
                if len >= left {
                    len = left;
                    reset = true;
                }
            }
            let piece = bytes.split_to(len);
            if let Some(rate) = self.rate {
                due = due.max(self.bucket_free);
                self.bucket_free = due + Duration::from_secs_f64(len as f64 / rate as f64);
            }
            self.last_due = due;
            self.shaped += len as u64;
            self.out_bytes += len;
            let gap = if self.pieces.is_some() { self.piece_gap } else { self.gap };
            self.out.push_back(Out { due, arrived, bytes: piece, reset, gap });
            if reset {
                self.cut_off = true;
                self.held.clear();
                self.released = 0;
                self.partial_since = None;
                self.window_start = None;
                self.arrivals.clear();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    type Writes = Vec<(Duration, Vec<u8>)>;

    /// Writes everything that falls due up to `until`, each write taking no time.
    fn drain(schedule: &mut TcpSchedule, until: Duration, writes: &mut Writes) {
        for _ in 0..1_000_000 {
            let Some(at) = schedule.next_wakeup().filter(|&t| t <= until) else { return };
            let before = writes.len();
            while let Some(out) = schedule.pop_due(at) {
                writes.push((at, out.bytes.to_vec()));
                schedule.written(at, out.bytes.len());
            }
            if writes.len() == before && schedule.next_wakeup() == Some(at) {
                return; // nothing more can happen at this time
            }
        }
        panic!("the schedule did not settle");
    }

    /// Runs a schedule over `(arrival ms, bytes)` chunks, writing every piece as soon as
    /// it is due, then the end of input at `end_ms`; returns (write time, bytes) for each
    /// write.
    fn drive(spec: &str, seed: u64, chunks: &[(u64, &[u8])], end_ms: u64) -> Writes {
        let spec = Impairment::parse(spec).unwrap();
        let mut schedule = TcpSchedule::new(&spec, seed);
        let mut writes = Vec::new();
        for &(at, data) in chunks {
            drain(&mut schedule, ms(at), &mut writes);
            schedule.push(ms(at), data);
            drain(&mut schedule, ms(at), &mut writes);
        }
        drain(&mut schedule, ms(end_ms), &mut writes);
        schedule.finish(ms(end_ms));
        drain(&mut schedule, Duration::MAX, &mut writes);
        assert!(schedule.is_empty(), "everything written");
        writes
    }

    fn sizes(writes: &Writes) -> Vec<usize> {
        writes.iter().map(|(_, b)| b.len()).collect()
    }

    fn concat(writes: &Writes) -> Vec<u8> {
        writes.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }

    #[test]
    fn split_cuts_at_stream_offsets_whatever_the_reads() {
        let at_once = drive("split=3", 1, &[(0, b"1234567abcdehhhhh")], 100);
        let in_three = drive("split=3", 1, &[(0, b"1234567"), (0, b"abcde"), (1, b"hhhhh")], 100);
        assert_eq!(sizes(&at_once), [3, 3, 3, 3, 3, 2]);
        assert_eq!(sizes(&in_three), sizes(&at_once));
        let times: Vec<Duration> = at_once.iter().map(|w| w.0).collect();
        assert_eq!(times, [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5)], "a 1 ms gap after each write");
        assert_eq!(concat(&at_once), b"1234567abcdehhhhh");
    }

    #[test]
    fn a_piece_waits_at_most_hold_for_its_bytes() {
        // "pin" leaves at once; "g" waits 5 ms for two more bytes that never come.
        let writes = drive("split=3", 1, &[(0, b"ping")], 100);
        assert_eq!(writes, [(ms(0), b"pin".to_vec()), (ms(5), b"g".to_vec())]);
        // The cut after the flush stays where the seed put it: "g" + "ab" = the 3 of the piece.
        let writes = drive("split=3", 1, &[(0, b"ping"), (10, b"abcd")], 100);
        assert_eq!(sizes(&writes), [3, 1, 2, 2]);
    }

    #[test]
    fn merge_by_time_writes_a_window_as_one() {
        let writes =
            drive("merge=50ms", 9, &[(0, b"1234567"), (1, b"abcde"), (2, b"hhhhh"), (70, b"x")], 200);
        assert_eq!(writes, [(ms(50), b"1234567abcdehhhhh".to_vec()), (ms(120), b"x".to_vec())]);
    }

    #[test]
    fn merge_by_size_flushes_on_the_hold_timer() {
        let writes = drive("merge=8B+hold=20ms", 0, &[(0, b"abc"), (1, b"defgh"), (2, b"ij")], 100);
        assert_eq!(writes, [(ms(1), b"abcdefgh".to_vec()), (ms(22), b"ij".to_vec())]);
    }

    #[test]
    fn delay_jitter_never_reorders() {
        let chunks: Vec<(u64, &[u8])> = (0..50).map(|i| (i, &b"x"[..])).collect();
        let writes = drive("delay=1ms..30ms", 5, &chunks, 200);
        assert_eq!(writes.len(), 50);
        assert!(writes.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(writes[0].0 >= ms(1) && writes[0].0 <= ms(30));
    }

    #[test]
    fn rate_paces_by_the_token_bucket() {
        let data = vec![7u8; 10_000];
        let writes = drive("rate=100KB/s", 0, &[(0, &data)], 0);
        assert_eq!(sizes(&writes).iter().sum::<usize>(), 10_000);
        assert!(sizes(&writes).iter().all(|&n| n <= 500), "5 ms of the rate per write");
        // 10,000 bytes at 100,000 B/s: the last write starts 0.1 s minus one burst in.
        assert_eq!(writes.last().unwrap().0, ms(95));
    }

    #[test]
    fn reset_after_cuts_at_the_byte_and_drops_the_rest() {
        let spec = Impairment::parse("reset-after=5").unwrap();
        let mut schedule = TcpSchedule::new(&spec, 0);
        schedule.push(ms(0), b"abc");
        schedule.push(ms(0), b"defgh");
        let first = schedule.pop_due(ms(0)).unwrap();
        let second = schedule.pop_due(ms(0)).unwrap();
        assert_eq!((&first.bytes[..], first.reset), (&b"abc"[..], false));
        assert_eq!((&second.bytes[..], second.reset), (&b"de"[..], true));
        assert!(schedule.pop_due(ms(1)).is_none() && schedule.is_cut_off());
        schedule.push(ms(2), b"more");
        assert!(schedule.is_empty());
    }

    #[test]
    fn stall_pauses_once_after_its_bytes() {
        let writes = drive("stall=100ms@4", 0, &[(0, b"abcdefgh")], 0);
        assert_eq!(writes, [(ms(0), b"abcd".to_vec()), (ms(100), b"efgh".to_vec())]);
    }

    /// Specs the properties run over.
    const SPECS: &[&str] = &[
        "none",
        "split=1",
        "split=1..7",
        "merge=64B",
        "random",
        "random+delay=0..3ms",
        "split=2..5+merge=3ms",
        "merge=2ms+delay=1ms",
        "random+rate=200KB/s",
        "split=1..9+stall=4ms@10",
    ];

    /// `data` cut into chunks of 1..=16 bytes by `cuts`, `step % 4` ms apart.
    fn chunked(data: &[u8], cuts: &[u8], step: u8) -> Vec<(u64, Vec<u8>)> {
        let mut chunks = Vec::new();
        let mut rest = data;
        let mut at = 0;
        let mut cuts = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (usize::from(cuts.next().copied().unwrap_or(15)) % 16 + 1).min(rest.len());
            chunks.push((at, rest[..n].to_vec()));
            rest = &rest[n..];
            at += u64::from(step % 4);
        }
        chunks
    }

    /// The same seed and the same input give the same writes at the same times, and the
    /// writes are the input, in order.
    #[test]
    fn same_seed_same_input_same_writes() {
        fn prop(spec: u8, seed: u64, data: Vec<u8>, cuts: Vec<u8>, step: u8) -> bool {
            let spec = SPECS[usize::from(spec) % SPECS.len()];
            let chunks = chunked(&data, &cuts, step);
            let chunks: Vec<(u64, &[u8])> = chunks.iter().map(|(t, b)| (*t, b.as_slice())).collect();
            let end = chunks.last().map_or(0, |c| c.0) + 1;
            let a = drive(spec, seed, &chunks, end);
            let b = drive(spec, seed, &chunks, end);
            a == b && concat(&a) == data
        }
        quickcheck::QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(u8, u64, Vec<u8>, Vec<u8>, u8) -> bool);
    }

    /// With every byte arriving within `hold`, a seeded cutter makes the same pieces
    /// however the input was chunked.
    #[test]
    fn seeded_cuts_do_not_depend_on_the_input_chunking() {
        fn prop(spec: u8, seed: u64, data: Vec<u8>, cuts: Vec<u8>) -> bool {
            let spec = ["split=1", "split=1..7", "merge=64B", "random"][usize::from(spec) % 4];
            let chunks = chunked(&data, &cuts, 0);
            let chunks: Vec<(u64, &[u8])> = chunks.iter().map(|(t, b)| (*t, b.as_slice())).collect();
            sizes(&drive(spec, seed, &chunks, 0)) == sizes(&drive(spec, seed, &[(0, &data)], 0))
        }
        quickcheck::QuickCheck::new().tests(1000).quickcheck(prop as fn(u8, u64, Vec<u8>, Vec<u8>) -> bool);
    }
}
