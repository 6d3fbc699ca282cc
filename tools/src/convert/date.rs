//! The `Date:` header of a message, for messages whose `From_` line has no
//! usable date: RFC 5322 dates and the obsolete forms old mail carries
//! (two-digit years, zone names, no seconds, no zone).
//!
//! Dovecot shows a Maildir file's mtime as the IMAP INTERNALDATE, so this
//! date is what users see as the arrival date after the migration.

use mailstore::mbox::Zone;

/// Parses a `--from-tz` value: `local`, `UTC`/`GMT`, or `±HHMM`/`±HH:MM`.
pub fn parse_zone(s: &str) -> Result<Zone, String> {
    match s.to_ascii_lowercase().as_str() {
        "local" => return Ok(Zone::Local),
        "utc" | "gmt" | "ut" | "z" => return Ok(Zone::Fixed(0)),
        _ => {}
    }
    numeric_offset(s.as_bytes())
        .map(Zone::Fixed)
        .ok_or_else(|| format!("{s:?} is not a zone (expected local, UTC or ±HHMM)"))
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

fn month(tok: &[u8]) -> Option<u32> {
    let t = tok.get(..3)?.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == t).map(|i| i as u32 + 1)
}

fn number(tok: &[u8]) -> Option<u32> {
    if tok.is_empty() || tok.len() > 9 || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(tok).ok()?.parse().ok()
}

/// `hh:mm` or `hh:mm:ss`.
fn clock(tok: &[u8]) -> Option<(u32, u32, u32)> {
    let mut parts = tok.split(|&b| b == b':');
    let h = number(parts.next()?)?;
    let m = number(parts.next()?)?;
    let s = match parts.next() {
        Some(p) => number(p)?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s.min(59)))
}

/// `+hhmm`, `-hhmm`, `+hh:mm`: seconds east of UTC.
fn numeric_offset(tok: &[u8]) -> Option<i32> {
    let (sign, rest) = match tok.first()? {
        b'+' => (1, &tok[1..]),
        b'-' => (-1, &tok[1..]),
        _ => return None,
    };
    let digits: Vec<u8> = rest.iter().copied().filter(|&b| b != b':').collect();
    if digits.len() != 4 {
        return None;
    }
    let v = number(&digits)? as i32;
    let (h, m) = (v / 100, v % 100);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// A zone: numeric or one of RFC 5322's names; anything else (military
/// letters, local abbreviations) counts as UTC, as RFC 5322 §4.3 says.
fn zone(tok: &[u8]) -> i32 {
    if let Some(o) = numeric_offset(tok) {
        return o;
    }
    let h = match tok.to_ascii_uppercase().as_slice() {
        b"EST" => -5,
        b"EDT" => -4,
        b"CST" => -6,
        b"CDT" => -5,
        b"MST" => -7,
        b"MDT" => -6,
        b"PST" => -8,
        b"PDT" => -7,
        _ => 0,
    };
    h * 3600
}

fn year(tok: &[u8]) -> Option<i64> {
    let y = i64::from(number(tok)?);
    match tok.len() {
        4 => Some(y),
        // RFC 5322 §4.3: two digits are 19xx from 50 on, 20xx below;
        // three digits add 1900.
        2 => Some(if y >= 50 { 1900 + y } else { 2000 + y }),
        3 => Some(1900 + y),
        _ => None,
    }
}

/// Parses an RFC 5322 date (`[Wed,] 1 Jan 2020 00:20[:00] [zone] [(comment)]`)
/// into Unix seconds.
pub fn parse_rfc5322(value: &[u8]) -> Option<i64> {
    let mut toks: Vec<&[u8]> = value
        .split(|b| b.is_ascii_whitespace() || *b == b',')
        .filter(|t| !t.is_empty())
        .collect();
    if toks
        .first()
        .is_some_and(|t| t[0].is_ascii_alphabetic() && month(t).is_none())
    {
        toks.remove(0); // day of the week
    }
    let d = number(toks.first()?)?;
    let mon = month(toks.get(1)?)?;
    let y = year(toks.get(2)?)?;
    let (h, mi, s) = clock(toks.get(3)?)?;
    if !(1..=31).contains(&d) {
        return None;
    }
    let off = toks.get(4).map_or(0, |t| zone(t));
    let secs =
        mailstore::time::days_from_civil(y, mon, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    Some(secs - i64::from(off))
}

/// The value of the first `Date:` field in the header block of `msg`
/// (unfolded lines are enough: dates are never folded in practice, and a
/// folded one still parses from its first line).
pub fn date_header(msg: &[u8]) -> Option<i64> {
    for line in msg.split(|&b| b == b'\n') {
        if line.is_empty() || line == b"\r" {
            return None; // end of the header block
        }
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"date:") {
            return parse_rfc5322(&line[5..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_dates() {
        let cases: &[(&str, Option<i64>)] = &[
            ("Wed, 01 Jan 2020 00:20:00 +0000", Some(1577838000)),
            ("1 Jan 2020 01:20:00 +0100 (CET)", Some(1577838000)),
            ("Wed, 1 Jan 20 00:20 GMT", Some(1577838000)),
            ("Tue, 31 Dec 2019 19:20:00 EST", Some(1577838000)),
            ("Wed, 01 Jan 2020 00:20:00", Some(1577838000)),
            ("Fri, 13 Feb 2009 23:31:30 +0000", Some(1234567890)),
            ("Thu, 1 Jan 70 00:00:00 +0000", Some(0)),
            ("Wed,01 Jan 2020 00:20:00 +0000", Some(1577838000)),
            ("Wed, 01 Foo 2020 00:20:00 +0000", None),
            ("Wed, 01 Jan 2020 25:20:00 +0000", None),
            ("garbage", None),
            ("", None),
        ];
        for &(v, want) in cases {
            assert_eq!(parse_rfc5322(v.as_bytes()), want, "{v}");
        }
    }

    #[test]
    fn date_header_is_found_in_the_header_only() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (
                b"Subject: x\nDATE: Thu, 1 Jan 70 00:00:10 +0000\n\nbody\n",
                Some(10),
            ),
            (
                b"Subject: x\r\nDate: Thu, 1 Jan 70 00:00:10 +0000\r\n\r\n",
                Some(10),
            ),
            (b"Subject: x\n\nDate: Thu, 1 Jan 70 00:00:10 +0000\n", None),
            (b"", None),
        ];
        for &(m, want) in cases {
            assert_eq!(date_header(m), want, "{:?}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn zones_parse() {
        let cases: &[(&str, Option<Zone>)] = &[
            ("local", Some(Zone::Local)),
            ("UTC", Some(Zone::Fixed(0))),
            ("+0200", Some(Zone::Fixed(7200))),
            ("-05:30", Some(Zone::Fixed(-19800))),
            ("Mars", None),
            ("+2500", None),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_zone(s).ok(), want, "{s}");
        }
    }
}
