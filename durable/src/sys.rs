//! The syscalls behind durable writes, in one place (rustix; one libc call
//! that rustix does not wrap).

use std::fs::{File, OpenOptions};
use std::io;
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
