//! Mailbox locks: the ones mail readers and delivery agents take on an mbox.
//!
//! - [`LockKind::Dotlock`]: `<mbox>.lock`, created NFS-safely with `link()`
//!   (see [`dotlock`](self::dotlock)); taken over at once when the pid in it
//!   names no process, or, where no pid can be asked, when older than
//!   [`LockOptions::stale_after`].
//! - [`LockKind::Fcntl`]: a whole-file `fcntl` lock. Open-file-description
//!   locks (`F_OFD_SETLK`) are used: they conflict with the classic
//!   `fcntl`/`lockf` locks Exim, Postfix, Dovecot, procmail and Python's
//!   `fcntl.lockf` take, and, unlike classic locks, they also exclude
//!   another thread of this process.
//! - [`LockKind::Flock`]: `flock(2)`. On Linux NFS clients `flock` is
//!   emulated with `fcntl` locks, so listing both on NFS makes a process
//!   conflict with itself: pick one there.
//!
//! Locks are taken in the configured order and released in reverse. A lock
//! not had within [`LockOptions::timeout`] (one deadline for all of them) is
//! a temporary [`Error::LockTimeout`] naming the kind, the path and, where
//! it can be found, the holder. Mixing orders between programs can deadlock
//! until one of them times out, which is why the order is configuration:
//! Dovecot and Exim take `dotlock` then `fcntl`, Debian policy and Postfix
//! `fcntl` then `dotlock`.
//!
//! [`MboxLock::acquire`] also re-checks, once everything is held, that the
//! open file is still the one the path names: a mail reader that rewrote
//! the mbox and renamed the new one into place while we waited would
//! otherwise leave us appending to (or reading) a deleted file.

mod dotlock;
mod fcntl;
mod flock;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;

pub(crate) use dotlock::Liveness;
pub use dotlock::lock_path;

/// One locking method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// `<mbox>.lock`, created with `link()` (NFS-safe).
    Dotlock,
    /// Whole-file `fcntl` lock (open-file-description lock); also what
    /// other programs call `lockf`.
    Fcntl,
    /// `flock(2)`.
    Flock,
}

impl LockKind {
    /// The name used in configuration and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LockKind::Dotlock => "dotlock",
            LockKind::Fcntl => "fcntl",
            LockKind::Flock => "flock",
        }
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LockKind {
    type Err = String;
    /// `dotlock`, `fcntl` (or `lockf`, which is `fcntl` on Linux), `flock`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dotlock" => Ok(LockKind::Dotlock),
            "fcntl" | "lockf" => Ok(LockKind::Fcntl),
            "flock" => Ok(LockKind::Flock),
            other => Err(format!(
                "unknown lock method {other:?} (expected \"dotlock\", \"fcntl\" or \"flock\")"
            )),
        }
    }
}

/// Whether the lock keeps out everyone or only writers. A dotlock is
/// always exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// A reader's lock: keeps writers out, lets other readers in.
    Shared,
    /// A writer's lock: keeps everyone out.
    Exclusive,
}

/// Which locks to take, in which order, and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// Taken in this order, released in reverse. A method listed twice is
    /// taken once. Empty means no lock at all.
    pub methods: Vec<LockKind>,
    /// How long to wait for all of them together before giving up with a
    /// temporary error.
    pub timeout: Duration,
    /// A dotlock whose file was last modified longer ago than this, and
    /// whose holder cannot be asked (no pid in it, a network or FUSE
    /// filesystem, or `pid_check` off), is left over from a crashed program
    /// and is removed.
    pub stale_after: Duration,
    /// Judge a dotlock holding a pid by asking the pid (`kill(pid, 0)`), as
    /// liblockfile does: a dead holder's lock is taken over at once, a live
    /// one's respected. Turn off where holders run in another PID namespace
    /// (a container sharing the mail volume), where every pid looks dead.
    pub pid_check: bool,
}

impl LockOptions {
    /// How long to wait for locks by default: long enough to outlast a mail
    /// reader rewriting a big mbox, short enough that a delivery agent
    /// reports a temporary failure and the MTA retries later.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The age after which a dotlock counts as stale: 5 minutes, as
    /// liblockfile, Exim and procmail use.
    pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(300);

    /// A writer's default: dotlock, then fcntl (Exim's appendfile, Dovecot's
    /// `mbox_write_locks`).
    pub fn writer() -> LockOptions {
        LockOptions {
            methods: vec![LockKind::Dotlock, LockKind::Fcntl],
            timeout: Self::DEFAULT_TIMEOUT,
            stale_after: Self::DEFAULT_STALE_AFTER,
            pid_check: true,
        }
    }

