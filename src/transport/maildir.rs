//! The Maildir transport: one file per recipient, staged in `tmp/` and
//! published into `new/` by the group committer, with the quota checked at
//! the size actually stored. The queue's deliveries, LMTP and `sluice
//! deliver` all go through [`MaildirTransport::stage`] and
//! [`StagedFile::finish`]; only what they do with the result differs (a
//! journal record, an LMTP reply, an exit code).
//!
//! | step | a crash here leaves |
//! |---|---|
//! | stage: create the Maildir, write `tmp/<name>` | a file in `tmp/`, which no reader looks at (removed by age) |
//! | the committer's data barrier, rename, directory barrier | the file in `new/` or not; named `<ID>.<n>` for queue deliveries, so a retry finds it ([`Recovery::FoundByName`]) |
//! | finish: count it in `maildirsize` | a quota total short by one message until the next recalculation |

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable::{CommitError, Io, Job};
use mailstore::maildir::{DeliverOptions, Maildir, OverQuota, QuotaVerdict};

use super::Recovery;

/// How Maildir files are written.
#[derive(Debug, Clone)]
pub struct MaildirTransport {
    /// The host part of generated file names.
    pub host: String,
    /// What happens over the Maildir++ quota.
    pub over_quota: OverQuota,
    /// Refuse messages larger than this while storing them.
    pub max_size: Option<u64>,
    /// Maildirs found whole lately, so that a busy one is not checked
    /// (eight `stat`s) for every message.
    pub known: KnownMaildirs,
}

/// How long a Maildir found whole is taken on trust. Nothing is lost by
/// trusting it: a Maildir moved aside meanwhile has no `tmp/` at its path
/// any more, staging fails, and the message is tried again (and the
/// Maildir made again) as after any other temporary failure.
const TRUST: Duration = Duration::from_secs(1);

/// Most Maildirs remembered at once (a cap on memory, not a tuning knob).
const MOST_KNOWN: usize = 4096;

/// A file left in `tmp/` for longer than this is a delivery that was cut
/// off (a crash, a client gone before the reply): removed, as Dovecot
/// removes them.
const TMP_STALE: Duration = Duration::from_secs(36 * 3600);

/// How often one process looks for such files in one Maildir.
const TMP_SWEEP_EVERY: Duration = Duration::from_secs(8 * 3600);

/// Maildirs checked lately, shared by the clones of one transport, and
/// when this process last swept their `tmp/`.
#[derive(Debug, Clone, Default)]
pub struct KnownMaildirs(Arc<Mutex<Known>>);

#[derive(Debug, Default)]
struct Known {
    /// The Maildir, when it was found whole, and whether it had a quota
    /// file then.
    checked: HashMap<PathBuf, (Maildir, Instant, bool)>,
    swept: HashMap<PathBuf, Instant>,
}

impl KnownMaildirs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Maildir at `path` if it was found whole lately, and whether it
    /// had a quota file then.
    fn get(&self, path: &Path) -> Option<(Maildir, bool)> {
        self.lock()
            .checked
            .get(path)
            .filter(|(_, at, _)| at.elapsed() < TRUST)
            .map(|(md, _, quota)| (md.clone(), *quota))
    }

    /// Remembers `md`, found whole at `path` (with a quota file or not);
    /// says whether its `tmp/` is due for a sweep.
    fn put(&self, path: &Path, md: &Maildir, quota: bool) -> bool {
        let mut known = self.lock();
        if known.checked.len() >= MOST_KNOWN {
            known.checked.retain(|_, (_, at, _)| at.elapsed() < TRUST);
        }
        if known.checked.len() < MOST_KNOWN {
            known
                .checked
                .insert(path.to_path_buf(), (md.clone(), Instant::now(), quota));
        }
        if known.swept.len() >= MOST_KNOWN {
            known.swept.retain(|_, at| at.elapsed() < TMP_SWEEP_EVERY);
        }
        let due = known
            .swept
            .get(path)
            .is_none_or(|at| at.elapsed() >= TMP_SWEEP_EVERY);
        if due && known.swept.len() < MOST_KNOWN {
            known.swept.insert(path.to_path_buf(), Instant::now());
        }
        due
    }

    /// Forgets `path` (a staging there failed).
    fn forget(&self, path: &Path) {
        self.lock().checked.remove(path);
    }
}

/// Removes the files in `tmp/` of the Maildir at `root` older than
/// [`TMP_STALE`] (best effort: a file another process removes first is
/// no error). Returns how many it removed.
pub fn sweep_tmp(root: &Path, now: std::time::SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(root.join("tmp")) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| now.duration_since(t).is_ok_and(|age| age > TMP_STALE));
        if stale && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Where one recipient's file goes.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The Maildir (created with its parents when missing).
    pub path: &'a Path,
    /// The owner to give new directories and the file (root delivering for
    /// a user).
    pub owner: Option<(u32, u32)>,
    /// A Maildir++ folder inside it.
    pub folder: Option<&'a str>,
    /// The file's base name (`<ID>.<n>` for queue deliveries); generated
    /// when `None`.
    pub base: Option<String>,
    /// Look for `base` in `new/` and `cur/` first: an earlier attempt may
    /// have published it before a crash.
    pub look_first: bool,
}

