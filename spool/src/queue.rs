//! The queue: entering messages durably, reading, listing, counting,
//! cleaning up.
//!
//! Entering a message ([`Queue::enter`], or [`Queue::draft`] /
//! [`Queue::stage`] then [`Queue::submit`]) is one [`durable::Job`] of two
//! files committed through the shared [`Committer`]:
//!
//! | step                                              | a crash here leaves                        |
//! |---------------------------------------------------|--------------------------------------------|
//! | write `<ID>-D.tmp` (first line `<ID>-D`, body)    | a temporary file (garbage)                 |
//! | write `<ID>-H.tmp` (envelope, headers)            | temporary files (garbage)                  |
//! | data barrier: `fdatasync` both                    | temporary files (garbage)                  |
//! | rename `-D.tmp` → `-D` (no replace)               | a lone `-D` (garbage: no `-H`)             |
//! | rename `-H.tmp` → `-H` (no replace): **commit**   | the message, whole; maybe lost on power cut|
//! | directory barrier: `fsync` of `input/<c>/`        | the message, durable: now acknowledged     |
//!
//! Readers look only at `-H` names, so nothing partial is ever visible; the
//! `-D` is in place before its `-H` appears. [`Queue::clean_garbage`]
//! removes what crashed entries leave, once it is old enough not to belong
//! to an entry still running. With [`Durability::Batch`] concurrent entries
//! share the two barriers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use durable::{BatchOptions, CommitError, Committer, Durability, Io, Job, RealIo, Staged, Ticket};

use crate::count;
use crate::error::{Error, Result};
use crate::header_file::{self, Envelope, Header, HeaderFile, RcptState, Timestamp};
use crate::id::{IdFormat, IdGenerator, MessageId};
use crate::journal;
use crate::layout::{self, Layout, SpoolFile};
use crate::sys;

/// Mode of spool files: the owner writes, the mail group may read (as
/// Exim's spool).
pub const FILE_MODE: u32 = 0o640;
/// Mode of spool directories.
pub const DIR_MODE: u32 = 0o750;
/// How many fresh IDs an entry tries when it finds its names taken (only
/// leftovers of a crashed process with a reused pid can take them).
const ID_ATTEMPTS: usize = 5;
/// Copy buffer for message bodies.
const CHUNK: usize = 64 * 1024;
/// Threads that scan the 62 subdirectories of a large queue.
const SCAN_THREADS: usize = 8;
/// Most IDs an unsorted listing holds at once (1.5 MB): a flat spool of a
/// million messages is listed in sorted chunks of this size.
pub const UNSORTED_CHUNK: usize = 65_536;
/// The first chunk of an unsorted listing (its time to first line).
const FIRST_UNSORTED_CHUNK: usize = 256;

/// How a queue is opened. Libraries take this, never the whole config.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// `split_spool_directory`: 62 subdirectories (default) or one flat one.
    pub split: bool,
    /// `message_id_format`: which form new IDs take.
    pub id_format: IdFormat,
    /// What a successful entry promises (see [`Durability`]).
    pub durability: Durability,
    /// Group-commit tuning for [`Durability::Batch`].
    pub batch: BatchOptions,
    /// The process part of new IDs; `None`: this process's id.
    pub pid: Option<u64>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            split: true,
            id_format: IdFormat::Long,
            durability: Durability::Batch,
            batch: BatchOptions::default(),
            pid: None,
        }
    }
}

/// A spool directory. Cheap to clone; clones share the committer.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    ids: IdGenerator,
    committer: Committer,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("root", &self.inner.layout.root())
            .field("split", &self.inner.layout.is_split())
            .field("durability", &self.durability())
            .finish()
    }
}

impl Queue {
    /// Opens the spool at `root` (creating `input/`, `msglog/` and their
    /// subdirectories as needed) on the real filesystem, with a committer
    /// of its own.
    pub fn open(root: &Path, opts: QueueOptions) -> Result<Queue> {
        Queue::open_with_io(root, opts, Arc::new(RealIo))
    }

    /// [`Queue::open`] through another I/O seam (the power-cut and fault
    /// tests pass a `durable::sim::Recorder`).
    pub fn open_with_io(root: &Path, opts: QueueOptions, io: Arc<dyn Io>) -> Result<Queue> {
        let committer = Committer::with_options(io, opts.durability, opts.batch.clone());
        Queue::with_committer(root, opts, committer)
    }

