//! The conversion pipeline.
//!
//! ```text
//!  main thread                       workers (--jobs)                 manifest
//!  ───────────                       ────────────────                 ────────
//!  discover sources
//!  per source: lock, detect (window
//!  by window), open its Maildir
//!  (index, tmp/), map a window, cut
//!  it after its last whole message ──chunk──▶ read messages, strip, key,
//!  (bounded channel: memory stays        skip known ones, stage into
//!   flat whatever the corpus size)       tmp/, submit to the committer
//!                                        (one flush per batch), wait,
//!                                        verify, unmap ──lines────────▶ append
//!  finish Maildirs (keywords, uidlist), sync manifest, report
//! ```
//!
//! A chunk is one mapped window of whole messages (`mbox::Windowed::spans`),
//! unmapped when its worker has written, flushed and verified every message
//! in it: what the process maps is the windows still held by a worker or
//! waiting in the channel, never the file behind them (see [`window_size`]).
//! A source stays locked until the last of its windows is unmapped: every
//! window holds the locks.
//!
//! File names are `<run secs>.M<run usecs>P<pid>Q<offset>.<host>`, the
//! offset being the byte offset of the message's `From_` line in its mbox,
//! written with 13 digits. Within a run everything but the offset is the
//! same, so sorting the names (as Dovecot does with new files when it gives
//! out UIDs, and as `ls` does) gives the mbox order whichever worker wrote
//! the file. A later run (picking up mail that arrived meanwhile) starts at
//! a later second, so its messages sort after. The `From_` date is not used
//! in the name: mboxes are not always in date order, and the name must
//! follow the mbox; the date is the file's mtime.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel;
use durable::{BatchOptions, Committer, DataBarrier, Durability, Job, RealIo, Ticket};
use mailstore::lock::LockOptions;
use mailstore::maildir::{self, DeliverOptions, Maildir};
use mailstore::mbox::{self, Reader, Variant, Warning, WarningKind, Window, Windowed, Zone};

use super::date;
use super::discover::{self, Input, Source};
use super::dovecot::{self, Keywords};
use super::manifest::{self, Index, Key, Known, Store};
use super::report::{Failure, Report, SourceReport};

/// How the data barrier of a batch is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMethod {
    /// `fdatasync` of each file, concurrently (the journal merges them).
    #[default]
    Fdatasync,
    /// One `syncfs` of the destination filesystem per batch: cheaper for
    /// many small files, but flushes everything else on that filesystem.
    Syncfs,
}

impl std::str::FromStr for SyncMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<SyncMethod, String> {
        match s {
            "fdatasync" => Ok(SyncMethod::Fdatasync),
            "syncfs" => Ok(SyncMethod::Syncfs),
            o => Err(format!(
                "unknown sync method {o:?} (expected fdatasync or syncfs)"
            )),
        }
    }
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub sources: Vec<PathBuf>,
    pub users: Option<PathBuf>,
    pub dest: PathBuf,
    /// `None`: detect per file.
    pub format: Option<Variant>,
    pub keep_status_headers: bool,
    pub from_zone: Zone,
    pub jobs: usize,
    pub durability: Durability,
    pub sync: SyncMethod,
    /// Empty methods: `--no-lock` (the file is read, not mapped).
    pub locks: LockOptions,
    pub verify: bool,
    pub dry_run: bool,
    /// Host name for file names.
    pub host: String,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
    /// Bytes of mbox mapped per chunk; `None`: [`window_size`] of `jobs`.
    pub window: Option<usize>,
}

/// Messages per commit batch of one worker: enough to share a flush,
/// small enough to keep memory low.
const BATCH_MESSAGES: usize = 256;
/// Bytes per commit batch of one worker.
const BATCH_BYTES: usize = 16 << 20;
/// The mapped windows in flight add up to about this much at most (more
/// with over 40 jobs, at [`MIN_WINDOW`] each).
const MAPPED_BYTES: usize = 128 << 20;
/// Largest default window: enough to amortise a map and an unmap, small
/// enough for every worker to have a chunk of a mid-sized mbox.
const MAX_WINDOW: usize = 8 << 20;
/// Smallest default window.
const MIN_WINDOW: usize = 1 << 20;

