//! Envelope addresses: the RFC 5321 §4.1.2 `Path` grammar, with the RFC 6531
//! extensions (UTF-8 in local parts and domains) when the client asked for
//! SMTPUTF8.
//!
//! smtp-proto parses paths too, but it silently drops source routes and
//! unquotes quoted local parts (`"a@b"@c` comes out as `a@b@c`), and those
//! are exactly the forms the anti-relay checks must see. So paths are parsed
//! here; smtp-proto handles the other commands' arguments.
//!
//! The parser is strict where RFC 5321 is (brackets required, no spaces,
//! valid domains and address literals) with one deliberate exception: a
//! single trailing dot on the domain is accepted, so that [`relay_form`] can
//! name it and the driver can refuse it as a relay attempt with a clear reply.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// RFC 5321 §4.5.3.1.1: a local part has at most 64 octets.
pub const LOCAL_PART_MAX: usize = 64;
/// RFC 5321 §4.5.3.1.2: a domain has at most 255 octets.
pub const DOMAIN_MAX: usize = 255;
/// RFC 5321 §4.5.3.1.3: a path, with its angle brackets, at most 256 octets.
pub const PATH_MAX: usize = 256;
/// RFC 1035 §2.3.4: a DNS label has at most 63 octets.
const LABEL_MAX: usize = 63;

/// A mailbox, `local-part@domain`, as the client wrote it (a quoted local
/// part keeps its quotes), or the bare `postmaster` RFC 5321 §4.1.1.3
/// requires servers to accept in RCPT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    text: String,
    /// Index of the `@` between local part and domain; `None` for the bare
    /// postmaster.
    at: Option<usize>,
}

impl Address {
    /// The address as written, e.g. `"john doe"@example.com`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The local part as written (with quotes, if any).
    pub fn local_part_raw(&self) -> &str {
        match self.at {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }

    /// The local part with quoting removed: `"john doe"` → `john doe`,
    /// `"a\"b"` → `a"b`.
    pub fn local_part(&self) -> Cow<'_, str> {
        let raw = self.local_part_raw();
        match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => {
                let mut out = String::with_capacity(inner.len());
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(next) = chars.next() {
                            out.push(next);
                        }
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
            None => Cow::Borrowed(raw),
        }
    }

    /// The domain as written, or an address literal such as `[192.0.2.1]`;
    /// empty for the bare postmaster.
    pub fn domain(&self) -> &str {
        match self.at {
            Some(at) => &self.text[at + 1..],
            None => "",
        }
    }

    /// True for the bare `<postmaster>` recipient (no domain).
    pub fn is_bare_postmaster(&self) -> bool {
        self.at.is_none()
    }

    pub fn is_quoted(&self) -> bool {
        self.local_part_raw().starts_with('"')
    }

