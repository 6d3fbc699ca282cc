//! Recording, fault injection and power-cut simulation for the I/O seam.
//!
//! `kill -9` leaves the page cache intact, so it cannot show a missing sync.
//! [`Recorder`] performs every operation for real and keeps a log of it; a
//! test then asks [`Recorder::power_cut`] for the state a power failure would
//! leave after any prefix of that log, under the most pessimistic model a
//! POSIX filesystem allows (ext4 with delayed allocation comes close):
//!
//! - a file's bytes survive only up to its last `fdatasync`;
//! - a directory entry (create, rename, unlink) survives only once its
//!   directory has been `fsync`ed afterwards; until then the directory shows
//!   the entries it had at its last sync.
//!
//! A test checks its invariants (everything acknowledged is there and whole,
//! nothing partial is visible) on the state at every cut point.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::io::{DirHandle, Io, RealIo};

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Create(PathBuf),
    Write(PathBuf, u64),
    SyncData(PathBuf),
    Rename(PathBuf, PathBuf),
    SyncDir(PathBuf),
    /// `syncfs`: everything written and every entry so far is durable.
    SyncFs(PathBuf),
    Remove(PathBuf),
    Truncate(PathBuf, u64),
    /// A label the test sets, e.g. when the code under test reported success.
    Mark(String),
}

/// Which operation a fault is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Write,
    SyncData,
    /// Both kinds of rename: without and with replacing.
    Rename,
    SyncDir,
    Remove,
}

#[derive(Default)]
struct State {
    log: Vec<Event>,
    counts: HashMap<Op, usize>,
    /// (op, n): the n-th (0-based) call of `op` fails with EIO.
    faults: Vec<(Op, usize)>,
    /// Directory syncs of these directories are silently skipped (to prove a
    /// test notices a missing sync).
    skip_sync_dirs: Vec<PathBuf>,
    /// Every data sync is silently skipped.
    skip_sync_data: bool,
}

/// An [`Io`] that performs real operations and records them.
pub struct Recorder {
    state: Mutex<State>,
    /// What performs the operations.
    inner: Arc<dyn Io>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::over(Arc::new(RealIo))
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the operations `inner` performs (e.g. a [`crate::DirIo`],
    /// the daemon's).
    pub fn over(inner: Arc<dyn Io>) -> Self {
        Recorder {
            state: Mutex::default(),
            inner,
        }
    }

    /// Makes the `nth` (0-based) call of `op` fail with EIO.
    pub fn fail(&self, op: Op, nth: usize) {
        self.lock().faults.push((op, nth));
    }

    /// Makes every sync of `dir` a silent no-op.
    pub fn skip_sync_dir(&self, dir: impl Into<PathBuf>) {
        self.lock().skip_sync_dirs.push(dir.into());
    }

    /// Makes every data sync a silent no-op.
    pub fn skip_sync_data(&self) {
        self.lock().skip_sync_data = true;
    }

    /// Records a label in the log (e.g. `"ack <name>"` once a call succeeded).
    pub fn mark(&self, label: impl Into<String>) {
        self.lock().log.push(Event::Mark(label.into()));
    }

    /// A copy of the log so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().log.clone()
    }