/// The default window (chunk) size for `jobs` workers. At most
/// `3 * jobs + 1` windows are mapped at once (one being cut, `2 * jobs` in
/// the channel, one per worker), so that many share `MAPPED_BYTES`. A
/// message larger than the window gets a larger one (the window doubled
/// until the message fits).
pub fn window_size(jobs: usize) -> usize {
    (MAPPED_BYTES / (3 * jobs.max(1) + 1)).clamp(MIN_WINDOW, MAX_WINDOW)
}

/// A destination Maildir and what is known about it.
struct Target {
    /// Path relative to DEST, as the manifest names it.
    rel: String,
    maildir: Option<Maildir>,
    owner: Option<(u32, u32)>,
    /// Copies of each message already there, not yet matched this run.
    existing: Mutex<HashMap<Key, u32>>,
    keywords: Mutex<Keywords>,
    uids: Mutex<Vec<(u32, String)>>,
    uidbase: Mutex<Option<(u32, u32)>>,
    /// UID data already recorded in the manifest.
    uidbase_recorded: Option<(u32, u32)>,
}

impl Target {
    /// Whether a message with `key` is already there (then one copy is
    /// counted as matched).
    fn claim_existing(&self, key: &Key) -> bool {
        let mut ex = self.existing.lock().unwrap_or_else(|p| p.into_inner());
        match ex.get_mut(key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Counters of one source, updated by the workers.
#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    existing: AtomicU64,
    internal: AtomicU64,
    failures: Mutex<Vec<(usize, Failure)>>,
    /// Messages per chunk, to number messages across chunks.
    chunk_counts: Mutex<Vec<u64>>,
    notes: Mutex<Vec<String>>,
    /// Warnings of readers told the variant (`--format`), by chunk.
    warnings: Mutex<Vec<(usize, Warning)>>,
}

/// A source opened for conversion: the mbox under its locks.
struct Loaded {
    src: Source,
    mbox: Windowed,
    variant: Variant,
    target: Arc<Target>,
    counters: Arc<Counters>,
}

/// Whole messages of one source, mapped: unmapped when dropped.
struct Chunk {
    loaded: Arc<Loaded>,
    index: usize,
    window: Window,
}

/// Progress shared with the bar.
#[derive(Default)]
pub(crate) struct ProgressCounters {
    pub(crate) messages: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// A source, its counters, the variant it was read as, or why it was not.
type Outcome = (Source, Arc<Counters>, Option<Variant>, Option<String>);

/// Shared by the workers.
struct Ctx {
    opts: Options,
    committer: Option<Committer>,
    prefix: String,
    host: String,
    progress: Arc<ProgressCounters>,
    manifest: Option<channel::Sender<String>>,
}

/// A message written and submitted, waiting for its flush.
struct Pending<'a> {
    ticket: Ticket,
    dest: PathBuf,
    content: Cow<'a, [u8]>,
    key: Key,
    uid: Option<u32>,
    offset: usize,
    number: usize,
    mtime: SystemTime,
}

/// Runs a conversion and reports on it.
pub fn run(mut opts: Options) -> Report {
    // Absolute paths: a relative DEST has an empty parent, which cannot be
    // opened to sync the new directory's entry.
    if let Ok(d) = std::path::absolute(&opts.dest) {
        opts.dest = d;
    }
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let prefix = format!(
        "{}.M{}P{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    );
    let host = maildir::name::escape_host(&opts.host);
    let mut report = Report::new(&opts);

    let input = match &opts.users {
        Some(dir) => Input::Users(dir),
        None => Input::Paths(&opts.sources),
    };
    let (sources, skipped) = discover::discover(input, &opts.dest);
    report.skipped = skipped;
    let total_bytes: u64 = sources.iter().map(|s| s.size).sum();

    // The manifest (not in a dry run: nothing is written then).
    let mut store = None;
    let mut index = Index::default();
    if opts.dry_run {
        if let Ok(i) = Index::load(&opts.dest.join(manifest::DIR)) {
            index = i;
        }
    } else {
        let opened = create_dest(&opts, &sources).and_then(|()| Store::open(&opts.dest));
        match opened.and_then(|s| Index::load(s.dir()).map(|i| (s, i))) {
            Ok((mut s, i)) => {
                index = i;
                if let Err(e) = s.append(&manifest::run_line(&prefix)) {
                    report.fatal = Some(format!("{}: {e}", opts.dest.display()));
                    report.finalize();
                    return report;
                }
                store = Some(s);
            }
            Err(e) => {
                report.fatal = Some(format!(
                    "{}: {e} (temporary: fix and run again)",
                    opts.dest.display()
                ));
                report.finalize();
                return report;
            }
        }
    }
    if index.bad_lines > 0 {
        report.notes.push(format!(
            "manifest: {} line(s) unreadable (a run was interrupted while writing); files are checked instead",
            index.bad_lines
        ));
    }

    let committer = (!opts.dry_run).then(|| {
        let barrier = match opts.sync {
            SyncMethod::Fdatasync => DataBarrier::Parallel(16),
            SyncMethod::Syncfs => DataBarrier::Syncfs,
        };
        Committer::with_options(
            Arc::new(RealIo),
            opts.durability,
            BatchOptions {
                data_barrier: barrier,
                ..BatchOptions::default()
            },
        )
    });

    let (mtx, mrx) = channel::unbounded::<String>();
    let manifest_thread = store.map(|mut s| {
        std::thread::spawn(move || {
            let mut err = None;
            for lines in mrx {
                if let Err(e) = s.append(&lines) {
                    err.get_or_insert(e);
                }
            }
            match err {
                Some(e) => Err(e),
                None => s.sync(),
            }
        })
    });

    let progress = Arc::new(ProgressCounters::default());
    let jobs = opts.jobs.max(1);
    let window = opts.window.unwrap_or_else(|| window_size(jobs));
    let ctx = Arc::new(Ctx {
        opts: opts.clone(),
        committer: committer.clone(),
        prefix: prefix.clone(),
        host,
        progress: progress.clone(),
        manifest: manifest_thread.is_some().then(|| mtx.clone()),
    });
    drop(mtx);

    let bar = super::report::Bar::start(opts.progress, total_bytes, progress.clone());
    let (ctx_tx, crx) = channel::bounded::<Chunk>(jobs * 2);
    let workers: Vec<_> = (0..jobs)
        .map(|i| {
            let rx = crx.clone();
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("convert-{i}"))
                .spawn(move || {
                    for chunk in rx {
                        convert_chunk(&ctx, chunk);
                    }
                })
                .expect("spawning a worker thread")
        })
        .collect();
    drop(crx);

    let mut targets: HashMap<PathBuf, Arc<Target>> = HashMap::new();
    let mut loaded_list: Vec<Outcome> = Vec::new();
    for src in sources {
        let counters = Arc::new(Counters::default());
        match load(
            &ctx,
            &src,
            window,
            &mut targets,
            &mut index,
            counters.clone(),
        ) {
            Ok(loaded) => {
                let variant = loaded.variant;
                let loaded = Arc::new(loaded);
                let mut read = 0;
                for w in loaded.mbox.spans(variant, window) {
                    let index = {
                        let mut counts = lock(&counters.chunk_counts);
                        counts.push(0);
                        counts.len() - 1
                    };
                    let w = match w {
                        Ok(w) => w,
                        Err(e) => {
                            // The rest is not read: its first message is
                            // the one after the chunks before.
                            lock(&counters.failures).push((
                                index,
                                Failure {
                                    message: 1,
                                    offset: read as u64,
                                    why: format!(
                                        "this message and the rest not read: {e} (temporary)"
                                    ),
                                    mismatch: false,
                                },
                            ));
                            let rest = loaded.mbox.len() - read;
                            progress.bytes.fetch_add(rest as u64, Ordering::Relaxed);
                            break;
                        }
                    };
                    read = w.range().end;
                    let chunk = Chunk {
                        loaded: loaded.clone(),
                        index,
                        window: w,
                    };
                    if ctx_tx.send(chunk).is_err() {
                        break;
                    }
                }
                loaded_list.push((src, counters, Some(variant), None));
            }
            Err(e) => {
                progress.bytes.fetch_add(src.size, Ordering::Relaxed);
                loaded_list.push((src, counters, None, Some(e)));
            }
        }
    }
    drop(ctx_tx);
    for w in workers {
        if w.join().is_err() {
            report.fatal = Some("a worker thread panicked; the run is incomplete".into());
        }
    }

    // Every ticket has been waited for: what the manifest lists is durable.
    // Now the per-Maildir files, then the manifest's own sync.
    let mut uid_lines = String::new();
    if !opts.dry_run {
        for t in targets.values() {
            if let Err(e) = finish_target(t, &mut uid_lines) {
                report.notes.push(format!("{}: {e}", t.rel));
                report.finish_errors += 1;
            }
        }
    }
    if let Some(tx) = &ctx.manifest
        && !uid_lines.is_empty()
    {
        let _ = tx.send(uid_lines);
    }
    drop(ctx);
    if let Some(t) = manifest_thread {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                report
                    .notes
                    .push(format!("manifest: {e} (a re-run checks the files instead)"));
                report.finish_errors += 1;
            }
            Err(_) => report.finish_errors += 1,
        }
    }
    bar.finish();

