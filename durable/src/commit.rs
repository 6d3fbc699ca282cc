//! Publishing staged files durably, alone or in groups.
//!
//! A [`Job`] is one or more files already written under temporary names
//! ([`Staged`]) with the names they must take. Committing a job runs four
//! steps, in this order, for every job of a batch at once:
//!
//! 1. **data barrier**: `fdatasync` of every staged file. A crash before the
//!    end of this step leaves only temporary files.
//! 2. **publish**: rename each file to its final name with `RENAME_NOREPLACE`,
//!    in the job's order (the spool renames `-D` before `-H`, so the `-H`
//!    file's appearance is the commit point). A name that exists fails that
//!    job alone with [`CommitError::Exists`]; nothing is ever overwritten.
//!    A failed job takes back its own renames, unless it keeps what it
//!    published ([`Job::keep_published`]).
//!    Data must be durable before any rename: with delayed allocation, a
//!    rename made durable before its data can leave an empty file behind.
//! 3. **directory barrier**: one `fsync` per directory that received a file.
//!    A crash before the end of this step may lose the renames, never expose
//!    a partial file.
//! 4. **wake**: every waiter of the batch learns its result.
//!
//! Any sync error fails every job of the batch as temporary: the committer
//! removes what the batch wrote (temporary files and renamed files alike),
//! and the caller writes the message again under new names. `fsync` is never
//! retried on the same descriptor (after a failed fsync the kernel may have
//! dropped the dirty pages and a second call can succeed without writing them).

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use crate::Durability;
use crate::io::{DirHandle, Io};
use crate::parallel::Pool;

/// A file written under a temporary name, not yet durable or visible.
#[derive(Debug)]
pub struct Staged {
    file: File,
    tmp: PathBuf,
    written: u64,
}

impl Staged {
    /// Creates `tmp` exclusively (mode `mode`) through `io`.
    pub fn create(io: &dyn Io, tmp: PathBuf, mode: u32) -> io::Result<Staged> {
        let file = io.create_new(&tmp, mode)?;
        Ok(Staged {
            file,
            tmp,
            written: 0,
        })
    }