    /// Opens the spool publishing through `committer`, shared with Maildir
    /// deliveries so that both batch together. `opts.durability` and
    /// `opts.batch` are the committer's, not these.
    pub fn with_committer(root: &Path, opts: QueueOptions, committer: Committer) -> Result<Queue> {
        let layout = Layout::new(root, opts.split);
        create_dirs(committer.io(), &layout)?;
        let ids = match opts.pid {
            Some(pid) => IdGenerator::with_pid(opts.id_format, pid),
            None => IdGenerator::new(opts.id_format),
        };
        Ok(Queue {
            inner: Arc::new(Inner {
                layout,
                ids,
                committer,
            }),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    pub fn committer(&self) -> &Committer {
        &self.inner.committer
    }

    pub fn durability(&self) -> Durability {
        self.inner.committer.durability()
    }

    pub fn id_generator(&self) -> &IdGenerator {
        &self.inner.ids
    }

    /// Sleeps until no ID this process made can be made again by a later
    /// process with the same id. Call it before exiting (see [`crate::id`]).
    pub fn wait_before_exit(&self) {
        self.inner.ids.wait_before_exit();
    }

    pub(crate) fn io(&self) -> &dyn Io {
        self.inner.committer.io()
    }

    pub(crate) fn io_arc(&self) -> Arc<dyn Io> {
        self.inner.committer.io_arc()
    }

    pub(crate) fn syncs(&self) -> bool {
        self.durability() != Durability::None
    }

    // ----- entering -----

    /// Starts a message: takes a fresh ID (its time part is the arrival
    /// time) and creates the body file under a temporary name. Write the
    /// body with [`Draft::write`], then [`Draft::finish`] it. Blocking I/O.
    pub fn draft(&self) -> Result<Draft> {
        let mut last = None;
        for _ in 0..ID_ATTEMPTS {
            let id = self.inner.ids.next();
            match self.try_draft(id)? {
                Ok(draft) => return Ok(draft),
                Err(taken) => last = Some(taken),
            }
        }
        let path = last.unwrap_or_else(|| self.layout().input_root());
        Err(Error::io(
            "create",
            path,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("no free message ID after {ID_ATTEMPTS} attempts"),
            ),
        ))
    }

    /// A draft under a given ID: a message whose ID was recorded before it
    /// was written (a failure report's intent), written again after a
    /// crash. `Ok(None)` when a message with that ID is queued already. A
    /// temporary body file left by the crashed attempt is replaced.
    pub fn draft_with_id(&self, id: MessageId) -> Result<Option<Draft>> {
        let tmp = self.layout().temp(&id, 'D');
        match self.io().remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", tmp, e)),
        }
        Ok(self.try_draft(id)?.ok())
    }

    /// Whether message `id` is queued (its `-H` exists).
    pub fn contains(&self, id: &MessageId) -> Result<bool> {
        match self.locate(id) {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A draft under `id`, or `Err(path)` naming what holds the ID.
    fn try_draft(&self, id: MessageId) -> Result<std::result::Result<Draft, PathBuf>> {
        let layout = self.layout();
        let io = self.io();
        let (h, d) = (layout.header(&id), layout.data(&id));
        if sys::exists(&h).map_err(|e| Error::io("stat", &h, e))?
            || sys::exists(&d).map_err(|e| Error::io("stat", &d, e))?
        {
            return Ok(Err(h));
        }
        let tmp = layout.temp(&id, 'D');
        match Staged::create(io, tmp.clone(), FILE_MODE) {
            Ok(mut staged) => {
                let first = format!("{id}-D\n");
                if let Err(e) = staged.write(io, first.as_bytes()) {
                    staged.discard(io);
                    return Err(Error::io("write", tmp, e));
                }
                Ok(Ok(Draft {
                    queue: self.clone(),
                    id,
                    staged: Some(staged),
                    body_size: 0,
                    lines: 0,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Err(tmp)),
            Err(e) => Err(Error::io("create", tmp, e)),
        }
    }

    /// Writes a message (body from `body`) under temporary names. Nothing
    /// is visible until it is committed ([`Queue::submit`]). Blocking I/O:
    /// async callers run it in `spawn_blocking`.
    pub fn stage(
        &self,
        env: &Envelope,
        headers: &[Header],
        body: &mut dyn Read,
    ) -> Result<StagedMessage> {
        let mut draft = self.draft()?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read message body", "<input>", e)),
            };
            draft.write(&buf[..n])?;
        }
        draft.finish(env, headers)
    }

    /// Hands a staged message to the committer. With `Batch` this returns
    /// at once and the flush happens on the committer's thread; with
    /// `Strict` the flush happens here (so async callers call this inside
    /// `spawn_blocking` too, then await [`Entry::wait_async`]).
    pub fn submit(&self, staged: StagedMessage) -> Entry {
        Entry {
            id: staged.id,
            ticket: self.inner.committer.submit(staged.job),
        }
    }

    /// Submits and waits until the message is durable.
    pub fn commit(&self, staged: StagedMessage) -> Result<MessageId> {
        self.submit(staged).wait()
    }

    /// Queues a message: body from a slice, so that an ID found taken at
    /// the commit point can be replaced by a fresh one and the message
    /// written again. Returns once it is durable (per the durability).
    /// Blocking.
    pub fn enter(&self, env: &Envelope, headers: &[Header], body: &[u8]) -> Result<MessageId> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut draft = self.draft()?;
            draft.write(body)?;
            let staged = draft.finish(env, headers)?;
            match self.commit(staged) {
                Err(Error::Commit {
                    source: CommitError::Exists { .. },
                    ..
                }) if attempt < ID_ATTEMPTS => continue,
                r => return r,
            }
        }
    }

    // ----- reading -----

    /// Where the message's files are: the configured layout, or the other
    /// one (a spool whose `split` setting changed).
    pub fn locate(&self, id: &MessageId) -> Result<Layout> {
        let primary = self.layout();
        for l in [primary.clone(), primary.alternate()] {
            let h = l.header(id);
            if sys::exists(&h).map_err(|e| Error::io("stat", &h, e))? {
                return Ok(l);
            }
        }
        Err(Error::NotFound { id: id.to_string() })
    }

    /// The `-H` file of a message with its headers, journal merged.
    pub fn read(&self, id: &MessageId) -> Result<HeaderFile> {
        let l = self.locate(id)?;
        self.read_at(&l, id, true)
    }

    /// Reads from the configured layout, then from the other one (one
    /// open instead of a stat and an open: listings read every message).
    fn read_located(&self, id: &MessageId, with_headers: bool) -> Result<HeaderFile> {
        match self.read_at(self.layout(), id, with_headers) {
            Err(Error::NotFound { .. }) => {
                self.read_at(&self.layout().alternate(), id, with_headers)
            }
            r => r,
        }
    }

    pub(crate) fn read_at(
        &self,
        layout: &Layout,
        id: &MessageId,
        with_headers: bool,
    ) -> Result<HeaderFile> {
        let path = layout.header(id);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { id: id.to_string() });
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let mut hf = HeaderFile::parse(&path, &data, with_headers)?;
        if hf.id != *id {
            return Err(Error::format(
                &path,
                1,
                format!("first line names {}, expected {id}", hf.id),
            ));
        }
        let jpath = layout.journal(id);
        match fs::read(&jpath) {
            Ok(j) => {
                let (records, _torn) = journal::decode_all(&j);
                journal::apply(&mut hf.envelope, &records);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", jpath, e)),
        }
        Ok(hf)
    }

    /// The body of a message (the `-D` file after its first line), checked
    /// against the length its `-H` file records.
    pub fn body(&self, id: &MessageId) -> Result<Body> {
        let l = self.locate(id)?;
        let hf = self.read_at(&l, id, false)?;
        let path = l.data(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Torn {
                    path,
                    why: "the -D file is missing".into(),
                });
            }
            Err(e) => return Err(Error::io("open", path, e)),
        };
        Body::new(file, path, id, hf.envelope.body_size)
    }