    /// Indices at which a power cut is interesting: after each sync, each mark,
    /// and at the end of the log.
    pub fn cut_points(&self) -> Vec<usize> {
        let log = &self.lock().log;
        let mut points: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Event::SyncData(_) | Event::SyncDir(_) | Event::SyncFs(_) | Event::Mark(_)
                )
            })
            .map(|(i, _)| i + 1)
            .collect();
        points.push(log.len());
        points.dedup();
        points
    }

    /// The state a power cut after the first `n` events would leave.
    pub fn power_cut(&self, n: usize) -> PowerCut {
        let log = &self.lock().log;
        PowerCut::replay(&log[..n.min(log.len())])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the call, records `event` and says whether it must fail.
    fn enter(&self, op: Op, event: Event) -> io::Result<()> {
        let mut st = self.lock();
        let n = st.counts.entry(op).or_insert(0);
        let nth = *n;
        *n += 1;
        if st.faults.contains(&(op, nth)) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        st.log.push(event);
        Ok(())
    }

    /// Counts a call whose event is logged only once it succeeded (renames
    /// and removals: a failed one changes nothing) and says whether it must
    /// fail.
    fn count_fault(&self, op: Op) -> io::Result<()> {
        let mut st = self.lock();
        let n = st.counts.entry(op).or_insert(0);
        let nth = *n;
        *n += 1;
        if st.faults.contains(&(op, nth)) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }

    /// Logs an operation that succeeded (one whose failure changes
    /// nothing, so that only a success is replayed).
    fn record(&self, event: Event) {
        self.lock().log.push(event);
    }

    /// A rename of any kind (`op` performs it): counted for faults, logged
    /// once it succeeded.
    fn renamed<T>(
        &self,
        from: &Path,
        to: &Path,
        op: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        self.count_fault(Op::Rename)?;
        let done = op()?;
        self.record(Event::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(done)
    }

    /// A removal (`op` performs it), as [`Recorder::renamed`].
    fn removed(&self, path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.count_fault(Op::Remove)?;
        op()?;
        self.record(Event::Remove(path.to_path_buf()));
        Ok(())
    }

    /// A directory sync (`op` performs it), skipped for the directories a
    /// test names, logged once it succeeded.
    fn synced_dir(&self, dir: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if self.skipped_dir(dir) {
            return Ok(());
        }
        op()?;
        self.enter(Op::SyncDir, Event::SyncDir(dir.to_path_buf()))
    }

    fn skipped_dir(&self, dir: &Path) -> bool {
        self.lock().skip_sync_dirs.iter().any(|d| d == dir)
    }
}

impl Io for Recorder {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<File> {
        let file = self.inner.create_new(path, mode)?;
        if let Err(e) = self.enter(Op::Create, Event::Create(path.to_path_buf())) {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(file)
    }
    fn write_all(&self, file: &mut File, path: &Path, buf: &[u8]) -> io::Result<()> {
        self.enter(
            Op::Write,
            Event::Write(path.to_path_buf(), buf.len() as u64),
        )?;
        self.inner.write_all(file, path, buf)
    }
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        if self.lock().skip_sync_data {
            return Ok(());
        }
        self.inner.sync_data(file, path)?;
        self.enter(Op::SyncData, Event::SyncData(path.to_path_buf()))
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.renamed(from, to, || self.inner.rename_noreplace(from, to))
    }
    fn rename_replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        // Replayed as a rename whose target entry, if any, is replaced.
        self.renamed(from, to, || self.inner.rename_replace(from, to))
    }
    fn syncfs(&self, path: &Path) -> io::Result<()> {
        if self.lock().skip_sync_data {
            return Ok(());
        }
        self.inner.syncfs(path)?;
        self.enter(Op::SyncData, Event::SyncFs(path.to_path_buf()))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.synced_dir(dir, || self.inner.sync_dir(dir))
    }
    fn publish(&self, from: &Path, to: &Path, batch: u64) -> io::Result<DirHandle> {
        self.renamed(from, to, || self.inner.publish(from, to, batch))
    }
    fn sync_published(&self, dir: &Path, at: &DirHandle) -> io::Result<()> {
        self.synced_dir(dir, || self.inner.sync_published(dir, at))
    }
    fn unpublish(&self, path: &Path, at: &DirHandle) -> io::Result<()> {
        self.removed(path, || self.inner.unpublish(path, at))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.removed(path, || self.inner.remove_file(path))
    }
    fn truncate(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.inner.truncate(file, path, len)?;
        self.record(Event::Truncate(path.to_path_buf(), len));
        Ok(())
    }
}

/// What a file looks like after the simulated power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileImage {
    /// Bytes written before the cut.
    pub written: u64,
    /// Bytes that survive the cut (written and covered by a data sync).
    pub durable: u64,
}

