//! Telling the mbox variants apart, and saying how sure we are.
//!
//! The variants differ in two things a file shows only indirectly:
//!
//! - **Content-Length.** If every message has a `Content-Length` header and
//!   every one lands exactly on the next `From_` line (or the end), the file
//!   is mboxcl or mboxcl2. Any message without one, or with one that does
//!   not land, rules them out (the mismatches are reported).
//! - **Quoting.** In a Content-Length mbox, an unquoted body line starting
//!   with `From ` means nobody quoted: mboxcl2. Quoted `>From ` lines and no
//!   unquoted ones suggest mboxcl (which quotes like mboxo); neither reads
//!   the same either way, so mboxcl2 is chosen. Otherwise, `>>From ` lines
//!   suggest mboxrd, whose reading then differs from mboxo's (one `>` is
//!   removed); without them mboxo and mboxrd read identically and mboxrd is
//!   chosen.
//!
//! Whatever is uncertain comes back as [`Warning`]s with byte offsets,
//! rather than as a log line, so a converter can show or count them.

use std::fmt;

use memchr::memmem;

use super::Variant;
use super::reader::{ContentLength, MAX_WARNINGS, NotMbox, Reader, separator_at};
use super::window::{Bytes, Span, SpanError, Spans};

/// What [`detect`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The variant to read the file as.
    pub variant: Variant,
    /// Doubts and oddities, in file order per kind, at most
    /// [`Detection::MAX_WARNINGS`].
    pub warnings: Vec<Warning>,
    /// Warnings beyond that limit, counted only.
    pub suppressed: usize,
}

impl Detection {
    /// How many warnings are kept.
    pub const MAX_WARNINGS: usize = MAX_WARNINGS;
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.warnings.len() + self.suppressed;
        write!(f, "{}", self.variant)?;
        if n > 0 {
            write!(f, " ({n} warning{})", if n == 1 { "" } else { "s" })?;
        }
        Ok(())
    }
}

/// Something uncertain or odd at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Byte offset in the mbox.
    pub offset: u64,
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// The Content-Length header (at the offset) of message `message` does
    /// not lead to the next `From_` line or the end, or cannot be read
    /// (`value` is `None`), or appears twice: it was ignored.
    ContentLengthIgnored { message: usize, value: Option<u64> },
    /// Some messages have a Content-Length header and some (the first at
    /// the offset) do not: the headers were ignored altogether.
    ContentLengthPartial { with: usize, without: usize },
    /// A `>>From ` line (the first at the offset; `count` in all): read as
    /// mboxrd, which removes one `>`. Had the file been written as mboxo,
    /// these lines were in the original with both `>`.
    MboxrdAssumed { count: usize },
    /// A `>From ` line in a Content-Length mbox (the first at the offset;
    /// `count` in all): read as mboxcl, which removes the `>`. Had the file
    /// been written as mboxcl2, the line was in the original as is.
    MboxclAssumed { count: usize },
    /// A line beginning with `From ` that is not a separator stays in the
    /// body. Programs that split at every such line (Python's `mailbox`,
    /// some old mail readers) would start a new message here.
    UnquotedFrom { why: &'static str },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: ", self.offset)?;
        match &self.kind {
            WarningKind::ContentLengthIgnored { message, value } => match value {
                Some(v) => write!(
                    f,
                    "message {message}: Content-Length {v} does not end at a From_ line or the end of the file; ignored"
                ),
                None => write!(
                    f,
                    "message {message}: unreadable or repeated Content-Length; ignored"
                ),
            },
            WarningKind::ContentLengthPartial { with, without } => write!(
                f,
                "{with} messages have a Content-Length header and {without} do not (the first here); \
                 Content-Length ignored"
            ),
            WarningKind::MboxrdAssumed { count } => write!(
                f,
                "{count} \">>From \" line(s): read as mboxrd (one '>' removed); an mboxo writer would have kept both"
            ),
            WarningKind::MboxclAssumed { count } => write!(
                f,
                "{count} \">From \" line(s) in a Content-Length mbox: read as mboxcl ('>' removed); \
                 an mboxcl2 writer would have kept it"
            ),
            WarningKind::UnquotedFrom { why } => {
                write!(
                    f,
                    "line begins with \"From \" but is not a separator ({why}); kept in the body"
                )
            }
        }
    }
}

struct Warnings {
    list: Vec<Warning>,
    suppressed: usize,
}

impl Warnings {
    fn push(&mut self, offset: usize, kind: WarningKind) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(Warning {
                offset: offset as u64,
                kind,
            });
        } else {
            self.suppressed += 1;
        }
    }
}

/// Decides which variant `data` is. Empty data is an (empty) mboxrd; data
/// that does not start with a `From_` line is not an mbox.
///
/// Costs one pass of substring search over the data, plus a pass over the
/// header blocks when the first message has a Content-Length header.
pub fn detect(data: &[u8]) -> Result<Detection, NotMbox> {
    detect_in(&data, data.len()).map_err(|e| match e {
        SpanError::NotMbox(n) => n,
        SpanError::Read(never) => match never {},
    })
}

