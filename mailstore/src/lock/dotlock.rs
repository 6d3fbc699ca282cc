//! The dotlock: `<mbox>.lock`, created so that it works on NFS.
//!
//! `O_EXCL` was not atomic on NFS before v3, and a `link()` over NFS can
//! report failure although it succeeded (the reply was lost and the retry
//! found the name taken). So, as liblockfile and Exim do:
//!
//! 1. create a unique file `<mbox>.lock.<host>.<pid>.<n>` holding our pid;
//! 2. `link()` it to `<mbox>.lock`, ignoring what link says;
//! 3. the lock is ours exactly when the unique file now has 2 links;
//! 4. remove the unique name (the lock file keeps the inode).
//!
//! The lock file holds the holder's pid as decimal digits and a newline
//! (liblockfile's format). Whether a lock file that is not ours is stale is
//! judged as liblockfile judges it ([`judge`]):
//!
//! - it holds a pid and lives on a local filesystem: `kill(pid, 0)` decides.
//!   ESRCH means the holder died (a crash, `kill -9`): the lock is taken over
//!   at once, with a notice naming the dead pid. Success or EPERM means the
//!   holder runs, and the lock is respected however old it is.
//! - it holds no pid, the pid check is off (`dotlock_pid_check = false`, for
//!   holders in another PID namespace, where every pid looks dead), or it
//!   lives on a network or FUSE filesystem (NFS, CIFS, Ceph..., where the pid
//!   may belong to another machine): a lock file whose modification time is
//!   older than `stale_after` was left by a program that died. The holder of
//!   a long operation refreshes its lock to avoid that. Ages are measured on
//!   the clock of the filesystem holding the lock (the unique file's
//!   timestamp tells the offset), so NFS client/server clock skew does not
//!   make fresh locks look stale.
//!
//! Taking over is safe against a second breaker doing the same: the stale
//! file is renamed aside to a name of our own, checked to be the inode that
//! was judged, and only then removed; the lock itself is then taken with the
//! usual `link()` protocol, which lets exactly one of the breakers win.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::{Backoff, waited_secs};
use crate::error::{Error, Result};
use crate::sys;