    /// False when the address needs SMTPUTF8.
    pub fn is_ascii(&self) -> bool {
        self.text.is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a bare mailbox, `local@domain` without angle brackets (UTF-8
/// allowed), e.g. from the configuration or `sendmail -f`.
impl FromStr for Address {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Address, PathError> {
        let bytes = s.as_bytes();
        let mut p = Parser { bytes, pos: 0 };
        let address = p.mailbox(PathKind::Forward, b'\0')?;
        if p.pos != bytes.len() {
            return Err(PathError::Syntax("unexpected character after the address"));
        }
        Ok(address)
    }
}

/// Which open-relay form an address has, if any, for the driver to refuse
/// with `550 5.7.1 relay not permitted` when the domain is not local. These
/// are valid RFC 5321 syntax (except the trailing dot) but exist to make a
/// host forward mail to another:
///
/// - a `%` in the local part (`user%other.example@relay`, the "percent hack");
/// - a `!` in the local part (`other!user@relay`, a UUCP bang path);
/// - a quoted local part containing `@` (`"user@other.example"@relay`);
/// - a domain with a trailing dot (`user@other.example.`), which some
///   resolvers treat as a different, unlisted name.
///
/// Source routes (`<@a,@b:user@c>`) are refused by the session itself.
pub fn relay_form(address: &Address) -> Option<&'static str> {
    let local = address.local_part();
    if address.is_quoted() && local.contains('@') {
        Some("quoted local part containing @")
    } else if local.contains('%') {
        Some("% hack in local part")
    } else if local.contains('!') {
        Some("! path in local part")
    } else if address.domain().ends_with('.') {
        Some("domain with a trailing dot")
    } else {
        None
    }
}

/// Why a path was refused; the text goes into the 501 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    Syntax(&'static str),
    TooLong(&'static str),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Syntax(what) | PathError::TooLong(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for PathError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// MAIL FROM: `<>` allowed.
    Reverse,
    /// RCPT TO: `<postmaster>` allowed.
    Forward,
}

/// A parsed `<...>` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    /// `None` for the null reverse-path `<>`.
    pub address: Option<Address>,
    /// The path had a source route (`@a,@b:`), which is not kept.
    pub source_route: bool,
    /// Bytes of input the path took, brackets included.
    pub len: usize,
}

/// Parses a path at the start of `input`, which must begin with `<`.
pub(crate) fn parse_path(input: &[u8], kind: PathKind) -> Result<Path, PathError> {
    let mut p = Parser {
        bytes: input,
        pos: 0,
    };
    if !p.eat(b'<') {
        return Err(PathError::Syntax("the address must be enclosed in <>"));
    }
    if p.eat(b'>') {
        return match kind {
            PathKind::Reverse => Ok(Path {
                address: None,
                source_route: false,
                len: p.pos,
            }),
            PathKind::Forward => Err(PathError::Syntax("empty address")),
        };
    }
    let mut source_route = false;
    if p.peek() == Some(b'@') {
        // A-d-l = At-domain *( "," At-domain ) ":"
        loop {
            if !p.eat(b'@') {
                return Err(PathError::Syntax("malformed source route"));
            }
            p.domain(false)?;
            if p.eat(b',') {
                continue;
            }
            if p.eat(b':') {
                break;
            }
            return Err(PathError::Syntax("malformed source route"));
        }
        source_route = true;
    }
    let address = p.mailbox(kind, b'>')?;
    if !p.eat(b'>') {
        return Err(PathError::Syntax("missing > after the address"));
    }
    if p.pos > PATH_MAX {
        return Err(PathError::TooLong("path longer than 256 octets"));
    }
    Ok(Path {
        address: Some(address),
        source_route,
        len: p.pos,
    })
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// RFC 5322 atext, the characters of an unquoted local part; bytes of
/// UTF-8 sequences are admitted here and checked as UTF-8 afterwards.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// RFC 5321 qtextSMTP (%d32-33 / %d35-91 / %d93-126) plus UTF-8 (RFC 6531).
fn is_qtext(b: u8) -> bool {
    matches!(b, 32..=33 | 35..=91 | 93..=126) || b >= 0x80
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `Mailbox = Local-part "@" ( Domain / address-literal )`, or the bare
    /// postmaster for a forward path when `end` follows the local part.
    fn mailbox(&mut self, kind: PathKind, end: u8) -> Result<Address, PathError> {
        let start = self.pos;
        self.local_part()?;
        let local_len = self.pos - start;
        if local_len > LOCAL_PART_MAX {
            return Err(PathError::TooLong("local part longer than 64 octets"));
        }
        let at_end = self.peek().is_none_or(|b| b == end);
        if at_end
            && kind == PathKind::Forward
            && self.bytes[start..self.pos].eq_ignore_ascii_case(b"postmaster")
        {
            return Ok(Address {
                text: "postmaster".to_owned(),
                at: None,
            });
        }
        if !self.eat(b'@') {
            return Err(PathError::Syntax("missing @domain"));
        }
        let at = self.pos - 1 - start;
        self.domain(true)?;
        let text = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| PathError::Syntax("invalid UTF-8"))?;
        Ok(Address {
            text: text.to_owned(),
            at: Some(at),
        })
    }

    /// `Local-part = Dot-string / Quoted-string`
    fn local_part(&mut self) -> Result<(), PathError> {
        if self.eat(b'"') {
            loop {
                match self.peek() {
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(());
                    }
                    // quoted-pairSMTP = %d92 %d32-126
                    Some(b'\\') => match self.bytes.get(self.pos + 1) {
                        Some(32..=126) => self.pos += 2,
                        _ => return Err(PathError::Syntax("invalid quoted pair in local part")),
                    },
                    Some(b) if is_qtext(b) => self.pos += 1,
                    _ => {
                        return Err(PathError::Syntax(
                            "unterminated or invalid quoted local part",
                        ));
                    }
                }
            }
        }
        // Dot-string = Atom *("."  Atom)
        loop {
            let atom = self.pos;
            while self.peek().is_some_and(is_atext) {
                self.pos += 1;
            }
            if self.pos == atom {
                return Err(PathError::Syntax("invalid local part"));
            }
            if !self.eat(b'.') {
                return Ok(());
            }
        }
    }

