//! Durable file writes for Sluice.
//!
//! Both the spool (`-D` + `-H` files) and Maildir deliveries publish a file the
//! same way: write it under a temporary name, make its bytes durable, rename it
//! into place without replacing anything, make the directory entry durable.
//! This crate holds that sequence once, so that one group-commit mechanism
//! ([`Committer`]) serves both without `spool` and `mailstore` knowing each
//! other:
//!
//! - [`io`]: the narrow I/O seam every durable operation goes through;
//! - [`dirs`]: that seam with the directories commit batches publish into
//!   kept open, checked against their paths once per batch;
//! - [`sim`]: a recording seam with fault injection and power-cut simulation;
//! - [`commit`]: staged files, jobs, and the committer that flushes them per
//!   message ([`Durability::Strict`]) or per batch ([`Durability::Batch`]);
//! - [`replace`]: replacing a whole file (temporary file, rename) under a
//!   stated [`Persist`] policy.
// unsafe only in sys.rs, for the one syscall rustix does not wrap.
#![deny(unsafe_code)]

pub mod commit;
pub mod dirs;
pub mod io;
pub mod parallel;
pub mod replace;
pub mod sim;
#[allow(unsafe_code)]
pub mod sys;

pub use commit::{
    BatchObserver, BatchOptions, CommitError, CommitStats, Committer, DataBarrier, Job, Staged,
    Ticket,
};
pub use dirs::DirIo;
pub use io::{DirHandle, Io, RealIo};
pub use replace::{Persist, replace_file};

use std::fmt;
use std::str::FromStr;

/// How much a reported success promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// Each message is flushed on its own: `fdatasync` of every file, then the
    /// rename, then an `fsync` of the directory, before success is reported.
    /// Survives process crash and power loss. Costs two synchronous flushes
    /// per message.
    Strict,
    /// Group commit: messages committed concurrently share the flushes. One
    /// batch costs one data barrier (concurrent `fdatasync` calls, which the
    /// journal merges) and one `fsync` per touched directory, all before any
    /// waiter is told of success. Survives process crash and power loss, like
    /// `Strict`; only the cost differs.
    #[default]
    Batch,
    /// No flush at all: files are renamed into place and success is reported
    /// at once. Survives a process crash (the page cache holds the data) but
    /// NOT power loss. For benchmarks only; every report labels it.
    None,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Batch => "batch",
            Durability::None => "none",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(Durability::Strict),
            "batch" => Ok(Durability::Batch),
            "none" => Ok(Durability::None),
            other => Err(format!(
                "unknown durability {other:?} (expected \"strict\", \"batch\" or \"none\")"
            )),
        }
    }
}
