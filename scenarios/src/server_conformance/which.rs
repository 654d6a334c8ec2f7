//! The `check` parameter: which line of the table ([`super::CHECKS`]) a case runs, by its
//! name. Its names, and the built-in sweep's, are read off the table when the crate is
//! compiled, so the table is the only list of checks there is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use socklab_harness::params::{Named, UnknownName};

use super::CHECKS;
use super::check::Entry;

/// A check of `server-conformance`, as the `check` parameter names it. The default is
/// the table's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Which(usize);

impl Which {
    /// Every check's name, in the table's order (the order `socklab probe` runs them).
    pub const NAMES: &'static [&'static str] = &NAMES;

    /// Every check, in the table's order.
    pub fn all() -> impl Iterator<Item = Which> {
        (0..CHECKS.len()).map(Which)
    }

    /// Its name, as the `check` parameter takes it.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Its line of the table.
    pub(crate) fn entry(self) -> &'static Entry {
        &CHECKS[self.0]
    }
}

impl Named for Which {
    const NAMES: &'static [&'static str] = &NAMES;
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Which {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Which, UnknownName> {
        Which::all().find(|which| which.name() == s).ok_or_else(|| UnknownName {
            what: "check",
            input: s.to_string(),
            valid: NAMES.to_vec(),
        })
    }
}

impl Serialize for Which {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Which {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Which, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The names of the table's lines, in order.
const NAMES: [&str; CHECKS.len()] = {
    let mut names = [""; CHECKS.len()];
    let mut i = 0;
    while i < CHECKS.len() {
        names[i] = CHECKS[i].name;
        i += 1;
    }
    names
};

/// The `check` values of the built-in sweep, `--set` style: the names of the lines in the
/// default sweep, joined by commas.
pub(crate) const DEFAULT_SWEEP: &str = match std::str::from_utf8(&SWEEP_BYTES) {
    Ok(text) => text,
    Err(_) => panic!("check names are UTF-8"),
};

const SWEEP_BYTES: [u8; sweep_len()] = sweep_bytes();

/// Bytes of [`DEFAULT_SWEEP`].
const fn sweep_len() -> usize {
    let (mut len, mut i) = (0, 0);
    while i < CHECKS.len() {
        if CHECKS[i].in_default_sweep {
            len += CHECKS[i].name.len() + if len > 0 { 1 } else { 0 };
        }
        i += 1;
    }
    len
}

/// [`DEFAULT_SWEEP`]'s bytes: the names, a comma between each two.
const fn sweep_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let (mut at, mut i) = (0, 0);
    while i < CHECKS.len() {
        if CHECKS[i].in_default_sweep {
            if at > 0 {
                out[at] = b',';
                at += 1;
            }
            let name = CHECKS[i].name.as_bytes();
            let mut j = 0;
            while j < name.len() {
                out[at] = name[j];
                at += 1;
                j += 1;
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_list_the_valid() {
        for which in Which::all() {
            assert_eq!(which.name().parse::<Which>().unwrap(), which);
        }
        assert_eq!(Which::default().name(), "reassembly");
        let err = "resets".parse::<Which>().unwrap_err().to_string();
        assert!(err.contains("reassembly, large-message"), "{err}");
        let json = serde_json::to_string(&Which::all().nth(1).unwrap()).unwrap();
        assert_eq!(json, "\"large-message\"");
    }

    #[test]
    fn the_default_sweep_joins_the_names_it_runs() {
        let swept: Vec<&str> = CHECKS.iter().filter(|e| e.in_default_sweep).map(|e| e.name).collect();
        assert_eq!(DEFAULT_SWEEP, swept.join(","));
    }
}
