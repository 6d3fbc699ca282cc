//! IMAP mailbox names ↔ Maildir++ folder names.
//!
//! An IMAP client sees `Lists/Entwürfe` (hierarchy separator `/`); the
//! Maildir++ tree stores it as the directory `.Lists.Entw&APw-rfe`. Three
//! rules, applied to each hierarchy level:
//!
//! 1. Non-ASCII text is written in modified UTF-7 (RFC 3501 §5.1.3), the
//!    on-disk encoding Dovecot and Courier use: printable ASCII stands for
//!    itself except `&`, which is `&-`; any other run of characters is UTF-16,
//!    base64 with `,` for `/`, no padding, between `&` and `-`.
//! 2. Levels are joined with `.` (Maildir++'s separator).
//! 3. A character the layout cannot hold inside a level is written as `\NN`
//!    (two lower-case hex digits), as Dovecot's listescape plugin does:
//!    `.` (the separator), `\` (the escape itself) and a leading `~`
//!    (which a shell or Dovecot would expand to a home directory).
//!    Dovecot shows such a name as written when listescape is enabled with a
//!    separator other than `.`; without it the name shows escaped.

use std::fmt;

/// The escape character of rule 3 (Dovecot's default `listescape_char`).
pub const ESCAPE: char = '\\';
/// The Maildir++ hierarchy separator.
pub const SEPARATOR: char = '.';

/// Why a stored name cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the input where decoding failed.
    pub offset: usize,
    pub why: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.why)
    }
}

impl std::error::Error for DecodeError {}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Encodes `name` (UTF-8) in modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_utf16(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_utf16(&mut out, &mut pending);
    out
}

/// Writes a run of UTF-16 units as `&<base64>-`.
fn flush_utf16(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        // 1 byte → 2 digits, 2 → 3, 3 → 4; no '=' padding in modified UTF-7.
        for i in 0..=chunk.len() {
            out.push(char::from(B64[((n >> (18 - 6 * i)) & 0x3f) as usize]));
        }
    }
    out.push('-');
    units.clear();
}

/// Decodes modified UTF-7. Rejects what RFC 3501 forbids (a raw non-ASCII
/// byte, an unterminated shift, bits left over, an encoded printable ASCII
/// character), so that a name that merely looks like UTF-7 is recognised.
pub fn decode_mutf7(s: &str) -> Result<String, DecodeError> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'&' {
            let start = i;
            i += 1;
            if bytes.get(i) == Some(&b'-') {
                out.push('&');
                i += 1;
                continue;
            }
            let mut acc: u32 = 0;
            let mut nbits = 0u32;
            let mut units: Vec<u16> = Vec::new();
            loop {
                let Some(&d) = bytes.get(i) else {
                    return Err(DecodeError {
                        offset: start,
                        why: "'&' shift not closed by '-'",
                    });
                };
                i += 1;
                if d == b'-' {
                    break;
                }
                let v = b64_value(d).ok_or(DecodeError {
                    offset: i - 1,
                    why: "not a modified-base64 digit",
                })?;
                acc = (acc << 6) | v;
                nbits += 6;
                if nbits >= 16 {
                    nbits -= 16;
                    units.push(((acc >> nbits) & 0xffff) as u16);
                }
            }
            if nbits >= 6 || (acc & ((1 << nbits) - 1)) != 0 {
                return Err(DecodeError {
                    offset: start,
                    why: "leftover bits in a base64 run",
                });
            }
            if units.is_empty() {
                return Err(DecodeError {
                    offset: start,
                    why: "empty base64 run",
                });
            }
            let text = String::from_utf16(&units).map_err(|_| DecodeError {
                offset: start,
                why: "invalid UTF-16 in a base64 run",
            })?;
            if text.chars().any(|ch| (' '..='~').contains(&ch)) {
                return Err(DecodeError {
                    offset: start,
                    why: "printable ASCII must not be base64-encoded",
                });
            }
            out.push_str(&text);
        } else if (0x20..=0x7e).contains(&c) {
            out.push(char::from(c));
            i += 1;
        } else {
            return Err(DecodeError {
                offset: i,
                why: "byte outside printable ASCII",
            });
        }
    }
    Ok(out)
}

