//! The syscalls behind durable writes and the locks both the spool and the
//! mailboxes take, in one place (rustix; libc for what rustix does not wrap:
//! open-file-description locks).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt; // std opens with O_CLOEXEC
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Mode, OFlags, RenameFlags};

/// Creates `path` with `O_CREAT | O_EXCL`, write-only, with `mode`.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// `fdatasync(2)`: the file's data and the metadata needed to read it back.
pub fn sync_data(file: &File) -> io::Result<()> {
    rustix::fs::fdatasync(file).map_err(io::Error::from)
}

/// `fsync(2)` on a directory: makes its entries (creates, renames, unlinks) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    sync_fd(open_dir(dir)?)
}

/// `syncfs(2)` on the filesystem holding `path`.
pub fn syncfs(path: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::DIRECTORY,
        Mode::empty(),
    )?;
    rustix::fs::syncfs(&fd).map_err(io::Error::from)
}

/// Moves `from` to `to` without ever replacing an existing `to`.
///
/// `renameat2(RENAME_NOREPLACE)` where the filesystem has it; where it answers
/// EINVAL or ENOSYS (some network and FUSE filesystems), `link()` + `unlink()`,
/// which refuses an existing target the same way (EEXIST). Plain `rename()` is
/// never used: it silently replaces a file of the same name.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    rename_noreplace_at(CWD, from, CWD, to)
}

/// [`rename_noreplace`] with `from` resolved relative to the directory
/// `from_dir` and `to` relative to `to_dir` (either may be [`CWD`]).
///
/// On the link fallback, a `link()` answering EEXIST is not taken at its
/// word: over NFS a retransmitted request whose first reply was lost
/// reports EEXIST for the link it made itself. If `to` is the very inode
/// `from` names, the link was made and only the unlink is left.
pub fn rename_noreplace_at<A: AsFd, B: AsFd>(
    from_dir: A,
    from: &Path,
    to_dir: B,
    to: &Path,
) -> io::Result<()> {
    let (from_dir, to_dir) = (from_dir.as_fd(), to_dir.as_fd());
    match rustix::fs::renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            link_then_unlink(from_dir, from, to_dir, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// The fallback of [`rename_noreplace_at`]: `link()` then `unlink()`.
fn link_then_unlink(
    from_dir: BorrowedFd<'_>,
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to: &Path,
) -> io::Result<()> {
    match rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty()) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::EXIST && same_file(from_dir, from, to_dir, to) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::unlinkat(from_dir, from, AtFlags::empty()).map_err(io::Error::from)
}

/// Whether two names are two links to one inode (false if either cannot
/// be read). Two links: the same entry reached twice (a `new/` that is a
/// symbolic link to `tmp/`) has one, and unlinking it would lose the file.
fn same_file(a_dir: BorrowedFd<'_>, a: &Path, b_dir: BorrowedFd<'_>, b: &Path) -> bool {
    let flags = AtFlags::SYMLINK_NOFOLLOW;
    match (
        rustix::fs::statat(a_dir, a, flags),
        rustix::fs::statat(b_dir, b, flags),
    ) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino && x.st_nlink >= 2,
        _ => false,
    }
}

/// Opens a directory for use as the base of `*at` calls and for `fsync`.
pub fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// The device and inode numbers of what `path` names, following symbolic
/// links.
pub fn identity(path: &Path) -> io::Result<(u64, u64)> {
    let st = rustix::fs::stat(path)?;
    Ok((st.st_dev, st.st_ino))
}