    /// A reader's default: fcntl only (Dovecot's `mbox_read_locks`).
    pub fn reader() -> LockOptions {
        LockOptions {
            methods: vec![LockKind::Fcntl],
            timeout: Self::DEFAULT_TIMEOUT,
            stale_after: Self::DEFAULT_STALE_AFTER,
            pid_check: true,
        }
    }

    /// Parses a method list such as `"fcntl, dotlock"` or `"dotlock fcntl"`.
    pub fn parse_methods(s: &str) -> Result<Vec<LockKind>, String> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(str::parse)
            .collect()
    }
}

/// Locks held on one mbox, with the open mbox file they were taken on.
///
/// Dropping it releases the locks in reverse order; [`MboxLock::release`]
/// does the same and reports what went wrong.
#[derive(Debug)]
pub struct MboxLock {
    path: PathBuf,
    mode: LockMode,
    held: Vec<Held>,
    file: File,
    notices: Vec<String>,
}

#[derive(Debug)]
enum Held {
    Dotlock(dotlock::Dotlock),
    Fcntl,
    Flock,
}

/// How many times the locks are retaken when the mbox was replaced (renamed
/// over) while we waited for them, before that counts as a failure.
const MAX_REPLACED: usize = 5;

impl MboxLock {
    /// Takes the locks `options` lists on the mbox at `path`.
    ///
    /// `open` opens (or creates) the mbox; it is called just before the
    /// first lock that needs a descriptor (`fcntl`, `flock`), or after the
    /// last lock if none does, so that a dotlock taken first also covers the
    /// creation of a missing mbox. The file must be open for reading for a
    /// [`LockMode::Shared`] fcntl lock and for writing for an exclusive one.
    pub fn acquire<F>(
        path: &Path,
        mode: LockMode,
        options: &LockOptions,
        mut open: F,
    ) -> Result<MboxLock>
    where
        F: FnMut(&Path) -> Result<File>,
    {
        let start = Instant::now();
        let deadline = start + options.timeout;
        let mut methods: Vec<LockKind> = Vec::with_capacity(options.methods.len());
        for &k in &options.methods {
            if !methods.contains(&k) {
                methods.push(k);
            }
        }
        let mut notices = Vec::new();
        for _ in 0..MAX_REPLACED {
            let mut held = Vec::with_capacity(methods.len());
            let mut file: Option<File> = None;
            let taken = take_all(
                path,
                mode,
                options,
                &methods,
                deadline,
                start,
                &mut open,
                &mut held,
                &mut file,
                &mut notices,
            );
            if let Err(e) = taken {
                release_held(held, file.as_ref());
                return Err(e);
            }
            let file = match file {
                Some(f) => f,
                None => match open(path) {
                    Ok(f) => f,
                    Err(e) => {
                        release_held(held, None);
                        return Err(e);
                    }
                },
            };
            let lock = MboxLock {
                path: path.to_path_buf(),
                mode,
                held,
                file,
                notices: std::mem::take(&mut notices),
            };
            // On error `lock` is dropped, which releases everything.
            let same = sys::same_file(&lock.file, path)
                .map_err(|e| Error::io("stat mbox after locking", path, e))?;
            if same {
                return Ok(lock);
            }
            // Replaced while we waited: our locks sit on a file nobody will
            // look at again. Let go and lock the new one.
            notices = lock.notices.clone();
            drop(lock);
        }
        Err(Error::LockFailed {
            path: path.to_path_buf(),
            kind: "mbox",
            why: format!("the mbox was replaced {MAX_REPLACED} times while being locked"),
            source: std::io::Error::other("mbox keeps being replaced"),
        })
    }

    /// The open mbox the locks were taken on.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The open mbox, for writing.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// The mbox path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Things worth a log line that happened while locking (a stale dotlock
    /// taken over).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Which methods are held, in the order they were taken.
    pub fn kinds(&self) -> Vec<LockKind> {
        self.held
            .iter()
            .map(|h| match h {
                Held::Dotlock(_) => LockKind::Dotlock,
                Held::Fcntl => LockKind::Fcntl,
                Held::Flock => LockKind::Flock,
            })
            .collect()
    }

    /// Updates the dotlock's modification time so that nobody takes it for
    /// stale. Long operations under a dotlock call this now and then.
    pub fn refresh(&self) -> Result<()> {
        for h in &self.held {
            if let Held::Dotlock(d) = h {
                d.refresh()?;
            }
        }
        Ok(())
    }

    /// Releases the locks in reverse order, reporting the first failure (a
    /// dotlock that cannot be removed blocks other programs until it goes
    /// stale). Every lock is released even after a failure.
    pub fn release(mut self) -> Result<()> {
        self.release_all()
    }

