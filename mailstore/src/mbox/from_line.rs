//! The `From_` line that starts each message of an mbox:
//!
//! ```text
//! From alice@example.com Tue Jan  2 03:04:05 2024
//! ```
//!
//! The date is `asctime(3)` output and, traditionally, local time with no
//! zone. Accepted variants seen in real mailboxes:
//!
//! - a zone token before or after the year: `+0100`, `PST`, `MET DST`
//!   (`Tue Jan  2 03:04:05 PST 2024`, `Tue Jan  2 03:04:05 2024 +0100`);
//! - no seconds: `Tue Jan  2 03:04 2024`;
//! - a UUCP suffix: `... 2024 remote from host`;
//! - any sender, including `-`, `MAILER-DAEMON`, an empty one (`From  Tue
//!   ...`) and quoted local parts containing spaces: the date is found by
//!   shape, and the sender is what precedes it.
//!
//! Anything else is not a `From_` line; an mbox reader then treats it as
//! body text.

use std::borrow::Cow;

use crate::sys;

/// How to read the zone-less date of a `From_` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// Local time of this process (`TZ`, `/etc/localtime`), as the writers
    /// of traditional mboxes used.
    #[default]
    Local,
    /// A fixed offset east of UTC, in seconds (0 for mboxes written in UTC,
    /// as Python's `mailbox` module does).
    Fixed(i32),
}

/// The date of a `From_` line, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromDate {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31, valid for the month
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    /// 0 when the line had no seconds.
    pub second: u8,
    /// Offset east of UTC in seconds, when the line names a zone we know
    /// (`+0100`, `GMT`, `PST`, ...).
    pub offset: Option<i32>,
}

impl FromDate {
    /// Seconds since the Unix epoch. The line's own zone wins; without one,
    /// `zone` decides. `None` only if the local time cannot be represented.
    pub fn timestamp(&self, zone: Zone) -> Option<i64> {
        let offset = match (self.offset, zone) {
            (Some(o), _) | (None, Zone::Fixed(o)) => o,
            (None, Zone::Local) => {
                return sys::mktime(&sys::Tm {
                    year: self.year,
                    month: self.month,
                    day: self.day,
                    hour: self.hour,
                    minute: self.minute,
                    second: self.second,
                    weekday: 0,
                });
            }
        };
        let days = crate::time::days_from_civil(
            i64::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        );
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(secs - i64::from(offset))
    }
}

/// A parsed `From_` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromLine<'a> {
    line: &'a [u8],
    sender: &'a [u8],
    date: FromDate,
}

impl<'a> FromLine<'a> {
    /// Parses one line (with or without its `\n` / `\r\n`). `None` if it is
    /// not a `From_` line with a date.
    pub fn parse(line: &'a [u8]) -> Option<FromLine<'a>> {
        let line = strip_eol(line);
        let rest = line.strip_prefix(b"From ")?;
        let mut toks = [(0usize, 0usize); MAX_TOKENS];
        let n = tokenize(rest, &mut toks)?;
        let mut words: [&[u8]; MAX_TOKENS] = [&[]; MAX_TOKENS];
        for (w, &(a, b)) in words.iter_mut().zip(&toks[..n]) {
            *w = &rest[a..b];
        }
        let words = &words[..n];
        // The date starts at a weekday followed by a month; try each such
        // place (a sender could itself look like a weekday).
        for k in 0..n.saturating_sub(1) {
            if weekday(words[k]).is_none() || month(words[k + 1]).is_none() {
                continue;
            }
            if let Some(date) = parse_date(&words[k..]) {
                let sender = trim_ascii_start(trim_ascii_end(&rest[..toks[k].0]));
                return Some(FromLine { line, sender, date });
            }
        }
        None
    }

    /// The envelope sender as written (`-` or `MAILER-DAEMON` for bounces;
    /// may be empty).
    pub fn sender(&self) -> &'a [u8] {
        self.sender
    }

    /// The sender as text (invalid UTF-8 replaced).
    pub fn sender_lossy(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.sender)
    }

    /// The date.
    pub fn date(&self) -> FromDate {
        self.date
    }

    /// The whole line, without its line ending.
    pub fn line(&self) -> &'a [u8] {
        self.line
    }
}

