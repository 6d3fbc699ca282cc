//! Directory handles for the commit path.
//!
//! The directories a commit batch publishes into (a Maildir's `new/`, the
//! spool's message directory) are opened once and kept, so that a batch
//! renames into them relative to the descriptor (`renameat2`) and syncs the
//! descriptor (`fsync`), instead of resolving the whole path for every file
//! and opening and closing the directory again for every sync.
//!
//! A kept descriptor follows its directory wherever it is moved, but the
//! path is what the configuration means. So the first use of a handle in
//! each batch checks that the path still names the directory the handle
//! holds (a `stat` of the path against the device and inode taken when it
//! was opened) and opens the path again if not: from the first batch that
//! begins after an administrator moves a Maildir aside, nothing more is
//! published into it (a batch already under way may still finish its
//! renames there, as renames by path racing with the move would). The
//! `stat` alone suffices: the open descriptor holds the inode, which cannot
//! be freed and reused while it is open, so a path resolving to the same
//! device and inode names that same directory, still linked.
//!
//! A batch checks a handle once (a batch flushing at the same time may
//! check it again), and step 3 syncs, and a failed batch unlinks from, the
//! very handles step 2 renamed into ([`DirHandle`]), so the directory
//! synced is the one that received the entries even if the path moved in
//! between.
//!
//! Everything else (creating staged files, removals, replacing renames,
//! directory syncs outside a batch) goes by path, as [`RealIo`] does. A
//! handle is checked once per batch only, so a file created through it
//! between two batches could land in a directory moved aside since.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{DirHandle, Io, RealIo};
use crate::sys;

/// How many directories a [`DirIo`] keeps open by default: enough for the
/// Maildirs a busy host's batches touch, far below a daemon's descriptor
/// limit.
pub const DEFAULT_KEPT: usize = 256;

/// The real filesystem, with the directories commit batches publish into
/// kept open (see the module's text).
pub struct DirIo {
    handles: Mutex<HashMap<PathBuf, Kept>>,
    limit: usize,
}

struct Kept {
    fd: Arc<OwnedFd>,
    /// Device and inode of the directory when it was opened.
    id: (u64, u64),
    /// The batch that last checked (and used) it.
    checked: u64,
}

impl Default for DirIo {
    fn default() -> Self {
        DirIo::new(DEFAULT_KEPT)
    }
}

impl DirIo {
    /// Keeps at most `limit` directories open (at least one); past that,
    /// the one a batch used longest ago is closed.
    pub fn new(limit: usize) -> DirIo {
        DirIo {
            handles: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    /// How many directories are open now.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Kept>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle of `dir` for batch `batch`: kept and already checked in
    /// this batch, kept and still what the path names, or opened now.
    ///
    /// An entry is marked checked by `batch` only by a thread of that batch
    /// that opened or checked that very descriptor (another thread may have
    /// replaced the entry meanwhile), so a handle a batch takes unchecked
    /// was resolved from the path after the batch began.
    fn handle(&self, dir: &Path, batch: u64) -> io::Result<Arc<OwnedFd>> {
        let known = self
            .lock()
            .get(dir)
            .map(|k| (k.fd.clone(), k.id, k.checked));
        if let Some((fd, id, checked)) = known {
            if checked == batch {
                return Ok(fd);
            }
            // The check runs outside the lock: flushes of other batches
            // (`durability = "strict"` flushes on each caller's thread) go
            // on meanwhile.
            let now = sys::identity(dir);
            let mut handles = self.lock();
            let ours = handles.get(dir).is_some_and(|k| Arc::ptr_eq(&k.fd, &fd));
            match now {
                Ok(now) if now == id => {
                    if let Some(k) = handles.get_mut(dir).filter(|_| ours) {
                        k.checked = batch;
                    }
                    return Ok(fd);
                }
                // Another directory at the path now (opened below), or
                // none: either way this descriptor is done with.
                now => {
                    if ours {
                        handles.remove(dir);
                    }
                    now?;
                }
            }
        }
        let fd = Arc::new(sys::open_dir(dir)?);
        let id = sys::fd_identity(&*fd)?;
        let mut handles = self.lock();
        if handles.len() >= self.limit && !handles.contains_key(dir) {
            let oldest = handles
                .iter()
                .min_by_key(|(_, k)| k.checked)
                .map(|(p, _)| p.clone());
            if let Some(p) = oldest {
                handles.remove(&p);
            }
        }
        // Replacing an entry another thread put in meanwhile is harmless:
        // whichever is stale carries an older batch's mark and is checked
        // again before a later batch uses it.
        handles.insert(
            dir.to_path_buf(),
            Kept {
                fd: fd.clone(),
                id,
                checked: batch,
            },
        );
        Ok(fd)
    }
}

/// The directory part and the name of a path to publish to.
fn split(to: &Path) -> io::Result<(&Path, &Path)> {
    match (to.parent(), to.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            Ok((dir, Path::new(name)))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name to publish to", to.display()),
        )),
    }
}

