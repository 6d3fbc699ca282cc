//! Whole-file `fcntl` locks, as open-file-description locks.
//!
//! `F_OFD_SETLKW` waits without a timeout, so the lock is polled with
//! `F_OFD_SETLK` and growing pauses until the deadline. Classic
//! (process-owned) `fcntl` locks are not used: two threads of one process
//! would not exclude each other, and closing any descriptor of the file
//! anywhere in the process would silently drop the lock.

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
        "fcntl",
        deadline,
        start,
        || sys::ofd_try_lock(file, mode),
        |e| match e.raw_os_error() {
            Some(libc::EINVAL) => {
                "the kernel refused an open-file-description lock (Linux 3.15 or later needed)"
            }
            Some(libc::EBADF) => "the mbox is not open for the access this lock needs",
            Some(libc::ENOLCK) => "no locks available (NFS lock daemon not running?)",
            _ => "fcntl lock failed",
        },
        || holder(file, mode),
    )
}

fn holder(file: &File, mode: LockMode) -> Option<String> {
    match sys::ofd_holder(file, mode).ok()?? {
        pid if pid > 0 => Some(format!("pid {pid}")),
        // The kernel does not name the owner of an open-file-description
        // lock; it may be another thread of this very process.
        _ => Some("an open-file-description lock (owner not reported by the kernel)".into()),
    }
}