impl FileImage {
    /// All written bytes survived.
    pub fn is_whole(&self) -> bool {
        self.durable == self.written
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Inode {
    written: u64,
    durable: u64,
}

/// The files that survive a simulated power cut.
#[derive(Debug, Default)]
pub struct PowerCut {
    /// Visible path → its surviving image.
    pub files: BTreeMap<PathBuf, FileImage>,
    /// Every mark recorded before the cut, in order.
    pub marks: Vec<String>,
}

impl PowerCut {
    fn replay(events: &[Event]) -> PowerCut {
        let mut inodes: Vec<Inode> = Vec::new();
        // Live and durable directory entries: dir → (name → inode).
        let mut live: HashMap<PathBuf, BTreeMap<PathBuf, usize>> = HashMap::new();
        let mut durable: HashMap<PathBuf, BTreeMap<PathBuf, usize>> = HashMap::new();
        let mut marks = Vec::new();
        let lookup = |live: &HashMap<PathBuf, BTreeMap<PathBuf, usize>>, p: &Path| {
            live.get(parent(p)).and_then(|d| d.get(p)).copied()
        };
        for ev in events {
            match ev {
                Event::Create(p) => {
                    inodes.push(Inode::default());
                    live.entry(parent(p).to_path_buf())
                        .or_default()
                        .insert(p.clone(), inodes.len() - 1);
                }
                Event::Write(p, n) => {
                    if let Some(i) = lookup(&live, p) {
                        inodes[i].written += n;
                    }
                }
                Event::Truncate(p, len) => {
                    if let Some(i) = lookup(&live, p) {
                        inodes[i].written = *len;
                        inodes[i].durable = inodes[i].durable.min(*len);
                    }
                }
                Event::SyncData(p) => {
                    if let Some(i) = lookup(&live, p) {
                        inodes[i].durable = inodes[i].written;
                    }
                }
                Event::Rename(from, to) => {
                    let ino = live.get_mut(parent(from)).and_then(|d| d.remove(from));
                    if let Some(i) = ino {
                        live.entry(parent(to).to_path_buf())
                            .or_default()
                            .insert(to.clone(), i);
                    }
                }
                Event::Remove(p) => {
                    if let Some(d) = live.get_mut(parent(p)) {
                        d.remove(p);
                    }
                }
                Event::SyncDir(dir) => {
                    let entries = live.get(dir.as_path()).cloned().unwrap_or_default();
                    durable.insert(dir.clone(), entries);
                }
                Event::SyncFs(_) => {
                    // The recorder sees one filesystem: all of it is flushed.
                    for ino in &mut inodes {
                        ino.durable = ino.written;
                    }
                    durable = live.clone();
                }
                Event::Mark(m) => marks.push(m.clone()),
            }
        }
        let mut files = BTreeMap::new();
        for entries in durable.values() {
            for (path, &i) in entries {
                let ino = inodes[i];
                files.insert(
                    path.clone(),
                    FileImage {
                        written: ino.written,
                        durable: ino.durable,
                    },
                );
            }
        }
        PowerCut { files, marks }
    }

    /// The surviving files directly inside `dir`.
    pub fn files_in<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl Iterator<Item = (&'a PathBuf, &'a FileImage)> {
        self.files.iter().filter(move |(p, _)| parent(p) == dir)
    }
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_rename_and_data_are_lost() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        let new = dir.path().join("new");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::create_dir(&new).unwrap();
        let rec = Recorder::new();
        let a = tmp.join("a");
        let mut f = rec.create_new(&a, 0o600).unwrap();
        rec.write_all(&mut f, &a, b"hello").unwrap();
        let n_before_sync = rec.events().len();
        rec.sync_data(&f, &a).unwrap();
        rec.rename_noreplace(&a, &new.join("a")).unwrap();
        let n_before_dirsync = rec.events().len();
        rec.sync_dir(&new).unwrap();

        // Before the data sync: nothing visible anywhere (tmp never synced).
        assert!(rec.power_cut(n_before_sync).files.is_empty());
        // Renamed but new/ not synced: the message is not there.
        assert!(rec.power_cut(n_before_dirsync).files.is_empty());
        // After the directory sync: there and whole.
        let cut = rec.power_cut(rec.events().len());
        let img = cut.files.get(&new.join("a")).copied().unwrap();
        assert_eq!(
            img,
            FileImage {
                written: 5,
                durable: 5
            }
        );
    }

    #[test]
    fn rename_made_durable_before_data_leaves_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let mut f = rec.create_new(&a, 0o600).unwrap();
        rec.write_all(&mut f, &a, b"xyz").unwrap();
        rec.rename_noreplace(&a, &b).unwrap();
        rec.sync_dir(dir.path()).unwrap();
        let cut = rec.power_cut(rec.events().len());
        assert!(!cut.files[&b].is_whole());
    }

    #[test]
    fn injected_fault_fails_the_nth_call() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        rec.fail(Op::SyncData, 1);
        let a = dir.path().join("a");
        let f = rec.create_new(&a, 0o600).unwrap();
        rec.sync_data(&f, &a).unwrap();
        assert_eq!(rec.sync_data(&f, &a).unwrap_err().raw_os_error(), Some(5));
        rec.sync_data(&f, &a).unwrap();
    }
}