/// The device and inode numbers of an open descriptor.
pub fn fd_identity(fd: impl AsFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Removes the entry `name` of the directory `dir`.
pub fn unlink_at(dir: impl AsFd, name: &Path) -> io::Result<()> {
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(io::Error::from)
}

/// `fsync(2)` of an open descriptor (a directory's, for its entries).
pub fn sync_fd(fd: impl AsFd) -> io::Result<()> {
    rustix::fs::fsync(fd).map_err(io::Error::from)
}

/// Starts writeback of `file`'s dirty pages without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). A hint, not a barrier: it
/// lets the disk work while the rest of a batch is still being written, so
/// the batch's `fdatasync` calls find most pages already on their way.
pub fn start_writeback(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the descriptor number, which is
    // valid for as long as `file` is borrowed; offset 0 and length 0 mean
    // "the whole file". It touches no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------
// Open-file-description locks
// ---------------------------------------------------------------------------

fn whole_file_flock(l_type: libc::c_int) -> libc::flock {
    // SAFETY: `libc::flock` is a plain C struct of integers; all-zero is a
    // valid value (and F_OFD_* require l_pid == 0).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // 0 = to the end of the file, however long it grows
    fl.l_pid = 0;
    fl
}

fn fcntl_flock(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_fd().as_raw_fd();
    // SAFETY: `fd` is an open descriptor borrowed from `file` for the whole
    // call; `fl` is a valid, exclusively borrowed `struct flock`, which is
    // what F_OFD_SETLK / F_OFD_GETLK read and (for GETLK) write.
    let rc = unsafe { libc::fcntl(fd, cmd, fl as *mut libc::flock) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn lock_type(exclusive: bool) -> libc::c_int {
    if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    }
}

/// Tries to take a whole-file open-file-description lock (`F_OFD_SETLK`),
/// shared or `exclusive`, without waiting. `Ok(false)`: someone else holds a
/// conflicting lock.
///
/// OFD locks belong to the open file description, not the process, so two
/// threads with their own descriptors exclude each other, and closing some
/// other descriptor of the same file does not drop the lock (both are wrong
/// with classic fcntl locks). They conflict with classic `fcntl`/`lockf`
/// locks of other processes (Exim, Postfix, Dovecot, procmail, Python's
/// `fcntl.lockf`). The lock ends when the description is closed, including
/// when the process dies. The spool's message locks and the mailbox locks
/// both use it.
pub fn ofd_try_lock(file: &File, exclusive: bool) -> io::Result<bool> {
    let mut fl = whole_file_flock(lock_type(exclusive));
    match fcntl_flock(file, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases an open-file-description lock.
pub fn ofd_unlock(file: &File) -> io::Result<()> {
    let mut fl = whole_file_flock(libc::F_UNLCK);
    fcntl_flock(file, libc::F_OFD_SETLK, &mut fl)
}

/// Who holds a lock conflicting with a shared or `exclusive` one: `Some(pid)` for a classic lock,
/// `Some(-1)` for another open-file-description lock (the kernel does not
/// say whose), `None` when nothing conflicts now.
pub fn ofd_holder(file: &File, exclusive: bool) -> io::Result<Option<i32>> {
    let mut fl = whole_file_flock(lock_type(exclusive));
    fcntl_flock(file, libc::F_OFD_GETLK, &mut fl)?;
    if fl.l_type as libc::c_int == libc::F_UNLCK {
        Ok(None)
    } else {
        Ok(Some(fl.l_pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_fallback_refuses_another_file_but_finishes_its_own_link() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("staged"), b"new").unwrap();
        std::fs::write(dir.path().join("taken"), b"old").unwrap();
        let e = link_then_unlink(
            d.as_fd(),
            Path::new("staged"),
            d.as_fd(),
            Path::new("taken"),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"old");
        assert!(dir.path().join("staged").exists());
        // The link made by a request whose reply was lost: EEXIST, but the
        // target is the staged file itself, so only the unlink is left.
        std::fs::hard_link(dir.path().join("staged"), dir.path().join("dest")).unwrap();
        link_then_unlink(d.as_fd(), Path::new("staged"), d.as_fd(), Path::new("dest")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dest")).unwrap(), b"new");
        assert!(!dir.path().join("staged").exists());
        // One entry reached twice (a `new/` that is a link to `tmp/`) is
        // not a finished link: it stays, and the answer is EEXIST.
        let e = link_then_unlink(d.as_fd(), Path::new("dest"), d.as_fd(), Path::new("dest"))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(dir.path().join("dest").exists());
    }

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
        assert!(ofd_try_lock(&a, true).unwrap());
        // Same process, other open file: refused (a classic lock would be
        // granted here).
        assert!(!ofd_try_lock(&b, true).unwrap());
        // Taking it again on the same description is fine.
        assert!(ofd_try_lock(&a, true).unwrap());
        drop(a);
        assert!(ofd_try_lock(&b, true).unwrap());
    }
}
