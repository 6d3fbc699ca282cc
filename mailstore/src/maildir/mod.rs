//! Maildir: lock-free delivery and reading (qmail's protocol, Maildir++
//! folders and quota, Dovecot's `S=`/`W=` size fields).
//!
//! A delivery is [`Maildir::stage`] (write into `tmp/` under a unique name)
//! followed by a commit through a [`durable::Committer`] (data barrier,
//! `renameat2(RENAME_NOREPLACE)` into `new/` or `cur/`, directory barrier).
//! [`Maildir::deliver`] does both. What a crash leaves at each step:
//!
//! | crash during            | left behind                                   |
//! |-------------------------|-----------------------------------------------|
//! | staging (write)         | a partial file in `tmp/` (readers never look) |
//! | data barrier            | a whole or partial file in `tmp/`             |
//! | rename                  | the file in `tmp/` or in `new/`, whole        |
//! | directory barrier       | after power loss maybe not in `new/`: the     |
//! |                         | delivery was not reported, the sender retries |
//!
//! Line endings are stored as they arrive (LF from Exim, Postfix and the
//! spool, as Dovecot stores them); `S=` is the exact byte count of the file,
//! `W=` the count with each bare LF taken as CRLF.

pub mod flags;
pub mod imap_name;
pub mod name;
pub mod quota;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use durable::{Committer, Io, Job, RealIo, Staged};

use crate::error::{Error, Result};

/// File mode of delivered messages.
pub const FILE_MODE: u32 = 0o600;
/// Directory mode of Maildirs and folders.
pub const DIR_MODE: u32 = 0o700;
/// Mode of parent directories created on the way to a Maildir.
pub const PARENT_MODE: u32 = 0o755;
/// The marker file inside each Maildir++ folder.
pub const FOLDER_MARKER: &str = "maildirfolder";
/// How much of a message is read and written at a time.
const CHUNK: usize = 64 * 1024;

/// Bytes written between two writeback hints while a message is staged.
const WRITEBACK_EVERY: usize = 1 << 20;

/// What to do with a message that would exceed the Maildir++ quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverQuota {
    /// Temporary failure: the sender keeps the message and retries.
    #[default]
    Defer,
    /// Permanent failure: the message is refused (bounced by the sender).
    Reject,
    /// Accept and drop the message (cPanel's "discard" option).
    Discard,
}

impl std::str::FromStr for OverQuota {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "defer" => Ok(OverQuota::Defer),
            "reject" => Ok(OverQuota::Reject),
            "discard" => Ok(OverQuota::Discard),
            o => Err(format!(
                "unknown over_quota {o:?} (expected \"defer\", \"reject\" or \"discard\")"
            )),
        }
    }
}

/// How one message is delivered.
#[derive(Debug, Clone, Default)]
pub struct DeliverOptions {
    /// Host name for generated unique names (see [`name::unique`]).
    pub host: String,
    /// A unique base name chosen by the caller (the spool names files after
    /// the message ID and recipient so that recovery can see a delivery that
    /// already landed). `None`: a fresh [`name::unique`] name.
    pub base_name: Option<String>,
    /// Bytes written before the message (e.g. `Return-Path:` and
    /// `Delivered-To:` header lines).
    pub prefix: Vec<u8>,
    /// `Some(flags)`: deliver into `cur/` with `:2,<flags>` (an already-seen
    /// message, as a conversion writes it); `None`: into `new/`.
    pub flags: Option<String>,
    /// The file's modification time (Dovecot shows it as the arrival date).
    pub mtime: Option<SystemTime>,
    /// Refuse messages larger than this (`message_size_limit`).
    pub max_size: Option<u64>,
    /// Accept a message of zero bytes (a conversion may meet one).
    pub allow_empty: bool,
    /// What to do when over quota.
    pub over_quota: OverQuota,
    /// Give the file to this uid/gid (delivering as root for a user).
    pub owner: Option<(u32, u32)>,
}

/// A message written into `tmp/`, ready to be committed.
#[derive(Debug)]
pub struct StagedMessage {
    staged: Staged,
    /// Where it will appear once committed.
    pub dest: PathBuf,
    /// `S=`: bytes in the file.
    pub size: u64,
    /// `W=`: bytes with CRLF line ends.
    pub vsize: u64,
}

impl StagedMessage {
    /// The commit job publishing this message.
    pub fn into_job(self) -> Job {
        Job::single(self.staged, self.dest)
    }

