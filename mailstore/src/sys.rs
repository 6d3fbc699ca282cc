//! The syscalls of this crate, in one place. Durable-write calls (fdatasync,
//! renameat2, directory fsync) live in `durable::sys`; this file holds the
//! rest (locks, ownership, times).
//!
//! Everything here is Linux: open-file-description locks (`F_OFD_*`) are a
//! Linux interface, and so is the `/proc/locks` format read for diagnostics.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::fs::{FlockOperation, Gid, Timestamps, Uid};

use crate::lock::LockMode;

/// A broken-down civil time (what `struct tm` carries), without a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tm {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 0 = Sunday.
    pub weekday: u8,
}

// ---------------------------------------------------------------------------
// Opening mailboxes
// ---------------------------------------------------------------------------

/// Opens an existing mbox for appending (read access is needed to look at
/// its last bytes). `O_NOFOLLOW` unless `follow` is set: a delivery agent
/// running with privileges must not be led through a symlink a user planted.
pub(crate) fn open_for_append(path: &Path, follow: bool) -> io::Result<File> {
    let mut flags = libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(flags)
        .open(path)
}

/// Opens an mbox for reading.
pub(crate) fn open_for_read(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Whether `file` is still the file `path` names (same device and inode).
/// A mail reader that rewrites an mbox renames a new file over the old one;
/// a lock taken on the old one protects nothing.
pub(crate) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let a = file.metadata()?;
    // Follows a symlink: with O_NOFOLLOW the path was not one when opened,
    // and where links are allowed the target is what was opened.
    match std::fs::metadata(path) {
        Ok(b) => Ok(a.dev() == b.dev() && a.ino() == b.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives a newly created mbox to its user.
pub(crate) fn fchown(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    rustix::fs::fchown(file, Some(uid), Some(gid)).map_err(io::Error::from)
}

// ---------------------------------------------------------------------------
// Dotlock helpers
// ---------------------------------------------------------------------------

/// `link(2)`: the one NFS-safe way to create a lock file atomically.
pub(crate) fn link(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::link(from, to).map_err(io::Error::from)
}

/// Sets the access and modification times of `file` to now (keeps a held
/// dotlock from looking stale).
pub(crate) fn touch(file: &File) -> io::Result<()> {
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    rustix::fs::futimens(file, &times).map_err(io::Error::from)
}

/// The filesystem type (`f_type` of statfs(2)) of the filesystem holding
/// `dir`.
pub(crate) fn fs_magic(dir: &Path) -> io::Result<u32> {
    let st = rustix::fs::statfs(dir)?;
    // f_type is a signed word on some ABIs; every magic number fits in 32 bits.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as u32)
}

/// Whether a process with this pid exists, from `kill(pid, 0)`.
pub(crate) fn liveness(pid: u32) -> crate::lock::Liveness {
    use crate::lock::Liveness;
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Liveness::Unknown;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => Liveness::Alive,
        // It exists, but belongs to someone we may not signal.
        Err(rustix::io::Errno::PERM) => Liveness::Alive,
        Err(rustix::io::Errno::SRCH) => Liveness::Dead,
        Err(_) => Liveness::Unknown,
    }
}

/// The host name, for unique lock-file names.
pub(crate) fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// The modification time of a file as the filesystem records it (on NFS,
/// the server's clock).
pub(crate) fn mtime(meta: &std::fs::Metadata) -> SystemTime {
    let secs = meta.mtime();
    let nanos = meta.mtime_nsec().clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

// ---------------------------------------------------------------------------
// fcntl (open-file-description) locks
// ---------------------------------------------------------------------------

fn exclusive(mode: LockMode) -> bool {
    mode == LockMode::Exclusive
}

/// Tries to take a whole-file open-file-description lock without waiting;
/// `Ok(false)`: someone else holds a conflicting lock. See
/// [`durable::sys::ofd_try_lock`].
pub(crate) fn ofd_try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    durable::sys::ofd_try_lock(file, exclusive(mode))
}

/// Releases an open-file-description lock.
pub(crate) fn ofd_unlock(file: &File) -> io::Result<()> {
    durable::sys::ofd_unlock(file)
}

/// Who holds a lock conflicting with `mode` (see
/// [`durable::sys::ofd_holder`]).
pub(crate) fn ofd_holder(file: &File, mode: LockMode) -> io::Result<Option<i32>> {
    durable::sys::ofd_holder(file, exclusive(mode))
}

// ---------------------------------------------------------------------------
// flock
// ---------------------------------------------------------------------------

/// Tries to take a `flock(2)` lock without waiting; `Ok(false)` if held.
pub(crate) fn flock_try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    let op = match mode {
        LockMode::Shared => FlockOperation::NonBlockingLockShared,
        LockMode::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    match rustix::fs::flock(file, op) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Releases a `flock(2)` lock.
pub(crate) fn flock_unlock(file: &File) -> io::Result<()> {
    rustix::fs::flock(file, FlockOperation::Unlock).map_err(io::Error::from)
}

/// The `/proc/locks` text, for naming the holder of a `flock` lock (the
/// syscall itself never says).
pub(crate) fn proc_locks() -> Option<String> {
    std::fs::read_to_string("/proc/locks").ok()
}

/// `(major, minor, inode)` of a file as `/proc/locks` writes them.
pub(crate) fn dev_ino(file: &File) -> io::Result<(u32, u32, u64)> {
    let st = rustix::fs::fstat(file)?;
    let dev = st.st_dev;
    Ok((rustix::fs::major(dev), rustix::fs::minor(dev), st.st_ino))
}

// ---------------------------------------------------------------------------
// Local time (the zone-less dates of From_ lines)
// ---------------------------------------------------------------------------

/// The local civil time at `t` (seconds since the epoch), as `localtime_r(3)`
/// gives it under the process's `TZ`.
pub(crate) fn localtime(t: i64) -> Option<Tm> {
    let tm = localtime_raw(t)?;
    Some(Tm {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u8,
        day: tm.tm_mday as u8,
        hour: tm.tm_hour as u8,
        minute: tm.tm_min as u8,
        second: tm.tm_sec as u8,
        weekday: tm.tm_wday as u8,
    })
}

/// The local zone's offset from UTC at `t`, in seconds east (0 if the C
/// library cannot tell).
pub(crate) fn local_offset(t: i64) -> i32 {
    localtime_raw(t).map_or(0, |tm| tm.tm_gmtoff as i32)
}

/// The one call of `localtime_r(3)`.
// time_t is i64 here but i32 on some 32-bit targets: keep the conversions.
#[allow(clippy::useless_conversion)]
fn localtime_raw(t: i64) -> Option<libc::tm> {
    let t: libc::time_t = t.try_into().ok()?;
    // SAFETY: `libc::tm` is a plain C struct; all-zero is a valid value that
    // localtime_r overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live, exclusively borrowed locals;
    // localtime_r is the reentrant form (no static buffer). It reads the zone
    // rules (TZ, /etc/localtime), which this crate never modifies.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// The epoch seconds of a local civil time (`mktime(3)`, DST decided by the
/// zone rules). A time that falls into a DST gap is moved forward, as
/// mktime does; `None` if it cannot be represented.
#[allow(clippy::useless_conversion)]
pub(crate) fn mktime(c: &Tm) -> Option<i64> {
    // SAFETY: as in `localtime`: a zeroed `tm` is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = c.year - 1900;
    tm.tm_mon = i32::from(c.month) - 1;
    tm.tm_mday = i32::from(c.day);
    tm.tm_hour = i32::from(c.hour);
    tm.tm_min = i32::from(c.minute);
    tm.tm_sec = i32::from(c.second);
    tm.tm_isdst = -1; // let the zone rules decide
    // SAFETY: `tm` is a live, exclusively borrowed local; mktime only reads
    // and normalises it and reads the zone rules.
    let t = unsafe { libc::mktime(&mut tm) };
    if t == -1 && !(c.year == 1969 && c.month == 12 && c.day == 31) {
        // -1 is also the valid answer for one second of 1969-12-31 (local);
        // for any other date it is mktime's error value.
        return None;
    }
    Some(i64::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localtime_and_mktime_round_trip() {
        for t in [0i64, 86_400 * 365, 1_704_164_645, 1_900_000_000] {
            let tm = localtime(t).unwrap();
            assert_eq!(mktime(&tm), Some(t), "{tm:?}");
        }
    }

    #[test]
    fn ofd_lock_conflicts_between_descriptors_of_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let a = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .unwrap();
        let b = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        assert!(ofd_try_lock(&a, LockMode::Exclusive).unwrap());
        assert!(!ofd_try_lock(&b, LockMode::Shared).unwrap());
        assert_eq!(ofd_holder(&b, LockMode::Shared).unwrap(), Some(-1));
        ofd_unlock(&a).unwrap();
        assert!(ofd_try_lock(&b, LockMode::Shared).unwrap());
        assert!(ofd_try_lock(&a, LockMode::Shared).unwrap());
        assert_eq!(ofd_holder(&b, LockMode::Shared).unwrap(), None);
    }

    #[test]
    fn flock_conflicts_between_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let a = File::create(&p).unwrap();
        let b = File::open(&p).unwrap();
        assert!(flock_try_lock(&a, LockMode::Exclusive).unwrap());
        assert!(!flock_try_lock(&b, LockMode::Exclusive).unwrap());
        flock_unlock(&a).unwrap();
        assert!(flock_try_lock(&b, LockMode::Exclusive).unwrap());
    }
}