    /// Appends `buf` to the file.
    pub fn write(&mut self, io: &dyn Io, buf: &[u8]) -> io::Result<()> {
        io.write_all(&mut self.file, &self.tmp, buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Says the file is complete: its writeback may start now (a hint that
    /// shortens the data barrier of the batch it will join).
    pub fn finish(&self, io: &dyn Io) {
        io.start_writeback(&self.file, &self.tmp);
    }

    /// The open file (to set times or ownership before publishing).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The temporary path.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Removes the temporary file (best effort: used on error paths).
    pub fn discard(self, io: &dyn Io) {
        let _ = io.remove_file(&self.tmp);
    }
}

/// Staged files and their final names, published together.
#[derive(Debug, Default)]
pub struct Job {
    files: Vec<(Staged, PathBuf)>,
    /// A failed rename keeps what the job published before it (see
    /// [`Job::keep_published`]).
    keep_published: bool,
}

impl Job {
    pub fn new() -> Job {
        Job::default()
    }

    /// Adds a staged file that is to become `dest`; files are published in
    /// the order they were added.
    pub fn add(&mut self, staged: Staged, dest: PathBuf) -> &mut Job {
        self.files.push((staged, dest));
        self
    }

    /// Adds every file of `other` after this job's own: published
    /// together, all or none (a message's copies for several mailboxes).
    pub fn append(&mut self, other: Job) -> &mut Job {
        self.files.extend(other.files);
        self
    }

    /// Makes a failed rename keep the files this job published before it,
    /// instead of taking them back: they go through the directory barrier
    /// with the rest of the batch, and the job fails with
    /// [`CommitError::Partly`] saying how many were published. For copies
    /// that are each a delivery of their own (a message's Maildir copies),
    /// where taking back a copy a reader may already have opened is worse
    /// than keeping it.
    pub fn keep_published(&mut self) -> &mut Job {
        self.keep_published = true;
        self
    }

    /// A job of one file.
    pub fn single(staged: Staged, dest: PathBuf) -> Job {
        let mut job = Job::new();
        job.add(staged, dest);
        job
    }

    /// The final names, in publishing order.
    pub fn dests(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(_, d)| d.as_path())
    }

    /// Removes every temporary file of the job (best effort).
    pub fn discard(self, io: &dyn Io) {
        for (s, _) in self.files {
            s.discard(io);
        }
    }
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A final name already existed; nothing was replaced. The caller picks
    /// another name (the spool takes a new message ID).
    #[error("{path}: already exists")]
    Exists { path: PathBuf },
    /// A write, sync or rename failed. The batch's files were removed; the
    /// message must be written again under new names. `source` is the very
    /// error the system call returned (shared by every job of a failed
    /// batch), so ENOSPC, EDQUOT and EIO stay apart.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The committer has shut down.
    #[error("the commit coordinator has stopped")]
    Stopped,
    /// A job that keeps what it published ([`Job::keep_published`]): its
    /// first `published` files are published and durable, the rename of
    /// `path` failed with `source`, and the files after it were removed.
    #[error("rename {path} (after {published} published): {source}")]
    Partly {
        published: usize,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
}

impl CommitError {
    /// Temporary failures are worth retrying later (under new names).
    pub fn is_temporary(&self) -> bool {
        match self {
            CommitError::Exists { .. } => true,
            CommitError::Io { .. } | CommitError::Stopped | CommitError::Partly { .. } => true,
        }
    }

    /// The operating system's error behind the failure, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            CommitError::Io { source, .. } | CommitError::Partly { source, .. } => Some(source),
            _ => None,
        }
    }

    fn io(op: &'static str, path: &Path, source: io::Error) -> CommitError {
        CommitError::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// How the data barrier of a batch is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataBarrier {
    /// `fdatasync` each file, one after another.
    Sequential,
    /// `fdatasync` each file, up to this many at a time from helper threads;
    /// ext4 folds concurrent calls into one journal commit.
    Parallel(usize),
    /// One `syncfs` of the filesystem holding the files. Flushes everything
    /// else on that filesystem too: only for a data directory that is a
    /// filesystem of its own.
    Syncfs,
}

/// Tuning of [`Durability::Batch`].
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Most jobs flushed together.
    pub max_batch: usize,
    /// How long the coordinator waits for more jobs once one arrived. Zero
    /// batches only what arrived while the previous flush ran (no added
    /// latency for a lone writer).
    pub max_delay: Duration,
    pub data_barrier: DataBarrier,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_batch: 4096,
            max_delay: Duration::ZERO,
            data_barrier: DataBarrier::Parallel(16),
        }
    }
}

/// Counters for benchmarks and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    pub batches: u64,
    pub jobs: u64,
    pub data_syncs: u64,
    pub dir_syncs: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    jobs: AtomicU64,
    data_syncs: AtomicU64,
    dir_syncs: AtomicU64,
    /// Told of every batch; set once (the daemon's metrics).
    observer: std::sync::OnceLock<BatchObserver>,
}

/// Called after each batch with its number of jobs and how long the
/// flush took (barriers and renames), on the flushing thread: it must be
/// quick.
pub type BatchObserver = Box<dyn Fn(usize, Duration) + Send + Sync>;

type Reply = oneshot::Sender<Result<(), CommitError>>;

struct Pending {
    job: Job,
    reply: Reply,
}

struct Inner {
    io: Arc<dyn Io>,
    durability: Durability,
    options: BatchOptions,
    counters: Arc<Counters>,
    /// The threads barriers run on besides the flushing one.
    pool: Arc<Pool>,
    /// `Batch`: the coordinator, started by the first job handed over.
    coordinator: Mutex<Coordinator>,
}