    /// Removes the temporary file.
    pub fn discard(self, io: &dyn Io) {
        self.staged.discard(io);
    }
}

/// What the quota says about one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaVerdict {
    /// It fits; `tracked` says whether a `maildirsize` keeps count.
    Fits { tracked: bool },
    /// Over quota with `over_quota = "discard"`.
    Discard,
}

/// The result of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The message is durable at `path`.
    Delivered { path: PathBuf, size: u64 },
    /// Over quota with `over_quota = "discard"`: accepted and dropped.
    Discarded { size: u64 },
}

/// Which of the two message directories an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sub {
    New,
    Cur,
}

impl Sub {
    pub fn dir_name(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }
}

/// A message found by [`Maildir::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sub: Sub,
    pub path: PathBuf,
    /// The file name.
    pub name: String,
    /// The flags after `:2,` (empty in `new/`).
    pub flags: String,
    /// `S=` from the name, if present.
    pub size: Option<u64>,
}

/// A Maildir (the top of a Maildir++ tree or one of its folders).
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    /// Where `maildirsize` lives (the top for a folder, as Maildir++ says).
    quota_root: PathBuf,
}

impl Maildir {
    /// Opens an existing Maildir: `root` must hold `tmp/`, `new/` and `cur/`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Maildir> {
        let root = root.into();
        check_layout(&root)?;
        let quota_root = if root.join(FOLDER_MARKER).exists() {
            root.parent()
                .map_or_else(|| root.clone(), Path::to_path_buf)
        } else {
            root.clone()
        };
        Ok(Maildir { root, quota_root })
    }

    /// Opens `root`, creating it (and missing parents) with mode 0700 when
    /// needed. New directories are made durable (each parent synced), so a
    /// message delivered next cannot vanish with its directory.
    pub fn create(root: impl Into<PathBuf>) -> Result<Maildir> {
        Maildir::create_with(&RealIo, root, None)
    }

    /// [`Maildir::create`], giving new directories to `owner`.
    pub fn create_owned(root: impl Into<PathBuf>, owner: Option<(u32, u32)>) -> Result<Maildir> {
        Maildir::create_with(&RealIo, root, owner)
    }

    /// [`Maildir::create_owned`], syncing new directories through `io` (so
    /// that the power-cut simulation sees them).
    pub fn create_with(
        io: &dyn Io,
        root: impl Into<PathBuf>,
        owner: Option<(u32, u32)>,
    ) -> Result<Maildir> {
        let root = root.into();
        create_tree(io, &root, owner)?;
        Maildir::open(root)
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The Maildir++ folder `name` (dot-separated hierarchy, e.g.
    /// `Lists.rust`, already encoded), created on demand with its
    /// `maildirfolder` marker.
    pub fn folder(&self, name: &str) -> Result<Maildir> {
        self.folder_owned(name, None)
    }

    /// [`Maildir::folder`], giving new directories to `owner`.
    pub fn folder_owned(&self, name: &str, owner: Option<(u32, u32)>) -> Result<Maildir> {
        self.folder_with(&RealIo, name, owner)
    }

    /// [`Maildir::folder_owned`], syncing new directories through `io`.
    pub fn folder_with(
        &self,
        io: &dyn Io,
        name: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<Maildir> {
        validate_folder(name)?;
        let root = self.root.join(format!(".{name}"));
        if !root.join("cur").is_dir() {
            create_tree(io, &root, owner)?;
            let marker = root.join(FOLDER_MARKER);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
            {
                Ok(f) => {
                    if let Some((u, g)) = owner {
                        std::os::unix::fs::fchown(&f, Some(u), Some(g))
                            .map_err(|e| Error::io("chown", &marker, e))?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create", marker, e)),
            }
            io.sync_dir(&root)
                .map_err(|e| Error::io("fsync directory", &root, e))?;
        }
        Ok(Maildir {
            root,
            quota_root: self.quota_root.clone(),
        })
    }

    /// Writes `prefix` + `src` into `tmp/` under a unique name. Nothing is
    /// visible to readers yet. On any error the temporary file is removed.
    pub fn stage(
        &self,
        io: &dyn Io,
        src: &mut dyn Read,
        opts: &DeliverOptions,
    ) -> Result<StagedMessage> {
        let (mut staged, base) = self.create_tmp(io, opts)?;
        match self.fill(io, &mut staged, src, opts) {
            Ok(counter) => {
                let name = name::with_sizes(&base, counter.size(), counter.vsize());
                let dest = match &opts.flags {
                    None => self.root.join("new").join(name),
                    Some(f) => {
                        let f = flags::normalize(f).map_err(|c| Error::BadMessage {
                            what: format!("flags {f:?}"),
                            why: format!("{c:?} is not a Maildir flag"),
                        });
                        let f = match f {
                            Ok(f) => f,
                            Err(e) => {
                                staged.discard(io);
                                return Err(e);
                            }
                        };
                        self.root.join("cur").join(format!("{name}:2,{f}"))
                    }
                };
                if let Err(e) = self.finish_file(&staged, opts) {
                    staged.discard(io);
                    return Err(e);
                }
                staged.finish(io);
                Ok(StagedMessage {
                    staged,
                    dest,
                    size: counter.size(),
                    vsize: counter.vsize(),
                })
            }
            Err(e) => {
                staged.discard(io);
                Err(e)
            }
        }
    }

    /// Stages, checks the quota, commits and records the quota usage.
    /// Returns once the message is durable (per the committer's durability).
    pub fn deliver(
        &self,
        committer: &Committer,
        src: &mut dyn Read,
        opts: &DeliverOptions,
    ) -> Result<Stored> {
        let io = committer.io();
        let msg = self.stage(io, src, opts)?;
        let size = msg.size;
        match self.check_quota(size, opts.over_quota) {
            Ok(QuotaVerdict::Fits { .. }) => {}
            Ok(QuotaVerdict::Discard) => {
                msg.discard(io);
                return Ok(Stored::Discarded { size });
            }
            Err(e) => {
                msg.discard(io);
                return Err(e);
            }
        }
        let dest = msg.dest.clone();
        committer.commit(msg.into_job())?;
        self.record_delivery(size);
        Ok(Stored::Delivered { path: dest, size })
    }

    /// Whether a message of `size` bytes fits the Maildir++ quota (none
    /// when there is no `maildirsize`). Over quota: `Discard` with that
    /// policy, else [`Error::OverQuota`] (temporary for `Defer`).
    pub fn check_quota(&self, size: u64, policy: OverQuota) -> Result<QuotaVerdict> {
        match quota::check(&self.quota_root, size)? {
            None => Ok(QuotaVerdict::Fits { tracked: false }),
            Some((_, false)) => Ok(QuotaVerdict::Fits { tracked: true }),
            Some((_, true)) if policy == OverQuota::Discard => Ok(QuotaVerdict::Discard),
            Some((usage, true)) => Err(Error::OverQuota {
                path: self.root.clone(),
                used_bytes: usage.bytes,
                limit_bytes: usage.def.bytes.unwrap_or(0),
                used_count: usage.count,
                limit_count: usage.def.count.unwrap_or(0),
                permanent: policy == OverQuota::Reject,
            }),
        }
    }

    /// Whether the Maildir has a Maildir++ quota (a `maildirsize` file).
    pub fn has_quota_file(&self) -> bool {
        self.quota_root.join(quota::FILE_NAME).exists()
    }

    /// Counts a delivered message in `maildirsize`, if there is one. A
    /// failed update only makes the usage stale until the next rebuild: it
    /// must not fail a delivery that is already durable.
    pub fn record_delivery(&self, size: u64) {
        if self.quota_root.join(quota::FILE_NAME).exists() {
            let _ = quota::record(&self.quota_root, size as i64, 1);
        }
    }

    /// Whether a message with unique base name `base` is already in `new/`
    /// or `cur/` (recovery after a crash between delivery and bookkeeping).
    pub fn find(&self, base: &str) -> Result<Option<PathBuf>> {
        for sub in [Sub::New, Sub::Cur] {
            let dir = self.root.join(sub.dir_name());
            let rd = fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                let b = name::parse(&n).base;
                if b == base || b.split(',').next() == Some(base) {
                    return Ok(Some(e.path()));
                }
            }
        }
        Ok(None)
    }

    /// The messages in `new/` then `cur/` (each sorted by name, which sorts
    /// by delivery time for generated names).
    pub fn list(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for sub in [Sub::New, Sub::Cur] {
            let dir = self.root.join(sub.dir_name());
            let rd = fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
            let mut entries: Vec<Entry> = rd
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().into_string().ok()?;
                    if n.starts_with('.') {
                        return None;
                    }
                    let p = name::parse(&n);
                    Some(Entry {
                        sub,
                        flags: p.flags.unwrap_or("").to_string(),
                        size: p.size,
                        path: e.path(),
                        name: n,
                    })
                })
                .collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            out.extend(entries);
        }
        Ok(out)
    }

    /// Sets the flags of a message: moves it from `new/` to `cur/` (as a
    /// reader does when it first sees it; never replacing a file), or
    /// renames it within `cur/`.
    pub fn set_flags(&self, entry: &Entry, flags: &str) -> Result<Entry> {
        self.to_cur(entry, flags)
    }

    /// Renames `entry` to `cur/<base>:2,<flags>`. Out of `new/` the rename
    /// never replaces a file; inside `cur/` only the info part changes, and
    /// a plain rename is the protocol (the unique base stays the same).
    fn to_cur(&self, entry: &Entry, flags: &str) -> Result<Entry> {
        let flags = normalize_flags(flags)?;
        let base = name::parse(&entry.name).base.to_string();
        let new_name = format!("{base}:2,{flags}");
        let dest = self.root.join("cur").join(&new_name);
        let moved = match entry.sub {
            Sub::New => RealIo.rename_noreplace(&entry.path, &dest),
            Sub::Cur if dest == entry.path => Ok(()),
            Sub::Cur => RealIo.rename_replace(&entry.path, &dest),
        };
        moved.map_err(|e| Error::io("rename", &entry.path, e))?;
        Ok(Entry {
            sub: Sub::Cur,
            path: dest,
            size: entry.size,
            name: new_name,
            flags,
        })
    }

    fn create_tmp(&self, io: &dyn Io, opts: &DeliverOptions) -> Result<(Staged, String)> {
        let tmp_dir = self.root.join("tmp");
        // A generated name cannot collide unless the clock went backwards;
        // a caller's name can only collide with a leftover of an attempt that
        // crashed, which is ours to remove.
        for attempt in 0..3 {
            let base = match &opts.base_name {
                Some(b) => b.clone(),
                None => name::unique(&opts.host),
            };
            let tmp = tmp_dir.join(&base);
            match Staged::create(io, tmp.clone(), FILE_MODE) {
                Ok(s) => return Ok((s, base)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 2 => {
                    if opts.base_name.is_some() {
                        let _ = io.remove_file(&tmp);
                    }
                }
                Err(e) => return Err(Error::io("create", tmp, e)),
            }
        }
        Err(Error::io(
            "create",
            tmp_dir,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no unique name after 3 attempts",
            ),
        ))
    }

    fn fill(
        &self,
        io: &dyn Io,
        staged: &mut Staged,
        src: &mut dyn Read,
        opts: &DeliverOptions,
    ) -> Result<name::SizeCounter> {
        let mut counter = name::SizeCounter::default();
        let tmp = staged.tmp().to_path_buf();
        if !opts.prefix.is_empty() {
            staged
                .write(io, &opts.prefix)
                .map_err(|e| Error::io("write", &tmp, e))?;
            counter.update(&opts.prefix);
        }
        let mut buf = vec![0u8; CHUNK];
        let mut body = 0u64;
        let mut unhinted = 0usize;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read message", "<input>", e)),
            };
            body += n as u64;
            if let Some(max) = opts.max_size
                && counter.size() + n as u64 > max
            {
                return Err(Error::TooLarge { limit: max });
            }
            staged
                .write(io, &buf[..n])
                .map_err(|e| Error::io("write", &tmp, e))?;
            counter.update(&buf[..n]);
            // A large message (one written while it arrives, above all):
            // its pages start for the disk as they are written, so that
            // the sync at its end waits for the last of them only.
            unhinted += n;
            if unhinted >= WRITEBACK_EVERY {
                io.start_writeback(staged.file(), &tmp);
                unhinted = 0;
            }
        }
        if body == 0 && !opts.allow_empty {
            return Err(Error::BadMessage {
                what: "message".into(),
                why: "empty input (0 bytes)".into(),
            });
        }
        Ok(counter)
    }

    fn finish_file(&self, staged: &Staged, opts: &DeliverOptions) -> Result<()> {
        if let Some(t) = opts.mtime {
            staged
                .file()
                .set_modified(t)
                .map_err(|e| Error::io("set mtime", staged.tmp(), e))?;
        }
        if let Some((u, g)) = opts.owner {
            std::os::unix::fs::fchown(staged.file(), Some(u), Some(g))
                .map_err(|e| Error::io("chown", staged.tmp(), e))?;
        }
        Ok(())
    }
}