impl Io for DirIo {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<File> {
        RealIo.create_new(path, mode)
    }
    fn write_all(&self, file: &mut File, path: &Path, buf: &[u8]) -> io::Result<()> {
        RealIo.write_all(file, path, buf)
    }
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        RealIo.sync_data(file, path)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename_noreplace(from, to)
    }
    fn rename_replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename_replace(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn syncfs(&self, path: &Path) -> io::Result<()> {
        RealIo.syncfs(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealIo.remove_file(path)
    }
    fn truncate(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        RealIo.truncate(file, path, len)
    }
    fn start_writeback(&self, file: &File, path: &Path) {
        RealIo.start_writeback(file, path)
    }
    fn publish(&self, from: &Path, to: &Path, batch: u64) -> io::Result<DirHandle> {
        let (dir, name) = split(to)?;
        let fd = self.handle(dir, batch)?;
        sys::rename_noreplace_at(rustix::fs::CWD, from, &*fd, name)?;
        Ok(DirHandle(Some(fd)))
    }
    fn sync_published(&self, dir: &Path, at: &DirHandle) -> io::Result<()> {
        match &at.0 {
            Some(fd) => sys::sync_fd(&**fd),
            None => RealIo.sync_dir(dir),
        }
    }
    fn unpublish(&self, path: &Path, at: &DirHandle) -> io::Result<()> {
        match &at.0 {
            Some(fd) => {
                let (_, name) = split(path)?;
                sys::unlink_at(&**fd, name)
            }
            None => RealIo.remove_file(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join("tmp").join(name);
        std::fs::write(&p, name).unwrap();
        p
    }

    fn maildir(root: &Path) -> PathBuf {
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(root.join("new")).unwrap();
        root.to_path_buf()
    }

    #[test]
    fn publishes_relative_to_a_kept_directory_and_syncs_it() {
        let t = tempfile::tempdir().unwrap();
        let md = maildir(&t.path().join("md"));
        let io = DirIo::default();
        let a = io.publish(&staged(&md, "a"), &md.join("new/a"), 1).unwrap();
        let b = io.publish(&staged(&md, "b"), &md.join("new/b"), 2).unwrap();
        assert!(a.same(&b), "the second batch reuses the kept handle");
        assert_eq!(io.kept(), 1);
        io.sync_published(&md.join("new"), &b).unwrap();
        assert!(md.join("new/a").exists() && md.join("new/b").exists());
        // Never replaces.
        let e = io
            .publish(&staged(&md, "a"), &md.join("new/a"), 3)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(md.join("new/a")).unwrap(), b"a");
    }

    #[test]
    fn a_directory_moved_aside_gets_nothing_in_the_next_batch() {
        let t = tempfile::tempdir().unwrap();
        let md = maildir(&t.path().join("md"));
        let io = DirIo::default();
        let first = io
            .publish(&staged(&md, "one"), &md.join("new/one"), 1)
            .unwrap();
        // Staged before the move: the file moves with its Maildir, and a
        // publish by the old path finds nothing (as a rename by path would).
        let early = staged(&md, "early");
        std::fs::rename(&md, t.path().join("md.old")).unwrap();
        let e = io.publish(&early, &md.join("new/early"), 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // A new Maildir at the path: the next batch opens it afresh.
        maildir(&md);
        let second = io
            .publish(&staged(&md, "two"), &md.join("new/two"), 3)
            .unwrap();
        assert!(!first.same(&second));
        assert!(md.join("new/two").exists());
        assert!(!t.path().join("md.old/new/two").exists());
        assert!(t.path().join("md.old/new/one").exists());
        assert_eq!(io.kept(), 1);
    }

    #[test]
    fn within_a_batch_the_handle_is_not_checked_again() {
        let t = tempfile::tempdir().unwrap();
        let md = maildir(&t.path().join("md"));
        let io = DirIo::default();
        let first = io
            .publish(&staged(&md, "one"), &md.join("new/one"), 7)
            .unwrap();
        // The directory is swapped for another within batch 7: the batch
        // keeps renaming into (and would sync) the directory it started
        // with, so what it syncs is what received its entries.
        let other = t.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let new_path = md.join("new");
        std::fs::rename(&new_path, md.join("new.moved")).unwrap();
        std::fs::rename(&other, &new_path).unwrap();
        let again = io
            .publish(&staged(&md, "two"), &md.join("new/two"), 7)
            .unwrap();
        assert!(first.same(&again));
        assert!(md.join("new.moved/two").exists());
        io.sync_published(&new_path, &again).unwrap();
        // The next batch notices.
        let next = io
            .publish(&staged(&md, "three"), &md.join("new/three"), 8)
            .unwrap();
        assert!(!first.same(&next));
        assert!(md.join("new/three").exists());
    }

    #[test]
    fn a_stale_entry_left_by_an_earlier_batch_is_checked_before_use() {
        let t = tempfile::tempdir().unwrap();
        let md = maildir(&t.path().join("md"));
        let new = md.join("new");
        let stale = Arc::new(sys::open_dir(&new).unwrap());
        let stale_id = sys::fd_identity(&*stale).unwrap();
        std::fs::rename(&new, md.join("new.old")).unwrap();
        std::fs::create_dir(&new).unwrap();
        let io = DirIo::default();
        io.publish(&staged(&md, "a"), &new.join("a"), 6).unwrap();
        // A flush of batch 4 that opened the old directory before the move
        // puts its handle in last.
        io.lock().insert(
            new.clone(),
            Kept {
                fd: stale,
                id: stale_id,
                checked: 4,
            },
        );
        io.publish(&staged(&md, "b"), &new.join("b"), 7).unwrap();
        assert!(new.join("b").exists());
        assert!(!md.join("new.old/b").exists());
        assert_eq!(io.kept(), 1);
    }

    #[test]
    fn a_failed_batch_takes_back_the_entry_it_made_where_it_made_it() {
        let t = tempfile::tempdir().unwrap();
        let md = maildir(&t.path().join("md"));
        let io = DirIo::default();
        let at = io.publish(&staged(&md, "a"), &md.join("new/a"), 1).unwrap();
        // The path now names another directory holding a file of the same
        // name: the undo must not touch it.
        std::fs::rename(md.join("new"), md.join("new.moved")).unwrap();
        std::fs::create_dir(md.join("new")).unwrap();
        std::fs::write(md.join("new/a"), b"someone else's").unwrap();
        io.unpublish(&md.join("new/a"), &at).unwrap();
        assert!(!md.join("new.moved/a").exists());
        assert_eq!(std::fs::read(md.join("new/a")).unwrap(), b"someone else's");
    }

    #[test]
    fn keeps_at_most_its_limit_closing_the_longest_unused() {
        let t = tempfile::tempdir().unwrap();
        let io = DirIo::new(2);
        let mds: Vec<PathBuf> = (0..3)
            .map(|i| maildir(&t.path().join(format!("md{i}"))))
            .collect();
        io.publish(&staged(&mds[0], "a"), &mds[0].join("new/a"), 1)
            .unwrap();
        io.publish(&staged(&mds[1], "a"), &mds[1].join("new/a"), 2)
            .unwrap();
        io.publish(&staged(&mds[0], "b"), &mds[0].join("new/b"), 3)
            .unwrap();
        io.publish(&staged(&mds[2], "a"), &mds[2].join("new/a"), 4)
            .unwrap();
        assert_eq!(io.kept(), 2);
        let kept: Vec<PathBuf> = io.lock().keys().cloned().collect();
        assert!(kept.contains(&mds[0].join("new")));
        assert!(kept.contains(&mds[2].join("new")));
    }

    #[test]
    fn a_missing_directory_is_an_error_and_not_kept() {
        let t = tempfile::tempdir().unwrap();
        let md = maildir(&t.path().join("md"));
        let io = DirIo::default();
        let e = io
            .publish(&staged(&md, "a"), &t.path().join("nowhere/a"), 1)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(io.kept(), 0);
        assert!(md.join("tmp/a").exists(), "the staged file stays");
    }
}