    for (src, counters, variant, error) in loaded_list {
        report
            .sources
            .push(source_report(&src, &counters, variant, error));
    }
    if let Some(c) = &committer {
        report.set_commit(c.stats());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.total_input_bytes = total_bytes;
    report.finalize();
    report
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Running as root, output takes the source's owner.
fn owner_for(src: &Source) -> Option<(u32, u32)> {
    rustix::process::geteuid().is_root().then_some(src.owner)
}

/// Creates DEST (before its manifest directory goes into it). A single
/// mbox makes DEST a Maildir owned like its source.
fn create_dest(opts: &Options, sources: &[Source]) -> std::io::Result<()> {
    if opts.dest.is_dir() {
        return Ok(());
    }
    let owner = sources
        .iter()
        .find(|s| s.maildir() == opts.dest)
        .and_then(owner_for);
    match Maildir::create_owned(&opts.dest, owner) {
        Ok(_) if owner.is_some() || sources.iter().any(|s| s.root == opts.dest) => Ok(()),
        Ok(_) => {
            // DEST is only a parent (of users' Maildirs): no Maildir parts.
            for sub in ["tmp", "new", "cur"] {
                let _ = fs::remove_dir(opts.dest.join(sub));
            }
            Ok(())
        }
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

/// Locks and reads one source, decides its variant and opens its Maildir.
fn load(
    ctx: &Ctx,
    src: &Source,
    window: usize,
    targets: &mut HashMap<PathBuf, Arc<Target>>,
    index: &mut Index,
    counters: Arc<Counters>,
) -> Result<Loaded, String> {
    let opts = &ctx.opts;
    let why = |e: mailstore::Error| {
        let temp = if e.is_temporary() { " (temporary)" } else { "" };
        format!("{e}{temp}")
    };
    // A dotlock left by a killed earlier run (of this program or any other)
    // holds a dead pid: the lock layer takes it over at once, with a note.
    let mbox = if opts.locks.methods.is_empty() {
        Windowed::open_unlocked(&src.path)
    } else {
        Windowed::open_locked(&src.path, &opts.locks)
    }
    .map_err(why)?;
    lock(&counters.notes).extend(mbox.lock_notices().iter().cloned());
    let variant = match opts.format {
        Some(v) => {
            // A named format still must start like an mbox.
            mbox.check_start(v, window).map_err(why)?;
            lock(&counters.notes).push(format!("read as {v} (as told)"));
            v
        }
        None => {
            let d = mbox.detect(window).map_err(why)?;
            let mut notes = lock(&counters.notes);
            notes.push(format!("detected {}", d.variant));
            notes.extend(d.warnings.iter().map(ToString::to_string));
            if d.suppressed > 0 {
                notes.push(format!("... and {} more warnings", d.suppressed));
            }
            d.variant
        }
    };
    let dir = src.maildir();
    let target = match targets.get(&dir) {
        Some(t) => t.clone(),
        None => {
            let t = Arc::new(open_target(ctx, src, index)?);
            targets.insert(dir, t.clone());
            t
        }
    };
    Ok(Loaded {
        src: src.clone(),
        mbox,
        variant,
        target,
        counters,
    })
}

/// The manifest's name for a Maildir: its path relative to DEST.
fn rel_name(dest: &Path, maildir: &Path) -> String {
    match maildir.strip_prefix(dest) {
        Ok(r) if r.as_os_str().is_empty() => ".".into(),
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => maildir.to_string_lossy().into_owned(),
    }
}

/// Opens (creating it) the Maildir of `src`, clears what interrupted runs
/// left in its `tmp/`, and learns which messages it already holds: from the
/// manifest, plus the key of every file the manifest does not list.
fn open_target(ctx: &Ctx, src: &Source, index: &mut Index) -> Result<Target, String> {
    let dir = src.maildir();
    let rel = rel_name(&ctx.opts.dest, &dir);
    let known: Known = index.maildirs.remove(&rel).unwrap_or_default();
    let owner = owner_for(src);
    let mut target = Target {
        rel,
        maildir: None,
        owner,
        existing: Mutex::new(known.counts),
        keywords: Mutex::new(Keywords::default()),
        uids: Mutex::new(known.uids),
        uidbase: Mutex::new(known.uidbase),
        uidbase_recorded: known.uidbase,
    };
    if ctx.opts.dry_run {
        return Ok(target);
    }
    let fail =
        |e: mailstore::Error| format!("{e}{}", if e.is_temporary() { " (temporary)" } else { "" });
    let root = Maildir::create_owned(&src.root, owner).map_err(fail)?;
    let md = match &src.folder {
        None => root,
        Some(f) => root.folder_owned(f, owner).map_err(fail)?,
    };
    // Leftovers of earlier runs (they are dead: we hold the lock).
    let tmp = md.path().join("tmp");
    if let Ok(rd) = fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if index.runs.iter().any(|r| n.starts_with(&format!("{r}Q"))) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    // Files no manifest line names: written by a run that died before its
    // lines, or delivered by others. Read each once and remember its key.
    let entries = md.list().map_err(fail)?;
    let mut lines = String::new();
    {
        let mut existing = lock(&target.existing);
        for e in entries {
            let base = maildir::name::parse(&e.name).base.to_string();
            if known.names.contains(&base) {
                continue;
            }
            let bytes = fs::read(&e.path)
                .map_err(|err| format!("{}: {err} (temporary)", e.path.display()))?;
            let (stripped, _) = mbox::meta::strip(&bytes);
            let key = manifest::key(&stripped);
            *existing.entry(key).or_default() += 1;
            lines.push_str(&manifest::message_line(&target.rel, &key, &base, 0));
        }
    }
    if let Some(tx) = &ctx.manifest
        && !lines.is_empty()
    {
        let _ = tx.send(lines);
    }
    target.keywords = Mutex::new(
        Keywords::load(md.path())
            .map_err(|e| format!("{}: {e} (temporary)", md.path().display()))?,
    );
    target.maildir = Some(md);
    Ok(target)
}

/// Converts the messages of one chunk, then unmaps it.
fn convert_chunk(ctx: &Ctx, chunk: Chunk) {
    let l = &*chunk.loaded;
    // Offsets in the chunk are relative to its window.
    let base = chunk.window.start();
    let fail = |number: usize, offset: usize, why: String, mismatch: bool| {
        lock(&l.counters.failures).push((
            chunk.index,
            Failure {
                message: number as u64,
                offset: offset as u64,
                why,
                mismatch,
            },
        ));
    };
    let mut reader = match Reader::new(&chunk.window, l.variant) {
        Ok(r) => r,
        Err(e) => {
            fail(0, base, e.to_string(), false);
            return;
        }
    };
    let mut batch: Vec<(Job, Pending<'_>)> = Vec::new();
    let mut batch_bytes = 0;
    let mut inflight: Vec<Pending<'_>> = Vec::new();
    let mut count = 0u64;
    for msg in reader.by_ref() {
        count += 1;
        let raw_len = msg.range().len() as u64;
        let offset = base + msg.range().start;
        match prepare(ctx, l, &msg, offset) {
            Ok(Some((job, p))) => {
                batch_bytes += p.content.len();
                batch.push((job, p));
            }
            Ok(None) => {}
            Err(why) => fail(msg.number(), offset, why, false),
        }
        ctx.progress.bytes.fetch_add(raw_len, Ordering::Relaxed);
        ctx.progress.messages.fetch_add(1, Ordering::Relaxed);
        if batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES {
            let submitted = submit(ctx, std::mem::take(&mut batch));
            batch_bytes = 0;
            finish(ctx, l, chunk.index, std::mem::take(&mut inflight));
            inflight = submitted;
        }
    }
    let submitted = submit(ctx, batch);
    finish(ctx, l, chunk.index, inflight);
    finish(ctx, l, chunk.index, submitted);
    if let Some(c) = lock(&l.counters.chunk_counts).get_mut(chunk.index) {
        *c = count;
    }
    if ctx.opts.format.is_some() {
        let mut warnings = lock(&l.counters.warnings);
        warnings.extend(reader.warnings().iter().map(|w| {
            let mut w = w.clone();
            w.offset += base as u64;
            (chunk.index, w)
        }));
    }
}

/// Reads one message (its `From_` line at byte `offset` of the mbox):
/// skips UW-IMAP's pseudo message and messages the Maildir already holds,
/// and stages the rest into `tmp/`.
fn prepare<'a>(
    ctx: &Ctx,
    l: &Loaded,
    msg: &mbox::Message<'a>,
    offset: usize,
) -> Result<Option<(Job, Pending<'a>)>, String> {
    let t = &*l.target;
    let unquoted = msg.bytes();
    let (stripped, meta) = mbox::meta::strip(&unquoted);
    if let (Some(v), Some(n)) = (meta.uid_validity, meta.next_uid) {
        let mut base = lock(&t.uidbase);
        if base.is_none() || meta.folder_internal_data {
            *base = Some((v, n));
        }
    }
    if meta.folder_internal_data {
        l.counters.internal.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    }
    let key = manifest::key(&stripped);
    let stripped_owned = match stripped {
        Cow::Owned(v) => Some(v),
        Cow::Borrowed(_) => None,
    };
    if t.claim_existing(&key) {
        l.counters.existing.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    }
    let content: Cow<'a, [u8]> = match stripped_owned {
        Some(v) if !ctx.opts.keep_status_headers => Cow::Owned(v),
        _ => unquoted,
    };
    let mut flags = meta.flags.maildir_flags();
    if !meta.keywords.is_empty() {
        let (letters, dropped) = lock(&t.keywords).letters(&meta.keywords);
        flags.push_str(&letters);
        if !dropped.is_empty() {
            lock(&l.counters.notes).push(format!(
                "byte {offset}: message {}: keywords {dropped:?} dropped (Maildir holds at most 26)",
                msg.number()
            ));
        }
    }
    let cur = meta.flags.goes_to_cur() || !flags.is_empty();
    let secs = msg
        .from_line()
        .date()
        .timestamp(ctx.opts.from_zone)
        .or_else(|| date::date_header(&content))
        .unwrap_or(l.src.mtime);
    let mtime = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    if ctx.opts.dry_run {
        l.counters.messages.fetch_add(1, Ordering::Relaxed);
        l.counters
            .bytes
            .fetch_add(content.len() as u64, Ordering::Relaxed);
        return Ok(None);
    }
    let (Some(md), Some(committer)) = (&t.maildir, &ctx.committer) else {
        return Ok(None);
    };
    let opts = DeliverOptions {
        host: ctx.opts.host.clone(),
        base_name: Some(format!("{}Q{offset:013}.{}", ctx.prefix, ctx.host)),
        flags: cur.then_some(flags),
        mtime: Some(mtime),
        allow_empty: true,
        owner: t.owner,
        ..DeliverOptions::default()
    };
    let staged = md
        .stage(committer.io(), &mut &content[..], &opts)
        .map_err(|e| {
            format!(
                "not written: {e}{}",
                if e.is_temporary() { " (temporary)" } else { "" }
            )
        })?;
    let dest = staged.dest.clone();
    Ok(Some((
        staged.into_job(),
        Pending {
            ticket: Ticket::Ready(Ok(())),
            dest,
            content,
            key,
            uid: meta.uid,
            offset,
            number: msg.number(),
            mtime,
        },
    )))
}

/// Hands a batch to the committer (one flush for all of it).
fn submit<'a>(ctx: &Ctx, batch: Vec<(Job, Pending<'a>)>) -> Vec<Pending<'a>> {
    let Some(c) = &ctx.committer else {
        return Vec::new();
    };
    let (jobs, mut pending): (Vec<Job>, Vec<Pending<'a>>) = batch.into_iter().unzip();
    for (p, t) in pending.iter_mut().zip(c.submit_all(jobs)) {
        p.ticket = t;
    }
    pending
}

/// Waits for a submitted batch, verifies it, counts it and records it in
/// the manifest.
fn finish(ctx: &Ctx, l: &Loaded, chunk: usize, pending: Vec<Pending<'_>>) {
    if pending.is_empty() {
        return;
    }
    let t = &*l.target;
    let mut lines = String::new();
    for p in pending {
        let fail = |why: String, mismatch: bool| {
            lock(&l.counters.failures).push((
                chunk,
                Failure {
                    message: p.number as u64,
                    offset: p.offset as u64,
                    why,
                    mismatch,
                },
            ));
        };
        if let Err(e) = p.ticket.wait() {
            fail(format!("not written: {e} (temporary)"), false);
            continue;
        }
        if ctx.opts.verify
            && let Err(why) = verify(&p.dest, &p.content, p.mtime)
        {
            fail(format!("{}: {why}", p.dest.display()), true);
            continue;
        }
        l.counters.messages.fetch_add(1, Ordering::Relaxed);
        l.counters
            .bytes
            .fetch_add(p.content.len() as u64, Ordering::Relaxed);
        let fname = p
            .dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = maildir::name::parse(&fname).base.to_string();
        if let Some(uid) = p.uid {
            lock(&t.uids).push((uid, base.clone()));
        }
        lines.push_str(&manifest::message_line(
            &t.rel,
            &p.key,
            &base,
            p.uid.unwrap_or(0),
        ));
    }
    if let Some(tx) = &ctx.manifest
        && !lines.is_empty()
    {
        let _ = tx.send(lines);
    }
}

/// Reads a written message back and compares it with what the source said.
fn verify(path: &Path, want: &[u8], mtime: SystemTime) -> Result<(), String> {
    let got = fs::read(path).map_err(|e| format!("cannot read back: {e}"))?;
    if got.len() != want.len() {
        return Err(format!(
            "{} bytes written, {} in the source",
            got.len(),
            want.len()
        ));
    }
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        return Err(format!(
            "differs from the source at byte {i} of the message"
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parsed = maildir::name::parse(&name);
    if parsed.size != Some(want.len() as u64) {
        return Err(format!(
            "S= in the name is {:?}, the file has {} bytes",
            parsed.size,
            want.len()
        ));
    }
    let m = fs::metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    let secs = |t: SystemTime| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    if secs(m.modified().map_err(|e| e.to_string())?) != secs(mtime) || m.mtime() != secs(mtime) {
        return Err("modification time differs from the message's date".into());
    }
    Ok(())
}

/// Writes a Maildir's `dovecot-keywords` and `dovecot-uidlist` once all its
/// messages are durable.
fn finish_target(t: &Target, uid_lines: &mut String) -> Result<(), String> {
    let Some(md) = &t.maildir else { return Ok(()) };
    let dir = md.path();
    let kw = lock(&t.keywords);
    if kw.changed {
        dovecot::write_replace(dir, dovecot::KEYWORDS_FILE, &kw.render(), t.owner)
            .map_err(|e| format!("{}: {e}", dir.join(dovecot::KEYWORDS_FILE).display()))?;
    }
    let base = *lock(&t.uidbase);
    if let Some((v, n)) = base {
        if base != t.uidbase_recorded {
            uid_lines.push_str(&manifest::uid_line(&t.rel, v, n));
        }
        let mut uids = lock(&t.uids);
        if !uids.is_empty() {
            let text = dovecot::render_uidlist(v, n, &mut uids);
            dovecot::write_new(dir, dovecot::UIDLIST_FILE, &text, t.owner)
                .map_err(|e| format!("{}: {e}", dir.join(dovecot::UIDLIST_FILE).display()))?;
        }
    }
    Ok(())
}

/// The report of one source, with message numbers counted across chunks.
fn source_report(
    src: &Source,
    c: &Counters,
    variant: Option<Variant>,
    error: Option<String>,
) -> SourceReport {
    let counts = lock(&c.chunk_counts);
    let mut before = Vec::with_capacity(counts.len());
    let mut sum = 0;
    for n in counts.iter() {
        before.push(sum);
        sum += n;
    }
    let mut failures: Vec<Failure> = lock(&c.failures)
        .iter()
        .map(|(chunk, f)| Failure {
            message: f.message + before.get(*chunk).copied().unwrap_or(0),
            ..f.clone()
        })
        .collect();
    failures.sort_by_key(|f| f.offset);
    let mut warnings = lock(&c.warnings).clone();
    warnings.sort_by_key(|(_, w)| w.offset);
    let mut notes = lock(&c.notes).clone();
    notes.extend(warnings.into_iter().map(|(chunk, mut w)| {
        if let WarningKind::ContentLengthIgnored { message, .. } = &mut w.kind {
            *message += before.get(chunk).copied().unwrap_or(0) as usize;
        }
        w.to_string()
    }));
    SourceReport {
        path: src.path.clone(),
        maildir: src.maildir(),
        variant: variant.map(|v| v.as_str().to_string()),
        messages_in_source: sum,
        converted: c.messages.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        already_present: c.existing.load(Ordering::Relaxed),
        internal: c.internal.load(Ordering::Relaxed),
        notes,
        failures,
        error,
    }
}