/// The dotlock path of an mbox: `<mbox>.lock`.
pub fn lock_path(mbox: &Path) -> PathBuf {
    let mut s = mbox.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Longest file name most filesystems accept.
const NAME_MAX: usize = 255;

/// Mode of lock files: readable by all so other programs can read the pid.
const LOCK_FILE_MODE: u32 = 0o644;

static UNIQUE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A held dotlock.
#[derive(Debug)]
pub(crate) struct Dotlock {
    path: PathBuf,
    /// Our handle on the lock file's inode: for refreshing its time and for
    /// checking at release that the file is still ours.
    file: File,
}

impl Dotlock {
    /// Takes the dotlock of `mbox` (the mbox itself need not exist).
    pub(crate) fn acquire(
        mbox: &Path,
        deadline: Instant,
        start: Instant,
        stale: Staleness,
        notices: &mut Vec<String>,
    ) -> Result<Dotlock> {
        let path = lock_path(mbox);
        let unique = unique_path(&path);
        let mut file = create_unique(&unique, &path)?;
        // Remove the unique name whatever happens below.
        let result = Self::link_loop(&path, &unique, &mut file, deadline, start, stale, notices);
        let _ = std::fs::remove_file(&unique);
        result?;
        Ok(Dotlock { path, file })
    }

    fn link_loop(
        path: &Path,
        unique: &Path,
        file: &mut File,
        deadline: Instant,
        start: Instant,
        stale: Staleness,
        notices: &mut Vec<String>,
    ) -> Result<()> {
        // Offset between our clock and the filesystem's, from the file we
        // just created.
        let created = file
            .metadata()
            .map(|m| sys::mtime(&m))
            .map_err(|e| failed(path, "stat our lock file", e))?;
        let skew = Skew::between(SystemTime::now(), created);
        // Asked once, and only when a lock file is found: a pid is
        // meaningful only on a filesystem local to this machine.
        let mut scope: Option<PidScope> = None;
        let mut backoff = Backoff::new();
        loop {
            let linked = sys::link(unique, path);
            let ours = file
                .metadata()
                .map_err(|e| failed(path, "stat our lock file", e))?;
            if ours.nlink() == 2 {
                return Ok(());
            }
            // An NFS client may show a stale link count; the lock file
            // being our inode settles it.
            if let Ok(m) = std::fs::symlink_metadata(path)
                && m.dev() == ours.dev()
                && m.ino() == ours.ino()
            {
                return Ok(());
            }
            match linked {
                Ok(()) => {} // reported success, yet not ours: retry
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if no_hard_links(&e) => {
                    // Filesystems without hard links (some FUSE, vfat):
                    // O_EXCL is the best there is.
                    match create_exclusive(path) {
                        Ok(f) => {
                            *file = f;
                            return Ok(());
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(failed(path, "create lock file", e)),
                    }
                }
                Err(e) => return Err(failed(path, "link lock file", e)),
            }
            let scope = *scope.get_or_insert_with(|| PidScope::of_dir(path));
            if let Some(notice) = take_over_if_stale(path, unique, skew, stale, scope)? {
                notices.push(notice);
                continue;
            }
            if !backoff.wait(deadline) {
                return Err(Error::LockTimeout {
                    path: path.to_path_buf(),
                    kind: "dotlock",
                    waited_secs: waited_secs(start),
                    holder: holder(path),
                });
            }
        }
    }

    /// Updates the lock file's times so it does not look stale.
    pub(crate) fn refresh(&self) -> Result<()> {
        sys::touch(&self.file).map_err(|e| Error::io("refresh dotlock", &self.path, e))
    }

    /// Removes the lock file, unless someone took it over meanwhile (then
    /// the file at `path` is theirs).
    pub(crate) fn release(self) -> Result<()> {
        let ours = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat dotlock", &self.path, e))?;
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => {
                std::fs::remove_file(&self.path)
                    .map_err(|e| Error::io("remove dotlock", &self.path, e))
            }
            Ok(_) => Err(Error::LockFailed {
                path: self.path.clone(),
                kind: "dotlock",
                why: "our lock file was replaced by another program's while we held it \
                      (taken over as stale?); left in place"
                    .into(),
                source: io::Error::other("lock file replaced"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::LockFailed {
                path: self.path.clone(),
                kind: "dotlock",
                why: "our lock file was removed by another program while we held it".into(),
                source: e,
            }),
            Err(e) => Err(Error::io("stat dotlock", &self.path, e)),
        }
    }
}

/// `<lock>.<host>.<pid>.<n>`, shortened to fit in a file name.
fn unique_path(lock: &Path) -> PathBuf {
    let n = UNIQUE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let host: String = sys::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = lock.file_name().map(|s| s.len()).unwrap_or(0);
    let tail = format!(".{}.{n}", std::process::id());
    let room = NAME_MAX.saturating_sub(base + tail.len() + 1);
    let host: String = host.chars().take(room).collect();
    let mut s = lock.as_os_str().to_os_string();
    s.push(format!(".{host}{tail}"));
    PathBuf::from(s)
}

fn create_exclusive(path: &Path) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(LOCK_FILE_MODE)
        .open(path)?;
    f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
    Ok(f)
}

fn create_unique(unique: &Path, lock: &Path) -> Result<File> {
    create_exclusive(unique).map_err(|e| {
        let dir = lock.parent().unwrap_or(Path::new("."));
        let why = match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => format!(
                "cannot create a lock file in {}: the directory must be writable by this user \
                 (a mail spool such as /var/mail is usually mode 1777, or 2775 group mail with \
                 the delivery agent running in group mail)",
                dir.display()
            ),
            io::ErrorKind::NotFound => format!("directory {} does not exist", dir.display()),
            _ => format!("cannot create lock file {}", unique.display()),
        };
        Error::LockFailed {
            path: lock.to_path_buf(),
            kind: "dotlock",
            why,
            source: e,
        }
    })
}

fn failed(path: &Path, why: &str, source: io::Error) -> Error {
    Error::LockFailed {
        path: path.to_path_buf(),
        kind: "dotlock",
        why: why.to_string(),
        source,
    }
}

/// Whether a `link()` error means the filesystem has no hard links.
fn no_hard_links(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

/// Our clock minus the filesystem's, signed.
#[derive(Debug, Clone, Copy)]
struct Skew {
    ahead: bool,
    by: Duration,
}

impl Skew {
    fn between(ours: SystemTime, theirs: SystemTime) -> Skew {
        match ours.duration_since(theirs) {
            Ok(by) => Skew { ahead: true, by },
            Err(e) => Skew {
                ahead: false,
                by: e.duration(),
            },
        }
    }

    /// The filesystem's "now".
    fn fs_now(self) -> SystemTime {
        let now = SystemTime::now();
        if self.ahead {
            now.checked_sub(self.by).unwrap_or(now)
        } else {
            now + self.by
        }
    }
}

/// How a lock file that is not ours is judged stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Staleness {
    /// Older than this (by modification time) and no live holder to ask:
    /// stale.
    pub after: Duration,
    /// Ask the holder's pid with `kill(pid, 0)` on a local filesystem.
    pub pid_check: bool,
}

/// Whether a pid found in a lock file names a process of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidScope {
    /// A local filesystem: the pid is one of ours (or of our PID namespace).
    Local,
    /// A network or FUSE filesystem: the pid may be another machine's.
    Shared,
}

