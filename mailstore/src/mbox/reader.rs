//! Splitting mbox bytes into messages.
//!
//! A separator is a line that parses as a `From_` line (see
//! [`FromLine`]) and stands at the start of the data or right after a blank
//! line. A body line that merely begins with `From ` (no blank line before
//! it, or no date) stays in the body, whatever the variant.
//!
//! The blank line before a separator belongs to the mbox format, not to the
//! message: exactly one line ending is removed from the end of each message
//! that is followed by a separator. The last message keeps its bytes as
//! they are, less one trailing blank line if the file ends with one (what
//! every appender writes).
//!
//! For mboxcl and mboxcl2, a message's `Content-Length` header is trusted
//! when the end of its header block plus that length lands exactly on the
//! end of the data or on a `From_` line (directly or after one blank line):
//! the message then ends there and any `From ` line inside the span is body.
//! A length that does not land is ignored (the separator rule decides) and
//! reported as a [`Warning`]. mboxo and mboxrd readers ignore
//! `Content-Length`, as their writers do not keep it right.
//!
//! The search runs over bytes only (no UTF-8 assumed) with `memchr`'s
//! substring search for `"\nFrom "`, so scanning costs about as much as
//! reading memory.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use memchr::memmem;

use super::Variant;
use super::detect::{Warning, WarningKind};
use super::from_line::FromLine;
use super::quote;
use crate::error::Error;

/// Bytes that are not an mbox, and where that shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotMbox {
    /// Byte offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub why: &'static str,
}

impl NotMbox {
    /// The crate error for the mbox at `path`.
    pub fn at(self, path: &Path) -> Error {
        Error::BadMbox {
            path: path.to_path_buf(),
            offset: self.offset,
            why: self.why.to_string(),
        }
    }
}

impl fmt::Display for NotMbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.why)
    }
}

impl std::error::Error for NotMbox {}

/// One message of an mbox.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    number: usize,
    range: Range<usize>,
    content: Range<usize>,
    from: FromLine<'a>,
    raw: &'a [u8],
    variant: Variant,
    content_length: ContentLength,
}

/// What a message's Content-Length header did (for detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentLength {
    /// The variant does not use Content-Length.
    NotUsed,
    /// No header.
    Missing,
    /// Present and it landed: the message ends where it says.
    Used,
    /// Present (and maybe unparseable) but did not land: ignored.
    Ignored,
}

impl<'a> Message<'a> {
    /// 1-based position among the messages this reader produced (a reader
    /// of one chunk counts from the chunk's start).
    pub fn number(&self) -> usize {
        self.number
    }

    /// Bytes of the whole entry in the file: from its `From_` line up to
    /// the next `From_` line (or the end). Consecutive messages' ranges
    /// tile the data.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Bytes of the message itself in the file (after the `From_` line,
    /// before the separating blank line), still quoted.
    pub fn content_range(&self) -> Range<usize> {
        self.content.clone()
    }

    /// The `From_` line (envelope sender and date).
    pub fn from_line(&self) -> &FromLine<'a> {
        &self.from
    }

    /// The message as stored, with the variant's `From ` quoting.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The message with the variant's quoting removed: borrowed from the
    /// mbox when there was nothing to unquote.
    pub fn bytes(&self) -> Cow<'a, [u8]> {
        quote::unquote(self.variant, self.raw)
    }

    /// The variant this message was read as.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    pub(crate) fn content_length(&self) -> ContentLength {
        self.content_length
    }
}

/// At most this many warnings are kept; the rest are only counted.
pub(crate) const MAX_WARNINGS: usize = 100;

