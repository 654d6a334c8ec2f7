//! `report.json`: the report model as pretty-printed JSON.

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
/// # Errors
/// [`ParseError`] when the text is not a report this version can read.
pub fn parse(text: &str) -> Result<Report, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let found = value.get("schema_version").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if !(u64::from(OLDEST_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&found) {
        return Err(ParseError::Version { found });
    }
    Ok(serde_json::from_value(value)?)
}