/// Escapes one hierarchy level (already in modified UTF-7) for Maildir++.
fn escape_level(level: &str) -> String {
    let mut out = String::with_capacity(level.len());
    for (i, c) in level.chars().enumerate() {
        let must = c == SEPARATOR || c == ESCAPE || (i == 0 && c == '~');
        if must {
            out.push_str(&format!("{ESCAPE}{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The Maildir++ folder name (without the leading dot) for the IMAP name
/// `name` whose hierarchy separator is `separator` (`/` for a tree of
/// files). Empty levels (`a//b`, a trailing `/`) are dropped.
///
/// `Lists/rust` → `Lists.rust`; `Entwürfe` → `Entw&APw-rfe`;
/// `v1.2` → `v1\2e2`.
pub fn to_maildir(name: &str, separator: char) -> String {
    name.split(separator)
        .filter(|l| !l.is_empty())
        .map(|l| escape_level(&encode_mutf7(l)))
        .collect::<Vec<_>>()
        .join(".")
}

/// [`to_maildir`] for levels that are already in modified UTF-7 (names read
/// from a mail store that keeps them so, as UW-IMAP and Dovecot mbox trees do).
pub fn to_maildir_encoded<'a>(levels: impl IntoIterator<Item = &'a str>) -> String {
    levels
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(escape_level)
        .collect::<Vec<_>>()
        .join(".")
}

/// The IMAP name (UTF-8, levels joined with `separator`) of a Maildir++
/// folder name: the reverse of [`to_maildir`].
pub fn from_maildir(folder: &str, separator: char) -> Result<String, DecodeError> {
    let mut levels = Vec::new();
    let mut offset = 0;
    for level in folder.split(SEPARATOR) {
        let unescaped = unescape_level(level).map_err(|mut e| {
            e.offset += offset;
            e
        })?;
        let decoded = decode_mutf7(&unescaped).map_err(|mut e| {
            e.offset += offset;
            e
        })?;
        levels.push(decoded);
        offset += level.len() + 1;
    }
    Ok(levels.join(&separator.to_string()))
}

fn unescape_level(level: &str) -> Result<String, DecodeError> {
    let b = level.as_bytes();
    let mut out = String::with_capacity(level.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == ESCAPE as u8 {
            let hex = level.get(i + 1..i + 3).ok_or(DecodeError {
                offset: i,
                why: "'\\' not followed by two hex digits",
            })?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| DecodeError {
                offset: i,
                why: "'\\' not followed by two hex digits",
            })?;
            out.push(char::from(v));
            i += 3;
        } else {
            let ch = level[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_round_trips() {
        let cases = [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("&", "&-"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("日本語", "&ZeVnLIqe-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("a\u{1F600}b", "a&2D3eAA-b"),
            ("", ""),
        ];
        for (plain, enc) in cases {
            assert_eq!(encode_mutf7(plain), enc, "{plain}");
            assert_eq!(decode_mutf7(enc).as_deref(), Ok(plain), "{enc}");
        }
    }

    #[test]
    fn mutf7_rejects_what_rfc3501_forbids() {
        let bad = [
            ("&ZeVnLIqe", 0), // unterminated
            ("a&Jjo!-", 5),   // '!' is no base64 digit
            ("&AGE-", 0),     // "a" encoded
            ("&-&", 2),       // trailing shift
            ("caf\u{e9}", 3), // raw non-ASCII
            ("&AGEA-", 0),    // bits left over after the last unit
        ];
        for (s, off) in bad {
            let e = decode_mutf7(s);
            assert!(e.is_err(), "{s}: {e:?}");
            assert_eq!(e.unwrap_err().offset, off, "{s}");
        }
    }

    #[test]
    fn maildir_names() {
        let cases = [
            ("Sent", "Sent"),
            ("Lists/rust", "Lists.rust"),
            ("Lists/rust/", "Lists.rust"),
            ("Archive/2024/Entwürfe", "Archive.2024.Entw&APw-rfe"),
            ("v1.2", "v1\\2e2"),
            ("a\\b", "a\\5cb"),
            ("~tmp/x~", "\\7etmp.x~"),
            ("Tom & Jerry", "Tom &- Jerry"),
        ];
        for (imap, md) in cases {
            assert_eq!(to_maildir(imap, '/'), md, "{imap}");
            assert_eq!(
                from_maildir(md, '/').as_deref(),
                Ok(imap.trim_end_matches('/')),
                "{md}"
            );
        }
        assert_eq!(
            to_maildir_encoded(["Entw&APw-rfe", "v1.2"]),
            "Entw&APw-rfe.v1\\2e2"
        );
        assert!(from_maildir("bad\\zz", '/').is_err());
        assert!(from_maildir("x.bad\\2", '/').is_err());
    }
}