/// Iterates over the messages of mbox bytes (a whole file or one chunk of
/// it from [`split_points`]).
pub struct Reader<'a> {
    data: &'a [u8],
    variant: Variant,
    /// Start of the next message's `From_` line.
    pos: usize,
    /// Where reading stops: the end of the data or of the chunk (for an
    /// open-ended reader, the end of its last whole line).
    end: usize,
    /// More of the mbox follows `data` unseen (see [`Reader::open_ended`]):
    /// the length of the mbox from `data[0]` on.
    open: Option<usize>,
    number: usize,
    finder: memmem::Finder<'static>,
    warnings: Vec<Warning>,
    suppressed: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a whole mbox. Empty data has zero messages; anything
    /// else must start with a `From_` line.
    pub fn new(data: &'a [u8], variant: Variant) -> Result<Reader<'a>, NotMbox> {
        if !data.is_empty() && from_line_at(data, 0, data.len()).is_none() {
            return Err(not_a_first_line(data));
        }
        Ok(Self::unchecked(data, variant, 0..data.len()))
    }

    /// A reader over `range` of `data`, whose start must be a separator
    /// (as [`split_points`] returns) and whose end a separator or the end
    /// of the data.
    pub fn chunk(
        data: &'a [u8],
        range: Range<usize>,
        variant: Variant,
    ) -> Result<Reader<'a>, NotMbox> {
        if range.start > range.end || range.end > data.len() {
            return Err(NotMbox {
                offset: range.start as u64,
                why: "chunk outside the data",
            });
        }
        if range.start < range.end && from_line_at(data, range.start, range.end).is_none() {
            return Err(NotMbox {
                offset: range.start as u64,
                why: "chunk does not start at a From_ line",
            });
        }
        Ok(Self::unchecked(data, variant, range))
    }

    /// A reader over `data`, which starts at a message and is followed by
    /// more of the mbox that it does not show (a window of a file): it
    /// yields only the messages whose end `data` already decides, and stops
    /// at the first one that may run on; [`Reader::position`] is then where
    /// that one starts. A message is decided when everything its end
    /// depends on lies in whole lines of `data`: the next `From_` line, the
    /// blank line before it, and for the Content-Length variants the header
    /// block and the place the length leads to (a length that leads past
    /// the last whole line may still land, so it is not judged yet, unless
    /// it leads past the end of the mbox: `len` is the mbox's length from
    /// `data[0]` on).
    pub(crate) fn open_ended(data: &'a [u8], variant: Variant, len: usize) -> Reader<'a> {
        let whole_lines = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
        Reader {
            open: Some(len),
            ..Self::unchecked(data, variant, 0..whole_lines)
        }
    }

    fn unchecked(data: &'a [u8], variant: Variant, range: Range<usize>) -> Reader<'a> {
        Reader {
            data,
            variant,
            pos: range.start,
            end: range.end,
            open: None,
            number: 0,
            finder: memmem::Finder::new(b"\nFrom "),
            warnings: Vec::new(),
            suppressed: 0,
        }
    }

    /// Numbers the messages after `earlier` ones (a reader of one piece of
    /// a file that knows how many messages came before it).
    pub(crate) fn numbered_after(mut self, earlier: usize) -> Reader<'a> {
        self.number = earlier;
        self
    }

    /// Where the next message starts (the end, once all are read; for an
    /// open-ended reader, the start of the first message not decided).
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The variant messages are read as.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Content-Length headers ignored so far (they did not land).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Warnings beyond the first [`MAX_WARNINGS`], counted only.
    pub fn suppressed_warnings(&self) -> usize {
        self.suppressed
    }

    fn warn(&mut self, offset: usize, kind: WarningKind) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Warning {
                offset: offset as u64,
                kind,
            });
        } else {
            self.suppressed += 1;
        }
    }

    /// The next separator whose "\nFrom " starts at or after `from`.
    fn find_separator(&self, from: usize) -> Option<Separator<'a>> {
        find_separator(&self.finder, self.data, from, self.end)
    }

    /// Where the Content-Length of the message whose headers start at
    /// `start` makes it end, if it lands: (content end, next message).
    /// `None` when an open-ended reader cannot tell yet.
    fn content_length_end(
        &mut self,
        start: usize,
        number: usize,
    ) -> Option<(ContentLength, Option<(usize, usize)>)> {
        let h = scan_headers(self.data, start, self.end);
        if self.open.is_some() && !h.complete {
            return None;
        }
        let Some((at, value)) = h.content_length else {
            return Some((ContentLength::Missing, None));
        };
        let body_end = value.and_then(|len| h.end.checked_add(usize::try_from(len).ok()?));
        let landing = body_end.map_or(Landing::No, |e| self.lands(e));
        match (landing, body_end) {
            (Landing::At(next), Some(body_end)) => {
                Some((ContentLength::Used, Some((body_end, next))))
            }
            (Landing::NotYet, _) => None,
            _ => {
                self.warn(
                    at,
                    WarningKind::ContentLengthIgnored {
                        message: number,
                        value,
                    },
                );
                Some((ContentLength::Ignored, None))
            }
        }
    }

    /// Whether a body ending at `body_end` is followed by the end of the
    /// data or a `From_` line (after at most one blank line), and where
    /// that next message starts.
    fn lands(&self, body_end: usize) -> Landing {
        let data = self.data;
        if body_end > self.end {
            return match self.open {
                Some(len) if body_end <= len => Landing::NotYet,
                _ => Landing::No,
            };
        }
        let rest = &data[body_end..self.end];
        let skip = if rest.starts_with(b"\r\n") {
            2
        } else if rest.starts_with(b"\n") {
            1
        } else {
            0
        };
        let p = body_end + skip;
        if p == self.end {
            // The end of the mbox, or of what an open-ended reader sees.
            return if self.open.is_some() {
                Landing::NotYet
            } else {
                Landing::At(p)
            };
        }
        let at_line_start = p == 0 || data[p - 1] == b'\n';
        if at_line_start && from_line_at(data, p, self.end).is_some() {
            Landing::At(p)
        } else {
            Landing::No
        }
    }
}