impl PidScope {
    /// The scope of the directory holding `lock`, from `statfs(2)`. When the
    /// filesystem cannot be asked, the pid is not trusted.
    fn of_dir(lock: &Path) -> PidScope {
        let dir = match lock.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match sys::fs_magic(dir) {
            Ok(magic) => PidScope::of_magic(magic),
            Err(_) => PidScope::Shared,
        }
    }

    /// Network and cluster filesystems, and FUSE (sshfs, s3fs... may be
    /// remote), from the `f_type` values in statfs(2) and linux/magic.h.
    fn of_magic(magic: u32) -> PidScope {
        const SHARED: &[u32] = &[
            0x6969,      // NFS
            0x517B,      // SMB
            0xFF53_4D42, // CIFS
            0xFE53_4D42, // SMB2
            0x6573_5546, // FUSE
            0x00C3_6400, // Ceph
            0x5346_414F, // AFS
            0x6B41_4653, // kAFS
            0x7375_7245, // Coda
            0x0116_1970, // GFS2
            0x7461_636F, // OCFS2
            0x0102_1997, // 9p
            0x564C,      // NCP
            0x0BD0_0BD0, // Lustre
            0x4750_4653, // GPFS
            0x2003_0528, // OrangeFS
        ];
        if SHARED.contains(&magic) {
            PidScope::Shared
        } else {
            PidScope::Local
        }
    }
}

/// What `kill(pid, 0)` said about a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Success or EPERM: a process with that pid exists.
    Alive,
    /// ESRCH: no such process.
    Dead,
    /// Anything else (an invalid pid): nothing learned.
    Unknown,
}

/// Why a lock file was judged stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A holder runs, or the lock is young: wait for it.
    Respect,
    /// The pid in it names no process.
    DeadHolder(u32),
    /// No holder could be asked and it is older than the limit.
    TooOld,
}

/// Judges a lock file that is not ours, as liblockfile's `lockfile_check`
/// does (see the module documentation). Pure: the filesystem's scope and
/// the holder's liveness come in as values, so the rules are tested as a
/// table.
pub(crate) fn judge(
    pid: Option<u32>,
    scope: PidScope,
    age: Duration,
    stale: Staleness,
    alive: impl FnOnce(u32) -> Liveness,
) -> Verdict {
    if let Some(pid) = pid
        && stale.pid_check
        && scope == PidScope::Local
    {
        match alive(pid) {
            Liveness::Alive => return Verdict::Respect,
            Liveness::Dead => return Verdict::DeadHolder(pid),
            Liveness::Unknown => {}
        }
    }
    if age > stale.after {
        Verdict::TooOld
    } else {
        Verdict::Respect
    }
}

