//! `bounce_rate_limit`: at most so many reports per destination address
//! and clock hour; more are queued but held until the hour has passed (a
//! storm of failures, or a forged sender, must not become a storm of
//! reports to one address). Never dropped.
//!
//! The counts live in `<spool>/db/report-rate`, a cache shared by every
//! process under an `flock`: written whole, never synced. Losing it only
//! lets an hour's reports through sooner.
//!
//! ```text
//! <hour (Unix seconds / 3600)>\t<address>\t<reports made>
//! ```

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The cache's path under the spool.
pub const RATE_FILE: &str = "db/report-rate";

/// What to do with one more report to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Now,
    /// Hold it until `until` (the end of the hour); `first`: the first one
    /// held this hour for the address (worth a log line).
    Hold { until: u64, first: bool },
}

/// Counts per (hour, address).
type Counts = HashMap<(u64, String), u64>;

/// The decision for one more report to `to` at `now`, counting it.
pub fn admit(counts: &mut Counts, to: &str, now: u64, limit: u64) -> Admit {
    let hour = now / 3600;
    // Only the current hour matters.
    counts.retain(|(h, _), _| *h == hour);
    let n = counts.entry((hour, to.to_ascii_lowercase())).or_insert(0);
    *n += 1;
    if limit == 0 || *n <= limit {
        Admit::Now
    } else {
        Admit::Hold {
            until: (hour + 1) * 3600,
            first: *n == limit + 1,
        }
    }
}

fn parse(text: &str) -> Counts {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let hour = f.next()?.parse().ok()?;
            let to = f.next()?.to_string();
            let n = f.next()?.parse().ok()?;
            Some(((hour, to), n))
        })
        .collect()
}

fn render(counts: &Counts) -> String {
    let mut lines: Vec<String> = counts
        .iter()
        .map(|((h, to), n)| format!("{h}\t{to}\t{n}\n"))
        .collect();
    lines.sort();
    lines.concat()
}

/// [`admit`] against the spool's cache, under its lock. An unreadable
/// cache admits (the limit is a courtesy, not a record).
pub fn admit_in(spool: &Path, to: &str, now: u64, limit: u64) -> Admit {
    if limit == 0 {
        return Admit::Now;
    }
    let path = spool.join(RATE_FILE);
    let run = || -> std::io::Result<Admit> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        let mut counts = parse(&text);
        let decision = admit(&mut counts, to, now, limit);
        f.set_len(0)?;
        f.rewind()?;
        f.write_all(render(&counts).as_bytes())?;
        Ok(decision)
    };
    run().unwrap_or(Admit::Now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_waits_for_the_next_hour() {
        let mut c = Counts::new();
        let t = 10 * 3600 + 5;
        assert_eq!(admit(&mut c, "a@x", t, 2), Admit::Now);
        assert_eq!(admit(&mut c, "A@x", t + 1, 2), Admit::Now);
        assert_eq!(
            admit(&mut c, "a@x", t + 2, 2),
            Admit::Hold {
                until: 11 * 3600,
                first: true
            }
        );
        assert_eq!(
            admit(&mut c, "a@x", t + 3, 2),
            Admit::Hold {
                until: 11 * 3600,
                first: false
            }
        );
        // Another address has its own count; the next hour starts afresh.
        assert_eq!(admit(&mut c, "b@x", t, 2), Admit::Now);
        assert_eq!(admit(&mut c, "a@x", 11 * 3600, 2), Admit::Now);
        assert_eq!(admit(&mut c, "a@x", t, 0), Admit::Now);
    }

    #[test]
    fn the_cache_is_shared_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = 20 * 3600;
        assert_eq!(admit_in(dir.path(), "a@x", t, 1), Admit::Now);
        assert!(matches!(
            admit_in(dir.path(), "a@x", t, 1),
            Admit::Hold { first: true, .. }
        ));
        // A damaged file counts as empty.
        std::fs::write(dir.path().join(RATE_FILE), "garbage\n\t\t\n").unwrap();
        assert_eq!(admit_in(dir.path(), "a@x", t, 1), Admit::Now);
        assert_eq!(
            parse(&render(&parse("20\ta@x\t3\n"))),
            parse("20\ta@x\t3\n")
        );
    }
}