/// Where a Content-Length leads.
enum Landing {
    /// To the end of the data or a `From_` line: the next message starts here.
    At(usize),
    /// Elsewhere.
    No,
    /// Past what an open-ended reader sees.
    NotYet,
}

impl<'a> Iterator for Reader<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        if self.pos >= self.end {
            return None;
        }
        let data = self.data;
        let start = self.pos;
        let line_end =
            memchr::memchr(b'\n', &data[start..self.end]).map_or(self.end, |i| start + i);
        // Every position `pos` takes was checked to hold a From_ line; if
        // that ever failed, stop rather than misreport.
        let from = FromLine::parse(&data[start..line_end])?;
        let content_start = (line_end + 1).min(self.end);
        let number = self.number + 1;
        // A message an open-ended reader cannot decide takes back its warnings.
        let kept = (self.warnings.len(), self.suppressed);
        let undecided = |r: &mut Self| {
            r.warnings.truncate(kept.0);
            r.suppressed = kept.1;
            None
        };

        let (content_length, landed) = if self.variant.uses_content_length() {
            match self.content_length_end(content_start, number) {
                Some(c) => c,
                None => return undecided(self),
            }
        } else {
            (ContentLength::NotUsed, None)
        };
        let (content_end, next) = match landed {
            Some(l) => l,
            None => match self.find_separator(content_start) {
                Some(sep) => (sep.at - sep.blank, sep.at),
                None if self.open.is_some() => return undecided(self),
                None => {
                    let blank = blank_line_before(data, self.end, content_start);
                    (self.end - blank, self.end)
                }
            },
        };
        self.number = number;
        self.pos = next;
        Some(Message {
            number,
            range: start..next,
            content: content_start..content_end,
            from,
            raw: &data[content_start..content_end],
            variant: self.variant,
            content_length,
        })
    }
}

/// A verified separator: the offset of its `From_` line and the length of
/// the blank line before it (1 for `\n`, 2 for `\r\n`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Separator<'a> {
    pub at: usize,
    pub blank: usize,
    #[allow(dead_code)] // kept for callers that want the parsed line
    pub from: FromLine<'a>,
}

/// The first separator in `data[..end]` whose `"\nFrom "` starts at or
/// after `from`.
pub(crate) fn find_separator<'a>(
    finder: &memmem::Finder<'_>,
    data: &'a [u8],
    from: usize,
    end: usize,
) -> Option<Separator<'a>> {
    let mut at = from;
    while at < end {
        let h = at + finder.find(&data[at..end])?;
        if let Some(sep) = separator_at(data, h + 1, end) {
            return Some(sep);
        }
        at = h + 1;
    }
    None
}

/// Whether a separator starts at `p` (just after a `\n`).
pub(crate) fn separator_at(data: &[u8], p: usize, end: usize) -> Option<Separator<'_>> {
    // The line before must be blank: "\n\n" or "\n\r\n" ends at p.
    let blank = if p >= 2 && data[p - 2] == b'\n' {
        1
    } else if p >= 3 && data[p - 2] == b'\r' && data[p - 3] == b'\n' {
        2
    } else {
        return None;
    };
    let from = from_line_at(data, p, end)?;
    Some(Separator { at: p, blank, from })
}

/// Why data whose first line is not a `From_` line is not an mbox.
fn not_a_first_line(data: &[u8]) -> NotMbox {
    let why = if data.starts_with(b"From ") {
        "the first line begins with \"From \" but has no valid date"
    } else {
        "does not begin with a From_ line"
    };
    NotMbox { offset: 0, why }
}