    /// The raw `-H` file (what `-Mvh` prints).
    pub fn header_file_bytes(&self, id: &MessageId) -> Result<Vec<u8>> {
        let path = self.locate(id)?.header(id);
        fs::read(&path).map_err(|e| Error::io("read", path, e))
    }

    // ----- listing -----

    /// The number of messages: `-H` names in the input directories, found
    /// by scanning the subdirectories in parallel (no file is opened), or
    /// remembered for directories unchanged since the last count (see
    /// [`crate::count`]).
    pub fn count(&self) -> Result<u64> {
        let dirs = self.layout().input_dirs();
        let cache_path = self.root().join(count::CACHE_FILE);
        let cache = count::Cache::load(&cache_path);
        let results = scan_parallel(&dirs, |dir| {
            count::count_dir(dir, cache.entries.get(dir), |d| {
                let mut n = 0u64;
                sys::for_each_name(d, |name| {
                    if header_name_id(name).is_some() {
                        n += 1;
                    }
                })
                .map(|()| n)
            })
        })?;
        let mut fresh = count::Cache::default();
        let mut total = 0;
        for (dir, r) in dirs.iter().zip(results) {
            total += r.count;
            if let Some(entry) = r.remember {
                fresh.entries.insert(dir.clone(), entry);
            }
        }
        if fresh != cache {
            // A cache we cannot write (another user, a read-only spool)
            // only costs a full scan next time.
            let _ = fresh.save(self.io(), &cache_path);
        }
        Ok(total)
    }