/// The group-commit thread of a `Batch` committer. A process that only
/// ever commits one job at a time with [`Committer::commit`] (a command
/// delivering or queueing one message) never starts it: such a job is a
/// group of one, flushed on the caller's thread with the same barriers.
enum Coordinator {
    NotStarted,
    Running(Sender<Vec<Pending>>, JoinHandle<()>),
    /// It could not be started.
    Failed,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = std::mem::replace(
            &mut *self.coordinator.lock().unwrap_or_else(|p| p.into_inner()),
            Coordinator::Failed,
        );
        if let Coordinator::Running(tx, thread) = state {
            // Closing the channel ends the coordinator after its last batch.
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// Publishes jobs with the configured [`Durability`]. Cheap to clone; all
/// clones share one coordinator.
#[derive(Clone)]
pub struct Committer {
    inner: Arc<Inner>,
}

impl Committer {
    pub fn new(io: Arc<dyn Io>, durability: Durability) -> Committer {
        Committer::with_options(io, durability, BatchOptions::default())
    }

    pub fn with_options(
        io: Arc<dyn Io>,
        durability: Durability,
        options: BatchOptions,
    ) -> Committer {
        let counters = Arc::new(Counters::default());
        let helpers = match options.data_barrier {
            DataBarrier::Parallel(n) => n.saturating_sub(1),
            _ => 0,
        };
        let pool = Arc::new(Pool::new("sync", helpers));
        Committer {
            inner: Arc::new(Inner {
                io,
                durability,
                options,
                counters,
                pool,
                coordinator: Mutex::new(Coordinator::NotStarted),
            }),
        }
    }

    /// The coordinator's channel, started on first use; `None` if it
    /// cannot be started.
    fn coordinator(&self) -> Option<Sender<Vec<Pending>>> {
        let inner = &*self.inner;
        let mut state = inner.coordinator.lock().unwrap_or_else(|p| p.into_inner());
        if let Coordinator::NotStarted = *state {
            let (tx, rx) = channel::unbounded::<Vec<Pending>>();
            let (io, opts, ctr, pool) = (
                inner.io.clone(),
                inner.options.clone(),
                inner.counters.clone(),
                inner.pool.clone(),
            );
            *state = match std::thread::Builder::new()
                .name("group-commit".into())
                .spawn(move || coordinate(&io, &opts, &ctr, &pool, rx))
            {
                Ok(thread) => Coordinator::Running(tx, thread),
                Err(_) => Coordinator::Failed,
            };
        }
        match &*state {
            Coordinator::Running(tx, _) => Some(tx.clone()),
            _ => None,
        }
    }

    /// Flushes `job` on the calling thread (`sync == false`: renames only).
    fn flush_here(&self, job: Job, sync: bool) -> Result<(), CommitError> {
        let inner = &*self.inner;
        flush(
            &inner.io,
            &inner.options.data_barrier,
            &inner.counters,
            &inner.pool,
            vec![job],
            sync,
        )
        .pop()
        .unwrap_or(Err(CommitError::Stopped))
    }

    /// The I/O seam staged files are written through.
    pub fn io(&self) -> &dyn Io {
        &*self.inner.io
    }

    pub fn io_arc(&self) -> Arc<dyn Io> {
        self.inner.io.clone()
    }

    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Has `observer` told of every batch from now on. Only the first
    /// observer set is kept (false for a later one).
    pub fn observe_batches(&self, observer: BatchObserver) -> bool {
        self.inner.counters.observer.set(observer).is_ok()
    }

    pub fn stats(&self) -> CommitStats {
        let c = &self.inner.counters;
        CommitStats {
            batches: c.batches.load(Ordering::Relaxed),
            jobs: c.jobs.load(Ordering::Relaxed),
            data_syncs: c.data_syncs.load(Ordering::Relaxed),
            dir_syncs: c.dir_syncs.load(Ordering::Relaxed),
        }
    }

    /// Hands `job` over. With `Strict` and `None` the work is done on the
    /// calling thread before this returns; with `Batch` it is queued for the
    /// coordinator thread. Either way the [`Ticket`] tells the outcome.
    /// Never call this from an async task with `Strict` (it blocks on fsync).
    pub fn submit(&self, job: Job) -> Ticket {
        self.submit_all(vec![job])
            .pop()
            .unwrap_or(Ticket::Ready(Err(CommitError::Stopped)))
    }

    /// Hands several jobs over at once: with `Batch` they are certain to
    /// share one flush (unless they exceed `max_batch`); with `Strict` each is
    /// flushed on its own, in order.
    pub fn submit_all(&self, jobs: Vec<Job>) -> Vec<Ticket> {
        let inner = &*self.inner;
        match inner.durability {
            Durability::Batch => {
                let mut tickets = Vec::with_capacity(jobs.len());
                let pending: Vec<Pending> = jobs
                    .into_iter()
                    .map(|job| {
                        let (reply, rx) = oneshot::channel();
                        tickets.push(Ticket::Pending(rx));
                        Pending { job, reply }
                    })
                    .collect();
                let undelivered = match self.coordinator() {
                    Some(tx) => match tx.send(pending) {
                        Ok(()) => return tickets,
                        Err(e) => e.into_inner(),
                    },
                    None => pending,
                };
                undelivered
                    .into_iter()
                    .map(|p| {
                        p.job.discard(&*inner.io);
                        Ticket::Ready(Err(CommitError::Stopped))
                    })
                    .collect()
            }
            d => jobs
                .into_iter()
                .map(|job| Ticket::Ready(self.flush_here(job, d == Durability::Strict)))
                .collect(),
        }
    }

    /// Submits and waits (blocking). Not for async tasks: use
    /// [`Committer::submit`] and [`Ticket::wait_async`] there. With
    /// `Batch`, before any job was submitted, the job is flushed on this
    /// thread (a group of one: the same barriers, no coordinator started).
    pub fn commit(&self, job: Job) -> Result<(), CommitError> {
        let alone = self.inner.durability == Durability::Batch
            && matches!(
                *self
                    .inner
                    .coordinator
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
                Coordinator::NotStarted
            );
        if alone {
            return self.flush_here(job, true);
        }
        self.submit(job).wait()
    }
}

/// The outcome of a submitted job.
pub enum Ticket {
    Ready(Result<(), CommitError>),
    Pending(oneshot::Receiver<Result<(), CommitError>>),
}

impl Ticket {
    /// Blocks until the job is durable (or failed). Panics if called from
    /// inside an async runtime; use [`Ticket::wait_async`] there.
    pub fn wait(self) -> Result<(), CommitError> {
        match self {
            Ticket::Ready(r) => r,
            Ticket::Pending(rx) => rx.blocking_recv().unwrap_or(Err(CommitError::Stopped)),
        }
    }

    /// Waits without blocking the executor.
    pub async fn wait_async(self) -> Result<(), CommitError> {
        match self {
            Ticket::Ready(r) => r,
            Ticket::Pending(rx) => rx.await.unwrap_or(Err(CommitError::Stopped)),
        }
    }
}

/// The coordinator thread: takes whatever has queued up (at most
/// `max_batch`, waiting at most `max_delay` for more), flushes it as one
/// batch and wakes the waiters, until every `Committer` clone is gone.
fn coordinate(
    io: &Arc<dyn Io>,
    opts: &BatchOptions,
    ctr: &Arc<Counters>,
    pool: &Pool,
    rx: Receiver<Vec<Pending>>,
) {
    let mut carry: Vec<Pending> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut carry);
        if batch.is_empty() {
            match rx.recv() {
                Ok(p) => batch = p,
                Err(_) => break,
            }
        }
        if !opts.max_delay.is_zero() {
            let deadline = Instant::now() + opts.max_delay;
            while batch.len() < opts.max_batch {
                match rx.recv_deadline(deadline) {
                    Ok(p) => batch.extend(p),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        while batch.len() < opts.max_batch {
            match rx.try_recv() {
                Ok(p) => batch.extend(p),
                Err(_) => break,
            }
        }
        if batch.len() > opts.max_batch {
            carry = batch.split_off(opts.max_batch);
        }
        let (jobs, replies): (Vec<Job>, Vec<Reply>) =
            batch.into_iter().map(|p| (p.job, p.reply)).unzip();
        let results = flush(io, &opts.data_barrier, ctr, pool, jobs, true);
        for (reply, result) in replies.into_iter().zip(results) {
            // A waiter that went away (its connection dropped) is no error:
            // the message is durable all the same.
            let _ = reply.send(result);
        }
    }
}

/// Numbers the batches of every committer in the process, for
/// [`Io::publish`]: an `Io` that resolves a directory once per batch must
/// tell two batches apart even when two committers flush at once.
static BATCH_NUMBERS: AtomicU64 = AtomicU64::new(1);

/// One flush, reported to the batch observer when dropped.
struct Timing<'a> {
    ctr: &'a Counters,
    jobs: usize,
    started: Instant,
}

impl Drop for Timing<'_> {
    fn drop(&mut self) {
        if let Some(observe) = self.ctr.observer.get() {
            observe(self.jobs, self.started.elapsed());
        }
    }
}

/// Runs the four steps for `jobs` and returns one result per job, in order.
/// `sync == false` is `Durability::None`: renames only.
fn flush(
    io: &Arc<dyn Io>,
    barrier: &DataBarrier,
    ctr: &Arc<Counters>,
    pool: &Pool,
    jobs: Vec<Job>,
    sync: bool,
) -> Vec<Result<(), CommitError>> {
    // Tells the observer when the flush ends, whichever way it ends.
    let _timing = Timing {
        ctr,
        jobs: jobs.len(),
        started: Instant::now(),
    };
    ctr.batches.fetch_add(1, Ordering::Relaxed);
    ctr.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);

