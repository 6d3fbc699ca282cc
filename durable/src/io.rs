//! The I/O seam: every operation whose order decides durability goes through
//! [`Io`], so that tests can record it, inject faults into it, and rebuild the
//! state a power cut would leave (see [`crate::sim`]).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use crate::sys;

/// The durable-write operations. Production code uses [`RealIo`]; tests use
/// [`crate::sim::Recorder`], which performs the same real operations and
/// records them.
pub trait Io: Send + Sync + 'static {
    /// Creates a new file (`O_EXCL`) with `mode`; fails with `AlreadyExists`.
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<File>;
    /// Writes all of `buf` to `file` (which was opened for `path`).
    fn write_all(&self, file: &mut File, path: &Path, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`: after it returns, the bytes written so far survive power loss.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Rename that never replaces an existing `to` (EEXIST instead).
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `rename(2)`: atomically replaces `to` if it exists (readers see the
    /// old file or the new one, never neither). For files that are rewritten
    /// in place under a lock: a spool `-H`, `maildirsize`, a cache.
    fn rename_replace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync` of a directory: its entries survive power loss.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// `syncfs(2)` of the filesystem holding `path`: every file's data and
    /// every directory entry on it survive power loss. Only for a filesystem
    /// dedicated to the caller (it flushes everyone else's writes too).
    fn syncfs(&self, path: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Cuts `file` back to `len` bytes (used to undo a failed mbox append).
    fn truncate(&self, file: &File, path: &Path, len: u64) -> io::Result<()>;
    /// Step 2 of a commit batch: [`Io::rename_noreplace`] of a staged file
    /// to its place, for the batch numbered `batch` (each batch has a
    /// number of its own in the process). Returns the directory the file
    /// went into as this `Io` resolved it, for step 3. An implementation may
    /// resolve the directory of `to` once per batch ([`crate::DirIo`]).
    fn publish(&self, from: &Path, to: &Path, _batch: u64) -> io::Result<DirHandle> {
        self.rename_noreplace(from, to)?;
        Ok(DirHandle::default())
    }
    /// Step 3 of a commit batch: [`Io::sync_dir`] of `dir`, which received
    /// files in step 2; `at` is what [`Io::publish`] returned for them, so
    /// that the directory synced is the one the entries went into.
    fn sync_published(&self, dir: &Path, _at: &DirHandle) -> io::Result<()> {
        self.sync_dir(dir)
    }
    /// Takes back a file [`Io::publish`] put at `path` (its batch failed):
    /// removed from the directory it went into, `at`.
    fn unpublish(&self, path: &Path, _at: &DirHandle) -> io::Result<()> {
        self.remove_file(path)
    }
    /// A hint that `file` is complete and will be synced soon: start writing
    /// it back now. Promises nothing; errors are ignored.
    fn start_writeback(&self, _file: &File, _path: &Path) {}
}

/// The directory a file was published into: an open descriptor when the
/// [`Io`] keeps one ([`crate::DirIo`]), none when it goes by path.
#[derive(Debug, Clone, Default)]
pub struct DirHandle(pub(crate) Option<Arc<OwnedFd>>);

impl DirHandle {
    /// A number equal for the same open directory (0 for none), to tell
    /// handles apart in a set.
    pub(crate) fn key(&self) -> usize {
        self.0.as_ref().map_or(0, |fd| Arc::as_ptr(fd) as usize)
    }

    /// Whether two handles are the same open directory (or both none).
    pub fn same(&self, other: &DirHandle) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealIo;

impl Io for RealIo {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<File> {
        sys::create_new(path, mode)
    }
    fn write_all(&self, file: &mut File, _path: &Path, buf: &[u8]) -> io::Result<()> {
        file.write_all(buf)
    }
    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        sys::sync_data(file)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        sys::rename_noreplace(from, to)
    }
    fn rename_replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sys::sync_dir(dir)
    }
    fn syncfs(&self, path: &Path) -> io::Result<()> {
        sys::syncfs(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn truncate(&self, file: &File, _path: &Path, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
    fn start_writeback(&self, file: &File, _path: &Path) {
        let _ = sys::start_writeback(file);
    }
}
