//! Showing bytes and values to people: printable forms of payloads, and parameter values as
//! the command line writes them.

use serde_json::Value;

/// How many bytes of a payload reports keep in printable form.
pub const SHOWN_BYTES: usize = 256;

/// The printable form of `bytes`: ASCII as is, everything else escaped (`\n`, `\x00`),
/// cut to [`SHOWN_BYTES`] with a trailing `…` when longer.
pub fn printable(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN_BYTES)];
    let mut text = shown.escape_ascii().to_string();
    if bytes.len() > SHOWN_BYTES {
        text.push('…');
    }
    text
}

/// A parameter value as written on the command line: strings bare, lists joined by `,`.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_bytes_and_cuts_long_payloads() {
        assert_eq!(printable(b"12345"), "12345");
        assert_eq!(printable(b"a\nb\0"), "a\\nb\\x00");
        let long = vec![b'x'; SHOWN_BYTES + 1];
        assert_eq!(printable(&long).chars().count(), SHOWN_BYTES + 1);
        assert!(printable(&long).ends_with('…'));
    }
}
