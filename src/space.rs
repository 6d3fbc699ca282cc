//! Free space checks before a message is taken (Exim's
//! `check_spool_space`, `check_spool_inodes`, `check_log_space`,
//! `check_log_inodes`): a full spool is found at `MAIL`, before the client
//! sends its data, not after it.
//!
//! The filesystem is asked at most once a second (`statvfs` is cheap, but
//! a busy server asks for every transaction); a shortage is logged at most
//! once a minute, not once per refused client.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;

/// How long one look at the filesystems is trusted.
const FRESH: Duration = Duration::from_secs(1);
/// How often a continuing shortage is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What a filesystem has free (for an unprivileged writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Free {
    pub bytes: u64,
    pub inodes: u64,
}

/// The limits for one filesystem; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bytes: u64,
    pub inodes: u64,
}

/// Why a message cannot be taken now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// "spool" or "log".
    pub what: &'static str,
    pub free: Free,
    pub limits: Limits,
    /// The size the client announced (`SIZE=`), counted against the space.
    pub size: u64,
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} space shortage: {} bytes and {} inodes free, {} bytes announced; \
             check_{}_space is {}, check_{}_inodes {}",
            self.what,
            self.free.bytes,
            self.free.inodes,
            self.size,
            self.what,
            self.limits.bytes,
            self.what,
            self.limits.inodes
        )
    }
}

/// The rule, without I/O: short when the free space less the announced
/// size falls below the limit, or the free inodes do.
pub fn judge(what: &'static str, free: Free, limits: Limits, size: u64) -> Option<Shortage> {
    let bytes_short = limits.bytes > 0 && free.bytes.saturating_sub(size) < limits.bytes;
    let inodes_short = limits.inodes > 0 && free.inodes < limits.inodes;
    (bytes_short || inodes_short).then_some(Shortage {
        what,
        free,
        limits,
        size,
    })
}

/// What is free on the filesystem holding `path`.
pub fn free_at(path: &Path) -> std::io::Result<Free> {
    let st = rustix::fs::statvfs(path)?;
    Ok(Free {
        bytes: st.f_bavail.saturating_mul(st.f_frsize),
        // Filesystems without a fixed inode table (btrfs) report none at
        // all: they never run out of inodes before space.
        inodes: if st.f_files == 0 {
            u64::MAX
        } else {
            st.f_favail
        },
    })
}

type Look = (Instant, Option<Free>, Option<Free>);

/// The checks of one data directory, with the last look cached.
#[derive(Debug)]
pub struct SpaceCheck {
    spool: (PathBuf, Limits),
    log: (PathBuf, Limits),
    /// When the filesystems were last asked, and what the spool's and the
    /// log's had free (`None`: could not be asked).
    last: Mutex<Option<Look>>,
    logged: Mutex<Option<Instant>>,
}

impl SpaceCheck {
    pub fn new(cfg: &Config) -> SpaceCheck {
        SpaceCheck {
            spool: (
                cfg.spool_dir(),
                Limits {
                    bytes: cfg.check_spool_space,
                    inodes: cfg.check_spool_inodes,
                },
            ),
            log: (
                cfg.log_dir(),
                Limits {
                    bytes: cfg.check_log_space,
                    inodes: cfg.check_log_inodes,
                },
            ),
            last: Mutex::new(None),
            logged: Mutex::new(None),
        }
    }

    /// The shortage that refuses a message of `size` bytes now, if any. A
    /// filesystem that cannot be asked (not made yet) is not short.
    pub fn short(&self, size: u64) -> Option<Shortage> {
        let (spool, log) = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            match *last {
                Some((at, s, l)) if at.elapsed() < FRESH => (s, l),
                _ => {
                    let s = free_at(nearest(&self.spool.0)).ok();
                    let l = free_at(nearest(&self.log.0)).ok();
                    *last = Some((Instant::now(), s, l));
                    (s, l)
                }
            }
        };
        spool
            .and_then(|f| judge("spool", f, self.spool.1, size))
            .or_else(|| log.and_then(|f| judge("log", f, self.log.1, size)))
    }

    /// Whether a shortage should be logged now (once a minute).
    pub fn time_to_log(&self) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return false;
        }
        *logged = Some(Instant::now());
        true
    }
}

/// `path`, or its nearest existing ancestor (the log directory is made
/// with the first line).
fn nearest(path: &Path) -> &Path {
    let mut p = path;
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announced_size_counts_and_zero_is_no_limit() {
        let limits = Limits {
            bytes: 10_000,
            inodes: 100,
        };
        let free = |bytes, inodes| Free { bytes, inodes };
        assert_eq!(judge("spool", free(50_000, 500), limits, 0), None);
        assert_eq!(judge("spool", free(50_000, 500), limits, 40_000), None);
        assert!(judge("spool", free(50_000, 500), limits, 40_001).is_some());
        assert!(judge("spool", free(9_999, 500), limits, 0).is_some());
        assert!(judge("log", free(50_000, 99), limits, 0).is_some());
        // A size larger than what is free is short, not an overflow.
        assert!(judge("spool", free(5, 500), limits, u64::MAX).is_some());
        let none = Limits {
            bytes: 0,
            inodes: 0,
        };
        assert_eq!(judge("spool", free(0, 0), none, 1 << 40), None);
        let s = judge("spool", free(9_000, 500), limits, 0)
            .unwrap()
            .to_string();
        assert!(s.starts_with("spool space shortage: 9000 bytes"), "{s}");
    }

    #[test]
    fn the_filesystem_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let f = free_at(dir.path()).unwrap();
        assert!(f.bytes > 0 && f.inodes > 0, "{f:?}");
        assert_eq!(nearest(&dir.path().join("not/yet")), dir.path());
    }
}