/// Removes the lock file if it is stale; returns the notice to log.
///
/// The stale file is first renamed aside (atomic), so that if another
/// process took it over and created a fresh lock between our look and our
/// move, we notice (different inode) and put the fresh one back instead of
/// deleting it.
fn take_over_if_stale(
    path: &Path,
    unique: &Path,
    skew: Skew,
    stale: Staleness,
    scope: PidScope,
) -> Result<Option<String>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        // Gone meanwhile: just retry the link.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(path, "stat lock file", e)),
    };
    let age = skew
        .fs_now()
        .duration_since(sys::mtime(&meta))
        .unwrap_or(Duration::ZERO);
    // Read through the inode just judged by age (a file that is not a
    // regular file holds no pid).
    let pid = if meta.is_file() {
        std::fs::read(path).ok().and_then(|b| parse_pid(&b))
    } else {
        None
    };
    let why = match judge(pid, scope, age, stale, sys::liveness) {
        Verdict::Respect => return Ok(None),
        Verdict::DeadHolder(pid) => format!("held by pid {pid}, which is not running"),
        Verdict::TooOld => format!(
            "{}, last touched {}s ago, stale after {}s",
            pid.map_or("holder unknown".to_string(), |p| format!("pid {p}")),
            age.as_secs(),
            stale.after.as_secs()
        ),
    };
    let mut aside = unique.as_os_str().to_os_string();
    aside.push(".stale");
    let aside = PathBuf::from(aside);
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(path, "move stale lock file aside", e)),
    }
    let moved =
        std::fs::symlink_metadata(&aside).map_err(|e| failed(path, "stat stale lock file", e))?;
    if moved.ino() != meta.ino() || moved.dev() != meta.dev() {
        // Someone else replaced the stale lock with a fresh one in between:
        // that one is valid. Put it back if nobody has the name yet.
        let _ = sys::link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        return Ok(None);
    }
    std::fs::remove_file(&aside).map_err(|e| failed(path, "remove stale lock file", e))?;
    Ok(Some(format!(
        "{}: removed stale lock file ({why})",
        path.display()
    )))
}

/// "pid N" from a lock file, if it holds one.
fn holder(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    parse_holder(&bytes)
}

fn parse_holder(bytes: &[u8]) -> Option<String> {
    parse_pid(bytes).map(|pid| format!("pid {pid}"))
}

