//! The private metadata mail readers keep in mbox headers, and how it maps
//! to Maildir.
//!
//! | header      | letter | meaning            | Maildir            |
//! |-------------|--------|--------------------|--------------------|
//! | `Status`    | `R`    | \Seen              | `S`                |
//! | `Status`    | `O`    | old (not \Recent)  | file goes to `cur/`|
//! | `X-Status`  | `A`    | \Answered          | `R`                |
//! | `X-Status`  | `F`    | \Flagged           | `F`                |
//! | `X-Status`  | `T`    | \Draft             | `D`                |
//! | `X-Status`  | `D`    | \Deleted           | `T`                |
//!
//! Dovecot and UW-IMAP also keep `X-UID`, `X-Keywords`, `X-IMAP` /
//! `X-IMAPbase` (UID validity, next UID, keyword names) and
//! `Content-Length`. Dovecot's documentation asks delivery agents to strip
//! all of these (case-insensitively) before writing to an mbox, since a
//! sender could otherwise set flags or UIDs; a converter strips them too,
//! after reading what they say. [`strip`] does both.

use std::borrow::Cow;

/// The flags `Status:` and `X-Status:` carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `Status: R` → Maildir `S`.
    pub seen: bool,
    /// `Status: O`: the message was seen by a mail reader (not \Recent).
    pub old: bool,
    /// `X-Status: A` → Maildir `R`.
    pub answered: bool,
    /// `X-Status: F` → Maildir `F`.
    pub flagged: bool,
    /// `X-Status: T` → Maildir `D`.
    pub draft: bool,
    /// `X-Status: D` → Maildir `T`.
    pub deleted: bool,
}

impl Flags {
    /// Reads the letters of a `Status:` and an `X-Status:` value (either
    /// may be empty). Unknown letters are ignored.
    pub fn from_values(status: &[u8], x_status: &[u8]) -> Flags {
        let mut f = Flags::default();
        for &b in status {
            match b {
                b'R' => f.seen = true,
                b'O' => f.old = true,
                _ => {}
            }
        }
        for &b in x_status {
            match b {
                b'A' => f.answered = true,
                b'F' => f.flagged = true,
                b'T' => f.draft = true,
                b'D' => f.deleted = true,
                _ => {}
            }
        }
        f
    }

    /// The Maildir info flags (what follows `:2,`), in ASCII order as the
    /// Maildir specification requires: e.g. `"FRS"`.
    pub fn maildir_flags(&self) -> String {
        let mut s = String::with_capacity(5);
        for (on, c) in [
            (self.draft, 'D'),
            (self.flagged, 'F'),
            (self.answered, 'R'),
            (self.seen, 'S'),
            (self.deleted, 'T'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }

    /// Whether the message belongs in `cur/` rather than `new/`: a mail
    /// reader has seen it (`O`), or it has a flag (flags live in the `:2,`
    /// suffix, which only names in `cur/` carry).
    pub fn goes_to_cur(&self) -> bool {
        self.old || self.seen || self.answered || self.flagged || self.draft || self.deleted
    }
}

/// What the metadata headers of one message said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    pub flags: Flags,
    /// `X-Keywords:` words (split at spaces, tabs and commas).
    pub keywords: Vec<String>,
    /// `X-UID:`.
    pub uid: Option<u32>,
    /// First number of `X-IMAPbase:` / `X-IMAP:`.
    pub uid_validity: Option<u32>,
    /// Second number of `X-IMAPbase:` / `X-IMAP:`.
    pub next_uid: Option<u32>,
    /// The message had an `X-IMAP:` header: UW-IMAP's and Dovecot's
    /// pseudo message ("DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA")
    /// that holds folder data and is not mail. A converter skips it.
    pub folder_internal_data: bool,
    /// `Content-Length:` as written (not checked).
    pub content_length: Option<u64>,
}

/// The headers [`strip`] removes, lower case.
pub const PRIVATE_HEADERS: [&str; 7] = [
    "status",
    "x-status",
    "x-uid",
    "x-imap",
    "x-imapbase",
    "x-keywords",
    "content-length",
];

/// Removes the private metadata headers ([`PRIVATE_HEADERS`], with their
/// continuation lines) from the header block of `message` and returns the
/// rest with what they said. The body is never touched. Borrows when there
/// was nothing to remove. Works on LF and CRLF messages alike.
pub fn strip(message: &[u8]) -> (Cow<'_, [u8]>, Metadata) {
    strip_only(message, &PRIVATE_HEADERS)
}

/// [`strip`] limited to the headers in `names` (lower case, a subset of
/// [`PRIVATE_HEADERS`]).
pub(crate) fn strip_only<'m>(message: &'m [u8], names: &[&str]) -> (Cow<'m, [u8]>, Metadata) {
    let mut meta = Metadata::default();
    let (mut status, mut x_status) = (Vec::new(), Vec::new());
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut p = 0;
    while p < message.len() {
        let line_end = next_line(message, p);
        let line = &message[p..line_end];
        if line == b"\n" || line == b"\r\n" {
            break; // end of the header block
        }
        // A field runs on over continuation lines (leading space or tab).
        let mut field_end = line_end;
        while field_end < message.len() && matches!(message[field_end], b' ' | b'\t') {
            field_end = next_line(message, field_end);
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii_end();
            if let Some(which) = names
                .iter()
                .position(|h| name.eq_ignore_ascii_case(h.as_bytes()))
            {
                let value = &message[p + colon + 1..field_end];
                let text = String::from_utf8_lossy(value);
                let words: Vec<&str> = text
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|w| !w.is_empty())
                    .collect();
                match names[which] {
                    "status" => status.extend_from_slice(value),
                    "x-status" => x_status.extend_from_slice(value),
                    "x-uid" => meta.uid = words.first().and_then(|w| w.parse().ok()),
                    "x-imap" | "x-imapbase" => {
                        if names[which] == "x-imap" {
                            meta.folder_internal_data = true;
                        }
                        meta.uid_validity = words.first().and_then(|w| w.parse().ok());
                        meta.next_uid = words.get(1).and_then(|w| w.parse().ok());
                    }
                    "x-keywords" => meta.keywords.extend(words.iter().map(|w| w.to_string())),
                    "content-length" => {
                        meta.content_length = words.first().and_then(|w| w.parse().ok())
                    }
                    _ => {}
                }
                let o = out.get_or_insert_with(|| Vec::with_capacity(message.len()));
                o.extend_from_slice(&message[copied..p]);
                copied = field_end;
            }
        }
        p = field_end;
    }
    meta.flags = Flags::from_values(&status, &x_status);
    let rest = match out {
        None => Cow::Borrowed(message),
        Some(mut o) => {
            o.extend_from_slice(&message[copied..]);
            Cow::Owned(o)
        }
    };
    (rest, meta)
}