    /// Every message ID, sorted by arrival. Memory grows with the number of
    /// IDs only (24 bytes each).
    pub fn ids(&self) -> Result<Vec<MessageId>> {
        let dirs = self.layout().input_dirs();
        let lists = scan_parallel(&dirs, |dir| {
            let mut v = Vec::new();
            sys::for_each_name(dir, |name| {
                if let Some(id) = header_name_id(name) {
                    v.push(id);
                }
            })
            .map(|()| v)
        })?;
        let mut all: Vec<MessageId> = lists.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Every message ID, one subdirectory at a time (each sorted by
    /// arrival, in chunks of at most [`UNSORTED_CHUNK`]), found lazily: the
    /// first comes at once and memory stays flat however long the queue is.
    pub fn ids_unsorted(&self) -> UnsortedIds {
        self.ids_in_chunks(UNSORTED_CHUNK)
    }

    fn ids_in_chunks(&self, max_chunk: usize) -> UnsortedIds {
        UnsortedIds {
            dirs: self.layout().input_dirs().into_iter(),
            current: None,
            chunk: Vec::new().into_iter(),
            chunk_size: FIRST_UNSORTED_CHUNK.min(max_chunk).max(1),
            max_chunk: max_chunk.max(1),
        }
    }

    /// The messages (envelopes without headers), sorted by arrival or, for
    /// a listing that must start at once, subdirectory by subdirectory
    /// (see [`Queue::ids_unsorted`]). A file that cannot be read or parsed
    /// comes as an error naming it, and the iteration goes on; a message
    /// removed while the listing runs is skipped.
    pub fn messages(&self, sorted: bool) -> Result<Messages> {
        let ids: Box<dyn Iterator<Item = Result<MessageId>> + Send> = if sorted {
            Box::new(self.ids()?.into_iter().map(Ok))
        } else {
            Box::new(self.ids_unsorted())
        };
        Ok(Messages {
            queue: self.clone(),
            ids,
        })
    }

    // ----- garbage -----

    /// Removes what interrupted entries and removals leave behind, once it
    /// is at least `min_age` old (so that an entry still writing is never
    /// touched): temporary files, `-D` and `-J` files without their `-H`, a
    /// lone `-H` (a removal half undone by a power cut, or an entry whose
    /// `-D` rename a power cut lost), message logs of messages that are
    /// gone. Returns what it removed.
    pub fn clean_garbage(&self, min_age: Duration) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for dir in self.layout().input_dirs() {
            let names = match list_names(&dir)? {
                Some(n) => n,
                None => continue,
            };
            let headers: std::collections::HashSet<MessageId> = names
                .iter()
                .filter_map(|n| match layout::classify(n) {
                    SpoolFile::Header(id) => Some(id),
                    _ => None,
                })
                .collect();
            let datas: std::collections::HashSet<MessageId> = names
                .iter()
                .filter_map(|n| match layout::classify(n) {
                    SpoolFile::Data(id) => Some(id),
                    _ => None,
                })
                .collect();
            for name in &names {
                let orphan = match layout::classify(name) {
                    SpoolFile::Temp(_) => true,
                    SpoolFile::Data(id) | SpoolFile::Journal(id) => !headers.contains(&id),
                    // Entry publishes -D before -H, so a lone -H is the rest
                    // of a removal that a power cut half undid (the unlinks
                    // of a delivered message are not flushed), or a -D an
                    // admin deleted: nothing is left to deliver either way.
                    SpoolFile::Header(id) => !datas.contains(&id),
                    _ => false,
                };
                if !orphan {
                    continue;
                }
                let path = dir.join(name);
                if self.remove_if_old(&path, min_age)? {
                    removed.push(path);
                }
            }
        }
        let mut msglog_dirs = vec![self.layout().msglog_root()];
        msglog_dirs.extend(
            Layout::subdir_names().map(|c| self.layout().msglog_root().join(c.to_string())),
        );
        for dir in msglog_dirs {
            let Some(names) = list_names(&dir)? else {
                continue;
            };
            for name in names {
                let Ok(id) = MessageId::parse(&name) else {
                    continue;
                };
                if matches!(self.locate(&id), Err(Error::NotFound { .. })) {
                    let path = dir.join(&name);
                    if self.remove_if_old(&path, min_age)? {
                        removed.push(path);
                    }
                }
            }
        }
        Ok(removed)
    }

    fn remove_if_old(&self, path: &Path, min_age: Duration) -> Result<bool> {
        let Some(age) = sys::age(path).map_err(|e| Error::io("stat", path, e))? else {
            return Ok(false);
        };
        if age < min_age {
            return Ok(false);
        }
        // A -D or -J whose -H appeared since the directory was read is no
        // garbage: look again right before removing.
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            match layout::classify(name) {
                SpoolFile::Data(id) | SpoolFile::Journal(id) if self.locate(&id).is_ok() => {
                    return Ok(false);
                }
                SpoolFile::Header(id) => {
                    let data = path.with_file_name(format!("{id}-D"));
                    if sys::exists(&data).map_err(|e| Error::io("stat", &data, e))? {
                        return Ok(false);
                    }
                }
                _ => {}
            }
        }
        match self.io().remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    // ----- message logs -----

    /// Where the message log of `id` is (or would be).
    pub fn msglog_path(&self, id: &MessageId) -> PathBuf {
        match self.locate(id) {
            Ok(l) => l.msglog(id),
            Err(_) => self.layout().msglog(id),
        }
    }

    /// Appends a line to the message's log (what `-Mvl` prints). The log
    /// is informational, as Exim's: it is not synced.
    pub fn append_msglog(&self, id: &MessageId, line: &str) -> Result<()> {
        let path = self.msglog_path(id);
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut text = line.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &path, e))
    }

    /// The message's log, `None` when it has none yet.
    pub fn msglog(&self, id: &MessageId) -> Result<Option<Vec<u8>>> {
        self.locate(id)?;
        let path = self.msglog_path(id);
        match fs::read(&path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    // ----- administration (-Mf, -Mt, -Mrm) -----

    /// Freezes a message (no deliveries until thawed). `Ok(false)` when it
    /// was frozen already.
    pub fn freeze(&self, id: &MessageId) -> Result<bool> {
        let mut d = self.begin_delivery(id)?;
        d.freeze()
    }

    /// Thaws a message. `Ok(false)` when it was not frozen.
    pub fn thaw(&self, id: &MessageId) -> Result<bool> {
        let mut d = self.begin_delivery(id)?;
        d.thaw()
    }

    /// Removes a message whatever its state (`-Mrm`). Fails with
    /// [`Error::Locked`] while it is being delivered.
    pub fn remove(&self, id: &MessageId) -> Result<()> {
        self.begin_delivery(id)?.remove()
    }
}

/// The ID of an `<ID>-H` name, checked as carefully as everywhere else (a
/// count and a listing must agree), without allocating.
fn header_name_id(name: &[u8]) -> Option<MessageId> {
    let stem = name.strip_suffix(b"-H")?;
    if stem.len() != crate::id::LONG_LEN && stem.len() != crate::id::CLASSIC_LEN {
        return None;
    }
    MessageId::parse(std::str::from_utf8(stem).ok()?).ok()
}

/// The names in `dir` (without `.` and `..`), `None` when it does not exist.
fn list_names(dir: &Path) -> Result<Option<Vec<String>>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io("read directory", dir, e))?;
        if let Ok(n) = e.file_name().into_string() {
            v.push(n);
        }
    }
    Ok(Some(v))
}

/// Runs `f` on every directory with up to [`SCAN_THREADS`] threads, each
/// taking the next directory when it is done with one.
fn scan_parallel<T: Send>(
    dirs: &[PathBuf],
    f: impl Fn(&Path) -> io::Result<T> + Sync,
) -> Result<Vec<T>> {
    let results = durable::parallel::map(dirs, SCAN_THREADS, |dir| {
        f(dir).map_err(|e| Error::io("read directory", dir, e))
    })
    .ok_or_else(|| {
        Error::io(
            "read directory",
            dirs.first().cloned().unwrap_or_default(),
            io::Error::other("a directory scan thread panicked"),
        )
    })?;
    results.into_iter().collect()
}