/// Formats the `From_` line an appender writes (with its `\n`):
/// `From <sender> <asctime date>`, the date in local time at `unix_time`.
///
/// An empty sender (the null reverse-path of a bounce) is written as
/// `MAILER-DAEMON`. Whitespace and control characters in the sender are
/// replaced by `_`, so that the line stays one line and parses back.
pub fn format(sender: &str, unix_time: i64) -> Vec<u8> {
    let tm = sys::localtime(unix_time).unwrap_or(sys::Tm {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        weekday: 4,
    });
    format_tm(sender, &tm)
}

pub(crate) fn format_tm(sender: &str, tm: &sys::Tm) -> Vec<u8> {
    let sender: String = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    format!(
        "From {sender} {} {} {:2} {:02}:{:02}:{:02} {}\n",
        WEEKDAYS[usize::from(tm.weekday % 7)],
        MONTHS[usize::from(tm.month.clamp(1, 12) - 1)],
        tm.day,
        tm.hour,
        tm.minute,
        tm.second,
        tm.year
    )
    .into_bytes()
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// More words than any `From_` line has (sender words + at most 10 date
/// words); longer lines are body text.
const MAX_TOKENS: usize = 48;

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &s[..n]
}

fn trim_ascii_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    &s[n..]
}

/// Splits on spaces and tabs; `None` if there are too many words.
fn tokenize(s: &[u8], out: &mut [(usize, usize); MAX_TOKENS]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        while i < s.len() && matches!(s[i], b' ' | b'\t') {
            i += 1;
        }
        if i == s.len() {
            break;
        }
        let start = i;
        while i < s.len() && !matches!(s[i], b' ' | b'\t') {
            i += 1;
        }
        if n == MAX_TOKENS {
            return None;
        }
        out[n] = (start, i);
        n += 1;
    }
    Some(n)
}

fn weekday(w: &[u8]) -> Option<usize> {
    WEEKDAYS
        .iter()
        .position(|d| w.eq_ignore_ascii_case(d.as_bytes()))
}

fn month(w: &[u8]) -> Option<u8> {
    MONTHS
        .iter()
        .position(|m| w.eq_ignore_ascii_case(m.as_bytes()))
        .map(|i| i as u8 + 1)
}

