//! The crate's one error type. Every variant knows whether it is temporary
//! (worth retrying: the mail stays queued) and which sysexits code a delivery
//! agent reports for it.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// sysexits.h codes (also the exit codes of `sluice deliver`).
pub mod sysexits {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 64;
    pub const DATAERR: i32 = 65;
    pub const NOINPUT: i32 = 66;
    pub const NOUSER: i32 = 67;
    pub const SOFTWARE: i32 = 70;
    pub const CANTCREAT: i32 = 73;
    pub const IOERR: i32 = 74;
    pub const TEMPFAIL: i32 = 75;
    pub const NOPERM: i32 = 77;
    pub const CONFIG: i32 = 78;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on `path` failed.
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Publishing a staged file failed (sync or rename); nothing is visible.
    #[error(transparent)]
    Commit(#[from] durable::CommitError),
    /// A path that must be a Maildir is something else.
    #[error("{path}: not a Maildir: {why}")]
    NotMaildir { path: PathBuf, why: String },
    /// A Maildir++ folder name that cannot be used.
    #[error("folder {name:?}: {why}")]
    BadFolder { name: String, why: String },
    /// Delivering would exceed the Maildir++ quota.
    #[error(
        "{path}: over quota: {used_bytes}/{limit_bytes} bytes, {used_count}/{limit_count} messages"
    )]
    OverQuota {
        path: PathBuf,
        used_bytes: u64,
        limit_bytes: u64,
        used_count: u64,
        limit_count: u64,
        /// From `over_quota`: defer (temporary) or reject (permanent).
        permanent: bool,
    },
    /// `maildirsize` cannot be understood where it matters (its quota line).
    #[error("{path}: line {line}: corrupt maildirsize: {why}")]
    BadQuotaFile {
        path: PathBuf,
        line: usize,
        why: String,
    },
    /// A message that cannot be stored as it is (empty, too big, ...).
    #[error("{what}: {why}")]
    BadMessage { what: String, why: String },
    /// An mbox that cannot be read as one.
    #[error("{path}: byte {offset}: {why}")]
    BadMbox {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    /// A mailbox lock was not had in time.
    #[error("{path}: {kind} lock not obtained within {waited_secs}s{}", holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    LockTimeout {
        path: PathBuf,
        kind: &'static str,
        waited_secs: u64,
        holder: Option<String>,
    },
    /// A mailbox lock could not be taken at all (not a wait: the lock file's
    /// directory is not writable, the kernel refused the lock, ...).
    #[error("{path}: cannot take the {kind} lock: {why}: {source}")]
    LockFailed {
        path: PathBuf,
        kind: &'static str,
        why: String,
        #[source]
        source: io::Error,
    },
    /// Reading the message to store failed (a broken pipe on standard input,
    /// an unreadable spool file).
    #[error("reading the message: {source}")]
    MessageInput {
        #[source]
        source: io::Error,
    },
    /// An mbox append failed and so did cutting the mbox back to its old
    /// length: the mbox may end in a partial message.
    #[error(
        "{path}: append failed ({source}) and truncating back to {len} bytes failed too: {undo}"
    )]
    AppendUndo {
        path: PathBuf,
        len: u64,
        source: io::Error,
        undo: io::Error,
    },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether retrying later may succeed (the message must stay queued).
    ///
    /// Local faults an admin can fix (permissions, a full disk, a file where
    /// a directory should be) count as temporary: a pipe transport bounces
    /// mail on a permanent code, and a wrong file mode must not lose mail.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::OverQuota { permanent, .. } => !permanent,
            // A file that is not an mbox stays one: retrying cannot help.
            Error::BadMessage { .. } | Error::BadFolder { .. } | Error::BadMbox { .. } => false,
            _ => true,
        }
    }

    /// The sysexits code a delivery agent exits with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::OverQuota {
                permanent: true, ..
            } => sysexits::NOPERM,
            Error::BadMessage { .. } | Error::BadMbox { .. } => sysexits::DATAERR,
            Error::BadFolder { .. } => sysexits::CANTCREAT,
            _ => sysexits::TEMPFAIL,
        }
    }
}