    // 1. Data barrier.
    let jobs = if sync {
        let (jobs, res) = data_barrier(io, barrier, ctr, pool, jobs);
        let Some(jobs) = jobs else {
            // Cannot happen: every slice lets go of the batch before it
            // answers. The temporary files stay for the cleaner.
            return fail_all(0, &res.err().unwrap_or(CommitError::Stopped));
        };
        if let Err(e) = res {
            let n = jobs.len();
            for job in jobs {
                job.discard(&**io);
            }
            return fail_all(n, &e);
        }
        jobs
    } else {
        jobs
    };
    let io_arc = io;
    let io: &dyn Io = &**io;
    let batch = BATCH_NUMBERS.fetch_add(1, Ordering::Relaxed);

    // 2. Publish, job by job; a failed job undoes its own renames.
    let mut results: Vec<Result<(), CommitError>> = Vec::with_capacity(jobs.len());
    let mut published: Vec<Vec<(PathBuf, DirHandle)>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut done: Vec<(PathBuf, DirHandle)> = Vec::new();
        let mut failure = None;
        let keep = job.keep_published;
        let mut files = job.files.into_iter();
        for (staged, dest) in files.by_ref() {
            match io.publish(&staged.tmp, &dest, batch) {
                Ok(at) => done.push((dest, at)),
                Err(e) => {
                    failure = Some(if keep && !done.is_empty() {
                        CommitError::Partly {
                            published: done.len(),
                            path: dest,
                            source: Arc::new(e),
                        }
                    } else if e.kind() == io::ErrorKind::AlreadyExists {
                        CommitError::Exists { path: dest }
                    } else {
                        CommitError::io("rename", &staged.tmp, e)
                    });
                    staged.discard(io);
                    break;
                }
            }
        }
        match failure {
            None => {
                results.push(Ok(()));
                published.push(done);
            }
            Some(err) => {
                for (staged, _) in files {
                    staged.discard(io);
                }
                if !matches!(err, CommitError::Partly { .. }) {
                    for (d, at) in &done {
                        let _ = io.unpublish(d, at);
                    }
                    done.clear();
                }
                results.push(Err(err));
                published.push(done);
            }
        }
    }

    // 3. Directory barrier: one fsync per directory that received a file
    // (per directory as step 2 resolved it: see `DirHandle`).
    if sync {
        let mut seen = HashSet::new();
        let mut dirs: Vec<(PathBuf, DirHandle)> = Vec::new();
        for (dest, at) in published.iter().flatten() {
            let Some(dir) = dest.parent() else { continue };
            if seen.insert((dir, at.key())) {
                dirs.push((dir.to_path_buf(), at.clone()));
            }
        }
        let res = if matches!(barrier, DataBarrier::Parallel(_)) {
            let (io, ctr) = (io_arc.clone(), ctr.clone());
            collect(pool.map(
                Arc::new(dirs),
                Arc::new(move |(d, at): &(PathBuf, DirHandle)| {
                    ctr.dir_syncs.fetch_add(1, Ordering::Relaxed);
                    io.sync_published(d, at)
                        .map_err(|e| CommitError::io("fsync directory", d, e))
                }),
            ))
        } else {
            dirs.iter().try_for_each(|(d, at)| {
                ctr.dir_syncs.fetch_add(1, Ordering::Relaxed);
                io.sync_published(d, at)
                    .map_err(|e| CommitError::io("fsync directory", d, e))
            })
        };
        if let Err(e) = res {
            // Nobody may be told "durable" now: take back what is visible
            // so that it is written again under new names.
            for (p, at) in published.iter().flatten() {
                let _ = io.unpublish(p, at);
            }
            return fail_all(results.len(), &e);
        }
    }
    results
}