fn normalize_flags(f: &str) -> Result<String> {
    flags::normalize(f).map_err(|c| Error::BadMessage {
        what: format!("flags {f:?}"),
        why: format!("{c:?} is not a Maildir flag"),
    })
}

fn check_layout(root: &Path) -> Result<()> {
    let meta = fs::metadata(root).map_err(|e| Error::io("open Maildir", root, e))?;
    if !meta.is_dir() {
        return Err(Error::NotMaildir {
            path: root.to_path_buf(),
            why: "it is not a directory".into(),
        });
    }
    for sub in ["tmp", "new", "cur"] {
        let p = root.join(sub);
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotMaildir {
                    path: root.to_path_buf(),
                    why: format!("{sub} is not a directory"),
                });
            }
            Err(e) => return Err(Error::io("open Maildir", p, e)),
        }
    }
    Ok(())
}

/// Creates `root` and its `tmp/ new/ cur/` (mode 0700), syncing the parent
/// of every directory it creates.
fn create_tree(io: &dyn Io, root: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    if root.join("new").is_dir() && root.join("cur").is_dir() && root.join("tmp").is_dir() {
        return Ok(());
    }
    if root.exists() && !root.is_dir() {
        return Err(Error::NotMaildir {
            path: root.to_path_buf(),
            why: "it is not a directory".into(),
        });
    }
    let mut created = Vec::new();
    mkdir_all(root, DIR_MODE, owner, &mut created)?;
    for sub in ["tmp", "new", "cur"] {
        mkdir_one(&root.join(sub), DIR_MODE, owner, &mut created)?;
    }
    // Make each new entry durable: sync the parent of every created dir.
    // A relative name without a parent ("Maildir") lives in ".".
    let mut parents: Vec<&Path> = created
        .iter()
        .filter_map(|p| p.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .collect();
    parents.sort();
    parents.dedup();
    for p in parents {
        io.sync_dir(p)
            .map_err(|e| Error::io("fsync directory", p, e))?;
    }
    Ok(())
}

/// Creates `dir` (with `mode` and `owner`) and its missing parents. The
/// parents are shared (`mail/<domain>/` holds every user's mailbox): they
/// stay with the process's owner, mode 0755, so that no user owns another
/// user's way in, and each user can still reach their own.
fn mkdir_all(
    dir: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        mkdir_all(parent, PARENT_MODE, None, created)?;
    }
    mkdir_one(dir, mode, owner, created)
}