    fn release_all(&mut self) -> Result<()> {
        let mut first: Option<Error> = None;
        while let Some(h) = self.held.pop() {
            let r = match h {
                Held::Dotlock(d) => d.release(),
                Held::Fcntl => sys::ofd_unlock(&self.file)
                    .map_err(|e| Error::io("release fcntl lock", &self.path, e)),
                Held::Flock => sys::flock_unlock(&self.file)
                    .map_err(|e| Error::io("release flock lock", &self.path, e)),
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The mode the locks were taken in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

impl Drop for MboxLock {
    fn drop(&mut self) {
        // Errors cannot be reported from here; `release` reports them.
        let _ = self.release_all();
    }
}

#[allow(clippy::too_many_arguments)]
fn take_all<F>(
    path: &Path,
    mode: LockMode,
    options: &LockOptions,
    methods: &[LockKind],
    deadline: Instant,
    start: Instant,
    open: &mut F,
    held: &mut Vec<Held>,
    file: &mut Option<File>,
    notices: &mut Vec<String>,
) -> Result<()>
where
    F: FnMut(&Path) -> Result<File>,
{
    for &kind in methods {
        match kind {
            LockKind::Dotlock => {
                let stale = dotlock::Staleness {
                    after: options.stale_after,
                    pid_check: options.pid_check,
                };
                let d = dotlock::Dotlock::acquire(path, deadline, start, stale, notices)?;
                held.push(Held::Dotlock(d));
            }
            LockKind::Fcntl | LockKind::Flock => {
                if file.is_none() {
                    *file = Some(open(path)?);
                }
                let Some(f) = file.as_ref() else {
                    unreachable!("opened just above")
                };
                if kind == LockKind::Fcntl {
                    fcntl::acquire(f, path, mode, deadline, start)?;
                    held.push(Held::Fcntl);
                } else {
                    flock::acquire(f, path, mode, deadline, start)?;
                    held.push(Held::Flock);
                }
            }
        }
    }
    Ok(())
}

/// Lets go of a partly taken set of locks (errors are moot: the caller is
/// already failing).
fn release_held(held: Vec<Held>, file: Option<&File>) {
    for h in held.into_iter().rev() {
        match (h, file) {
            (Held::Dotlock(d), _) => {
                let _ = d.release();
            }
            (Held::Fcntl, Some(f)) => {
                let _ = sys::ofd_unlock(f);
            }
            (Held::Flock, Some(f)) => {
                let _ = sys::flock_unlock(f);
            }
            // Without a file no descriptor lock can have been taken.
            (Held::Fcntl | Held::Flock, None) => {}
        }
    }
}

/// Polling with growing pauses, for locks whose blocking form has no
/// timeout (F_OFD_SETLKW, flock, dotlocks).
/// Polls `try_lock` with [`Backoff`] until it takes the lock, fails, or
/// `deadline` passes. A failure is [`Error::LockFailed`] with `why` of the
/// error; the timeout is [`Error::LockTimeout`] naming `holder()`.
pub(crate) fn poll_lock(
    path: &Path,
    kind: &'static str,
    deadline: Instant,
    start: Instant,
    mut try_lock: impl FnMut() -> std::io::Result<bool>,
    why: impl Fn(&std::io::Error) -> &'static str,
    holder: impl FnOnce() -> Option<String>,
) -> Result<()> {
    let mut backoff = Backoff::new();
    loop {
        match try_lock() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                return Err(Error::LockFailed {
                    path: path.to_path_buf(),
                    kind,
                    why: why(&e).to_string(),
                    source: e,
                });
            }
        }
        if !backoff.wait(deadline) {
            return Err(Error::LockTimeout {
                path: path.to_path_buf(),
                kind,
                waited_secs: waited_secs(start),
                holder: holder(),
            });
        }
    }
}

pub(crate) struct Backoff {
    pause: Duration,
}

impl Backoff {
    /// First pause: short, because most holders let go within milliseconds.
    const FIRST: Duration = Duration::from_millis(5);
    /// Longest pause: bounds how late we notice a released lock.
    const MAX: Duration = Duration::from_millis(200);

    pub(crate) fn new() -> Backoff {
        Backoff { pause: Self::FIRST }
    }

    /// Sleeps before the next attempt; `false` when the deadline has passed
    /// (one last attempt is made at the deadline itself).
    pub(crate) fn wait(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(self.pause.min(deadline - now));
        self.pause = (self.pause * 2).min(Self::MAX);
        true
    }
}

/// Seconds waited, rounded up, for error messages.
pub(crate) fn waited_secs(start: Instant) -> u64 {
    let d = start.elapsed();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn open_rw(p: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .map_err(|e| Error::io("open", p, e))
    }

    #[test]
    fn parse_methods() {
        let table: &[(&str, Result<Vec<LockKind>, ()>)] = &[
            (
                "dotlock fcntl",
                Ok(vec![LockKind::Dotlock, LockKind::Fcntl]),
            ),
            (
                "fcntl, dotlock",
                Ok(vec![LockKind::Fcntl, LockKind::Dotlock]),
            ),
            ("FLOCK", Ok(vec![LockKind::Flock])),
            ("lockf", Ok(vec![LockKind::Fcntl])),
            ("", Ok(vec![])),
            ("dotlock, fnctl", Err(())),
        ];
        for (input, want) in table {
            let got = LockOptions::parse_methods(input).map_err(|_| ());
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn takes_in_order_and_releases_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let opts = LockOptions {
            methods: vec![
                LockKind::Fcntl,
                LockKind::Dotlock,
                LockKind::Flock,
                LockKind::Fcntl,
            ],
            timeout: Duration::from_secs(2),
            stale_after: LockOptions::DEFAULT_STALE_AFTER,
            pid_check: true,
        };
        let lock = MboxLock::acquire(&mbox, LockMode::Exclusive, &opts, open_rw).unwrap();
        assert_eq!(
            lock.kinds(),
            vec![LockKind::Fcntl, LockKind::Dotlock, LockKind::Flock]
        );
        assert!(lock_path(&mbox).exists());
        lock.release().unwrap();
        assert!(!lock_path(&mbox).exists());
        // Everything is free again.
        let again = MboxLock::acquire(&mbox, LockMode::Exclusive, &opts, open_rw).unwrap();
        drop(again);
        assert!(!lock_path(&mbox).exists());
    }

    #[test]
    fn dotlock_first_opens_the_file_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let lock_file = lock_path(&mbox);
        let opts = LockOptions {
            methods: vec![LockKind::Dotlock],
            ..LockOptions::writer()
        };
        let lock = MboxLock::acquire(&mbox, LockMode::Exclusive, &opts, |p| {
            assert!(lock_file.exists(), "opened before the dotlock was taken");
            open_rw(p)
        })
        .unwrap();
        drop(lock);
    }

    #[test]
    fn shared_locks_coexist_exclusive_waits_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let opts = LockOptions {
            methods: vec![LockKind::Fcntl, LockKind::Flock],
            timeout: Duration::from_millis(150),
            stale_after: LockOptions::DEFAULT_STALE_AFTER,
            pid_check: true,
        };
        let a = MboxLock::acquire(&mbox, LockMode::Shared, &opts, open_rw).unwrap();
        let b = MboxLock::acquire(&mbox, LockMode::Shared, &opts, open_rw).unwrap();
        let err = MboxLock::acquire(&mbox, LockMode::Exclusive, &opts, open_rw).unwrap_err();
        match &err {
            Error::LockTimeout { kind, path, .. } => {
                assert_eq!(*kind, "fcntl");
                assert_eq!(path, &mbox);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.is_temporary());
        drop((a, b));
        MboxLock::acquire(&mbox, LockMode::Exclusive, &opts, open_rw).unwrap();
    }

    #[test]
    fn a_failed_lock_releases_those_already_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let flock_only = LockOptions {
            methods: vec![LockKind::Flock],
            timeout: Duration::from_millis(100),
            stale_after: LockOptions::DEFAULT_STALE_AFTER,
            pid_check: true,
        };
        let holder = MboxLock::acquire(&mbox, LockMode::Exclusive, &flock_only, open_rw).unwrap();
        let both = LockOptions {
            methods: vec![LockKind::Dotlock, LockKind::Fcntl, LockKind::Flock],
            ..flock_only.clone()
        };
        let err = MboxLock::acquire(&mbox, LockMode::Exclusive, &both, open_rw).unwrap_err();
        assert!(
            matches!(err, Error::LockTimeout { kind: "flock", .. }),
            "{err}"
        );
        assert!(!lock_path(&mbox).exists(), "dotlock left behind");
        // The fcntl lock was let go too.
        let fcntl_only = LockOptions {
            methods: vec![LockKind::Fcntl],
            ..flock_only
        };
        MboxLock::acquire(&mbox, LockMode::Exclusive, &fcntl_only, open_rw).unwrap();
        drop(holder);
    }

    #[test]
    fn a_replaced_mbox_is_locked_again() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        std::fs::write(&mbox, b"old").unwrap();
        let opts = LockOptions {
            methods: vec![LockKind::Fcntl],
            ..LockOptions::writer()
        };
        let mut opened = 0;
        let lock = MboxLock::acquire(&mbox, LockMode::Exclusive, &opts, |p| {
            let f = open_rw(p)?;
            opened += 1;
            if opened == 1 {
                // A mail reader renames a rewritten mbox into place.
                let tmp = p.with_extension("new");
                std::fs::write(&tmp, b"new").unwrap();
                std::fs::rename(&tmp, p).unwrap();
            }
            Ok(f)
        })
        .unwrap();
        assert_eq!(opened, 2);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut lock.file(), &mut s).unwrap();
        assert_eq!(s, "new");
    }
}