fn fail_all(n: usize, e: &CommitError) -> Vec<Result<(), CommitError>> {
    (0..n)
        .map(|_| {
            Err(match e {
                CommitError::Io { op, path, source } => CommitError::Io {
                    op,
                    path: path.clone(),
                    source: source.clone(),
                },
                CommitError::Exists { path } => CommitError::Exists { path: path.clone() },
                CommitError::Stopped => CommitError::Stopped,
                CommitError::Partly {
                    published,
                    path,
                    source,
                } => CommitError::Partly {
                    published: *published,
                    path: path.clone(),
                    source: source.clone(),
                },
            })
        })
        .collect()
}

/// Step 1 for a batch: every staged file's data made durable. Hands the
/// jobs back (`None` only if a barrier thread kept hold of them) with the
/// first error.
fn data_barrier(
    io: &Arc<dyn Io>,
    barrier: &DataBarrier,
    ctr: &Arc<Counters>,
    pool: &Pool,
    jobs: Vec<Job>,
) -> (Option<Vec<Job>>, Result<(), CommitError>) {
    let sync_one = |io: &dyn Io, ctr: &Counters, s: &Staged| {
        ctr.data_syncs.fetch_add(1, Ordering::Relaxed);
        io.sync_data(&s.file, &s.tmp)
            .map_err(|e| CommitError::io("fdatasync", &s.tmp, e))
    };
    match barrier {
        DataBarrier::Syncfs => {
            let first = jobs.iter().flat_map(|j| &j.files).next();
            let res = match first {
                Some((s, _)) => {
                    ctr.data_syncs.fetch_add(1, Ordering::Relaxed);
                    io.syncfs(s.tmp.parent().unwrap_or(Path::new("/")))
                        .map_err(|e| CommitError::io("syncfs", &s.tmp, e))
                }
                None => Ok(()),
            };
            (Some(jobs), res)
        }
        DataBarrier::Sequential => {
            let res = jobs
                .iter()
                .flat_map(|j| &j.files)
                .try_for_each(|(s, _)| sync_one(&**io, ctr, s));
            (Some(jobs), res)
        }
        DataBarrier::Parallel(_) => {
            // Each barrier thread gets a slice of (job, file) positions
            // into the batch, which it shares until it answers.
            let positions: Vec<(usize, usize)> = jobs
                .iter()
                .enumerate()
                .flat_map(|(j, job)| (0..job.files.len()).map(move |k| (j, k)))
                .collect();
            let jobs = Arc::new(jobs);
            let res = {
                let (jobs, io, ctr) = (jobs.clone(), io.clone(), ctr.clone());
                collect(pool.map(
                    Arc::new(positions),
                    Arc::new(move |&(j, k): &(usize, usize)| {
                        sync_one(&*io, &ctr, &jobs[j].files[k].0)
                    }),
                ))
            };
            (Arc::try_unwrap(jobs).ok(), res)
        }
    }
}