/// Where a window of an mbox that more of the file follows ends, so that
/// it holds whole messages only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Just after the last message the window decides (the start of the
    /// next one).
    At(usize),
    /// The window does not decide even its first message: map a larger one.
    Grow,
}

/// Where to cut `data`, which starts at a message (or at the start of the
/// file) and is followed by more of the file (`len` bytes from `data[0]` to
/// the end): after the last message whose end it decides, as an open-ended
/// [`Reader`] would read it.
///
/// For mboxo and mboxrd that is the last separator whose `From_` line is
/// whole, found searching backwards from the end (every separator ends a
/// message), so only the tail is read. For mboxcl and mboxcl2 a `From_`
/// line may lie inside a Content-Length span, and only walking the
/// messages from the start tells.
pub(crate) fn cut(data: &[u8], variant: Variant, len: usize) -> Result<Cut, NotMbox> {
    match memchr::memchr(b'\n', data) {
        Some(nl) if from_line_at(data, 0, nl + 1).is_none() => {
            return Err(not_a_first_line(data));
        }
        None if !data.starts_with(&b"From "[..data.len().min(5)]) => {
            return Err(not_a_first_line(data));
        }
        _ => {}
    }
    let end = if variant.uses_content_length() {
        let mut reader = Reader::open_ended(data, variant, len);
        reader.by_ref().for_each(drop);
        reader.position()
    } else {
        last_separator(data)
    };
    Ok(if end > 0 { Cut::At(end) } else { Cut::Grow })
}

/// The last separator in `data` whose `From_` line ends in `data` (0 if
/// there is none).
fn last_separator(data: &[u8]) -> usize {
    let whole_lines = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
    let finder = memmem::FinderRev::new(b"\nFrom ");
    let mut to = whole_lines;
    // "\nFrom " cannot overlap itself: the next hit ends before this one.
    while let Some(h) = finder.rfind(&data[..to]) {
        if let Some(sep) = separator_at(data, h + 1, whole_lines) {
            return sep.at;
        }
        to = h;
    }
    0
}

/// The `From_` line starting at `p`, if the line there is one.
pub(crate) fn from_line_at(data: &[u8], p: usize, end: usize) -> Option<FromLine<'_>> {
    let rest = &data[p..end];
    if !rest.starts_with(b"From ") {
        return None;
    }
    let line_end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i);
    FromLine::parse(&rest[..line_end])
}

/// Length of the blank line that ends exactly at `end` and lies entirely
/// at or after `floor` (0 if there is none).
fn blank_line_before(data: &[u8], end: usize, floor: usize) -> usize {
    let d = &data[..end];
    // The line ending before the blank line may be the From_ line's own
    // (at floor - 1): an empty message.
    if d.ends_with(b"\n\n") && end > floor {
        1
    } else if d.ends_with(b"\n\r\n") && end - 2 >= floor {
        2
    } else {
        0
    }
}

/// What the header block of a message says about its length.
pub(crate) struct Headers {
    /// Offset just after the blank line that ends the headers (or the end
    /// of the data if there is none).
    pub end: usize,
    /// Offset of the Content-Length header and its value (`None` if it
    /// cannot be read, or if there are several).
    pub content_length: Option<(usize, Option<u64>)>,
    /// Whether the blank line was found (else the data ended first).
    pub complete: bool,
}

