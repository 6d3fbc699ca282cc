//! Making outside text safe for a log line, as Exim does.
//!
//! Exim passes text it did not write itself (HELO names, Message-IDs,
//! remote replies, error text) through `string_printing()` before it goes
//! into a log line (src/string.c, `string_printing2`, Exim 4.96):
//!
//! - printable ASCII (0x20–0x7e) is copied;
//! - `\n`, `\r`, `\b`, `\v`, `\f` become those two-character escapes;
//! - every other byte, DEL and bytes above 0x7f included (Exim's
//!   `print_topbitchars` is off by default), becomes `\` and three octal
//!   digits: 0x01 → `\001`, 0xe9 → `\351`.
//!
//! We also escape the tab as `\t`, which Exim does with its `SP_TAB` flag:
//! plain `string_printing` would keep it, and a tab inside a field would
//! make the field boundaries depend on the reader's idea of white space.
//! Real Exim 4.96 on this machine wrote `id="ctl\001\177\351"@client.test`
//! for a Message-ID holding 0x01, 0x7f and 0xe9
//! (tests/fixtures/exim-4.96/mainlog).
//!
//! With no raw newline or carriage return left, no value can end a line
//! early and start a forged one.
//!
//! Quoted fields (`C="..."`, `T="..."`) are built as deliver.c and
//! receive.c build them: the value is cut to a limit, `"` and `\` get a
//! backslash, then the whole is made printable.

/// The most bytes of outside text a quoted field or an error text keeps:
/// deliver.c caps `C=` at 1024 bytes; we hold error text to the same.
pub const TEXT_LIMIT: usize = 1024;

/// `s` with every byte that is not printable ASCII escaped, Exim's way.
pub fn printing(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            0x20..=0x7e => out.push(b as char),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

/// The first `limit` bytes of `s`, shortened to a character boundary.
pub fn cap(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Error text for a log line: capped at [`TEXT_LIMIT`], made printable.
pub fn text(s: &str) -> String {
    printing(cap(s, TEXT_LIMIT))
}

/// A quoted field's value with its quotes: capped at `limit` bytes,
/// `"` and `\` backslashed, then made printable (receive.c's order for
/// `T=`; deliver.c does the same for `C=`).
pub fn quoted(s: &str, limit: usize) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in cap(s, limit).chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    printing(&q)
}

/// The inverse of the quoting in [`quoted`] for a value without its
/// quotes: `\"` → `"` and `\\` → `\`. Escapes made by [`printing`] stay as
/// they are: the log keeps only the printable form of control bytes.
pub fn unquote(s: &str) -> String {
    // Most values (SMTP replies) hold no backslash at all.
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_matches_exims_string_printing() {
        let cases: &[(&str, &str)] = &[
            ("mx.example", "mx.example"),
            ("a b", "a b"),
            ("a\r\nb", "a\\r\\nb"),
            ("\t", "\\t"),
            ("\x08\x0b\x0c", "\\b\\v\\f"),
            ("\x01\x7f", "\\001\\177"),
            ("\x00", "\\000"),
            // U+00E9 is 0xc3 0xa9 in UTF-8: each byte escaped.
            ("é", "\\303\\251"),
            // A backslash is printable: Exim leaves it.
            ("a\\b", "a\\b"),
        ];
        for (input, want) in cases {
            assert_eq!(printing(input), *want, "{input:?}");
        }
    }

    #[test]
    fn caps_keep_whole_characters() {
        assert_eq!(cap("abc", 2), "ab");
        assert_eq!(cap("abc", 5), "abc");
        assert_eq!(cap("aé", 2), "a");
        assert_eq!(text(&"x".repeat(5000)).len(), TEXT_LIMIT);
    }

    #[test]
    fn quoting_backslashes_quotes_and_backslashes_first() {
        assert_eq!(quoted("250 OK", 1024), "\"250 OK\"");
        assert_eq!(
            quoted("stdio \"quoted\" \\ subject", 100),
            "\"stdio \\\"quoted\\\" \\\\ subject\""
        );
        assert_eq!(quoted("a\nb", 100), "\"a\\nb\"");
        assert_eq!(quoted(&"y".repeat(2000), TEXT_LIMIT).len(), TEXT_LIMIT + 2);
        assert_eq!(
            unquote("stdio \\\"quoted\\\" \\\\ subject"),
            "stdio \"quoted\" \\ subject"
        );
        assert_eq!(unquote("a\\nb"), "a\\nb");
    }
}