/// What staging came to.
pub enum Staged {
    /// Written to `tmp/`; durable once its job is committed.
    File(StagedFile),
    /// An earlier attempt delivered it already (found by name).
    Already,
    /// Over quota with `over_quota = "discard"`: accepted and dropped.
    Discarded,
}

/// A file staged in `tmp/`, waiting for the committer.
pub struct StagedFile {
    job: Option<Job>,
    maildir: Maildir,
    size: u64,
    dest: PathBuf,
    /// The Maildir has a quota file to count the message in.
    tracked: bool,
}

impl StagedFile {
    /// The job to hand to the committer (once).
    pub fn take_job(&mut self) -> Option<Job> {
        self.job.take()
    }

    /// Takes the commit's result: on success the file is durable in
    /// `new/` (or was, under its name, already) and is counted in the
    /// quota. Returns where it is.
    pub fn finish(self, committed: Result<(), CommitError>) -> Result<PathBuf, mailstore::Error> {
        match committed {
            Ok(()) => {
                if self.tracked {
                    self.maildir.record_delivery(self.size);
                }
                Ok(self.dest)
            }
            // Our own name exists: an earlier attempt landed it.
            Err(CommitError::Exists { path }) => Ok(path),
            Err(e) => Err(e.into()),
        }
    }
}

impl MaildirTransport {
    pub const RECOVERY: Recovery = Recovery::FoundByName;

    /// Stages `prefix` followed by `input` for `target`, and checks the
    /// quota at the stored size. Nothing is visible to readers yet.
    pub fn stage(
        &self,
        io: &dyn Io,
        target: &Target,
        prefix: &[u8],
        input: &mut dyn Read,
    ) -> Result<Staged, mailstore::Error> {
        let (md, quota) = match (target.folder, self.known.get(target.path)) {
            (None, Some(known)) => known,
            (folder, _) => {
                let md = Maildir::create_with(io, target.path, target.owner)?;
                match folder {
                    Some(f) => (md.folder_with(io, f, target.owner)?, true),
                    None => {
                        let quota = md.has_quota_file();
                        if self.known.put(target.path, &md, quota) {
                            sweep_tmp(target.path, std::time::SystemTime::now());
                        }
                        (md, quota)
                    }
                }
            }
        };
        if target.look_first
            && let Some(base) = &target.base
            && md.find(base)?.is_some()
        {
            return Ok(Staged::Already);
        }
        let opts = DeliverOptions {
            host: self.host.clone(),
            base_name: target.base.clone(),
            owner: target.owner,
            prefix: prefix.to_vec(),
            max_size: self.max_size,
            over_quota: self.over_quota,
            allow_empty: true,
            ..Default::default()
        };
        let msg = md.stage(io, input, &opts).inspect_err(|_| {
            // Checked again next time: it may have been moved or damaged.
            self.known.forget(target.path);
        })?;
        let size = msg.size;
        // Without a quota file there is nothing to read, nor to count in.
        let verdict = if quota {
            md.check_quota(size, self.over_quota)
        } else {
            Ok(QuotaVerdict::Fits { tracked: false })
        };
        let tracked = match verdict {
            Ok(QuotaVerdict::Fits { tracked }) => tracked,
            Ok(QuotaVerdict::Discard) => {
                msg.discard(io);
                return Ok(Staged::Discarded);
            }
            Err(e) => {
                msg.discard(io);
                return Err(e);
            }
        };
        let dest = msg.dest.clone();
        Ok(Staged::File(StagedFile {
            job: Some(msg.into_job()),
            maildir: md,
            size,
            dest,
            tracked,
        }))
    }

    /// The quota answer for the Maildir at `path` before a message is
    /// sent (at `RCPT`): the over-quota error, if it is over. A Maildir
    /// that does not exist yet has no quota file either.
    pub fn over_quota_now(&self, path: &Path) -> Option<mailstore::Error> {
        let md = match self.known.get(path) {
            Some((_, false)) => return None,
            Some((md, true)) => md,
            None => Maildir::open(path).ok()?,
        };
        md.check_quota(0, self.over_quota).err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_older_than_36_hours_are_swept_from_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let now = std::time::SystemTime::now();
        for (name, age_h) in [("fresh", 1), ("day", 35), ("old", 37), ("older", 400)] {
            let f = std::fs::File::create(tmp.join(name)).unwrap();
            f.set_modified(now - Duration::from_secs(age_h * 3600))
                .unwrap();
        }
        std::fs::create_dir(tmp.join("old-dir")).unwrap();
        assert_eq!(sweep_tmp(dir.path(), now), 2);
        let mut left: Vec<String> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["day", "fresh", "old-dir"]);
        // Nothing to sweep where there is no tmp/.
        assert_eq!(sweep_tmp(&dir.path().join("none"), now), 0);
    }

    #[test]
    fn a_maildir_is_swept_once_per_period() {
        let known = KnownMaildirs::default();
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("m")).unwrap();
        assert!(known.put(md.path(), &md, false));
        assert!(!known.put(md.path(), &md, false));
        assert!(known.get(md.path()).is_some());
        known.forget(md.path());
        assert!(known.get(md.path()).is_none());
    }
}
