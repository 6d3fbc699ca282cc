//! Replacing a whole file: write a temporary file, rename it over the old
//! one. Readers see the old content or the new, never a mix; the policy says
//! what a power cut may leave.
//!
//! | step | a crash or power cut here leaves |
//! |---|---|
//! | 1. create and write `tmp` | the old file; a stray `tmp` (its writer removes or reuses it) |
//! | 2. `fdatasync(tmp)` ([`Persist::Durable`]) | the same |
//! | 3. `rename(tmp, path)` | the old file or the new one, whole (after step 2); with [`Persist::Cache`] possibly an empty or partial new one |
//! | 4. `fsync(dir)` ([`Persist::Durable`]) | the new file, whole: the caller may act on it |
//!
//! Used for the spool's `-H` rewrites, Maildir++ `maildirsize`, Dovecot's
//! side files, the queue-count cache and generated certificates.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::io::Io;

/// What must survive once [`replace_file`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Nothing is synced: a rebuildable file (a cache, a quota summary that
    /// is recomputed when it looks wrong). A power cut may leave the old
    /// content, none, or a torn new one, so its reader must check it.
    Cache,
    /// The new content survives power loss: its data is synced before the
    /// rename, the directory after.
    Durable,
}

/// Replaces `path` with `bytes`, written first to `tmp` (a name of the
/// caller's on the same filesystem, usually in the same directory; a
/// leftover of a crashed earlier writer with that name is removed). `prepare` runs on the written file before it
/// is synced and renamed (to give it an owner, for instance). On error the
/// temporary file is removed and `path` is untouched.
pub fn replace_file(
    io: &dyn Io,
    path: &Path,
    tmp: &Path,
    mode: u32,
    bytes: &[u8],
    persist: Persist,
    prepare: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = match io.create_new(tmp, mode) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            io.remove_file(tmp)?;
            io.create_new(tmp, mode)?
        }
        r => r?,
    };
    let written = (|| {
        io.write_all(&mut file, tmp, bytes)?;
        prepare(&file)?;
        if persist == Persist::Durable {
            io.sync_data(&file, tmp)?;
        }
        drop(file);
        io.rename_replace(tmp, path)
    })();
    if let Err(e) = written {
        let _ = io.remove_file(tmp);
        return Err(e);
    }
    if persist == Persist::Durable {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        io.sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Op, Recorder};

    fn replace(rec: &Recorder, path: &Path, bytes: &[u8], persist: Persist) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        replace_file(rec, path, &tmp, 0o600, bytes, persist, |_| Ok(()))
    }

    #[test]
    fn durable_replacement_survives_every_cut_whole() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let path = dir.path().join("f");
        replace(&rec, &path, b"old", Persist::Durable).unwrap();
        rec.mark("first");
        replace(&rec, &path, b"newer", Persist::Durable).unwrap();
        rec.mark("second");
        assert_eq!(std::fs::read(&path).unwrap(), b"newer");
        for cut in rec.cut_points() {
            let pc = rec.power_cut(cut);
            match pc.files.get(&path) {
                // Whatever is visible is whole: the old or the new.
                Some(img) => assert!(img.is_whole(), "cut {cut}: {img:?}"),
                None => assert!(pc.marks.is_empty(), "cut {cut}: acknowledged, then lost"),
            }
            if pc.marks.last().is_some_and(|m| m == "second") {
                assert_eq!(pc.files[&path].written, 5, "cut {cut}");
            }
        }
        // No temporary file left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_cache_is_not_synced() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let path = dir.path().join("f");
        replace(&rec, &path, b"cache", Persist::Cache).unwrap();
        assert!(rec.events().iter().all(|e| !matches!(
            e,
            crate::sim::Event::SyncData(_) | crate::sim::Event::SyncDir(_)
        )));
        assert_eq!(std::fs::read(&path).unwrap(), b"cache");
    }

    #[test]
    fn failures_leave_the_old_file_and_no_temporary() {
        for (op, nth) in [(Op::Write, 0), (Op::SyncData, 0), (Op::Rename, 0)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            std::fs::write(&path, b"old").unwrap();
            let rec = Recorder::new();
            rec.fail(op, nth);
            let e = replace(&rec, &path, b"new", Persist::Durable).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(5), "{op:?}");
            assert_eq!(std::fs::read(&path).unwrap(), b"old", "{op:?}");
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                1,
                "{op:?}: temporary file left"
            );
        }
    }

    #[test]
    fn a_leftover_temporary_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let path = dir.path().join("f");
        std::fs::write(path.with_extension("tmp"), b"crashed writer").unwrap();
        replace(&rec, &path, b"new", Persist::Durable).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