/// Creates the spool's directories, making every new one durable.
fn create_dirs(io: &dyn Io, layout: &Layout) -> Result<()> {
    let mut dirs = vec![
        layout.root().to_path_buf(),
        layout.input_root(),
        layout.msglog_root(),
    ];
    if layout.is_split() {
        for c in Layout::subdir_names() {
            dirs.push(layout.input_root().join(c.to_string()));
            dirs.push(layout.msglog_root().join(c.to_string()));
        }
    }
    if dirs.iter().all(|d| d.is_dir()) {
        return Ok(());
    }
    let mut created: Vec<PathBuf> = Vec::new();
    for d in &dirs {
        if d.is_dir() {
            continue;
        }
        // Parents first (the root may be several levels deep).
        let mut missing = Vec::new();
        let mut p = d.as_path();
        while !p.as_os_str().is_empty() && !p.is_dir() {
            missing.push(p.to_path_buf());
            p = match p.parent() {
                Some(pp) => pp,
                None => break,
            };
        }
        for m in missing.into_iter().rev() {
            match fs::DirBuilder::new().mode(DIR_MODE).create(&m) {
                Ok(()) => created.push(m),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && m.is_dir() => {}
                Err(e) => return Err(Error::io("create directory", m, e)),
            }
        }
    }
    let mut parents: Vec<&Path> = created.iter().filter_map(|p| p.parent()).collect();
    parents.sort();
    parents.dedup();
    for p in parents {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        io.sync_dir(p)
            .map_err(|e| Error::io("fsync directory", p, e))?;
    }
    Ok(())
}

/// A message being written: its ID is taken and its body file exists under
/// a temporary name. Dropping it removes the file.
pub struct Draft {
    queue: Queue,
    id: MessageId,
    staged: Option<Staged>,
    body_size: u64,
    lines: u64,
}

impl Draft {
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Appends body bytes (LF line ends, as Exim's spool; no dot-stuffing).
    pub fn write(&mut self, buf: &[u8]) -> Result<()> {
        let io = self.queue.io();
        let Some(staged) = self.staged.as_mut() else {
            return Err(Error::io(
                "write",
                self.queue.layout().temp(&self.id, 'D'),
                io::Error::other("the draft was already finished"),
            ));
        };
        staged
            .write(io, buf)
            .map_err(|e| Error::io("write", staged.tmp().to_path_buf(), e))?;
        self.body_size += buf.len() as u64;
        self.lines += buf.iter().filter(|&&c| c == b'\n').count() as u64;
        Ok(())
    }

    /// Bytes of body written so far.
    pub fn body_size(&self) -> u64 {
        self.body_size
    }

    /// Writes the `-H` file under its temporary name and returns the pair,
    /// ready to commit. The envelope's arrival time, body size and line
    /// count are set here (the arrival time from the ID).
    pub fn finish(self, env: &Envelope, headers: &[Header]) -> Result<StagedMessage> {
        self.finish_with_intents(env, headers, &[])
    }

    /// [`finish`](Self::finish), with the recipients `in_flight` recorded
    /// as started in a `-J` file published with the message (`-D`, `-J`,
    /// `-H`): for copies the caller makes itself and publishes in the same
    /// commit, after these files. Until the caller records their outcome,
    /// a delivery of the message looks for those copies by name
    /// ([`MessageId::delivery_name`]) before making them again, as after a
    /// crash.
    pub fn finish_with_intents(
        mut self,
        env: &Envelope,
        headers: &[Header],
        in_flight: &[usize],
    ) -> Result<StagedMessage> {
        let io = self.queue.io();
        let id = self.id;
        let Some(data) = self.staged.take() else {
            return Err(Error::io(
                "write",
                self.queue.layout().temp(&id, 'D'),
                io::Error::other("the draft was already finished"),
            ));
        };
        if env.recipients.is_empty() {
            data.discard(io);
            return Err(Error::BadEnvelope {
                why: "no recipients".into(),
            });
        }
        if let Some(&i) = in_flight.iter().find(|&&i| i >= env.recipients.len()) {
            data.discard(io);
            return Err(Error::NoRecipient {
                id,
                index: i,
                count: env.recipients.len(),
            });
        }
        let mut env = env.clone();
        env.arrival = Timestamp::of_id(&id);
        env.body_size = Some(self.body_size);
        env.body_linecount = self.lines;
        let bytes = match header_file::render(&id, &env, headers) {
            Ok(b) => b,
            Err(e) => {
                data.discard(io);
                return Err(e);
            }
        };
        let layout = self.queue.layout();
        let header = match stage_file(io, &layout.temp(&id, 'H'), &bytes) {
            Ok(h) => h,
            Err(e) => {
                data.discard(io);
                return Err(e);
            }
        };
        let mut job = Job::new();
        job.add(data, layout.data(&id));
        if !in_flight.is_empty() {
            let since = Timestamp::now().secs;
            let mut records = Vec::new();
            for &i in in_flight {
                records.extend(journal::Record::state(i, RcptState::InFlight { since }).encode());
            }
            let tmp = layout.temp(&id, 'J');
            match stage_file(io, &tmp, &records) {
                Ok(j) => job.add(j, layout.journal(&id)),
                Err(e) => {
                    header.discard(io);
                    job.discard(io);
                    return Err(e);
                }
            };
        }
        // The -H last: its appearance is the commit point.
        job.add(header, layout.header(&id));
        Ok(StagedMessage { id, job })
    }
}

/// A new file at `tmp` holding `bytes`, not yet synced.
fn stage_file(io: &dyn Io, tmp: &Path, bytes: &[u8]) -> Result<Staged> {
    let mut staged = match Staged::create(io, tmp.to_path_buf(), FILE_MODE) {
        // A leftover of a crashed entry with the same ID: its -D.tmp was
        // free, so this one is garbage as well.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = io.remove_file(tmp);
            Staged::create(io, tmp.to_path_buf(), FILE_MODE)
        }
        r => r,
    }
    .map_err(|e| Error::io("create", tmp, e))?;
    if let Err(e) = staged.write(io, bytes) {
        staged.discard(io);
        return Err(Error::io("write", tmp, e));
    }
    Ok(staged)
}

impl Drop for Draft {
    fn drop(&mut self) {
        if let Some(s) = self.staged.take() {
            s.discard(self.queue.io());
        }
    }
}

/// A message written under temporary names, ready for the committer.
#[derive(Debug)]
pub struct StagedMessage {
    id: MessageId,
    job: Job,
}