/// Offset just after the line starting at `p`.
fn next_line(s: &[u8], p: usize) -> usize {
    memchr::memchr(b'\n', &s[p..]).map_or(s.len(), |i| p + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_table() {
        let table: &[(&str, &str, &str, bool)] = &[
            ("", "", "", false),
            ("O", "", "", true),
            ("RO", "", "S", true),
            ("R", "", "S", true),
            ("", "A", "R", true),
            ("", "F", "F", true),
            ("", "T", "D", true),
            ("", "D", "T", true),
            ("RO", "AFTD", "DFRST", true),
            (" R O ", " F ", "FS", true),
            ("U", "Z", "", false),
        ];
        for (status, xs, want, cur) in table {
            let f = Flags::from_values(status.as_bytes(), xs.as_bytes());
            assert_eq!(f.maildir_flags(), *want, "{status:?} {xs:?}");
            assert_eq!(f.goes_to_cur(), *cur, "{status:?} {xs:?}");
        }
    }

    #[test]
    fn strip_table() {
        // (message, remaining, flags, keywords, uid, uidvalidity, nextuid)
        type Row = (
            &'static str,
            &'static str,
            &'static str,
            &'static [&'static str],
            Option<u32>,
            Option<u32>,
            Option<u32>,
        );
        let table: &[Row] = &[
            (
                "Subject: x\n\nbody\n",
                "Subject: x\n\nbody\n",
                "",
                &[],
                None,
                None,
                None,
            ),
            (
                "Subject: x\nStatus: RO\nX-Status: AF\n\nStatus: RO\n",
                "Subject: x\n\nStatus: RO\n",
                "FRS",
                &[],
                None,
                None,
                None,
            ),
            (
                "X-IMAPbase: 1234567890 42 $Junk work\nstatus: R\nX-UID: 7\nX-Keywords: $Label1 urgent,later\n\tcontinued\nTo: a\n\nb\n",
                "To: a\n\nb\n",
                "S",
                &["$Label1", "urgent", "later", "continued"],
                Some(7),
                Some(1_234_567_890),
                Some(42),
            ),
            (
                "Content-Length: 12\r\nX-Status: D\r\nFrom: a\r\n\r\nb\r\n",
                "From: a\r\n\r\nb\r\n",
                "T",
                &[],
                None,
                None,
                None,
            ),
            // Headers only, no body.
            (
                "Status: O\nSubject: x\n",
                "Subject: x\n",
                "",
                &[],
                None,
                None,
                None,
            ),
            // Not a private header although it starts the same.
            (
                "X-Status-Extra: 1\nStatus : R\n\n",
                "X-Status-Extra: 1\n\n",
                "S",
                &[],
                None,
                None,
                None,
            ),
        ];
        for (msg, rest, flags, kw, uid, uv, nu) in table {
            let (got, meta) = strip(msg.as_bytes());
            assert_eq!(String::from_utf8_lossy(&got), *rest, "{msg:?}");
            assert_eq!(meta.flags.maildir_flags(), *flags, "{msg:?}");
            assert_eq!(
                meta.keywords,
                kw.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{msg:?}"
            );
            assert_eq!(
                (meta.uid, meta.uid_validity, meta.next_uid),
                (*uid, *uv, *nu),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn pseudo_message_and_content_length() {
        let (rest, meta) = strip(b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1 5\nContent-Length: 9\n\nx\n");
        assert!(meta.folder_internal_data);
        assert_eq!(
            (meta.uid_validity, meta.next_uid, meta.content_length),
            (Some(1), Some(5), Some(9))
        );
        assert!(!rest.windows(7).any(|w| w.eq_ignore_ascii_case(b"x-imap:")));
        let (rest, meta) = strip(b"X-IMAPbase: 1 5\n\n");
        assert!(!meta.folder_internal_data);
        assert_eq!(&*rest, b"\n");
    }

    #[test]
    fn strip_borrows_when_nothing_to_remove() {
        assert!(matches!(strip(b"A: b\n\nStatus: R\n").0, Cow::Borrowed(_)));
    }
}