    /// `Domain = sub-domain *("." sub-domain)`; in a mailbox (not a source
    /// route) also an address literal, or a domain with one trailing dot.
    fn domain(&mut self, mailbox: bool) -> Result<(), PathError> {
        let start = self.pos;
        if mailbox && self.peek() == Some(b'[') {
            return self.address_literal();
        }
        loop {
            // sub-domain = Let-dig [Ldh-str]; UTF-8 bytes stand for U-labels.
            let label = self.pos;
            let mut last = 0;
            while let Some(b) = self.peek() {
                if b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80 {
                    last = b;
                    self.pos += 1;
                } else {
                    break;
                }
            }
            let len = self.pos - label;
            if len == 0 {
                // One trailing dot, as in `user@example.com.`, is kept for
                // relay_form to name; an empty label elsewhere is an error.
                let after_dot = self.pos > start && self.bytes[self.pos - 1] == b'.';
                if mailbox && after_dot && self.peek() != Some(b'.') {
                    break;
                }
                return Err(PathError::Syntax("invalid domain"));
            }
            let first = self.bytes[label];
            if first == b'-' || last == b'-' {
                return Err(PathError::Syntax(
                    "domain label starts or ends with a hyphen",
                ));
            }
            let ascii = self.bytes[label..self.pos].is_ascii();
            if ascii && len > LABEL_MAX {
                return Err(PathError::TooLong("domain label longer than 63 octets"));
            }
            if !self.eat(b'.') {
                break;
            }
        }
        if self.pos - start > DOMAIN_MAX {
            return Err(PathError::TooLong("domain longer than 255 octets"));
        }
        Ok(())
    }