impl StagedMessage {
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The commit job (`-D` then `-H`), for a caller that drives a
    /// committer itself.
    pub fn into_job(self) -> Job {
        self.job
    }

    /// Removes the temporary files.
    pub fn discard(self, io: &dyn Io) {
        self.job.discard(io);
    }
}

/// A submitted message and the ticket that tells when it is durable.
pub struct Entry {
    id: MessageId,
    ticket: Ticket,
}

impl Entry {
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Blocks until the message is durable (or failed: then nothing of it
    /// is visible, and the error is temporary).
    pub fn wait(self) -> Result<MessageId> {
        let id = self.id;
        self.ticket
            .wait()
            .map(|()| id)
            .map_err(|source| Error::Commit { id, source })
    }

    /// [`Entry::wait`] for async tasks: never blocks the executor.
    pub async fn wait_async(self) -> Result<MessageId> {
        let id = self.id;
        self.ticket
            .wait_async()
            .await
            .map(|()| id)
            .map_err(|source| Error::Commit { id, source })
    }
}

/// The body of a queued message: reads the `-D` file from after its first
/// line, by position (it never moves a shared file offset).
#[derive(Debug)]
pub struct Body {
    file: File,
    path: PathBuf,
    pos: u64,
    end: u64,
    len: u64,
}

impl Body {
    /// Checks `file` (the `-D` of `id`, at `path`): its first line and its
    /// length against `body_size` from the `-H` file.
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        id: &MessageId,
        body_size: Option<u64>,
    ) -> Result<Body> {
        let mut head = [0u8; crate::id::LONG_LEN + 3];
        let n = read_at_most(&file, &mut head, 0).map_err(|e| Error::io("read", &path, e))?;
        let offset = header_file::data_body_offset(&path, id, &head[..n])?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        let found = len.saturating_sub(offset);
        // A file Exim wrote records no size: its -D is taken as it is.
        let body_size = body_size.unwrap_or(found);
        if found != body_size {
            return Err(Error::Torn {
                path,
                why: format!("{found} bytes of body, the -H file says {body_size}"),
            });
        }
        Ok(Body {
            file,
            path,
            pos: offset,
            end: len,
            len: body_size,
        })
    }

