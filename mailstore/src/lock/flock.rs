//! `flock(2)` locks. Polled with `LOCK_NB` until the deadline, because the
//! blocking form has no timeout.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use super::{LockMode, poll_lock};
use crate::error::Result;
use crate::sys;

pub(crate) fn acquire(
    file: &File,
    path: &Path,
    mode: LockMode,
    deadline: Instant,
    start: Instant,
) -> Result<()> {
    poll_lock(
        path,
        "flock",
        deadline,
        start,
        || sys::flock_try_lock(file, mode),
        |_| "flock failed",
        || {
            sys::dev_ino(file)
                .ok()
                .and_then(|id| holder_in_proc_locks(&sys::proc_locks()?, id))
        },
    )
}

/// The holder of a `flock` lock on the file `(major, minor, inode)`, from
/// the text of `/proc/locks`, whose lines read
/// `1: FLOCK  ADVISORY  WRITE 1234 fe:00:10010715 0 EOF`.
fn holder_in_proc_locks(text: &str, (major, minor, ino): (u32, u32, u64)) -> Option<String> {
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let _n = f.next()?;
        // "->" in this column marks a waiter, listed under the holder.
        if f.next()? != "FLOCK" {
            return None;
        }
        let _advisory = f.next()?;
        let _read_write = f.next()?;
        let pid = f.next()?;
        let id = f.next()?;
        (id == want && pid != "-1").then(|| format!("pid {pid}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn proc_locks_holder_table() {
        let text = "1: POSIX  ADVISORY  WRITE 11505 fe:00:10010716 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 11506 fe:00:10010715 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 11507 fe:00:10010715 0 EOF\n\
                    3: OFDLCK ADVISORY  WRITE -1 fe:00:10010714 0 EOF\n";
        type DevIno = (u32, u32, u64);
        let table: &[(DevIno, Option<&str>)] = &[
            ((0xfe, 0, 10010715), Some("pid 11506")),
            ((0xfe, 0, 10010716), None), // a POSIX lock, not flock
            ((0xfe, 0, 10010714), None),
            ((0xfe, 1, 10010715), None),
        ];
        for (id, want) in table {
            assert_eq!(holder_in_proc_locks(text, *id).as_deref(), *want, "{id:?}");
        }
    }

    #[test]
    fn timeout_names_this_process_as_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        let a = File::create(&p).unwrap();
        let b = File::open(&p).unwrap();
        assert!(sys::flock_try_lock(&a, LockMode::Exclusive).unwrap());
        let start = Instant::now();
        let err = acquire(&b, &p, LockMode::Shared, start, start).unwrap_err();
        match err {
            Error::LockTimeout { holder, kind, .. } => {
                assert_eq!(kind, "flock");
                // /proc/locks may be unavailable in some sandboxes.
                if sys::proc_locks().is_some() {
                    assert_eq!(holder, Some(format!("pid {}", std::process::id())));
                }
            }
            other => panic!("{other:?}"),
        }
    }
}
