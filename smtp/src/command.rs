//! Command lines: the verb and its arguments.
//!
//! The verb decides which handler runs; the handlers parse their arguments
//! (smtp-proto for HELO/EHLO/LHLO, BDAT, VRFY; [`super::address`] and
//! [`super::params`] for MAIL and RCPT).

/// The command verbs Sluice knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Helo,
    Ehlo,
    Lhlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// A registered command Sluice does not offer (502, not 500).
    NotImplemented(&'static str),
    Unknown,
}

/// Verbs of extensions or obsolete RFC 821 commands that Sluice recognises
/// but does not implement: answered with 502 "not implemented" rather than
/// 500 "unrecognized" (RFC 5321 §4.2.4).
const NOT_IMPLEMENTED: &[&str] = &[
    "AUTH", "EXPN", "ETRN", "ATRN", "BURL", "TURN", "SEND", "SOML", "SAML", "VERB", "XCLIENT",
    "XFORWARD",
];

/// Removes the line ending: CRLF, or a bare LF, which is tolerated in
/// commands (only message data is held to CRLF, where the line ending
/// decides where the message ends).
pub(crate) fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits a command line (without its line ending) into the verb and the
/// arguments after the first run of spaces.
pub(crate) fn split(line: &[u8]) -> (Verb, &[u8]) {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    let args = match rest.iter().position(|&b| b != b' ') {
        Some(start) => &rest[start..],
        None => &rest[rest.len()..],
    };
    (verb(word), args)
}

fn verb(word: &[u8]) -> Verb {
    let table: [(&str, Verb); 13] = [
        ("HELO", Verb::Helo),
        ("EHLO", Verb::Ehlo),
        ("LHLO", Verb::Lhlo),
        ("MAIL", Verb::Mail),
        ("RCPT", Verb::Rcpt),
        ("DATA", Verb::Data),
        ("BDAT", Verb::Bdat),
        ("RSET", Verb::Rset),
        ("NOOP", Verb::Noop),
        ("QUIT", Verb::Quit),
        ("VRFY", Verb::Vrfy),
        ("HELP", Verb::Help),
        ("STARTTLS", Verb::StartTls),
    ];
    for (name, verb) in table {
        if word.eq_ignore_ascii_case(name.as_bytes()) {
            return verb;
        }
    }
    for name in NOT_IMPLEMENTED {
        if word.eq_ignore_ascii_case(name.as_bytes()) {
            return Verb::NotImplemented(name);
        }
    }
    Verb::Unknown
}

/// `keyword` (e.g. `FROM:`) at the start of `args`, case-insensitively,
/// followed by optional spaces; returns what follows. RFC 5321 has no space
/// after the colon, but `MAIL FROM: <a@b>` is common enough to accept.
pub(crate) fn after_keyword<'a>(args: &'a [u8], keyword: &str) -> Option<&'a [u8]> {
    let k = keyword.as_bytes();
    if args.len() < k.len() || !args[..k.len()].eq_ignore_ascii_case(k) {
        return None;
    }
    let rest = &args[k.len()..];
    let skip = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    Some(&rest[skip..])
}

/// A command line made printable for logs: control and non-ASCII bytes
/// become `\xHH`, and long lines are cut.
pub(crate) fn printable(line: &[u8]) -> String {
    const LOG_MAX: usize = 256;
    let line = strip_eol(line);
    let mut out = String::new();
    for &b in line.iter().take(LOG_MAX) {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if line.len() > LOG_MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_verbs_and_arguments() {
        let cases: Vec<(&[u8], Verb, &[u8])> = vec![
            (b"EHLO client.example", Verb::Ehlo, b"client.example"),
            (b"ehlo   client.example ", Verb::Ehlo, b"client.example "),
            (b"MAIL FROM:<a@b>", Verb::Mail, b"FROM:<a@b>"),
            (b"Rcpt TO:<a@b>", Verb::Rcpt, b"TO:<a@b>"),
            (b"DATA", Verb::Data, b""),
            (b"DATA   ", Verb::Data, b""),
            (b"StartTLS", Verb::StartTls, b""),
            (b"LHLO x", Verb::Lhlo, b"x"),
            (b"auth plain", Verb::NotImplemented("AUTH"), b"plain"),
            (b"EXPN list", Verb::NotImplemented("EXPN"), b"list"),
            (b"XYZZY", Verb::Unknown, b""),
            (b"", Verb::Unknown, b""),
            (b" MAIL FROM:<a@b>", Verb::Unknown, b"MAIL FROM:<a@b>"),
            (b"MAIL\tFROM:<>", Verb::Unknown, b""),
            (b"\xffQUIT", Verb::Unknown, b""),
        ];
        for (line, verb, args) in cases {
            assert_eq!(split(line), (verb, args), "{}", printable(line));
        }
    }

    #[test]
    fn strips_line_endings() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"QUIT\r\n", b"QUIT"),
            (b"QUIT\n", b"QUIT"),
            (b"QUIT\r", b"QUIT"),
            (b"QUIT\r\r\n", b"QUIT\r"),
            (b"QUIT", b"QUIT"),
        ];
        for (line, expected) in cases {
            assert_eq!(strip_eol(line), expected);
        }
    }

    #[test]
    fn matches_keywords() {
        type Case<'a> = (&'a [u8], &'a str, Option<&'a [u8]>);
        let cases: [Case; 5] = [
            (b"FROM:<a@b>", "FROM:", Some(b"<a@b>")),
            (b"from: <a@b>", "FROM:", Some(b"<a@b>")),
            (b"FROM:", "FROM:", Some(b"")),
            (b"FROM <a@b>", "FROM:", None),
            (b"TO:<a@b>", "FROM:", None),
        ];
        for (args, keyword, expected) in cases {
            assert_eq!(after_keyword(args, keyword), expected);
        }
    }

    #[test]
    fn prints_lines_for_logs() {
        assert_eq!(printable(b"MAIL FROM:<a@b>\r\n"), "MAIL FROM:<a@b>");
        assert_eq!(printable(b"X\x00\xff\t\r\n"), "X\\x00\\xff\\x09");
        assert_eq!(printable(&[b'a'; 300]).len(), 256 + 3);
    }
}
