//! Wall-clock formatting: Exim log stamps and RFC 5322 dates, in local
//! time (as Exim logs by default) with the zone offset from the C library.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The local zone's offset from UTC at `secs`, in seconds east.
pub fn local_offset(secs: i64) -> i32 {
    mailstore::time::local_offset(secs)
}

/// Civil date and time of `secs` (already shifted to the wanted zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Thursday (1970-01-01 was one); see `DAYS`.
    weekday_from_thursday: u32,
}

/// Splits `secs` into a civil date and time of day.
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400) as u32;
    let (year, month, day) = mailstore::time::civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
        weekday_from_thursday: days.rem_euclid(7) as u32,
    }
}

fn zone(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60)
}

/// Exim's log stamp: `2026-11-25 13:42:27` in local time.
pub fn log_stamp(secs: i64) -> String {
    let c = civil(secs + i64::from(local_offset(secs)));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// An RFC 5322 date in local time: `Wed, 25 Nov 2026 13:42:27 +0000`.
pub fn rfc5322(secs: i64) -> String {
    rfc5322_with_offset(secs, local_offset(secs))
}

/// [`rfc5322`] with a given offset (seconds east of UTC).
pub fn rfc5322_with_offset(secs: i64, offset: i32) -> String {
    let c = civil(secs + i64::from(offset));
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} {}",
        DAYS[c.weekday_from_thursday as usize],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second,
        zone(offset)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 +0000"),
            (-86_400, "Wed, 31 Dec 1969 00:00:00 +0000"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc5322_with_offset(secs, 0), want);
        }
        assert_eq!(
            rfc5322_with_offset(0, 3600),
            "Thu, 01 Jan 1970 01:00:00 +0100"
        );
        assert_eq!(
            rfc5322_with_offset(0, -19800),
            "Wed, 31 Dec 1969 18:30:00 -0530"
        );
        assert_eq!(log_stamp(0).len(), 19);
    }
}