/// Reads the header block starting at `start`.
pub(crate) fn scan_headers(data: &[u8], start: usize, end: usize) -> Headers {
    let mut p = start;
    let mut content_length: Option<(usize, Option<u64>)> = None;
    while p < end {
        let nl = memchr::memchr(b'\n', &data[p..end]).map_or(end, |i| p + i);
        let line = &data[p..nl];
        if line.is_empty() || line == b"\r" {
            return Headers {
                end: (nl + 1).min(end),
                content_length,
                complete: true,
            };
        }
        const NAME: &[u8] = b"content-length:";
        if line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let value = parse_length(&line[NAME.len()..]);
            content_length = match content_length {
                None => Some((p, value)),
                // Two headers: trust neither.
                Some((first, _)) => Some((first, None)),
            };
        }
        p = nl + 1;
    }
    Headers {
        end,
        content_length,
        complete: false,
    }
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Offsets at which to cut `data` into about `n_chunks` pieces of similar
/// size for parallel readers: the first is 0, each is a verified
/// separator, and they are increasing. Chunk `i` is
/// `points[i]..points[i + 1]` (the last one runs to the end); read each with
/// [`Reader::chunk`]. Fewer points come back when messages are too big to
/// cut finer; none for empty data.
///
/// For mboxcl and mboxcl2 the messages are walked from the start (a
/// `From ` line inside a Content-Length span is not a separator, and only
/// the walk can tell), which costs one pass over the header blocks.
pub fn split_points(data: &[u8], variant: Variant, n_chunks: usize) -> Vec<usize> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut points = vec![0];
    let n = n_chunks.max(1);
    if variant.uses_content_length() {
        let Ok(reader) = Reader::new(data, variant) else {
            return points;
        };
        let mut i = 1;
        for m in reader {
            let s = m.range().start;
            while i < n && s >= data.len() / n * i {
                if s > *points.last().unwrap_or(&0) {
                    points.push(s);
                }
                i += 1;
            }
            if i >= n {
                break;
            }
        }
        return points;
    }
    let finder = memmem::Finder::new(b"\nFrom ");
    for i in 1..n {
        let target = data.len() / n * i;
        let from = target.saturating_sub(1).max(*points.last().unwrap_or(&0));
        match find_separator(&finder, data, from, data.len()) {
            Some(sep) if sep.at > *points.last().unwrap_or(&0) => points.push(sep.at),
            Some(_) => {}
            None => break,
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (number, sender, content) of each message.
    fn read(data: &str, v: Variant) -> Vec<(usize, String, String)> {
        Reader::new(data.as_bytes(), v)
            .unwrap()
            .map(|m| {
                (
                    m.number(),
                    m.from_line().sender_lossy().into_owned(),
                    String::from_utf8_lossy(&m.bytes()).into_owned(),
                )
            })
            .collect()
    }

    fn contents(data: &str, v: Variant) -> Vec<String> {
        read(data, v).into_iter().map(|(_, _, c)| c).collect()
    }

    const D: &str = "Tue Jan  2 03:04:05 2024";

    #[test]
    fn splitting_table() {
        let f = |s: &str| format!("From {s} {D}\n");
        let no_blank = String::from("S: 1\n\nhi\n") + &f("b") + "x\n";
        let table: Vec<(String, Variant, Vec<&str>)> = vec![
            (String::new(), Variant::Mboxrd, vec![]),
            (
                f("a") + "S: 1\n\nbody\n\n" + &f("b") + "S: 2\n\nx\n\n",
                Variant::Mboxrd,
                vec!["S: 1\n\nbody\n", "S: 2\n\nx\n"],
            ),
            // no final newline
            (
                f("a") + "S: 1\n\nbody",
                Variant::Mboxrd,
                vec!["S: 1\n\nbody"],
            ),
            // final newline but no final blank line: kept as is
            (
                f("a") + "S: 1\n\nbody\n",
                Variant::Mboxrd,
                vec!["S: 1\n\nbody\n"],
            ),
            // empty messages
            (
                f("a") + "\n" + &f("b") + "\n",
                Variant::Mboxrd,
                vec!["", ""],
            ),
            (f("a").trim_end().to_string(), Variant::Mboxrd, vec![""]),
            (f("a") + "\n" + &f("b"), Variant::Mboxrd, vec!["", ""]),
            // From line without a blank line before it stays in the body
            (
                f("a") + "S: 1\n\nhi\n" + &f("b") + "x\n",
                Variant::Mboxrd,
                vec![&*no_blank],
            ),
            // after a blank line but no date: body
            (
                f("a") + "S: 1\n\nhi\n\nFrom here on, we\n",
                Variant::Mboxrd,
                vec!["S: 1\n\nhi\n\nFrom here on, we\n"],
            ),
            (
                f("a") + "S: 1\n\n\nFrom \n",
                Variant::Mboxrd,
                vec!["S: 1\n\n\nFrom \n"],
            ),
            // quoting removed per variant
            (
                f("a") + "S: 1\n\n>From x\n>>From y\n",
                Variant::Mboxrd,
                vec!["S: 1\n\nFrom x\n>From y\n"],
            ),
            (
                f("a") + "S: 1\n\n>From x\n>>From y\n",
                Variant::Mboxo,
                vec!["S: 1\n\nFrom x\n>>From y\n"],
            ),
            // message keeps its own trailing blank lines but one
            (
                f("a") + "S: 1\n\nbody\n\n\n" + &f("b") + "x\n",
                Variant::Mboxrd,
                vec!["S: 1\n\nbody\n\n", "x\n"],
            ),
            // CRLF file
            (
                format!(
                    "From a {D}\r\nS: 1\r\n\r\nbody\r\n\r\nFrom b {D}\r\nS: 2\r\n\r\nx\r\n\r\n"
                ),
                Variant::Mboxrd,
                vec!["S: 1\r\n\r\nbody\r\n", "S: 2\r\n\r\nx\r\n"],
            ),
            (
                format!("From a {D}\r\n\r\nFrom b {D}\r\n\r\n"),
                Variant::Mboxrd,
                vec!["", ""],
            ),
        ];
        for (data, v, want) in &table {
            assert_eq!(&contents(data, *v), want, "{data:?}");
        }
    }

    #[test]
    fn numbers_senders_and_ranges_tile() {
        let data = format!(
            "From a {D}\nX: 1\n\nb\n\nFrom - {D} +0100\nX: 2\n\nc\n\nFrom MAILER-DAEMON {D}\n\n"
        );
        let msgs: Vec<_> = Reader::new(data.as_bytes(), Variant::Mboxrd)
            .unwrap()
            .collect();
        let got: Vec<_> = msgs
            .iter()
            .map(|m| (m.number(), m.from_line().sender_lossy().into_owned()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "a".into()),
                (2, "-".into()),
                (3, "MAILER-DAEMON".into())
            ]
        );
        let mut at = 0;
        for m in &msgs {
            assert_eq!(m.range().start, at);
            assert!(
                m.content_range().start >= m.range().start
                    && m.content_range().end <= m.range().end
            );
            at = m.range().end;
        }
        assert_eq!(at, data.len());
        assert_eq!(msgs[1].from_line().date().offset, Some(3600));
    }

    #[test]
    fn not_an_mbox() {
        let table: &[(&[u8], &str)] = &[
            (
                b"Return-Path: <a@b>\n\nhi\n",
                "does not begin with a From_ line",
            ),
            (
                b"\nFrom a Tue Jan  2 03:04:05 2024\n",
                "does not begin with a From_ line",
            ),
            (
                b"From here on\n",
                "the first line begins with \"From \" but has no valid date",
            ),
            (b"\x00\x01\x02", "does not begin with a From_ line"),
        ];
        for (data, why) in table {
            let e = Reader::new(data, Variant::Mboxrd).err().unwrap();
            assert_eq!(e, NotMbox { offset: 0, why }, "{data:?}");
        }
        let err = NotMbox {
            offset: 0,
            why: "x",
        }
        .at(Path::new("/var/mail/bob"));
        assert_eq!(err.to_string(), "/var/mail/bob: byte 0: x");
    }

    #[test]
    fn binary_and_invalid_utf8_bytes() {
        let mut data = format!("From a {D}\nX: ").into_bytes();
        data.extend_from_slice(b"\xff\n\n\x00\xff\xfe\n\nFrom nodate\n\x80\n");
        let msgs: Vec<_> = Reader::new(&data, Variant::Mboxrd).unwrap().collect();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].raw().ends_with(b"From nodate\n\x80\n"));
    }

    #[test]
    fn long_line_and_big_headers() {
        let long_line = "x".repeat(200 * 1024);
        let headers: String = (0..4000)
            .map(|i| format!("X-H{i}: {}\n", "v".repeat(40)))
            .collect();
        assert!(headers.len() > 150 * 1024);
        let data = format!("From a {D}\n{headers}\n{long_line}\n\nFrom b {D}\nS: 2\n\nok\n");
        let got = contents(&data, Variant::Mboxrd);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], format!("{headers}\n{long_line}\n"));
        // And with Content-Length variants (headers scanned).
        assert_eq!(contents(&data, Variant::Mboxcl2).len(), 2);
    }

    #[test]
    fn content_length_right_wrong_missing() {
        // body "From x Tue...\n" (14+ bytes) is a From_ line inside the span
        let inner = format!("From x {D}\n");
        let body = format!("hi\n\n{inner}");
        let m1 = format!("From a {D}\nContent-Length: {}\n\n{body}\n", body.len());
        let m2 = format!("From b {D}\nContent-Length: 3\n\nok\n\n");
        let right = m1.clone() + &m2;
        let got = contents(&right, Variant::Mboxcl2);
        assert_eq!(
            got,
            vec![
                format!("Content-Length: {}\n\n{body}", body.len()),
                "Content-Length: 3\n\nok\n".into()
            ]
        );
        let r = Reader::new(right.as_bytes(), Variant::Mboxcl2).unwrap();
        assert!(r.warnings().is_empty());
        // The same file read as mboxrd splits at the inner From_ line.
        assert_eq!(contents(&right, Variant::Mboxrd).len(), 3);

        // Wrong length: ignored with a warning, separators decide.
        let wrong = format!("From a {D}\nContent-Length: 5\n\nhello world\n\n") + &m2;
        let mut r = Reader::new(wrong.as_bytes(), Variant::Mboxcl2).unwrap();
        let got: Vec<_> = r
            .by_ref()
            .map(|m| String::from_utf8_lossy(&m.bytes()).into_owned())
            .collect();
        assert_eq!(
            got,
            vec![
                "Content-Length: 5\n\nhello world\n",
                "Content-Length: 3\n\nok\n"
            ]
        );
        assert_eq!(
            r.warnings(),
            &[Warning {
                offset: (format!("From a {D}\n").len()) as u64,
                kind: WarningKind::ContentLengthIgnored {
                    message: 1,
                    value: Some(5)
                }
            }]
        );

        // Too long (beyond the end), unparseable, duplicated: ignored.
        for h in [
            "Content-Length: 999",
            "Content-Length: x1",
            "Content-Length: 3\nContent-length: 3",
        ] {
            let data = format!("From a {D}\n{h}\n\nok\n");
            let mut r = Reader::new(data.as_bytes(), Variant::Mboxcl2).unwrap();
            assert_eq!(r.by_ref().count(), 1);
            assert_eq!(r.warnings().len(), 1, "{h}");
        }

        // Missing: separators decide, no warning.
        let missing = format!("From a {D}\nS: 1\n\nhi\n\n") + &m2;
        let mut r = Reader::new(missing.as_bytes(), Variant::Mboxcl2).unwrap();
        assert_eq!(r.by_ref().count(), 2);
        assert!(r.warnings().is_empty());

        // Landing at the end without the final blank line, and exactly on a
        // From_ line with no blank line at all.
        let eof = format!("From a {D}\nContent-Length: 3\n\nok\n");
        assert_eq!(
            contents(&eof, Variant::Mboxcl2),
            vec!["Content-Length: 3\n\nok\n"]
        );
        let tight = format!("From a {D}\nContent-Length: 3\n\nok\nFrom b {D}\n\n");
        assert_eq!(
            contents(&tight, Variant::Mboxcl2),
            vec!["Content-Length: 3\n\nok\n", ""]
        );
        // CRLF
        let crlf = format!("From a {D}\r\nContent-Length: 4\r\n\r\nok\r\n\r\nFrom b {D}\r\n\r\n");
        assert_eq!(
            contents(&crlf, Variant::Mboxcl2),
            vec!["Content-Length: 4\r\n\r\nok\r\n", ""]
        );
    }

    #[test]
    fn split_points_are_separators_and_chunks_read_the_same() {
        let mut data = String::new();
        for i in 0..200 {
            let body = "line of text\n".repeat(i % 7 + 1);
            let extra = if i % 5 == 0 { "\nFrom here on\n" } else { "" };
            data += &format!("From s{i} {D}\nX-N: {i}\n\n{body}{extra}\n");
        }
        let all: Vec<_> = Reader::new(data.as_bytes(), Variant::Mboxrd)
            .unwrap()
            .map(|m| m.range())
            .collect();
        for n in [1, 2, 3, 7, 64, 1000] {
            let pts = split_points(data.as_bytes(), Variant::Mboxrd, n);
            assert_eq!(pts[0], 0);
            assert!(pts.windows(2).all(|w| w[0] < w[1]));
            assert!(pts.len() <= n.max(1));
            let mut got = Vec::new();
            for (i, &s) in pts.iter().enumerate() {
                let e = pts.get(i + 1).copied().unwrap_or(data.len());
                got.extend(
                    Reader::chunk(data.as_bytes(), s..e, Variant::Mboxrd)
                        .unwrap()
                        .map(|m| m.range()),
                );
            }
            assert_eq!(got, all, "n={n}");
        }
        assert!(split_points(b"", Variant::Mboxrd, 4).is_empty());
    }

    #[test]
    fn split_points_respect_content_length() {
        let inner = format!("From x {D}\n");
        let mut data = String::new();
        for i in 0..50 {
            let body = format!("{}\n\n{inner}", "y".repeat(i * 10));
            data += &format!("From s{i} {D}\nContent-Length: {}\n\n{body}\n", body.len());
        }
        let pts = split_points(data.as_bytes(), Variant::Mboxcl2, 8);
        assert!(pts.len() > 2);
        let starts: Vec<_> = Reader::new(data.as_bytes(), Variant::Mboxcl2)
            .unwrap()
            .map(|m| m.range().start)
            .collect();
        assert_eq!(starts.len(), 50);
        for p in pts {
            assert!(starts.contains(&p), "{p} is not a message start");
        }
    }

    mod fuzz {
        use super::*;
        use crate::mbox::detect::detect_in;
        use crate::mbox::window::{Span, SpanError, Spans};
        use proptest::prelude::*;

        /// mbox-ish bytes: pieces that matter to the splitter, plus noise.
        fn mboxish() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(format!("From a {D}\n").into_bytes()),
                Just(format!("From b {D}\r\n").into_bytes()),
                Just(b"From nodate\n".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b">From ".to_vec()),
                Just(b">>From x\n".to_vec()),
                Just(b"Content-Length: 3\n".to_vec()),
                Just(b"Content-Length: 40\n".to_vec()),
                Just(b"S: 1\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..12),
            ];
            (any::<bool>(), proptest::collection::vec(piece, 0..40)).prop_map(|(lead, v)| {
                let mut out = if lead {
                    format!("From z {D}\n").into_bytes()
                } else {
                    Vec::new()
                };
                out.extend(v.concat());
                out
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// Whatever the bytes: no panic, message ranges tile the data,
            /// contents lie inside their ranges, and chunked reading and
            /// reading window by window agree.
            #[test]
            fn reader_never_panics_and_ranges_tile(data in mboxish(), size in 1usize..80) {
                for v in [Variant::Mboxo, Variant::Mboxrd, Variant::Mboxcl, Variant::Mboxcl2] {
                    let Ok(reader) = Reader::new(&data, v) else {
                        prop_assert!(!data.is_empty());
                        continue;
                    };
                    let mut at = 0;
                    let mut ranges = Vec::new();
                    for m in reader {
                        prop_assert_eq!(m.range().start, at);
                        let c = m.content_range();
                        prop_assert!(c.start <= c.end && c.start >= at && c.end <= m.range().end);
                        let _ = m.bytes();
                        at = m.range().end;
                        ranges.push(m.range());
                    }
                    prop_assert_eq!(at, data.len());
                    let pts = split_points(&data, v, 3);
                    let mut chunked = Vec::new();
                    for (i, &s) in pts.iter().enumerate() {
                        let e = pts.get(i + 1).copied().unwrap_or(data.len());
                        chunked.extend(Reader::chunk(&data, s..e, v).unwrap().map(|m| m.range()));
                    }
                    prop_assert_eq!(&chunked, &ranges);
                    let mut windowed = Vec::new();
                    for span in Spans::new(&&data[..], v, size) {
                        let Ok(Span { start, window }) = span else {
                            panic!("windows of {size} fail where the whole reads")
                        };
                        let r = Reader::new(window, v).unwrap();
                        windowed.extend(r.map(|m| start + m.range().start..start + m.range().end));
                    }
                    prop_assert_eq!(&windowed, &ranges);
                }
                let whole = crate::mbox::detect(&data);
                let windowed = detect_in(&&data[..], size).map_err(|e| match e {
                    SpanError::NotMbox(n) => n,
                    SpanError::Read(never) => match never {},
                });
                prop_assert_eq!(windowed, whole);
            }
        }
    }

    #[test]
    fn chunk_must_start_at_a_from_line() {
        let data = format!("From a {D}\n\nhi\n");
        assert!(Reader::chunk(data.as_bytes(), 1..data.len(), Variant::Mboxrd).is_err());
        assert!(Reader::chunk(data.as_bytes(), 0..data.len() + 1, Variant::Mboxrd).is_err());
        assert_eq!(
            Reader::chunk(data.as_bytes(), 0..data.len(), Variant::Mboxrd)
                .unwrap()
                .count(),
            1
        );
    }
}