/// The first error of a barrier's results.
fn collect(results: Option<Vec<Result<(), CommitError>>>) -> Result<(), CommitError> {
    match results {
        Some(results) => results.into_iter().collect(),
        None => Err(CommitError::Io {
            op: "sync",
            path: PathBuf::new(),
            source: Arc::new(io::Error::other(
                "a sync thread panicked or could not start",
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Op, Recorder};

    fn stage(io: &dyn Io, dir: &Path, name: &str, body: &[u8]) -> Staged {
        let mut s = Staged::create(io, dir.join("tmp").join(name), 0o600).unwrap();
        s.write(io, body).unwrap();
        s
    }

    fn setup() -> (tempfile::TempDir, Arc<Recorder>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::create_dir(dir.path().join("new")).unwrap();
        (dir, Arc::new(Recorder::new()))
    }

    /// Submits `n` one-file jobs at once (into `new/m0`...) and waits for
    /// them all.
    fn submit_many(c: &Committer, dir: &Path, n: usize) {
        let tickets: Vec<Ticket> = (0..n)
            .map(|i| {
                let s = stage(c.io(), dir, &format!("t{i}"), b"body\n");
                c.submit(Job::single(s, dir.join("new").join(format!("m{i}"))))
            })
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    }

    #[test]
    fn batch_publishes_every_job_and_shares_the_directory_sync() {
        let (dir, rec) = setup();
        let c = Committer::new(rec.clone(), Durability::Batch);
        submit_many(&c, dir.path(), 50);
        let st = c.stats();
        assert_eq!(st.jobs, 50);
        assert_eq!(st.data_syncs, 50);
        assert!(st.dir_syncs <= st.batches, "{st:?}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            50
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_observer_hears_every_batch_with_its_jobs() {
        let (dir, rec) = setup();
        let c = Committer::new(rec.clone(), Durability::Batch);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        assert!(c.observe_batches(Box::new(move |n, took| {
            s2.lock().unwrap().push((n, took));
        })));
        assert!(!c.observe_batches(Box::new(|_, _| {})), "only one observer");
        submit_many(&c, dir.path(), 20);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().map(|(n, _)| n).sum::<usize>(), 20);
        assert_eq!(seen.len() as u64, c.stats().batches);
    }

    #[test]
    fn existing_name_fails_that_job_only_and_is_not_replaced() {
        let (dir, rec) = setup();
        let c = Committer::new(rec.clone(), Durability::Strict);
        let dest = dir.path().join("new").join("same");
        std::fs::write(&dest, b"first").unwrap();
        let s = stage(c.io(), dir.path(), "a", b"second");
        let err = c.commit(Job::single(s, dest.clone())).unwrap_err();
        assert!(matches!(err, CommitError::Exists { .. }));
        assert_eq!(std::fs::read(&dest).unwrap(), b"first");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn failed_data_sync_fails_the_batch_and_leaves_nothing() {
        for d in [Durability::Strict, Durability::Batch] {
            let (dir, rec) = setup();
            rec.fail(Op::SyncData, 0);
            let c = Committer::new(rec.clone(), d);
            let s = stage(c.io(), dir.path(), "a", b"x");
            let err = c
                .commit(Job::single(s, dir.path().join("new/a")))
                .unwrap_err();
            assert!(err.is_temporary());
            assert_eq!(
                std::fs::read_dir(dir.path().join("new")).unwrap().count(),
                0
            );
            assert_eq!(
                std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
                0
            );
        }
    }

    #[test]
    fn failed_directory_sync_takes_back_the_published_files() {
        let (dir, rec) = setup();
        rec.fail(Op::SyncDir, 0);
        let c = Committer::new(rec.clone(), Durability::Strict);
        let s = stage(c.io(), dir.path(), "a", b"x");
        let err = c
            .commit(Job::single(s, dir.path().join("new/a")))
            .unwrap_err();
        assert!(err.is_temporary());
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            0
        );
    }

    #[test]
    fn second_rename_failing_undoes_the_first() {
        let (dir, rec) = setup();
        let c = Committer::new(rec.clone(), Durability::Strict);
        std::fs::write(dir.path().join("new/h"), b"taken").unwrap();
        let d = stage(c.io(), dir.path(), "d", b"data");
        let h = stage(c.io(), dir.path(), "h", b"head");
        let mut job = Job::new();
        job.add(d, dir.path().join("new/d"))
            .add(h, dir.path().join("new/h"));
        assert!(matches!(c.commit(job), Err(CommitError::Exists { .. })));
        assert!(!dir.path().join("new/d").exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    /// A job that keeps what it published: the first copy stays, durable
    /// (its directory synced), the one whose rename failed and the one
    /// after it are gone, and the error says how many were published.
    #[test]
    fn a_job_that_keeps_what_it_published_fails_partly() {
        let (dir, rec) = setup();
        let c = Committer::new(rec.clone(), Durability::Batch);
        rec.fail(Op::Rename, 1);
        let mut job = Job::new();
        for name in ["a", "b", "c"] {
            let s = stage(c.io(), dir.path(), name, b"copy");
            job.add(s, dir.path().join("new").join(name));
        }
        job.keep_published();
        match c.submit(job).wait() {
            Err(CommitError::Partly {
                published: 1, path, ..
            }) => assert_eq!(path, dir.path().join("new/b")),
            other => panic!("{other:?}"),
        }
        let new: Vec<_> = std::fs::read_dir(dir.path().join("new"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(new, ["a"]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        let pc = rec.power_cut(rec.events().len());
        assert!(
            pc.files
                .get(&dir.path().join("new/a"))
                .is_some_and(|f| f.is_whole())
        );
    }

    /// A `Batch` committer that only ever commits one job at a time never
    /// starts its group-commit thread; the first submit starts it.
    #[test]
    fn the_group_commit_thread_starts_with_the_first_submit() {
        let (dir, rec) = setup();
        let c = Committer::new(rec.clone(), Durability::Batch);
        let started = |c: &Committer| {
            !matches!(
                *c.inner.coordinator.lock().unwrap(),
                Coordinator::NotStarted
            )
        };
        let s = stage(c.io(), dir.path(), "one", b"body\n");
        c.commit(Job::single(s, dir.path().join("new/one")))
            .unwrap();
        assert!(!started(&c));
        assert!(dir.path().join("new/one").exists());
        // The same barriers as a batch: the data, then new/.
        let pc = rec.power_cut(rec.events().len());
        assert!(
            pc.files
                .get(&dir.path().join("new/one"))
                .is_some_and(|f| f.is_whole())
        );
        assert_eq!((c.stats().data_syncs, c.stats().dir_syncs), (1, 1));
        submit_many(&c, dir.path(), 3);
        assert!(started(&c));
        assert_eq!(c.stats().jobs, 4);
    }
}
