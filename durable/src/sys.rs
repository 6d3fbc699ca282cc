//! The syscalls behind durable writes and the locks both the spool and the
//! mailboxes take, in one place (rustix; libc for what rustix does not wrap:
//! open-file-description locks).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
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
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(&fd).map_err(io::Error::from)
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
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            rustix::fs::linkat(CWD, from, CWD, to, AtFlags::empty())?;
            rustix::fs::unlink(from).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
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
