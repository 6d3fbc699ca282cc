//! Counting the queue without reading a million directory entries each
//! time.
//!
//! The count is the number of `<ID>-H` names in the input directories.
//! Reading them is fast per entry but not free (ext4 hashes and sorts every
//! entry of a large directory on `getdents`), so [`count`] remembers, per
//! directory, the count it found together with the directory's identity
//! and modification time, in `<root>/count.cache`. A later count reuses a
//! remembered number only while the directory's inode, mtime (nanoseconds)
//! and size are what they were; any create, rename or unlink in it changes
//! its mtime, so the cache cannot go stale, also not across crashes (the
//! kernel, not our code, keeps the key).
//!
//! A number is remembered only for a directory that had been quiet for
//! [`QUIET`] before the scan began and did not change during it: timestamps
//! come from a coarse clock, and a change within the same clock tick as the
//! previous one would otherwise keep the old mtime. The directories of the
//! current seconds are therefore always read; so are all of them when the
//! cache cannot be read or written (another user, a read-only spool).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a directory must have been unchanged for its count to be kept.
pub const QUIET: Duration = Duration::from_secs(2);
/// The cache file, at the spool root.
pub const CACHE_FILE: &str = "count.cache";

/// What identifies a directory's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirKey {
    pub ino: u64,
    pub mtime_ns: i128,
    pub size: u64,
}

impl DirKey {
    /// The key of `dir`, `None` when it does not exist.
    pub fn of(dir: &Path) -> io::Result<Option<DirKey>> {
        match std::fs::metadata(dir) {
            Ok(m) => Ok(Some(DirKey {
                ino: m.ino(),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                size: m.size(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn quiet_since_before(&self, now: SystemTime) -> bool {
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now_ns - self.mtime_ns >= QUIET.as_nanos() as i128
    }
}

/// Remembered counts: directory path → (key, count).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cache {
    pub entries: HashMap<PathBuf, (DirKey, u64)>,
}

impl Cache {
    /// Reads the cache; anything unreadable is simply not remembered.
    pub fn load(path: &Path) -> Cache {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Cache::default();
        };
        Cache::parse(&text)
    }

    /// One line per directory: `ino mtime_ns size count path`.
    pub fn parse(text: &str) -> Cache {
        let mut entries = HashMap::new();
        for line in text.lines() {
            let mut f = line.splitn(5, ' ');
            let parsed = (|| {
                let key = DirKey {
                    ino: f.next()?.parse().ok()?,
                    mtime_ns: f.next()?.parse().ok()?,
                    size: f.next()?.parse().ok()?,
                };
                let count = f.next()?.parse().ok()?;
                Some((PathBuf::from(f.next()?), (key, count)))
            })();
            if let Some((p, v)) = parsed {
                entries.insert(p, v);
            }
        }
        Cache { entries }
    }

    pub fn to_text(&self) -> String {
        let mut v: Vec<_> = self.entries.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        let mut s = String::new();
        for (p, (k, n)) in v {
            s.push_str(&format!(
                "{} {} {} {n} {}\n",
                k.ino,
                k.mtime_ns,
                k.size,
                p.display()
            ));
        }
        s
    }

    /// Writes the cache (temporary file + rename; not synced: losing it
    /// costs one full scan, and a torn one fails to parse and is ignored).
    /// Errors are for the caller to ignore.
    pub fn save(&self, io: &dyn durable::Io, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        durable::replace_file(
            io,
            path,
            &tmp,
            0o644,
            self.to_text().as_bytes(),
            durable::Persist::Cache,
            |_| Ok(()),
        )
    }
}

/// The result of counting one directory.
pub struct DirCount {
    pub count: u64,
    /// The entry to remember, when the directory was quiet.
    pub remember: Option<(DirKey, u64)>,
}

/// Counts one directory, from the cache when its key still matches, else
/// with `scan`.
pub fn count_dir(
    dir: &Path,
    cached: Option<&(DirKey, u64)>,
    scan: impl Fn(&Path) -> io::Result<u64>,
) -> io::Result<DirCount> {
    let Some(before) = DirKey::of(dir)? else {
        return Ok(DirCount {
            count: 0,
            remember: None,
        });
    };
    if let Some((key, n)) = cached
        && *key == before
    {
        return Ok(DirCount {
            count: *n,
            remember: Some((before, *n)),
        });
    }
    let started = SystemTime::now();
    let n = scan(dir)?;
    let after = DirKey::of(dir)?;
    let remember =
        (after == Some(before) && before.quiet_since_before(started)).then_some((before, n));
    Ok(DirCount { count: n, remember })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn cache_text_round_trips() {
        let mut c = Cache::default();
        c.entries.insert(
            PathBuf::from("/var/spool/sluice/input/a b"),
            (
                DirKey {
                    ino: 7,
                    mtime_ns: 1_700_000_000_123_456_789,
                    size: 4096,
                },
                12,
            ),
        );
        assert_eq!(Cache::parse(&c.to_text()), c);
        assert_eq!(Cache::parse("garbage\n1 2\n"), Cache::default());
    }

    #[test]
    fn a_quiet_directory_is_remembered_and_any_change_invalidates_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("x"), b"").unwrap();
        // Make the directory look old (quiet).
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::open(d).unwrap().set_modified(old).unwrap();
        let scans = Cell::new(0);
        let scan = |_: &Path| {
            scans.set(scans.get() + 1);
            Ok(5)
        };
        let first = count_dir(d, None, scan).unwrap();
        assert_eq!((first.count, scans.get()), (5, 1));
        let remembered = first.remember.expect("quiet directory remembered");
        let again = count_dir(d, Some(&remembered), scan).unwrap();
        assert_eq!((again.count, scans.get()), (5, 1));
        // A new entry changes the mtime: scanned again, and not remembered
        // (it is not quiet any more).
        std::fs::write(d.join("y"), b"").unwrap();
        let changed = count_dir(d, Some(&remembered), scan).unwrap();
        assert_eq!(scans.get(), 2);
        assert!(changed.remember.is_none());
        // A missing directory counts zero.
        assert_eq!(count_dir(&d.join("none"), None, scan).unwrap().count, 0);
    }
}