fn mkdir_one(
    dir: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            if let Some((u, g)) = owner {
                std::os::unix::fs::chown(dir, Some(u), Some(g))
                    .map_err(|e| Error::io("chown", dir, e))?;
            }
            created.push(dir.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::NotMaildir {
            path: dir.to_path_buf(),
            why: "a file stands where a directory must be".into(),
        }),
        Err(e) => Err(Error::io("create directory", dir, e)),
    }
}

/// Checks a Maildir++ folder name (dot-separated, already encoded).
fn validate_folder(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::BadFolder {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("contains '/' or NUL");
    }
    if name.split('.').any(|c| c.is_empty()) {
        return bad("empty hierarchy level (leading, trailing or doubled '.')");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable::{Durability, RealIo};
    use std::sync::Arc;

    fn opts() -> DeliverOptions {
        DeliverOptions {
            host: "test.example".into(),
            ..Default::default()
        }
    }

    #[test]
    fn deliver_list_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("Maildir")).unwrap();
        let c = Committer::new(Arc::new(RealIo), Durability::Strict);
        let out = md
            .deliver(&c, &mut &b"Subject: x\n\nhello\n"[..], &opts())
            .unwrap();
        let Stored::Delivered { path, size } = out else {
            panic!()
        };
        assert_eq!(size, 18);
        let fname = path.file_name().unwrap().to_str().unwrap();
        assert!(fname.ends_with(",S=18,W=21"), "{fname}");
        assert_eq!(fs::read(&path).unwrap(), b"Subject: x\n\nhello\n");
        let list = md.list().unwrap();
        assert_eq!(list.len(), 1);
        let e = md.set_flags(&list[0], "SR").unwrap();
        assert!(e.name.ends_with(":2,RS"), "{}", e.name);
        let e = md.set_flags(&e, "FS").unwrap();
        assert_eq!(md.list().unwrap(), vec![e.clone()]);
        assert_eq!(e.flags, "FS");
        assert_eq!(fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn folders_are_maildirplusplus() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("M")).unwrap();
        let f = md.folder("Lists.rust").unwrap();
        assert!(f.path().ends_with(".Lists.rust"));
        assert!(f.path().join(FOLDER_MARKER).is_file());
        assert!(!md.path().join(FOLDER_MARKER).exists());
        for bad in ["", ".x", "x.", "a..b", "a/b"] {
            assert!(
                matches!(md.folder(bad), Err(Error::BadFolder { .. })),
                "{bad}"
            );
        }
        // Reopening a folder finds the top for quota.
        assert_eq!(Maildir::open(f.path()).unwrap().quota_root, md.path());
    }

    #[test]
    fn caller_named_delivery_is_found_and_never_doubled() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("M")).unwrap();
        let c = Committer::new(Arc::new(RealIo), Durability::None);
        let o = DeliverOptions {
            base_name: Some("1tixMn-00000000C5j-1wRa.0".into()),
            ..opts()
        };
        assert!(md.find("1tixMn-00000000C5j-1wRa.0").unwrap().is_none());
        md.deliver(&c, &mut &b"a\n"[..], &o).unwrap();
        assert!(md.find("1tixMn-00000000C5j-1wRa.0").unwrap().is_some());
        let err = md.deliver(&c, &mut &b"a\n"[..], &o).unwrap_err();
        assert!(
            matches!(err, Error::Commit(durable::CommitError::Exists { .. })),
            "{err}"
        );
        assert_eq!(md.list().unwrap().len(), 1);
    }

    #[test]
    fn bad_input_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("M")).unwrap();
        let c = Committer::new(Arc::new(RealIo), Durability::Strict);
        let e = md.deliver(&c, &mut &b""[..], &opts()).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::sysexits::DATAERR);
        let o = DeliverOptions {
            max_size: Some(3),
            ..opts()
        };
        let e = md.deliver(&c, &mut &b"abcd"[..], &o).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::sysexits::DATAERR);
        assert!(md.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
        // A regular file where the Maildir should be.
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = Maildir::create(&file).unwrap_err();
        assert!(matches!(e, Error::NotMaildir { .. }), "{e}");
        assert!(e.is_temporary());
    }

    #[test]
    fn quota_defer_reject_discard() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("M")).unwrap();
        quota::set(
            md.path(),
            quota::QuotaDef {
                bytes: Some(10),
                count: None,
            },
        )
        .unwrap();
        let c = Committer::new(Arc::new(RealIo), Durability::Strict);
        md.deliver(&c, &mut &b"12345678\n"[..], &opts()).unwrap();
        let cases = [
            (OverQuota::Defer, Some(75)),
            (OverQuota::Reject, Some(77)),
            (OverQuota::Discard, None),
        ];
        for (policy, code) in cases {
            let o = DeliverOptions {
                over_quota: policy,
                ..opts()
            };
            let r = md.deliver(&c, &mut &b"more\n"[..], &o);
            match (r, code) {
                (Err(e), Some(code)) => assert_eq!(e.exit_code(), code),
                (Ok(Stored::Discarded { size: 5 }), None) => {}
                (r, _) => panic!("{policy:?}: {r:?}"),
            }
        }
        assert_eq!(md.list().unwrap().len(), 1);
        assert_eq!(quota::read(md.path()).unwrap().unwrap().bytes, 9);
    }

    #[test]
    fn prefix_flags_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("M")).unwrap();
        let c = Committer::new(Arc::new(RealIo), Durability::Batch);
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let o = DeliverOptions {
            prefix: b"Return-Path: <a@b>\n".to_vec(),
            flags: Some("SF".into()),
            mtime: Some(t),
            ..opts()
        };
        let Stored::Delivered { path, size } = md.deliver(&c, &mut &b"x\n"[..], &o).unwrap() else {
            panic!()
        };
        assert_eq!(size, 21);
        assert!(
            path.to_str().unwrap().contains("/cur/") && path.to_str().unwrap().ends_with(":2,FS")
        );
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), t);
        assert_eq!(fs::read(&path).unwrap(), b"Return-Path: <a@b>\nx\n");
    }
}
