//! Showing bytes and values to people: printable forms of payloads and of text, and
//! parameter values as the command line writes them.

use std::borrow::Cow;
use std::fmt::Write;

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

/// `text` as a person may see it on a terminal or a page: every control character —
/// C0 but `\n` and `\t`, DEL, C1 — written as an escape (`\x1b`, `\x07`, `\r`, `\u{9b}`), and
/// so is every character that reorders the text around it (the bidirectional overrides
/// and isolates, U+202A–U+202E and U+2066–U+2069). Everything else is left as it is.
///
/// Text from a peer (a server's reply, an agent's host name, a target's output) or a user
/// (a parameter value) reaches people through this: raw, an `ESC [ 2 J` clears the
/// reader's terminal, a `\r` overwrites the line before it, and a right-to-left override
/// makes a line read differently from what it holds. Borrowed when nothing needs escaping.
pub fn printable_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if u32::from(c) < 0x80 {
            // Writing into a String cannot fail.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

/// Whether [`printable_text`] escapes `c`: a control character (but `\n` and `\t`) or
/// a bidirectional override or isolate.
pub fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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

    #[test]
    fn text_keeps_lines_and_escapes_every_control_character() {
        assert_eq!(printable_text("plain: ü, ✅, a\tb\nc"), "plain: ü, ✅, a\tb\nc");
        assert!(matches!(printable_text("plain"), Cow::Borrowed(_)), "no copy when nothing changes");
        assert_eq!(printable_text("\x1b[2J\x07\r\0\x7f"), "\\x1b[2J\\x07\\r\\x00\\x7f");
        assert_eq!(printable_text("\u{9b}31m \u{202e}gnp.exe"), "\\u{9b}31m \\u{202e}gnp.exe");
        for c in (0..=0x10ffff_u32).filter_map(char::from_u32) {
            let shown = printable_text(c.encode_utf8(&mut [0; 4])).into_owned();
            assert!(!shown.chars().any(needs_escape), "{c:?} shown as {shown:?}");
        }
    }
}
