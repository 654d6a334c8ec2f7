//! Seeds: one per run, and one per case derived from it.
//!
//! A case's seed depends only on the run seed, the scenario and its full parameters, so
//! `socklab run SCENARIO --set ... --seed RUN_SEED` replays the same case seed no matter
//! where the case stood in its suite.

use std::time::{SystemTime, UNIX_EPOCH};

/// A run seed taken from the clock, for runs that were not given `--seed`.
pub fn fresh_run_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    splitmix64(nanos ^ u64::from(std::process::id()))
}

/// The seed of one case: the run seed mixed with a stable 64-bit FNV-1a hash of `key`.
pub fn case_seed(run_seed: u64, key: &str) -> u64 {
    splitmix64(run_seed ^ fnv1a(key.as_bytes()))
}

/// FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The seed of one independent stream of random choices inside a case: the case seed
/// mixed with a stream number (an impairment relay uses one per connection and
/// direction), so adding a stream never changes the choices of another.
pub fn stream_seed(seed: u64, stream: u64) -> u64 {
    splitmix64(seed ^ splitmix64(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// A small seeded generator (SplitMix64, as in Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014): our own, so a seed replays the same choices
/// whatever crate versions socklab is built with. Not for cryptography.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0.0..1.0`, from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (clamped to `0..=1`); always draws one number, so a
    /// sequence of choices stays aligned whatever their outcomes.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A number in `low..=high` (`low` when `high < low`), without modulo bias
    /// (Lemire's multiply-shift with rejection).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            self.next_u64();
            return low;
        }
        let span = high - low;
        if span == u64::MAX {
            return self.next_u64();
        }
        let range = span + 1;
        let threshold = range.wrapping_neg() % range;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(range);
            if (product as u64) >= threshold {
                return low + (product >> 64) as u64;
            }
        }
    }
}

/// The SplitMix64 finaliser: spreads nearby inputs over the whole range.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_seed_is_stable_and_depends_on_both_inputs() {
        assert_eq!(case_seed(1, "a"), case_seed(1, "a"));
        assert_ne!(case_seed(1, "a"), case_seed(2, "a"));
        assert_ne!(case_seed(1, "a"), case_seed(1, "b"));
        // Fixed value: a change here breaks replaying old seeds.
        assert_eq!(fnv1a(b"socklab"), 0x5041_ec16_fb97_e0a4);
    }

    #[test]
    fn the_generator_sequence_is_fixed() {
        // SplitMix64's published first output for seed 0. A change here breaks replays.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let draws: Vec<u64> = (0..100).map(|_| a.between(3, 9)).collect();
        assert!(draws.iter().all(|d| (3..=9).contains(d)));
        assert_eq!(draws, (0..100).map(|_| b.between(3, 9)).collect::<Vec<_>>());
        assert_eq!(Rng::new(1).between(5, 5), 5);
        assert_ne!(stream_seed(1, 0), stream_seed(1, 1));
    }

    #[test]
    fn chances_come_out_near_their_probability() {
        let mut rng = Rng::new(42);
        let hits = (0..100_000).filter(|_| rng.chance(0.1)).count();
        assert!((9_000..=11_000).contains(&hits), "{hits}");
    }
}