    /// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal
    /// / General-address-literal ) "]"` (RFC 5321 §4.1.3).
    fn address_literal(&mut self) -> Result<(), PathError> {
        let open = self.pos;
        self.pos += 1;
        let Some(close) = self.bytes[self.pos..].iter().position(|&b| b == b']') else {
            return Err(PathError::Syntax("unterminated address literal"));
        };
        let inner = &self.bytes[self.pos..self.pos + close];
        self.pos += close + 1;
        let bad = PathError::Syntax("invalid address literal");
        let text = std::str::from_utf8(inner).map_err(|_| bad)?;
        // `get`, not `[..5]`: the literal may hold any UTF-8, and slicing
        // inside a character panicked (a remote client's RCPT could do it).
        let ipv6 = text.len() > 5
            && text
                .get(..5)
                .is_some_and(|tag| tag.eq_ignore_ascii_case("IPv6:"));
        let valid = if ipv6 {
            Ipv6Addr::from_str(&text[5..]).is_ok()
        } else if let Some((tag, content)) = text.split_once(':') {
            // General-address-literal = Standardized-tag ":" 1*dcontent
            let tag_ok = !tag.is_empty()
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !tag.ends_with('-');
            let content_ok =
                !content.is_empty() && content.bytes().all(|b| matches!(b, 33..=90 | 94..=126));
            tag_ok && content_ok
        } else {
            Ipv4Addr::from_str(text).is_ok()
        };
        if !valid {
            return Err(bad);
        }
        if self.pos - open > DOMAIN_MAX {
            return Err(PathError::TooLong("address literal longer than 255 octets"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, kind, expected: Ok((address or "<>", source route)) or Err(prefix))
    #[test]
    fn parses_paths() {
        use PathKind::{Forward as F, Reverse as R};
        let ok = |a: &'static str, route: bool| Ok::<_, &'static str>((a, route));
        let err = |e: &'static str| Err::<(&str, bool), _>(e);
        let long_local = format!("<{}@example.com>", "a".repeat(65));
        let max_local = format!("<{}@example.com>", "a".repeat(64));
        let long_label = format!("<a@{}.com>", "b".repeat(64));
        let long_path = format!(
            "<{}@{}.com>",
            "a".repeat(60),
            vec!["c".repeat(48); 4].join(".")
        );
        type Expected<'a> = Result<(&'a str, bool), &'a str>;
        let cases: Vec<(&str, PathKind, Expected)> = vec![
            ("<user@example.com>", F, ok("user@example.com", false)),
            (
                "<user@example.com> SIZE=10",
                R,
                ok("user@example.com", false),
            ),
            ("<>", R, ok("<>", false)),
            ("<>", F, err("empty address")),
            ("<Postmaster>", F, ok("postmaster", false)),
            ("<postmaster>", R, err("missing @domain")),
            (
                "<first.last+tag@sub.example.org>",
                F,
                ok("first.last+tag@sub.example.org", false),
            ),
            (
                "<\"john doe\"@example.com>",
                F,
                ok("\"john doe\"@example.com", false),
            ),
            (
                "<\"a\\\"b\"@example.com>",
                F,
                ok("\"a\\\"b\"@example.com", false),
            ),
            ("<\"a@b\"@example.com>", F, ok("\"a@b\"@example.com", false)),
            (
                "<user%other@example.com>",
                F,
                ok("user%other@example.com", false),
            ),
            (
                "<other!user@example.com>",
                F,
                ok("other!user@example.com", false),
            ),
            ("<user@example.com.>", F, ok("user@example.com.", false)),
            ("<user@[192.0.2.1]>", F, ok("user@[192.0.2.1]", false)),
            (
                "<user@[IPv6:2001:db8::1]>",
                F,
                ok("user@[IPv6:2001:db8::1]", false),
            ),
            ("<user@[x-tag:stuff]>", F, ok("user@[x-tag:stuff]", false)),
            (
                "<@a.example,@b.example:user@c.example>",
                F,
                ok("user@c.example", true),
            ),
            ("<@a.example:user@c.example>", R, ok("user@c.example", true)),
            (
                "<δοκιμή@παράδειγμα.δοκιμή>",
                F,
                ok("δοκιμή@παράδειγμα.δοκιμή", false),
            ),
            (
                max_local.as_str(),
                F,
                Ok((&max_local[1..max_local.len() - 1], false)),
            ),
            ("user@example.com", F, err("the address must be enclosed")),
            ("<user@example.com", F, err("missing >")),
            ("<user>", F, err("missing @domain")),
            ("<@example.com>", F, err("malformed source route")),
            ("<user@>", F, err("invalid domain")),
            ("<user@.com>", F, err("invalid domain")),
            ("<user@a..com>", F, err("invalid domain")),
            ("<user@example.com..>", F, err("invalid domain")),
            ("<user@-a.com>", F, err("domain label starts")),
            ("<user@a-.com>", F, err("domain label starts")),
            ("<user@exa_mple.com>", F, err("missing >")),
            ("<us er@example.com>", F, err("missing @domain")),
            ("<.user@example.com>", F, err("invalid local part")),
            ("<user.@example.com>", F, err("invalid local part")),
            ("<us..er@example.com>", F, err("invalid local part")),
            ("<\"unterminated@example.com>", F, err("unterminated")),
            ("<\"a\\\u{1}\"@example.com>", F, err("invalid quoted pair")),
            ("<user@[300.1.1.1]>", F, err("invalid address literal")),
            ("<user@[IPv6:zz]>", F, err("invalid address literal")),
            // A character across the fifth octet (found by fuzzing).
            ("<user@[IPv6\u{e9}1]>", F, err("invalid address literal")),
            ("<user@[1.2.3.4>", F, err("unterminated address literal")),
            (
                "<@a.example,user@c.example>",
                F,
                err("malformed source route"),
            ),
            (long_local.as_str(), F, err("local part longer")),
            (long_label.as_str(), F, err("domain label longer")),
            (long_path.as_str(), F, err("path longer")),
        ];
        for (input, kind, expected) in cases {
            let got = parse_path(input.as_bytes(), kind);
            match (got, expected) {
                (Ok(path), Ok((addr, route))) => {
                    let text = path.address.as_ref().map_or("<>", |a| a.as_str());
                    assert_eq!((text, path.source_route), (addr, route), "{input}");
                    let close = input.find('>').unwrap() + 1;
                    assert_eq!(path.len, close, "{input}");
                }
                (Err(e), Err(prefix)) => {
                    assert!(e.to_string().starts_with(prefix), "{input}: {e}")
                }
                (got, expected) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let got = parse_path(b"<\xff\xfe@example.com>", PathKind::Forward);
        assert_eq!(got, Err(PathError::Syntax("invalid UTF-8")));
    }

    #[test]
    fn address_parts() {
        let cases = [
            ("user@example.com", "user", "user", "example.com", false),
            (
                "\"john doe\"@example.com",
                "\"john doe\"",
                "john doe",
                "example.com",
                true,
            ),
            (
                "\"a\\\"b\\\\c\"@x.example",
                "\"a\\\"b\\\\c\"",
                "a\"b\\c",
                "x.example",
                true,
            ),
            ("u@[192.0.2.1]", "u", "u", "[192.0.2.1]", false),
        ];
        for (text, raw, local, domain, quoted) in cases {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.as_str(), text);
            assert_eq!(a.local_part_raw(), raw, "{text}");
            assert_eq!(a.local_part(), local, "{text}");
            assert_eq!(a.domain(), domain, "{text}");
            assert_eq!(a.is_quoted(), quoted, "{text}");
            assert!(!a.is_bare_postmaster());
        }
        let pm = parse_path(b"<POSTMASTER>", PathKind::Forward)
            .unwrap()
            .address
            .unwrap();
        assert!(pm.is_bare_postmaster());
        assert_eq!((pm.as_str(), pm.domain()), ("postmaster", ""));
        assert!("a@b.example trailing".parse::<Address>().is_err());
        assert!(!"δ@example.com".parse::<Address>().unwrap().is_ascii());
    }

    #[test]
    fn names_relay_forms() {
        let cases = [
            ("user@example.com", None),
            ("first.last+tag@example.com", None),
            ("\"john doe\"@example.com", None),
            (
                "user%other.example@example.com",
                Some("% hack in local part"),
            ),
            (
                "other.example!user@example.com",
                Some("! path in local part"),
            ),
            (
                "\"user@other.example\"@example.com",
                Some("quoted local part containing @"),
            ),
            ("\"user%x\"@example.com", Some("% hack in local part")),
            ("user@example.com.", Some("domain with a trailing dot")),
            ("user@[192.0.2.1]", None),
        ];
        for (text, expected) in cases {
            let a: Address = text.parse().unwrap();
            assert_eq!(relay_form(&a), expected, "{text}");
        }
    }
}