/// The pid at the start of a lock file (liblockfile writes `"<pid>\n"`;
/// pid 0, which dotlockfile writes without `-p`, means none).
fn parse_pid(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes.get(..bytes.len().min(64))?).ok()?;
    let pid: u32 = text.split_whitespace().next()?.parse().ok()?;
    (pid != 0).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Staleness = Staleness {
        after: Duration::from_secs(300),
        pid_check: true,
    };

    /// Writes a lock file another program left, last touched `age` ago.
    fn foreign_lock(path: &Path, content: &[u8], age: Duration) {
        std::fs::write(path, content).unwrap();
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }

    fn deadline(ms: u64) -> (Instant, Instant) {
        let now = Instant::now();
        (now + Duration::from_millis(ms), now)
    }

    #[test]
    fn parse_holder_table() {
        let table: &[(&[u8], Option<&str>)] = &[
            (b"1234\n", Some("pid 1234")),
            (b"  77 host\n", Some("pid 77")),
            (b"0\n", None),
            (b"", None),
            (b"\xff\xfe", None),
            (b"abc", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_holder(input).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn unique_names_fit_and_differ() {
        let long = PathBuf::from(format!("/x/{}.lock", "m".repeat(240)));
        let a = unique_path(&long);
        let b = unique_path(&long);
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().len() <= NAME_MAX, "{a:?}");
        assert!(a.to_str().unwrap().starts_with(long.to_str().unwrap()));
    }

    #[test]
    fn acquire_writes_pid_and_release_removes() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox"); // need not exist
        let mut notices = vec![];
        let (d, s) = deadline(1000);
        let lock = Dotlock::acquire(&mbox, d, s, STALE, &mut notices).unwrap();
        let content = std::fs::read_to_string(lock_path(&mbox)).unwrap();
        assert_eq!(content, format!("{}\n", std::process::id()));
        // Only the lock file is left: the unique name is gone.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("inbox.lock")]);
        lock.refresh().unwrap();
        lock.release().unwrap();
        assert!(!lock_path(&mbox).exists());
        assert!(notices.is_empty());
    }

    #[test]
    fn held_lock_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        // pid 1 always runs: the holder is alive (kill answers 0 or EPERM).
        std::fs::write(lock_path(&mbox), b"1\n").unwrap();
        let (d, s) = deadline(60);
        let err = Dotlock::acquire(&mbox, d, s, STALE, &mut vec![]).unwrap_err();
        match err {
            Error::LockTimeout {
                kind, holder, path, ..
            } => {
                assert_eq!(kind, "dotlock");
                assert_eq!(holder.as_deref(), Some("pid 1"));
                assert_eq!(path, lock_path(&mbox));
            }
            other => panic!("{other:?}"),
        }
        // The foreign lock is untouched and no unique file is left over.
        assert_eq!(std::fs::read(lock_path(&mbox)).unwrap(), b"1\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_lock_is_taken_over_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let lp = lock_path(&mbox);
        foreign_lock(&lp, b"999999\n", Duration::from_secs(3600));
        let mut notices = vec![];
        let (d, s) = deadline(1000);
        let lock = Dotlock::acquire(&mbox, d, s, STALE, &mut notices).unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains("stale") && notices[0].contains("pid 999999"),
            "{}",
            notices[0]
        );
        assert_eq!(
            std::fs::read_to_string(&lp).unwrap(),
            format!("{}\n", std::process::id())
        );
        lock.release().unwrap();
    }

    #[test]
    fn fresh_lock_is_not_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        std::fs::write(lock_path(&mbox), b"").unwrap();
        let (d, s) = deadline(30);
        let mut notices = vec![];
        let err = Dotlock::acquire(&mbox, d, s, STALE, &mut notices).unwrap_err();
        assert!(
            matches!(err, Error::LockTimeout { holder: None, .. }),
            "{err}"
        );
        assert!(notices.is_empty());
    }

    #[test]
    fn release_leaves_a_lock_that_is_no_longer_ours() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let (d, s) = deadline(1000);
        let lock = Dotlock::acquire(&mbox, d, s, STALE, &mut vec![]).unwrap();
        // Another program wrongly took it over and holds its own now.
        std::fs::remove_file(lock_path(&mbox)).unwrap();
        std::fs::write(lock_path(&mbox), b"1\n").unwrap();
        assert!(lock.release().is_err());
        assert_eq!(std::fs::read(lock_path(&mbox)).unwrap(), b"1\n");
    }

    #[test]
    fn unwritable_directory_is_a_clear_temporary_error() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("missing-dir").join("inbox");
        let (d, s) = deadline(100);
        let err = Dotlock::acquire(&mbox, d, s, STALE, &mut vec![]).unwrap_err();
        assert!(err.is_temporary());
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    /// A pid that names no process: one past the highest the kernel hands
    /// out, or, failing that, a child that has been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn judge_table() {
        use Liveness::*;
        use PidScope::*;
        let young = Duration::from_secs(10);
        let old = Duration::from_secs(3600);
        let off = Staleness {
            pid_check: false,
            ..STALE
        };
        // (pid, scope, age, staleness, liveness, verdict)
        type Row = (
            Option<u32>,
            PidScope,
            Duration,
            Staleness,
            Liveness,
            Verdict,
        );
        let table: &[Row] = &[
            // A local pid decides, whatever the age.
            (Some(7), Local, young, STALE, Dead, Verdict::DeadHolder(7)),
            (Some(7), Local, old, STALE, Alive, Verdict::Respect),
            (Some(7), Local, young, STALE, Alive, Verdict::Respect),
            // Nothing learned from kill: the age rule.
            (Some(7), Local, young, STALE, Unknown, Verdict::Respect),
            (Some(7), Local, old, STALE, Unknown, Verdict::TooOld),
            // No pid: the age rule.
            (None, Local, young, STALE, Dead, Verdict::Respect),
            (None, Local, old, STALE, Dead, Verdict::TooOld),
            // A network or FUSE filesystem: a pid means nothing.
            (Some(7), Shared, young, STALE, Dead, Verdict::Respect),
            (Some(7), Shared, old, STALE, Alive, Verdict::TooOld),
            // The check turned off (holders in another PID namespace).
            (Some(7), Local, young, off, Dead, Verdict::Respect),
            (Some(7), Local, old, off, Alive, Verdict::TooOld),
        ];
        for &(pid, scope, age, stale, live, want) in table {
            let got = judge(pid, scope, age, stale, |_| live);
            assert_eq!(got, want, "{pid:?} {scope:?} {age:?} {stale:?} {live:?}");
        }
    }

    #[test]
    fn filesystem_types_table() {
        let table: &[(u32, PidScope)] = &[
            (0xEF53, PidScope::Local),       // ext4
            (0x0102_1994, PidScope::Local),  // tmpfs
            (0x5846_5342, PidScope::Local),  // xfs
            (0x9123_683E, PidScope::Local),  // btrfs
            (0x6969, PidScope::Shared),      // NFS
            (0xFF53_4D42, PidScope::Shared), // CIFS
            (0xFE53_4D42, PidScope::Shared), // SMB2
            (0x6573_5546, PidScope::Shared), // FUSE
            (0x00C3_6400, PidScope::Shared), // Ceph
        ];
        for &(magic, want) in table {
            assert_eq!(PidScope::of_magic(magic), want, "{magic:#x}");
        }
        // This test's own directory is local.
        let dir = tempfile::tempdir().unwrap();
        let magic = sys::fs_magic(dir.path()).unwrap();
        assert_ne!(magic, 0);
    }

    #[test]
    fn liveness_of_real_processes() {
        assert_eq!(sys::liveness(std::process::id()), Liveness::Alive);
        assert_eq!(sys::liveness(1), Liveness::Alive);
        assert_eq!(sys::liveness(dead_pid()), Liveness::Dead);
        assert_eq!(sys::liveness(u32::MAX), Liveness::Unknown);
    }

    #[test]
    fn lock_of_a_dead_holder_is_taken_over_at_once_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let lp = lock_path(&mbox);
        let pid = dead_pid();
        std::fs::write(&lp, format!("{pid}\n")).unwrap(); // fresh mtime
        let mut notices = vec![];
        let (d, s) = deadline(50);
        let lock = Dotlock::acquire(&mbox, d, s, STALE, &mut notices).unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains(&format!("pid {pid}, which is not running")),
            "{}",
            notices[0]
        );
        assert_eq!(
            std::fs::read_to_string(&lp).unwrap(),
            format!("{}\n", std::process::id())
        );
        lock.release().unwrap();
        // Nothing left aside.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn old_lock_of_a_live_holder_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let lp = lock_path(&mbox);
        foreign_lock(&lp, b"1\n", Duration::from_secs(3600));
        let (d, s) = deadline(50);
        let mut notices = vec![];
        let err = Dotlock::acquire(&mbox, d, s, STALE, &mut notices).unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(std::fs::read(&lp).unwrap(), b"1\n");
    }

    #[test]
    fn without_the_pid_check_a_dead_holder_waits_for_the_age_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("inbox");
        let lp = lock_path(&mbox);
        std::fs::write(&lp, format!("{}\n", dead_pid())).unwrap();
        let off = Staleness {
            pid_check: false,
            ..STALE
        };
        let (d, s) = deadline(50);
        let err = Dotlock::acquire(&mbox, d, s, off, &mut vec![]).unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    }
}
