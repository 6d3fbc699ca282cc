//! The spool's system calls beyond those of `durable::sys` (durable writes,
//! the open-file-description locks on messages): directory scanning, file
//! ages.

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, OFlags, RawDir};

/// Calls `f` with the name of every entry of `dir`, reading the directory
/// with `getdents64` into one reused buffer (no allocation per entry: a
/// count of a million messages must not allocate a million strings).
/// A missing directory has no entries.
pub fn for_each_name(dir: &Path, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let fd = match rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut iter = RawDir::new(&fd, &mut buf);
    while let Some(entry) = iter.next() {
        let entry = entry?;
        f(entry.file_name().to_bytes());
    }
    Ok(())
}

/// How long ago `path` last changed: its data (mtime) or its name (ctime,
/// which a rename updates). `None` when it is gone.
pub fn age(path: &Path) -> io::Result<Option<Duration>> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let newest = m.mtime().max(m.ctime()).max(0) as u64;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Ok(Some(Duration::from_secs(now.saturating_sub(newest))))
}

/// Whether `path` exists (without following a symlink).
pub fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Peak resident set size of this process in kilobytes (`VmHWM`), for
/// benchmark reports; `None` where /proc is not available.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ages() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["a", "b-H", "c"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let mut names = Vec::new();
        for_each_name(dir.path(), |n| {
            names.push(String::from_utf8_lossy(n).into_owned())
        })
        .unwrap();
        names.sort();
        assert_eq!(names, [".", "..", "a", "b-H", "c"]);
        for_each_name(&dir.path().join("missing"), |_| panic!()).unwrap();
        assert!(age(&dir.path().join("a")).unwrap().unwrap() < Duration::from_secs(5));
        assert_eq!(age(&dir.path().join("nope")).unwrap(), None);
        assert!(exists(&dir.path().join("a")).unwrap());
        assert!(peak_rss_kb().is_some_and(|k| k > 0));
    }
}
