//! Time stamps and zones for the report.
//!
//! A log line's stamp is civil time. With Exim's `log_timezone` it carries
//! its offset (`+0100`) and names one instant by itself; without it, it is
//! the writer's local time, which the reader has to be told: `--tz`
//! (default the local zone of the machine that reads). Every line becomes
//! an instant (Unix seconds) so that queue times and `--from`/`--to`
//! compare instants, and is shown back in the report's zone (the same
//! `--tz`), which the report names.

use crate::clock;

/// The zone that lines without an offset are read in and the report is
/// shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The machine's zone rules (`TZ`, /etc/localtime), offsets changing
    /// with daylight saving time.
    Local,
    /// A fixed offset, seconds east of UTC (`UTC` is 0).
    Fixed(i32),
}

impl Zone {
    /// `local`, `UTC` (or `Z`, `GMT`), `+hhmm`, `-hhmm`, `+hh:mm`.
    pub fn parse(text: &str) -> Result<Zone, String> {
        match text {
            "local" | "LOCAL" | "Local" => return Ok(Zone::Local),
            "UTC" | "utc" | "Z" | "GMT" => return Ok(Zone::Fixed(0)),
            _ => {}
        }
        offset(text)
            .map(Zone::Fixed)
            .ok_or_else(|| format!("{text:?} is no time zone (say local, UTC, +hhmm or -hhmm)"))
    }

    /// The offset, seconds east, in force at instant `utc`.
    pub fn offset_at(self, utc: i64) -> i32 {
        match self {
            Zone::Local => clock::local_offset(utc),
            Zone::Fixed(o) => o,
        }
    }

    /// What the report calls this zone: `UTC`, `+0100`, `local (+0100)`
    /// (the local offset at `at`).
    pub fn name(self, at: i64) -> String {
        match self {
            Zone::Fixed(0) => "UTC".to_string(),
            Zone::Fixed(o) => offset_text(o),
            Zone::Local => format!("local ({})", offset_text(self.offset_at(at))),
        }
    }
}

/// `+hhmm` for an offset in seconds east.
pub fn offset_text(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60)
}

/// `+hhmm`, `-hhmm` or `+hh:mm` in seconds east; `None` when it is not one
/// or is beyond ±24 hours.
pub fn offset(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    // `hhmm` or `hh:mm`.
    let digits: Vec<u8> = match &b[1..] {
        [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => vec![*h1, *h2, *m1, *m2],
        _ => return None,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize| i32::from(digits[i] - b'0');
    let (h, m) = (n(0) * 10 + n(1), n(2) * 10 + n(3));
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// The civil seconds of `YYYY-MM-DD HH:MM:SS` counted as if it were UTC
/// (days since 1970 × 86400 + time of day); `None` when it is not one.
pub fn civil_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = mailstore::time::days_from_civil(y, mo as u32, d as u32);
    Some(days * 86400 + h * 3600 + mi * 60 + s)
}

/// `YYYY-MM-DD HH:MM:SS` of civil seconds.
pub fn civil_text(secs: i64) -> String {
    let c = clock::civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn day_text(day: i64) -> String {
    let (y, m, d) = mailstore::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Turns stamps into instants and back for one reader. The local zone's
/// rules are asked once per quarter hour of log time, not once per line:
/// offsets change only at quarter-hour boundaries, and logs run forward.
#[derive(Debug, Clone)]
pub struct Clock {
    zone: Zone,
    /// (quarter hour of civil time, offset) of the last local lookup.
    civil_cache: Option<(i64, i32)>,
    /// (quarter hour of UTC, offset) of the last lookup for display.
    utc_cache: Option<(i64, i32)>,
}

const QUARTER: i64 = 900;

impl Clock {
    pub fn new(zone: Zone) -> Clock {
        Clock {
            zone,
            civil_cache: None,
            utc_cache: None,
        }
    }

    /// The instant of civil seconds `civil` written with offset `written`
    /// (seconds east), or in the reader's zone when the line has none.
    pub fn instant(&mut self, civil: i64, written: Option<i32>) -> i64 {
        if let Some(o) = written {
            return civil - i64::from(o);
        }
        match self.zone {
            Zone::Fixed(o) => civil - i64::from(o),
            Zone::Local => {
                let key = civil.div_euclid(QUARTER);
                let off = match self.civil_cache {
                    Some((k, o)) if k == key => o,
                    _ => {
                        // The offset at the civil time taken as UTC is off
                        // by at most one change; asking again at the
                        // corrected instant settles it (a time in the hour
                        // repeated at the end of DST reads as the first).
                        let guess = clock::local_offset(civil);
                        let o = clock::local_offset(civil - i64::from(guess));
                        self.civil_cache = Some((key, o));
                        o
                    }
                };
                civil - i64::from(off)
            }
        }
    }

    /// The civil seconds of instant `utc` in the report's zone.
    pub fn civil(&mut self, utc: i64) -> i64 {
        match self.zone {
            Zone::Fixed(o) => utc + i64::from(o),
            Zone::Local => {
                let key = utc.div_euclid(QUARTER);
                let off = match self.utc_cache {
                    Some((k, o)) if k == key => o,
                    _ => {
                        let o = clock::local_offset(utc);
                        self.utc_cache = Some((key, o));
                        o
                    }
                };
                utc + i64::from(off)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse() {
        let cases: &[(&str, Option<Zone>)] = &[
            ("UTC", Some(Zone::Fixed(0))),
            ("local", Some(Zone::Local)),
            ("+0100", Some(Zone::Fixed(3600))),
            ("-0530", Some(Zone::Fixed(-19800))),
            ("+05:45", Some(Zone::Fixed(20700))),
            ("+2400", None),
            ("0100", None),
            ("+01", None),
            ("+0:130", None),
            ("Europe/Paris", None),
        ];
        for (text, want) in cases {
            assert_eq!(Zone::parse(text).ok(), *want, "{text}");
        }
        assert_eq!(Zone::Fixed(-19800).name(0), "-0530");
        assert_eq!(Zone::Fixed(0).name(0), "UTC");
    }

    #[test]
    fn civil_seconds_and_back() {
        let s = civil_seconds("2026-12-03 08:27:55").unwrap();
        assert_eq!(civil_text(s), "2026-12-03 08:27:55");
        assert_eq!(
            s.div_euclid(86400),
            mailstore::time::days_from_civil(2026, 12, 3)
        );
        assert_eq!(day_text(s.div_euclid(86400)), "2026-12-03");
        for bad in [
            "2026-13-03 08:27:55",
            "2026-12-03 24:00:00",
            "2026-12-03T08:27:55",
            "2026",
        ] {
            assert_eq!(civil_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_written_offset_wins_over_the_readers_zone() {
        let mut c = Clock::new(Zone::Fixed(3600));
        let civil = civil_seconds("2026-12-03 08:00:00").unwrap();
        assert_eq!(c.instant(civil, None), civil - 3600);
        assert_eq!(c.instant(civil, Some(-7200)), civil + 7200);
        // Shown back in the report's zone.
        assert_eq!(c.civil(civil + 7200), civil + 7200 + 3600);
    }
}
