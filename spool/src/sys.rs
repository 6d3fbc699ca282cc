//! The spool's system calls beyond the durable-write ones of `durable::sys`:
//! message locks, directory scanning, file ages. The only `unsafe` of the
//! crate is here.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, OFlags, RawDir};

/// Takes an exclusive open-file-description lock (`F_OFD_SETLK`) on all of
/// `file`, without waiting. `Ok(false)`: someone else holds a lock on it.
///
/// OFD locks belong to the open file, not to the process, so two threads
/// of one process exclude each other, and closing some other descriptor of
/// the same file does not drop the lock (both are wrong with classic fcntl
/// locks). On Linux they conflict with classic fcntl locks, so a message
/// Exim is delivering from a shared spool is also seen as locked. The lock
/// ends when `file` (and every duplicate of its descriptor) is closed,
/// including when the process dies.
#[allow(unsafe_code)]
pub fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` is a plain C struct of integers; all-zero bytes are a
    // valid value (and l_pid must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // to the end of the file, however it grows
    // SAFETY: the descriptor is open for the lifetime of `file`, and `fl`
    // is a valid, initialized flock that outlives the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

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
    fn ofd_locks_exclude_other_descriptions_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m-D");
        std::fs::write(&p, b"x").unwrap();
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p)
                .unwrap()
        };
        let a = open();
        let b = open();
        assert!(try_lock(&a).unwrap());
        // Same process, other open file: refused (a classic lock would be
        // granted here).
        assert!(!try_lock(&b).unwrap());
        // Taking it again on the same description is fine.
        assert!(try_lock(&a).unwrap());
        drop(a);
        assert!(try_lock(&b).unwrap());
    }

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