/// [`detect`] over windows of whole messages of about `size` bytes (see
/// [`Spans`]), with the same outcome whatever the size: every scan below
/// looks at most one line back and one `From_` line ahead of a match, and
/// windows are cut at message starts, which no match spans.
pub(crate) fn detect_in<B: Bytes + ?Sized>(
    bytes: &B,
    size: usize,
) -> Result<Detection, SpanError<B::Error>> {
    let mut w = Warnings {
        list: Vec::new(),
        suppressed: 0,
    };
    if bytes.len() == 0 {
        return Ok(Detection {
            variant: Variant::Mboxrd,
            warnings: Vec::new(),
            suppressed: 0,
        });
    }

    // 1. Content-Length: walk the messages as mboxcl2 would.
    let (mut used, mut ignored, mut missing) = (0usize, 0usize, 0usize);
    let mut first_missing = None;
    let mut walk_warnings = Warnings {
        list: Vec::new(),
        suppressed: 0,
    };
    let mut walked_all = true;
    let mut messages = 0;
    'walk: for span in Spans::new(bytes, Variant::Mboxcl2, size) {
        let Span { start, window } = span?;
        let mut reader = Reader::new(&window, Variant::Mboxcl2)
            .map_err(SpanError::NotMbox)?
            .numbered_after(messages);
        for m in reader.by_ref() {
            messages += 1;
            match m.content_length() {
                ContentLength::Used => used += 1,
                ContentLength::Ignored => ignored += 1,
                ContentLength::Missing | ContentLength::NotUsed => {
                    missing += 1;
                    first_missing.get_or_insert(start + m.range().start);
                }
            }
            if used + ignored == 0 {
                // The first message has none: not a Content-Length mbox, and
                // there is no need to read every header block to say so.
                walked_all = false;
                break 'walk;
            }
        }
        for x in reader.warnings() {
            walk_warnings.push(start + x.offset as usize, x.kind.clone());
        }
        walk_warnings.suppressed += reader.suppressed_warnings();
    }
    let content_length = walked_all && used > 0 && ignored == 0 && missing == 0;
    if walked_all && !content_length {
        for x in walk_warnings.list {
            w.push(x.offset as usize, x.kind);
        }
        w.suppressed += walk_warnings.suppressed;
        if let (Some(at), true) = (first_missing, used + ignored > 0) {
            w.push(
                at,
                WarningKind::ContentLengthPartial {
                    with: used + ignored,
                    without: missing,
                },
            );
        }
    }

    // 2. and 3., window by window: windows cut where the variant decided
    // so far cuts messages (so a window start is a separator, or with
    // Content-Length a message start: never a warning of its own).
    let (mut quoted1, mut quoted2) = (0usize, 0usize);
    let (mut first1, mut first2) = (None, None);
    let mut unquoted = 0usize;
    let cut_as = if content_length {
        Variant::Mboxcl2
    } else {
        Variant::Mboxrd
    };
    for span in Spans::new(bytes, cut_as, size) {
        let Span { start, window } = span?;
        let data: &[u8] = &window;

        // 2. Quoted From lines.
        for i in memmem::find_iter(data, b">From ") {
            let mut j = i;
            while j > 0 && data[j - 1] == b'>' {
                j -= 1;
            }
            if j != 0 && data[j - 1] != b'\n' {
                continue;
            }
            if i == j {
                quoted1 += 1;
                first1.get_or_insert(start + j);
            } else {
                quoted2 += 1;
                first2.get_or_insert(start + j);
            }
        }

        // 3. Unquoted From lines that are not separators.
        let starts: Vec<usize> = if content_length {
            Reader::new(data, Variant::Mboxcl2)
                .map_err(SpanError::NotMbox)?
                .map(|m| m.range().start)
                .collect()
        } else {
            Vec::new()
        };
        for h in memmem::find_iter(data, b"\nFrom ") {
            let p = h + 1;
            let why = if content_length {
                if starts.binary_search(&p).is_ok() {
                    continue;
                }
                "inside a Content-Length span"
            } else {
                if separator_at(data, p, data.len()).is_some() {
                    continue;
                }
                let after_blank = data[..h].ends_with(b"\n") || data[..h].ends_with(b"\n\r");
                if after_blank {
                    "no valid date"
                } else {
                    "no blank line before it"
                }
            };
            unquoted += 1;
            w.push(start + p, WarningKind::UnquotedFrom { why });
        }
    }

    let variant = if content_length {
        if unquoted > 0 {
            Variant::Mboxcl2
        } else if let Some(at) = first1.or(first2) {
            w.push(
                at,
                WarningKind::MboxclAssumed {
                    count: quoted1 + quoted2,
                },
            );
            Variant::Mboxcl
        } else {
            Variant::Mboxcl2
        }
    } else {
        if let Some(at) = first2 {
            w.push(at, WarningKind::MboxrdAssumed { count: quoted2 });
        }
        Variant::Mboxrd
    };
    let mut warnings = w.list;
    warnings.sort_by_key(|x| x.offset);
    Ok(Detection {
        variant,
        warnings,
        suppressed: w.suppressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "Tue Jan  2 03:04:05 2024";

    fn msg(sender: &str, headers: &str, body: &str) -> String {
        format!("From {sender} {D}\n{headers}\n{body}\n")
    }

    fn cl(sender: &str, body: &str) -> String {
        msg(sender, &format!("Content-Length: {}\n", body.len()), body)
    }

    fn kinds(d: &Detection) -> Vec<&'static str> {
        d.warnings
            .iter()
            .map(|w| match w.kind {
                WarningKind::ContentLengthIgnored { .. } => "cl-ignored",
                WarningKind::ContentLengthPartial { .. } => "cl-partial",
                WarningKind::MboxrdAssumed { .. } => "rd-assumed",
                WarningKind::MboxclAssumed { .. } => "cl-assumed",
                WarningKind::UnquotedFrom { why } => why,
            })
            .collect()
    }

    #[test]
    fn detection_table() {
        let table: Vec<(&str, String, Variant, Vec<&str>)> = vec![
            ("empty", String::new(), Variant::Mboxrd, vec![]),
            (
                "plain",
                msg("a", "S: 1\n", "hi\n") + &msg("b", "S: 2\n", "ho\n"),
                Variant::Mboxrd,
                vec![],
            ),
            (
                "quoted once",
                msg("a", "S: 1\n", ">From x\n"),
                Variant::Mboxrd,
                vec![],
            ),
            (
                "quoted twice",
                msg("a", "S: 1\n", ">From x\n>>From y\n"),
                Variant::Mboxrd,
                vec!["rd-assumed"],
            ),
            (
                "unquoted no date",
                msg("a", "S: 1\n", "x\n\nFrom here on\n"),
                Variant::Mboxrd,
                vec!["no valid date"],
            ),
            (
                "unquoted no blank",
                msg("a", "S: 1\n", &format!("x\nFrom b {D}\n")),
                Variant::Mboxrd,
                vec!["no blank line before it"],
            ),
            (
                "cl2 clean",
                cl("a", "hi\n") + &cl("b", "ho\n"),
                Variant::Mboxcl2,
                vec![],
            ),
            (
                "cl2 unquoted",
                cl("a", &format!("hi\n\nFrom x {D}\n")) + &cl("b", "ho\n"),
                Variant::Mboxcl2,
                vec!["inside a Content-Length span"],
            ),
            (
                "cl quoted",
                cl("a", ">From x\n") + &cl("b", "ho\n"),
                Variant::Mboxcl,
                vec!["cl-assumed"],
            ),
            (
                "cl partial",
                cl("a", "hi\n") + &msg("b", "S: 1\n", "ho\n"),
                Variant::Mboxrd,
                vec!["cl-partial"],
            ),
            (
                "cl wrong",
                msg("a", "Content-Length: 1\n", "hello\n") + &cl("b", "ho\n"),
                Variant::Mboxrd,
                vec!["cl-ignored"],
            ),
            (
                "cl only later",
                msg("a", "S: 1\n", "hi\n") + &cl("b", "ho\n"),
                Variant::Mboxrd,
                vec![],
            ),
        ];
        for (name, data, variant, want) in &table {
            let d = detect(data.as_bytes()).unwrap();
            assert_eq!(d.variant, *variant, "{name}");
            assert_eq!(kinds(&d), *want, "{name}: {:?}", d.warnings);
        }
    }

    #[test]
    fn warning_offsets_point_at_the_line() {
        let data = msg("a", "S: 1\n", "x\n\nFrom here on\n>From q\n>>From r\n");
        let d = detect(data.as_bytes()).unwrap();
        for w in &d.warnings {
            let at = &data.as_bytes()[w.offset as usize..];
            assert!(
                at.starts_with(b"From here") || at.starts_with(b">>From r"),
                "{w}"
            );
        }
        assert_eq!(d.to_string(), "mboxrd (2 warnings)");
    }

    #[test]
    fn not_an_mbox_is_an_error() {
        assert_eq!(detect(b"Subject: x\n\nhi\n").unwrap_err().offset, 0);
    }

    #[test]
    fn warnings_are_capped() {
        let body: String = (0..(MAX_WARNINGS + 10))
            .map(|i| format!("x{i}\nFrom nodate\n"))
            .collect();
        let d = detect(msg("a", "S: 1\n", &body).as_bytes()).unwrap();
        assert_eq!(d.warnings.len(), MAX_WARNINGS);
        assert_eq!(d.suppressed, 10);
    }
}
