//! Today's `sluice stats` report for the status page, kept up to date
//! incrementally: the main log is read once from its start, then only
//! what was written since the last report; a report is made at most once
//! a minute. At midnight (in the report's zone) the count starts again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::follow::Follower;
use crate::stats::report::Report;
use crate::stats::zone::{Clock, Zone};
use crate::stats::{Options, Tally};

/// How long a report is shown before it is made again.
pub const REFRESH: Duration = Duration::from_secs(60);

pub struct Today {
    mainlog: PathBuf,
    zone: Zone,
    /// The civil day (days since 1970-01-01 in `zone`) being counted.
    day: i64,
    tally: Tally,
    log: Follower,
    made: Option<(Instant, Report)>,
}

impl Today {
    pub fn new(mainlog: &Path, zone: Zone) -> Today {
        let (day, tally) = start_of_day(zone, crate::clock::now());
        Today {
            mainlog: mainlog.to_path_buf(),
            zone,
            day,
            tally,
            log: Follower::from_start(mainlog),
            made: None,
        }
    }

    /// The report of today up to now (at most [`REFRESH`] old).
    pub fn report(&mut self) -> Report {
        if let Some((at, r)) = &self.made
            && at.elapsed() < REFRESH
        {
            return r.clone();
        }
        let (day, fresh) = start_of_day(self.zone, crate::clock::now());
        if day != self.day {
            // A new day: count from midnight; the log is read again from
            // its start (after logrotate it holds today only).
            self.day = day;
            self.tally = fresh;
            self.log = Follower::from_start(&self.mainlog);
        }
        let tally = &mut self.tally;
        // An unreadable log gives the report of what was read.
        let _ = self.log.read_new(|line| tally.line(line));
        // Finishing settles the messages still open, which the count must
        // keep open for the lines still to come: finish a copy.
        let r = self.tally.clone().finish();
        self.made = Some((Instant::now(), r.clone()));
        r
    }
}

/// Today's civil day in `zone` at instant `now`, and a tally counting from
/// its midnight.
fn start_of_day(zone: Zone, now: i64) -> (i64, Tally) {
    let mut clock = Clock::new(zone);
    let civil = clock.civil(now);
    let day = civil.div_euclid(86_400);
    let midnight = clock.instant(day * 86_400, None);
    let tally = Tally::new(Options {
        zone,
        from: Some(midnight),
        to: None,
    });
    (day, tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_today_only_and_what_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mainlog");
        let zone = Zone::Fixed(0);
        let now = crate::clock::now();
        let stamp = crate::stats::zone::civil_text;
        let yesterday = stamp(now - 86_400);
        let today = stamp(now - (now.rem_euclid(86_400)).min(60));
        let id = |n: u32| format!("1tixMn-00000000C5j-{n:04}");
        let text = format!(
            "{yesterday} {a} <= a@x H=(h) [192.0.2.1] P=esmtp S=10\n{yesterday} {a} Completed\n\
             {today} {b} <= b@x H=(h) [192.0.2.1] P=esmtp S=20\n",
            a = id(1),
            b = id(2)
        );
        std::fs::write(&log, text).unwrap();
        let mut t = Today::new(&log, zone);
        let r = t.report();
        assert_eq!(r.received.messages, 1, "yesterday's arrival is not today's");
        assert_eq!(r.received.bytes, 20);
        // Within REFRESH the same report; after it, the new lines count.
        std::fs::write(
            &log,
            format!(
                "{}{today} {c} <= c@x H=(h) [192.0.2.1] P=esmtp S=30\n",
                std::fs::read_to_string(&log).unwrap(),
                c = id(3)
            ),
        )
        .unwrap();
        assert_eq!(t.report().received.messages, 1);
        t.made = None;
        assert_eq!(t.report().received.messages, 2);
        t.made = None;
        assert_eq!(t.report().received.messages, 2, "nothing counted twice");
    }
}
