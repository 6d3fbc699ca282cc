//! Calendar arithmetic and local time, for the dates mail carries: `From_`
//! lines, Maildir mtimes, Exim log stamps and RFC 5322 `Date:` fields.
//!
//! Civil dates are proleptic Gregorian, counted in days since 1970-01-01
//! with the era-based algorithms (the year shifted to begin in March, so the
//! leap day comes last): exact for every date, no tables, no loops.

/// Days since 1970-01-01 of the date `y`-`m`-`d` (month 1-12).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month (1-12) and day of the month of a day count since 1970-01-01;
/// the inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The local zone's offset from UTC at `secs` (seconds since the epoch), in
/// seconds east, from the C library's zone rules (`TZ`, /etc/localtime).
pub fn local_offset(secs: i64) -> i32 {
    crate::sys::local_offset(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let table: &[(i64, u32, u32, i64)] = &[
            (1970, 1, 1, 0),
            (1969, 12, 31, -1),
            (2000, 2, 29, 11_016),
            (2000, 3, 1, 11_017),
            (1900, 3, 1, -25_508),
            (2024, 1, 2, 19_724),
            (1600, 1, 1, -135_140),
        ];
        for &(y, m, d, days) in table {
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
        }
    }

    #[test]
    fn round_trip_over_centuries() {
        for days in (-200_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