fn number(w: &[u8], min_len: usize, max_len: usize) -> Option<u32> {
    if w.len() < min_len || w.len() > max_len || !w.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(w.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// `weekday month day time [zone..] year [zone..] [remote from host]`.
fn parse_date(w: &[&[u8]]) -> Option<FromDate> {
    if w.len() < 5 {
        return None;
    }
    let month = month(w[1])?;
    let day = number(w[2], 1, 2)? as u8;
    let (hour, minute, second) = parse_time(w[3])?;
    let mut i = 4;
    let mut zone = ZoneWords::default();
    while i < w.len() && zone.take(w[i]) {
        i += 1;
    }
    let year = number(w.get(i)?, 4, 4)? as i32;
    i += 1;
    while i < w.len() && zone.take(w[i]) {
        i += 1;
    }
    match &w[i..] {
        [] => {}
        [r, f, _host] if r.eq_ignore_ascii_case(b"remote") && f.eq_ignore_ascii_case(b"from") => {}
        _ => return None,
    }
    if zone.count > MAX_ZONE_WORDS || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    Some(FromDate {
        year,
        month,
        day,
        hour,
        minute,
        second,
        offset: zone.offset(),
    })
}

fn parse_time(w: &[u8]) -> Option<(u8, u8, u8)> {
    let mut parts = w.split(|&b| b == b':');
    let h = number(parts.next()?, 1, 2)?;
    let m = number(parts.next()?, 2, 2)?;
    let s = match parts.next() {
        Some(p) => number(p, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h as u8, m as u8, s as u8))
}

/// At most this many zone words in all (`MET DST`, or one before and one
/// after the year).
const MAX_ZONE_WORDS: usize = 2;

#[derive(Default)]
struct ZoneWords {
    count: usize,
    numeric: Option<i32>,
    named: Option<i32>,
    dst: bool,
}

impl ZoneWords {
    /// Takes `w` if it looks like a zone (`+hhmm`, or 1-5 letters other
    /// than `remote`).
    fn take(&mut self, w: &[u8]) -> bool {
        if let Some(off) = numeric_offset(w) {
            self.numeric.get_or_insert(off);
        } else if (1..=5).contains(&w.len())
            && w.iter().all(u8::is_ascii_alphabetic)
            && !w.eq_ignore_ascii_case(b"remote")
        {
            if w.eq_ignore_ascii_case(b"DST") {
                self.dst = true;
            } else if let Some(off) = named_offset(w) {
                self.named.get_or_insert(off);
            }
        } else {
            return false;
        }
        self.count += 1;
        true
    }

    fn offset(&self) -> Option<i32> {
        self.numeric
            .or_else(|| self.named.map(|o| if self.dst { o + 3600 } else { o }))
    }
}

fn numeric_offset(w: &[u8]) -> Option<i32> {
    let (sign, digits) = match w.split_first()? {
        (b'+', d) => (1, d),
        (b'-', d) => (-1, d),
        _ => return None,
    };
    let v = number(digits, 4, 4)? as i32;
    let (h, m) = (v / 100, v % 100);
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

/// Zone names whose meaning is not in doubt (RFC 822's, and the common
/// European ones). Others (IST, CST in China, ...) are ambiguous and are
/// ignored: the configured [`Zone`] applies.
fn named_offset(w: &[u8]) -> Option<i32> {
    const H: i32 = 3600;
    const TABLE: &[(&str, i32)] = &[
        ("UT", 0),
        ("UTC", 0),
        ("GMT", 0),
        ("Z", 0),
        ("WET", 0),
        ("EST", -5 * H),
        ("EDT", -4 * H),
        ("CST", -6 * H),
        ("CDT", -5 * H),
        ("MST", -7 * H),
        ("MDT", -6 * H),
        ("PST", -8 * H),
        ("PDT", -7 * H),
        ("BST", H),
        ("WEST", H),
        ("CET", H),
        ("MET", H),
        ("CEST", 2 * H),
        ("MEST", 2 * H),
        ("EET", 2 * H),
        ("EEST", 3 * H),
        ("JST", 9 * H),
    ];
    TABLE
        .iter()
        .find(|(name, _)| w.eq_ignore_ascii_case(name.as_bytes()))
        .map(|&(_, o)| o)
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8, off: Option<i32>) -> FromDate {
        FromDate {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            offset: off,
        }
    }

    #[test]
    fn parse_table() {
        let d = date(2024, 1, 2, 3, 4, 5, None);
        let table: &[(&str, Option<(&str, FromDate)>)] = &[
            (
                "From alice@example.com Tue Jan  2 03:04:05 2024",
                Some(("alice@example.com", d)),
            ),
            (
                "From alice@example.com Tue Jan  2 03:04:05 2024\n",
                Some(("alice@example.com", d)),
            ),
            (
                "From alice@example.com Tue Jan  2 03:04:05 2024\r\n",
                Some(("alice@example.com", d)),
            ),
            ("From a Tue Jan 2 03:04:05 2024", Some(("a", d))),
            ("From - Tue Jan  2 03:04:05 2024", Some(("-", d))),
            (
                "From MAILER-DAEMON Tue Jan  2 03:04:05 2024",
                Some(("MAILER-DAEMON", d)),
            ),
            ("From  Tue Jan  2 03:04:05 2024", Some(("", d))),
            ("From a\tTue\tJan\t2\t03:04:05\t2024", Some(("a", d))),
            ("From a tue JAN  2 03:04:05 2024", Some(("a", d))),
            (
                "From \"john doe\"@x.org Tue Jan  2 03:04:05 2024",
                Some(("\"john doe\"@x.org", d)),
            ),
            ("From Mon Tue Jan  2 03:04:05 2024", Some(("Mon", d))),
            (
                "From a Tue Jan  2 03:04:05 2024 +0100",
                Some(("a", date(2024, 1, 2, 3, 4, 5, Some(3600)))),
            ),
            (
                "From a Tue Jan  2 03:04:05 -0530 2024",
                Some(("a", date(2024, 1, 2, 3, 4, 5, Some(-19800)))),
            ),
            (
                "From a Tue Jan  2 03:04:05 PST 2024",
                Some(("a", date(2024, 1, 2, 3, 4, 5, Some(-8 * 3600)))),
            ),
            (
                "From a Tue Jan  2 03:04:05 MET DST 2024",
                Some(("a", date(2024, 1, 2, 3, 4, 5, Some(2 * 3600)))),
            ),
            ("From a Tue Jan  2 03:04:05 XYZ 2024", Some(("a", d))),
            (
                "From a Tue Jan  2 03:04 2024",
                Some(("a", date(2024, 1, 2, 3, 4, 0, None))),
            ),
            (
                "From a Tue Jan  2 03:04:05 2024 remote from uunet",
                Some(("a", d)),
            ),
            (
                "From a Thu Feb 29 00:00:00 2024",
                Some(("a", date(2024, 2, 29, 0, 0, 0, None))),
            ),
            // Not From_ lines.
            (
                "From here on, all deliveries go through the new spool.",
                None,
            ),
            ("From ", None),
            ("From", None),
            ("From: alice@example.com", None),
            (">From a Tue Jan  2 03:04:05 2024", None),
            ("from a Tue Jan  2 03:04:05 2024", None),
            ("From a Tue Jan  2 03:04:05", None),
            ("From a Tue Jan 32 03:04:05 2024", None),
            ("From a Thu Feb 29 00:00:00 2023", None),
            ("From a Tue Jan  2 24:00:00 2024", None),
            ("From a Tue Jan  2 03:4:05 2024", None),
            ("From a Tue Jan  2 03:04:05 24", None),
            ("From a Tue Jan  2 03:04:05 2024 trailing words", None),
            ("From a Tue Jan  2 03:04:05 2024 +0100 PST GMT", None),
            ("From a Tue Foo  2 03:04:05 2024", None),
            ("From a Tue, 2 Jan 2024 03:04:05 +0100", None),
        ];
        for (line, want) in table {
            let got =
                FromLine::parse(line.as_bytes()).map(|f| (f.sender_lossy().into_owned(), f.date()));
            let want = want.map(|(s, d)| (s.to_string(), d));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn timestamps() {
        let d = date(2024, 1, 2, 3, 4, 5, None);
        assert_eq!(d.timestamp(Zone::Fixed(0)), Some(1_704_164_645));
        assert_eq!(d.timestamp(Zone::Fixed(3600)), Some(1_704_164_645 - 3600));
        let with_zone = date(2024, 1, 2, 3, 4, 5, Some(-8 * 3600));
        // The line's own zone wins over the configured one.
        assert_eq!(
            with_zone.timestamp(Zone::Fixed(0)),
            Some(1_704_164_645 + 8 * 3600)
        );
        assert_eq!(
            date(1970, 1, 1, 0, 0, 0, None).timestamp(Zone::Fixed(0)),
            Some(0)
        );
        assert_eq!(
            date(1969, 12, 31, 23, 59, 59, None).timestamp(Zone::Fixed(0)),
            Some(-1)
        );
        assert_eq!(
            date(2000, 3, 1, 0, 0, 0, None).timestamp(Zone::Fixed(0)),
            Some(951_868_800)
        );
        // Local time agrees with localtime().
        let local = sys::localtime(1_704_164_645).unwrap();
        let ld = date(
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
            None,
        );
        assert_eq!(ld.timestamp(Zone::Local), Some(1_704_164_645));
    }

    #[test]
    fn format_parses_back() {
        let tm = sys::Tm {
            year: 2024,
            month: 1,
            day: 2,
            hour: 3,
            minute: 4,
            second: 5,
            weekday: 2,
        };
        let table: &[(&str, &str)] = &[
            (
                "alice@example.com",
                "From alice@example.com Tue Jan  2 03:04:05 2024\n",
            ),
            ("", "From MAILER-DAEMON Tue Jan  2 03:04:05 2024\n"),
            ("a b\r\n@x", "From a_b__@x Tue Jan  2 03:04:05 2024\n"),
        ];
        for (sender, want) in table {
            let line = format_tm(sender, &tm);
            assert_eq!(String::from_utf8_lossy(&line), *want);
            let parsed = FromLine::parse(&line).unwrap();
            assert_eq!(parsed.date(), date(2024, 1, 2, 3, 4, 5, None));
        }
        let now = 1_704_164_645;
        let line = format("x@y", now);
        let parsed = FromLine::parse(&line).unwrap();
        assert_eq!(parsed.date().timestamp(Zone::Local), Some(now));
    }
}