    /// Bytes of body.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole body in memory.
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len as usize);
        let path = self.path.clone();
        self.read_to_end(&mut v)
            .map_err(|e| Error::io("read", path, e))?;
        Ok(v)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_at_most(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Message IDs subdirectory by subdirectory, read lazily (see
/// [`Queue::ids_unsorted`]).
pub struct UnsortedIds {
    dirs: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, fs::ReadDir)>,
    chunk: std::vec::IntoIter<MessageId>,
    /// The size of the next chunk: small at first, so that the first line
    /// comes after a few hundred entries, then doubling up to the limit.
    chunk_size: usize,
    max_chunk: usize,
}

impl UnsortedIds {
    /// Reads up to [`UNSORTED_CHUNK`] IDs of the current directory.
    fn fill(&mut self) -> Option<Result<()>> {
        let (dir, rd) = self.current.as_mut()?;
        let mut ids = Vec::new();
        let mut failure = None;
        while ids.len() < self.chunk_size {
            match rd.next() {
                Some(Ok(e)) => {
                    if let Some(n) = e.file_name().to_str()
                        && let SpoolFile::Header(id) = layout::classify(n)
                    {
                        ids.push(id);
                    }
                }
                Some(Err(e)) => {
                    failure = Some(Error::io("read directory", dir.clone(), e));
                    break;
                }
                None => break,
            }
        }
        if failure.is_some() || ids.len() < self.chunk_size {
            self.current = None;
        }
        self.chunk_size = (self.chunk_size * 2).min(self.max_chunk);
        // Arrival order is also (nearly) inode order: the -H files are then
        // read in the order they lie on disk, not in hash order.
        ids.sort_unstable();
        self.chunk = ids.into_iter();
        Some(failure.map_or(Ok(()), Err))
    }
}

impl Iterator for UnsortedIds {
    type Item = Result<MessageId>;

    fn next(&mut self) -> Option<Result<MessageId>> {
        loop {
            if let Some(id) = self.chunk.next() {
                return Some(Ok(id));
            }
            match self.fill() {
                Some(Ok(())) => continue,
                Some(Err(e)) => return Some(Err(e)),
                None => {}
            }
            let dir = self.dirs.next()?;
            match fs::read_dir(&dir) {
                Ok(rd) => self.current = Some((dir, rd)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Some(Err(Error::io("read directory", dir, e))),
            }
        }
    }
}

/// Queued messages (see [`Queue::messages`]).
pub struct Messages {
    queue: Queue,
    ids: Box<dyn Iterator<Item = Result<MessageId>> + Send>,
}

impl Iterator for Messages {
    type Item = Result<HeaderFile>;

    fn next(&mut self) -> Option<Result<HeaderFile>> {
        loop {
            let id = match self.ids.next()? {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
            let r = self.queue.read_located(&id, false);
            match r {
                // Delivered and removed since the directory was read.
                Err(Error::NotFound { .. }) => continue,
                r => return Some(r),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_file::RcptState;

    /// A message Exim queued (its -H records no body size) is read and
    /// locked for delivery, its -D taken as it is.
    #[test]
    fn a_message_exim_queued_is_readable_and_deliverable() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(
            dir.path(),
            QueueOptions {
                split: false,
                ..Default::default()
            },
        )
        .unwrap();
        let id = MessageId::parse("1cEEet-0001Cv-Jo").unwrap();
        let input = dir.path().join("input");
        fs::write(
            input.join(format!("{id}-H")),
            format!(
                "{id}-H\nmailnull 47 12\n<fr@example.com>\n1481026543 0\n\
                 -received_protocol esmtp\n-body_linecount 2\nXX\n1\na@example.net\n\n\
                 015F From: fr@x.com\n"
            ),
        )
        .unwrap();
        fs::write(
            input.join(format!("{id}-D")),
            format!("{id}-D\nline 1\nline 2\n"),
        )
        .unwrap();
        let hf = q.read(&id).unwrap();
        assert_eq!(hf.envelope.body_size, None);
        assert_eq!(
            q.body(&id).unwrap().read_all().unwrap(),
            b"line 1\nline 2\n"
        );
        let d = q.begin_delivery(&id).unwrap();
        assert_eq!(d.envelope().recipients.len(), 1);
    }

    fn env() -> Envelope {
        let mut e = Envelope::new(
            "alice@example.org",
            &["bob@example.net", "carol@example.com"],
        );
        e.protocol = Some("local".into());
        e
    }

    fn open(dir: &Path, d: Durability, split: bool) -> Queue {
        Queue::open(
            dir,
            QueueOptions {
                durability: d,
                split,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn enter_read_list_count_remove() {
        for split in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let q = open(dir.path(), Durability::Strict, split);
            assert_eq!(q.count().unwrap(), 0);
            let headers = vec![Header::new("Subject: one\n"), Header::new("From: alice\n")];
            let id = q.enter(&env(), &headers, b"hello\nworld\n").unwrap();
            assert!(q.layout().header(&id).exists());
            let hf = q.read(&id).unwrap();
            assert_eq!(hf.headers, headers);
            assert_eq!(hf.envelope.body_size, Some(12));
            assert_eq!(hf.envelope.body_linecount, 2);
            assert_eq!(hf.envelope.arrival, Timestamp::of_id(&id));
            assert_eq!(hf.size(), 12 + 13 + 12);
            assert_eq!(q.body(&id).unwrap().read_all().unwrap(), b"hello\nworld\n");
            let raw = fs::read(q.layout().data(&id)).unwrap();
            assert!(raw.starts_with(format!("{id}-D\n").as_bytes()));

            let id2 = q.enter(&env(), &[], b"").unwrap();
            assert_eq!(q.count().unwrap(), 2);
            assert_eq!(q.ids().unwrap(), vec![id, id2]);
            let mut un: Vec<MessageId> = q.ids_unsorted().map(|r| r.unwrap()).collect();
            un.sort();
            assert_eq!(un, vec![id, id2]);
            let listed: Vec<MessageId> = q.messages(true).unwrap().map(|m| m.unwrap().id).collect();
            assert_eq!(listed, vec![id, id2]);

            q.remove(&id).unwrap();
            assert!(matches!(q.read(&id), Err(Error::NotFound { .. })));
            assert!(matches!(q.remove(&id), Err(Error::NotFound { .. })));
            assert_eq!(q.count().unwrap(), 1);
            // Nothing but id2's two files is left in the input directory.
            let left: usize = q
                .layout()
                .input_dirs()
                .iter()
                .filter_map(|d| fs::read_dir(d).ok())
                .flatten()
                .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
                .count();
            assert_eq!(left, 2);
        }
    }

    /// Intents published with the message: the recipients show as in
    /// flight until their outcome is recorded; an index past the
    /// recipients is refused and leaves nothing behind.
    #[test]
    fn intents_are_published_with_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), Durability::Strict, true);
        let mut draft = q.draft().unwrap();
        draft.write(b"body\n").unwrap();
        let staged = draft.finish_with_intents(&env(), &[], &[1]).unwrap();
        let id = q.commit(staged).unwrap();
        assert!(q.layout().journal(&id).exists());
        let mut d = q.begin_delivery(&id).unwrap();
        assert_eq!(d.in_flight(), vec![1]);
        assert_eq!(d.envelope().recipients[0].state, RcptState::Pending);
        d.record_unsynced(&[(1, crate::locked::RcptOutcome::Delivered)])
            .unwrap();
        drop(d);
        let d = q.begin_delivery(&id).unwrap();
        assert!(d.in_flight().is_empty());
        assert!(matches!(
            d.envelope().recipients[1].state,
            RcptState::Delivered { .. }
        ));
        drop(d);

        let mut draft = q.draft().unwrap();
        let bad = draft.id();
        draft.write(b"body\n").unwrap();
        assert!(matches!(
            draft.finish_with_intents(&env(), &[], &[2]),
            Err(Error::NoRecipient { index: 2, .. })
        ));
        let dirs = q.layout().input_dirs();
        let left: Vec<_> = dirs
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flatten()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(bad.as_str()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn remembered_counts_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), Durability::Strict, true);
        let ids: Vec<MessageId> = (0..3)
            .map(|_| q.enter(&env(), &[], b"x\n").unwrap())
            .collect();
        // Make every directory look quiet, so that its count is kept.
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        for d in q.layout().input_dirs() {
            File::open(&d).unwrap().set_modified(old).unwrap();
        }
        assert_eq!(q.count().unwrap(), 3);
        let cache = fs::read_to_string(dir.path().join(count::CACHE_FILE)).unwrap();
        assert_eq!(cache.lines().count(), 63, "{cache}");
        assert_eq!(q.count().unwrap(), 3);
        q.remove(&ids[1]).unwrap();
        assert_eq!(q.count().unwrap(), 2);
        q.enter(&env(), &[], b"y\n").unwrap();
        assert_eq!(q.count().unwrap(), 3);
        // A damaged cache is ignored.
        fs::write(dir.path().join(count::CACHE_FILE), b"1 2 3 999 /nope\nzz").unwrap();
        assert_eq!(q.count().unwrap(), 3);
    }

    #[test]
    fn unsorted_ids_come_in_sorted_chunks_and_each_once() {
        let dir = tempfile::tempdir().unwrap();
        // Flat: every message in one directory, so chunks matter.
        let q = open(dir.path(), Durability::None, false);
        let mut want: Vec<MessageId> = (0..10)
            .map(|_| q.enter(&env(), &[], b"x\n").unwrap())
            .collect();
        want.sort();
        for size in [1, 3, 10, 11] {
            let got: Vec<MessageId> = q.ids_in_chunks(size).map(|r| r.unwrap()).collect();
            // Chunks never exceed `size`; with 10 or more, one sorted run.
            if size >= 10 {
                assert_eq!(got, want, "size {size}");
            }
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, want, "size {size}");
        }
    }

    #[test]
    fn no_recipients_and_bad_addresses_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), Durability::Strict, true);
        let mut e = env();
        e.recipients.clear();
        let err = q.enter(&e, &[], b"x\n").unwrap_err();
        assert!(matches!(err, Error::BadEnvelope { .. }) && !err.is_temporary());
        let mut e = env();
        e.recipients[0].address = "x\r\n@y".into();
        assert!(matches!(
            q.enter(&e, &[], b"x\n"),
            Err(Error::BadEnvelope { .. })
        ));
        assert!(q.clean_garbage(Duration::ZERO).unwrap().is_empty());
        assert_eq!(q.count().unwrap(), 0);
    }

    #[test]
    fn drafts_stream_and_drop_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), Durability::Batch, true);
        let mut d = q.draft().unwrap();
        d.write(b"part one\n").unwrap();
        d.write(b"part two\n").unwrap();
        let tmp = q.layout().temp(&d.id(), 'D');
        assert!(tmp.exists());
        drop(d);
        assert!(!tmp.exists());
        let mut d = q.draft().unwrap();
        d.write(b"a\n").unwrap();
        let staged = d.finish(&env(), &[]).unwrap();
        let id = q.submit(staged).wait().unwrap();
        assert_eq!(q.body(&id).unwrap().read_all().unwrap(), b"a\n");
    }

    #[test]
    fn garbage_is_cleaned_by_age_and_messages_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), Durability::None, true);
        let id = q.enter(&env(), &[], b"keep\n").unwrap();
        q.append_msglog(&id, "arrived").unwrap();
        // A lone -D, a temporary file, a journal and a message log whose
        // -H is gone: what crashes leave.
        let lone = q.ids().unwrap()[0];
        let gone = q.inner.ids.next();
        let l = q.layout();
        fs::write(l.data(&gone), format!("{gone}-D\nx\n")).unwrap();
        fs::write(l.temp(&gone, 'H'), b"partial").unwrap();
        fs::write(l.journal(&gone), b"").unwrap();
        fs::write(l.msglog(&gone), b"log\n").unwrap();
        assert!(
            q.clean_garbage(Duration::from_secs(3600))
                .unwrap()
                .is_empty()
        );
        let mut removed = q.clean_garbage(Duration::ZERO).unwrap();
        removed.sort();
        let mut want = vec![
            l.data(&gone),
            l.temp(&gone, 'H'),
            l.journal(&gone),
            l.msglog(&gone),
        ];
        want.sort();
        assert_eq!(removed, want);
        assert_eq!(lone, id);
        assert!(q.read(&id).is_ok());
        assert_eq!(q.msglog(&id).unwrap().unwrap(), b"arrived\n");
    }

    #[test]
    fn torn_data_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), Durability::None, true);
        let id = q.enter(&env(), &[], b"0123456789\n").unwrap();
        let p = q.layout().data(&id);
        let full = fs::read(&p).unwrap();
        fs::write(&p, &full[..full.len() - 3]).unwrap();
        let e = q.body(&id).unwrap_err().to_string();
        assert!(
            e.contains(p.to_str().unwrap()) && e.contains("torn file"),
            "{e}"
        );
        fs::write(&p, b"wrong-D\n").unwrap();
        let e = q.body(&id).unwrap_err().to_string();
        assert!(e.contains("line 1: first line"), "{e}");
        fs::remove_file(&p).unwrap();
        let e = q.body(&id).unwrap_err().to_string();
        assert!(e.contains("-D file is missing"), "{e}");
    }

    #[test]
    fn freeze_thaw_and_a_spool_whose_split_setting_changed() {
        let dir = tempfile::tempdir().unwrap();
        let flat = open(dir.path(), Durability::Strict, false);
        let id = flat.enter(&env(), &[], b"x\n").unwrap();
        drop(flat);
        let q = open(dir.path(), Durability::Strict, true);
        assert_eq!(q.count().unwrap(), 1);
        assert!(q.freeze(&id).unwrap());
        assert!(!q.freeze(&id).unwrap());
        assert!(q.read(&id).unwrap().envelope.frozen.is_some());
        assert!(q.thaw(&id).unwrap());
        let e = q.read(&id).unwrap().envelope;
        assert!(e.frozen.is_none() && e.manual_thaw);
        assert_eq!(e.recipients[0].state, RcptState::Pending);
        q.remove(&id).unwrap();
        assert_eq!(q.count().unwrap(), 0);
    }

    #[test]
    fn classic_ids_work_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(
            dir.path(),
            QueueOptions {
                id_format: IdFormat::Classic,
                durability: Durability::None,
                ..Default::default()
            },
        )
        .unwrap();
        let id = q.enter(&env(), &[], b"x\n").unwrap();
        assert_eq!(id.as_str().len(), crate::id::CLASSIC_LEN);
        assert_eq!(q.count().unwrap(), 1);
        assert_eq!(q.ids().unwrap(), vec![id]);
        assert!(q.read(&id).is_ok());
    }
}
