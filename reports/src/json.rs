//! `report.json`: the report model as pretty-printed JSON.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufReader, Read, Seek};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use socklab_model::report::{OLDEST_SCHEMA_VERSION, Report, SCHEMA_VERSION};

use crate::RenderError;

/// The model as JSON, ending in a newline.
///
/// # Errors
/// Only if serialisation fails, which the model's types do not allow in practice.
pub fn render(report: &Report) -> Result<String, RenderError> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

/// Why a `report.json` could not be read back.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not a report.
    #[error("not a socklab report: {0}")]
    Invalid(serde_json::Error),
    /// Written by a socklab with another schema.
    #[error(
        "report schema version {found}; this socklab reads versions {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}"
    )]
    Version {
        /// The version in the file.
        found: u64,
    },
}

impl From<serde_json::Error> for ParseError {
    fn from(error: serde_json::Error) -> Self {
        ParseError::Invalid(error)
    }
}

/// Reads a report back, checking the schema version first so an old or new file gets a
/// clear message rather than a missing-field error.
///
/// The text goes straight into the typed model, never through a `serde_json::Value`
/// tree: a value tree of nested arrays takes some fifty times the text's size, while
/// the model refuses the first value of the wrong type.
///
/// # Errors
/// [`ParseError`] when the text is not a report this version can read.
pub fn parse(text: &str) -> Result<Report, ParseError> {
    check_version(serde_json::from_str(text)?)?;
    Ok(serde_json::from_str(text)?)
}

/// [`parse`] from a reader, of which at most `limit` bytes are read. It is read twice
/// (once for the version, once for the report), so it must be able to go back to its
/// start. Nothing is buffered beyond a `BufReader`'s few kilobytes: memory follows the
/// report, not the file.
///
/// # Errors
/// [`ParseError`] when the bytes are not a report this version can read (a report cut
/// at `limit` is not); a failed read shows as [`ParseError::Invalid`] with the I/O error.
pub fn parse_reader<R: Read + Seek>(mut reader: R, limit: u64) -> Result<Report, ParseError> {
    check_version(serde_json::from_reader(BufReader::new((&mut reader).take(limit)))?)?;
    reader.rewind().map_err(|e| ParseError::Invalid(serde_json::Error::io(e)))?;
    Ok(serde_json::from_reader(BufReader::new(reader.take(limit)))?)
}

fn check_version(version: SchemaVersion) -> Result<(), ParseError> {
    let found = version.0.unwrap_or(0);
    if (u64::from(OLDEST_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&found) {
        Ok(())
    } else {
        Err(ParseError::Version { found })
    }
}

/// The `schema_version` of a report: the first pass over a file, which skips every other
/// value without keeping it. `None` when the field is absent or not a whole number.
struct SchemaVersion(Option<u64>);

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SchemaVersionVisitor)
    }
}

struct SchemaVersionVisitor;

impl<'de> Visitor<'de> for SchemaVersionVisitor {
    type Value = SchemaVersion;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a socklab report)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SchemaVersion, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "schema_version" && found.is_none() {
                found = Some(map.next_value::<WholeNumber>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(SchemaVersion(found.flatten()))
    }
}

/// A whole number, or `None` for any other value (skipped without keeping it).
struct WholeNumber(Option<u64>);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WholeNumberVisitor)
    }
}

struct WholeNumberVisitor;

impl<'de> Visitor<'de> for WholeNumberVisitor {
    type Value = WholeNumber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(Some(n)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<WholeNumber, E> {
        Ok(WholeNumber(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<WholeNumber, E> {
        Ok(WholeNumber(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<WholeNumber, E> {
        Ok(WholeNumber(None))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<WholeNumber, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(WholeNumber(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WholeNumber, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(WholeNumber(None))
    }
}
