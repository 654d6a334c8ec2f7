//! Link rates as `tc` writes them: `10mbit`, `500kbit`, `1gbit`.
//!
//! The units are tc's bit units, SI (1 mbit = 1,000,000 bit/s), never bytes: `tc`'s own
//! `mbps` means megabytes per second, a common mistake, so byte units are refused
//! rather than guessed.

use std::fmt;
use std::str::FromStr;

/// A link rate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(u64);

/// Slowest rate accepted: 10 kbit/s (tbf works lower, but a case would take minutes).
pub const MIN_RATE: Rate = Rate(10_000);
/// Fastest rate accepted: 100 gbit/s.
pub const MAX_RATE: Rate = Rate(100_000_000_000);

/// A rate that does not parse or is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad rate `{}`: {}; write a number and a unit: 500kbit, 10mbit, 1gbit (SI, bits per second)",
            self.text, self.reason
        )
    }
}

impl std::error::Error for RateError {}

impl Rate {
    /// `bits_per_s` bits per second.
    pub const fn from_bits_per_s(bits_per_s: u64) -> Self {
        Rate(bits_per_s)
    }

    /// Bits per second.
    pub fn bits_per_s(self) -> u64 {
        self.0
    }

    /// Bytes per second (a rate of payload plus headers, as tbf counts it).
    pub fn bytes_per_s(self) -> f64 {
        self.0 as f64 / 8.0
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, RateError> {
        let err = |reason: &str| RateError { text: text.to_string(), reason: reason.to_string() };
        let lower = text.trim().to_ascii_lowercase();
        let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
        let (number, unit) = lower.split_at(split);
        let scale: u64 = match unit {
            "bit" => 1,
            "kbit" => 1_000,
            "mbit" => 1_000_000,
            "gbit" => 1_000_000_000,
            "" => return Err(err("no unit")),
            u if u.ends_with("bps") || u.ends_with('b') || u.ends_with("byte") => {
                return Err(err("byte units are ambiguous in tc (mbps is megabytes per second)"));
            }
            _ => return Err(err("unknown unit")),
        };
        let value: f64 = number.parse().map_err(|_| err("not a number"))?;
        let bits = (value * scale as f64).round();
        if !bits.is_finite() || bits < MIN_RATE.0 as f64 || bits > MAX_RATE.0 as f64 {
            return Err(err(&format!("out of range {MIN_RATE}..={MAX_RATE}")));
        }
        Ok(Rate(bits as u64))
    }
}

impl fmt::Display for Rate {
    /// The largest unit that shows the rate exactly: `100mbit`, `1500kbit`, `1gbit`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (scale, unit) in [(1_000_000_000, "gbit"), (1_000_000, "mbit"), (1_000, "kbit")] {
            if self.0 % scale == 0 {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}bit", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_units_parse_and_print_back() {
        assert_eq!("10mbit".parse::<Rate>().unwrap().bits_per_s(), 10_000_000);
        assert_eq!("1.5Gbit".parse::<Rate>().unwrap().bits_per_s(), 1_500_000_000);
        assert_eq!("500kbit".parse::<Rate>().unwrap().to_string(), "500kbit");
        assert_eq!(Rate(1_500_000).to_string(), "1500kbit");
        assert_eq!(Rate(100_000_000).to_string(), "100mbit");
        assert_eq!(Rate(12_345).to_string(), "12345bit");
    }

    #[test]
    fn byte_units_and_nonsense_are_refused_with_the_reason() {
        let e = "10mbps".parse::<Rate>().unwrap_err();
        assert!(e.to_string().contains("mbps is megabytes per second"), "{e}");
        assert!("10".parse::<Rate>().unwrap_err().to_string().contains("no unit"));
        assert!("fast".parse::<Rate>().is_err());
        assert!("1bit".parse::<Rate>().unwrap_err().to_string().contains("out of range"));
        assert!("1000gbit".parse::<Rate>().is_err());
    }
}
